//! The two shipped plugins, built by cargo as cdylibs (dev-dependencies of
//! this package, found by the testkit), loaded into the real daemon: `oidc`
//! as its authenticator (tokens signed here, keys served by a fake JWKS
//! endpoint) and `gitlab` as its proposer (a fake GitLab API), all on
//! 127.0.0.1. The daemon runs at trace level and its whole log is searched
//! for the credentials at the end, as are its database files.

use std::path::Path;
use std::time::Duration;

use lex_align_e2e::{free_port, Daemon, Upstreams};
use lex_align_fakes::fixtures::REGISTRY_YAML;
use lex_align_fakes::{FakeGitLab, FakeJwks};
use lex_align_plugin_testkit::{install, rust_plugin};
use serde_json::{json, Value};
use tokio::io::AsyncReadExt;

// The OIDC plugin's own test keys and token makers.
#[path = "../../../plugins/oidc/tests/support/mod.rs"]
mod oidc_support;
use oidc_support::*;

use crate::plugins::audit_rows;
use crate::{daemon_cmd, lex};

const GITLAB_TOKEN: &str = "glpat-E2E-SECRET-5d1e0c3b";
const GITLAB_PROJECT: &str = "platform/policy";

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

/// One HTTP answer: status, `WWW-Authenticate`, body text.
struct Answer {
    code: u16,
    challenge: Option<String>,
    text: String,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or(Value::Null)
    }
}

async fn answer(r: reqwest::RequestBuilder) -> Answer {
    let resp = r.send().await.unwrap();
    let code = resp.status().as_u16();
    let challenge = resp
        .headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_string());
    Answer {
        code,
        challenge,
        text: resp.text().await.unwrap(),
    }
}

async fn evaluate(base: &str, project: &str, token: Option<&str>) -> Answer {
    let mut r = client()
        .get(format!("{base}/api/v1/evaluate"))
        .query(&[("package", "httpx")])
        .header("X-LexAlign-Project", project);
    if let Some(t) = token {
        r = r.bearer_auth(t);
    }
    answer(r).await
}

async fn propose(base: &str, token: &str, package: &str, status: &str) -> Answer {
    answer(
        client()
            .post(format!("{base}/api/v1/registry/proposals"))
            .bearer_auth(token)
            .header("X-LexAlign-Project", "policy-proj")
            .json(
                &json!({"name": package, "status": status, "rationale": "wanted by the data team"}),
            ),
    )
    .await
}

async fn health(base: &str, token: &str) -> Value {
    answer(
        client()
            .get(format!("{base}/api/v1/health"))
            .bearer_auth(token),
    )
    .await
    .json()
}

async fn request_approval(base: &str, token: &str, package: &str) -> Answer {
    answer(
        client()
            .post(format!("{base}/api/v1/approval-requests"))
            .bearer_auth(token)
            .header("X-LexAlign-Project", "agent-proj")
            .json(&json!({"package": package, "rationale": "the importer needs it"})),
    )
    .await
}

/// The approval request for `package` once the proposer is done with it
/// (bounded wait: the review worker runs in the background).
async fn reviewed(base: &str, token: &str, package: &str) -> Value {
    for _ in 0..600 {
        let r = answer(
            client()
                .get(format!("{base}/api/v1/reports/approval-requests"))
                .query(&[("project", "agent-proj")])
                .bearer_auth(token),
        )
        .await;
        assert_eq!(r.code, 200, "{}", r.text);
        let item = r.json()["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["package"] == package)
            .cloned();
        if let Some(item) = item.filter(|i| i["proposal_status"] != "queued") {
            return item;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the approval request for {package} was never reviewed");
}

/// The health entry of plugin `name`.
fn plugin<'a>(health: &'a Value, name: &str) -> &'a Value {
    health["plugins"]
        .as_array()
        .unwrap_or_else(|| panic!("no plugins in {health}"))
        .iter()
        .find(|p| p["name"] == name)
        .unwrap_or_else(|| panic!("{name} not in {health}"))
}

fn token_for(key: &TestKey, sub: &str, groups: &[&str]) -> String {
    let mut c = claims(sub);
    c["groups"] = json!(groups);
    sign(key, &c)
}

/// The OIDC plugin's configuration: the fake IdP's key set, and no pause
/// between key-set fetches so an outage and its end are seen at once.
fn oidc_config(idp: &FakeJwks) -> String {
    json!({
        "issuer": ISSUER, "audience": AUDIENCE, "jwks": idp.url(),
        "jwks_refresh_min_s": 0,
    })
    .to_string()
}

/// Every file of the daemon's database (WAL included) as bytes.
fn database_bytes(dir: &Path) -> Vec<u8> {
    let mut all = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let p = entry.unwrap().path();
        if p.is_file()
            && p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("lexalign.sqlite")
        {
            all.extend(std::fs::read(&p).unwrap());
        }
    }
    all
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

/// The parts of a secret worth searching for: a JWT's three segments (each
/// alone identifies it), or the whole secret.
fn fragments(secret: &str) -> Vec<&str> {
    let parts: Vec<&str> = secret.split('.').filter(|p| p.len() >= 16).collect();
    if parts.is_empty() {
        vec![secret]
    } else {
        parts
    }
}

fn assert_not_in(what: &str, haystack: &[u8], secrets: &[String]) {
    for s in secrets {
        for f in fragments(s) {
            assert!(!contains(haystack, f), "{what} holds a credential ({f})");
        }
    }
}

/// The daemon's stderr, read as it is written (a pipe nobody reads would
/// fill and stall a daemon logging at trace level).
fn drain_log(daemon: &mut Daemon) -> tokio::task::JoinHandle<Vec<u8>> {
    let mut err = daemon.child.stderr.take().expect("stderr is piped");
    tokio::spawn(async move {
        let mut buf = Vec::new();
        let _ = err.read_to_end(&mut buf).await;
        buf
    })
}

/// Checks the daemon is still running, stops it with SIGTERM and returns
/// its whole log.
async fn stop(mut daemon: Daemon, log: tokio::task::JoinHandle<Vec<u8>>) -> Vec<u8> {
    assert!(
        daemon.child.try_wait().unwrap().is_none(),
        "the daemon exited during the test"
    );
    daemon.signal("TERM");
    let _ = tokio::time::timeout(Duration::from_secs(30), daemon.child.wait())
        .await
        .expect("the daemon stops on SIGTERM");
    log.await.unwrap()
}

/// Rows of `project` in the audit log, right now.
fn audit_count(db: &Path, project: &str) -> i64 {
    rusqlite::Connection::open(db)
        .unwrap()
        .query_row(
            "SELECT COUNT(*) FROM audit_log WHERE project = ?1",
            [project],
            |r| r.get(0),
        )
        .unwrap()
}

// ---- 1. OIDC: real tokens, the attack matrix, an IdP outage ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_oidc_plugin_authenticates_in_a_running_daemon() {
    let data = tempfile::tempdir().unwrap();
    let plugins = tempfile::tempdir().unwrap();
    let (r1, e1, r2) = (rsa(1, "r1"), ec("e1"), rsa(2, "r2"));
    let idp = FakeJwks::start(jwks(&[&r1, &e1]));
    install(
        &rust_plugin("lex_align_plugin_oidc"),
        plugins.path(),
        "liblex_align_plugin_oidc",
        Some(("oidc", &oidc_config(&idp))),
    );
    let up = Upstreams::start();
    let mut daemon = Daemon::start(
        daemon_cmd(data.path(), REGISTRY_YAML, &up.env())
            .env("LEXALIGN_PLUGIN_DIRS", plugins.path().display().to_string())
            .env("AUTH_ENABLED", "true")
            .env("AUTH_BACKEND", "plugin:oidc")
            .env("LEXALIGN_ROLE_GROUPS", "operator=platform")
            .env("RUST_LOG", "trace"),
    )
    .await;
    let log = drain_log(&mut daemon);
    let base = daemon.base.clone();
    let base = base.as_str();
    let db = data.path().join("lexalign.sqlite");
    let mut secrets: Vec<String> = Vec::new();

    let operator = token_for(&r1, "olga", &["platform"]);
    let dev = token_for(&e1, "eve", &["devs"]);
    secrets.extend([operator.clone(), dev.clone()]);
    let h = health(base, &operator).await;
    assert_eq!(h["auth_backend"], "plugin:oidc", "{h}");
    let e = plugin(&h, "oidc");
    assert_eq!(
        (e["kind"].as_str(), e["state"].as_str(), e["abi"].as_u64()),
        (Some("authenticator"), Some("ready"), Some(1)),
        "{e}"
    );

    // Valid tokens, RS256 and ES256: the identity the token names is the
    // requester of the audit row, with the plugin as the method.
    for (token, project, who) in [(&operator, "oidc-rs", "olga"), (&dev, "oidc-es", "eve")] {
        let a = evaluate(base, project, Some(token)).await;
        assert_eq!(a.code, 200, "{}", a.text);
        assert_eq!(a.json()["verdict"], "ALLOWED", "{}", a.text);
        assert_not_in("an answer", a.text.as_bytes(), &secrets);
        assert_eq!(
            audit_rows(&db, project).await,
            vec![(who.to_string(), Some("plugin:oidc".to_string()))]
        );
    }
    // The group maps to the role: operators may propose (the default
    // local_file proposer answers), developers may not.
    let a = propose(base, &operator, "polars", "approved").await;
    assert_eq!(a.code, 200, "{}", a.text);
    let a = propose(base, &dev, "polars", "approved").await;
    assert_eq!(a.code, 403, "{}", a.text);

    // The attack matrix: each a 401 with a Bearer challenge and the
    // reason, never the token, never a row.
    let mut expired = claims("mallory");
    expired["exp"] = json!(now() - 3600);
    let mut early = claims("mallory");
    early["nbf"] = json!(now() + 3600);
    let mut other_aud = claims("mallory");
    other_aud["aud"] = json!("another-app");
    let mut other_iss = claims("mallory");
    other_iss["iss"] = json!("https://evil.example.test");
    let mut root = claims("root");
    root["groups"] = json!(["platform"]);
    let cases = [
        (sign(&r1, &expired), "expired"),
        (sign(&e1, &early), "not valid yet"),
        (sign(&r1, &other_aud), "another audience"),
        (sign(&e1, &other_iss), "another issuer"),
        (unsigned("r1", &root), "alg none"),
        (
            hmac_with_public_key(&r1, jsonwebtoken::Algorithm::HS256, &root),
            "HMAC",
        ),
        (
            sign_as(&e1, "r1", &root),
            "does not match the type of its signing key",
        ),
        (sign(&r2, &root), "not in the identity provider's key set"),
        (
            tamper_payload(&sign(&r1, &claims("mallory")), &root),
            "signature does not verify",
        ),
        (tamper_signature(&operator), "signature does not verify"),
        (
            "not-a-jwt-at-all-0123456789".to_string(),
            "not a signed JWT",
        ),
    ];
    for (token, reason) in &cases {
        secrets.push(token.clone());
        let a = evaluate(base, "oidc-attack", Some(token)).await;
        assert_eq!(a.code, 401, "{reason}: {}", a.text);
        assert_eq!(a.challenge.as_deref(), Some("Bearer"), "{reason}");
        assert!(
            a.json()["detail"].as_str().unwrap().contains(reason),
            "{reason}: {}",
            a.text
        );
        assert_not_in(reason, a.text.as_bytes(), std::slice::from_ref(token));
        // An operator's token tampered with is no operator either.
        let p = propose(base, token, "evil", "approved").await;
        assert_eq!(p.code, 401, "{reason}: {}", p.text);
    }
    let a = evaluate(base, "oidc-attack", None).await;
    assert_eq!(a.code, 401, "{}", a.text);
    // Only the unknown kid made the IdP be asked again: once for each of
    // its two requests (no refresh pause here), never for the others.
    assert_eq!(idp.fetches(), 3);

    // The IdP goes down while the key set rotates in a new key: tokens of
    // the keys already held still work (an outage does not log everyone
    // out), a token of the new key cannot be checked and is a 401 — never
    // a 5xx, never let in — and the daemon serves on.
    idp.set_jwks(jwks(&[&r1, &e1, &r2]));
    idp.set_down(true);
    let rita = token_for(&r2, "rita", &["platform"]);
    secrets.push(rita.clone());
    let a = evaluate(base, "oidc-rotated", Some(&rita)).await;
    assert_eq!(a.code, 401, "{}", a.text);
    assert!(a.text.contains("not in the identity provider's key set"));
    assert_eq!(idp.fetches(), 4, "the outage was asked, not skipped");
    let a = evaluate(base, "oidc-outage", Some(&operator)).await;
    assert_eq!(a.code, 200, "{}", a.text);
    let h = health(base, &operator).await;
    assert_eq!(h["db"], "ok", "{h}");
    assert_eq!(plugin(&h, "oidc")["state"], "ready", "{h}");
    // Back up: the new key is fetched on its first token, no restart.
    idp.set_down(false);
    let a = evaluate(base, "oidc-rotated", Some(&rita)).await;
    assert_eq!(a.code, 200, "{}", a.text);
    assert_eq!(
        audit_rows(&db, "oidc-rotated").await,
        vec![("rita".to_string(), Some("plugin:oidc".to_string()))]
    );
    // Rows are written in order: with the later rows there, no refused
    // request left one.
    assert_eq!(audit_count(&db, "oidc-attack"), 0);

    let log = stop(daemon, log).await;
    // The log is really at trace level and really the daemon's.
    let text = String::from_utf8_lossy(&log);
    assert!(text.contains("TRACE"), "not a trace log:\n{text}");
    assert!(text.contains("oidc"), "the plugin load is not logged");
    assert_not_in("the daemon's trace log", &log, &secrets);
    assert_not_in("the database", &database_bytes(data.path()), &secrets);
}

// ---- 2. fail closed: an IdP down at start, no daemon ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_daemon_starts_while_the_idp_is_down() {
    let data = tempfile::tempdir().unwrap();
    let plugins = tempfile::tempdir().unwrap();
    let idp = FakeJwks::start(jwks(&[&rsa(1, "r1")]));
    idp.set_down(true);
    install(
        &rust_plugin("lex_align_plugin_oidc"),
        plugins.path(),
        "liblex_align_plugin_oidc",
        Some(("oidc", &oidc_config(&idp))),
    );
    let up = Upstreams::start();
    let port = free_port();
    let run = daemon_cmd(data.path(), REGISTRY_YAML, &up.env())
        .env("LEXALIGN_PLUGIN_DIRS", plugins.path().display().to_string())
        .env("AUTH_ENABLED", "true")
        .env("AUTH_BACKEND", "plugin:oidc")
        .env("BIND_HOST", "127.0.0.1")
        .env("BIND_PORT", port.to_string())
        .env("RUST_LOG", "error")
        .output()
        .await;
    assert_ne!(run.code, Some(0), "started without its key set: {run:?}");
    assert!(
        run.stderr.contains("AUTH_BACKEND=plugin:oidc")
            && run.stderr.contains("configure failed (400)")
            && run.stderr.contains("answered HTTP 503"),
        "{}",
        run.stderr
    );
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
        "something listens on {port}"
    );
    assert_eq!(idp.fetches(), 1);

    // check-config says so before anyone starts the daemon.
    let run = lex(data.path())
        .args(["check-config"])
        .env("LEXALIGN_DATA_DIR", data.path().display().to_string())
        .env("LEXALIGN_PLUGIN_DIRS", plugins.path().display().to_string())
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
    assert!(fail.contains("answered HTTP 503"), "{fail}");
    assert!(fail.contains("the daemon will refuse to start"), "{fail}");
}

// ---- 3. GitLab: operators' proposals become merge requests ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gitlab_plugin_proposes_in_a_running_daemon() {
    let data = tempfile::tempdir().unwrap();
    let plugins = tempfile::tempdir().unwrap();
    let (r1, e1) = (rsa(1, "r1"), ec("e1"));
    let idp = FakeJwks::start(jwks(&[&r1, &e1]));
    let gl = FakeGitLab::start(
        GITLAB_TOKEN,
        GITLAB_PROJECT,
        "main",
        &[("registry.yml", REGISTRY_YAML)],
    );
    let gitlab_cfg = json!({
        "api_url": gl.api_url(), "project": GITLAB_PROJECT,
        "token_env": "LEXALIGN_E2E_GITLAB_TOKEN",
    })
    .to_string();
    install(
        &rust_plugin("lex_align_plugin_oidc"),
        plugins.path(),
        "liblex_align_plugin_oidc",
        Some(("oidc", &oidc_config(&idp))),
    );
    install(
        &rust_plugin("lex_align_plugin_gitlab"),
        plugins.path(),
        "liblex_align_plugin_gitlab",
        Some(("gitlab", &gitlab_cfg)),
    );
    let up = Upstreams::start();
    let mut daemon = Daemon::start(
        daemon_cmd(data.path(), REGISTRY_YAML, &up.env())
            .env("LEXALIGN_PLUGIN_DIRS", plugins.path().display().to_string())
            .env("AUTH_ENABLED", "true")
            .env("AUTH_BACKEND", "plugin:oidc")
            .env("REGISTRY_PROPOSER", "plugin:gitlab")
            .env("LEXALIGN_ROLE_GROUPS", "operator=platform")
            .env("LEXALIGN_E2E_GITLAB_TOKEN", GITLAB_TOKEN)
            .env("RUST_LOG", "trace"),
    )
    .await;
    let log = drain_log(&mut daemon);
    let base = daemon.base.clone();
    let base = base.as_str();
    let operator = token_for(&r1, "olga", &["platform", "devs"]);
    let dev = token_for(&e1, "dan", &["devs"]);
    let secrets = vec![GITLAB_TOKEN.to_string(), operator.clone(), dev.clone()];

    let h = health(base, &operator).await;
    assert_eq!(h["proposer"], "plugin:gitlab", "{h}");
    let e = plugin(&h, "gitlab");
    assert_eq!(
        (e["kind"].as_str(), e["state"].as_str()),
        (Some("proposer"), Some("ready")),
        "{e}"
    );

    // A member of the operator group: a merge request, then a comment on it.
    let a = propose(base, &operator, "Polars", "approved").await;
    assert_eq!(a.code, 200, "{}", a.text);
    let v = a.json();
    assert_eq!(v["backend"], "plugin:gitlab", "{v}");
    assert_eq!(v["status"], "opened", "{v}");
    assert_eq!(v["branch"], "lex-align/approval/polars");
    let web = gl.api_url().trim_end_matches("/api/v4").to_string();
    assert_eq!(
        v["url"].as_str(),
        Some(format!("{web}/{GITLAB_PROJECT}/-/merge_requests/1").as_str()),
        "{v}"
    );
    let a = propose(base, &operator, "polars", "preferred").await;
    assert_eq!(a.code, 200, "{}", a.text);
    assert_eq!(a.json()["status"], "amended", "{}", a.text);
    let mrs = gl.merge_requests();
    assert_eq!(mrs.len(), 1);
    assert_eq!(mrs[0].source_branch, "lex-align/approval/polars");
    assert_eq!(mrs[0].notes.len(), 1);
    // The OIDC identity is who the merge request says asked.
    assert!(mrs[0].notes[0].contains("`olga`"), "{}", mrs[0].notes[0]);
    let proposed = gl
        .file("lex-align/approval/polars", "registry.yml")
        .unwrap();
    assert!(
        proposed.contains("  Polars:\n    status: preferred"),
        "{proposed}"
    );
    // The humans' comment survives the edit; main is untouched.
    assert!(proposed.starts_with("# Team registry"), "{proposed}");
    assert_eq!(gl.file("main", "registry.yml").unwrap(), REGISTRY_YAML);

    // Not a member of the group: a developer, refused before GitLab hears of it.
    let before = gl.requests();
    let a = propose(base, &dev, "duckdb", "approved").await;
    assert_eq!(a.code, 403, "{}", a.text);
    assert_eq!(gl.requests(), before, "GitLab was called for a developer");
    // What a developer (or an agent) may do is ask: the approval request
    // goes to GitLab as a merge request of its own, recorded on the request.
    let a = request_approval(base, &dev, "six").await;
    assert_eq!(a.code, 202, "{}", a.text);
    assert_eq!(a.json()["proposal"]["status"], "queued", "{}", a.text);
    let item = reviewed(base, &operator, "six").await;
    assert_eq!(item["proposal_status"], "opened", "{item}");
    assert_eq!(item["proposal_backend"], "plugin:gitlab", "{item}");
    assert_eq!(
        item["proposal_url"].as_str(),
        Some(format!("{web}/{GITLAB_PROJECT}/-/merge_requests/2").as_str()),
        "{item}"
    );
    let mrs = gl.merge_requests();
    assert_eq!(mrs[1].source_branch, "lex-align/approval/six");
    assert!(
        mrs[1].description.contains("`dan`"),
        "{}",
        mrs[1].description
    );

    // The GitLab token revoked, and a GitLab that echoes requests (headers
    // included) into its errors: a 502 naming the refusal, never the token.
    gl.set_revoked(true);
    gl.set_echo_errors(true);
    let a = propose(base, &operator, "duckdb", "approved").await;
    assert_eq!(a.code, 502, "{}", a.text);
    assert!(
        a.json()["detail"]
            .as_str()
            .unwrap()
            .starts_with("plugin:gitlab: GitLab refused the token (HTTP 401"),
        "{}",
        a.text
    );
    assert_not_in("the 502", a.text.as_bytes(), &secrets);
    // An approval request meanwhile: recorded as failed, with the reason
    // and without the token (the detail is stored in the database).
    let a = request_approval(base, &dev, "click").await;
    assert_eq!(a.code, 202, "{}", a.text);
    let item = reviewed(base, &operator, "click").await;
    assert_eq!(item["proposal_status"], "failed", "{item}");
    assert!(
        item["proposal_detail"]
            .as_str()
            .unwrap()
            .contains("GitLab refused the token (HTTP 401"),
        "{item}"
    );
    assert_not_in("the failed request", item.to_string().as_bytes(), &secrets);
    // GitLab down: a 502 too; evaluation is untouched.
    gl.set_revoked(false);
    gl.set_down(true);
    let a = propose(base, &operator, "duckdb", "approved").await;
    assert_eq!(a.code, 502, "{}", a.text);
    assert!(a.text.contains("HTTP 503"), "{}", a.text);
    assert_not_in("the 502", a.text.as_bytes(), &secrets);
    let a = evaluate(base, "policy-proj", Some(&dev)).await;
    assert_eq!(a.code, 200, "{}", a.text);
    // Back: the same request goes through, nothing of the failures left over.
    gl.set_down(false);
    gl.set_echo_errors(false);
    let a = propose(base, &operator, "duckdb", "approved").await;
    assert_eq!(a.code, 200, "{}", a.text);
    assert_eq!(a.json()["status"], "opened", "{}", a.text);
    assert_eq!(gl.merge_requests().len(), 3);
    assert_eq!(
        plugin(&health(base, &operator).await, "gitlab")["state"],
        "ready"
    );

    let log = stop(daemon, log).await;
    let text = String::from_utf8_lossy(&log);
    assert!(text.contains("TRACE"), "not a trace log:\n{text}");
    assert!(text.contains("gitlab"), "the plugin load is not logged");
    assert_not_in("the daemon's trace log", &log, &secrets);
    assert_not_in("the database", &database_bytes(data.path()), &secrets);
}
