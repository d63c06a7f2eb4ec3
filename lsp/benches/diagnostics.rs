//! LSP benchmarks against a real daemon over the real transport.
//!
//! `cargo bench -p lex-align-lsp --bench diagnostics [-- --daemon-bin PATH]`
//!
//! The daemon is `build_app` on 127.0.0.1 with the fake index (the fixture
//! projects plus synthetic ones) and the fake OSV server fed with the PyPA
//! snapshot. A bench client connects with `GET /api/v1/lsp` +
//! `Upgrade: lex-align-lsp` and speaks JSON-RPC, announcing what VS Code
//! announces (work-done progress, configuration, versioned diagnostics).
//!
//! (a) warm: a 100-dependency pyproject.toml is open and judged; each
//!     `didChange` edits one requirement to text never seen before; the
//!     time to the change's final publishDiagnostics, raw and minus the
//!     debounce window.
//! (b) cold: a fresh daemon (empty caches) with 50 ms upstream latency;
//!     `didOpen` of the same file to its final diagnostics.
//! (c) memory: VmRSS of a `lex-align daemon` child process (when the
//!     release binary exists) idle and with 50 open documents; otherwise the
//!     growth of this process.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use lex_align_daemon::{build_app, AppHandle, Config};
use lex_align_fakes::{pypa_snapshot_dir, FakeIndex, FakeOsv, FakeProject, FakeRelease};
use lex_align_upstream::{IndexKind, IndexSetting};
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::TcpStream;
use tokio::sync::mpsc;

/// The shared registry with PSF-2.0 allowed and an approved `click`.
fn registry_yaml() -> String {
    lex_align_fakes::fixtures::registry()
        .version("1")
        .policy(
            "auto_approve_licenses",
            "[MIT, Apache-2.0, BSD-3-Clause, BSD-2-Clause, ISC, PSF-2.0]",
        )
        .policy("hard_ban_licenses", "[AGPL-3.0, GPL-3.0]")
        .package("click", "status: approved\nreason: CLI toolkit.")
        .yaml()
}

/// Debounce the server uses (its default; also sent explicitly).
const DEBOUNCE_MS: u64 = 150;
const WARM_ROUNDS: usize = 40;
const COLD_ROUNDS: usize = 5;
const OPEN_DOCS: usize = 50;
/// Upper bound on any wait: a bug shows as an error, not a hang.
const WAIT: Duration = Duration::from_secs(60);

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

// ---------------------------------------------------------------- upstreams

/// The fake index with 100 distinct projects: the fixture set plus
/// synthetic MIT-licensed ones.
fn upstreams() -> (FakeIndex, FakeOsv, Vec<String>) {
    let index = FakeIndex::start();
    let osv = FakeOsv::start(&pypa_snapshot_dir());
    let mut names = index.project_names();
    names.sort();
    let mut i = 0;
    while names.len() < 100 {
        let name = format!("benchpkg-{i:02}");
        index.add_project(
            FakeProject::new(name.clone())
                .release(FakeRelease::new("1.0.0").license_expression("MIT"))
                .release(FakeRelease::new("1.2.0").license_expression("MIT")),
        );
        names.push(name);
        i += 1;
    }
    names.truncate(100);
    (index, osv, names)
}

/// A pyproject.toml with one requirement per name; `edit` appends a
/// never-seen exclusion to the first one, so its verdict is not cached.
fn pyproject(names: &[String], edit: Option<usize>) -> String {
    let mut s =
        String::from("[project]\nname = \"bench\"\nversion = \"0.1.0\"\ndependencies = [\n");
    for (i, n) in names.iter().enumerate() {
        let spec = match (i, edit) {
            (0, Some(e)) => format!(">=0.1,!=0.0.{e}"),
            _ if i % 3 == 0 => ">=0.1".to_string(),
            _ => String::new(),
        };
        s.push_str(&format!("    \"{n}{spec}\",\n"));
    }
    s.push_str("]\n");
    s
}

// ------------------------------------------------------------------ daemon

struct InProcess {
    base: String,
    _dir: tempfile::TempDir,
    _handle: AppHandle,
    task: tokio::task::JoinHandle<()>,
}

impl InProcess {
    async fn start(index: &FakeIndex, osv: &FakeOsv) -> Result<InProcess> {
        let dir = tempfile::tempdir()?;
        let registry = dir.path().join("registry.yml");
        std::fs::write(&registry, registry_yaml())?;
        let mut config = Config::new(dir.path().join("data"));
        config.registry_path = Some(registry);
        config.index = Some(IndexSetting {
            url: index.json_url(),
            kind: IndexKind::Json,
            source: "bench".into(),
        });
        config.osv_url = Some(osv.url());
        let (router, handle) = build_app(config).await?;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        Ok(InProcess {
            base: format!("http://{addr}"),
            _dir: dir,
            _handle: handle,
            task,
        })
    }
}

impl Drop for InProcess {
    fn drop(&mut self) {
        self.task.abort();
    }
}

struct Child {
    base: String,
    child: std::process::Child,
    _dir: tempfile::TempDir,
}

impl Child {
    fn start(bin: &PathBuf, index: &FakeIndex, osv: &FakeOsv) -> Result<Child> {
        let dir = tempfile::tempdir()?;
        let registry = dir.path().join("registry.yml");
        std::fs::write(&registry, registry_yaml())?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let child = std::process::Command::new(bin)
            .arg("daemon")
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", dir.path())
            .env("LEXALIGN_DATA_DIR", dir.path().join("data"))
            .env("DATABASE_PATH", dir.path().join("audit.db"))
            .env("REGISTRY_PATH", &registry)
            .env("LEXALIGN_INDEX_URL", index.json_url())
            .env("LEXALIGN_OSV_URL", osv.url())
            .env("BIND_HOST", "127.0.0.1")
            .env("BIND_PORT", port.to_string())
            .env("RUST_LOG", "warn")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()?;
        Ok(Child {
            base: format!("http://127.0.0.1:{port}"),
            child,
            _dir: dir,
        })
    }

    async fn wait_ready(&self) -> Result<()> {
        let start = Instant::now();
        let authority = self.base.trim_start_matches("http://").to_string();
        loop {
            if let Ok(mut s) = TcpStream::connect(&authority).await {
                s.write_all(
                    format!("GET /api/v1/health HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\n\r\n")
                        .as_bytes(),
                )
                .await?;
                let mut head = Vec::new();
                s.read_to_end(&mut head).await?;
                if head.starts_with(b"HTTP/1.1 200") {
                    return Ok(());
                }
            }
            if start.elapsed() > Duration::from_secs(20) {
                return Err("the daemon did not answer within 20 s".into());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn rss_kb(&self) -> Option<u64> {
        rss_kb_of(&format!("/proc/{}/status", self.child.id()))
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn rss_kb_of(path: &str) -> Option<u64> {
    std::fs::read_to_string(path)
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
}

// ------------------------------------------------------------------ client

/// A message from the server with the moment it was read off the socket.
type Timed = (Instant, Value);

struct Session {
    /// Frames to write, in order: ours and the answers to the server's requests.
    out: mpsc::UnboundedSender<Value>,
    incoming: mpsc::UnboundedReceiver<Timed>,
    next_id: i64,
}

async fn write_frame(w: &mut OwnedWriteHalf, msg: &Value) -> std::io::Result<()> {
    let body = serde_json::to_vec(msg)?;
    w.write_all(format!("Content-Length: {}\r\n\r\n", body.len()).as_bytes())
        .await?;
    w.write_all(&body).await?;
    w.flush().await
}

impl Session {
    async fn connect(base: &str) -> Result<Session> {
        let authority = base.trim_start_matches("http://");
        let mut s = TcpStream::connect(authority).await?;
        s.set_nodelay(true)?;
        s.write_all(
            format!(
                "GET /api/v1/lsp HTTP/1.1\r\nHost: {authority}\r\nConnection: Upgrade\r\n\
                 Upgrade: lex-align-lsp\r\nX-LexAlign-Project: bench\r\n\r\n"
            )
            .as_bytes(),
        )
        .await?;
        // Byte by byte so no session bytes are swallowed with the head.
        let mut head = Vec::new();
        let mut b = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            if s.read(&mut b).await? == 0 {
                return Err("closed during the upgrade".into());
            }
            head.push(b[0]);
        }
        if !head.starts_with(b"HTTP/1.1 101") {
            return Err(format!("upgrade refused: {}", String::from_utf8_lossy(&head)).into());
        }
        let (read, mut writer) = s.into_split();
        let (out, mut out_rx) = mpsc::unbounded_channel::<Value>();
        tokio::spawn(async move {
            while let Some(msg) = out_rx.recv().await {
                if write_frame(&mut writer, &msg).await.is_err() {
                    return;
                }
            }
        });
        let (tx, incoming) = mpsc::unbounded_channel();
        let replies = out.clone();
        tokio::spawn(async move {
            let mut r = BufReader::new(read);
            loop {
                let mut len = None;
                loop {
                    let mut line = String::new();
                    match r.read_line(&mut line).await {
                        Ok(0) | Err(_) => return,
                        Ok(_) => {}
                    }
                    let line = line.trim_end();
                    if line.is_empty() {
                        break;
                    }
                    if let Some(v) = line.strip_prefix("Content-Length:") {
                        len = v.trim().parse::<usize>().ok();
                    }
                }
                let Some(len) = len else { return };
                let mut body = vec![0; len];
                if r.read_exact(&mut body).await.is_err() {
                    return;
                }
                let at = Instant::now();
                let Ok(msg) = serde_json::from_slice::<Value>(&body) else {
                    return;
                };
                // Answer the server's requests as an editor would.
                if let (Some(id), Some(method)) = (msg.get("id"), msg.get("method")) {
                    let result = if method == "workspace/configuration" {
                        json!([{ "debounceMs": DEBOUNCE_MS }])
                    } else {
                        Value::Null
                    };
                    let _ = replies.send(json!({"jsonrpc": "2.0", "id": id, "result": result}));
                }
                if tx.send((at, msg)).is_err() {
                    return;
                }
            }
        });
        let mut session = Session {
            out,
            incoming,
            next_id: 1,
        };
        let init = session
            .request(
                "initialize",
                json!({
                    "processId": null,
                    "rootUri": null,
                    "initializationOptions": { "debounceMs": DEBOUNCE_MS },
                    "capabilities": {
                        "window": { "workDoneProgress": true },
                        "workspace": { "configuration": true },
                        "textDocument": { "publishDiagnostics": { "versionSupport": true } }
                    }
                }),
            )
            .await?;
        if init.get("capabilities").is_none() {
            return Err(format!("bad initialize answer {init}").into());
        }
        session.notify("initialized", json!({})).await?;
        Ok(session)
    }

    async fn notify(&mut self, method: &str, params: Value) -> Result<()> {
        self.out
            .send(json!({"jsonrpc": "2.0", "method": method, "params": params}))
            .map_err(|_| "the session writer stopped".into())
    }

    async fn request(&mut self, method: &str, params: Value) -> Result<Value> {
        let id = self.next_id;
        self.next_id += 1;
        self.out
            .send(json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}))
            .map_err(|_| "the session writer stopped")?;
        loop {
            let (_, msg) = tokio::time::timeout(WAIT, self.incoming.recv())
                .await?
                .ok_or("the daemon closed the session")?;
            if msg.get("id") == Some(&json!(id)) && msg.get("method").is_none() {
                return Ok(msg["result"].clone());
            }
        }
    }

    /// Waits for the `n`th publishDiagnostics of (`uri`, `version`) from
    /// now and returns when it arrived and its diagnostics.
    async fn publish(&mut self, uri: &str, version: i64, n: usize) -> Result<(Instant, Value)> {
        let mut seen = 0;
        loop {
            let (at, msg) = tokio::time::timeout(WAIT, self.incoming.recv())
                .await?
                .ok_or("the daemon closed the session")?;
            if std::env::var_os("BENCH_DEBUG").is_some_and(|v| !v.is_empty()) {
                eprintln!(
                    "<- {} v{} n={}",
                    msg["method"],
                    msg["params"]["version"],
                    msg["params"]["diagnostics"].as_array().map_or(0, Vec::len)
                );
            }
            if msg["method"] == "textDocument/publishDiagnostics"
                && msg["params"]["uri"] == uri
                && msg["params"]["version"] == version
            {
                seen += 1;
                if seen == n {
                    return Ok((at, msg["params"]["diagnostics"].clone()));
                }
            }
        }
    }
}

fn open_params(uri: &str, text: &str) -> Value {
    json!({"textDocument": {"uri": uri, "languageId": "toml", "version": 1, "text": text}})
}

/// Opens `text` and waits for its judged diagnostics (the second publish
/// of version 1: the first is the registry-only one).
async fn open_judged(s: &mut Session, uri: &str, text: &str) -> Result<(Instant, Instant, Value)> {
    let sent = Instant::now();
    s.notify("textDocument/didOpen", open_params(uri, text))
        .await?;
    let (at, diags) = s.publish(uri, 1, 2).await?;
    Ok((sent, at, diags))
}

// ------------------------------------------------------------------ figures

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn stats(mut v: Vec<f64>) -> String {
    v.sort_by(f64::total_cmp);
    let pick = |q: f64| v[((v.len() - 1) as f64 * q).round() as usize];
    format!(
        "median {:.1} ms, p90 {:.1} ms, min {:.1} ms, max {:.1} ms (n={})",
        pick(0.5),
        pick(0.9),
        v[0],
        v[v.len() - 1],
        v.len()
    )
}

fn counts(diags: &Value) -> String {
    let mut by_code = std::collections::BTreeMap::<String, usize>::new();
    for d in diags.as_array().into_iter().flatten() {
        *by_code
            .entry(d["code"].as_str().unwrap_or("?").to_string())
            .or_default() += 1;
    }
    by_code
        .iter()
        .map(|(k, v)| format!("{k}×{v}"))
        .collect::<Vec<_>>()
        .join(", ")
}

// -------------------------------------------------------------------- runs

async fn warm(index: &FakeIndex, osv: &FakeOsv, names: &[String]) -> Result<()> {
    index.set_latency(Duration::ZERO);
    osv.set_latency(Duration::ZERO);
    let daemon = InProcess::start(index, osv).await?;
    let mut s = Session::connect(&daemon.base).await?;
    let dir = tempfile::tempdir()?;
    let uri = format!("file://{}/pyproject.toml", dir.path().display());
    let text = pyproject(names, None);
    let (_, _, diags) = open_judged(&mut s, &uri, &text).await?;
    println!(
        "(a) 100-dependency pyproject.toml judged: {}",
        counts(&diags)
    );

    let mut raw = Vec::new();
    let mut first = Vec::new();
    for round in 0..WARM_ROUNDS {
        let version = round as i64 + 2;
        let text = pyproject(names, Some(round));
        let sent = Instant::now();
        s.notify(
            "textDocument/didChange",
            json!({"textDocument": {"uri": uri, "version": version}, "contentChanges": [{"text": text}]}),
        )
        .await?;
        let (at1, _) = s.publish(&uri, version, 1).await?;
        let (at2, diags) = s.publish(&uri, version, 1).await?;
        if diags.as_array().map_or(0, Vec::len) == 0 {
            return Err("the final publish has no diagnostics".into());
        }
        first.push(ms(at1 - sent));
        raw.push(ms(at2 - sent));
    }
    let net: Vec<f64> = raw.iter().map(|r| r - DEBOUNCE_MS as f64).collect();
    println!(
        "(a) warm didChange → registry-only publish: {}",
        stats(first)
    );
    println!("(a) warm didChange → final publish, raw:    {}", stats(raw));
    println!(
        "(a) warm didChange → final publish, net of the {DEBOUNCE_MS} ms debounce: {}",
        stats(net)
    );
    Ok(())
}

async fn cold(index: &FakeIndex, osv: &FakeOsv, names: &[String]) -> Result<()> {
    // 40 dependencies too: the size the daemon's batch target is set for,
    // and under the index concurrency bound × 3 rounds.
    cold_open(index, osv, &names[..40]).await?;
    cold_open(index, osv, names).await
}

async fn cold_open(index: &FakeIndex, osv: &FakeOsv, names: &[String]) -> Result<()> {
    let mut times = Vec::new();
    let mut last = Value::Null;
    let mut requests = (0, 0);
    for _ in 0..COLD_ROUNDS {
        index.set_latency(Duration::ZERO);
        osv.set_latency(Duration::ZERO);
        // A fresh daemon: empty memory and SQLite caches.
        let daemon = InProcess::start(index, osv).await?;
        let mut s = Session::connect(&daemon.base).await?;
        index.reset_counters();
        let osv_before = osv.requests();
        index.set_latency(Duration::from_millis(50));
        osv.set_latency(Duration::from_millis(50));
        let dir = tempfile::tempdir()?;
        let uri = format!("file://{}/pyproject.toml", dir.path().display());
        let (sent, at, diags) = open_judged(&mut s, &uri, &pyproject(names, None)).await?;
        times.push(ms(at - sent));
        last = diags;
        requests = (index.requests(), osv.requests() - osv_before);
    }
    index.set_latency(Duration::ZERO);
    osv.set_latency(Duration::ZERO);
    println!(
        "(b) cold didOpen of {} dependencies → final publish at 50 ms upstream latency: {}",
        names.len(),
        stats(times)
    );
    println!(
        "(b) diagnostics: {}; upstream requests per cold open: index {}, advisories {}",
        counts(&last),
        requests.0,
        requests.1
    );
    Ok(())
}

async fn memory(
    index: &FakeIndex,
    osv: &FakeOsv,
    names: &[String],
    bin: Option<PathBuf>,
) -> Result<()> {
    index.set_latency(Duration::ZERO);
    osv.set_latency(Duration::ZERO);
    let dir = tempfile::tempdir()?;
    let open_all = |base: String| {
        let dir = dir.path().to_path_buf();
        let names = names.to_vec();
        async move {
            let mut s = Session::connect(&base).await?;
            for d in 0..OPEN_DOCS {
                std::fs::create_dir_all(dir.join(format!("p{d}")))?;
                let uri = format!("file://{}/p{d}/pyproject.toml", dir.display());
                // Every document differs a little, as real projects do.
                open_judged(&mut s, &uri, &pyproject(&names, Some(1000 + d))).await?;
            }
            Result::Ok(s)
        }
    };
    match bin.filter(|b| b.exists()) {
        Some(bin) => {
            let child = Child::start(&bin, index, osv)?;
            child.wait_ready().await?;
            tokio::time::sleep(Duration::from_millis(500)).await;
            let idle = child.rss_kb().ok_or("no VmRSS for the daemon")?;
            let session = open_all(child.base.clone()).await?;
            tokio::time::sleep(Duration::from_millis(500)).await;
            let open = child.rss_kb().ok_or("no VmRSS for the daemon")?;
            println!(
                "(c) `{} daemon` VmRSS: idle {:.1} MB; {OPEN_DOCS} open 100-dependency documents in one session {:.1} MB (+{:.1} MB)",
                bin.display(),
                idle as f64 / 1024.0,
                open as f64 / 1024.0,
                (open as f64 - idle as f64) / 1024.0
            );
            drop(session);
        }
        None => {
            let daemon = InProcess::start(index, osv).await?;
            // Warm the daemon first, so the delta is the documents'.
            let mut warmup = Session::connect(&daemon.base).await?;
            let uri = format!("file://{}/warm/pyproject.toml", dir.path().display());
            open_judged(&mut warmup, &uri, &pyproject(names, None)).await?;
            let before = rss_kb_of("/proc/self/status").ok_or("no VmRSS")?;
            let session = open_all(daemon.base.clone()).await?;
            let after = rss_kb_of("/proc/self/status").ok_or("no VmRSS")?;
            println!(
                "(c) in-process (no release binary given): bench process VmRSS {:.1} MB → {:.1} MB with {OPEN_DOCS} open documents (+{:.1} MB)",
                before as f64 / 1024.0,
                after as f64 / 1024.0,
                (after as f64 - before as f64) / 1024.0
            );
            drop(session);
        }
    }
    Ok(())
}

fn main() -> Result<()> {
    // RUST_LOG=lex_align_lsp=debug shows the server's side of a run.
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    let mut args = std::env::args().skip(1);
    let mut bin = None;
    let mut only: Option<String> = None;
    while let Some(a) = args.next() {
        match a.as_str() {
            "--daemon-bin" => bin = args.next().map(PathBuf::from),
            "--only" => only = args.next(),
            // `cargo bench` passes `--bench`; filters are not used.
            _ => {}
        }
    }
    let bin = bin.or_else(|| {
        let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/release/lex-align");
        p.exists().then_some(p)
    });
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let (index, osv, names) = upstreams();
        let run = |name: &str| only.as_deref().is_none_or(|o| o == name);
        if run("warm") {
            warm(&index, &osv, &names).await?;
        }
        if run("cold") {
            cold(&index, &osv, &names).await?;
        }
        if run("memory") {
            memory(&index, &osv, &names, bin).await?;
        }
        Ok(())
    })
}
