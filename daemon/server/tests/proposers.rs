//! The `local_git` and `github` proposers against real parts: a bare git
//! repository on disk as the remote, the fake GitHub REST API on 127.0.0.1,
//! the daemon built and served for real, its logs captured.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use common::{start_with, Options, TestServer, REGISTRY_YAML};
use lex_align_daemon::config::Secret;
use lex_align_daemon::proposer::github::RepoUrl;
use lex_align_daemon::{Config, ProposerChoice};
use lex_align_fakes::FakeGithub;
use serde_json::{json, Value};

const TOKEN: &str = "ghp_TESTtoken0123456789abcdefSECRET";

// ---- captured logs ------------------------------------------------------

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
    static LOGS: OnceLock<LogBuf> = OnceLock::new();
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

fn log_text() -> String {
    String::from_utf8_lossy(&logs().0.lock().unwrap()).into_owned()
}

// ---- git helpers --------------------------------------------------------

fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args(["-c", "user.name=Test Human", "-c", "user.email=human@test"])
        .args([
            "-c",
            "init.defaultBranch=main",
            "-c",
            "commit.gpgsign=false",
        ])
        .args(args)
        .current_dir(dir)
        .env("GIT_TERMINAL_PROMPT", "0")
        .output()
        .expect("git runs");
    assert!(
        out.status.success(),
        "git {args:?} in {}: {}",
        dir.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn git_ok(dir: &Path, args: &[&str]) -> bool {
    Command::new("git")
        .args(args)
        .current_dir(dir)
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

/// `<root>/remote/acme/registry.git` with `registry.yml` on `main`.
fn bare_remote(root: &Path) -> PathBuf {
    let bare = root.join("remote/acme/registry.git");
    std::fs::create_dir_all(&bare).unwrap();
    git(&bare, &["init", "--quiet", "--bare"]);
    let seed = root.join("seed");
    std::fs::create_dir_all(&seed).unwrap();
    git(&seed, &["init", "--quiet"]);
    std::fs::write(seed.join("registry.yml"), REGISTRY_YAML).unwrap();
    std::fs::write(seed.join("README.md"), "policy repo\n").unwrap();
    git(&seed, &["add", "."]);
    git(&seed, &["commit", "--quiet", "-m", "registry"]);
    git(
        &seed,
        &[
            "push",
            "--quiet",
            bare.to_str().unwrap(),
            "HEAD:refs/heads/main",
        ],
    );
    bare
}

struct Github {
    server: TestServer,
    fake: FakeGithub,
    bare: PathBuf,
    root: tempfile::TempDir,
}

impl Github {
    fn workdir(&self) -> PathBuf {
        self.root.path().join("work")
    }
    fn clone_dir(&self) -> PathBuf {
        self.workdir().join("acme__registry")
    }
    fn show(&self, rev_path: &str) -> String {
        git(&self.bare, &["show", rev_path])
    }
    fn branch_sha(&self, branch: &str) -> Option<String> {
        let out = git(
            &self.bare,
            &[
                "for-each-ref",
                "--format=%(objectname)",
                &format!("refs/heads/{branch}"),
            ],
        );
        Some(out.trim().to_string()).filter(|s| !s.is_empty())
    }
    async fn propose(&self, body: Value) -> (u16, Value) {
        self.server
            .post_json("/api/v1/registry/proposals", &body)
            .await
    }
}

async fn github() -> Github {
    logs();
    let root = tempfile::tempdir().unwrap();
    let bare = bare_remote(root.path());
    let fake = FakeGithub::start(TOKEN);
    let url = format!("file://{}", bare.display());
    let api = fake.url();
    let workdir = root.path().join("work");
    // The database outlives the test server (the restart test opens it again).
    let data = root.path().join("data");
    let server = start_with(Options {
        tweak: Some(Box::new(move |c: &mut Config| {
            c.database_path = data.join("lexalign.sqlite");
            c.data_dir = data;
            c.proposer = ProposerChoice::Github;
            c.repo.repo_url = Some(RepoUrl::parse(&url).unwrap());
            c.repo.token = Some(Secret::new(TOKEN));
            c.repo.api_base = Some(api);
            c.repo.workdir = workdir;
            c.repo.bot_author_name = "Registry Bot".into();
            c.repo.bot_author_email = "bot@registry.test".into();
        })),
        ..Options::default()
    })
    .await;
    Github {
        server,
        fake,
        bare,
        root,
    }
}

/// Files under `dir` (recursively) whose bytes contain `needle`.
fn files_containing(dir: &Path, needle: &[u8]) -> Vec<PathBuf> {
    let mut hits = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if let Ok(bytes) = std::fs::read(&p) {
                if bytes.windows(needle.len()).any(|w| w == needle) {
                    hits.push(p);
                }
            }
        }
    }
    hits
}

fn assert_no_token_anywhere(g: &Github, results: &[&Value]) {
    use base64::Engine as _;
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("x-access-token:{TOKEN}"));
    for secret in [TOKEN, basic.as_str()] {
        let config = std::fs::read_to_string(g.clone_dir().join(".git/config")).unwrap();
        assert!(!config.contains(secret), ".git/config: {config}");
        // Everything the daemon keeps: clone cache, audit DB (and WAL,
        // inbox), registry file.
        assert_eq!(
            files_containing(g.root.path(), secret.as_bytes()),
            Vec::<PathBuf>::new()
        );
        assert_eq!(
            files_containing(g.server.dir.path(), secret.as_bytes()),
            Vec::<PathBuf>::new()
        );
        for r in results {
            assert!(!r.to_string().contains(secret), "{r}");
        }
        // (The capture works: the daemon's own lines are there.)
        let logged = log_text();
        assert!(logged.contains("github proposer"), "no daemon log captured");
        assert!(!logged.contains(secret), "the token is in the logs");
    }
}

/// Waits (bounded) for the request's proposal to leave `queued`.
async fn proposal_of(s: &TestServer, id: &str) -> lex_align_store::ApprovalRequest {
    for _ in 0..400 {
        let row = s.handle.store().approval_request(id).unwrap().unwrap();
        if row.proposal_status.as_deref() != Some("queued") {
            return row;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("request {id} stayed queued");
}

// ---- github -------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_proposals_become_one_pull_request_per_package() {
    let g = github().await;
    let (_, health) = g.server.get_bare("/api/v1/health").await;
    assert_eq!(health["proposer"], "github");

    let (status, first) = g
        .propose(json!({"name": "Flask", "status": "approved",
                        "rationale": "Small web apps.\nReviewed by @security-team."}))
        .await;
    assert_eq!(status, 200, "{first}");
    assert_eq!(first["backend"], "github");
    assert_eq!(first["status"], "opened");
    assert_eq!(first["branch"], "lex-align/approval/flask");
    assert_eq!(first["url"], "https://github.example/acme/registry/pull/1");
    assert_eq!(first["detail"], "Opened PR #1.");
    let sha = first["commit_sha"].as_str().unwrap().to_string();
    assert_eq!(
        g.branch_sha("lex-align/approval/flask").as_deref(),
        Some(sha.as_str())
    );

    // The branch carries the edited registry, comments and all; main is untouched.
    let on_branch = g.show("lex-align/approval/flask:registry.yml");
    assert!(
        on_branch.starts_with("# Team registry: edited by humans, comments matter.\n"),
        "{on_branch}"
    );
    assert!(
        on_branch.contains("  # The async client everyone should use.\n"),
        "{on_branch}"
    );
    let reg = lex_align_engine::registry::Registry::from_yaml(&on_branch).unwrap();
    assert_eq!(reg.rule("flask").unwrap().status.as_str(), "approved");
    assert_eq!(reg.rule("pyqt5").unwrap().status.as_str(), "banned");
    assert_eq!(g.show("main:registry.yml"), REGISTRY_YAML);
    // The live registry file is not written: merging is the reviewers' act.
    assert_eq!(
        std::fs::read_to_string(&g.server.registry_path).unwrap(),
        REGISTRY_YAML
    );

    let log = git(
        &g.bare,
        &[
            "log",
            "-1",
            "--format=%an <%ae>|%cn <%ce>|%B",
            "lex-align/approval/flask",
        ],
    );
    let mut parts = log.splitn(3, '|');
    assert_eq!(parts.next(), Some("Registry Bot <bot@registry.test>"));
    assert_eq!(parts.next(), Some("Registry Bot <bot@registry.test>"));
    assert_eq!(
        parts.next().unwrap().trim_end(),
        "lex-align: classify Flask as approved (via operator)\n\nProject: proj\nRequester: anonymous\n\n\
         Rationale:\nSmall web apps.\nReviewed by @security-team."
    );

    // Exactly the spec's requests and headers.
    let reqs = g.fake.requests();
    assert_eq!(reqs.len(), 2, "{reqs:?}");
    let (list, create) = (&reqs[0], &reqs[1]);
    for r in [list, create] {
        assert_eq!(r.headers["authorization"], format!("Bearer {TOKEN}"));
        assert_eq!(r.headers["accept"], "application/vnd.github+json");
        assert_eq!(r.headers["x-github-api-version"], "2022-11-28");
        assert!(r.headers["user-agent"].starts_with("lex-align/"));
    }
    assert_eq!(
        (list.method.as_str(), list.path.as_str()),
        ("GET", "/repos/acme/registry/pulls")
    );
    assert_eq!(list.query["state"], "open");
    assert_eq!(list.query["head"], "acme:lex-align/approval/flask");
    assert_eq!(list.query["per_page"], "1");
    assert_eq!(
        (create.method.as_str(), create.path.as_str()),
        ("POST", "/repos/acme/registry/pulls")
    );
    let b = &create.body;
    assert_eq!(b["title"], "lex-align: classify `Flask` as approved");
    assert_eq!(b["head"], "lex-align/approval/flask");
    assert_eq!(b["base"], "main");
    assert_eq!(b["maintainer_can_modify"], true);
    let body = b["body"].as_str().unwrap();
    for needle in [
        "| Package | `Flask` |",
        "| Proposed status | `approved` |",
        "| Source | operator |",
        "| Project | proj |",
        "| Requester | anonymous |",
        "### Rationale\n\n> Small web apps.\n> Reviewed by &#64;security-team.",
        "may be edited on this branch before merging",
    ] {
        assert!(body.contains(needle), "{needle:?} not in\n{body}");
    }
    // Attack: caller text cannot ping a team from the pull request.
    assert!(!body.contains("@security-team"), "{body}");

    // Same package, another spelling and rule: one more commit, a comment.
    let (status, second) = g
        .propose(json!({"name": "flask", "status": "version-constrained",
                        "min_version": "3.0", "reason": "CVE fixes", "rationale": "pin it"}))
        .await;
    assert_eq!(status, 200, "{second}");
    assert_eq!(second["status"], "amended");
    assert_eq!(second["url"], "https://github.example/acme/registry/pull/1");
    assert_eq!(
        second["detail"],
        "Pushed an additional commit and commented on PR #1."
    );
    assert_eq!(
        git(
            &g.bare,
            &["rev-list", "--count", "main..lex-align/approval/flask"]
        )
        .trim(),
        "2"
    );
    let pulls = g.fake.pulls();
    assert_eq!(pulls.len(), 1);
    assert_eq!(pulls[0].comments.len(), 1);
    assert!(
        pulls[0].comments[0].contains("`flask` as version-constrained"),
        "{}",
        pulls[0].comments[0]
    );
    assert!(pulls[0].comments[0].contains("> pin it"));
    let reqs = g.fake.requests();
    assert_eq!(
        reqs.last().unwrap().path,
        "/repos/acme/registry/issues/1/comments"
    );
    let on_branch = g.show("lex-align/approval/flask:registry.yml");
    let reg = lex_align_engine::registry::Registry::from_yaml(&on_branch).unwrap();
    assert_eq!(
        reg.rule("flask").unwrap().min_version.as_deref(),
        Some("3.0")
    );
    assert_eq!(
        on_branch.matches("flask").count() + on_branch.matches("Flask").count(),
        1,
        "{on_branch}"
    );

    // The very same rule again: nothing pushed, still the one PR.
    let before = g.branch_sha("lex-align/approval/flask");
    let (status, third) = g
        .propose(json!({"name": "flask", "status": "version-constrained",
                        "min_version": "3.0", "reason": "CVE fixes"}))
        .await;
    assert_eq!(status, 200, "{third}");
    assert_eq!(third["status"], "amended");
    assert!(
        third["detail"]
            .as_str()
            .unwrap()
            .starts_with("Branch already proposes this rule; no change pushed."),
        "{third}"
    );
    assert_eq!(g.branch_sha("lex-align/approval/flask"), before);
    assert_eq!(g.fake.pulls().len(), 1);

    // A rule main already has: nothing to propose, no branch, no REST call.
    let calls = g.fake.requests().len();
    let (status, same) = g
        .propose(json!({"name": "httpx", "status": "preferred", "reason": "Standard async HTTP client."}))
        .await;
    assert_eq!(status, 200, "{same}");
    assert_eq!(same["status"], "applied");
    assert_eq!(same["branch"], Value::Null);
    assert_eq!(
        same["detail"],
        "main already has this rule for httpx; nothing to propose."
    );
    assert_eq!(g.branch_sha("lex-align/approval/httpx"), None);
    assert_eq!(g.fake.requests().len(), calls);

    // A closed PR: the next proposal opens a new one.
    g.fake.close_pull(1);
    let (_, reopened) = g
        .propose(json!({"name": "flask", "status": "approved"}))
        .await;
    assert_eq!(reopened["status"], "opened", "{reopened}");
    assert_eq!(
        reopened["url"],
        "https://github.example/acme/registry/pull/2"
    );

    g.server.handle.store().flush().unwrap();
    assert_no_token_anywhere(&g, &[&first, &second, &third, &same, &reopened]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rest_errors_are_502_with_the_reason_and_no_token() {
    let g = github().await;
    g.fake.fail_next(
        "POST",
        422,
        "Validation Failed",
        json!([{"resource": "PullRequest", "code": "custom", "message": "No commits between main and lex-align/approval/six"}]),
    );
    let (status, v) = g
        .propose(json!({"name": "six", "status": "approved"}))
        .await;
    assert_eq!(status, 502, "{v}");
    let detail = v["detail"].as_str().unwrap();
    assert!(
        detail.starts_with(
            "GitHub API POST /repos/acme/registry/pulls answered 422: Validation Failed \
             (No commits between main and lex-align/approval/six) (branch lex-align/approval/six was pushed at "
        ),
        "{detail}"
    );
    // The push happened; a retry opens the PR on the same branch.
    assert!(g.branch_sha("lex-align/approval/six").is_some());
    let (status, v2) = g
        .propose(json!({"name": "six", "status": "approved"}))
        .await;
    assert_eq!(status, 200, "{v2}");
    assert_eq!(v2["status"], "opened");

    g.fake.fail_next("GET", 401, "Bad credentials", Value::Null);
    let (status, v3) = g
        .propose(json!({"name": "attrs", "status": "approved"}))
        .await;
    assert_eq!(status, 502);
    assert!(
        v3["detail"]
            .as_str()
            .unwrap()
            .contains("answered 401: Bad credentials"),
        "{v3}"
    );
    // Each failed proposal is in the chained log, by whom and why; the
    // one that went through is not.
    g.server.handle.store().flush().unwrap();
    let db = rusqlite::Connection::open(g.root.path().join("data/lexalign.sqlite")).unwrap();
    let failed: Vec<(String, String, String, String)> = db
        .prepare(
            "SELECT package, verdict, denial_category, reason FROM audit_log \
             WHERE source = 'proposal' ORDER BY seq",
        )
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(failed.len(), 2, "{failed:?}");
    assert_eq!(
        (
            failed[0].0.as_str(),
            failed[0].1.as_str(),
            failed[0].2.as_str()
        ),
        ("six", "PROPOSAL_FAILED", "proposal")
    );
    assert!(
        failed[0]
            .3
            .starts_with("Proposal of `six` as approved failed: GitHub API POST"),
        "{failed:?}"
    );
    assert_eq!(failed[1].0, "attrs");
    assert!(
        failed[1].3.contains("answered 401: Bad credentials"),
        "{failed:?}"
    );
    assert_no_token_anywhere(&g, &[&v, &v2, &v3]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn git_failures_name_git_and_never_the_token() {
    let g = github().await;
    // The remote disappears: clone/fetch fails.
    std::fs::rename(&g.bare, g.root.path().join("moved.git")).unwrap();
    let (status, v) = g
        .propose(json!({"name": "six", "status": "approved"}))
        .await;
    assert_eq!(status, 502, "{v}");
    let detail = v["detail"].as_str().unwrap();
    assert!(detail.starts_with("git operation failed: git "), "{detail}");
    assert!(g.fake.requests().is_empty());
    assert!(!detail.contains(TOKEN));
    assert!(!log_text().contains(TOKEN));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approval_requests_reach_the_reviewing_proposer_as_pull_requests() {
    let g = github().await;
    let s = &g.server;
    let send = |project: &'static str, rationale: &'static str| async move {
        let r = s
            .client
            .post(s.url("/api/v1/approval-requests"))
            .header("X-LexAlign-Project", project)
            .header("X-LexAlign-Agent-Model", "claude")
            .header("X-LexAlign-Agent-Version", "4")
            .json(&json!({"package": "six", "rationale": rationale}))
            .send()
            .await
            .unwrap();
        common::split(r).await
    };
    let (status, v) = send("web", "py2 shims for the legacy importer").await;
    assert_eq!(status, 202, "{v}");
    assert_eq!(
        v["proposal"],
        json!({"backend": "GitHubProposer", "status": "queued"})
    );
    let id = v["request_id"].as_str().unwrap().to_string();
    let row = proposal_of(s, &id).await;
    assert_eq!(
        row.status, "PENDING_REVIEW",
        "a pull request is not a decision"
    );
    assert_eq!(row.proposal_backend.as_deref(), Some("github"));
    assert_eq!(row.proposal_status.as_deref(), Some("opened"), "{row:?}");
    assert_eq!(
        row.proposal_url.as_deref(),
        Some("https://github.example/acme/registry/pull/1")
    );
    let pull = &g.fake.pulls()[0];
    assert_eq!(pull.head, "lex-align/approval/six");
    assert!(pull.body.contains("| Source | agent |"), "{}", pull.body);
    assert!(pull.body.contains("| Project | web |"));
    assert!(pull.body.contains("| Agent | claude 4 |"));
    assert!(pull.body.contains("> py2 shims for the legacy importer"));
    let history = s.handle.store().approval_history(&id).unwrap();
    let last = history.last().unwrap();
    assert_eq!(last.actor, "proposer:github");
    assert_eq!(
        last.note.as_deref(),
        Some("proposal opened: https://github.example/acme/registry/pull/1")
    );
    // Nothing in the live registry: reviewers merge, the webhook reloads.
    assert_eq!(
        std::fs::read_to_string(&s.registry_path).unwrap(),
        REGISTRY_YAML
    );
    let (_, eval) = s.evaluate("package=six").await;
    assert_ne!(eval["verdict"], "ALLOWED", "{eval}");

    // Another project asks for the same package: the same PR, a comment.
    let (status, v) = send("api", "needed by the vendored client").await;
    assert_eq!(status, 202);
    let row = proposal_of(s, v["request_id"].as_str().unwrap()).await;
    assert_eq!(row.proposal_status.as_deref(), Some("amended"), "{row:?}");
    assert_eq!(
        row.proposal_url.as_deref(),
        Some("https://github.example/acme/registry/pull/1")
    );
    let pulls = g.fake.pulls();
    assert_eq!(pulls.len(), 1);
    assert!(
        pulls[0].comments[0].contains("needed by the vendored client"),
        "{:?}",
        pulls[0].comments
    );
    assert!(pulls[0].comments[0].contains("| Project | api |"));

    // The reports show the outcome.
    let (_, report) = s
        .get_bare("/api/v1/reports/approval-requests?project=web")
        .await;
    assert_eq!(report["items"][0]["proposal_status"], "opened", "{report}");
    assert_eq!(
        report["items"][0]["proposal_url"],
        "https://github.example/acme/registry/pull/1"
    );

    let (_, pending) = s.get_bare("/api/v1/registry/pending").await;
    assert_eq!(
        pending["explicit"][0]["proposal_url"], "https://github.example/acme/registry/pull/1",
        "{pending}"
    );
    let page = s
        .client
        .get(s.url("/dashboard/registry"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        page.contains(
            "Pull request (amended): <a href=\"https://github.example/acme/registry/pull/1\">"
        ),
        "{page}"
    );

    // A listed package stays a record: no pull request for it.
    let calls = g.fake.requests().len();
    let (status, v) = s
        .post_json(
            "/api/v1/approval-requests",
            &json!({"package": "httpx", "rationale": "x"}),
        )
        .await;
    assert_eq!(status, 202, "{v}");
    assert_eq!(v["proposal"]["status"], "recorded");
    // Attack: a banned package is refused outright, nothing proposed.
    let (status, _) = s
        .post_json(
            "/api/v1/approval-requests",
            &json!({"package": "PyQt5", "rationale": "pls"}),
        )
        .await;
    assert_eq!(status, 409);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(g.fake.requests().len(), calls);
    assert_eq!(g.branch_sha("lex-align/approval/pyqt5"), None);
    assert_no_token_anywhere(&g, &[]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_review_is_recorded_and_a_restart_resends_what_was_queued() {
    let g = github().await;
    g.fake.fail_next(
        "POST",
        403,
        "Resource not accessible by integration",
        Value::Null,
    );
    let (status, v) = g
        .server
        .post_json(
            "/api/v1/approval-requests",
            &json!({"package": "six", "rationale": "need it"}),
        )
        .await;
    assert_eq!(status, 202);
    let id = v["request_id"].as_str().unwrap().to_string();
    let row = proposal_of(&g.server, &id).await;
    assert_eq!(row.proposal_status.as_deref(), Some("failed"));
    assert!(
        row.proposal_detail
            .as_deref()
            .unwrap()
            .contains("answered 403: Resource not accessible by integration"),
        "{row:?}"
    );

    // A request left `queued` (the daemon stopped first) is sent again by
    // the next daemon on the same database.
    let store = g.server.handle.store().clone();
    store
        .set_proposal_outcome(
            &id,
            lex_align_store::ProposalOutcome {
                backend: "github".into(),
                status: "queued".into(),
                url: None,
                detail: "waiting".into(),
            },
        )
        .await
        .unwrap();
    store.flush().unwrap();
    let config = g.server.handle.state.config.clone();
    drop(store);
    drop(g.server);
    // The first app must release the database before another opens it.
    let mut app = None;
    for _ in 0..200 {
        match lex_align_daemon::build_app(config.clone()).await {
            Ok(a) => {
                app = Some(a);
                break;
            }
            Err(e) if format!("{e:#}").contains("in use") => {
                tokio::time::sleep(Duration::from_millis(50)).await
            }
            Err(e) => panic!("{e:#}"),
        }
    }
    let (_router, handle) = app.expect("the first daemon released the database");
    let mut row = None;
    for _ in 0..400 {
        let r = handle.store().approval_request(&id).unwrap().unwrap();
        if r.proposal_status.as_deref() != Some("queued") {
            row = Some(r);
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let row = row.expect("re-sent");
    assert_eq!(row.proposal_status.as_deref(), Some("opened"), "{row:?}");
}

// ---- local_git ----------------------------------------------------------

fn work_tree(root: &Path) -> PathBuf {
    let repo = root.join("policy");
    std::fs::create_dir_all(repo.join("conf")).unwrap();
    git(&repo, &["init", "--quiet"]);
    std::fs::write(repo.join("conf/registry.yml"), REGISTRY_YAML).unwrap();
    std::fs::write(repo.join("notes.txt"), "v1\n").unwrap();
    git(&repo, &["add", "."]);
    git(&repo, &["commit", "--quiet", "-m", "start"]);
    repo
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_git_commits_the_registry_file_only_as_the_bot() {
    logs();
    let root = tempfile::tempdir().unwrap();
    let repo = work_tree(root.path());
    let registry = repo.join("conf/registry.yml");
    // Someone's unrelated staged work must stay theirs.
    std::fs::write(repo.join("notes.txt"), "v2, staged by a human\n").unwrap();
    git(&repo, &["add", "notes.txt"]);
    let path = registry.clone();
    let s = start_with(Options {
        registry: None,
        tweak: Some(Box::new(move |c: &mut Config| {
            c.registry_path = Some(path);
            c.registry_path_explicit = true;
            c.repo.bot_author_name = "Registry Bot".into();
            c.repo.bot_author_email = "bot@registry.test".into();
        })),
        ..Options::default()
    })
    .await;
    let (_, health) = s.get_bare("/api/v1/health").await;
    assert_eq!(
        health["proposer"], "local_git",
        "auto-selected in a work tree"
    );

    let r = s
        .client
        .post(s.url("/api/v1/registry/proposals"))
        .header("X-LexAlign-Project", "web")
        .header("X-LexAlign-Agent-Model", "claude")
        .header("X-LexAlign-Agent-Version", "4")
        .json(
            &json!({"name": "Django", "status": "version-constrained", "min_version": "4.2",
                      "max_version": "6", "replacement": "flask", "rationale": "LTS only"}),
        )
        .send()
        .await
        .unwrap();
    let (status, v) = common::split(r).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["backend"], "local_git");
    assert_eq!(v["status"], "applied");
    assert_eq!(v["url"], format!("file://{}", registry.display()));
    let head = git(&repo, &["rev-parse", "HEAD"]).trim().to_string();
    assert_eq!(v["commit_sha"], head);

    let log = git(&repo, &["log", "-1", "--format=%an <%ae>|%cn <%ce>|%B"]);
    let mut parts = log.splitn(3, '|');
    assert_eq!(parts.next(), Some("Registry Bot <bot@registry.test>"));
    assert_eq!(parts.next(), Some("Registry Bot <bot@registry.test>"));
    assert_eq!(
        parts.next().unwrap().trim_end(),
        "lex-align: Django → version-constrained (via operator)\n\nProject: web\nRequester: anonymous\n\
         Agent: claude 4\nReplacement: flask\nVersion constraint: 4.2..6\n\nRationale:\nLTS only"
    );
    assert_eq!(
        git(&repo, &["show", "--name-only", "--format=", "HEAD"]).trim(),
        "conf/registry.yml"
    );
    // The human's staged change is still staged, uncommitted.
    assert_eq!(
        git(&repo, &["diff", "--cached", "--name-only"]).trim(),
        "notes.txt"
    );
    let text = std::fs::read_to_string(&registry).unwrap();
    assert!(text.contains("  # The async client everyone should use.\n"));
    // Written and committed means live.
    let (_, reg) = s.get_bare("/api/v1/registry").await;
    assert_eq!(
        reg["packages"]["django"]["status"], "version-constrained",
        "{reg}"
    );

    // Same rule again: nothing new to commit, HEAD answered.
    let (status, again) = s
        .post_json(
            "/api/v1/registry/proposals",
            &json!({"name": "Django", "status": "version-constrained",
            "min_version": "4.2", "max_version": "6", "replacement": "flask"}),
        )
        .await;
    assert_eq!(status, 200, "{again}");
    assert_eq!(again["commit_sha"], head);
    assert!(
        again["detail"]
            .as_str()
            .unwrap()
            .contains("Nothing new to commit"),
        "{again}"
    );

    // Approval requests stay records with local_git (W1): no commit.
    let (status, ar) = s
        .post_json(
            "/api/v1/approval-requests",
            &json!({"package": "six", "rationale": "need it"}),
        )
        .await;
    assert_eq!(status, 202);
    assert_eq!(
        ar["proposal"],
        json!({"backend": "LocalGitProposer", "status": "recorded"})
    );
    assert_eq!(git(&repo, &["rev-parse", "HEAD"]).trim(), head);
}

// ---- selection and configuration ---------------------------------------

fn config_in(dir: &Path) -> Config {
    let mut c = Config::new(dir.join("data"));
    c.repo.workdir = dir.join("work");
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_selection_rules() {
    let root = tempfile::tempdir().unwrap();
    let repo = work_tree(root.path());
    let in_tree = repo.join("conf/registry.yml");
    let select = |c: &Config| lex_align_daemon::proposer::select(c).map(|p| p.name());

    let mut c = config_in(root.path());
    c.registry_path = Some(in_tree.clone());
    c.registry_path_explicit = true;
    assert_eq!(select(&c).unwrap(), "local_git");
    // A file not created yet inside the tree counts too.
    c.registry_path = Some(repo.join("conf/new.yml"));
    assert_eq!(select(&c).unwrap(), "local_git");
    // The data directory's default registry never turns into commits.
    c.registry_path = Some(in_tree.clone());
    c.registry_path_explicit = false;
    assert_eq!(select(&c).unwrap(), "local_file");
    // Outside a work tree: local_file; no path: log_only.
    let plain = root.path().join("plain");
    std::fs::create_dir_all(&plain).unwrap();
    c.registry_path = Some(plain.join("registry.yml"));
    c.registry_path_explicit = true;
    assert_eq!(select(&c).unwrap(), "local_file");
    c.registry_path = None;
    assert_eq!(select(&c).unwrap(), "log_only");
    // Explicit local_git outside a work tree stops the start.
    c.proposer = ProposerChoice::LocalGit;
    c.registry_path = Some(plain.join("registry.yml"));
    let e = select(&c).unwrap_err().to_string();
    assert!(
        e.contains("needs REGISTRY_PATH inside a git work tree"),
        "{e}"
    );

    // REGISTRY_REPO_URL selects github (unless REGISTRY_PROPOSER says otherwise).
    let home = root.path().join("home");
    std::fs::create_dir_all(&home).unwrap();
    let env = |vars: &[(&str, &str)]| {
        let vars: Vec<(String, String)> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_lookup(
            |k| vars.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone()),
            Some(&home),
            Some(&home),
        )
    };
    let c = env(&[
        ("REGISTRY_REPO_URL", "https://github.com/acme/registry.git"),
        ("REGISTRY_REPO_TOKEN", TOKEN),
        ("REGISTRY_PATH", in_tree.to_str().unwrap()),
    ])
    .unwrap();
    assert_eq!(c.proposer, ProposerChoice::Github);
    assert!(!format!("{c:?}").contains(TOKEN), "Debug shows the token");
    let c = env(&[
        ("REGISTRY_REPO_URL", "https://github.com/acme/registry.git"),
        ("REGISTRY_PROPOSER", "local_file"),
        ("REGISTRY_PATH", in_tree.to_str().unwrap()),
    ])
    .unwrap();
    assert_eq!(c.proposer, ProposerChoice::LocalFile);

    // REGISTRY_PROPOSER=github without a URL: the origin of REGISTRY_PATH's
    // repository, token from GITHUB_TOKEN.
    let bare = bare_remote(&root.path().join("r2"));
    git(
        &repo,
        &[
            "remote",
            "add",
            "origin",
            &format!("file://{}", bare.display()),
        ],
    );
    let fake = FakeGithub::start(TOKEN);
    let workdir = root.path().join("work2");
    let mut c = env(&[
        ("REGISTRY_PROPOSER", "github"),
        ("GITHUB_TOKEN", TOKEN),
        ("GITHUB_API_BASE", &fake.url()),
        ("REGISTRY_PATH", in_tree.to_str().unwrap()),
        ("REGISTRY_REPO_WORKDIR", workdir.to_str().unwrap()),
    ])
    .unwrap();
    c.data_dir = root.path().join("data2");
    assert_eq!(select(&c).unwrap(), "github");
    assert!(workdir.is_dir(), "the clone cache is created at start");
    assert!(git_ok(&repo, &["rev-parse", "--git-dir"]));
}

#[test]
fn configuration_errors_name_the_variable_and_never_the_token() {
    let home = tempfile::tempdir().unwrap();
    let env = |vars: &[(&str, &str)]| {
        let vars: Vec<(String, String)> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_lookup(
            |k| vars.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone()),
            Some(home.path()),
            Some(home.path()),
        )
        .unwrap_err()
    };
    type Case = (
        &'static [(&'static str, &'static str)],
        &'static str,
        &'static str,
    );
    let cases: &[Case] = &[
        (
            &[("REGISTRY_REPO_URL", "https://github.com/acme/registry.git")],
            "REGISTRY_REPO_TOKEN",
            "needs a token",
        ),
        // An explicit URL takes its own token, not the environment's.
        (
            &[
                ("REGISTRY_REPO_URL", "https://github.com/acme/registry.git"),
                ("GITHUB_TOKEN", TOKEN),
            ],
            "REGISTRY_REPO_TOKEN",
            "needs a token",
        ),
        (
            &[
                ("REGISTRY_REPO_URL", "registry"),
                ("REGISTRY_REPO_TOKEN", TOKEN),
            ],
            "REGISTRY_REPO_URL",
            "not a repository URL",
        ),
        (
            &[
                (
                    "REGISTRY_REPO_URL",
                    "https://x-access-token:ghp_INURL@github.com/a/r.git",
                ),
                ("REGISTRY_REPO_TOKEN", TOKEN),
            ],
            "REGISTRY_REPO_URL",
            "carries credentials",
        ),
        (
            &[
                ("REGISTRY_REPO_URL", "http://github.com/a/r.git"),
                ("REGISTRY_REPO_TOKEN", TOKEN),
            ],
            "REGISTRY_REPO_URL",
            "in clear",
        ),
        (
            &[
                ("REGISTRY_REPO_URL", "file:///srv/git/a/r.git"),
                ("REGISTRY_REPO_TOKEN", TOKEN),
            ],
            "GITHUB_API_BASE",
            "set GITHUB_API_BASE",
        ),
        (
            &[
                ("REGISTRY_REPO_URL", "https://github.com/a/r.git"),
                ("REGISTRY_REPO_TOKEN", TOKEN),
                ("GITHUB_API_BASE", "api.github.com"),
            ],
            "GITHUB_API_BASE",
            "http(s) URL",
        ),
        (
            &[
                ("REGISTRY_REPO_URL", "https://github.com/a/r.git"),
                ("REGISTRY_REPO_TOKEN", "two words"),
            ],
            "REGISTRY_REPO_TOKEN",
            "whitespace",
        ),
        (
            &[("REGISTRY_FILE_PATH", "../outside.yml")],
            "REGISTRY_FILE_PATH",
            "inside the repository",
        ),
        (
            &[("REGISTRY_DEFAULT_BRANCH", "main..x")],
            "REGISTRY_DEFAULT_BRANCH",
            "branch name",
        ),
        (
            &[("REGISTRY_PROPOSER", "gitlab")],
            "REGISTRY_PROPOSER",
            "Unknown REGISTRY_PROPOSER",
        ),
    ];
    for (vars, variable, needle) in cases {
        let e = env(vars);
        assert_eq!(e.variable, *variable, "{vars:?}: {e}");
        assert!(e.to_string().contains(needle), "{vars:?}: {e}");
        for secret in [TOKEN, "ghp_INURL", "two words"] {
            assert!(!e.to_string().contains(secret), "{e}");
        }
    }
}
