//! Plugins loaded into the real daemon: the Rust test plugins cargo built
//! (lex-align-test-auth, lex-align-test-proposer), C plugins compiled here
//! with `cc` against plugins/abi/lex_align_plugin.h alone, and a matrix of
//! broken ones, each leaving the daemon healthy and serving.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use lex_align_e2e::{free_port, Cmd, Daemon, Upstreams};
use lex_align_plugin_testkit::{c_plugin, install, rust_plugin, CSource, TEST_AUTH, TEST_PROPOSER};
use serde_json::{json, Value};

use crate::{daemon_cmd, lex, STARTER};

/// Short, so stuck calls are declared stuck quickly; the plugins answer
/// good calls in microseconds.
const TIMEOUT_MS: &str = "300";

/// A C plugin of broken.c named `name`, misbehaving as `flag`.
fn broken(dir: &Path, flag: &str, name: &str) -> PathBuf {
    let def = format!("PLUGIN_NAME=\"{name}\"");
    c_plugin(CSource::Broken, &[flag, &def], dir, name)
}

fn plugin_daemon(data: &Path, up: &Upstreams, dirs: &[&Path]) -> Cmd {
    let dirs = std::env::join_paths(dirs).unwrap();
    daemon_cmd(data, STARTER, &up.env())
        .env("LEXALIGN_PLUGIN_DIRS", dirs.to_string_lossy().to_string())
        .env("LEXALIGN_PLUGIN_TIMEOUT_MS", TIMEOUT_MS)
        // The daemon's stderr is a pipe nobody reads: keep it short.
        .env("RUST_LOG", "error")
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

async fn evaluate(base: &str, project: &str, token: Option<&str>) -> (u16, Value) {
    let mut r = client()
        .get(format!("{base}/api/v1/evaluate"))
        .query(&[("package", "httpx")])
        .header("X-LexAlign-Project", project);
    if let Some(t) = token {
        r = r.bearer_auth(t);
    }
    let resp = r.send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

async fn propose(base: &str, token: &str, package: &str) -> (u16, Value) {
    let resp = client()
        .post(format!("{base}/api/v1/registry/proposals"))
        .bearer_auth(token)
        .header("X-LexAlign-Project", "plugins-proj")
        .json(&json!({"name": package, "status": "approved", "rationale": "needed for the test"}))
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

async fn health(base: &str, token: &str) -> Value {
    client()
        .get(format!("{base}/api/v1/health"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// The health entry of the library whose path ends with `file`.
fn entry<'a>(health: &'a Value, file: &str) -> &'a Value {
    health["plugins"]
        .as_array()
        .expect("health lists plugins")
        .iter()
        .find(|p| p["path"].as_str().is_some_and(|s| s.ends_with(file)))
        .unwrap_or_else(|| panic!("{file} not in {:#}", health["plugins"]))
}

/// `(requester, auth_method)` of the audit rows of `project`, once there
/// are any (the writer files rows in batches; bounded wait).
pub(crate) async fn audit_rows(db: &Path, project: &str) -> Vec<(String, Option<String>)> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let conn = rusqlite::Connection::open(db).unwrap();
        let rows: Vec<(String, Option<String>)> = conn
            .prepare("SELECT requester, auth_method FROM audit_log WHERE project = ?1 ORDER BY seq")
            .unwrap()
            .query_map([project], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        if !rows.is_empty() || Instant::now() > deadline {
            return rows;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Polls `f` until it holds, failing after 30 s (never a timing assertion).
async fn eventually<F, Fut>(what: &str, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    while !f().await {
        assert!(start.elapsed() < Duration::from_secs(30), "never: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn detail(v: &Value) -> &str {
    v["detail"].as_str().unwrap_or("")
}

// ---- 1. the matrix: one daemon, good and broken libraries side by side ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broken_plugins_leave_the_daemon_serving() {
    let data = tempfile::tempdir().unwrap();
    let plugins = tempfile::tempdir().unwrap();
    let more = tempfile::tempdir().unwrap();
    let dir = plugins.path();
    let release = data.path().join("release");
    let release_cfg = json!({"release_file": release, "groups": ["platform"]}).to_string();
    install(
        &rust_plugin(TEST_AUTH),
        dir,
        "test-auth",
        Some(("test-auth", &release_cfg)),
    );
    install(
        &rust_plugin(TEST_PROPOSER),
        dir,
        "test-proposer",
        Some(("test-proposer", &release_cfg)),
    );
    c_plugin(CSource::Auth, &[], dir, "c-auth");
    broken(dir, "WRONG_ABI", "c-wrong-abi");
    broken(dir, "NO_SYMBOL", "c-no-symbol");
    broken(dir, "BAD_NAME", "c-bad-name");
    broken(dir, "FAIL_CONFIGURE", "c-fail-configure");
    // The same name again, from the second directory.
    c_plugin(CSource::Auth, &[], more.path(), "c-auth-again");
    let up = Upstreams::start();
    let daemon = Daemon::start(
        plugin_daemon(data.path(), &up, &[dir, more.path()])
            .env("AUTH_ENABLED", "true")
            .env("AUTH_BACKEND", "plugin:test-auth")
            .env("REGISTRY_PROPOSER", "plugin:test-proposer")
            .env("LEXALIGN_ROLE_GROUPS", "operator=platform"),
    )
    .await;
    let base = daemon.base.as_str();
    let ann = "ok.ann";

    // Health shows every library and its state.
    let h = health(base, ann).await;
    assert_eq!(h["auth_backend"], "plugin:test-auth");
    assert_eq!(h["proposer"], "plugin:test-proposer");
    for file in ["test-auth.so", "test-proposer.so", "c-auth.so"] {
        let e = entry(&h, file);
        assert_eq!(
            (e["state"].as_str(), e["abi"].as_u64()),
            (Some("ready"), Some(1)),
            "{e}"
        );
        assert!(e["error"].is_null(), "{e}");
    }
    for (file, why) in [
        ("c-wrong-abi.so", "ABI version 2"),
        ("c-no-symbol.so", "no entry symbol"),
        ("c-bad-name.so", "bad name"),
        (
            "c-fail-configure.so",
            "configure failed (400): missing setting: issuer",
        ),
        ("c-auth-again.so", "duplicate name \"c-auth\""),
    ] {
        let e = entry(&h, file);
        assert_eq!(e["state"], "failed", "{e}");
        assert!(e["error"].as_str().unwrap().contains(why), "{file}: {e}");
    }
    // Strangers learn nothing about plugins.
    let anon: Value = client()
        .get(format!("{base}/api/v1/health"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(anon.get("plugins").is_none(), "{anon}");

    // The authenticator plugin lets a caller in with the identity it named…
    let (code, v) = evaluate(base, "plugins-proj", Some(ann)).await;
    assert_eq!(code, 200, "{v}");
    assert_eq!(v["verdict"], "ALLOWED");
    let rows = audit_rows(&data.path().join("lexalign.sqlite"), "plugins-proj").await;
    assert_eq!(
        rows,
        vec![("ann".to_string(), Some("plugin:test-auth".to_string()))]
    );

    // …and everything going wrong in it is a 401: never a 5xx, never anonymous.
    for (token, want) in [
        (None, "no bearer token"),
        (Some("nope"), "unknown token"),
        (Some("panic"), "the test-auth authenticator failed (500)"),
        (
            Some("hang"),
            "the test-auth authenticator did not answer within 300 ms",
        ),
    ] {
        let (code, v) = evaluate(base, "denied-proj", token).await;
        assert_eq!(code, 401, "{token:?}: {v}");
        assert!(detail(&v).contains(want), "{token:?}: {v}");
        // The panic's own message stays out of the answer.
        assert!(!detail(&v).contains("told to panic"), "{v}");
    }
    assert_eq!(evaluate(base, "plugins-proj", Some(ann)).await.0, 200);

    // The proposer plugin: its result, with the backend named.
    let (code, v) = propose(base, ann, "Some.Package").await;
    assert_eq!(code, 200, "{v}");
    assert_eq!(v["backend"], "plugin:test-proposer");
    assert_eq!(v["status"], "opened");
    assert_eq!(v["branch"], "lex-align/approval/some-package");
    assert!(
        v["detail"].as_str().unwrap().contains("requested by ann"),
        "{v}"
    );
    // Its failures are 502s with the reason; the daemon serves on.
    for (package, want) in [
        (
            "down-review",
            "plugin:test-proposer: the review system is down (502)",
        ),
        (
            "panic-now",
            "plugin:test-proposer: plugin panicked: test-proposer was told to panic (500)",
        ),
        (
            "hang-once",
            "plugin:test-proposer: did not answer within 300 ms",
        ),
    ] {
        let (code, v) = propose(base, ann, package).await;
        assert_eq!(code, 502, "{package}: {v}");
        assert_eq!(detail(&v), want, "{package}");
    }

    // 70 calls hung at once: each is answered 502 at its timeout…
    let hung: Vec<_> = (0..70)
        .map(|i| {
            let base = base.to_string();
            tokio::spawn(async move { propose(&base, "ok.ann", &format!("hang-{i}")).await })
        })
        .collect();
    for h in hung {
        let (code, v) = h.await.unwrap();
        assert_eq!(code, 502, "{v}");
        assert!(detail(&v).contains("did not answer within 300 ms"), "{v}");
    }
    // …all of them are still stuck in the plugin, which is now unhealthy
    // and answers at once instead of piling up more threads…
    let h = health(base, ann).await;
    let e = entry(&h, "test-proposer.so");
    assert_eq!(e["state"], "unhealthy", "{e}");
    assert!(
        e["error"]
            .as_str()
            .unwrap()
            .contains("stuck past the timeout"),
        "{e}"
    );
    let (code, v) = propose(base, ann, "fine-package").await;
    assert_eq!(code, 502);
    assert!(detail(&v).contains("unhealthy"), "{v}");
    // …while the authenticator plugin and evaluation are untouched.
    assert_eq!(entry(&h, "test-auth.so")["state"], "ready");
    for i in 0..20 {
        let (code, v) = evaluate(base, &format!("busy-{i}"), Some("ok.bea")).await;
        assert_eq!((code, &v["verdict"]), (200, &json!("ALLOWED")), "{v}");
    }

    // Released, the stuck calls return and the proposer is ready again.
    std::fs::write(&release, "").unwrap();
    eventually("the proposer is ready again", || async {
        entry(&health(base, ann).await, "test-proposer.so")["state"] == "ready"
    })
    .await;
    let (code, v) = propose(base, ann, "fine-package").await;
    assert_eq!((code, &v["status"]), (200, &json!("opened")), "{v}");

    // `plugins list` asks the running daemon (with a credential it accepts).
    let run = lex(data.path())
        .args(["plugins", "list", "--json", "--url", base])
        .env("LEXALIGN_API_KEY", ann)
        .output()
        .await;
    run.expect_code(0);
    let listed: Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(listed["source"], "daemon");
    assert_eq!(listed["plugins"].as_array().unwrap().len(), 8, "{listed:#}");
    assert_eq!(entry(&listed, "c-wrong-abi.so")["state"], "failed");
    let run = lex(data.path())
        .args(["plugins", "list", "--url", base])
        .env("LEXALIGN_API_KEY", ann)
        .output()
        .await;
    run.expect_code(0);
    assert!(
        run.stdout.contains("as loaded by the daemon at"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.lines().any(|l| l.starts_with("test-proposer")
            && l.contains("proposer")
            && l.contains("ready")),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains("    error: ABI version 2"),
        "{}",
        run.stdout
    );
}

// ---- 2. a misbehaving authenticator is a 401 for its request alone ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_authenticator_is_401_never_5xx_nor_anonymous() {
    let plugins = tempfile::tempdir().unwrap();
    let cases = [
        (
            "INVALID_JSON",
            "c-invalid-json",
            "invalid answer: answer is not JSON",
        ),
        (
            "NON_UTF8",
            "c-non-utf8",
            "invalid answer: answer is not UTF-8",
        ),
        (
            "NULL_ANSWER",
            "c-null-answer",
            "invalid answer: answered NULL",
        ),
        (
            "BAD_IDENTITY",
            "c-bad-identity",
            "invalid answer: identity.id must be",
        ),
        (
            "LEAK_SECRET",
            "c-leak-secret",
            "invalid answer: answer is not JSON",
        ),
    ];
    for (flag, name, _) in cases {
        broken(plugins.path(), flag, name);
    }
    let up = Upstreams::start();
    for (_, name, want) in cases {
        let data = tempfile::tempdir().unwrap();
        let daemon = Daemon::start(
            plugin_daemon(data.path(), &up, &[plugins.path()])
                .env("AUTH_ENABLED", "true")
                .env("AUTH_BACKEND", format!("plugin:{name}")),
        )
        .await;
        for _ in 0..3 {
            let (code, v) = evaluate(&daemon.base, "p", Some("c.topsecret-credential")).await;
            assert_eq!(code, 401, "{name}: {v}");
            assert!(detail(&v).contains(want), "{name}: {v}");
            assert!(
                !v.to_string().contains("topsecret"),
                "{name} leaked the token: {v}"
            );
        }
        // Still up and answering.
        let up_only: Value = client()
            .get(format!("{}/api/v1/health", daemon.base))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(up_only["status"], "ok");
        // Nobody got in, so nothing was audited.
        let db = data.path().join("lexalign.sqlite");
        let conn = rusqlite::Connection::open(&db).unwrap();
        let n: i64 = conn
            .query_row("SELECT COUNT(*) FROM audit_log", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 0, "{name}");
    }
}

// ---- 3. fail closed: no selected plugin, no daemon ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daemon_does_not_start_without_its_selected_plugin() {
    let plugins = tempfile::tempdir().unwrap();
    let dir = plugins.path();
    broken(dir, "WRONG_ABI", "c-wrong-abi");
    install(&rust_plugin(TEST_PROPOSER), dir, "test-proposer", None);
    let failing = tempfile::tempdir().unwrap();
    install(
        &rust_plugin(TEST_AUTH),
        failing.path(),
        "test-auth",
        Some(("test-auth", r#"{"fail":"issuer is required"}"#)),
    );
    let up = Upstreams::start();
    for (vars, want) in [
        (
            vec![("AUTH_ENABLED", "true"), ("AUTH_BACKEND", "plugin:oidc")],
            "AUTH_BACKEND=plugin:oidc: no plugin named \"oidc\" was found",
        ),
        (
            vec![
                ("AUTH_ENABLED", "true"),
                ("AUTH_BACKEND", "plugin:test-proposer"),
            ],
            "is a proposer plugin, not an authenticator plugin",
        ),
        (
            vec![
                ("AUTH_ENABLED", "true"),
                ("AUTH_BACKEND", "plugin:test-auth"),
            ],
            "configure failed (400): issuer is required",
        ),
        (
            vec![("REGISTRY_PROPOSER", "plugin:gitlab")],
            "REGISTRY_PROPOSER=plugin:gitlab: no plugin named \"gitlab\"",
        ),
    ] {
        let data = tempfile::tempdir().unwrap();
        let port = free_port();
        let mut cmd = plugin_daemon(data.path(), &up, &[dir, failing.path()])
            .env("BIND_HOST", "127.0.0.1")
            .env("BIND_PORT", port.to_string());
        for (k, v) in &vars {
            cmd = cmd.env(*k, *v);
        }
        let run = cmd.output().await;
        assert_ne!(run.code, Some(0), "{vars:?} started: {run:?}");
        assert!(run.stderr.contains(want), "{vars:?}:\n{}", run.stderr);
        assert!(
            std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
            "something listens on {port}"
        );
    }

    // check-config says the same before anyone starts the daemon.
    let home = tempfile::tempdir().unwrap();
    let run = lex(home.path())
        .args(["check-config"])
        .env("LEXALIGN_DATA_DIR", home.path().display().to_string())
        .env("LEXALIGN_PLUGIN_DIRS", dir.display().to_string())
        .env("AUTH_ENABLED", "true")
        .env("AUTH_BACKEND", "plugin:oidc")
        .output()
        .await;
    assert_eq!(run.code, Some(1), "{run:?}");
    let fail = run
        .stdout
        .lines()
        .find(|l| l.starts_with("FAIL") && l.contains("AUTH_BACKEND"))
        .unwrap_or_else(|| panic!("no AUTH_BACKEND failure:\n{}", run.stdout));
    assert!(fail.contains("the daemon will refuse to start"), "{fail}");
    assert!(
        run.stdout
            .lines()
            .any(|l| l.starts_with("WRN") && l.contains("ABI version 2")),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.lines().any(|l| l.starts_with("OK")
            && l.contains("plugin test-proposer")
            && l.contains("ready")),
        "{}",
        run.stdout
    );
}

// ---- 4. a plugin written in C against the header alone ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_c_plugin_authenticates() {
    let data = tempfile::tempdir().unwrap();
    let plugins = tempfile::tempdir().unwrap();
    // Compiled here: cc -shared -fPIC -I plugins/abi plugins/testing/c/auth.c
    c_plugin(CSource::Auth, &[], plugins.path(), "c-auth");
    let up = Upstreams::start();
    let daemon = Daemon::start(
        plugin_daemon(data.path(), &up, &[plugins.path()])
            .env("AUTH_ENABLED", "true")
            .env("AUTH_BACKEND", "plugin:c-auth"),
    )
    .await;
    let (code, v) = evaluate(&daemon.base, "c-proj", Some("c.zoe")).await;
    assert_eq!(code, 200, "{v}");
    let rows = audit_rows(&data.path().join("lexalign.sqlite"), "c-proj").await;
    assert_eq!(
        rows,
        vec![("zoe".to_string(), Some("plugin:c-auth".to_string()))]
    );
    for token in ["c.Zoe", "c.", "zoe", "c.a\"b"] {
        let (code, v) = evaluate(&daemon.base, "c-proj", Some(token)).await;
        assert_eq!(code, 401, "{token}: {v}");
    }
    let h = health(&daemon.base, "c.zoe").await;
    assert_eq!(entry(&h, "c-auth.so")["kind"], "authenticator");

    // Without a daemon to ask, `plugins list` scans the directories itself
    // and says so.
    let nobody = format!("http://127.0.0.1:{}", free_port());
    let run = lex(data.path())
        .args(["plugins", "list", "--json", "--url", &nobody])
        .env("LEXALIGN_PLUGIN_DIRS", plugins.path().display().to_string())
        .output()
        .await;
    run.expect_code(0);
    let listed: Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(listed["source"], "local");
    assert_eq!(entry(&listed, "c-auth.so")["state"], "ready");
    let run = lex(data.path())
        .args(["plugins", "list", "--url", &nobody])
        .env("LEXALIGN_PLUGIN_DIRS", plugins.path().display().to_string())
        .output()
        .await;
    run.expect_code(0);
    assert!(
        run.stdout
            .contains("scanned LEXALIGN_PLUGIN_DIRS locally instead"),
        "{}",
        run.stdout
    );
}
