//! Team mode: a team server and a personal daemon on 127.0.0.1, the link
//! between them through a TCP proxy the test cuts and restores.

mod common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{start_with, Options, TestServer};
use lex_align_daemon::auth::AuthSettings;
use lex_align_daemon::team::FollowSettings;
use lex_align_daemon::Config;
use lex_align_store::{AccessDb, CreatedKey};
use serde_json::{json, Value};

/// A TCP relay to `target` that can be cut (every connection dropped, new
/// ones refused) and restored: the team server "goes away".
struct Proxy {
    addr: std::net::SocketAddr,
    up: Arc<AtomicBool>,
    conns: Arc<Mutex<Vec<tokio::task::JoinHandle<()>>>>,
    accept: tokio::task::JoinHandle<()>,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.accept.abort();
        self.cut();
    }
}

impl Proxy {
    async fn start(target: std::net::SocketAddr) -> Proxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let up = Arc::new(AtomicBool::new(true));
        let conns: Arc<Mutex<Vec<tokio::task::JoinHandle<()>>>> = Arc::default();
        let accept = tokio::spawn({
            let (up, conns) = (up.clone(), conns.clone());
            async move {
                loop {
                    let Ok((mut inbound, _)) = listener.accept().await else {
                        return;
                    };
                    if !up.load(Ordering::SeqCst) {
                        drop(inbound);
                        continue;
                    }
                    let task = tokio::spawn(async move {
                        if let Ok(mut outbound) = tokio::net::TcpStream::connect(target).await {
                            let _ =
                                tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                        }
                    });
                    conns.lock().unwrap().push(task);
                }
            }
        });
        Proxy {
            addr,
            up,
            conns,
            accept,
        }
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn cut(&self) {
        self.up.store(false, Ordering::SeqCst);
        for t in self.conns.lock().unwrap().drain(..) {
            t.abort();
        }
    }

    fn restore(&self) {
        self.up.store(true, Ordering::SeqCst);
    }
}

fn api_key_auth() -> AuthSettings {
    let vars: HashMap<&str, &str> =
        HashMap::from([("AUTH_ENABLED", "true"), ("AUTH_BACKEND", "apikey")]);
    AuthSettings::from_lookup(&|k: &str| vars.get(k).map(|v| v.to_string()), |s| match s {
        "true" | "1" => Some(true),
        "false" | "0" => Some(false),
        _ => None,
    })
    .unwrap()
}

struct Team {
    team: TestServer,
    key: CreatedKey,
    proxy: Proxy,
}

/// A team server with API keys and an agent key for alice's laptop.
async fn team_server() -> Team {
    let made: Arc<Mutex<Option<CreatedKey>>> = Arc::default();
    let out = made.clone();
    let team = start_with(Options {
        tweak: Some(Box::new(move |c: &mut Config| {
            c.auth = api_key_auth();
            c.team.keepalive = Duration::from_millis(500);
            let db = AccessDb::open(&c.database_path).unwrap();
            *out.lock().unwrap() =
                Some(db.create_key("alice-laptop", "agent", None, None).unwrap());
        })),
        ..Options::default()
    })
    .await;
    let key = made.lock().unwrap().take().unwrap();
    let addr = team.base.trim_start_matches("http://").parse().unwrap();
    let proxy = Proxy::start(addr).await;
    Team { team, key, proxy }
}

/// A personal daemon (no auth, loopback) following `team` through its proxy.
async fn personal(team: &Team) -> TestServer {
    let mut follow = FollowSettings::new(&team.proxy.url(), Some(team.key.key.clone()));
    follow.poll = Duration::from_millis(500);
    follow.timeout = Duration::from_millis(1500);
    follow.ship_every = Duration::from_millis(50);
    start_with(Options {
        registry: None,
        tweak: Some(Box::new(move |c: &mut Config| c.team.follow = Some(follow))),
        ..Options::default()
    })
    .await
}

async fn health_team(p: &TestServer) -> Value {
    let (status, v) = p.get("/api/v1/health").await;
    assert_eq!(status, 200, "{v}");
    v["team"].clone()
}

/// Waits (bounded) until `cond` holds on the personal daemon's `team` health.
async fn wait_team(p: &TestServer, what: &str, cond: impl Fn(&Value) -> bool) -> Value {
    let mut last = Value::Null;
    for _ in 0..200 {
        let t = health_team(p).await;
        if cond(&t) {
            return t;
        }
        last = t;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{what}: never reached; last team health: {last}");
}

async fn wait_relayed(team: &TestServer, n: u64) {
    for _ in 0..200 {
        if team.handle.store().relayed_count().unwrap() >= n {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(team.handle.store().relayed_count().unwrap(), n);
}

fn team_rows(team: &TestServer) -> Vec<(String, String, Option<String>)> {
    team.handle.store().flush().unwrap();
    let c = rusqlite::Connection::open(team.handle.store().path()).unwrap();
    let mut stmt = c
        .prepare("SELECT requester, package, auth_method FROM audit_log ORDER BY seq")
        .unwrap();
    let rows = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    rows
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_registry_change_reaches_the_personal_daemon_within_two_seconds() {
    let t = team_server().await;
    let p = personal(&t).await;
    let link = wait_team(&p, "first sync", |v| {
        v["state"] == "following" && v["events_connected"] == true
    })
    .await;
    assert_eq!(link["registry_version"], "1.2", "{link}");
    assert_eq!(link["identity"]["id"], "alice-laptop", "{link}");
    assert_eq!(link["identity"]["role"], "agent", "{link}");
    let g1 = link["registry_generation"].as_u64().unwrap();
    let (_, v) = p.evaluate("package=pyqt5").await;
    assert_eq!(v["verdict"], "DENIED", "{v}");
    assert!(v.get("degraded").is_none(), "{v}");

    // ETag revalidation on the team server.
    let auth = format!("Bearer {}", t.key.key);
    let r = t
        .team
        .client
        .get(t.team.url("/api/v1/registry"))
        .header("authorization", &auth)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let etag = r.headers()["etag"].to_str().unwrap().to_string();
    assert_eq!(
        r.headers()["x-lexalign-registry-generation"]
            .to_str()
            .unwrap(),
        g1.to_string()
    );
    let r = t
        .team
        .client
        .get(t.team.url("/api/v1/registry"))
        .header("authorization", &auth)
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 304);
    // Without a key: refused.
    let r = t
        .team
        .client
        .get(t.team.url("/api/v1/registry/events"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);

    // The change: httpx banned on the team server.
    let changed = common::REGISTRY_YAML
        .replace("version: \"1.2\"", "version: \"1.3\"")
        .replace(
            "  httpx:\n    status: preferred\n    reason: Standard async HTTP client.",
            "  httpx:\n    status: banned\n    reason: Banned by the team today.",
        );
    std::fs::write(&t.team.registry_path, changed).unwrap();
    let started = Instant::now();
    t.team.handle.registry().reload("api").await.unwrap();
    let link = wait_team(&p, "the change", |v| v["registry_version"] == "1.3").await;
    let took = started.elapsed();
    assert!(took < Duration::from_secs(2), "propagation took {took:?}");
    assert!(link["registry_generation"].as_u64().unwrap() > g1, "{link}");
    assert_eq!(link["lag_generations"], 0, "{link}");
    let (_, v) = p.evaluate("package=httpx").await;
    assert_eq!(v["verdict"], "DENIED", "{v}");
    // Same engine, same registry: the same verdict as the team's own.
    let r = t
        .team
        .client
        .get(t.team.url("/api/v1/evaluate?package=httpx"))
        .header("authorization", &auth)
        .header("x-lexalign-project", "proj")
        .send()
        .await
        .unwrap();
    let tv: Value = r.json().await.unwrap();
    assert_eq!(tv["verdict"], v["verdict"]);
    assert_eq!(tv["reason"], v["reason"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn verdicts_land_once_through_an_outage_and_the_chain_verifies() {
    let t = team_server().await;
    let p = personal(&t).await;
    wait_team(&p, "first sync", |v| v["state"] == "following").await;

    for pkg in ["pyqt5", "requests", "httpx"] {
        let (s, v) = p.evaluate(&format!("package={pkg}")).await;
        assert_eq!(s, 200, "{v}");
    }
    wait_relayed(&t.team, 3).await;
    let rows = team_rows(&t.team);
    assert_eq!(rows.len(), 3);
    for (requester, _, method) in &rows {
        assert_eq!(requester, "anonymous");
        assert_eq!(method.as_deref(), Some("relay:alice-laptop"));
    }
    let link = wait_team(&p, "drained", |v| v["outbox"]["depth"] == 0).await;
    assert!(link["outbox"]["last_delivery_at"].is_string(), "{link}");

    // A retried batch never duplicates: send the same rows again.
    {
        let c = rusqlite::Connection::open(p.handle.store().path()).unwrap();
        c.execute("UPDATE outbox_cursor SET shipped_seq = 0", [])
            .unwrap();
    }
    wait_team(&p, "resent", |v| v["outbox"]["shipped_since_start"] == 6).await;
    assert_eq!(
        team_rows(&t.team).len(),
        3,
        "a resent batch duplicated rows"
    );

    // The team goes away: answers go on, flagged; the queue grows.
    t.proxy.cut();
    let link = wait_team(&p, "degraded", |v| v["state"] == "degraded").await;
    assert!(link["degraded"]["reason"].is_string(), "{link}");
    for pkg in ["pyqt5", "six", "requests", "pyqt5"] {
        let (s, v) = p.evaluate(&format!("package={pkg}")).await;
        assert_eq!(s, 200, "{v}");
        assert!(v["degraded"]["reason"].is_string(), "{v}");
        assert!(v["degraded"]["since"].is_string(), "{v}");
    }
    let (s, v) = p
        .post_json(
            "/api/v1/evaluate/batch",
            &json!({"requirements": ["pyqt5", "httpx"]}),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    assert!(
        v["degraded"].is_object() && v["results"][1]["degraded"].is_object(),
        "{v}"
    );
    let link = wait_team(&p, "queued", |v| v["outbox"]["depth"] == 6).await;
    assert_eq!(link["state"], "degraded");
    assert_eq!(team_rows(&t.team).len(), 3);

    // Back: the queue drains, degraded disappears, every row exactly once.
    t.proxy.restore();
    wait_team(&p, "recovered", |v| {
        v["state"] == "following" && v["outbox"]["depth"] == 0
    })
    .await;
    let (_, v) = p.evaluate("package=pyqt5").await;
    assert!(v.get("degraded").is_none(), "{v}");
    wait_relayed(&t.team, 10).await;
    let rows = team_rows(&t.team);
    assert_eq!(rows.len(), 10);
    assert!(t.team.handle.store().verify().unwrap().ok);
    assert_eq!(p.audit_rows(), 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_revoked_key_stops_the_link_and_answers_go_on_flagged() {
    let t = team_server().await;
    let p = personal(&t).await;
    wait_team(&p, "first sync", |v| v["state"] == "following").await;
    let db = AccessDb::open(t.team.handle.store().path()).unwrap();
    assert!(db.revoke_key(&t.key.record.id).unwrap());
    t.team.handle.state.refresh_access(true).await;

    let (s, _) = p.evaluate("package=pyqt5").await;
    assert_eq!(s, 200);
    let link = wait_team(&p, "revoked", |v| v["state"] == "revoked").await;
    assert!(
        link["revoked"]["reason"].as_str().unwrap().contains("401"),
        "{link}"
    );
    let (s, v) = p.evaluate("package=pyqt5").await;
    assert_eq!(s, 200);
    assert_eq!(v["verdict"], "DENIED");
    assert!(
        v["degraded"]["reason"].as_str().unwrap().contains("401"),
        "{v}"
    );
    // Stopped, not retrying: the queue keeps the rows.
    tokio::time::sleep(Duration::from_millis(600)).await;
    let link = health_team(&p).await;
    assert_eq!(link["state"], "revoked");
    assert_eq!(link["outbox"]["depth"], 2, "{link}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ingest_is_idempotent_and_a_scoped_key_ships_only_its_project() {
    let t = team_server().await;
    let auth = format!("Bearer {}", t.key.key);
    let row = |id: &str| {
        json!({"row_id": id, "ts": "2026-01-02T03:04:05.000006+00:00", "project": "proj",
               "requester": "bob", "package": "six", "canonical": "six", "version": null,
               "requirement": null, "resolved_version": null, "verdict": "ALLOWED",
               "denial_category": "", "reason": "ok", "license": "MIT", "cve_ids": [],
               "max_cvss": null, "registry_status": null, "agent_model": null,
               "agent_version": null, "source": "api", "auth_method": "anonymous"})
    };
    let post = |body: Value| {
        t.team
            .client
            .post(t.team.url("/api/v1/audit/ingest"))
            .header("authorization", &auth)
            .json(&body)
            .send()
    };
    let r = post(json!({"rows": [row("r1"), row("r2")]})).await.unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["new"], json!(["r1", "r2"]));
    let r = post(json!({"rows": [row("r2"), row("r3")]})).await.unwrap();
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["new"], json!(["r3"]));
    assert_eq!(v["duplicate"], json!(["r2"]));
    assert_eq!(t.team.audit_rows(), 3);
    let r = post(json!({"rows": [{"row_id": "x"}]})).await.unwrap();
    assert_eq!(r.status(), 422);
    let r = t
        .team
        .client
        .post(t.team.url("/api/v1/audit/ingest"))
        .json(&json!({"rows": []}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);

    let db = AccessDb::open(t.team.handle.store().path()).unwrap();
    let scoped = db.create_key("ci", "agent", Some("other"), None).unwrap();
    t.team.handle.state.refresh_access(true).await;
    let r = t
        .team
        .client
        .post(t.team.url("/api/v1/audit/ingest"))
        .header("authorization", format!("Bearer {}", scoped.key))
        .json(&json!({"rows": [row("r9")]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert!(t.team.handle.store().verify().unwrap().ok);
}

fn team_requests(team: &TestServer) -> Vec<Value> {
    let report = team
        .handle
        .store()
        .approval_requests_report(None, None)
        .unwrap();
    report["items"].as_array().cloned().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn approval_requests_go_to_the_team_and_wait_durably_while_it_is_away() {
    let t = team_server().await;
    let p = personal(&t).await;
    wait_team(&p, "first sync", |v| v["state"] == "following").await;

    // Live: the team's own answer, with its request id.
    let (s, v) = p
        .post_json(
            "/api/v1/approval-requests",
            &json!({"package": "six", "rationale": "tiny py2/3 shim"}),
        )
        .await;
    assert_eq!(s, 202, "{v}");
    assert_eq!(v["queued"], false, "{v}");
    assert_eq!(v["status"], "PENDING_REVIEW", "{v}");
    let items = team_requests(&t.team);
    assert_eq!(items.len(), 1, "{items:?}");
    assert_eq!(items[0]["id"], v["request_id"]);
    assert_eq!(items[0]["requester"], "alice-laptop");
    assert_eq!(items[0]["project"], "proj");
    // Nothing local: the request is the team's.
    let local = p
        .handle
        .store()
        .approval_requests_report(None, None)
        .unwrap();
    assert_eq!(local["items"].as_array().map(Vec::len), Some(0), "{local}");

    // A denied package is refused here, as on the team (nothing queued).
    let (s, v) = p
        .post_json(
            "/api/v1/approval-requests",
            &json!({"package": "pyqt5", "rationale": "please"}),
        )
        .await;
    assert_eq!(s, 409, "{v}");

    // Away: queued, said so, with the original's fields.
    t.proxy.cut();
    let (s, v) = p
        .post_json(
            "/api/v1/approval-requests",
            &json!({"package": "attrs", "rationale": "needed for models"}),
        )
        .await;
    assert_eq!(s, 202, "{v}");
    assert_eq!(v["queued"], true, "{v}");
    assert!(v["detail"].as_str().unwrap().contains("Queued"), "{v}");
    for field in [
        "request_id",
        "status",
        "package",
        "project",
        "agent_model",
        "agent_version",
        "proposal",
    ] {
        assert!(v.get(field).is_some(), "no {field} in {v}");
    }
    assert_eq!(v["package"], "attrs");
    let link = wait_team(&p, "queued", |v| v["forward"]["queued"] == 1).await;
    assert_eq!(link["state"], "degraded", "{link}");
    assert_eq!(team_requests(&t.team).len(), 1);

    // Back: delivered once, with its idempotency key.
    t.proxy.restore();
    let link = wait_team(&p, "delivered", |v| {
        v["forward"]["queued"] == 0 && v["state"] == "following"
    })
    .await;
    assert_eq!(link["forward"]["delivered"], 2, "{link}");
    let items = team_requests(&t.team);
    assert_eq!(items.len(), 2, "{items:?}");
    assert!(items.iter().any(|i| i["package"] == "attrs"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_proposal_the_key_may_not_make_is_refused_by_the_team_not_queued() {
    let t = team_server().await;
    let p = personal(&t).await;
    wait_team(&p, "first sync", |v| v["state"] == "following").await;
    // Locally the caller is the operator; the team sees an agent key.
    let (s, v) = p
        .post_json(
            "/api/v1/registry/proposals",
            &json!({"name": "six", "status": "approved"}),
        )
        .await;
    assert_eq!(s, 403, "{v}");
    assert!(v["detail"].as_str().unwrap().contains("operator"), "{v}");
    let link = health_team(&p).await;
    assert_eq!(
        link["state"], "following",
        "a role refusal is not a revoked key: {link}"
    );
    assert_eq!(link["forward"]["refused"], 1, "{link}");
    assert_eq!(link["forward"]["last_refused"]["status"], 403, "{link}");
    // The team's registry did not change.
    let (_, reg) = t.team.get_bare("/api/v1/registry").await;
    assert!(reg["packages"].get("six").is_none(), "{reg}");
    // Invalid rules are refused here and never sent.
    let (s, _) = p
        .post_json(
            "/api/v1/registry/proposals",
            &json!({"name": "six", "status": "nonsense"}),
        )
        .await;
    assert_eq!(s, 400);
    assert_eq!(health_team(&p).await["forward"]["refused"], 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_idempotency_key_replays_the_first_answer_to_its_caller_only() {
    let t = team_server().await;
    let db = AccessDb::open(t.team.handle.store().path()).unwrap();
    let other = db.create_key("bob-laptop", "agent", None, None).unwrap();
    t.team.handle.state.refresh_access(true).await;
    let post = |key: &str, package: &str| {
        t.team
            .client
            .post(t.team.url("/api/v1/approval-requests"))
            .bearer_auth(key)
            .header("x-lexalign-project", "proj")
            .header("idempotency-key", "k-1")
            .json(&json!({"package": package, "rationale": "r"}))
            .send()
    };
    let first = post(&t.key.key, "six").await.unwrap();
    assert_eq!(first.status(), 202);
    assert!(first.headers().get("idempotent-replayed").is_none());
    let first: Value = first.json().await.unwrap();
    // The retry (even with another body) gets the first answer; nothing new.
    let again = post(&t.key.key, "attrs").await.unwrap();
    assert_eq!(again.status(), 202);
    assert_eq!(again.headers()["idempotent-replayed"], "true");
    let again: Value = again.json().await.unwrap();
    assert_eq!(again, first);
    assert_eq!(team_requests(&t.team).len(), 1);
    // Attack: another caller reusing the key reads nothing of alice's.
    let bob = post(&other.key, "attrs").await.unwrap();
    assert_eq!(bob.status(), 202);
    assert!(bob.headers().get("idempotent-replayed").is_none());
    let bob: Value = bob.json().await.unwrap();
    assert_ne!(bob["request_id"], first["request_id"]);
    assert_eq!(team_requests(&t.team).len(), 2);
    // Without a key: refused before any replay.
    let r = t
        .team
        .client
        .post(t.team.url("/api/v1/approval-requests"))
        .header("x-lexalign-project", "proj")
        .header("idempotency-key", "k-1")
        .json(&json!({"package": "six", "rationale": "r"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
}

// ---------------------------------------------------------------------
// Upstream sharing: the team's upstream routes and the personal daemon's
// fallbacks.

/// `GET <raw path>` over a raw TCP connection, so the path reaches the
/// server exactly as written (an HTTP client would normalise `..`).
async fn raw_get(base: &str, path: &str, key: Option<&str>) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = base.trim_start_matches("http://");
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let auth = key
        .map(|k| format!("Authorization: Bearer {k}\r\n"))
        .unwrap_or_default();
    let req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\n{auth}Connection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).await.unwrap();
    let head = String::from_utf8_lossy(&out);
    head.split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no status line for {path}: {head}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn upstream_routes_need_a_key_and_reach_the_index_only_with_distribution_names() {
    let t = team_server().await;
    let base = t.team.base.clone();
    let key = t.key.key.clone();
    let routes = [
        "/api/v1/upstream/project/six",
        "/api/v1/upstream/release/six/1.16.0",
        "/api/v1/upstream/release-vulns/six/1.16.0",
        "/api/v1/upstream/advisories/six",
    ];
    // No key, a well-formed key nobody issued, a token of no known form:
    // 401, never a 5xx, and nothing asked upstream.
    let forged = format!("{}{}", lex_align_store::KEY_PREFIX, "0".repeat(43));
    for path in routes {
        for k in [None, Some(forged.as_str()), Some("not-a-key")] {
            assert_eq!(raw_get(&base, path, k).await, 401, "{path} with {k:?}");
        }
    }
    assert_eq!(
        t.team.index.requests(),
        0,
        "{:?}",
        t.team.index.request_counts()
    );
    assert_eq!(t.team.osv.requests(), 0);

    // With the agent key: real answers, a package the index lacks included.
    for path in routes {
        assert_eq!(raw_get(&base, path, Some(&key)).await, 200, "{path}");
    }
    let r = t
        .team
        .client
        .get(t.team.url("/api/v1/upstream/project/No_Such.Package-xyz"))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.unwrap(), json!({"found": false}));

    // Hostile names and versions: refused before any upstream call.
    let (index_before, osv_before) = (t.team.index.requests(), t.team.osv.requests());
    let long = "a".repeat(201);
    let hostile = [
        "/api/v1/upstream/project/..%2F..%2Fadmin".to_string(),
        "/api/v1/upstream/project/%2e%2e".to_string(),
        "/api/v1/upstream/project/six%2F..%2F..%2Fsimple".to_string(),
        "/api/v1/upstream/project/six%252F..%252Fx".to_string(),
        "/api/v1/upstream/project/http:%2F%2F127.0.0.1:1%2Fx".to_string(),
        "/api/v1/upstream/project/six%3Fpage=2".to_string(),
        "/api/v1/upstream/project/six%00".to_string(),
        format!("/api/v1/upstream/project/{long}"),
        "/api/v1/upstream/project/../../reports/legal".to_string(),
        "/api/v1/upstream/release/six/..".to_string(),
        "/api/v1/upstream/release/six/..%2F..%2Fjson".to_string(),
        "/api/v1/upstream/release/six/1.0%2F..%2F..%2Fsimple".to_string(),
        "/api/v1/upstream/release/six/.hidden".to_string(),
        "/api/v1/upstream/release/six/1.0%20OR%201".to_string(),
        format!("/api/v1/upstream/release/six/{}", "1".repeat(101)),
        "/api/v1/upstream/release-vulns/..%2Fsix/1.0".to_string(),
        "/api/v1/upstream/release-vulns/six/1.0%5C..".to_string(),
        "/api/v1/upstream/advisories/%2E%2E%2F%2E%2E".to_string(),
        "/api/v1/upstream/advisories/six/extra".to_string(),
    ];
    for path in &hostile {
        let status = raw_get(&base, path, Some(&key)).await;
        assert!(
            status == 404 || status == 400,
            "{path}: HTTP {status} (expected a refusal)"
        );
    }
    assert_eq!(
        (t.team.index.requests(), t.team.osv.requests()),
        (index_before, osv_before),
        "a hostile path reached an upstream: {:?}",
        t.team.index.request_counts()
    );
}

/// A personal daemon (its own registry file, the test registry) following
/// `team_url`; `poll` is also how long a failed team is skipped.
async fn personal_of(team_url: String, key: String, poll: Duration) -> TestServer {
    let mut follow = FollowSettings::new(&team_url, Some(key));
    follow.poll = poll;
    follow.timeout = Duration::from_millis(1000);
    start_with(Options {
        tweak: Some(Box::new(move |c: &mut Config| c.team.follow = Some(follow))),
        ..Options::default()
    })
    .await
}

/// What must agree between two daemons' answers for the same query.
fn verdict_fields(v: &Value) -> Value {
    let mut out = serde_json::Map::new();
    for f in [
        "verdict",
        "reason",
        "resolved_version",
        "license",
        "cve_ids",
        "max_cvss",
        "denial_category",
        "upstream_error",
    ] {
        out.insert(f.into(), v[f].clone());
    }
    Value::Object(out)
}

const QUERIES: [&str; 4] = [
    "package=six",
    "package=httpx",
    "package=jinja2&version=3.1.2",
    "package=no-such-package-xyz",
];

/// How a hostile team answers: status and body.
type Answer = fn() -> (u16, String);

/// A team server that answers its upstream routes with `answer` (and
/// everything else with 503), counting the upstream requests.
async fn hostile_team(answer: Answer) -> (String, Arc<std::sync::atomic::AtomicU64>) {
    use axum::response::IntoResponse;
    let asked = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let counter = asked.clone();
    let app = axum::Router::new().fallback(move |req: axum::extract::Request| {
        let counter = counter.clone();
        async move {
            if !req.uri().path().starts_with("/api/v1/upstream/") {
                return (axum::http::StatusCode::SERVICE_UNAVAILABLE, "away").into_response();
            }
            counter.fetch_add(1, Ordering::SeqCst);
            let (status, body) = answer();
            let status = axum::http::StatusCode::from_u16(status).unwrap();
            (status, [("content-type", "application/json")], body).into_response()
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (url, asked)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_malformed_or_oversized_team_answer_falls_back_to_the_own_upstream() {
    let standalone = common::start().await;
    let mut expected = Vec::new();
    for q in QUERIES {
        let (status, v) = standalone.evaluate(q).await;
        assert_eq!(status, 200, "{v}");
        expected.push(verdict_fields(&v));
    }
    let answers: [(&str, Answer); 6] = [
        ("not JSON", || (200, "<html>proxy error</html>".into())),
        ("a wrong shape", || {
            (200, r#"{"found": true, "project": {"name": 7}}"#.into())
        }),
        ("no found field", || (200, r#"{"records": []}"#.into())),
        ("records of the wrong type", || {
            (200, r#"{"found": true, "records": "none"}"#.into())
        }),
        ("5 MiB", || {
            let pad = "x".repeat(5 << 20);
            (200, format!(r#"{{"found": false, "pad": "{pad}"}}"#))
        }),
        ("HTTP 500", || (500, r#"{"detail": "boom"}"#.into())),
    ];
    for (what, answer) in answers {
        let (url, asked) = hostile_team(answer).await;
        let p = personal_of(url, "lxa_unused".into(), Duration::from_millis(1)).await;
        for (q, want) in QUERIES.iter().zip(&expected) {
            let (status, v) = p.evaluate(q).await;
            assert_eq!(status, 200, "{what}: {v}");
            assert_eq!(&verdict_fields(&v), want, "{what}: {q}: {v}");
        }
        assert!(
            asked.load(Ordering::SeqCst) > 0,
            "{what}: the team was not asked"
        );
        assert!(
            p.index.requests() > 0,
            "{what}: no fallback to the own index"
        );
    }
}

/// A team server that accepts connections and never answers (a stopped
/// process), recording the request paths it was sent.
async fn silent_team() -> (String, Arc<Mutex<Vec<String>>>) {
    use tokio::io::AsyncReadExt;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let paths: Arc<Mutex<Vec<String>>> = Arc::default();
    let seen = paths.clone();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let seen = seen.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 4096];
                let n = s.read(&mut buf).await.unwrap_or(0);
                let head = String::from_utf8_lossy(&buf[..n]).to_string();
                if let Some(p) = head.split_whitespace().nth(1) {
                    seen.lock().unwrap().push(p.to_string());
                }
                // Hold the connection open, answering nothing.
                let _ = s.read(&mut buf).await;
                tokio::time::sleep(Duration::from_secs(600)).await;
            });
        }
    });
    (url, paths)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_silent_team_costs_one_timeout_then_is_skipped() {
    let standalone = common::start().await;
    let (url, paths) = silent_team().await;
    // The skip window (the poll interval) outlasts the test.
    let p = personal_of(url, "lxa_unused".into(), Duration::from_secs(600)).await;
    let upstream_asks = || {
        paths
            .lock()
            .unwrap()
            .iter()
            .filter(|p| p.starts_with("/api/v1/upstream/"))
            .count()
    };
    let (status, first) = p.evaluate(QUERIES[0]).await;
    assert_eq!(status, 200, "{first}");
    let after_first = upstream_asks();
    // One lookup (or the few a single evaluation starts at once) waited.
    assert!(
        (1..=4).contains(&after_first),
        "{:?}",
        paths.lock().unwrap()
    );
    for q in QUERIES {
        let (status, v) = p.evaluate(q).await;
        let (_, want) = standalone.evaluate(q).await;
        assert_eq!(status, 200, "{v}");
        assert_eq!(verdict_fields(&v), verdict_fields(&want), "{q}");
    }
    assert_eq!(
        upstream_asks(),
        after_first,
        "the silent team was asked again"
    );
    assert_eq!(
        verdict_fields(&first),
        verdict_fields(&standalone.evaluate(QUERIES[0]).await.1)
    );
}
