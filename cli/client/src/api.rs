//! Blocking HTTP client for the daemon's v1 API, with the original client's
//! headers and error mapping, the batch endpoint, and autostart of a local
//! daemon that is not running.

use std::cell::Cell;
use std::fmt;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::config::Config;
use crate::verdict::Verdict;

/// Who is calling: sent as `X-LexAlign-Agent-*` headers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AgentId {
    pub model: Option<String>,
    pub version: Option<String>,
}

impl AgentId {
    /// CLI flag, else `LEXALIGN_AGENT_MODEL` / `LEXALIGN_AGENT_VERSION`.
    pub fn from_flags(model: Option<String>, version: Option<String>) -> AgentId {
        let env = |k: &str| std::env::var(k).ok().filter(|v| !v.trim().is_empty());
        AgentId {
            model: model.or_else(|| env("LEXALIGN_AGENT_MODEL")),
            version: version.or_else(|| env("LEXALIGN_AGENT_VERSION")),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum ApiError {
    /// Nothing answered (or not in time). `class` mirrors the original's
    /// exception names (`ConnectError`, `ReadTimeout`) used in messages.
    Unreachable { class: String, message: String },
    /// The server answered with a non-success status.
    Server { status: u16, detail: String },
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ApiError::Unreachable { message, .. } => f.write_str(message),
            ApiError::Server { status, detail } => write!(f, "{status}: {detail}"),
        }
    }
}

impl ApiError {
    pub fn is_unreachable(&self) -> bool {
        matches!(self, ApiError::Unreachable { .. })
    }

    pub fn class(&self) -> &str {
        match self {
            ApiError::Unreachable { class, .. } => class,
            ApiError::Server { .. } => "ServerError",
        }
    }
}

/// One thing to evaluate.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct EvalItem {
    pub package: String,
    pub version: Option<String>,
    pub requirement: Option<String>,
}

impl EvalItem {
    fn to_json(&self) -> Value {
        let mut m = serde_json::Map::new();
        m.insert("package".into(), json!(self.package));
        if let Some(v) = &self.version {
            m.insert("version".into(), json!(v));
        }
        if let Some(r) = &self.requirement {
            m.insert("requirement".into(), json!(r));
        }
        Value::Object(m)
    }
}

pub struct Api {
    base: String,
    project: String,
    token: Option<String>,
    pub agent: AgentId,
    http: ureq::Agent,
    timeout: Duration,
    /// Whether this process may start a local daemon (once).
    autostart: Cell<bool>,
    /// What autostart did, for messages.
    autostart_note: std::cell::RefCell<Option<String>>,
}

impl Api {
    pub fn new(config: &Config, agent: AgentId, timeout: Duration) -> Api {
        let mut builder = ureq::AgentBuilder::new()
            .timeout_connect(timeout.min(Duration::from_secs(2)))
            .timeout(timeout)
            .redirects(0);
        if config.server_url.starts_with("https://") {
            builder = builder.tls_config(native_tls_config());
        }
        let http = builder.build();
        Api {
            base: config.server_url.trim_end_matches('/').to_string(),
            project: config.project.clone(),
            token: config.token(),
            agent,
            http,
            timeout,
            autostart: Cell::new(autostart_allowed()),
            autostart_note: Default::default(),
        }
    }

    pub fn server_url(&self) -> &str {
        &self.base
    }

    /// A note on what autostart did (started the daemon, or why not).
    pub fn autostart_note(&self) -> Option<String> {
        self.autostart_note.borrow().clone()
    }

    fn request(&self, method: &str, path: &str, with_identity: bool) -> ureq::Request {
        let mut r = self
            .http
            .request(method, &format!("{}{}", self.base, path))
            .set("X-LexAlign-Project", &self.project);
        // Every route of a daemon with authentication on needs it (health
        // answers more with it).
        if let Some(t) = &self.token {
            r = r.set("Authorization", &format!("Bearer {t}"));
        }
        if with_identity {
            if let Some(m) = &self.agent.model {
                r = r.set("X-LexAlign-Agent-Model", m);
            }
            if let Some(v) = &self.agent.version {
                r = r.set("X-LexAlign-Agent-Version", v);
            }
        }
        r
    }

    /// Sends a request; on a refused local connection starts the daemon and retries once.
    fn send(
        &self,
        method: &str,
        path: &str,
        query: &[(&str, &str)],
        body: Option<&Value>,
        with_identity: bool,
    ) -> Result<(u16, String), ApiError> {
        let attempt = || {
            let mut r = self.request(method, path, with_identity);
            for (k, v) in query {
                r = r.query(k, v);
            }
            let result = match body {
                Some(b) => r
                    .set("Content-Type", "application/json")
                    .send_string(&b.to_string()),
                None => r.call(),
            };
            match result {
                Ok(resp) => {
                    let status = resp.status();
                    let text = resp.into_string().map_err(|e| transport_io(&e))?;
                    Ok((status, text))
                }
                Err(ureq::Error::Status(status, resp)) => {
                    Ok((status, resp.into_string().unwrap_or_default()))
                }
                Err(ureq::Error::Transport(t)) => Err(self.transport(&t)),
            }
        };
        match attempt() {
            Err(e) if e.is_unreachable() && self.autostart.replace(false) => {
                match self.start_local_daemon() {
                    Ok(()) => attempt(),
                    Err(note) => {
                        let (class, message) = match &e {
                            ApiError::Unreachable { class, message } => {
                                (class.clone(), format!("{message}; {note}"))
                            }
                            ApiError::Server { .. } => unreachable!(),
                        };
                        Err(ApiError::Unreachable { class, message })
                    }
                }
            }
            other => other,
        }
    }

    fn transport(&self, t: &ureq::Transport) -> ApiError {
        let class = match t.kind() {
            ureq::ErrorKind::ConnectionFailed | ureq::ErrorKind::Dns => "ConnectError",
            ureq::ErrorKind::Io => {
                if t.to_string().contains("timed out") {
                    "ReadTimeout"
                } else {
                    "ReadError"
                }
            }
            _ => "TransportError",
        };
        let mut message = format!("cannot reach {}: {t}", self.base);
        if local_address(&self.base).is_none() {
            message.push_str(
                " (server_url points at another machine: lex-align does not start remote servers; check that it is up and reachable)",
            );
        }
        ApiError::Unreachable {
            class: class.into(),
            message,
        }
    }

    fn json_ok(&self, (status, text): (u16, String), ok: &[u16]) -> Result<Value, ApiError> {
        if !ok.contains(&status) {
            return Err(server_error(status, &text));
        }
        serde_json::from_str(&text).map_err(|e| ApiError::Server {
            status,
            detail: format!("invalid JSON from server: {e}"),
        })
    }

    /// `GET /api/v1/evaluate`.
    pub fn evaluate(&self, item: &EvalItem) -> Result<Verdict, ApiError> {
        let mut q = vec![("package", item.package.as_str())];
        if let Some(v) = item.version.as_deref().filter(|v| !v.is_empty()) {
            q.push(("version", v));
        }
        if let Some(r) = &item.requirement {
            q.push(("requirement", r));
        }
        let v = self.json_ok(
            self.send("GET", "/api/v1/evaluate", &q, None, true)?,
            &[200],
        )?;
        serde_json::from_value(v).map_err(|e| ApiError::Server {
            status: 200,
            detail: format!("unexpected verdict shape: {e}"),
        })
    }

    /// `GET /api/v1/evaluate?envelope=dsse`: the signed verdict, as the
    /// daemon sent it (a DSSE envelope, JSON text).
    pub fn evaluate_envelope(&self, item: &EvalItem) -> Result<String, ApiError> {
        let mut q = vec![("package", item.package.as_str()), ("envelope", "dsse")];
        if let Some(v) = item.version.as_deref().filter(|v| !v.is_empty()) {
            q.push(("version", v));
        }
        if let Some(r) = &item.requirement {
            q.push(("requirement", r));
        }
        let (status, text) = self.send("GET", "/api/v1/evaluate", &q, None, true)?;
        if status != 200 {
            return Err(server_error(status, &text));
        }
        Ok(text)
    }

    /// `POST /api/v1/evaluate/batch`, in input order; an item the server
    /// rejects is `Err(message)`. Falls back to one request per item on a
    /// server without the batch route (the original Python server).
    pub fn evaluate_batch(
        &self,
        items: &[EvalItem],
    ) -> Result<Vec<Result<Verdict, String>>, ApiError> {
        if items.is_empty() {
            return Ok(Vec::new());
        }
        let body = json!({ "packages": items.iter().map(EvalItem::to_json).collect::<Vec<_>>() });
        let (status, text) = self.send("POST", "/api/v1/evaluate/batch", &[], Some(&body), true)?;
        if status == 404 || status == 405 {
            return items
                .iter()
                .map(|i| match self.evaluate(i) {
                    Ok(v) => Ok(Ok(v)),
                    Err(ApiError::Server { status, detail }) if (400..500).contains(&status) => {
                        Ok(Err(detail))
                    }
                    Err(e) => Err(e),
                })
                .collect();
        }
        let mut v = self.json_ok((status, text), &[200])?;
        // Owned, not cloned: 40 verdicts with their advisories add up.
        let Some(Value::Array(results)) = v.get_mut("results").map(Value::take) else {
            return Err(ApiError::Server {
                status,
                detail: "batch response has no `results` list".into(),
            });
        };
        if results.len() != items.len() {
            return Err(ApiError::Server {
                status,
                detail: format!(
                    "batch answered {} results for {} items",
                    results.len(),
                    items.len()
                ),
            });
        }
        Ok(results
            .into_iter()
            .map(|r| {
                if r.get("verdict").is_some() {
                    serde_json::from_value(r).map_err(|e| e.to_string())
                } else {
                    Err(r
                        .pointer("/error/message")
                        .and_then(Value::as_str)
                        .map(str::to_string)
                        .unwrap_or_else(|| r.to_string()))
                }
            })
            .collect())
    }

    /// `POST /api/v1/approval-requests`.
    pub fn request_approval(&self, package: &str, rationale: &str) -> Result<Value, ApiError> {
        let body = json!({"package": package, "rationale": rationale});
        let r = self.send("POST", "/api/v1/approval-requests", &[], Some(&body), true)?;
        self.json_ok(r, &[200, 201, 202])
    }

    pub fn health(&self) -> Result<Value, ApiError> {
        let r = self.send("GET", "/api/v1/health", &[], None, false)?;
        self.json_ok(r, &[200])
    }

    /// Pending approval requests of this project.
    pub fn pending_approvals(&self) -> Result<Vec<Value>, ApiError> {
        let q = [
            ("project", self.project.as_str()),
            ("status", "PENDING_REVIEW"),
        ];
        let r = self.send("GET", "/api/v1/reports/approval-requests", &q, None, true)?;
        Ok(self
            .json_ok(r, &[200])?
            .get("items")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default())
    }

    pub fn security_report(&self) -> Result<Value, ApiError> {
        let q = [("project", self.project.as_str())];
        let r = self.send("GET", "/api/v1/reports/security", &q, None, true)?;
        self.json_ok(r, &[200])
    }

    /// Starts `<this executable> daemon` for a local `server_url` and waits
    /// for it to answer; `Err` says what happened.
    fn start_local_daemon(&self) -> Result<(), String> {
        let note = start_local_daemon(&self.base, self.timeout.min(Duration::from_secs(3)))?;
        eprintln!("[lex-align] {note}");
        *self.autostart_note.borrow_mut() = Some(note);
        Ok(())
    }
}

/// Starts `lex-align daemon` in the background for a `server_url` on this
/// machine (own process group, log in the data dir) and waits up to `wait`
/// for its health check. `Ok` carries a note for the user. Shared by the
/// client commands and `lex-align lsp`.
pub fn start_local_daemon(base: &str, wait: Duration) -> Result<String, String> {
    let base = base.trim_end_matches('/');
    let Some((host, port)) = local_address(base) else {
        return Err("server_url is not on this machine, so it was not started".into());
    };
    if !autostart_allowed() {
        return Err("LEXALIGN_NO_AUTOSTART is set: start it with `lex-align daemon`".into());
    }
    let Some(exe) = daemon_executable() else {
        return Err("start it with `lex-align daemon`".into());
    };
    let data_dir = data_dir();
    let _ = std::fs::create_dir_all(&data_dir);
    let log_path = data_dir.join("daemon.log");
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .map_err(|e| format!("cannot open {}: {e}", log_path.display()))?;
    let log2 = log.try_clone().map_err(|e| e.to_string())?;
    let mut cmd = std::process::Command::new(&exe);
    cmd.arg("daemon")
        .env("BIND_HOST", &host)
        .env("BIND_PORT", port.to_string())
        .stdin(std::process::Stdio::null())
        .stdout(log)
        .stderr(log2);
    #[cfg(unix)]
    {
        // Own process group: a Ctrl-C on the terminal, or an editor stopping
        // its language server, must not stop the daemon others share.
        use std::os::unix::process::CommandExt;
        cmd.process_group(0);
    }
    cmd.spawn()
        .map_err(|e| format!("could not start {} daemon: {e}", exe.display()))?;
    let deadline = Instant::now() + wait;
    let probe = ureq::AgentBuilder::new()
        .timeout(Duration::from_millis(300))
        .build();
    while Instant::now() < deadline {
        if probe.get(&format!("{base}/api/v1/health")).call().is_ok() {
            return Ok(format!(
                "started the local daemon on {host}:{port} (log: {})",
                log_path.display()
            ));
        }
        std::thread::sleep(Duration::from_millis(40));
    }
    Err(format!(
        "started the local daemon but it did not answer within {:.1} s (see {})",
        wait.as_secs_f64(),
        log_path.display()
    ))
}

/// rustls with the system's trust store (a company CA included), for an
/// https `server_url`; plain http never pays for loading it.
fn native_tls_config() -> std::sync::Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    let found = rustls_native_certs::load_native_certs().unwrap_or_else(|e| {
        eprintln!("[lex-align] cannot read the system's TLS certificates: {e}");
        Vec::new()
    });
    let (valid, _invalid) = roots.add_parsable_certificates(found);
    if valid == 0 {
        eprintln!("[lex-align] no usable system TLS certificates: https requests will fail");
    }
    let config = rustls::ClientConfig::builder_with_provider(
        rustls::crypto::ring::default_provider().into(),
    )
    .with_protocol_versions(&[&rustls::version::TLS12, &rustls::version::TLS13])
    .expect("the ring provider supports TLS 1.2 and 1.3")
    .with_root_certificates(roots)
    .with_no_client_auth();
    std::sync::Arc::new(config)
}

fn transport_io(e: &std::io::Error) -> ApiError {
    ApiError::Unreachable {
        class: "ReadError".into(),
        message: format!("reading the response failed: {e}"),
    }
}

/// `detail` from a JSON error body, else the first 200 characters.
fn server_error(status: u16, text: &str) -> ApiError {
    let detail = serde_json::from_str::<Value>(text)
        .ok()
        .and_then(|v| v.get("detail").cloned())
        .map(|d| match d {
            Value::String(s) => s,
            other => other.to_string(),
        })
        .unwrap_or_else(|| text.chars().take(200).collect());
    ApiError::Server { status, detail }
}

/// Host and port of an `http://` URL on this machine.
pub fn local_address(url: &str) -> Option<(String, u16)> {
    let rest = url.strip_prefix("http://")?;
    let authority = rest.split('/').next()?;
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(']') || authority.starts_with('[') => (h, p.parse().ok()?),
        _ => (authority, 80),
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    matches!(host, "127.0.0.1" | "localhost" | "::1" | "0.0.0.0").then(|| (host.to_string(), port))
}

pub fn autostart_allowed() -> bool {
    !matches!(
        std::env::var("LEXALIGN_NO_AUTOSTART").as_deref(),
        Ok("1") | Ok("true") | Ok("yes")
    )
}

/// The binary that has a `daemon` command: `LEXALIGN_DAEMON_EXE`, else this
/// executable when it is lex-align (never a test harness or another host).
fn daemon_executable() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("LEXALIGN_DAEMON_EXE") {
        return Some(PathBuf::from(p));
    }
    let exe = std::env::current_exe().ok()?;
    let name = exe.file_name()?.to_string_lossy().to_string();
    if name.starts_with("lex-align-client") {
        // The standalone client binary has no daemon: use `lex-align` beside it or on PATH.
        let sibling = exe.with_file_name("lex-align");
        if sibling.is_file() {
            return Some(sibling);
        }
        return std::env::var_os("PATH").and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|d| d.join("lex-align"))
                .find(|p| p.is_file())
        });
    }
    name.starts_with("lex-align").then_some(exe)
}

/// The daemon's data directory (where its log goes).
pub fn data_dir() -> PathBuf {
    match std::env::var_os("LEXALIGN_DATA_DIR").filter(|v| !v.is_empty()) {
        Some(d) => PathBuf::from(d),
        None => std::env::var_os("HOME")
            .map(|h| PathBuf::from(h).join(".lexalign"))
            .unwrap_or_else(|| PathBuf::from(".lexalign")),
    }
}

/// The background CVE re-scan from a health answer's `cve_scan` (absent
/// from older daemons): a summary line (last scan, packages, open alerts,
/// error), then one line per open alert.
pub fn cve_scan_lines(health: &Value) -> Vec<String> {
    let Some(scan) = health.get("cve_scan") else {
        return Vec::new();
    };
    let s = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).map(str::to_string);
    let n = |k: &str| scan.get(k).and_then(Value::as_u64).unwrap_or(0);
    let mut out = Vec::new();
    if scan.get("enabled").and_then(Value::as_bool) != Some(true) {
        out.push("CVE re-scan: disabled (LEXALIGN_CVE_SCAN_INTERVAL_HOURS=0)".to_string());
    } else {
        let mut line = match s(scan, "last_scan_at") {
            Some(at) => format!(
                "CVE re-scan: last {at}, {} packages / {} versions checked, {} open alerts",
                n("packages_scanned"),
                n("versions_scanned"),
                n("open_alerts")
            ),
            None => format!("CVE re-scan: not run yet, {} open alerts", n("open_alerts")),
        };
        if let Some(e) = s(scan, "last_error") {
            line.push_str(&format!("; last error: {e}"));
        }
        out.push(line);
    }
    let alerts = scan
        .get("alerts")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    const SHOWN: usize = 10;
    for a in alerts.iter().take(SHOWN) {
        let ids: Vec<String> = a
            .get("advisories")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|i| i.as_str().map(str::to_string))
            .collect();
        let cvss = a
            .get("max_cvss")
            .and_then(Value::as_f64)
            .map(|c| format!(" (CVSS {c})"))
            .unwrap_or_default();
        out.push(format!(
            "CVE alert: {} {}: {}{cvss}",
            s(a, "package").unwrap_or_default(),
            s(a, "version").unwrap_or_default(),
            ids.join(", ")
        ));
    }
    let open = n("open_alerts") as usize;
    if open > SHOWN {
        out.push(format!("CVE alert: ... and {} more", open - SHOWN));
    }
    out
}

/// One line per override or registry exception that lapses within a week,
/// from a health answer's `lapsing_soon` (absent from older daemons).
pub fn lapsing_soon(health: &Value) -> Vec<String> {
    let s = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).map(str::to_string);
    let mut out = Vec::new();
    let list = |k: &str| {
        health
            .pointer(&format!("/lapsing_soon/{k}"))
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
    };
    for o in list("overrides") {
        out.push(format!(
            "override {} for {}{} lapses {} (approved by {}); after that it is judged normally",
            s(&o, "id").unwrap_or_default(),
            s(&o, "package").unwrap_or_default(),
            s(&o, "version")
                .map(|v| format!("=={v}"))
                .unwrap_or_default(),
            s(&o, "expires_at").unwrap_or_default(),
            s(&o, "approver").unwrap_or_default(),
        ));
    }
    for e in list("exceptions") {
        out.push(format!(
            "registry rule for {} ({}{}) lapses {}; after that it is judged as unlisted",
            s(&e, "package").unwrap_or_default(),
            s(&e, "status").unwrap_or_default(),
            s(&e, "owner")
                .map(|o| format!(", owner {o}"))
                .unwrap_or_default(),
            s(&e, "expires").unwrap_or_default(),
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_addresses() {
        assert_eq!(
            local_address("http://127.0.0.1:8765"),
            Some(("127.0.0.1".into(), 8765))
        );
        assert_eq!(
            local_address("http://localhost/x"),
            Some(("localhost".into(), 80))
        );
        assert_eq!(local_address("http://[::1]:9"), Some(("::1".into(), 9)));
        assert_eq!(local_address("http://lexalign.corp:8765"), None);
        assert_eq!(local_address("https://127.0.0.1:8765"), None);
    }

    #[test]
    fn server_errors_use_detail() {
        assert_eq!(
            server_error(409, r#"{"detail":"pyqt5 is banned"}"#),
            ApiError::Server {
                status: 409,
                detail: "pyqt5 is banned".into()
            }
        );
        let long = "x".repeat(500);
        match server_error(500, &long) {
            ApiError::Server { detail, .. } => assert_eq!(detail.len(), 200),
            other => panic!("{other:?}"),
        }
    }
}
