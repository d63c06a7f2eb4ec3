pub mod backend;
pub mod client;
