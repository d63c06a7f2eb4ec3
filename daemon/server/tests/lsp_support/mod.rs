//! The LSP test client (one copy, in the lsp crate's tests) plus what the
//! daemon's and the cli crate's tests add: the HTTP upgrade to a session
//! and helpers over ASCII manifests.
#![allow(dead_code)]

#[path = "../../../../lsp/tests/support/lsp_client.rs"]
mod lsp_client;

use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

// Each including test binary uses its own part of this.
#[allow(unused_imports)]
pub use lsp_client::{summary, LspClient, ERROR, WAIT, WARNING};

/// Connects to the daemon and upgrades to an LSP session; returns the
/// stream and the 101 response head.
pub async fn upgrade(base: &str, project: Option<&str>) -> (TcpStream, String) {
    let authority = base.strip_prefix("http://").unwrap();
    let mut s = TcpStream::connect(authority).await.unwrap();
    let mut req = format!(
        "GET /api/v1/lsp HTTP/1.1\r\nHost: {authority}\r\nConnection: Upgrade\r\nUpgrade: lex-align-lsp\r\n"
    );
    if let Some(p) = project {
        req.push_str(&format!("X-LexAlign-Project: {p}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    // Byte by byte so no session bytes are swallowed with the head.
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        let n = tokio::time::timeout(WAIT, s.read(&mut b))
            .await
            .expect("the daemon answered the upgrade")
            .unwrap();
        assert_eq!(
            n,
            1,
            "connection closed during the handshake: {:?}",
            String::from_utf8_lossy(&head)
        );
        head.push(b[0]);
    }
    (s, String::from_utf8(head).unwrap())
}

pub fn file_uri(path: &std::path::Path) -> String {
    format!("file://{}", path.display())
}

pub fn has_code(p: &Value, code: &str) -> bool {
    p["diagnostics"]
        .as_array()
        .unwrap()
        .iter()
        .any(|d| d["code"] == code)
}

/// The expected diagnostic on `needle`'s span in `text` (ASCII text, so
/// UTF-16 columns are byte columns).
pub fn diag(
    text: &str,
    needle: &str,
    code: &str,
    severity: u64,
) -> (String, u64, u64, u64, u64, u64) {
    let start = text
        .find(needle)
        .unwrap_or_else(|| panic!("{needle} in text"));
    let (l, c) = line_col(text, start);
    let (el, ec) = line_col(text, start + needle.len());
    (code.to_string(), severity, l, c, el, ec)
}

fn line_col(text: &str, byte: usize) -> (u64, u64) {
    let before = &text[..byte];
    let line = before.matches('\n').count();
    let col = before.len() - before.rfind('\n').map_or(0, |i| i + 1);
    (line as u64, col as u64)
}

/// Applies a WorkspaceEdit's edits for `uri` to `text` (UTF-16 positions),
/// as an editor does.
pub fn apply_edit(text: &str, edit: &Value, uri: &str) -> String {
    lsp_client::apply_edit(text, edit, uri, false)
}

/// A position at the start of `needle` in `text`.
pub fn position_of(text: &str, needle: &str) -> Value {
    let (line, character) = line_col(text, text.find(needle).unwrap());
    json!({ "line": line, "character": character })
}
