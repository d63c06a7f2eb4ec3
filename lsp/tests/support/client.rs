//! A [`LspClient`] talking to a server started with `serve_lsp_with` over
//! an in-memory pipe.

use std::ops::{Deref, DerefMut};
use std::sync::Arc;

use serde_json::{json, Value};

use lex_align_lsp::{serve_lsp_with, LspOptions, PolicyBackend};

pub use super::lsp_client::{apply_edit, position, summary, LspClient, WAIT};

pub struct TestClient {
    client: LspClient,
    server: tokio::task::JoinHandle<()>,
}

impl Deref for TestClient {
    type Target = LspClient;
    fn deref(&self) -> &LspClient {
        &self.client
    }
}

impl DerefMut for TestClient {
    fn deref_mut(&mut self) -> &mut LspClient {
        &mut self.client
    }
}

impl TestClient {
    /// Starts a server over an in-memory duplex pipe and performs the
    /// handshake. `utf8`: offer UTF-8 positions.
    pub async fn start(backend: Arc<dyn PolicyBackend>, utf8: bool) -> (TestClient, Value) {
        Self::start_with(backend, utf8, json!({ "progressThreshold": 3 })).await
    }

    /// [`TestClient::start`] with explicit `initializationOptions`.
    pub async fn start_with(
        backend: Arc<dyn PolicyBackend>,
        utf8: bool,
        init_options: Value,
    ) -> (TestClient, Value) {
        let (client_end, server_end) = tokio::io::duplex(1 << 16);
        let (server_read, server_write) = tokio::io::split(server_end);
        let options = LspOptions {
            docs_base_url: "file:///docs/diagnostics.md".to_string(),
            debounce_ms: 150,
            ..LspOptions::default()
        };
        let server = tokio::spawn(serve_lsp_with(server_read, server_write, backend, options));
        let (read, write) = tokio::io::split(client_end);
        let client = LspClient::with_configuration(read, write, json!({ "progressThreshold": 3 }));
        let mut client = TestClient { client, server };
        let general = if utf8 {
            json!({ "positionEncodings": ["utf-8", "utf-16"] })
        } else {
            json!({})
        };
        let capabilities = json!({
            "general": general,
            "window": { "workDoneProgress": true },
            "workspace": { "configuration": true },
            "textDocument": { "publishDiagnostics": { "versionSupport": true } }
        });
        let init = client
            .initialize_with_capabilities(init_options, capabilities)
            .await;
        (client, init)
    }

    /// `shutdown` + `exit`; then the server task must end.
    pub async fn shutdown(self) {
        self.client.shutdown().await;
        tokio::time::timeout(WAIT, self.server)
            .await
            .expect("the server exits after `exit`")
            .unwrap();
    }
}
