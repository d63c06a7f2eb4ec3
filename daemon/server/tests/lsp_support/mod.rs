//! A protocol-level LSP test client: JSON-RPC with Content-Length framing
//! over any byte stream (the daemon's upgraded TCP connection, or the stdio
//! of a `lex-align lsp` process). Also used by the cli crate's tests.
#![allow(dead_code)]

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, Mutex};

/// Upper bound on waiting for a message: only there so a bug shows as a
/// failure instead of a hung test run.
pub const WAIT: Duration = Duration::from_secs(30);

pub const ERROR: u64 = 1;
pub const WARNING: u64 = 2;

type Writer = Arc<Mutex<Box<dyn AsyncWrite + Send + Unpin>>>;

pub struct LspClient {
    writer: Writer,
    incoming: mpsc::UnboundedReceiver<Value>,
    backlog: VecDeque<Value>,
    next_id: i64,
}

async fn write_frame(w: &Writer, msg: &Value) {
    let body = serde_json::to_vec(msg).unwrap();
    let mut w = w.lock().await;
    w.write_all(format!("Content-Length: {}\r\n\r\n", body.len()).as_bytes())
        .await
        .unwrap();
    w.write_all(&body).await.unwrap();
    w.flush().await.unwrap();
}

async fn read_frame<R: AsyncRead + Unpin>(r: &mut BufReader<R>) -> Option<Value> {
    let mut len = None;
    loop {
        let mut line = String::new();
        if r.read_line(&mut line).await.ok()? == 0 {
            return None;
        }
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some(v) = line.strip_prefix("Content-Length:") {
            len = Some(v.trim().parse::<usize>().unwrap());
        }
    }
    let mut body = vec![0; len?];
    r.read_exact(&mut body).await.ok()?;
    Some(serde_json::from_slice(&body).unwrap())
}

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

impl LspClient {
    pub fn new<R, W>(read: R, write: W) -> LspClient
    where
        R: AsyncRead + Send + Unpin + 'static,
        W: AsyncWrite + Send + Unpin + 'static,
    {
        let writer: Writer = Arc::new(Mutex::new(Box::new(write)));
        let (tx, incoming) = mpsc::unbounded_channel();
        let reply_writer = Arc::clone(&writer);
        tokio::spawn(async move {
            let mut reader = BufReader::new(read);
            while let Some(msg) = read_frame(&mut reader).await {
                // Answer the server's own requests as an editor would.
                if let (Some(id), Some(method)) =
                    (msg.get("id"), msg.get("method").and_then(Value::as_str))
                {
                    let result = match method {
                        "workspace/configuration" => json!([{ "debounceMs": 50 }]),
                        _ => Value::Null,
                    };
                    write_frame(
                        &reply_writer,
                        &json!({"jsonrpc": "2.0", "id": id, "result": result}),
                    )
                    .await;
                }
                if tx.send(msg).is_err() {
                    return;
                }
            }
        });
        LspClient {
            writer,
            incoming,
            backlog: VecDeque::new(),
            next_id: 1,
        }
    }

    /// `initialize` (UTF-16 positions, versioned diagnostics) + `initialized`.
    pub async fn initialize(&mut self) -> Value {
        self.initialize_with(json!({ "debounceMs": 50 })).await
    }

    /// [`LspClient::initialize`] with explicit `initializationOptions`.
    pub async fn initialize_with(&mut self, init_options: Value) -> Value {
        let init = self
            .request(
                "initialize",
                json!({
                    "processId": null,
                    "rootUri": null,
                    "initializationOptions": init_options,
                    "capabilities": {
                        "workspace": { "configuration": true },
                        "textDocument": { "publishDiagnostics": { "versionSupport": true } }
                    }
                }),
            )
            .await;
        self.notify("initialized", json!({})).await;
        init
    }

    pub async fn notify(&mut self, method: &str, params: Value) {
        write_frame(
            &self.writer,
            &json!({"jsonrpc": "2.0", "method": method, "params": params}),
        )
        .await;
    }

    async fn next_message(&mut self) -> Value {
        tokio::time::timeout(WAIT, self.incoming.recv())
            .await
            .expect("the server answered in time")
            .expect("the server is still connected")
    }

    /// Sends a request and returns its `result` (panics on an error response).
    pub async fn request(&mut self, method: &str, params: Value) -> Value {
        let response = self.request_raw(method, params).await;
        assert!(
            response.get("error").is_none(),
            "{method} failed: {response}"
        );
        response["result"].clone()
    }

    pub async fn request_raw(&mut self, method: &str, params: Value) -> Value {
        let id = self.next_id;
        self.next_id += 1;
        write_frame(
            &self.writer,
            &json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}),
        )
        .await;
        loop {
            let msg = self.next_message().await;
            if msg.get("id") == Some(&json!(id)) && msg.get("method").is_none() {
                return msg;
            }
            self.backlog.push_back(msg);
        }
    }

    /// The next notification named `method` (others stay queued).
    pub async fn notification(&mut self, method: &str) -> Value {
        if let Some(i) = self
            .backlog
            .iter()
            .position(|m| m.get("method").is_some_and(|x| x == method) && m.get("id").is_none())
        {
            return self.backlog.remove(i).unwrap()["params"].clone();
        }
        loop {
            let msg = self.next_message().await;
            if msg.get("method").is_some_and(|x| x == method) && msg.get("id").is_none() {
                return msg["params"].clone();
            }
            self.backlog.push_back(msg);
        }
    }

    /// Diagnostics publishes for `uri` until one satisfies `done`; returns it.
    pub async fn diagnostics_until(&mut self, uri: &str, done: impl Fn(&Value) -> bool) -> Value {
        loop {
            let p = self.notification("textDocument/publishDiagnostics").await;
            if p["uri"] == uri && done(&p) {
                return p;
            }
        }
    }

    /// `shutdown` + `exit`; then waits until the server closes the stream.
    pub async fn shutdown(mut self) {
        self.request("shutdown", Value::Null).await;
        self.notify("exit", Value::Null).await;
        loop {
            match tokio::time::timeout(WAIT, self.incoming.recv()).await {
                Ok(Some(_)) => continue,
                Ok(None) => return,
                Err(_) => panic!("the server did not close the session after `exit`"),
            }
        }
    }
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

/// The diagnostics of a publish as (code, severity, start line, start col,
/// end line, end col), sorted.
pub fn summary(p: &Value) -> Vec<(String, u64, u64, u64, u64, u64)> {
    let mut out: Vec<_> = p["diagnostics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["code"].as_str().unwrap().to_string(),
                d["severity"].as_u64().unwrap(),
                d["range"]["start"]["line"].as_u64().unwrap(),
                d["range"]["start"]["character"].as_u64().unwrap(),
                d["range"]["end"]["line"].as_u64().unwrap(),
                d["range"]["end"]["character"].as_u64().unwrap(),
            )
        })
        .collect();
    out.sort();
    out
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

fn offset(text: &str, pos: &Value) -> usize {
    let line = pos["line"].as_u64().unwrap() as usize;
    let character = pos["character"].as_u64().unwrap() as usize;
    let line_start: usize = text.split_inclusive('\n').take(line).map(str::len).sum();
    line_start + character
}

/// Applies a WorkspaceEdit's edits for `uri` to `text`, as an editor does.
pub fn apply_edit(text: &str, edit: &Value, uri: &str) -> String {
    let mut edits: Vec<&Value> = edit["changes"][uri]
        .as_array()
        .expect("edit has changes for the document")
        .iter()
        .collect();
    edits.sort_by_key(|e| {
        std::cmp::Reverse((
            e["range"]["start"]["line"].as_u64().unwrap(),
            e["range"]["start"]["character"].as_u64().unwrap(),
        ))
    });
    let mut text = text.to_string();
    for e in edits {
        let start = offset(&text, &e["range"]["start"]);
        let end = offset(&text, &e["range"]["end"]);
        text.replace_range(start..end, e["newText"].as_str().unwrap());
    }
    text
}

/// A position at the start of `needle` in `text`.
pub fn position_of(text: &str, needle: &str) -> Value {
    let (line, character) = line_col(text, text.find(needle).unwrap());
    json!({ "line": line, "character": character })
}
