//! A protocol-level LSP test client: JSON-RPC with Content-Length framing
//! over any byte stream (an in-memory pipe to `serve_lsp`, the daemon's
//! upgraded TCP connection, or the stdio of a `lex-align lsp` process).
//! The one copy: the daemon's and the cli crate's tests include this file.
#![allow(dead_code)]

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
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
    /// Every `$/progress` and `window/workDoneProgress/create` seen, in order.
    pub seen: Vec<Value>,
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

impl LspClient {
    /// A client that answers `workspace/configuration` with `{"debounceMs": 50}`.
    pub fn new<R, W>(read: R, write: W) -> LspClient
    where
        R: AsyncRead + Send + Unpin + 'static,
        W: AsyncWrite + Send + Unpin + 'static,
    {
        Self::with_configuration(read, write, json!({ "debounceMs": 50 }))
    }

    /// A client that answers `workspace/configuration` with `configuration`.
    pub fn with_configuration<R, W>(read: R, write: W, configuration: Value) -> LspClient
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
                        "workspace/configuration" => json!([configuration.clone()]),
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
            seen: Vec::new(),
        }
    }

    /// `initialize` (UTF-16 positions, versioned diagnostics) + `initialized`.
    pub async fn initialize(&mut self) -> Value {
        self.initialize_with(json!({ "debounceMs": 50 })).await
    }

    /// [`LspClient::initialize`] with explicit `initializationOptions`.
    pub async fn initialize_with(&mut self, init_options: Value) -> Value {
        let capabilities = json!({
            "workspace": { "configuration": true },
            "textDocument": { "publishDiagnostics": { "versionSupport": true } }
        });
        self.initialize_with_capabilities(init_options, capabilities)
            .await
    }

    /// `initialize` with explicit options and client capabilities, then
    /// `initialized`.
    pub async fn initialize_with_capabilities(
        &mut self,
        init_options: Value,
        capabilities: Value,
    ) -> Value {
        let init = self
            .request(
                "initialize",
                json!({
                    "processId": null,
                    "rootUri": null,
                    "initializationOptions": init_options,
                    "capabilities": capabilities
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
        let msg = tokio::time::timeout(WAIT, self.incoming.recv())
            .await
            .expect("the server answered in time")
            .expect("the server is still connected");
        if msg
            .get("method")
            .is_some_and(|m| m == "$/progress" || m == "window/workDoneProgress/create")
        {
            self.seen.push(msg.clone());
        }
        msg
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

    /// Diagnostics publishes for `uri` until one satisfies `done`; returns
    /// all of them, that one last.
    pub async fn diagnostics_until(
        &mut self,
        uri: &str,
        done: impl Fn(&Value) -> bool,
    ) -> Vec<Value> {
        let mut seen = Vec::new();
        loop {
            let p = self.notification("textDocument/publishDiagnostics").await;
            if p["uri"] != uri {
                continue;
            }
            seen.push(p.clone());
            if done(&p) {
                return seen;
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

/// The diagnostics of a publish as (code, severity, start line, start col, end line, end col).
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

/// Applies the text edits of a WorkspaceEdit for `uri` to `text` (UTF-16
/// positions unless `utf8`), as an editor does.
pub fn apply_edit(text: &str, edit: &Value, uri: &str, utf8: bool) -> String {
    let mut edits: Vec<&Value> = edit["changes"][uri]
        .as_array()
        .expect("edit has changes for the document")
        .iter()
        .collect();
    // Apply from the end so earlier offsets stay valid.
    edits.sort_by_key(|e| {
        std::cmp::Reverse((
            e["range"]["start"]["line"].as_u64().unwrap(),
            e["range"]["start"]["character"].as_u64().unwrap(),
        ))
    });
    let mut text = text.to_string();
    for e in edits {
        let start = offset(&text, &e["range"]["start"], utf8);
        let end = offset(&text, &e["range"]["end"], utf8);
        text.replace_range(start..end, e["newText"].as_str().unwrap());
    }
    text
}

/// Byte offset of an LSP position, computed independently of the server.
pub fn offset(text: &str, pos: &Value, utf8: bool) -> usize {
    let line = pos["line"].as_u64().unwrap() as usize;
    let character = pos["character"].as_u64().unwrap() as usize;
    let line_start: usize = text.split_inclusive('\n').take(line).map(str::len).sum();
    let line_text = text[line_start..].split('\n').next().unwrap();
    let mut units = 0;
    for (i, c) in line_text.char_indices() {
        if units >= character {
            return line_start + i;
        }
        units += if utf8 { c.len_utf8() } else { c.len_utf16() };
    }
    line_start + line_text.len()
}

/// The LSP position of a byte offset (UTF-16 unless `utf8`).
pub fn position(text: &str, byte: usize, utf8: bool) -> Value {
    let before = &text[..byte];
    let line = before.matches('\n').count();
    let col_text = &before[before.rfind('\n').map_or(0, |i| i + 1)..];
    let character = if utf8 {
        col_text.len()
    } else {
        col_text.encode_utf16().count()
    };
    json!({ "line": line, "character": character })
}
