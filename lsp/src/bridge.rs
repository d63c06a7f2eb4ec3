//! `lex-align lsp`: joins an editor's stdio to an LSP session served by the
//! daemon (`GET /api/v1/lsp` upgraded to the `lex-align-lsp` protocol), so
//! every editor on the machine shares one daemon, one cache and one audit log.
//!
//! The bridge never hangs: connecting and the handshake have deadlines, and
//! when the daemon goes away mid-session it returns an error saying so (the
//! editor restarts the server, which starts the daemon again). It does not
//! reconnect by itself: a new session would not know the documents the
//! editor opened in the old one.

use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::io::{
    AsyncBufRead, AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader,
};
use tokio::net::TcpStream;

/// The `Upgrade` protocol token the daemon answers.
pub const UPGRADE_PROTOCOL: &str = "lex-align-lsp";
/// The daemon's upgrade route, under the server URL.
pub const LSP_PATH: &str = "/api/v1/lsp";

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// After the editor closes its side, how long the daemon gets to finish.
const CLOSE_GRACE: Duration = Duration::from_secs(3);
const MAX_RESPONSE_HEAD: usize = 16 * 1024;
/// Larger LSP frames than this are refused (a runaway editor, not a document).
const MAX_FRAME: usize = 64 * 1024 * 1024;

/// Where the daemon listens, from a server URL such as `http://127.0.0.1:8765`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DaemonAddr {
    /// `host:port`, as given to `connect` (IPv6 hosts keep their brackets).
    pub authority: String,
    /// The URL's path prefix (empty, or `/prefix` without a trailing slash).
    pub prefix: String,
}

impl DaemonAddr {
    pub fn parse(base_url: &str) -> io::Result<DaemonAddr> {
        let url = base_url.trim();
        let rest = match url.split_once("://") {
            Some(("http", rest)) => rest,
            Some((scheme, _)) => {
                return Err(invalid(format!(
                "server URL {url}: `lex-align lsp` connects over plain http:// (got {scheme}://); \
                     point server_url at the daemon's local address"
            )))
            }
            None => {
                return Err(invalid(format!(
                    "server URL {url:?} is not an http:// URL (e.g. http://127.0.0.1:8765)"
                )))
            }
        };
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, ""),
        };
        if authority.is_empty() {
            return Err(invalid(format!("server URL {url} has no host")));
        }
        // A port is there unless the authority ends with the host (or `]`).
        let has_port = authority.rsplit_once(':').is_some_and(|(h, p)| {
            !p.is_empty() && !p.contains(']') && (!h.contains(':') || h.ends_with(']'))
        });
        let authority = if has_port {
            authority.to_string()
        } else {
            format!("{authority}:80")
        };
        Ok(DaemonAddr {
            authority,
            prefix: path.trim_end_matches('/').to_string(),
        })
    }
}

fn invalid(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, message)
}

/// The variable holding the API key sent to a daemon with authentication on.
pub const API_KEY_ENV: &str = "LEXALIGN_API_KEY";

/// Bridges this process's stdin/stdout to an LSP session in the daemon at
/// `base_url`. Returns when the session ends; `Err` says why it ended early.
pub async fn bridge_stdio(base_url: &str, project: Option<&str>) -> io::Result<()> {
    bridge(base_url, project, tokio::io::stdin(), tokio::io::stdout()).await
}

/// [`bridge_stdio`] over any editor-side streams.
pub async fn bridge<I, O>(
    base_url: &str,
    project: Option<&str>,
    editor_in: I,
    mut editor_out: O,
) -> io::Result<()>
where
    I: AsyncRead + Unpin,
    O: AsyncWrite + Unpin,
{
    let (socket, early) = connect(base_url, project).await?;
    let (from_daemon, to_daemon) = socket.into_split();
    let exit_sent = AtomicBool::new(false);
    let at_boundary = AtomicBool::new(true);

    // The futures borrow the editor's output; they end with this block.
    let lost = {
        let upstream = forward_frames(editor_in, to_daemon, &exit_sent);
        let downstream = copy_frames(
            early.as_slice().chain(from_daemon),
            &mut editor_out,
            &at_boundary,
        );
        tokio::pin!(upstream, downstream);
        tokio::select! {
            up = &mut upstream => {
                // The editor is done: the daemon ends the session on EOF;
                // give it a moment to send its last messages, never forever.
                if let Ok(Err(e)) = tokio::time::timeout(CLOSE_GRACE, &mut downstream).await {
                    tracing::debug!("daemon stream after editor EOF: {e}");
                }
                return up.map_err(|e| {
                    io::Error::new(e.kind(), format!("reading from the editor: {e}"))
                });
            }
            down = &mut downstream => down,
        }
    };
    if exit_sent.load(Ordering::SeqCst) {
        // The session ended because the editor said `exit`.
        return Ok(());
    }
    let why = match lost {
        Ok(()) => "the daemon closed the connection".to_string(),
        Err(e) => format!("the connection to the daemon failed: {e}"),
    };
    let message = format!(
        "lost the lex-align daemon at {base_url} mid-session ({why}). \
         Restart the language server from the editor: `lex-align lsp` starts the daemon again."
    );
    // Tell the user in the editor too, when the stream is between messages.
    if at_boundary.load(Ordering::SeqCst) {
        let note = show_error(&format!("lex-align: {message}"));
        if let Err(e) = write_frame(&mut editor_out, &note).await {
            tracing::debug!("could not tell the editor: {e}");
        }
    }
    Err(io::Error::new(io::ErrorKind::ConnectionAborted, message))
}

/// Opens the connection and performs the upgrade handshake. Returns the
/// socket and any session bytes that arrived with the 101 response.
pub async fn connect(base_url: &str, project: Option<&str>) -> io::Result<(TcpStream, Vec<u8>)> {
    let addr = DaemonAddr::parse(base_url)?;
    let mut socket =
        match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(&addr.authority)).await {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => {
                return Err(io::Error::new(
                    e.kind(),
                    format!("cannot reach the lex-align daemon at {base_url}: {e}"),
                ))
            }
            Err(_) => {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!(
                        "cannot reach the lex-align daemon at {base_url}: no answer within {} s",
                        CONNECT_TIMEOUT.as_secs()
                    ),
                ))
            }
        };
    let _ = socket.set_nodelay(true);
    let mut request = format!(
        "GET {}{LSP_PATH} HTTP/1.1\r\nHost: {}\r\nConnection: Upgrade\r\nUpgrade: {UPGRADE_PROTOCOL}\r\nUser-Agent: lex-align-lsp/{}\r\n",
        addr.prefix,
        addr.authority,
        env!("CARGO_PKG_VERSION"),
    );
    if let Some(p) = project.map(str::trim).filter(|p| !p.is_empty()) {
        if p.contains(['\r', '\n']) {
            return Err(invalid(format!("project name {p:?} contains a line break")));
        }
        request.push_str(&format!("X-LexAlign-Project: {p}\r\n"));
    }
    // A daemon with authentication on wants the same key the CLI and hooks send.
    if let Some(key) = std::env::var(API_KEY_ENV)
        .ok()
        .map(|k| k.trim().to_string())
        .filter(|k| !k.is_empty())
    {
        if key.contains(['\r', '\n']) {
            return Err(invalid(format!("{API_KEY_ENV} contains a line break")));
        }
        request.push_str(&format!("Authorization: Bearer {key}\r\n"));
    }
    request.push_str("\r\n");

    let handshake = async {
        socket.write_all(request.as_bytes()).await?;
        read_response_head(&mut socket).await
    };
    let (head, rest) = match tokio::time::timeout(HANDSHAKE_TIMEOUT, handshake).await {
        Ok(r) => r.map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("LSP handshake with the daemon at {base_url} failed: {e}"),
            )
        })?,
        Err(_) => {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!(
                    "the daemon at {base_url} did not answer the LSP handshake within {} s",
                    HANDSHAKE_TIMEOUT.as_secs()
                ),
            ))
        }
    };
    let status = status_code(&head)?;
    if status == 101 {
        return Ok((socket, rest));
    }
    // Whatever body came with the refusal says why; a short wait for the rest.
    let mut body = rest;
    let mut chunk = [0u8; 4096];
    while body.len() < MAX_RESPONSE_HEAD {
        match tokio::time::timeout(Duration::from_millis(500), socket.read(&mut chunk)).await {
            Ok(Ok(n)) if n > 0 => body.extend_from_slice(&chunk[..n]),
            _ => break,
        }
    }
    let detail = serde_json::from_slice::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| v.get("detail").and_then(|d| d.as_str()).map(str::to_string))
        .unwrap_or_else(|| {
            String::from_utf8_lossy(&body)
                .trim()
                .chars()
                .take(300)
                .collect()
        });
    let hint = match status {
        404 => " (this daemon predates LSP support: restart it with this lex-align)",
        401 => " (the daemon needs a credential: set LEXALIGN_API_KEY to an API key)",
        403 => " (the credential in LEXALIGN_API_KEY lacks the role or project this needs)",
        _ => "",
    };
    Err(io::Error::other(format!(
        "the daemon at {base_url} refused the LSP session: HTTP {status}{hint}{}",
        if detail.is_empty() {
            String::new()
        } else {
            format!(": {detail}")
        }
    )))
}

/// Reads up to the blank line ending an HTTP response head.
async fn read_response_head(socket: &mut TcpStream) -> io::Result<(String, Vec<u8>)> {
    let mut buf = Vec::with_capacity(512);
    let mut chunk = [0u8; 1024];
    loop {
        let n = socket.read(&mut chunk).await?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "connection closed before a response",
            ));
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let rest = buf.split_off(end + 4);
            return Ok((String::from_utf8_lossy(&buf).into_owned(), rest));
        }
        if buf.len() > MAX_RESPONSE_HEAD {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "response head too large (is this a lex-align daemon?)",
            ));
        }
    }
}

fn status_code(head: &str) -> io::Result<u16> {
    let line = head.lines().next().unwrap_or("");
    let mut parts = line.split_whitespace();
    match (parts.next(), parts.next().and_then(|c| c.parse().ok())) {
        (Some(v), Some(code)) if v.starts_with("HTTP/") => Ok(code),
        _ => Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("not an HTTP response: {line:?} (is this a lex-align daemon?)"),
        )),
    }
}

/// One LSP frame as read: the header block as sent and the body.
struct Frame {
    head: Vec<u8>,
    body: Vec<u8>,
}

/// Reads the next frame; `None` at end of stream.
async fn read_frame<R: AsyncBufRead + Unpin>(input: &mut R) -> io::Result<Option<Frame>> {
    let mut head = Vec::with_capacity(128);
    let mut length = None;
    loop {
        let start = head.len();
        if input.read_until(b'\n', &mut head).await? == 0 {
            if head.is_empty() {
                return Ok(None);
            }
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the stream ended inside an LSP message header",
            ));
        }
        let text = String::from_utf8_lossy(&head[start..]);
        let text = text.trim_end();
        if text.is_empty() {
            break;
        }
        if let Some((name, value)) = text.split_once(':') {
            if name.trim().eq_ignore_ascii_case("content-length") {
                length = value.trim().parse::<usize>().ok();
            }
        }
    }
    let Some(length) = length.filter(|l| *l <= MAX_FRAME) else {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "an LSP message without a valid Content-Length header",
        ));
    };
    let mut body = vec![0u8; length];
    input.read_exact(&mut body).await?;
    Ok(Some(Frame { head, body }))
}

async fn write_frame<W: AsyncWrite + Unpin>(output: &mut W, frame: &Frame) -> io::Result<()> {
    output.write_all(&frame.head).await?;
    output.write_all(&frame.body).await?;
    output.flush().await
}

/// Editor → daemon, frame by frame (so `exit` is noticed). On EOF the
/// daemon's side is half-closed, which ends the session there.
async fn forward_frames<I, W>(input: I, mut output: W, exit_sent: &AtomicBool) -> io::Result<()>
where
    I: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut input = BufReader::new(input);
    let result = async {
        while let Some(frame) = read_frame(&mut input).await? {
            if is_exit(&frame.body) {
                exit_sent.store(true, Ordering::SeqCst);
            }
            write_frame(&mut output, &frame).await?;
        }
        Ok(())
    }
    .await;
    let _ = output.shutdown().await;
    result
}

fn is_exit(body: &[u8]) -> bool {
    // Cheap pre-check: most frames are not `exit`.
    if !body.windows(6).any(|w| w == b"\"exit\"") {
        return false;
    }
    serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .is_some_and(|v| v.get("method").and_then(|m| m.as_str()) == Some("exit"))
}

/// Daemon → editor, whole frames only, so that when the daemon goes away
/// the editor's stream is at a message boundary (`at_boundary`) and the
/// bridge can still tell the user.
async fn copy_frames<R, W>(from: R, to: &mut W, at_boundary: &AtomicBool) -> io::Result<()>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut from = BufReader::with_capacity(64 * 1024, from);
    loop {
        // Wait for the next byte before leaving the boundary.
        if from.fill_buf().await?.is_empty() {
            return Ok(());
        }
        at_boundary.store(false, Ordering::SeqCst);
        let Some(frame) = read_frame(&mut from).await? else {
            return Ok(());
        };
        write_frame(to, &frame).await?;
        at_boundary.store(true, Ordering::SeqCst);
    }
}

/// A `window/showMessage` error notification, framed.
fn show_error(message: &str) -> Frame {
    let body = serde_json::to_vec(&serde_json::json!({
        "jsonrpc": "2.0",
        "method": "window/showMessage",
        "params": { "type": 1, "message": message },
    }))
    .unwrap_or_default();
    Frame {
        head: format!("Content-Length: {}\r\n\r\n", body.len()).into_bytes(),
        body,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::TcpListener;

    #[test]
    fn server_urls() {
        let a = DaemonAddr::parse("http://127.0.0.1:8765").unwrap();
        assert_eq!(a.authority, "127.0.0.1:8765");
        assert_eq!(a.prefix, "");
        let a = DaemonAddr::parse("http://localhost/lexalign/").unwrap();
        assert_eq!(a.authority, "localhost:80");
        assert_eq!(a.prefix, "/lexalign");
        assert_eq!(
            DaemonAddr::parse("http://[::1]:9").unwrap().authority,
            "[::1]:9"
        );
        assert_eq!(
            DaemonAddr::parse("http://[::1]").unwrap().authority,
            "[::1]:80"
        );
        let e = DaemonAddr::parse("https://lexalign.corp").unwrap_err();
        assert!(e.to_string().contains("plain http://"), "{e}");
        assert!(DaemonAddr::parse("127.0.0.1:8765").is_err());
    }

    fn frame(body: &str) -> Vec<u8> {
        format!("Content-Length: {}\r\n\r\n{body}", body.len()).into_bytes()
    }

    /// A stand-in daemon: checks the upgrade request, answers `reply`, then
    /// runs `session` on the socket.
    async fn fake_daemon<F, Fut>(
        reply: &'static str,
        session: F,
    ) -> (String, tokio::task::JoinHandle<String>)
    where
        F: FnOnce(TcpStream) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = ()> + Send,
    {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let task = tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut head = Vec::new();
            let mut b = [0u8; 1];
            while !head.ends_with(b"\r\n\r\n") {
                s.read_exact(&mut b).await.unwrap();
                head.push(b[0]);
            }
            s.write_all(reply.as_bytes()).await.unwrap();
            session(s).await;
            String::from_utf8(head).unwrap()
        });
        (url, task)
    }

    #[tokio::test]
    async fn bridges_frames_both_ways_and_ends_on_exit() {
        let (url, daemon) = fake_daemon(
            "HTTP/1.1 101 Switching Protocols\r\nConnection: upgrade\r\nUpgrade: lex-align-lsp\r\n\r\n",
            |mut s| async move {
                // Echo every byte back until the client's `exit` arrives, then close.
                let mut seen = Vec::new();
                let mut buf = [0u8; 4096];
                loop {
                    let n = s.read(&mut buf).await.unwrap();
                    seen.extend_from_slice(&buf[..n]);
                    s.write_all(&buf[..n]).await.unwrap();
                    if n == 0 || String::from_utf8_lossy(&seen).contains("\"exit\"") {
                        return;
                    }
                }
            },
        )
        .await;
        let mut input = frame(r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{}}"#);
        input.extend(frame(r#"{"jsonrpc":"2.0","method":"exit"}"#));
        let expected = input.clone();
        // The editor keeps its stdin open: the session must end on `exit` alone.
        let (mut editor, bridge_in) = tokio::io::duplex(1 << 16);
        editor.write_all(&input).await.unwrap();
        let mut out = Vec::new();
        bridge(&url, Some("demo"), bridge_in, &mut out)
            .await
            .unwrap();
        assert_eq!(out, expected);
        let head = daemon.await.unwrap();
        assert!(head.starts_with("GET /api/v1/lsp HTTP/1.1\r\n"), "{head}");
        assert!(head.contains("\r\nUpgrade: lex-align-lsp\r\n"), "{head}");
        assert!(head.contains("\r\nConnection: Upgrade\r\n"), "{head}");
        assert!(head.contains("\r\nX-LexAlign-Project: demo\r\n"), "{head}");
        drop(editor);
    }

    #[tokio::test]
    async fn a_daemon_that_dies_mid_session_is_an_error_not_a_hang() {
        let (url, daemon) = fake_daemon(
            "HTTP/1.1 101 Switching Protocols\r\nConnection: upgrade\r\nUpgrade: lex-align-lsp\r\n\r\n",
            |mut s| async move {
                let mut buf = [0u8; 64];
                let _ = s.read(&mut buf).await.unwrap();
                // Dies without a word.
            },
        )
        .await;
        let (mut editor, bridge_in) = tokio::io::duplex(1 << 16);
        editor
            .write_all(&frame(
                r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{}}"#,
            ))
            .await
            .unwrap();
        let mut out = Vec::new();
        let e = bridge(&url, None, bridge_in, &mut out).await.unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::ConnectionAborted);
        assert!(e.to_string().contains("lost the lex-align daemon"), "{e}");
        // The editor is told, as a framed window/showMessage error.
        let out = String::from_utf8(out).unwrap();
        let (head, body) = out.split_once("\r\n\r\n").unwrap();
        assert_eq!(head, format!("Content-Length: {}", body.len()));
        let note: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(note["method"], "window/showMessage");
        assert_eq!(note["params"]["type"], 1);
        assert!(note["params"]["message"]
            .as_str()
            .unwrap()
            .starts_with("lex-align: lost the lex-align daemon"));
        assert!(e.to_string().contains("Restart the language server"), "{e}");
        let head = daemon.await.unwrap();
        assert!(!head.contains("X-LexAlign-Project"), "{head}");
        drop(editor);
    }

    #[tokio::test]
    async fn a_refused_upgrade_reports_the_status_and_detail() {
        let (url, _daemon) = fake_daemon(
            "HTTP/1.1 404 Not Found\r\nContent-Type: application/json\r\nContent-Length: 22\r\n\r\n{\"detail\":\"Not Found\"}",
            |_s| async move {},
        )
        .await;
        let e = connect(&url, None).await.unwrap_err();
        let m = e.to_string();
        assert!(m.contains("HTTP 404"), "{m}");
        assert!(m.contains("predates LSP support"), "{m}");
        assert!(m.ends_with(": Not Found"), "{m}");
    }

    #[tokio::test]
    async fn nothing_listening_is_a_connection_error() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        drop(listener);
        let e = connect(&url, None).await.unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::ConnectionRefused);
        assert!(
            e.to_string().contains("cannot reach the lex-align daemon"),
            "{e}"
        );
    }
}
