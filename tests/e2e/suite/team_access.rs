//! A team daemon: `AUTH_ENABLED=true AUTH_BACKEND=apikey`, keys made with
//! `lex-align admin keys …` beside the running daemon, and every client
//! (our CLI, the original Python client in org mode, the LSP bridge)
//! sending `Authorization: Bearer $LEXALIGN_API_KEY`. Plus the refusal to
//! serve the network anonymously.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use lex_align_e2e::{free_port, wait_healthy, Cmd, Daemon, Run, Upstreams};
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

use crate::{apikey_daemon_in, create_key, daemon_cmd, lex, Key, STARTER};

/// How long the daemon may take to see a key created or revoked beside it
/// (docs/security.md: "within a second").
const PICKUP: Duration = Duration::from_secs(1);

/// The original client's executable (the same lookup as compat.rs): `None`
/// with a loud message outside CI, a failure in CI.
fn compat_client() -> Option<PathBuf> {
    match std::env::var_os("LEXALIGN_COMPAT_CLIENT").filter(|v| !v.is_empty()) {
        Some(p) => {
            let p = PathBuf::from(p);
            assert!(
                p.is_file(),
                "LEXALIGN_COMPAT_CLIENT={} does not exist",
                p.display()
            );
            Some(p)
        }
        None => {
            let in_ci = std::env::var("CI").is_ok_and(|v| v == "true" || v == "1");
            assert!(
                !in_ci,
                "CI=true but LEXALIGN_COMPAT_CLIENT is unset: run `bash .ci/run`, which installs lex-align==2.2.8"
            );
            let _ = writeln!(
                std::io::stderr(),
                "\n######## SKIPPED: original Python client in org mode against an auth daemon ########\n\
                 LEXALIGN_COMPAT_CLIENT is unset. Run `bash .ci/run`, or:\n  \
                 python3 -m venv target/compat-venv && target/compat-venv/bin/pip install lex-align==2.2.8\n  \
                 export LEXALIGN_COMPAT_CLIENT=$PWD/target/compat-venv/bin/lex-align-client\n\
                 #####################################################################################\n"
            );
            None
        }
    }
}

/// A daemon with API-key authentication on its own data directory, with
/// one agent key made before it started.
struct Team {
    _up: Upstreams,
    data: tempfile::TempDir,
    daemon: Daemon,
    first: Key,
}

impl Team {
    async fn start() -> Team {
        let data = tempfile::tempdir().unwrap();
        let up = Upstreams::start();
        let db = data.path().join("lexalign.sqlite");
        let first = create_key(data.path(), &db, "ci-before", "agent").await;
        std::fs::write(data.path().join("registry.yml"), STARTER).unwrap();
        let daemon = Daemon::start(apikey_daemon_in(data.path(), &up.env())).await;
        Team {
            _up: up,
            data,
            daemon,
            first,
        }
    }

    fn db(&self) -> PathBuf {
        self.data.path().join("lexalign.sqlite")
    }

    fn home(&self) -> &Path {
        self.data.path()
    }

    fn base(&self) -> &str {
        &self.daemon.base
    }

    /// `(requester, auth_method)` of every audit row of `project`.
    fn audit_identities(&self, project: &str) -> Vec<(String, Option<String>)> {
        let conn = rusqlite::Connection::open(self.db()).unwrap();
        let mut stmt = conn
            .prepare("SELECT requester, auth_method FROM audit_log WHERE project = ?1 ORDER BY seq")
            .unwrap();
        let rows = stmt
            .query_map([project], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .collect::<Result<Vec<_>, _>>()
            .unwrap();
        rows
    }

    /// Polls until `project` has at least one audit row (bounded).
    async fn audit_identities_eventually(&self, project: &str) -> Vec<(String, Option<String>)> {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let rows = self.audit_identities(project);
            if !rows.is_empty() || Instant::now() > deadline {
                return rows;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn verify_audit(&self) {
        let run = lex(self.home())
            .args(["audit", "verify", "--db"])
            .args([self.db().display().to_string()])
            .output()
            .await;
        run.expect_code(0);
        assert!(run.stdout.contains("hash chain OK"), "{}", run.stdout);
    }
}

/// Raw `GET /api/v1/evaluate` with an optional bearer key.
async fn evaluate(base: &str, project: &str, key: Option<&str>) -> reqwest::Response {
    let mut r = reqwest::Client::new()
        .get(format!("{base}/api/v1/evaluate"))
        .query(&[("package", "httpx")])
        .header("X-LexAlign-Project", project)
        .timeout(Duration::from_secs(5));
    if let Some(k) = key {
        r = r.bearer_auth(k);
    }
    r.send().await.unwrap()
}

/// Polls the evaluate route with `key` until it answers `want` or `within`
/// passes; returns the last status and how long it took.
async fn status_within(
    base: &str,
    key: &str,
    want: u16,
    within: Duration,
) -> (u16, Duration, String) {
    let start = Instant::now();
    loop {
        let r = evaluate(base, "poll", Some(key)).await;
        let status = r.status().as_u16();
        let body = r.text().await.unwrap_or_default();
        if status == want || start.elapsed() > within {
            return (status, start.elapsed(), body);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn git(home: &Path, dir: &Path, args: &[&str]) {
    Cmd::new("git", home)
        .args(args.iter().map(|s| s.to_string()))
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .cwd(dir)
        .output()
        .await
        .expect_code(0);
}

/// A git repository with a pyproject naming `project`.
async fn python_project(home: &Path, dir: &Path, project: &str) {
    git(home, dir, &["init", "-q", "-b", "main"]).await;
    std::fs::write(
        dir.join("pyproject.toml"),
        format!(
            "[project]\nname = \"{project}\"\nversion = \"0.1.0\"\ndependencies = [\"httpx>=0.27\"]\n"
        ),
    )
    .unwrap();
}

fn verdict(run: &Run) -> Value {
    serde_json::from_str(&run.stdout).unwrap_or_else(|e| {
        panic!(
            "not a verdict ({e}):\n--- stdout\n{}\n--- stderr\n{}",
            run.stdout, run.stderr
        )
    })
}

// ---- 1. our CLI, keys made beside the running daemon, revocation, audit --------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_keys_made_and_revoked_beside_a_running_daemon() {
    let team = Team::start().await;
    let (home, db) = (team.home().to_path_buf(), team.db());

    // A key made while the daemon runs is accepted within a second.
    let second = create_key(&home, &db, "ci-after", "agent").await;
    let (status, took, body) = status_within(team.base(), &second.key, 200, PICKUP).await;
    assert_eq!(
        status, 200,
        "a key created beside the daemon still refused after {took:?}: {body}"
    );

    // `lex-align check` in a project initialised against the daemon.
    let project = tempfile::tempdir().unwrap();
    let proj = project.path();
    python_project(&home, proj, "team-web").await;
    let init = lex(&home)
        .args(["init", "--yes", "--server-url", team.base()])
        .cwd(proj)
        .output()
        .await;
    init.expect_code(0);
    let cfg = std::fs::read_to_string(proj.join(".lexalign.toml")).unwrap();
    assert!(cfg.contains("project = \"team-web\""), "{cfg}");
    let check = |key: Option<&Key>| {
        let c = lex(&home)
            .args(["check", "--package", "click"])
            .env("LEXALIGN_NO_AUTOSTART", "1")
            .cwd(proj);
        match key {
            Some(k) => c.env("LEXALIGN_API_KEY", k.key.clone()),
            None => c,
        }
    };
    for key in [&team.first, &second] {
        let ok = check(Some(key)).output().await;
        ok.expect_code(0);
        let v = verdict(&ok);
        assert_eq!(v["verdict"], "PROVISIONALLY_ALLOWED", "{v}");
        assert_eq!(v["transport_error"], false, "{v}");
    }
    let refused = check(None).output().await;
    assert_ne!(refused.code, Some(0), "no key, yet: {}", refused.stdout);
    assert!(
        refused.stderr.contains("401") || refused.stderr.contains("credential"),
        "the refusal does not say why: {}",
        refused.stderr
    );
    assert!(
        !refused.stdout.contains("\"verdict\""),
        "a verdict without a key: {}",
        refused.stdout
    );

    // The list shows both keys, never a key itself.
    let list = || {
        lex(&home)
            .args(["admin", "keys", "list", "--json", "--db"])
            .args([db.display().to_string()])
    };
    let listed = list().output().await;
    listed.expect_code(0);
    for k in [&team.first, &second] {
        assert!(listed.stdout.contains(&k.id), "{}", listed.stdout);
        assert!(
            !listed.stdout.contains(&k.key),
            "keys list prints a key: {}",
            listed.stdout
        );
    }

    // Revoke the second key while the daemon runs: refused within a second.
    let revoke = lex(&home)
        .args(["admin", "keys", "revoke", &second.id, "--db"])
        .args([db.display().to_string()])
        .output()
        .await;
    revoke.expect_code(0);
    let (status, took, body) = status_within(team.base(), &second.key, 401, PICKUP).await;
    assert_eq!(
        status, 401,
        "the revoked key still works {took:?} after `admin keys revoke`: {body}"
    );
    let r = evaluate(team.base(), "poll", Some(&second.key)).await;
    assert_eq!(r.status(), 401);
    assert_eq!(
        r.headers()
            .get("www-authenticate")
            .and_then(|v| v.to_str().ok()),
        Some("Bearer")
    );
    let detail: Value = r.json().await.unwrap();
    assert_eq!(detail["detail"], "API key revoked.", "{detail}");
    assert!(
        !detail.to_string().contains(&second.key),
        "the 401 echoes the key: {detail}"
    );
    // The other key is unaffected, and so is our CLI with it.
    assert_eq!(
        evaluate(team.base(), "poll", Some(&team.first.key))
            .await
            .status(),
        200
    );
    let after = check(Some(&second)).output().await;
    assert_ne!(after.code, Some(0), "revoked key: {}", after.stdout);
    assert!(after.stderr.contains("401"), "{}", after.stderr);

    let listed = list().output().await;
    listed.expect_code(0);
    let keys: Value = serde_json::from_str(listed.stdout.trim()).unwrap();
    let revoked = keys["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["id"] == second.id.as_str())
        .unwrap_or_else(|| panic!("{keys}"));
    assert!(revoked["revoked_at"].is_string(), "{revoked}");
    for k in [&team.first, &second] {
        assert!(!listed.stdout.contains(&k.key), "{}", listed.stdout);
    }

    // Who asked, and how, is on every row; the chain still holds.
    let rows = team.audit_identities_eventually("team-web").await;
    assert!(rows.len() >= 2, "{rows:?}");
    for k in [&team.first, &second] {
        let method = format!("apikey:{}", k.id);
        assert!(
            rows.iter()
                .any(|(who, how)| who == &k.name && how.as_deref() == Some(&method)),
            "no audit row with requester {} and auth_method {method}: {rows:?}",
            k.name
        );
    }
    for (who, how) in &rows {
        let k = [&team.first, &second]
            .into_iter()
            .find(|k| &k.name == who)
            .unwrap_or_else(|| panic!("audit row by {who:?} ({how:?})"));
        assert_eq!(how.as_deref(), Some(format!("apikey:{}", k.id).as_str()));
    }
    team.verify_audit().await;
}

// ---- 1b. scoped keys and overrides from the CLI ---------------------------------

/// `GET /api/v1/evaluate?package=…` for `project` with `key`: (status, body).
async fn verdict_for(base: &str, project: &str, key: &str, package: &str) -> (u16, Value) {
    let r = reqwest::Client::new()
        .get(format!("{base}/api/v1/evaluate"))
        .query(&[("package", package)])
        .header("X-LexAlign-Project", project)
        .bearer_auth(key)
        .timeout(Duration::from_secs(5))
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

/// Polls [`verdict_for`] until `done` holds, for at most [`PICKUP`].
async fn verdict_within(
    base: &str,
    project: &str,
    key: &str,
    package: &str,
    done: impl Fn(u16, &Value) -> bool,
) -> (u16, Value, Duration) {
    let start = Instant::now();
    loop {
        let (status, v) = verdict_for(base, project, key, package).await;
        if done(status, &v) || start.elapsed() > PICKUP {
            return (status, v, start.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scoped_keys_and_overrides_from_the_cli_beside_a_running_daemon() {
    let team = Team::start().await;
    let (home, db) = (team.home().to_path_buf(), team.db().display().to_string());
    let admin = |args: &[&str]| {
        lex(&home)
            .args(["admin"])
            .args(args.iter().map(|a| a.to_string()))
            .args(["--db".to_string(), db.clone()])
    };

    // A key scoped to `web` that lapses in two days.
    let run = admin(&[
        "keys",
        "create",
        "--name",
        "web-ops",
        "--role",
        "operator",
        "--project",
        "web",
        "--expires-in-days",
        "2",
        "--json",
    ])
    .output()
    .await;
    run.expect_code(0);
    let made: Value = serde_json::from_str(run.stdout.trim()).unwrap();
    assert_eq!(made["project"], "web", "{made}");
    assert_eq!(made["role"], "operator", "{made}");
    let expires = made["expires_at"]
        .as_str()
        .unwrap_or_else(|| panic!("{made}"))
        .to_string();
    let key = made["key"].as_str().unwrap().to_string();
    let (status, v, took) =
        verdict_within(team.base(), "web", &key, "httpx", |s, _| s == 200).await;
    assert_eq!(status, 200, "not picked up after {took:?}: {v}");
    // Attack: the scoped key for another project.
    let (status, v) = verdict_for(team.base(), "billing", &key, "httpx").await;
    assert_eq!(status, 403, "{v}");
    assert!(
        v["detail"]
            .as_str()
            .unwrap()
            .contains("scoped to project `web`"),
        "{v}"
    );
    let run = admin(&[
        "keys",
        "create",
        "--name",
        "x",
        "--role",
        "agent",
        "--expires-in-days",
        "0",
    ])
    .output()
    .await;
    assert_ne!(run.code, Some(0), "{}", run.stdout);
    assert!(run.stderr.contains("at least 1"), "{}", run.stderr);

    // Overrides: refused grants change nothing.
    let bot = team.first.key.clone();
    let (_, v) = verdict_for(team.base(), "web", &bot, "pyqt5").await;
    assert_eq!(v["verdict"], "DENIED", "{v}");
    let why = "Qt commercial licence bought for the web team";
    for (what, justification, until) in [
        ("19 characters", "short justification", expires.as_str()),
        ("years ahead", why, "2099-01-31"),
        ("not a time", why, "soon"),
    ] {
        let run = admin(&[
            "overrides",
            "grant",
            "pyqt5",
            "--project",
            "web",
            "--justification",
            justification,
            "--expires",
            until,
        ])
        .output()
        .await;
        assert_ne!(run.code, Some(0), "{what}: {}", run.stdout);
    }
    let listed = admin(&["overrides", "list", "--json"]).output().await;
    listed.expect_code(0);
    assert_eq!(listed.stdout.trim(), r#"{"overrides":[]}"#);

    // A grant beside the running daemon: ALLOWED for web within a second.
    let run = admin(&[
        "overrides",
        "grant",
        "pyqt5",
        "--project",
        "web",
        "--justification",
        why,
        "--expires",
        &expires,
        "--approver",
        "olivia",
        "--json",
    ])
    .output()
    .await;
    run.expect_code(0);
    let granted: Value = serde_json::from_str(run.stdout.trim()).unwrap();
    let id = granted["id"]
        .as_str()
        .unwrap_or_else(|| panic!("{granted}"))
        .to_string();
    let (_, v, took) = verdict_within(team.base(), "web", &bot, "pyqt5", |_, v| {
        v["verdict"] == "ALLOWED"
    })
    .await;
    assert_eq!(v["verdict"], "ALLOWED", "not applied after {took:?}: {v}");
    assert_eq!(v["override"]["id"], id.as_str(), "{v}");
    assert_eq!(v["override"]["approver"], "olivia", "{v}");
    assert_eq!(v["override"]["justification"], why, "{v}");
    let (_, v) = verdict_for(team.base(), "mobile", &bot, "pyqt5").await;
    assert_eq!(v["verdict"], "DENIED", "another project: {v}");
    let listed = admin(&["overrides", "list", "--json"]).output().await;
    let rows: Value = serde_json::from_str(listed.stdout.trim()).unwrap();
    assert_eq!(rows["overrides"][0]["id"], id.as_str(), "{rows}");

    // Revoked beside it: DENIED again within a second; twice is an error.
    admin(&["overrides", "revoke", &id])
        .output()
        .await
        .expect_code(0);
    let (_, v, took) = verdict_within(team.base(), "web", &bot, "pyqt5", |_, v| {
        v["verdict"] == "DENIED"
    })
    .await;
    assert_eq!(v["verdict"], "DENIED", "still applied after {took:?}: {v}");
    let again = admin(&["overrides", "revoke", &id]).output().await;
    assert_ne!(again.code, Some(0), "{}", again.stdout);
    let listed = admin(&["overrides", "list", "--all", "--json"])
        .output()
        .await;
    let rows: Value = serde_json::from_str(listed.stdout.trim()).unwrap();
    assert!(rows["overrides"][0]["revoked_at"].is_string(), "{rows}");
    team.verify_audit().await;
}

// ---- 2. the original Python client in org mode ---------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn original_client_in_org_mode_sends_its_key() {
    let Some(exe) = compat_client() else { return };
    let team = Team::start().await;
    let home = tempfile::tempdir().unwrap();
    let project = tempfile::tempdir().unwrap();
    let (home, proj) = (home.path(), project.path());
    python_project(home, proj, "org-demo").await;
    std::fs::write(
        proj.join(".lexalign.toml"),
        format!(
            "project = \"org-demo\"\nserver_url = \"{}\"\nmode = \"org\"\nfail_open = false\n\
             api_key_env_var = \"LEXALIGN_API_KEY\"\nauto_request_approval = false\n",
            team.base()
        ),
    )
    .unwrap();
    let venv_path = format!(
        "{}:{}",
        exe.parent().unwrap().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let client = |pkg: &str, key: Option<&str>| {
        let c = Cmd::new(&exe, home)
            .env("PATH", venv_path.clone())
            .args(["check", "--package", pkg])
            .cwd(proj);
        match key {
            Some(k) => c.env("LEXALIGN_API_KEY", k),
            None => c,
        }
    };

    let allowed = client("httpx", Some(&team.first.key)).output().await;
    allowed.expect_code(0);
    let v = verdict(&allowed);
    assert_eq!(v["verdict"], "ALLOWED", "{v}");
    assert_eq!(v["transport_error"], false, "{v}");

    let denied = client("requests", Some(&team.first.key)).output().await;
    denied.expect_code(2);
    let v = verdict(&denied);
    assert_eq!(v["verdict"], "DENIED", "{v}");
    assert_eq!(v["replacement"], "httpx", "{v}");

    let refused = client("httpx", None).output().await;
    assert_ne!(refused.code, Some(0), "no key, yet: {}", refused.stdout);
    assert_ne!(refused.code, Some(2), "no key, yet: {}", refused.stdout);
    assert!(
        !refused.stdout.contains("\"verdict\""),
        "a verdict without a key: {}",
        refused.stdout
    );
    assert!(refused.stderr.contains("401"), "{}", refused.stderr);

    let rows = team.audit_identities_eventually("org-demo").await;
    assert_eq!(rows.len(), 2, "{rows:?}");
    let method = format!("apikey:{}", team.first.id);
    for (who, how) in &rows {
        assert_eq!(who, &team.first.name, "{rows:?}");
        assert_eq!(how.as_deref(), Some(method.as_str()), "{rows:?}");
    }
    team.verify_audit().await;
}

// ---- 3. the editor bridge -------------------------------------------------------

async fn write_frame(stdin: &mut tokio::process::ChildStdin, msg: &Value) {
    let body = serde_json::to_vec(msg).unwrap();
    stdin
        .write_all(format!("Content-Length: {}\r\n\r\n", body.len()).as_bytes())
        .await
        .unwrap();
    stdin.write_all(&body).await.unwrap();
    stdin.flush().await.unwrap();
}

async fn read_frame<R: tokio::io::AsyncRead + Unpin>(r: &mut BufReader<R>) -> Option<Value> {
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
            len = v.trim().parse::<usize>().ok();
        }
    }
    let mut body = vec![0; len?];
    r.read_exact(&mut body).await.ok()?;
    serde_json::from_slice(&body).ok()
}

/// Reads messages until the response to request `id`, answering requests
/// from the server on the way (`workspace/configuration` with an empty
/// object per item, anything else with `null`). Bounded.
async fn response_to<R: tokio::io::AsyncRead + Unpin>(
    out: &mut BufReader<R>,
    stdin: &mut tokio::process::ChildStdin,
    id: i64,
    seen: &mut Vec<Value>,
) -> Value {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let msg = tokio::time::timeout(left, read_frame(out))
            .await
            .unwrap_or_else(|_| panic!("no answer to request {id} within 15 s; saw {seen:?}"))
            .unwrap_or_else(|| panic!("lex-align lsp closed stdout before answering {id}"));
        if msg.get("method").is_none() && msg["id"] == id {
            return msg;
        }
        if let (Some(method), Some(req_id)) = (msg["method"].as_str(), msg.get("id")) {
            let result = if method == "workspace/configuration" {
                let n = msg["params"]["items"].as_array().map_or(1, Vec::len);
                Value::Array(vec![json!({}); n])
            } else {
                Value::Null
            };
            write_frame(
                stdin,
                &json!({"jsonrpc": "2.0", "id": req_id, "result": result}),
            )
            .await;
        }
        seen.push(msg);
    }
}

fn lsp(team: &Team, home: &Path, cwd: &Path, key: Option<&str>) -> Cmd {
    let c = lex(home)
        .args(["lsp", "--server-url", team.base(), "--project", "lsp-proj"])
        .env("LEXALIGN_NO_AUTOSTART", "1")
        .cwd(cwd);
    match key {
        Some(k) => c.env("LEXALIGN_API_KEY", k),
        None => c,
    }
}

/// Waits (bounded) for the bridge to exit; its code and stderr.
async fn exit_of(mut child: tokio::process::Child, within: Duration) -> (Option<i32>, String) {
    let status = tokio::time::timeout(within, child.wait())
        .await
        .unwrap_or_else(|_| panic!("lex-align lsp still running after {within:?}"))
        .unwrap();
    let mut err = String::new();
    if let Some(mut e) = child.stderr.take() {
        let _ = e.read_to_string(&mut err).await;
    }
    (status.code(), err)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lsp_bridge_sends_the_key_in_its_upgrade() {
    let team = Team::start().await;
    let home = tempfile::tempdir().unwrap();
    let project = tempfile::tempdir().unwrap();
    let (home, proj) = (home.path(), project.path());

    // With the key: a whole initialize / shutdown / exit exchange.
    let mut child = lsp(&team, home, proj, Some(&team.first.key)).spawn_stdio();
    let mut stdin = child.stdin.take().unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut seen = Vec::new();
    write_frame(
        &mut stdin,
        &json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "processId": null, "rootUri": null, "capabilities": {}
        }}),
    )
    .await;
    let init = response_to(&mut out, &mut stdin, 1, &mut seen).await;
    assert!(init.get("error").is_none(), "{init}");
    assert_eq!(init["result"]["serverInfo"]["name"], "lex-align", "{init}");
    assert!(init["result"]["capabilities"].is_object(), "{init}");
    write_frame(
        &mut stdin,
        &json!({"jsonrpc": "2.0", "method": "initialized", "params": {}}),
    )
    .await;

    // A document's verdicts go through the session: audited under the key.
    let pyproject = "[project]\nname = \"lsp-proj\"\nversion = \"0.1.0\"\ndependencies = [\"requests>=2.28\"]\n";
    let uri = format!("file://{}", proj.join("pyproject.toml").display());
    write_frame(
        &mut stdin,
        &json!({"jsonrpc": "2.0", "method": "textDocument/didOpen", "params": {"textDocument": {
            "uri": uri, "languageId": "toml", "version": 1, "text": pyproject
        }}}),
    )
    .await;
    let rows = team.audit_identities_eventually("lsp-proj").await;
    assert!(!rows.is_empty(), "no audit row from the LSP session");
    let method = format!("apikey:{}", team.first.id);
    for (who, how) in &rows {
        assert_eq!(who, &team.first.name, "{rows:?}");
        assert_eq!(how.as_deref(), Some(method.as_str()), "{rows:?}");
    }

    write_frame(
        &mut stdin,
        &json!({"jsonrpc": "2.0", "id": 2, "method": "shutdown", "params": null}),
    )
    .await;
    let down = response_to(&mut out, &mut stdin, 2, &mut seen).await;
    assert!(down.get("error").is_none(), "{down}");
    write_frame(&mut stdin, &json!({"jsonrpc": "2.0", "method": "exit"})).await;
    drop(stdin);
    let (code, stderr) = exit_of(child, Duration::from_secs(10)).await;
    assert_eq!(code, Some(0), "stderr: {stderr}");

    // Without a key, or with one the daemon does not know: the bridge ends
    // at once, saying why, even though the editor keeps its stdin open.
    for key in [
        None,
        Some("lxa_00000000000000000000000000000000000000000000000000000000deadbeef"),
    ] {
        let mut child = lsp(&team, home, proj, key).spawn_stdio();
        let _stdin = child.stdin.take().unwrap();
        let (code, stderr) = exit_of(child, Duration::from_secs(10)).await;
        assert_ne!(code, Some(0), "key {key:?}: stderr: {stderr}");
        assert!(
            stderr.contains("401") && stderr.contains("LEXALIGN_API_KEY"),
            "key {key:?}: the refusal does not say why: {stderr}"
        );
        if let Some(k) = key {
            assert!(!stderr.contains(k), "the error echoes the key: {stderr}");
        }
    }
}

// ---- 4. no anonymous daemon on the network --------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_anonymous_daemon_refuses_a_network_address() {
    let dir = tempfile::tempdir().unwrap();
    let up = Upstreams::start();
    let db = dir.path().join("lexalign.sqlite");
    let port = free_port();
    let cmd = daemon_cmd(dir.path(), STARTER, &up.env())
        .env("BIND_HOST", "0.0.0.0")
        .env("BIND_PORT", port.to_string());

    let started = Instant::now();
    let run = tokio::time::timeout(Duration::from_secs(10), cmd.output())
        .await
        .expect("an anonymous daemon on 0.0.0.0 did not exit within 10 s (it serves?)");
    assert_ne!(run.code, Some(0), "{run:?}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "took {:?} to refuse",
        started.elapsed()
    );
    let lines: Vec<&str> = run
        .stderr
        .lines()
        .filter(|l| !l.trim().is_empty())
        .collect();
    assert_eq!(lines.len(), 1, "not one line on stderr:\n{}", run.stderr);
    assert!(
        lines[0].contains("LEXALIGN_ALLOW_ANONYMOUS_NETWORK"),
        "{}",
        lines[0]
    );
    assert!(
        std::net::TcpStream::connect_timeout(
            &([127, 0, 0, 1], port).into(),
            Duration::from_millis(500)
        )
        .is_err(),
        "something listens on {port}"
    );
    assert!(!db.exists(), "the database was opened before refusing");

    // The explicit opt-in serves (anonymously).
    let mut child = cmd
        .clone()
        .env("LEXALIGN_ALLOW_ANONYMOUS_NETWORK", "1")
        .spawn();
    let base = format!("http://127.0.0.1:{port}");
    wait_healthy(&base, &mut child).await;
    assert_eq!(evaluate(&base, "anon", None).await.status(), 200);
    let _ = child.kill().await;

    // So does authentication on, and then it asks for credentials.
    let port = free_port();
    let mut child = cmd
        .clone()
        .env("BIND_PORT", port.to_string())
        .env("AUTH_ENABLED", "true")
        .env("AUTH_BACKEND", "apikey")
        .spawn();
    let base = format!("http://127.0.0.1:{port}");
    wait_healthy(&base, &mut child).await;
    assert_eq!(evaluate(&base, "anon", None).await.status(), 401);
    let _ = child.kill().await;
}
