//! Team mode with real processes: a team server (API keys on) and personal
//! daemons following it over 127.0.0.1. The team server is SIGKILLed and
//! SIGSTOPped under load; a personal daemon is SIGKILLed with a full queue.
//! Every wait polls with a deadline; no sleep stands for an assertion.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use lex_align_e2e::{free_port, Cmd, Daemon, Upstreams};
use serde_json::Value;

use crate::{apikey_daemon_in, create_key, daemon_cmd, lex, STARTER};

/// Generous: a loaded CI machine, debug builds, several daemons at once.
const DEADLINE: Duration = Duration::from_secs(60);

/// The team server: API keys, an agent key for the laptop and an operator
/// key; restartable on the same port.
struct TeamServer {
    dir: tempfile::TempDir,
    upstream_env: Vec<(String, String)>,
    port: u16,
    daemon: Daemon,
    agent_key: String,
    operator_key: String,
}

/// `lex-align daemon` as a team server with its data in `dir`.
fn team_cmd(dir: &Path, upstream_env: &[(String, String)], extra: &[(&str, &str)]) -> Cmd {
    let mut c = apikey_daemon_in(dir, upstream_env).env("LEXALIGN_TEAM_KEEPALIVE_SECONDS", "0.5");
    for (k, v) in extra {
        c = c.env(*k, *v);
    }
    c
}

impl TeamServer {
    async fn start(up: &Upstreams) -> TeamServer {
        TeamServer::start_with(up.env(), &[]).await
    }

    async fn start_with(upstream_env: Vec<(String, String)>, extra: &[(&str, &str)]) -> TeamServer {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("lexalign.sqlite");
        let agent_key = create_key(dir.path(), &db, "alice-laptop", "agent")
            .await
            .key;
        let operator_key = create_key(dir.path(), &db, "ops", "operator").await.key;
        std::fs::write(dir.path().join("registry.yml"), STARTER).unwrap();
        let port = free_port();
        let daemon = Daemon::start_on(team_cmd(dir.path(), &upstream_env, extra), port).await;
        TeamServer {
            dir,
            upstream_env,
            port,
            daemon,
            agent_key,
            operator_key,
        }
    }

    fn db(&self) -> PathBuf {
        self.dir.path().join("lexalign.sqlite")
    }

    fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    async fn restart(&mut self) {
        let cmd = team_cmd(self.dir.path(), &self.upstream_env, &[]);
        self.daemon = Daemon::start_on(cmd, self.port).await;
    }

    /// A registry change decided on the team server: the file, then a reload.
    async fn publish(&self, yaml: &str) {
        std::fs::write(self.dir.path().join("registry.yml"), yaml).unwrap();
        let r = reqwest::Client::new()
            .post(format!("{}/api/v1/registry/reload", self.base()))
            .bearer_auth(&self.operator_key)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{}", r.text().await.unwrap_or_default());
    }

    async fn verify_chain(&self) {
        let run = lex(self.dir.path())
            .args(["audit", "verify", "--db"])
            .args([self.db().display().to_string()])
            .output()
            .await;
        run.expect_code(0);
        assert!(run.stdout.contains("hash chain OK"), "{}", run.stdout);
    }

    /// `agent_version` → rows relayed into the team chain with it.
    fn relayed_tags(&self) -> HashMap<String, usize> {
        let c = rusqlite::Connection::open(self.db()).unwrap();
        let mut stmt = c
            .prepare(
                "SELECT agent_version, COUNT(*) FROM audit_log \
                 WHERE auth_method LIKE 'relay:%' GROUP BY agent_version",
            )
            .unwrap();
        let rows = stmt
            .query_map([], |r| {
                Ok((
                    r.get::<_, Option<String>>(0)?.unwrap_or_default(),
                    r.get::<_, i64>(1)? as usize,
                ))
            })
            .unwrap()
            .collect::<Result<HashMap<_, _>, _>>()
            .unwrap();
        rows
    }

    /// Personal row ids the team holds (`shipped_rows`, done).
    fn shipped_ids(&self) -> HashSet<String> {
        ids(
            &self.db(),
            "SELECT row_id FROM shipped_rows WHERE state = 'done'",
        )
    }

    fn relayed_rows(&self) -> usize {
        count(
            &self.db(),
            "SELECT COUNT(*) FROM audit_log WHERE auth_method LIKE 'relay:%'",
        )
    }
}

fn ids(db: &Path, sql: &str) -> HashSet<String> {
    let c = rusqlite::Connection::open(db).unwrap();
    let Ok(mut stmt) = c.prepare(sql) else {
        return HashSet::new();
    };
    let rows = stmt
        .query_map([], |r| r.get::<_, String>(0))
        .unwrap()
        .collect::<Result<HashSet<_>, _>>()
        .unwrap();
    rows
}

fn count(db: &Path, sql: &str) -> usize {
    let c = rusqlite::Connection::open(db).unwrap();
    c.query_row(sql, [], |r| r.get::<_, i64>(0))
        .map(|n| n as usize)
        .unwrap_or(0)
}

/// A personal daemon following `team` (no auth: loopback, one user).
struct Personal {
    dir: tempfile::TempDir,
    daemon: Daemon,
    team_url: String,
    key: String,
    upstream_env: Vec<(String, String)>,
}

/// `lex-align daemon` following `team_url` with its data in `dir`.
fn personal_cmd(dir: &Path, team_url: &str, key: &str, upstream_env: &[(String, String)]) -> Cmd {
    // Its own registry differs: what it answers with must be the team's.
    let local = STARTER.replace("version: \"1.2\"", "version: \"0.1-local\"");
    daemon_cmd(dir, &local, upstream_env)
        .env("LEXALIGN_TEAM_URL", team_url)
        .env("LEXALIGN_API_KEY", key)
        .env("LEXALIGN_TEAM_POLL_SECONDS", "0.5")
        .env("LEXALIGN_TEAM_TIMEOUT_SECONDS", "1")
}

impl Personal {
    async fn start(team: &TeamServer) -> Personal {
        Personal::start_with(team, team.upstream_env.clone()).await
    }

    async fn start_with(team: &TeamServer, upstream_env: Vec<(String, String)>) -> Personal {
        let dir = tempfile::tempdir().unwrap();
        let (team_url, key) = (team.base(), team.agent_key.clone());
        let daemon = Daemon::start(personal_cmd(dir.path(), &team_url, &key, &upstream_env)).await;
        Personal {
            dir,
            daemon,
            team_url,
            key,
            upstream_env,
        }
    }

    fn db(&self) -> PathBuf {
        self.dir.path().join("lexalign.sqlite")
    }

    fn base(&self) -> &str {
        &self.daemon.base
    }

    async fn restart(&mut self) {
        let cmd = personal_cmd(
            self.dir.path(),
            &self.team_url,
            &self.key,
            &self.upstream_env,
        );
        self.daemon = Daemon::start(cmd).await;
    }

    async fn team(&self) -> Value {
        let v: Value = reqwest::get(format!("{}/api/v1/health", self.base()))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        v["team"].clone()
    }

    /// Polls the `team` object of health until `cond` holds.
    async fn wait_team(&self, what: &str, cond: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + DEADLINE;
        loop {
            let t = self.team().await;
            if cond(&t) {
                return t;
            }
            assert!(
                Instant::now() < deadline,
                "{what}: not reached within {DEADLINE:?}; team health: {t}"
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    async fn evaluate(&self, package: &str) -> Value {
        reqwest::Client::new()
            .get(format!("{}/api/v1/evaluate", self.base()))
            .query(&[("package", package)])
            .header("X-LexAlign-Project", "web")
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    fn row_ids(&self) -> HashSet<String> {
        ids(&self.db(), "SELECT id FROM audit_log")
    }
}

/// Waits until the team holds every row of `p` exactly once (ids compared)
/// and every acknowledged tag appears once.
async fn assert_all_once(team: &TeamServer, p: &Personal, acked: &[String]) {
    let deadline = Instant::now() + DEADLINE;
    let local = loop {
        let local = p.row_ids();
        let shipped = team.shipped_ids();
        if local.len() >= acked.len() && local == shipped && team.relayed_rows() == local.len() {
            break local;
        }
        assert!(
            Instant::now() < deadline,
            "the team never held the personal log exactly: {} local rows, {} shipped ids, \
             {} relayed rows, {} acknowledged; missing on the team: {:?}",
            local.len(),
            shipped.len(),
            team.relayed_rows(),
            acked.len(),
            local.difference(&shipped).take(5).collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let tags = team.relayed_tags();
    for tag in acked {
        assert_eq!(
            tags.get(tag).copied(),
            Some(1),
            "acknowledged verdict {tag} is in the team log {:?} times",
            tags.get(tag)
        );
    }
    assert!(
        tags.values().all(|&n| n == 1),
        "a verdict landed twice in the team log"
    );
    assert_eq!(local.len(), team.relayed_rows());
    team.verify_chain().await;
}

/// What one answer of the load said.
struct Answer {
    tag: String,
    degraded: bool,
    /// Sent after the test saw the outage in health…
    sent_in_outage: bool,
    /// …and answered before the team was given back.
    before_recovery: bool,
}

/// Evaluations through the personal daemon from `workers` tasks, each
/// tagged (`X-LexAlign-Agent-Version`) so the team log can be checked
/// per verdict. Counts only complete 200 answers with a verdict.
struct Load {
    stop: Arc<AtomicBool>,
    outage: Arc<AtomicBool>,
    recovering: Arc<AtomicBool>,
    answers: Arc<Mutex<Vec<Answer>>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Load {
    fn start(base: &str, workers: usize) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let outage = Arc::new(AtomicBool::new(false));
        let recovering = Arc::new(AtomicBool::new(false));
        let answers: Arc<Mutex<Vec<Answer>>> = Arc::default();
        let client = reqwest::Client::new();
        let packages = ["httpx", "requests", "pyqt5", "six", "flask", "django"];
        let tasks = (0..workers)
            .map(|w| {
                let (stop, outage, recovering, answers, client) = (
                    stop.clone(),
                    outage.clone(),
                    recovering.clone(),
                    answers.clone(),
                    client.clone(),
                );
                let base = base.to_string();
                tokio::spawn(async move {
                    let mut i = 0usize;
                    while !stop.load(Ordering::SeqCst) {
                        let tag = format!("w{w}-{i}");
                        let pkg = packages[(w + i) % packages.len()];
                        i += 1;
                        let sent_in_outage = outage.load(Ordering::SeqCst);
                        let r = client
                            .get(format!("{base}/api/v1/evaluate"))
                            .query(&[("package", pkg)])
                            .header("X-LexAlign-Project", "load")
                            .header("X-LexAlign-Agent-Version", &tag)
                            .send()
                            .await
                            .unwrap_or_else(|e| panic!("the personal daemon failed {tag}: {e}"));
                        assert_eq!(r.status(), 200, "{tag}");
                        let v: Value = r.json().await.unwrap();
                        let before_recovery = !recovering.load(Ordering::SeqCst);
                        assert!(v["verdict"].is_string(), "{v}");
                        answers.lock().unwrap().push(Answer {
                            tag,
                            degraded: v["degraded"]["reason"].is_string()
                                && v["degraded"]["since"].is_string(),
                            sent_in_outage,
                            before_recovery,
                        });
                    }
                })
            })
            .collect();
        Load {
            stop,
            outage,
            recovering,
            answers,
            tasks,
        }
    }

    fn acked(&self) -> usize {
        self.answers.lock().unwrap().len()
    }

    async fn until(&self, n: usize) {
        let deadline = Instant::now() + DEADLINE;
        while self.acked() < n {
            assert!(Instant::now() < deadline, "only {} answers", self.acked());
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    async fn finish(self) -> Vec<Answer> {
        self.stop.store(true, Ordering::SeqCst);
        for t in self.tasks {
            t.await.unwrap();
        }
        Arc::try_unwrap(self.answers)
            .ok()
            .unwrap()
            .into_inner()
            .unwrap()
    }
}

fn registry_v13() -> String {
    STARTER
        .replace("version: \"1.2\"", "version: \"1.3\"")
        .replace(
            "  httpx:\n    status: preferred\n    reason: Standard async HTTP client.",
            "  httpx:\n    status: banned\n    reason: Banned by the team today.",
        )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_registry_change_on_the_team_server_reaches_the_personal_daemon() {
    let up = Upstreams::start();
    let team = TeamServer::start(&up).await;
    let p = Personal::start(&team).await;
    let link = p
        .wait_team("first sync", |t| {
            t["state"] == "following" && t["events_connected"] == true
        })
        .await;
    assert_eq!(link["registry_version"], "1.2", "{link}");
    assert_eq!(link["identity"]["id"], "alice-laptop", "{link}");
    let v = p.evaluate("httpx").await;
    assert_eq!(v["verdict"], "ALLOWED", "{v}");
    assert!(v.get("degraded").is_none(), "{v}");

    team.publish(&registry_v13()).await;
    let link = p
        .wait_team("the change", |t| t["registry_version"] == "1.3")
        .await;
    assert_eq!(link["lag_generations"], 0, "{link}");
    let v = p.evaluate("httpx").await;
    assert_eq!(v["verdict"], "DENIED", "{v}");
    assert_eq!(v["reason"], "Banned by the team today.", "{v}");

    // Restarted while the team is away: it answers with the team's
    // registry it kept, flagged, and never with its own file.
    let mut team = team;
    team.daemon.kill9().await;
    let mut p = p;
    p.daemon.kill9().await;
    p.restart().await;
    let link = p
        .wait_team("degraded after restart", |t| t["state"] == "degraded")
        .await;
    assert_eq!(link["registry_version"], "1.3", "{link}");
    let v = p.evaluate("httpx").await;
    assert_eq!(v["verdict"], "DENIED", "{v}");
    assert!(v["degraded"]["reason"].is_string(), "{v}");
    team.restart().await;
    p.wait_team("back", |t| t["state"] == "following").await;
    let v = p.evaluate("httpx").await;
    assert!(v.get("degraded").is_none(), "{v}");
}

/// The shared body of the two outage tests: load, outage, recovery, then
/// every acknowledged verdict exactly once in the team's verified chain.
async fn outage_under_load(kill: bool) {
    let up = Upstreams::start();
    let mut team = TeamServer::start(&up).await;
    let p = Personal::start(&team).await;
    p.wait_team("first sync", |t| t["state"] == "following")
        .await;

    let load = Load::start(p.base(), 8);
    load.until(300).await;
    if kill {
        team.daemon.kill9().await;
    } else {
        team.daemon.signal("STOP");
    }
    p.wait_team("degraded", |t| t["state"] == "degraded").await;
    load.outage.store(true, Ordering::SeqCst);
    let at_outage = load.acked();
    load.until(at_outage + 400).await;
    let queued = p.team().await["outbox"]["depth"].as_u64().unwrap();
    assert!(queued > 0, "nothing queued during the outage");

    load.recovering.store(true, Ordering::SeqCst);
    if kill {
        team.restart().await;
    } else {
        team.daemon.signal("CONT");
    }
    p.wait_team("recovered", |t| t["state"] == "following")
        .await;
    let at_recovery = load.acked();
    load.until(at_recovery + 200).await;
    let answers = load.finish().await;

    let in_outage: Vec<&Answer> = answers
        .iter()
        .filter(|a| a.sent_in_outage && a.before_recovery)
        .collect();
    assert!(
        in_outage.len() >= 400,
        "{} answers in the outage",
        in_outage.len()
    );
    let plain: Vec<&str> = in_outage
        .iter()
        .filter(|a| !a.degraded)
        .map(|a| a.tag.as_str())
        .collect();
    assert!(
        plain.is_empty(),
        "answers during the outage without `degraded`: {:?}",
        &plain[..plain.len().min(5)]
    );

    let link = p
        .wait_team("drained", |t| {
            t["state"] == "following" && t["outbox"]["depth"] == 0
        })
        .await;
    assert!(link["degraded"].is_null(), "{link}");
    let v = p.evaluate("httpx").await;
    assert!(v.get("degraded").is_none(), "{v}");

    let acked: Vec<String> = answers.into_iter().map(|a| a.tag).collect();
    assert_all_once(&team, &p, &acked).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn team_server_sigkilled_under_load_loses_and_duplicates_nothing() {
    outage_under_load(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn team_server_sigstopped_under_load_loses_and_duplicates_nothing() {
    outage_under_load(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_personal_daemon_killed_with_a_full_queue_loses_nothing() {
    let up = Upstreams::start();
    let mut team = TeamServer::start(&up).await;
    let mut p = Personal::start(&team).await;
    p.wait_team("first sync", |t| t["state"] == "following")
        .await;
    team.daemon.kill9().await;

    let load = Load::start(p.base(), 8);
    load.until(1500).await;
    // Killed while answering, with everything queued.
    p.daemon.kill9().await;
    let answers = load_after_kill(load).await;
    assert!(answers.len() >= 1500);

    p.restart().await;
    let link = p.team().await;
    let depth = link["outbox"]["depth"].as_u64().unwrap_or(0) as usize;
    let rows = p.row_ids().len();
    assert!(
        depth >= answers.len() && depth == rows,
        "queue after the restart: {depth}; local rows {rows}; acknowledged {}",
        answers.len()
    );

    team.restart().await;
    p.wait_team("drained", |t| {
        t["state"] == "following" && t["outbox"]["depth"] == 0
    })
    .await;
    assert_all_once(&team, &p, &answers).await;
}

/// Stops the load once its daemon is gone; the tags answered before.
async fn load_after_kill(load: Load) -> Vec<String> {
    load.stop.store(true, Ordering::SeqCst);
    for t in load.tasks {
        // Workers caught mid-request by the kill panic on the refused
        // connection: that request was never acknowledged.
        let _ = t.await;
    }
    let answers = std::mem::take(&mut *load.answers.lock().unwrap());
    answers.into_iter().map(|a| a.tag).collect()
}

async fn request_approval(p: &Personal, package: &str) -> (u16, Value) {
    let r = reqwest::Client::new()
        .post(format!("{}/api/v1/approval-requests", p.base()))
        .header("X-LexAlign-Project", "web")
        .json(&serde_json::json!({"package": package, "rationale": "needed by the web app"}))
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

/// The team's approval requests (operator view).
async fn team_requests(team: &TeamServer) -> Vec<Value> {
    let v: Value = reqwest::Client::new()
        .get(format!("{}/api/v1/reports/approval-requests", team.base()))
        .bearer_auth(&team.operator_key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    v["items"].as_array().cloned().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approvals_go_to_the_team_its_decision_comes_back_and_requests_wait_out_an_outage() {
    let up = Upstreams::start();
    let mut team = TeamServer::start(&up).await;
    let mut p = Personal::start(&team).await;
    p.wait_team("first sync", |t| t["state"] == "following")
        .await;
    let v = p.evaluate("six").await;
    assert_eq!(v["verdict"], "PROVISIONALLY_ALLOWED", "{v}");

    let (s, v) = request_approval(&p, "six").await;
    assert_eq!(s, 202, "{v}");
    assert_eq!(v["queued"], false, "{v}");
    let items = team_requests(&team).await;
    assert_eq!(items.len(), 1, "{items:?}");
    assert_eq!(items[0]["id"], v["request_id"]);
    assert_eq!(items[0]["requester"], "alice-laptop");

    // The operator approves it in the team's registry workshop, as a
    // browser would: the page's form token, then the form.
    let browser = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let page = browser
        .get(format!("{}/dashboard/registry", team.base()))
        .bearer_auth(&team.operator_key)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let csrf = page
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap_or_else(|| panic!("no form token on the workshop page"))
        .to_string();
    let r = browser
        .post(format!("{}/dashboard/registry/decide", team.base()))
        .bearer_auth(&team.operator_key)
        .header("Origin", team.base())
        .form(&[
            ("csrf", csrf.as_str()),
            ("package", "six"),
            ("decision", "approve"),
            ("status", "approved"),
            ("reason", "Reviewed: MIT, tiny."),
        ])
        .send()
        .await
        .unwrap();
    assert!(r.status().is_redirection(), "{}", r.status());
    let items = team_requests(&team).await;
    assert_eq!(items[0]["status"], "APPROVED", "{items:?}");
    // The decision reaches the laptop.
    let deadline = Instant::now() + DEADLINE;
    loop {
        let v = p.evaluate("six").await;
        if v["registry_status"] == "approved" {
            assert_eq!(v["verdict"], "ALLOWED", "{v}");
            break;
        }
        assert!(Instant::now() < deadline, "the approval never arrived: {v}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }

    // The team goes away: the request waits on disk, through a kill.
    team.daemon.kill9().await;
    let (s, v) = request_approval(&p, "click").await;
    assert_eq!(s, 202, "{v}");
    assert_eq!(v["queued"], true, "{v}");
    assert!(v["detail"].is_string(), "{v}");
    assert_eq!(v["status"], "PENDING_REVIEW", "{v}");
    p.daemon.kill9().await;
    p.restart().await;
    let link = p
        .wait_team("queued after restart", |t| t["forward"]["queued"] == 1)
        .await;
    assert_eq!(link["state"], "degraded", "{link}");

    team.restart().await;
    p.wait_team("delivered", |t| {
        t["forward"]["queued"] == 0 && t["state"] == "following"
    })
    .await;
    let items = team_requests(&team).await;
    let click: Vec<&Value> = items.iter().filter(|i| i["package"] == "click").collect();
    assert_eq!(click.len(), 1, "{items:?}");
    assert_eq!(click[0]["requester"], "alice-laptop");
    assert_eq!(click[0]["status"], "PENDING_REVIEW");
}

/// Index requests about `package` (any path naming it).
fn index_requests_for(up: &Upstreams, package: &str) -> u64 {
    up.index
        .request_counts()
        .into_iter()
        .filter(|(path, _)| path.split('/').any(|s| s == package))
        .map(|(_, n)| n)
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_personal_daemons_share_one_upstream_fetch_through_the_team() {
    let up = Upstreams::start();
    let mut team = TeamServer::start(&up).await;
    // Their own upstreams are the same fakes: any fetch of theirs counts.
    let p1 = Personal::start(&team).await;
    let p2 = Personal::start(&team).await;
    for p in [&p1, &p2] {
        p.wait_team("first sync", |t| t["state"] == "following")
            .await;
    }
    up.index.reset_counters();
    up.osv.reset_counters();

    let v1 = p1.evaluate("six").await;
    let v2 = p2.evaluate("six").await;
    assert_eq!(v1["verdict"], "PROVISIONALLY_ALLOWED", "{v1}");
    assert!(v1["upstream_error"].is_null(), "{v1}");
    for field in [
        "verdict",
        "reason",
        "resolved_version",
        "license",
        "cve_ids",
    ] {
        assert_eq!(v1[field], v2[field], "{field}: {v1} vs {v2}");
    }
    assert_eq!(
        index_requests_for(&up, "six"),
        1,
        "index requests: {:?}",
        up.index.request_counts()
    );
    assert_eq!(
        up.osv.requests_to("/v1/query"),
        1,
        "advisory requests: {:?}",
        up.osv.request_counts()
    );
    // The team's own verdict is the same.
    let tv: Value = reqwest::Client::new()
        .get(format!("{}/api/v1/evaluate", team.base()))
        .query(&[("package", "six")])
        .header("X-LexAlign-Project", "web")
        .bearer_auth(&team.agent_key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(tv["verdict"], v1["verdict"]);
    assert_eq!(tv["reason"], v1["reason"]);
    assert_eq!(index_requests_for(&up, "six"), 1);

    // The route is the team's agents' only: no key, no proxy.
    let r = reqwest::get(format!("{}/api/v1/upstream/project/six", team.base()))
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    // Only distribution names reach the team's upstreams.
    let r = reqwest::Client::new()
        .get(format!(
            "{}/api/v1/upstream/project/..%2F..%2Fadmin",
            team.base()
        ))
        .bearer_auth(&team.agent_key)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);

    // The team away: each laptop asks its own upstream.
    team.daemon.kill9().await;
    let v = p1.evaluate("click").await;
    assert_eq!(v["verdict"], "PROVISIONALLY_ALLOWED", "{v}");
    assert!(v["upstream_error"].is_null(), "{v}");
    assert_eq!(index_requests_for(&up, "click"), 1);
}
