//! The operator commands, driven through the real binary.

use std::path::Path;

use lex_align_e2e::{free_port, wait_healthy, Cmd, Daemon, Upstreams};

use crate::{daemon_cmd, lex, BIN, STARTER};

fn health_json(body: &str) -> serde_json::Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("health is not JSON ({e}): {body}"))
}

async fn get_health(base: &str) -> serde_json::Value {
    let r = reqwest::get(format!("{base}/api/v1/health")).await.unwrap();
    assert_eq!(r.status(), 200);
    health_json(&r.text().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quickstart_no_serve_prints_a_command_that_starts_the_daemon() {
    let home = tempfile::tempdir().unwrap();
    let target = home.path().join("data dir"); // a space: the printed command must quote it
    let port = free_port();
    let run = lex(home.path())
        .args([
            "quickstart",
            "--no-serve",
            "--port",
            &port.to_string(),
            "--target",
        ])
        .args([target.display().to_string()])
        .output()
        .await;
    run.expect_code(0);
    let target = std::fs::canonicalize(&target).unwrap();
    let yml = target.join("registry.yml");
    let db = target.join("lexalign.sqlite");
    let marker = target.join(".lexalign-quickstart.toml");
    for p in [&yml, &db, &marker] {
        assert!(p.is_file(), "{} missing", p.display());
        assert!(
            run.stdout.contains(&format!("  + {}", p.display())),
            "{}",
            run.stdout
        );
    }
    assert_eq!(std::fs::read_to_string(&yml).unwrap(), STARTER);
    assert!(run.stdout.contains(&format!(
        "Quickstart bundle ready under {}.",
        target.display()
    )));
    let m: toml::Table = toml::from_str(&std::fs::read_to_string(&marker).unwrap()).unwrap();
    assert_eq!(m["target"].as_str(), Some(target.to_str().unwrap()));
    assert_eq!(m["registry_path"].as_str(), Some(yml.to_str().unwrap()));
    assert_eq!(m["database_path"].as_str(), Some(db.to_str().unwrap()));
    assert_eq!(m["bind_host"].as_str(), Some("127.0.0.1"));
    assert_eq!(m["bind_port"].as_integer(), Some(port as i64));

    // The line after "Start later with:" is a shell command; run it as printed.
    let mut lines = run.stdout.lines();
    lines
        .by_ref()
        .find(|l| l.contains("Start later with:"))
        .expect("start hint");
    let command = lines.next().expect("start command").trim().to_string();
    assert!(command.contains(&format!("BIND_PORT={port}")), "{command}");
    let mut child = Cmd::new("bash", home.path())
        .args(["-c".to_string(), format!("exec env {command}")])
        .spawn();
    let base = format!("http://127.0.0.1:{port}");
    wait_healthy(&base, &mut child).await;
    let health = get_health(&base).await;
    assert_eq!(health["db"], "ok", "{health}");
    assert_eq!(health["registry_loaded"], true, "{health}");
    // The target is the daemon's data directory: its signing key is there.
    assert!(command.contains("LEXALIGN_DATA_DIR="), "{command}");
    assert!(target.join("signing-key").is_file());

    // selftest against the live daemon, then against a dead port.
    let ok = lex(home.path())
        .args(["selftest", "--url", &base])
        .output()
        .await;
    ok.expect_code(0);
    assert!(
        ok.stdout
            .starts_with(&format!("OK  {base}/api/v1/health\n")),
        "{}",
        ok.stdout
    );
    assert_eq!(
        health_json(ok.stdout.split_once('\n').unwrap().1)["db"],
        "ok"
    );

    let dead = format!("http://127.0.0.1:{}", free_port());
    let bad = lex(home.path())
        .args(["selftest", "--url", &dead, "--timeout", "2"])
        .output()
        .await;
    bad.expect_code(1);
    assert!(
        bad.stderr.starts_with(&format!(
            "Error: Server unreachable at {dead}/api/v1/health: "
        )),
        "{}",
        bad.stderr
    );
    let _ = child.kill().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quickstart_is_idempotent_and_keeps_user_edits() {
    let home = tempfile::tempdir().unwrap();
    let target = home.path().join("lexalign");
    let qs = |extra: &[&str]| {
        lex(home.path())
            .args(["quickstart", "--no-serve", "--target"])
            .args([target.display().to_string()])
            .args(extra.iter().map(|s| s.to_string()))
    };
    qs(&[]).output().await.expect_code(0);
    let yml = target.join("registry.yml");
    let edited =
        format!("{STARTER}  flask:\n    status: approved\n    reason: team web framework\n");
    std::fs::write(&yml, &edited).unwrap();

    let again = qs(&[]).output().await;
    again.expect_code(0);
    assert_eq!(std::fs::read_to_string(&yml).unwrap(), edited);
    assert!(again
        .stdout
        .contains(&format!("  · skipped (exists) {}", yml.display())));
    assert!(again.stdout.contains(&format!(
        "  · skipped (exists) {}",
        target.join("lexalign.sqlite").display()
    )));

    // A broken hand edit is reported with its line, not laid over.
    std::fs::write(&yml, format!("{edited}  django:\n    status: sometimes\n")).unwrap();
    let broken = qs(&[]).output().await;
    broken.expect_code(1);
    assert!(
        broken
            .stderr
            .starts_with("Error: Registry validation failed: "),
        "{}",
        broken.stderr
    );
    assert!(broken.stderr.contains("django"), "{}", broken.stderr);
    let key_line = edited.lines().count() + 1;
    assert!(
        broken.stderr.contains(&format!("line {key_line}"))
            || broken.stderr.contains(&format!("line {}", key_line + 1)),
        "{}",
        broken.stderr
    );

    // --force restores the starter registry.
    qs(&["--force"]).output().await.expect_code(0);
    assert_eq!(std::fs::read_to_string(&yml).unwrap(), STARTER);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quickstart_serves_and_a_second_run_sees_it_running() {
    let home = tempfile::tempdir().unwrap();
    let target = home.path().join("lexalign");
    let port = free_port();
    let cmd = lex(home.path())
        .args(["quickstart", "--port", &port.to_string(), "--target"])
        .args([target.display().to_string()]);
    let mut first = cmd.spawn();
    let base = format!("http://127.0.0.1:{port}");
    wait_healthy(&base, &mut first).await;
    assert_eq!(get_health(&base).await["registry_loaded"], true);
    // --target is the data directory, not only where the registry and the
    // DB go: the signing key is made there, nothing under ~/.lexalign.
    assert!(target.join("signing-key").is_file());
    assert!(!home.path().join(".lexalign").exists());

    let second = cmd.output().await;
    second.expect_code(0);
    assert!(
        second
            .stdout
            .contains(&format!("A lex-align daemon already answers on {base}")),
        "{}",
        second.stdout
    );
    // The first one is unaffected.
    assert_eq!(get_health(&base).await["db"], "ok");
    let _ = first.kill().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registry_compile_good_and_bad() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("registry.yml");
    std::fs::write(&src, STARTER).unwrap();
    let dst = dir.path().join("out/nested/registry.json");
    let ok = lex(dir.path())
        .args(["registry", "compile"])
        .args([src.display().to_string(), dst.display().to_string()])
        .output()
        .await;
    ok.expect_code(0);
    assert_eq!(
        ok.stdout,
        format!(
            "Compiled 4 package rules from {} → {}\n",
            src.display(),
            dst.display()
        )
    );
    let text = std::fs::read_to_string(&dst).unwrap();
    assert!(
        text.ends_with("}\n") && text.starts_with("{\n  \""),
        "{text}"
    );
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["packages"]["pyqt5"]["status"], "banned");
    assert_eq!(v["packages"]["cryptography"]["min_version"], "42.0.0");
    assert_eq!(v["global_policies"]["cve_threshold"], 0.9);
    // Re-serialising with sorted keys and 2-space indent is the identity.
    assert_eq!(
        format!("{}\n", serde_json::to_string_pretty(&v).unwrap()),
        text
    );

    // Validation error: exit 1, the package and line named, DST not written.
    let bad = dir.path().join("bad.yml");
    std::fs::write(
        &bad,
        "version: \"1\"\npackages:\n  httpx:\n    status: preferred\n  leftpad:\n    status: maybe\n",
    )
    .unwrap();
    let bad_dst = dir.path().join("bad.json");
    let r = lex(dir.path())
        .args(["registry", "compile"])
        .args([bad.display().to_string(), bad_dst.display().to_string()])
        .output()
        .await;
    r.expect_code(1);
    assert!(
        r.stderr.starts_with("Error: Registry validation failed: "),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.contains("leftpad") && r.stderr.contains("line "),
        "{}",
        r.stderr
    );
    assert!(!bad_dst.exists());

    // Not YAML at all.
    std::fs::write(&bad, "packages: [unclosed\n").unwrap();
    let r = lex(dir.path())
        .args(["registry", "compile"])
        .args([bad.display().to_string(), bad_dst.display().to_string()])
        .output()
        .await;
    r.expect_code(1);
    assert!(
        r.stderr.starts_with("Error: YAML parse error: "),
        "{}",
        r.stderr
    );

    // Missing source: a usage error, exit 2 (as click did).
    let r = lex(dir.path())
        .args(["registry", "compile", "/nonexistent/registry.yml", "x.json"])
        .output()
        .await;
    r.expect_code(2);
    assert!(r.stderr.contains("does not exist"), "{}", r.stderr);
}

fn check_config(home: &Path) -> Cmd {
    lex(home).args(["check-config"])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_config_passes_on_a_good_setup_and_names_every_fix_otherwise() {
    let dir = tempfile::tempdir().unwrap();
    let yml = dir.path().join("registry.yml");
    std::fs::write(&yml, STARTER).unwrap();
    let db = dir.path().join("lexalign.sqlite");
    let good = check_config(dir.path())
        .env("REGISTRY_PATH", yml.display().to_string())
        .env("DATABASE_PATH", db.display().to_string())
        .env("LEXALIGN_INDEX_URL", "http://127.0.0.1:9/pypi")
        .env("LEXALIGN_OSV_URL", "http://127.0.0.1:9")
        .output()
        .await;
    good.expect_code(0);
    for line in [
        format!("OK   REGISTRY_PATH   {} exists (", yml.display()),
        format!(
            "OK   registry YAML   {} validates (4 package rules).",
            yml.display()
        ),
        "OK   proposer        local_file (auto-detected)".to_string(),
        "OK   package index   http://127.0.0.1:9/pypi".to_string(),
    ] {
        assert!(
            good.stdout.contains(&line),
            "missing {line:?} in\n{}",
            good.stdout
        );
    }
    // The DB does not exist yet: a warning, not a failure.
    assert!(good.stdout.contains("WRN  audit DB"), "{}", good.stdout);
    assert!(
        good.stdout
            .ends_with("\nAll checks passed with 1 warning(s).\n"),
        "{}",
        good.stdout
    );

    // Everything wrong at once: every problem is listed with its fix.
    std::fs::write(
        &yml,
        "version: \"1\"\npackages:\n  pyqt5:\n    status: forbidden\n",
    )
    .unwrap();
    let bad = check_config(dir.path())
        .env("REGISTRY_PATH", yml.display().to_string())
        // Under a regular file: no directory can be created there.
        .env(
            "DATABASE_PATH",
            yml.join("data/lexalign.sqlite").display().to_string(),
        )
        .env("BIND_PORT", "eighty")
        .env("OUTBOUND_TIMEOUT", "soon")
        // No python3 on PATH: no pip default index to fall back to.
        .env("PATH", dir.path().join("no-bin").display().to_string())
        .output()
        .await;
    bad.expect_code(1);
    assert!(
        bad.stderr.trim_end().ends_with("failure(s), 0 warning(s).")
            || bad.stderr.contains("failure(s)"),
        "{}",
        bad.stderr
    );
    for needle in [
        "FAIL  registry YAML",
        "failed validation",
        "pyqt5",
        "FAIL  audit DB",
        "FAIL  BIND_PORT",
        "BIND_PORT=8765",
        "FAIL  OUTBOUND_TIMEOUT",
        "FAIL  package index",
        "LEXALIGN_INDEX_URL",
        "FAIL  advisories",
        "LEXALIGN_OSV_URL",
    ] {
        assert!(
            bad.stdout.contains(needle),
            "missing {needle:?} in\n{}",
            bad.stdout
        );
    }
    let fails = bad.stdout.lines().filter(|l| l.starts_with("FAIL")).count();
    assert!(
        bad.stderr.contains(&format!("{fails} failure(s)")),
        "{}\n{}",
        bad.stdout,
        bad.stderr
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_verify_proves_the_chain_and_finds_tampering() {
    let dir = tempfile::tempdir().unwrap();
    let up = Upstreams::start();
    let mut d = Daemon::start(daemon_cmd(dir.path(), STARTER, &up.env())).await;
    let client = reqwest::Client::new();
    let mut n = 0;
    for pkg in ["httpx", "pyqt5", "requests", "flask", "httpx", "numpy"] {
        let r = client
            .get(format!("{}/api/v1/evaluate", d.base))
            .query(&[("package", pkg)])
            .header("X-LexAlign-Project", "e2e")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{pkg}: {}", r.text().await.unwrap());
        n += 1;
    }
    d.kill9().await;

    let db = dir.path().join("lexalign.sqlite");
    let ok = lex(dir.path())
        .args(["audit", "verify", "--db"])
        .args([db.display().to_string()])
        .output()
        .await;
    ok.expect_code(0);
    let rows = rows_checked(&ok.stdout);
    assert!(rows >= n, "{rows} rows < {n} evaluations\n{}", ok.stdout);
    assert!(ok.stdout.contains("hash chain OK"), "{}", ok.stdout);

    // DATABASE_PATH is the default.
    lex(dir.path())
        .args(["audit", "verify"])
        .env("DATABASE_PATH", db.display().to_string())
        .output()
        .await
        .expect_code(0);

    // Rewrite history: the third decision becomes ALLOWED.
    let tampered: i64 = {
        let conn = rusqlite::Connection::open(&db).unwrap();
        let seq: i64 = conn
            .query_row(
                "SELECT seq FROM audit_log ORDER BY seq LIMIT 1 OFFSET 2",
                [],
                |r| r.get(0),
            )
            .unwrap();
        let changed = conn
            .execute(
                "UPDATE audit_log SET verdict = 'ALLOWED', reason = 'fine' WHERE seq = ?1",
                [seq],
            )
            .unwrap();
        assert_eq!(changed, 1);
        seq
    };
    let broken = lex(dir.path())
        .args(["audit", "verify", "--db"])
        .args([db.display().to_string()])
        .output()
        .await;
    broken.expect_code(1);
    assert!(
        broken
            .stderr
            .contains(&format!("BROKEN at row {tampered} (")),
        "{}",
        broken.stderr
    );

    // A path with no database is an error, not an empty success.
    lex(dir.path())
        .args(["audit", "verify", "--db", "/nonexistent/x.sqlite"])
        .output()
        .await
        .expect_code(1);
}

/// Parses `… <n> rows checked …` from `audit verify`.
pub fn rows_checked(stdout: &str) -> usize {
    let before = stdout
        .split(" rows checked")
        .next()
        .unwrap_or_else(|| panic!("no row count in {stdout}"));
    before
        .rsplit(' ')
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no row count in {stdout}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_as_lex_align_server_and_client_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let server = dir.path().join("lex-align-server");
    let client = dir.path().join("lex-align-client");
    std::os::unix::fs::symlink(BIN, &server).unwrap();
    std::os::unix::fs::symlink(BIN, &client).unwrap();

    let help = Cmd::new(&server, dir.path())
        .args(["--help"])
        .output()
        .await;
    help.expect_code(0);
    for cmd in [
        "serve",
        "quickstart",
        "init",
        "check-config",
        "registry",
        "selftest",
        "admin",
    ] {
        assert!(
            help.stdout.contains(cmd),
            "{cmd} missing from\n{}",
            help.stdout
        );
    }

    let keys = Cmd::new(&server, dir.path())
        .args(["admin", "keys", "generate", "--project", "p"])
        .output()
        .await;
    // The original's spelling makes an agent key scoped to the project.
    keys.expect_code(0);
    assert!(keys.stdout.contains("role agent"), "{}", keys.stdout);
    assert!(keys.stdout.contains("project: p only"), "{}", keys.stdout);
    assert!(keys.stdout.contains("lxa_"), "{}", keys.stdout);

    let init = Cmd::new(&server, dir.path()).args(["init"]).output().await;
    init.expect_code(1);
    assert!(init.stderr.contains("quickstart"), "{}", init.stderr);

    // `lex-align-server registry compile` is the same command as `lex-align registry compile`.
    let src = dir.path().join("r.yml");
    std::fs::write(&src, STARTER).unwrap();
    let out = dir.path().join("r.json");
    Cmd::new(&server, dir.path())
        .args(["registry", "compile"])
        .args([src.display().to_string(), out.display().to_string()])
        .output()
        .await
        .expect_code(0);
    assert!(out.is_file());

    // `lex-align-server serve --port` starts the daemon.
    let port = free_port();
    let mut child = Cmd::new(&server, dir.path())
        .args(["serve", "--host", "127.0.0.1", "--port", &port.to_string()])
        .env(
            "DATABASE_PATH",
            dir.path().join("db.sqlite").display().to_string(),
        )
        .spawn();
    wait_healthy(&format!("http://127.0.0.1:{port}"), &mut child).await;
    let _ = child.kill().await;

    let c = Cmd::new(&client, dir.path())
        .args(["check", "--package", "httpx"])
        .output()
        .await;
    // The client persona is the real client: outside a project it asks for `init`.
    c.expect_code(1);
    assert!(
        c.stderr
            .contains("No .lexalign.toml found. Run `lex-align-client init` first."),
        "{}",
        c.stderr
    );
}
