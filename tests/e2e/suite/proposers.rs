//! The git proposers in the real binary: `lex-align daemon` with the
//! `github` proposer against a bare repository on disk and the fake GitHub
//! REST API, its whole log read back; start-up refusals; `check-config`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use lex_align_e2e::{Daemon, Upstreams};
use lex_align_fakes::FakeGithub;
use serde_json::{json, Value};
use tokio::io::AsyncReadExt;

use crate::{daemon_cmd, lex};

const TOKEN: &str = "ghp_E2Etoken9876543210zyxwvuSECRET";
const REGISTRY: &str = "# Policy of record: reviewed in pull requests.\nversion: \"1\"\nglobal_policies:\n  auto_approve_licenses: [MIT, BSD-3-Clause]\n  hard_ban_licenses: [GPL-3.0]\n  unknown_license_policy: block\n  cve_threshold: 0.9\npackages:\n  # Banned for licensing.\n  pyqt5:\n    status: banned\n    reason: GPL\n";

fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args([
            "-c",
            "user.name=T",
            "-c",
            "user.email=t@test",
            "-c",
            "init.defaultBranch=main",
        ])
        .args(["-c", "commit.gpgsign=false"])
        .args(args)
        .current_dir(dir)
        .output()
        .expect("git runs");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn bare_remote(root: &Path) -> PathBuf {
    let bare = root.join("git/acme/policy.git");
    std::fs::create_dir_all(&bare).unwrap();
    git(&bare, &["init", "--quiet", "--bare"]);
    let seed = root.join("seed");
    std::fs::create_dir_all(&seed).unwrap();
    git(&seed, &["init", "--quiet"]);
    std::fs::write(seed.join("registry.yml"), REGISTRY).unwrap();
    git(&seed, &["add", "."]);
    git(&seed, &["commit", "--quiet", "-m", "start"]);
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

/// Files under `dir` whose bytes contain `needle`.
fn files_containing(dir: &Path, needle: &str) -> Vec<PathBuf> {
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
            } else if let Ok(b) = std::fs::read(&p) {
                if b.windows(needle.len()).any(|w| w == needle.as_bytes()) {
                    hits.push(p);
                }
            }
        }
    }
    hits
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn github_proposer_in_the_daemon_keeps_the_token_out_of_everything() {
    let dir = tempfile::tempdir().unwrap();
    let bare = bare_remote(dir.path());
    let fake = FakeGithub::start(TOKEN);
    let up = Upstreams::start();
    let workdir = dir.path().join("work");
    let cmd = daemon_cmd(dir.path(), REGISTRY, &up.env())
        .env("REGISTRY_REPO_URL", format!("file://{}", bare.display()))
        .env("REGISTRY_REPO_TOKEN", TOKEN)
        .env("GITHUB_API_BASE", fake.url())
        .env("REGISTRY_REPO_WORKDIR", workdir.display().to_string())
        .env("REGISTRY_BOT_AUTHOR_NAME", "Policy Bot")
        .env("REGISTRY_BOT_AUTHOR_EMAIL", "policy-bot@test")
        // Everything the daemon and its libraries log.
        .env("RUST_LOG", "trace");
    let mut d = Daemon::start(cmd).await;
    // Drain the logs while it runs (a full pipe would stall it).
    let log = Arc::new(Mutex::new(Vec::<u8>::new()));
    let mut drains = Vec::new();
    for mut pipe in [
        Box::new(d.child.stderr.take().unwrap()) as Box<dyn tokio::io::AsyncRead + Unpin + Send>,
        Box::new(d.child.stdout.take().unwrap()),
    ] {
        let log = log.clone();
        drains.push(tokio::spawn(async move {
            let mut buf = [0u8; 8192];
            while let Ok(n) = pipe.read(&mut buf).await {
                if n == 0 {
                    break;
                }
                log.lock().unwrap().extend_from_slice(&buf[..n]);
            }
        }));
    }
    let client = reqwest::Client::new();
    let post = |path: &'static str, body: Value| {
        let client = client.clone();
        let url = format!("{}{path}", d.base);
        async move {
            let r = client
                .post(url)
                .header("X-LexAlign-Project", "web")
                .json(&body)
                .send()
                .await
                .unwrap();
            let status = r.status().as_u16();
            (status, r.json::<Value>().await.unwrap())
        }
    };

    let (status, opened) = post(
        "/api/v1/registry/proposals",
        json!({"name": "Flask", "status": "approved", "rationale": "web tier"}),
    )
    .await;
    assert_eq!(status, 200, "{opened}");
    assert_eq!(opened["status"], "opened");
    assert_eq!(opened["branch"], "lex-align/approval/flask");
    let on_branch = git(&bare, &["show", "lex-align/approval/flask:registry.yml"]);
    assert!(on_branch.starts_with("# Policy of record"), "{on_branch}");
    assert!(
        on_branch.contains("  # Banned for licensing.\n"),
        "{on_branch}"
    );
    assert_eq!(
        git(
            &bare,
            &[
                "log",
                "-1",
                "--format=%an <%ae>",
                "lex-align/approval/flask"
            ]
        )
        .trim(),
        "Policy Bot <policy-bot@test>"
    );

    // An agent's request: 202 queued, then the pull request on the row.
    let (status, queued) = post(
        "/api/v1/approval-requests",
        json!({"package": "six", "rationale": "legacy shims"}),
    )
    .await;
    assert_eq!(status, 202, "{queued}");
    assert_eq!(queued["proposal"]["status"], "queued");
    let mut item = Value::Null;
    for _ in 0..400 {
        let r: Value = client
            .get(format!(
                "{}/api/v1/reports/approval-requests?project=web",
                d.base
            ))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        item = r["items"][0].clone();
        if item["proposal_status"] != "queued" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(item["proposal_status"], "opened", "{item}");
    assert_eq!(
        item["proposal_url"],
        "https://github.example/acme/policy/pull/2"
    );
    assert_eq!(fake.pulls().len(), 2);

    // A REST failure: 502 with GitHub's reason.
    fake.fail_next("GET", 404, "Not Found", Value::Null);
    let (status, failed) = post(
        "/api/v1/registry/proposals",
        json!({"name": "attrs", "status": "approved"}),
    )
    .await;
    assert_eq!(status, 502);
    assert!(
        failed["detail"]
            .as_str()
            .unwrap()
            .starts_with("GitHub API GET /repos/acme/policy/pulls answered 404: Not Found"),
        "{failed}"
    );

    // Stop it, then read everything it wrote and logged.
    d.child.start_kill().unwrap();
    let _ = d.child.wait().await;
    for t in drains {
        let _ = t.await;
    }
    let log = String::from_utf8_lossy(&log.lock().unwrap()).into_owned();
    assert!(
        log.contains("github proposer"),
        "the log was captured:\n{log}"
    );
    assert!(!log.contains(TOKEN), "the token is in the daemon's log");
    let config = std::fs::read_to_string(workdir.join("acme__policy/.git/config")).unwrap();
    assert!(!config.contains(TOKEN), "{config}");
    assert_eq!(files_containing(dir.path(), TOKEN), Vec::<PathBuf>::new());
    for v in [&opened, &queued, &item, &failed] {
        assert!(!v.to_string().contains(TOKEN));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daemon_refuses_to_start_on_a_bad_repository_setup() {
    let dir = tempfile::tempdir().unwrap();
    let up = Upstreams::start();
    let in_url = "ghp_PASTEDINURL123";
    for (vars, variable) in [
        (
            vec![(
                "REGISTRY_REPO_URL",
                "https://github.com/acme/policy.git".to_string(),
            )],
            "REGISTRY_REPO_TOKEN",
        ),
        (
            vec![
                (
                    "REGISTRY_REPO_URL",
                    format!("https://x-access-token:{in_url}@github.com/acme/policy.git"),
                ),
                ("REGISTRY_REPO_TOKEN", TOKEN.to_string()),
            ],
            "REGISTRY_REPO_URL",
        ),
        (
            vec![
                (
                    "REGISTRY_REPO_URL",
                    "file:///nowhere/acme/policy.git".to_string(),
                ),
                ("REGISTRY_REPO_TOKEN", TOKEN.to_string()),
            ],
            "GITHUB_API_BASE",
        ),
    ] {
        let mut cmd = daemon_cmd(dir.path(), REGISTRY, &up.env())
            .env("BIND_HOST", "127.0.0.1")
            .env("BIND_PORT", lex_align_e2e::free_port().to_string());
        for (k, v) in &vars {
            cmd = cmd.env(*k, v.clone());
        }
        let run = cmd.output().await;
        run.expect_code(1);
        assert!(run.stderr.contains(variable), "{vars:?}: {}", run.stderr);
        for secret in [TOKEN, in_url] {
            assert!(!run.stderr.contains(secret), "{}", run.stderr);
            assert!(!run.stdout.contains(secret), "{}", run.stdout);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_config_names_the_proposer_it_would_pick() {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("policy");
    std::fs::create_dir_all(&repo).unwrap();
    git(&repo, &["init", "--quiet"]);
    let yml = repo.join("registry.yml");
    std::fs::write(&yml, REGISTRY).unwrap();
    let base = |home: &Path| {
        lex(home)
            .args(["check-config"])
            .env("REGISTRY_PATH", yml.display().to_string())
            .env(
                "DATABASE_PATH",
                dir.path().join("db.sqlite").display().to_string(),
            )
    };
    let run = base(dir.path()).output().await;
    assert!(
        run.stdout.contains("OK   proposer        local_git (auto-detected) — each accepted proposal is written and committed by lex-align bot <lex-align@localhost>."),
        "{}",
        run.stdout
    );
    let run = base(dir.path())
        .env("REGISTRY_REPO_URL", "https://github.com/acme/policy.git")
        .env("REGISTRY_REPO_TOKEN", TOKEN)
        .output()
        .await;
    let all = format!("{}{}", run.stdout, run.stderr);
    assert!(
        all.contains(
            "WRN  proposer        github (REGISTRY_REPO_URL=https://github.com/acme/policy.git)"
        ),
        "{all}"
    );
    assert!(!all.contains(TOKEN), "{all}");
}
