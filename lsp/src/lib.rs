//! lex-align's language server: policy diagnostics, hovers and fixes for
//! the dependencies of `pyproject.toml` and `requirements*.txt`.
//!
//! Transport-agnostic: [`serve_lsp`] speaks LSP over any byte stream (the
//! daemon serves it per editor connection; tests use an in-memory pipe).
//! Policy comes from a [`PolicyBackend`]; this crate knows nothing about
//! HTTP or SQLite.

#![deny(clippy::print_stdout, clippy::print_stderr)]

mod analysis;
mod backend;
pub mod bridge;
mod convert;
mod docs;
mod fixes;
mod server;
mod settings;

use std::sync::Arc;

use tokio::io::{AsyncRead, AsyncWrite};
use tower_lsp_server::{LspService, Server};

pub use analysis::Code;
pub use backend::{CveAlertInfo, EvalItem, PolicyBackend, PolicyEvent, RuleInfo, RuleProposal};
pub use docs::{diagnostics_html, DIAGNOSTICS_MD};
pub use server::{
    escape_markdown, FIX_ALL_KIND, PROPOSE_RULE_COMMAND, PROPOSE_RULE_KIND,
    REQUEST_APPROVAL_COMMAND,
};
pub use settings::{scope_name, LspOptions, DEFAULT_DOCS_BASE_URL, SCOPE_NAMES};

/// Every diagnostic code the server emits, in documentation order.
pub const CODES: [Code; 12] = [
    Code::Banned,
    Code::Deprecated,
    Code::VersionConstraint,
    Code::Vulnerable,
    Code::Malicious,
    Code::License,
    Code::NotFound,
    Code::Provisional,
    Code::NeedsRationale,
    Code::InvalidRequirement,
    Code::UpstreamUnavailable,
    Code::CveAlert,
];

/// Serves one LSP session over `input`/`output` until the client exits or
/// the stream closes, with default [`LspOptions`].
pub async fn serve_lsp<R, W>(input: R, output: W, backend: Arc<dyn PolicyBackend>)
where
    R: AsyncRead + Unpin,
    W: AsyncWrite,
{
    serve_lsp_with(input, output, backend, LspOptions::default()).await;
}

/// [`serve_lsp`] with explicit options (the client's `initializationOptions`
/// and `workspace/configuration` still override them).
pub async fn serve_lsp_with<R, W>(
    input: R,
    output: W,
    backend: Arc<dyn PolicyBackend>,
    options: LspOptions,
) where
    R: AsyncRead + Unpin,
    W: AsyncWrite,
{
    // Subscribe before serving so no event between start and `initialized` is lost.
    let mut events = backend.subscribe();
    let (service, socket) = LspService::new(|client| server::Server {
        shared: server::new_shared(client, backend, options),
    });
    let shared = Arc::clone(&service.inner().shared);
    let listener = {
        let shared = Arc::clone(&shared);
        tokio::spawn(async move {
            loop {
                match events.recv().await {
                    Ok(event) => {
                        tracing::debug!("policy event {event:?}: re-checking open documents")
                    }
                    // Missed events still mean "something changed".
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
                }
                server::refresh_all(&shared);
            }
        })
    };
    let service = server::Ordered {
        inner: service,
        shared,
    };
    Server::new(input, output, socket).serve(service).await;
    listener.abort();
}
