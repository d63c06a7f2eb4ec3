pub mod backend;
pub mod client;
pub mod lsp_client;
