//! Access control against the real app on 127.0.0.1 with a real SQLite
//! file: the header, API-key and webhook authenticators, roles on every
//! route, project-scoped keys, overrides, rate and body limits, keys at
//! rest and the exposure check. Each attack sits next to its success case.

mod common;

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{start_with, Options, TestServer};
use lex_align_daemon::auth::AuthSettings;
use lex_align_daemon::Config;
use lex_align_store::{AccessDb, CreatedKey};
use reqwest::{Method, RequestBuilder};
use serde_json::{json, Value};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

// ---- harness -------------------------------------------------------------

fn parse_bool(s: &str) -> Option<bool> {
    match s.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Some(true),
        "0" | "false" | "no" | "off" => Some(false),
        _ => None,
    }
}

/// Auth settings as the daemon reads them from the environment, with
/// `AUTH_ENABLED=true` unless `env` says otherwise.
fn auth_from(env: &[(&str, &str)]) -> AuthSettings {
    let mut vars: HashMap<String, String> = HashMap::from([("AUTH_ENABLED".into(), "true".into())]);
    for (k, v) in env {
        vars.insert(k.to_string(), v.to_string());
    }
    AuthSettings::from_lookup(&|k: &str| vars.get(k).cloned(), parse_bool)
        .expect("valid auth settings")
}

/// A key to create before the daemon starts: (name, role, project).
type KeySpec = (&'static str, &'static str, Option<&'static str>);

/// A daemon with `env`'s auth settings, the keys of `keys` already in its
/// database (by name), and `extra` as the last word on the configuration.
async fn start_auth(
    env: &[(&str, &str)],
    keys: &[KeySpec],
    extra: impl FnOnce(&mut Config) + Send + 'static,
) -> (TestServer, HashMap<&'static str, CreatedKey>) {
    let auth = auth_from(env);
    let keys = keys.to_vec();
    let made = Arc::new(Mutex::new(HashMap::new()));
    let out = made.clone();
    let server = start_with(Options {
        tweak: Some(Box::new(move |c: &mut Config| {
            c.auth = auth;
            extra(c);
            let db = AccessDb::open(&c.database_path).unwrap();
            for (name, role, project) in keys {
                let k = db.create_key(name, role, project, None).unwrap();
                out.lock().unwrap().insert(name, k);
            }
        })),
        ..Options::default()
    })
    .await;
    let keys = std::mem::take(&mut *made.lock().unwrap());
    (server, keys)
}

fn apikey_env() -> Vec<(&'static str, &'static str)> {
    vec![("AUTH_BACKEND", "apikey")]
}

/// A response, read whole.
#[derive(Debug)]
struct Reply {
    status: u16,
    headers: reqwest::header::HeaderMap,
    body: Value,
}

impl Reply {
    fn detail(&self) -> &str {
        self.body["detail"].as_str().unwrap_or("")
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// A 401 as the access layer sends it: `WWW-Authenticate: Bearer` and
    /// a JSON detail.
    fn assert_unauthorized(&self, what: &str) {
        assert_eq!(self.status, 401, "{what}: {self:?}");
        assert_eq!(self.header("www-authenticate"), Some("Bearer"), "{what}");
        assert!(!self.detail().is_empty(), "{what}: {self:?}");
    }
}

async fn send(rb: RequestBuilder) -> Reply {
    let r = rb.send().await.expect("the daemon answers");
    let status = r.status().as_u16();
    let headers = r.headers().clone();
    let text = r.text().await.unwrap();
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    Reply {
        status,
        headers,
        body,
    }
}

impl TestServer {
    fn req(&self, method: Method, path: &str) -> RequestBuilder {
        self.client
            .request(method, self.url(path))
            .header("X-LexAlign-Project", "proj")
    }

    /// `GET path` with `Authorization: Bearer key` and the project header.
    async fn get_as(&self, key: &str, project: &str, path: &str) -> Reply {
        send(
            self.client
                .get(self.url(path))
                .bearer_auth(key)
                .header("X-LexAlign-Project", project),
        )
        .await
    }

    async fn evaluate_as(&self, key: &str, project: &str, package: &str) -> Reply {
        self.get_as(key, project, &format!("/api/v1/evaluate?package={package}"))
            .await
    }

    /// `(requester, auth_method, verdict)` of the newest audit row of a
    /// project, read from the SQLite file.
    fn last_audit(&self, project: &str) -> (String, Option<String>, String) {
        self.handle.store().flush().unwrap();
        let c = rusqlite::Connection::open(&self.handle.state.config.database_path).unwrap();
        c.busy_timeout(Duration::from_secs(5)).unwrap();
        c.query_row(
            "SELECT requester, auth_method, verdict FROM audit_log WHERE project = ?1 \
             ORDER BY seq DESC LIMIT 1",
            [project],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap()
    }
}

/// Repeats `probe` (every 25 ms, up to `within`) until `done` holds on its
/// answer; returns that answer, or panics with the last one.
async fn eventually<F, Fut>(within: Duration, mut probe: F, done: impl Fn(&Reply) -> bool) -> Reply
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Reply>,
{
    let deadline = Instant::now() + within;
    loop {
        let r = probe().await;
        if done(&r) {
            return r;
        }
        assert!(
            Instant::now() < deadline,
            "not reached within {within:?}; last answer: {r:?}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap()
}

// ---- 1. header backend ---------------------------------------------------

fn header_env() -> Vec<(&'static str, &'static str)> {
    vec![
        ("AUTH_BACKEND", "header"),
        ("LEXALIGN_ROLE_GROUPS", "operator=platform, agent=bots"),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn header_backend_trusts_only_the_proxy_and_maps_groups_to_roles() {
    let (s, _) = start_auth(&header_env(), &[], |_| {}).await;
    let as_user = |rb: RequestBuilder, groups: &str| {
        rb.header("X-Forwarded-User", "alice")
            .header("X-Forwarded-Email", "alice@example.com")
            .header("X-Forwarded-Groups", groups)
    };

    // From the trusted proxy (127.0.0.1): in, and the audit row says who.
    let r = send(
        as_user(s.client.get(s.url("/api/v1/evaluate?package=httpx")), "dev")
            .header("X-LexAlign-Project", "hdr"),
    )
    .await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.body["verdict"], "ALLOWED");
    let (requester, method, verdict) = s.last_audit("hdr");
    assert_eq!(requester, "alice");
    assert_eq!(method.as_deref(), Some("header"));
    assert_eq!(verdict, "ALLOWED");

    // The same headers from 127.0.0.2: not a trusted proxy, not read.
    let outsider = reqwest::Client::builder()
        .local_address("127.0.0.2".parse::<std::net::IpAddr>().unwrap())
        .build()
        .unwrap();
    let rows = s.audit_rows();
    let r = send(
        as_user(
            outsider.get(s.url("/api/v1/evaluate?package=httpx")),
            "platform",
        )
        .header("X-LexAlign-Project", "hdr"),
    )
    .await;
    r.assert_unauthorized("untrusted peer");
    assert_eq!(
        r.detail(),
        "Request from 127.0.0.2 not in trusted_proxies; header auth requires the request to come through a configured upstream proxy."
    );
    let r = send(as_user(
        outsider.post(s.url("/api/v1/registry/reload")),
        "platform",
    ))
    .await;
    r.assert_unauthorized("untrusted peer, operator group");
    assert_eq!(s.audit_rows(), rows, "nothing evaluated for the outsider");

    // From the proxy but without the user header (or a blank one): 401.
    for user in [None, Some("   ")] {
        let mut rb = s
            .req(Method::GET, "/api/v1/evaluate?package=httpx")
            .header("X-Forwarded-Email", "alice@example.com")
            .header("X-Forwarded-Groups", "platform");
        if let Some(u) = user {
            rb = rb.header("X-Forwarded-User", u);
        }
        let r = send(rb).await;
        r.assert_unauthorized("no user header");
        assert_eq!(
            r.detail(),
            "Missing X-Forwarded-User header from upstream proxy."
        );
    }

    // platform → operator: may reload.
    let r = send(as_user(
        s.client.post(s.url("/api/v1/registry/reload")),
        "dev, platform",
    ))
    .await;
    assert_eq!(r.status, 200, "{r:?}");

    // bots → agent: may evaluate, may not read reports.
    let r = send(as_user(
        s.req(Method::GET, "/api/v1/evaluate?package=httpx"),
        "bots",
    ))
    .await;
    assert_eq!(r.status, 200, "{r:?}");
    let r = send(as_user(s.req(Method::GET, "/api/v1/reports/legal"), "bots")).await;
    assert_eq!(r.status, 403, "{r:?}");
    assert!(r.detail().contains("needs the developer role"), "{r:?}");
    assert!(r.detail().contains("alice has the agent role"), "{r:?}");
    // An agent group does not lower a higher one.
    let r = send(as_user(
        s.req(Method::GET, "/api/v1/reports/legal"),
        "bots,platform",
    ))
    .await;
    assert_eq!(r.status, 200, "{r:?}");

    // No mapped group → the default, developer: reports yes, reload no.
    for groups in ["", "dev"] {
        let r = send(as_user(s.req(Method::GET, "/api/v1/reports/legal"), groups)).await;
        assert_eq!(r.status, 200, "groups {groups:?}: {r:?}");
        let r = send(as_user(
            s.client.post(s.url("/api/v1/registry/reload")),
            groups,
        ))
        .await;
        assert_eq!(r.status, 403, "groups {groups:?}: {r:?}");
        assert!(r.detail().contains("needs the operator role"), "{r:?}");
        assert!(r.detail().contains("developer role"), "{r:?}");
    }
}

// ---- 2. API keys -----------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_keys_are_checked_strictly_and_revocation_is_live() {
    let (s, _) = start_auth(&apikey_env(), &[], |_| {}).await;
    let db = AccessDb::open(&s.handle.state.config.database_path).unwrap();
    // Created beside the running daemon, as `lex-align admin keys create`.
    let ci = db.create_key("ci", "agent", None, None).unwrap();
    let ok = eventually(
        Duration::from_secs(1),
        || s.evaluate_as(&ci.key, "proj", "httpx"),
        |r| r.status == 200,
    )
    .await;
    assert_eq!(ok.body["verdict"], "ALLOWED");
    let (requester, method, _) = s.last_audit("proj");
    assert_eq!(requester, "ci");
    assert_eq!(method, Some(format!("apikey:{}", ci.record.id)));

    let url = s.url("/api/v1/evaluate?package=httpx");
    let plain = || s.client.get(&url).header("X-LexAlign-Project", "proj");
    let mut wrong = ci.key.clone();
    let last = wrong.pop().unwrap();
    wrong.push(if last == '0' { '1' } else { '0' });
    let attempts: Vec<(&str, RequestBuilder)> = vec![
        ("no Authorization", plain()),
        ("Bearer alone", plain().header("Authorization", "Bearer")),
        (
            "Bearer and a space",
            plain().header("Authorization", "Bearer "),
        ),
        ("Basic", plain().header("Authorization", "Basic x")),
        (
            "Basic with the key",
            plain().header("Authorization", format!("Basic {}", ci.key)),
        ),
        (
            "key without a scheme",
            plain().header("Authorization", ci.key.clone()),
        ),
        (
            "two Authorization headers",
            plain()
                .header("Authorization", format!("Bearer {}", ci.key))
                .header("Authorization", format!("Bearer {}", ci.key)),
        ),
        ("Bearer a b", plain().header("Authorization", "Bearer a b")),
        (
            "the key and more",
            plain().header("Authorization", format!("Bearer {} x", ci.key)),
        ),
        ("one character off", plain().bearer_auth(&wrong)),
        (
            "truncated",
            plain().bearer_auth(&ci.key[..ci.key.len() - 1]),
        ),
        ("prefix only", plain().bearer_auth("lxa_")),
        ("not a key", plain().bearer_auth("hunter2")),
        (
            "the hash instead of the key",
            plain().bearer_auth(&ci.record.key_hash),
        ),
    ];
    let rows = s.audit_rows();
    for (what, rb) in attempts {
        send(rb).await.assert_unauthorized(what);
    }
    assert_eq!(s.audit_rows(), rows, "no attempt got evaluated");
    let r = send(plain().bearer_auth(&wrong)).await;
    assert_eq!(r.detail(), "Invalid API key.");
    let r = send(plain()).await;
    assert!(r.detail().contains("Bearer token required"), "{r:?}");
    let r = send(plain().header("Authorization", "Basic x")).await;
    assert!(
        r.detail().contains("Malformed Authorization header"),
        "{r:?}"
    );

    // The scheme is case-insensitive; the key still works after all that.
    let r = send(plain().header("Authorization", format!("bearer {}", ci.key))).await;
    assert_eq!(r.status, 200, "{r:?}");

    // Revoked while the daemon runs: refused within a second.
    assert!(db.revoke_key(&ci.record.id).unwrap());
    let r = eventually(
        Duration::from_secs(1),
        || s.evaluate_as(&ci.key, "proj", "httpx"),
        |r| r.status != 200,
    )
    .await;
    r.assert_unauthorized("revoked");
    assert_eq!(r.detail(), "API key revoked.");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_keys_are_refused() {
    let (s, _) = start_auth(&apikey_env(), &[], |_| {}).await;
    let db = AccessDb::open(&s.handle.state.config.database_path).unwrap();
    let dead = db
        .create_key("dead", "operator", None, Some(Duration::ZERO))
        .unwrap();
    let brief = db
        .create_key("brief", "agent", None, Some(Duration::from_millis(1500)))
        .unwrap();

    // The short-lived key works once the daemon has it …
    let r = eventually(
        Duration::from_secs(1),
        || s.evaluate_as(&brief.key, "proj", "httpx"),
        |r| r.status == 200,
    )
    .await;
    assert_eq!(r.body["verdict"], "ALLOWED");
    // … the already expired one never does, and says why.
    let r = s.evaluate_as(&dead.key, "proj", "httpx").await;
    r.assert_unauthorized("expired at creation");
    assert!(r.detail().contains("expired"), "{r:?}");

    // Expiry is checked at each request: no refresh needed.
    let r = eventually(
        Duration::from_secs(3),
        || s.evaluate_as(&brief.key, "proj", "httpx"),
        |r| r.status != 200,
    )
    .await;
    r.assert_unauthorized("lapsed");
    assert!(r.detail().starts_with("API key expired at "), "{r:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_project_scoped_key_acts_only_for_its_project() {
    let (s, keys) = start_auth(
        &apikey_env(),
        &[
            ("web-ci", "developer", Some("web")),
            ("web-ops", "operator", Some("web")),
        ],
        |_| {},
    )
    .await;
    let k = &keys["web-ci"].key;

    let r = s.evaluate_as(k, "web", "httpx").await;
    assert_eq!(r.status, 200, "{r:?}");
    let r = s.evaluate_as(k, "billing", "httpx").await;
    assert_eq!(r.status, 403, "{r:?}");
    assert!(r.detail().contains("scoped to project `web`"), "{r:?}");
    assert!(r.detail().contains("`billing`"), "{r:?}");

    // Batch and approval requests are held to the header too.
    let r = send(
        s.client
            .post(s.url("/api/v1/evaluate/batch"))
            .bearer_auth(k)
            .header("X-LexAlign-Project", "billing")
            .json(&json!({"requirements": ["httpx"]})),
    )
    .await;
    assert_eq!(r.status, 403, "{r:?}");

    // Reports: the project must be named, and be its own.
    // (The approval-requests report is open to agents: see
    // a_scoped_key_reads_only_its_projects_approval_requests.)
    for report in ["legal", "security", "agents"] {
        let path = format!("/api/v1/reports/{report}");
        let bare = send(s.client.get(s.url(&path)).bearer_auth(k)).await;
        assert_eq!(bare.status, 403, "{report}: {bare:?}");
        assert!(bare.detail().contains("?project=web"), "{bare:?}");
        let r = send(
            s.client
                .get(s.url(&format!("{path}?project=web")))
                .bearer_auth(k),
        )
        .await;
        assert_eq!(r.status, 200, "{report}: {r:?}");
        let r = send(
            s.client
                .get(s.url(&format!("{path}?project=billing")))
                .bearer_auth(k),
        )
        .await;
        assert_eq!(r.status, 403, "{report}: {r:?}");
    }
    // Header and query must agree.
    let r = s
        .get_as(k, "web", "/api/v1/reports/legal?project=billing")
        .await;
    assert_eq!(r.status, 403, "{r:?}");
    let r = s.get_as(k, "web", "/api/v1/reports/legal").await;
    assert_eq!(r.status, 200, "{r:?}");
    // A repeated ?project= cannot smuggle another project past the check.
    let r = send(
        s.client
            .get(s.url("/api/v1/reports/legal?project=web&project=billing"))
            .bearer_auth(k),
    )
    .await;
    assert_eq!(r.status, 403, "{r:?}");

    // A scoped operator cannot grant overrides for another project.
    let ops = &keys["web-ops"].key;
    let grant = |project: &str| {
        json!({"package": "pyqt5", "project": project,
               "justification": "Qt commercial licence bought for web",
               "expires_at": rfc3339(OffsetDateTime::now_utc() + time::Duration::hours(1))})
    };
    let r = send(
        s.client
            .post(s.url("/api/v1/overrides"))
            .bearer_auth(ops)
            .header("X-LexAlign-Project", "web")
            .json(&grant("billing")),
    )
    .await;
    assert_eq!(r.status, 403, "{r:?}");
    let r = send(
        s.client
            .post(s.url("/api/v1/overrides"))
            .bearer_auth(ops)
            .header("X-LexAlign-Project", "web")
            .json(&grant("web")),
    )
    .await;
    assert_eq!(r.status, 201, "{r:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scoped_key_reads_only_its_projects_approval_requests() {
    let (s, keys) = start_auth(
        &apikey_env(),
        &[
            ("any-bot", "agent", None),
            ("web-bot", "agent", Some("web")),
        ],
        |_| {},
    )
    .await;
    for (key, project) in [("any-bot", "billing"), ("web-bot", "web")] {
        let r = send(
            s.client
                .post(s.url("/api/v1/approval-requests"))
                .bearer_auth(&keys[key].key)
                .header("X-LexAlign-Project", project)
                .json(&json!({"package": "six", "rationale": "py2/3 compatibility shims"})),
        )
        .await;
        assert_eq!(r.status, 202, "{project}: {r:?}");
    }
    let web = &keys["web-bot"].key;
    let path = "/api/v1/reports/approval-requests";

    // Its own project, named: its request and nothing else.
    let r = s.get_as(web, "web", &format!("{path}?project=web")).await;
    assert_eq!(r.status, 200, "{r:?}");
    let items = r.body["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{r:?}");
    assert_eq!(items[0]["project"], "web");
    // Another project, named: refused.
    let r = send(
        s.client
            .get(s.url(&format!("{path}?project=billing")))
            .bearer_auth(web),
    )
    .await;
    assert_eq!(r.status, 403, "{r:?}");

    // No project named: refused, or held to its own project — never billing's.
    let r = send(s.client.get(s.url(path)).bearer_auth(web)).await;
    if r.status != 403 {
        assert_eq!(r.status, 200, "{r:?}");
        let projects: Vec<&Value> = r.body["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| &i["project"])
            .collect();
        assert!(
            projects.iter().all(|p| *p == "web"),
            "a key scoped to web read {projects:?}"
        );
    }
}

// ---- 3. roles on every route ----------------------------------------------

/// Every route of `http::router`, with a body where it takes one.
fn all_routes() -> Vec<(Method, &'static str, Option<Value>)> {
    let yaml = json!({"yaml": "version: '1'\npackages: {}\n"});
    vec![
        (Method::GET, "/api/v1/health", None),
        (Method::GET, "/api/v1/evaluate?package=httpx", None),
        (
            Method::POST,
            "/api/v1/evaluate/batch",
            Some(json!({"requirements": ["httpx"]})),
        ),
        (
            Method::POST,
            "/api/v1/approval-requests",
            Some(json!({"package": "six", "rationale": "py2/3 compatibility shims"})),
        ),
        (Method::GET, "/api/v1/lsp", None),
        (Method::GET, lex_align_daemon::lsp::DOCS_PATH, None),
        (Method::GET, "/api/v1/registry", None),
        (Method::GET, "/api/v1/registry/pending", None),
        (Method::POST, "/api/v1/registry/proposals", Some(json!({}))),
        (Method::POST, "/api/v1/registry/parse-yaml", Some(yaml)),
        (Method::POST, "/api/v1/registry/reload", None),
        (Method::POST, "/api/v1/registry/webhook", Some(json!({}))),
        (Method::GET, "/api/v1/reports/legal", None),
        (Method::GET, "/api/v1/reports/security", None),
        (Method::GET, "/api/v1/reports/approval-requests", None),
        (Method::GET, "/api/v1/reports/projects", None),
        (Method::GET, "/api/v1/reports/agents", None),
        (Method::GET, "/api/v1/audit/verify", None),
        (Method::GET, "/api/v1/keys", None),
        (Method::POST, "/api/v1/overrides", Some(json!({}))),
        (Method::GET, "/api/v1/overrides", None),
        (Method::DELETE, "/api/v1/overrides/x", None),
        (Method::GET, "/metrics", None),
        (Method::GET, "/openapi.json", None),
        // Not routes: unknown paths and methods must not be probeable.
        (Method::GET, "/nowhere", None),
        (Method::GET, "/api/v1/overrides/x", None),
        (Method::POST, "/api/v1/health", None),
    ]
}

/// The paths `http/mod.rs` routes, read from its source, so a new route
/// cannot slip past [`all_routes`].
fn routed_paths() -> Vec<String> {
    let src =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/src/http/mod.rs")).unwrap();
    let mut out = Vec::new();
    for piece in src.split(".route(").skip(1) {
        let arg = piece.trim_start();
        let path = if let Some(rest) = arg.strip_prefix('"') {
            rest.split('"').next().unwrap().to_string()
        } else {
            let name = arg.split(',').next().unwrap().trim();
            assert_eq!(name, "crate::lsp::DOCS_PATH", "an unknown route constant");
            lex_align_daemon::lsp::DOCS_PATH.to_string()
        };
        out.push(path.replace("{id}", "x"));
    }
    assert!(out.len() >= 20, "routes not found in http/mod.rs: {out:?}");
    out
}

fn call(s: &TestServer, m: &Method, path: &str, body: &Option<Value>) -> RequestBuilder {
    let rb = s.req(m.clone(), path);
    match body {
        Some(b) => rb.json(b),
        None => rb,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_but_health_needs_credentials() {
    let (s, keys) = start_auth(&apikey_env(), &[("dev", "developer", None)], |_| {}).await;
    let routes = all_routes();
    for p in routed_paths() {
        assert!(
            routes
                .iter()
                .any(|(_, r, _)| r.split('?').next() == Some(p.as_str())),
            "route {p} of http/mod.rs is not in all_routes()"
        );
    }
    for (m, path, body) in &routes {
        let r = send(call(&s, m, path, body)).await;
        let what = format!("{m} {path}");
        if (m, *path) == (&Method::GET, "/api/v1/health") {
            assert_eq!(r.status, 200, "{what}: {r:?}");
        } else if *path == "/api/v1/registry/webhook" {
            // Authenticated by its own signature, not by the access layer.
            assert_eq!(r.status, 401, "{what}: {r:?}");
            assert_eq!(r.detail(), "Invalid webhook signature.");
        } else {
            r.assert_unauthorized(&what);
        }
    }
    // Nothing was evaluated or recorded for the anonymous callers.
    assert_eq!(s.audit_rows(), 0);
    let pending = || {
        s.get_as(
            &keys["dev"].key,
            "proj",
            "/api/v1/reports/approval-requests",
        )
    };
    assert_eq!(pending().await.body["items"], json!([]));

    // With a developer key the same requests get past authentication.
    for (m, path, body) in &routes {
        let r = send(call(&s, m, path, body).bearer_auth(&keys["dev"].key)).await;
        let what = format!("{m} {path} with a key");
        assert!(r.status < 500, "{what}: {r:?}");
        if *path != "/api/v1/registry/webhook" {
            assert_ne!(r.status, 401, "{what}: {r:?}");
        }
    }
    assert!(s.audit_rows() > 0);
    let r = pending().await;
    assert_eq!(r.body["items"].as_array().map(Vec::len), Some(1), "{r:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_role_reaches_above_itself() {
    let (s, keys) = start_auth(
        &apikey_env(),
        &[
            ("bot", "agent", None),
            ("dev", "developer", None),
            ("ops", "operator", None),
        ],
        |_| {},
    )
    .await;
    let (bot, dev, ops) = (&keys["bot"].key, &keys["dev"].key, &keys["ops"].key);

    let operator_routes: Vec<(Method, &str, Option<Value>)> = vec![
        (Method::POST, "/api/v1/registry/proposals", Some(json!({}))),
        (Method::POST, "/api/v1/registry/reload", None),
        (Method::POST, "/api/v1/overrides", Some(json!({}))),
        (Method::GET, "/api/v1/overrides", None),
        (Method::DELETE, "/api/v1/overrides/x", None),
        (Method::GET, "/api/v1/overrides?all=true", None),
    ];
    for (m, path, body) in &operator_routes {
        for (who, key) in [("bot", bot), ("dev", dev)] {
            let r = send(call(&s, m, path, body).bearer_auth(key)).await;
            assert_eq!(r.status, 403, "{who} {m} {path}: {r:?}");
            assert!(r.detail().contains("needs the operator role"), "{r:?}");
        }
        let r = send(call(&s, m, path, body).bearer_auth(ops)).await;
        assert!(
            ![401, 403].contains(&r.status) && r.status < 500,
            "ops {m} {path}: {r:?}"
        );
    }
    // What the operator got is the handler's answer, not the access layer's.
    let r = send(
        s.req(Method::DELETE, "/api/v1/overrides/x")
            .bearer_auth(ops),
    )
    .await;
    assert_eq!(r.status, 404, "{r:?}");
    let r = send(
        s.req(Method::POST, "/api/v1/registry/reload")
            .bearer_auth(ops),
    )
    .await;
    assert_eq!(r.status, 200, "{r:?}");

    let developer_routes = [
        "/api/v1/reports/legal",
        "/api/v1/reports/security",
        "/api/v1/registry/pending",
        lex_align_daemon::lsp::DOCS_PATH,
        "/api/v1/reports/projects",
        "/api/v1/reports/agents",
        "/api/v1/audit/verify",
        "/metrics",
        "/openapi.json",
    ];
    for path in developer_routes {
        let r = s.get_as(bot, "proj", path).await;
        assert_eq!(r.status, 403, "bot {path}: {r:?}");
        assert!(r.detail().contains("needs the developer role"), "{r:?}");
        assert!(r.detail().contains("bot has the agent role"), "{r:?}");
        for (who, key) in [("dev", dev), ("ops", ops)] {
            let r = s.get_as(key, "proj", path).await;
            assert_eq!(r.status, 200, "{who} {path}: {r:?}");
        }
    }

    // An agent does what agents do.
    let r = s.evaluate_as(bot, "proj", "httpx").await;
    assert_eq!(r.status, 200, "{r:?}");
    let r = s.get_as(bot, "proj", "/api/v1/registry").await;
    assert_eq!(r.status, 200, "{r:?}");
    // Its own approval queue too (docs/security.md).
    let r = s
        .get_as(bot, "proj", "/api/v1/reports/approval-requests")
        .await;
    assert_eq!(r.status, 200, "{r:?}");
}

/// The router files whose `.route(` calls make up the daemon's surface.
const ROUTER_FILES: [&str; 4] = [
    "src/http/mod.rs",
    "src/pages/mod.rs",
    "src/team/mod.rs",
    "src/lsp.rs",
];

/// Every `(METHOD, path)` routed by [`ROUTER_FILES`], read from their
/// source, so a route added anywhere is held to the table below.
fn routed_methods() -> Vec<(Method, String)> {
    let mut out = Vec::new();
    for file in ROUTER_FILES {
        let src =
            std::fs::read_to_string(format!("{}/{file}", env!("CARGO_MANIFEST_DIR"))).unwrap();
        for piece in src.split(".route(").skip(1) {
            // One route's text: up to the next chained call that is no route.
            let piece = [".merge(", ";", "\n}"]
                .iter()
                .filter_map(|end| piece.find(end))
                .min()
                .map_or(piece, |i| &piece[..i]);
            let arg = piece.trim_start();
            let path = if let Some(rest) = arg.strip_prefix('"') {
                rest.split('"').next().unwrap().to_string()
            } else {
                let name = arg.split(',').next().unwrap().trim();
                assert!(
                    name.ends_with("DOCS_PATH"),
                    "an unknown route constant {name} in {file}"
                );
                lex_align_daemon::lsp::DOCS_PATH.to_string()
            };
            let mut found = 0;
            for (word, m) in [
                ("get(", Method::GET),
                ("post(", Method::POST),
                ("put(", Method::PUT),
                ("patch(", Method::PATCH),
                ("delete(", Method::DELETE),
            ] {
                for (i, _) in piece.match_indices(word) {
                    let before = piece[..i].chars().next_back();
                    if !before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
                        out.push((m.clone(), path.clone()));
                        found += 1;
                    }
                }
            }
            assert!(found > 0, "no method found for {path} in {file}");
        }
    }
    assert!(out.len() >= 35, "routes not found: {out:?}");
    out
}

/// Who may call each route (docs/security.md, issue 9 §4), written out
/// here rather than taken from `auth::route_rule`, so that the test checks
/// the access layer against the documented table, not against itself.
/// `None`: not behind the access layer (health is open, the registry
/// webhook checks its own signature).
fn documented_role(m: &Method, path: &str) -> Option<Option<&'static str>> {
    let role = match (m.as_str(), path) {
        ("GET", "/api/v1/health") | ("POST", "/api/v1/registry/webhook") => None,
        ("GET", "/api/v1/evaluate")
        | ("POST", "/api/v1/evaluate/batch")
        | ("POST", "/api/v1/approval-requests")
        | ("GET", "/api/v1/reports/approval-requests")
        | ("GET", "/api/v1/registry")
        | ("POST", "/api/v1/registry/parse-yaml")
        | ("GET", "/api/v1/registry/events")
        | ("POST", "/api/v1/audit/ingest")
        | ("GET", "/api/v1/team/whoami")
        | ("GET", "/api/v1/keys")
        | ("GET", "/api/v1/lsp") => Some("agent"),
        ("GET", "/api/v1/reports/legal")
        | ("GET", "/api/v1/reports/security")
        | ("GET", "/api/v1/reports/projects")
        | ("GET", "/api/v1/reports/agents")
        | ("GET", "/api/v1/registry/pending")
        | ("GET", "/api/v1/audit/verify")
        | ("GET", "/api/v1/team/status")
        | ("GET", "/metrics")
        | ("GET", "/openapi.json")
        | ("GET", "/")
        | ("GET", "/dashboard/legal")
        | ("GET", "/dashboard/security")
        | ("GET", "/dashboard/agents")
        | ("GET", "/dashboard/registry")
        | ("GET", "/dashboard/registry/export.yml")
        | ("GET", "/docs/diagnostics") => Some("developer"),
        ("POST", "/api/v1/registry/proposals")
        | ("POST", "/api/v1/registry/reload")
        | ("POST", "/api/v1/overrides")
        | ("GET", "/api/v1/overrides")
        | ("DELETE", "/api/v1/overrides/{id}")
        | ("POST", "/dashboard/registry/decide")
        | ("POST", "/dashboard/registry/rules")
        | ("POST", "/dashboard/registry/policies") => Some("operator"),
        _ => return None,
    };
    Some(role)
}

/// Status and text of a reply, without reading a 2xx body (the event
/// stream never ends).
async fn status_of(rb: RequestBuilder) -> (u16, String) {
    let r = rb.send().await.expect("the daemon answers");
    let status = r.status().as_u16();
    let text = if status >= 300 {
        r.text().await.unwrap_or_default()
    } else {
        String::new()
    };
    (status, text)
}

/// The access layer's own refusal (handlers may send 403s of their own,
/// e.g. the dashboard's CSRF check, and those are past the role check).
fn refused_for_role(status: u16, text: &str) -> bool {
    status == 403 && text.contains("needs the ") && text.contains(" role")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_routed_route_holds_each_role_to_its_place() {
    let (s, keys) = start_auth(
        &apikey_env(),
        &[
            ("bot", "agent", None),
            ("dev", "developer", None),
            ("ops", "operator", None),
        ],
        |_| {},
    )
    .await;
    let ranks = ["agent", "developer", "operator"];
    let routes = routed_methods();
    let mut operator_routes = 0;
    for (m, path) in &routes {
        let what = format!("{m} {path}");
        let needed = documented_role(m, path)
            .unwrap_or_else(|| panic!("{what} is routed but not in documented_role()"));
        let url = path.replace("{id}", "x");
        let call = |key: Option<&str>| {
            let rb = s.req(m.clone(), &url);
            let rb = if *m == Method::POST {
                rb.json(&json!({}))
            } else {
                rb
            };
            match key {
                Some(k) => rb.bearer_auth(k),
                None => rb,
            }
        };
        let Some(needed) = needed else { continue };
        if needed == "operator" {
            operator_routes += 1;
        }
        let (status, text) = status_of(call(None)).await;
        assert_eq!(status, 401, "anonymous {what}: {text}");
        let need = ranks.iter().position(|r| *r == needed).unwrap();
        for (rank, who) in ["bot", "dev", "ops"].iter().enumerate() {
            let (status, text) = status_of(call(Some(&keys[who].key))).await;
            assert!(
                status < 500 && status != 401,
                "{who} {what}: {status} {text}"
            );
            if rank < need {
                assert!(
                    refused_for_role(status, &text),
                    "{who} {what}: {status} {text}"
                );
                assert!(
                    text.contains(&format!("needs the {needed} role")),
                    "{who} {what}: {text}"
                );
            } else {
                assert!(
                    !refused_for_role(status, &text),
                    "{who} {what}: {status} {text}"
                );
            }
        }
    }
    // Registry proposals, reload, deciding requests (the workshop), rules,
    // policies and the three override routes.
    assert_eq!(operator_routes, 8, "{routes:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_tells_strangers_only_that_it_is_up() {
    let (s, keys) = start_auth(&apikey_env(), &[("bot", "agent", None)], |_| {}).await;

    let with_key = s.get_as(&keys["bot"].key, "proj", "/api/v1/health").await;
    assert_eq!(with_key.status, 200, "{with_key:?}");
    assert!(with_key.body["registry_path"].is_string(), "{with_key:?}");
    assert!(with_key.body["upstreams"].is_object(), "{with_key:?}");
    assert_eq!(with_key.body["auth_enabled"], true, "{with_key:?}");

    for rb in [
        s.client.get(s.url("/api/v1/health")),
        s.client
            .get(s.url("/api/v1/health"))
            .bearer_auth("lxa_not-a-key"),
        s.client
            .get(s.url("/api/v1/health"))
            .header("Authorization", "Basic x"),
    ] {
        let r = send(rb).await;
        assert_eq!(r.status, 200, "{r:?}");
        // docs/security.md: exactly this, and nothing about the setup.
        assert_eq!(
            r.body,
            json!({"status": "ok", "auth_enabled": true}),
            "{r:?}"
        );
        let obj = r.body.as_object().unwrap();
        for hidden in ["registry_path", "upstreams", "proposer", "last_reload"] {
            assert!(
                !obj.contains_key(hidden),
                "{hidden} shown anonymously: {r:?}"
            );
        }
        let text = r.body.to_string();
        assert!(!text.contains(&s.index.json_url()), "{text}");
        assert!(
            !text.contains(&*s.registry_path.to_string_lossy()),
            "{text}"
        );
    }
}

// ---- 4. webhook verifier ----------------------------------------------------

/// An outside verifier: the token's first `-`-separated word picks its answer.
struct Verifier {
    url: String,
    seen: Arc<Mutex<Vec<Value>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Verifier {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Verifier {
    /// How often `token` was asked about.
    fn calls(&self, token: &str) -> usize {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .filter(|b| b["token"] == token)
            .count()
    }
}

const SLOW: Duration = Duration::from_millis(1500);

async fn verify(
    axum::extract::State(seen): axum::extract::State<Arc<Mutex<Vec<Value>>>>,
    body: axum::body::Bytes,
) -> axum::response::Response {
    use axum::http::StatusCode;
    use axum::response::IntoResponse;
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    seen.lock().unwrap().push(body.clone());
    let token = body["token"].as_str().unwrap_or_default();
    let ok = || axum::Json(json!({"id": "alice", "groups": ["platform"]})).into_response();
    match token.split('-').next().unwrap_or_default() {
        "ok" => ok(),
        "dev" => axum::Json(json!({"id": "bob", "email": "bob@example.com"})).into_response(),
        "reject" => StatusCode::UNAUTHORIZED.into_response(),
        "forbid" => StatusCode::FORBIDDEN.into_response(),
        "boom" => (StatusCode::INTERNAL_SERVER_ERROR, "oops").into_response(),
        "garbage" => (StatusCode::OK, "<html>surely not JSON</html>").into_response(),
        "noid" => axum::Json(json!({"email": "x@example.com", "groups": []})).into_response(),
        "blankid" => axum::Json(json!({"id": "  "})).into_response(),
        "slow" => {
            tokio::time::sleep(SLOW).await;
            ok()
        }
        _ => StatusCode::UNAUTHORIZED.into_response(),
    }
}

async fn start_verifier() -> Verifier {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let app = axum::Router::new()
        .route("/verify", axum::routing::post(verify))
        .with_state(seen.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/verify", listener.local_addr().unwrap());
    let task = tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    Verifier { url, seen, task }
}

async fn start_webhook(url: &str, cache_s: &str) -> TestServer {
    let env = [
        ("AUTH_BACKEND", "webhook"),
        ("AUTH_VERIFY_URL", url),
        ("AUTH_VERIFY_TIMEOUT", "0.3"),
        ("AUTH_VERIFY_CACHE_S", cache_s),
        ("LEXALIGN_ROLE_GROUPS", "operator=platform"),
    ];
    start_auth(&env, &[], |_| {}).await.0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn webhook_verifier_failures_are_401_never_5xx_nor_anonymous() {
    let v = start_verifier().await;
    let s = start_webhook(&v.url, "30").await;

    // A yes: the verifier saw {"token": …}, the groups gave the role.
    let r = send(
        s.req(Method::POST, "/api/v1/registry/reload")
            .bearer_auth("ok-1"),
    )
    .await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(v.seen.lock().unwrap()[0], json!({"token": "ok-1"}));
    let r = s.evaluate_as("dev-1", "hook", "httpx").await;
    assert_eq!(r.status, 200, "{r:?}");
    let (requester, method, _) = s.last_audit("hook");
    assert_eq!(
        (requester.as_str(), method.as_deref()),
        ("bob", Some("webhook"))
    );
    let r = send(
        s.req(Method::POST, "/api/v1/registry/reload")
            .bearer_auth("dev-1"),
    )
    .await;
    assert_eq!(r.status, 403, "no platform group, default role: {r:?}");

    let rows = s.audit_rows();
    for (token, detail) in [
        ("reject-1", "Token rejected by verifier."),
        ("forbid-1", "Token rejected by verifier."),
        ("boom-1", "Authentication service error."),
        ("garbage-1", "Verifier returned non-JSON response."),
        ("noid-1", "Verifier response missing required `id` field."),
        (
            "blankid-1",
            "Verifier response missing required `id` field.",
        ),
    ] {
        let r = s.evaluate_as(token, "hook", "httpx").await;
        r.assert_unauthorized(token);
        assert_eq!(r.detail(), detail, "{token}");
        assert_eq!(v.calls(token), 1, "{token} was asked about");
    }

    // Slower than AUTH_VERIFY_TIMEOUT: given up on, quickly.
    let t0 = Instant::now();
    let r = s.evaluate_as("slow-1", "hook", "httpx").await;
    let took = t0.elapsed();
    r.assert_unauthorized("slow");
    assert_eq!(r.detail(), "Authentication service unreachable.");
    assert!(took < SLOW - Duration::from_millis(300), "took {took:?}");

    // No token at all: not asked, not anonymous.
    let before = v.seen.lock().unwrap().len();
    let r = send(s.req(Method::GET, "/api/v1/evaluate?package=httpx")).await;
    r.assert_unauthorized("no token");
    assert_eq!(r.detail(), "Bearer token required.");
    let r = send(
        s.req(Method::GET, "/api/v1/evaluate?package=httpx")
            .header("Authorization", "Basic b2stMQ=="),
    )
    .await;
    r.assert_unauthorized("Basic");
    assert_eq!(v.seen.lock().unwrap().len(), before);
    assert_eq!(s.audit_rows(), rows, "no failure got evaluated");

    // The verifier down (a port nobody listens on).
    let gone = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let down_url = format!("http://{}/verify", gone.local_addr().unwrap());
    drop(gone);
    let down = start_webhook(&down_url, "30").await;
    let r = down.evaluate_as("ok-1", "hook", "httpx").await;
    r.assert_unauthorized("verifier down");
    assert_eq!(r.detail(), "Authentication service unreachable.");
    assert_eq!(down.audit_rows(), 0);
}

/// A remembered yes lapses after AUTH_VERIFY_CACHE_S: the next request
/// asks the verifier again (a token revoked there stops working within
/// the TTL, never later).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_cache_entries_lapse_after_their_ttl() {
    let v = start_verifier().await;
    let d = start_webhook(&v.url, "2").await;
    for _ in 0..3 {
        let r = d.evaluate_as("ok-ttl", "hook", "httpx").await;
        assert_eq!(r.status, 200, "{r:?}");
    }
    assert_eq!(v.calls("ok-ttl"), 1, "remembered within the TTL");
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let r = d.evaluate_as("ok-ttl", "hook", "httpx").await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(v.calls("ok-ttl"), 2, "asked again once the TTL ran out");
    let r = d.evaluate_as("ok-ttl", "hook", "httpx").await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(v.calls("ok-ttl"), 2, "and remembered again");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_cache_remembers_only_yes_and_never_sees_api_keys() {
    let v = start_verifier().await;
    let cached = start_webhook(&v.url, "30").await;
    let uncached = start_webhook(&v.url, "0").await;

    for _ in 0..2 {
        let r = cached.evaluate_as("ok-cached", "hook", "httpx").await;
        assert_eq!(r.status, 200, "{r:?}");
    }
    assert_eq!(v.calls("ok-cached"), 1, "a yes is remembered");
    // Another token is its own entry.
    let r = cached.evaluate_as("ok-other", "hook", "httpx").await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(v.calls("ok-other"), 1);

    for _ in 0..2 {
        let r = uncached.evaluate_as("ok-uncached", "hook", "httpx").await;
        assert_eq!(r.status, 200, "{r:?}");
    }
    assert_eq!(v.calls("ok-uncached"), 2, "cache 0 asks every time");

    for _ in 0..2 {
        let r = cached.evaluate_as("reject-cached", "hook", "httpx").await;
        r.assert_unauthorized("rejected");
    }
    assert_eq!(v.calls("reject-cached"), 2, "a no is not remembered");

    // An lxa_ token is judged as an API key, never sent out.
    let fake = format!("lxa_{}", "0".repeat(64));
    let r = cached.evaluate_as(&fake, "hook", "httpx").await;
    r.assert_unauthorized("unknown key");
    assert_eq!(r.detail(), "Invalid API key.");
    let db = AccessDb::open(&cached.handle.state.config.database_path).unwrap();
    let key = db.create_key("ci", "agent", None, None).unwrap();
    let r = eventually(
        Duration::from_secs(1),
        || cached.evaluate_as(&key.key, "hook", "httpx"),
        |r| r.status == 200,
    )
    .await;
    assert_eq!(r.body["verdict"], "ALLOWED");
    assert_eq!(v.calls(&fake), 0);
    assert_eq!(v.calls(&key.key), 0);
    assert!(
        v.seen
            .lock()
            .unwrap()
            .iter()
            .all(|b| !b.to_string().contains("lxa_")),
        "a key reached the verifier"
    );
}

// ---- 4b. credentials never logged --------------------------------------------

#[derive(Clone, Default)]
struct LogBuf(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for LogBuf {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Every log line of this test binary, at every level.
fn logs() -> &'static LogBuf {
    static LOGS: std::sync::OnceLock<LogBuf> = std::sync::OnceLock::new();
    LOGS.get_or_init(|| {
        let buf = LogBuf::default();
        let writer = buf.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish();
        tracing::subscriber::set_global_default(subscriber).expect("one subscriber");
        buf
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn no_key_or_token_reaches_the_logs() {
    let logs = logs();
    let v = start_verifier().await;
    let s = start_webhook(&v.url, "30").await;
    let db = AccessDb::open(&s.handle.state.config.database_path).unwrap();
    let key = db.create_key("ci", "agent", None, None).unwrap();
    let ok = eventually(
        Duration::from_secs(1),
        || s.evaluate_as(&key.key, "logs", "httpx"),
        |r| r.status == 200,
    )
    .await;
    assert_eq!(ok.body["verdict"], "ALLOWED");
    let mut wrong = key.key.clone();
    let last = wrong.pop().unwrap();
    wrong.push(if last == '0' { '1' } else { '0' });
    assert_eq!(s.evaluate_as(&wrong, "logs", "httpx").await.status, 401);
    assert!(db.revoke_key(&key.record.id).unwrap());
    eventually(
        Duration::from_secs(1),
        || s.evaluate_as(&key.key, "logs", "httpx"),
        |r| r.status == 401,
    )
    .await;

    // Tokens for the verifier: accepted, refused, failing, slow, unreachable.
    let secret = |word: &str| format!("{word}-s3cr3t{}", "q".repeat(12));
    for word in ["ok", "reject", "boom", "garbage", "slow"] {
        let r = s.evaluate_as(&secret(word), "logs", "httpx").await;
        assert!(r.status == 200 || r.status == 401, "{word}: {r:?}");
    }
    let gone = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let down_url = format!("http://{}/verify", gone.local_addr().unwrap());
    drop(gone);
    let down = start_webhook(&down_url, "30").await;
    down.evaluate_as(&secret("down"), "logs", "httpx")
        .await
        .assert_unauthorized("verifier down");

    let text = String::from_utf8_lossy(&logs.0.lock().unwrap()).into_owned();
    // The capture works: the failures above were logged …
    assert!(text.contains("auth verifier answered an error"), "{text}");
    assert!(text.contains("auth verifier unreachable"), "{text}");
    // … and what was presented was not.
    let hash = &key.record.key_hash;
    for needle in [
        key.key.as_str(),
        &key.key[4..],
        wrong.as_str(),
        "s3cr3tqqqq",
    ] {
        assert!(!text.contains(needle), "{needle} in the logs");
    }
    assert!(!text.contains(hash.as_str()), "a key hash in the logs");
}

// ---- 5. overrides ----------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overrides_let_one_denied_package_through_for_a_while() {
    let (s, keys) = start_auth(
        &apikey_env(),
        &[("bot", "agent", None), ("ops", "operator", None)],
        |_| {},
    )
    .await;
    let (bot, ops) = (&keys["bot"].key, &keys["ops"].key);
    let grant = |body: Value| {
        send(
            s.client
                .post(s.url("/api/v1/overrides"))
                .bearer_auth(ops)
                .json(&body),
        )
    };

    let r = s.evaluate_as(bot, "web", "pyqt5").await;
    assert_eq!(r.body["verdict"], "DENIED", "{r:?}");
    assert!(r.body.get("override").is_none_or(Value::is_null), "{r:?}");
    let denied_reason = r.body["reason"].as_str().unwrap().to_string();

    // Validation first.
    let now = OffsetDateTime::now_utc();
    let base = json!({"package": "pyqt5", "project": "web",
                      "justification": "Qt commercial licence bought for the web team",
                      "expires_at": rfc3339(now + time::Duration::hours(1))});
    let with = |field: &str, value: Value| {
        let mut b = base.clone();
        if value.is_null() {
            b.as_object_mut().unwrap().remove(field);
        } else {
            b[field] = value;
        }
        b
    };
    let nineteen = "short justification";
    assert_eq!(nineteen.chars().count(), 19);
    for (what, body) in [
        (
            "19-char justification",
            with("justification", json!(nineteen)),
        ),
        (
            "padded 19-char justification",
            with("justification", json!(format!("   {nineteen}   "))),
        ),
        (
            "expires in the past",
            with(
                "expires_at",
                json!(rfc3339(now - time::Duration::minutes(1))),
            ),
        ),
        (
            "expires in 91 days",
            with("expires_at", json!(rfc3339(now + time::Duration::days(91)))),
        ),
        ("no expires_at", with("expires_at", Value::Null)),
        ("expires_at not a time", with("expires_at", json!("soon"))),
        ("no justification", with("justification", Value::Null)),
        ("no project", with("project", Value::Null)),
        ("bad package", with("package", json!("../etc"))),
    ] {
        let r = grant(body).await;
        assert_eq!(r.status, 422, "{what}: {r:?}");
    }
    let r = send(s.client.get(s.url("/api/v1/overrides")).bearer_auth(ops)).await;
    assert_eq!(r.body["overrides"], json!([]), "nothing granted yet: {r:?}");
    assert_eq!(
        s.evaluate_as(bot, "web", "pyqt5").await.body["verdict"],
        "DENIED"
    );

    // A short override: granted, applied to that project only.
    let expires = OffsetDateTime::now_utc() + time::Duration::seconds(3);
    let justification = "Qt commercial licence bought for the web team";
    let r = grant(with("expires_at", json!(rfc3339(expires)))).await;
    assert_eq!(r.status, 201, "{r:?}");
    let id = r.body["id"].as_str().unwrap().to_string();
    assert_eq!(r.body["approver"], "ops");
    assert_eq!(r.body["project"], "web");

    let r = s.evaluate_as(bot, "web", "pyqt5").await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.body["verdict"], "ALLOWED", "{r:?}");
    let o = &r.body["override"];
    assert_eq!(o["id"], id.as_str(), "{r:?}");
    assert_eq!(o["approver"], "ops");
    assert_eq!(o["justification"], justification);
    assert_eq!(o["original_reason"], denied_reason.as_str());
    let shown = OffsetDateTime::parse(o["expires_at"].as_str().unwrap(), &Rfc3339).unwrap();
    assert!((shown - expires).abs() < time::Duration::seconds(1), "{o}");
    assert_eq!(s.last_audit("web").2, "ALLOWED");

    let r = s.evaluate_as(bot, "mobile", "pyqt5").await;
    assert_eq!(r.body["verdict"], "DENIED", "another project: {r:?}");
    assert_eq!(s.last_audit("mobile").2, "DENIED");

    let r = send(s.client.get(s.url("/api/v1/overrides")).bearer_auth(ops)).await;
    assert_eq!(r.status, 200, "{r:?}");
    let listed = r.body["overrides"].as_array().unwrap();
    assert_eq!(listed.len(), 1, "{r:?}");
    assert_eq!(listed[0]["id"], id.as_str());
    assert_eq!(listed[0]["package"], "pyqt5");

    // It lapses while the daemon runs: DENIED again, no restart.
    let r = eventually(
        Duration::from_secs(6),
        || s.evaluate_as(bot, "web", "pyqt5"),
        |r| r.body["verdict"] == "DENIED",
    )
    .await;
    assert!(
        OffsetDateTime::now_utc() >= expires,
        "denied before the override lapsed"
    );
    assert!(r.body.get("override").is_none_or(Value::is_null), "{r:?}");
    assert_eq!(s.last_audit("web").2, "DENIED");

    // A long one (20 characters, 89 days: both limits accepted), revoked.
    let twenty = "twenty chars exactly";
    assert_eq!(twenty.chars().count(), 20);
    let r = grant(json!({"package": "PyQt5", "project": "web", "justification": twenty,
                         "expires_at": rfc3339(OffsetDateTime::now_utc() + time::Duration::days(89))}))
    .await;
    assert_eq!(r.status, 201, "{r:?}");
    let id2 = r.body["id"].as_str().unwrap().to_string();
    let r = s.evaluate_as(bot, "web", "pyqt5").await;
    assert_eq!(r.body["verdict"], "ALLOWED", "{r:?}");
    assert_eq!(r.body["override"]["id"], id2.as_str());
    let r = send(s.client.get(s.url("/api/v1/overrides")).bearer_auth(ops)).await;
    let ids: Vec<&str> = r.body["overrides"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec![id2.as_str()], "only the active one: {r:?}");
    let r = send(
        s.client
            .get(s.url("/api/v1/overrides?all=true"))
            .bearer_auth(ops),
    )
    .await;
    assert_eq!(r.body["overrides"].as_array().unwrap().len(), 2, "{r:?}");

    let r = send(
        s.client
            .delete(s.url(&format!("/api/v1/overrides/{id2}")))
            .bearer_auth(ops),
    )
    .await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.body["revoked"], true);
    assert_eq!(r.body["revoked_by"], "ops");
    let r = s.evaluate_as(bot, "web", "pyqt5").await;
    assert_eq!(r.body["verdict"], "DENIED", "revoked: {r:?}");
    let r = send(
        s.client
            .delete(s.url(&format!("/api/v1/overrides/{id2}")))
            .bearer_auth(ops),
    )
    .await;
    assert_eq!(r.status, 404, "revoked twice: {r:?}");
    let r = send(s.client.get(s.url("/api/v1/overrides")).bearer_auth(ops)).await;
    assert_eq!(r.body["overrides"], json!([]), "{r:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overrides_lapsing_within_a_week_are_named_in_health() {
    let (s, keys) = start_auth(
        &apikey_env(),
        &[
            ("ops", "operator", None),
            ("bot", "agent", None),
            ("web-bot", "agent", Some("web")),
        ],
        |_| {},
    )
    .await;
    let now = OffsetDateTime::now_utc();
    let mut ids = HashMap::new();
    for (name, project, days) in [
        ("web-soon", "web", 2),
        ("web-later", "web", 30),
        ("mobile-soon", "mobile", 6),
    ] {
        let r = send(
            s.client
                .post(s.url("/api/v1/overrides"))
                .bearer_auth(&keys["ops"].key)
                .json(&json!({"package": "pyqt5", "project": project,
                              "justification": "Qt commercial licence bought for this team",
                              "expires_at": rfc3339(now + time::Duration::days(days))})),
        )
        .await;
        assert_eq!(r.status, 201, "{name}: {r:?}");
        ids.insert(name, r.body["id"].as_str().unwrap().to_string());
    }
    let lapsing = |r: &Reply| -> Vec<String> {
        r.body["lapsing_soon"]["overrides"]
            .as_array()
            .unwrap_or_else(|| panic!("no lapsing_soon.overrides: {r:?}"))
            .iter()
            .map(|o| o["id"].as_str().unwrap().to_string())
            .collect()
    };
    let health = |key: &str, project: Option<&str>| {
        let rb = s.client.get(s.url("/api/v1/health")).bearer_auth(key);
        send(match project {
            Some(p) => rb.header("X-LexAlign-Project", p),
            None => rb,
        })
    };

    // A project's brief: its override lapsing within 7 days, not the one in 30.
    let r = health(&keys["bot"].key, Some("web")).await;
    assert_eq!(lapsing(&r), vec![ids["web-soon"].clone()], "{r:?}");
    let o = &r.body["lapsing_soon"]["overrides"][0];
    assert_eq!(o["package"], "pyqt5");
    assert_eq!(o["approver"], "ops");
    // Without a project (an operator's `status`): every project's.
    let r = health(&keys["ops"].key, None).await;
    let mut all = lapsing(&r);
    all.sort();
    let mut want = vec![ids["web-soon"].clone(), ids["mobile-soon"].clone()];
    want.sort();
    assert_eq!(all, want, "{r:?}");

    // Attack: a key scoped to web sees web's, whatever project it names.
    for project in [None, Some("mobile")] {
        let r = health(&keys["web-bot"].key, project).await;
        assert_eq!(r.status, 200, "{r:?}");
        assert_eq!(
            lapsing(&r),
            vec![ids["web-soon"].clone()],
            "{project:?}: {r:?}"
        );
    }
    // Anonymous: only that the daemon is up.
    let r = send(s.client.get(s.url("/api/v1/health"))).await;
    assert!(r.body.get("lapsing_soon").is_none(), "{r:?}");
}

// ---- 6. limits --------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limit_is_per_identity() {
    let (s, keys) = start_auth(
        &[
            ("AUTH_BACKEND", "apikey"),
            ("LEXALIGN_RATE_LIMIT_PER_MINUTE", "3"),
        ],
        &[("a", "agent", None), ("b", "agent", None)],
        |_| {},
    )
    .await;
    let (a, b) = (&keys["a"].key, &keys["b"].key);
    for i in 0..3 {
        let r = s.evaluate_as(a, "proj", "httpx").await;
        assert_eq!(r.status, 200, "request {i}: {r:?}");
    }
    let r = s.evaluate_as(a, "proj", "httpx").await;
    assert_eq!(r.status, 429, "{r:?}");
    let wait: u64 = r
        .header("retry-after")
        .expect("Retry-After")
        .parse()
        .unwrap();
    assert!((1..=20).contains(&wait), "Retry-After {wait}");
    assert!(
        r.detail().contains("Rate limit of 3 requests per minute"),
        "{r:?}"
    );
    assert!(r.detail().contains(&format!("retry in {wait} s")), "{r:?}");
    assert_eq!(s.audit_rows(), 3, "the refused request was not evaluated");

    // Another identity has its own allowance.
    for i in 0..3 {
        let r = s.evaluate_as(b, "proj", "httpx").await;
        assert_eq!(r.status, 200, "b, request {i}: {r:?}");
    }
    // Failed logins are refused before the limiter (they are 401, not 429).
    let r = s.evaluate_as("lxa_nope", "proj", "httpx").await;
    r.assert_unauthorized("unknown key");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_over_max_body_bytes_is_413() {
    let (s, keys) = start_auth(&apikey_env(), &[("bot", "agent", None)], |c| {
        c.max_body_bytes = 2048
    })
    .await;
    let bot = &keys["bot"].key;
    let post = |body: &Value| {
        send(
            s.client
                .post(s.url("/api/v1/evaluate/batch"))
                .bearer_auth(bot)
                .header("X-LexAlign-Project", "proj")
                .json(body),
        )
    };
    let small = json!({"requirements": ["httpx", "six"]});
    assert!(small.to_string().len() < 2048);
    let r = post(&small).await;
    assert_eq!(r.status, 200, "{r:?}");

    let many: Vec<String> = (0..300).map(|i| format!("package-{i}")).collect();
    let big = json!({ "requirements": many });
    assert!(big.to_string().len() > 2048);
    let rows = s.audit_rows();
    let r = post(&big).await;
    assert_eq!(r.status, 413, "{r:?}");
    assert!(r.detail().contains("LEXALIGN_MAX_BODY_BYTES"), "{r:?}");
    assert_eq!(s.audit_rows(), rows);
    // Also for routes with another body reader.
    let r = send(
        s.client
            .post(s.url("/api/v1/approval-requests"))
            .bearer_auth(bot)
            .header("X-LexAlign-Project", "proj")
            .json(&json!({"package": "flask", "rationale": "x".repeat(4096)})),
    )
    .await;
    assert_eq!(r.status, 413, "{r:?}");
}

// ---- 7. keys at rest --------------------------------------------------------

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// Every file beside the database, with its bytes.
fn files_beside(db: &Path) -> Vec<(String, Vec<u8>)> {
    let dir = db.parent().unwrap();
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if let Ok(bytes) = std::fs::read(&p) {
                out.push((p.display().to_string(), bytes));
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_database_never_holds_a_key_in_clear() {
    let (s, keys) = start_auth(
        &apikey_env(),
        &[("bot", "agent", None), ("ops", "operator", None)],
        |_| {},
    )
    .await;
    let db_path = s.handle.state.config.database_path.clone();
    let access = AccessDb::open(&db_path).unwrap();
    let late = access.create_key("late", "developer", None, None).unwrap();
    for k in keys.values().map(|k| &k.key) {
        for package in ["httpx", "pyqt5", "six"] {
            assert_eq!(s.evaluate_as(k, "proj", package).await.status, 200);
        }
    }
    eventually(
        Duration::from_secs(1),
        || s.get_as(&late.key, "proj", "/api/v1/reports/legal"),
        |r| r.status == 200,
    )
    .await;
    assert!(access.revoke_key(&late.record.id).unwrap());
    s.handle.store().flush().unwrap();

    let files = files_beside(&db_path);
    let names: Vec<&str> = files.iter().map(|(n, _)| n.as_str()).collect();
    assert!(
        names.iter().any(|n| *n == db_path.display().to_string()),
        "{names:?}"
    );
    let all: Vec<&CreatedKey> = keys.values().chain([&late]).collect();
    for k in &all {
        let secret = k.key.strip_prefix(lex_align_store::KEY_PREFIX).unwrap();
        for (name, bytes) in &files {
            assert!(
                !contains(bytes, k.key.as_bytes()),
                "{} in {name}",
                k.record.name
            );
            assert!(
                !contains(bytes, secret.as_bytes()),
                "{} in {name}",
                k.record.name
            );
        }
        // What is kept is the hash (so the search above can find things).
        assert!(
            files
                .iter()
                .any(|(_, b)| contains(b, k.record.key_hash.as_bytes())),
            "{}'s hash is nowhere",
            k.record.name
        );
    }
}

// ---- 8. exposure -------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_anonymous_daemon_on_the_network() {
    for host in ["0.0.0.0", "::", "192.0.2.10"] {
        let dir = tempfile::tempdir().unwrap();
        let mut config = Config::new(dir.path().join("data"));
        config.bind_host = host.into();
        config.bind_port = 0;
        let db = config.database_path.clone();
        let e = tokio::time::timeout(Duration::from_secs(5), lex_align_daemon::serve(config))
            .await
            .unwrap_or_else(|_| panic!("{host}: served anonymously"))
            .expect_err("an anonymous network daemon must not start");
        let msg = format!("{e:#}");
        assert!(msg.contains("LEXALIGN_ALLOW_ANONYMOUS_NETWORK"), "{msg}");
        assert!(msg.contains("AUTH_ENABLED"), "{msg}");
        assert!(!db.exists(), "{host}: the database was opened");
    }

    // The ways out: loopback, authentication on, or the explicit opt-in.
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::new(dir.path());
    for host in ["127.0.0.1", "::1", "localhost", "[::1]"] {
        config.bind_host = host.into();
        assert!(config.check_exposure().is_ok(), "{host}");
    }
    config.bind_host = "0.0.0.0".into();
    assert!(config.check_exposure().is_err());
    config.auth = auth_from(&[("AUTH_BACKEND", "apikey")]);
    assert!(config.check_exposure().is_ok());
    config.auth = auth_from(&[
        ("AUTH_ENABLED", "false"),
        ("LEXALIGN_ALLOW_ANONYMOUS_NETWORK", "1"),
    ]);
    assert!(config.check_exposure().is_ok());
}
