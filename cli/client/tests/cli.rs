//! check / request-approval / audit / status / precommit end to end with the
//! real binary, a real daemon and a real git repository.

mod common;

use common::*;
use serde_json::Value;

const PYPROJECT: &str = concat!(
    lex_align_fakes::pyproject!("svc"; "httpx>=0.27", "cryptography>=42", "click"),
    "\n[project.optional-dependencies]\ngui = [\"PyQt5>=5.15\"]\n\n[dependency-groups]\ndev = [\"requests==2.31.0\"]\n"
);

#[test]
fn check_exit_codes_and_requirements() {
    let d = daemon();
    let p = project(&d.url, false);
    let out = run(p.path(), &["check", "--package", "httpx"], "");
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.starts_with("{\n  \"verdict\": \"ALLOWED\""), "{text}");
    let v: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["transport_error"], false);

    let out = run(p.path(), &["check", "--package", "pyqt5"], "");
    assert_eq!(out.status.code(), Some(2));
    let v: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(v["verdict"], "DENIED");
    assert_eq!(v["registry_status"], "banned");

    // A full requirement is judged as a whole: >=41 admits 41.x, below the minimum.
    let out = run(p.path(), &["check", "--package", "cryptography>=41"], "");
    assert_eq!(out.status.code(), Some(2), "{}", stdout(&out));
    let v: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(v["requirement"], "cryptography>=41");
    assert!(v["suggested_requirement"].as_str().is_some(), "{v}");
    let out = run(p.path(), &["check", "--package", "cryptography>=42"], "");
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));

    // Missing required flag: usage error, exit 2.
    let out = run(p.path(), &["check"], "");
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn check_when_unreachable() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{port}");
    let p = project(&url, true);
    let out = run(p.path(), &["check", "--package", "httpx"], "");
    assert_eq!(out.status.code(), Some(0));
    let v: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(v["transport_error"], true);
    assert!(v["reason"].as_str().unwrap().contains("fail_open=true"));

    let p = project(&url, false);
    let out = run(p.path(), &["check", "--package", "httpx"], "");
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).starts_with("Error: Server unreachable"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn config_errors_name_the_line() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(dir.path(), &["check", "--package", "httpx"], "");
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("No .lexalign.toml found"));
    std::fs::write(
        dir.path().join(".lexalign.toml"),
        "project = \"svc\"\nfail_open = \"maybe\"\n",
    )
    .unwrap();
    let out = run(dir.path(), &["check", "--package", "httpx"], "");
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains(".lexalign.toml:2:"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn request_approval_records_or_refuses() {
    let d = daemon();
    let p = project(&d.url, true);
    let out = run(
        p.path(),
        &[
            "request-approval",
            "--package",
            "click",
            "--rationale",
            "CLI",
        ],
        "",
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let v: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(v["status"], "PENDING_REVIEW");
    let out = run(
        p.path(),
        &[
            "request-approval",
            "--package",
            "pyqt5",
            "--rationale",
            "GUI",
        ],
        "",
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("409"), "{}", stderr(&out));
}

#[test]
fn audit_formats() {
    let d = daemon();
    let p = project(&d.url, true);
    std::fs::write(p.path().join("pyproject.toml"), PYPROJECT).unwrap();
    std::fs::write(
        p.path().join("requirements.txt"),
        "-r requirements-base.txt\nsix==1.16.0\n",
    )
    .unwrap();
    std::fs::write(p.path().join("requirements-base.txt"), "Jinja2==3.1.2\n").unwrap();

    let out = run(p.path(), &["audit"], "");
    assert_eq!(out.status.code(), Some(2), "{}", stdout(&out));
    let text = stdout(&out);
    assert!(text.contains("DENIED:"), "{text}");
    assert!(text.contains("use instead: httpx"), "{text}");
    assert!(!text.contains("\x1b["), "NO_COLOR respected");

    let out = run(p.path(), &["audit", "--json"], "");
    let v: Value = serde_json::from_str(&stdout(&out)).unwrap();
    let names: Vec<String> = v["verdicts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["source"]["requirement"].as_str().unwrap().to_string())
        .collect();
    for want in [
        "httpx>=0.27",
        "pyqt5>=5.15",
        "requests==2.31.0",
        "six==1.16.0",
        "jinja2==3.1.2",
    ] {
        assert!(names.iter().any(|n| n == want), "{want} in {names:?}");
    }
    assert!(v["summary"]["denied"].as_u64().unwrap() >= 2);
    let jinja = v["verdicts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["source"]["requirement"] == "jinja2==3.1.2")
        .unwrap();
    assert_eq!(jinja["source"]["file"], "requirements-base.txt");

    let out = run(p.path(), &["audit", "--format", "sarif"], "");
    assert_eq!(out.status.code(), Some(2));
    let s: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(s["version"], "2.1.0");
    let run0 = &s["runs"][0];
    assert_eq!(run0["tool"]["driver"]["name"], "lex-align");
    let results = run0["results"].as_array().unwrap();
    let pyqt = results
        .iter()
        .find(|r| r["ruleId"] == "banned")
        .expect("a banned result");
    assert_eq!(pyqt["level"], "error");
    let loc = &pyqt["locations"][0]["physicalLocation"];
    assert_eq!(loc["artifactLocation"]["uri"], "pyproject.toml");
    let line = PYPROJECT.lines().position(|l| l.contains("PyQt5")).unwrap() + 1;
    assert_eq!(loc["region"]["startLine"], line);
    let col = PYPROJECT
        .lines()
        .nth(line - 1)
        .unwrap()
        .find("PyQt5")
        .unwrap()
        + 1;
    assert_eq!(loc["region"]["startColumn"], col);
    assert_eq!(loc["region"]["snippet"]["text"], "PyQt5>=5.15");
    let rules = run0["tool"]["driver"]["rules"].as_array().unwrap();
    assert_eq!(
        rules[pyqt["ruleIndex"].as_u64().unwrap() as usize]["id"],
        "banned"
    );
}

#[test]
fn precommit_reads_the_git_index() {
    let d = daemon();
    let p = project(&d.url, false);
    git(p.path(), &["init", "-q"]);
    let good = "[project]\nname = \"svc\"\nversion = \"0.1.0\"\ndependencies = [\"httpx>=0.27\"]\n";
    let bad = "[project]\nname = \"svc\"\nversion = \"0.1.0\"\ndependencies = [\n  \"httpx>=0.27\",\n  \"requests>=2.31\",\n]\n";
    std::fs::write(p.path().join("pyproject.toml"), bad).unwrap();
    git(p.path(), &["add", "pyproject.toml"]);
    // The working tree is clean again, the index still has `requests`.
    std::fs::write(p.path().join("pyproject.toml"), good).unwrap();
    let out = run(p.path(), &["precommit"], "");
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("commit blocked"), "{err}");
    let line = err
        .lines()
        .find(|l| l.starts_with("lex-align-blocked "))
        .expect(&err);
    assert!(line.contains("package=\"requests\""), "{line}");
    assert!(line.contains("file=\"pyproject.toml\" line=6"), "{line}");
    // The table already declares httpx: one entry stays, with the stricter
    // specifier (the replacement's current version, as the editor's fix).
    assert!(
        line.contains("fix=\"replace with `httpx` — this table already declares `httpx>=0.27`: remove `requests>=2.31` and keep one entry for it, `httpx>=0.28.1`\""),
        "{line}"
    );
    assert!(
        err.contains("      fix: replace with `httpx` — this table already declares"),
        "{err}"
    );

    let out = run(p.path(), &["precommit", "--json"], "");
    let v: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(v["blocked"], true);
    assert_eq!(v["violations"][0]["replacement"], "httpx");

    // Stage the good file: the commit passes, and a real commit runs the hook.
    git(p.path(), &["add", "pyproject.toml"]);
    let out = run(p.path(), &["precommit"], "");
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));

    let out = run(
        p.path(),
        &[
            "init",
            "--yes",
            "--no-claude-md",
            "--no-claude-hooks",
            "--server-url",
            &d.url,
        ],
        "",
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    std::fs::write(p.path().join("requirements.txt"), "pyqt5\n").unwrap();
    git(p.path(), &["add", "requirements.txt", "pyproject.toml"]);
    let commit = std::process::Command::new("git")
        .args([
            "-c",
            "user.name=t",
            "-c",
            "user.email=t@example.invalid",
            "commit",
            "-q",
            "-m",
            "add gui",
        ])
        .current_dir(p.path())
        .env("LEXALIGN_NO_AUTOSTART", "1")
        .output()
        .unwrap();
    assert!(
        !commit.status.success(),
        "the hook blocks the commit: {}",
        String::from_utf8_lossy(&commit.stderr)
    );
    assert!(String::from_utf8_lossy(&commit.stderr).contains("pyqt5"));
}

#[test]
fn status_reports_hooks_and_server() {
    let d = daemon();
    let p = project(&d.url, true);
    std::fs::write(p.path().join("pyproject.toml"), PYPROJECT).unwrap();
    let out = run(p.path(), &["status", "--json"], "");
    assert_eq!(out.status.code(), Some(0));
    let v: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(v["server"]["reachable"], true);
    assert_eq!(v["deps_total"], 5);
    assert_eq!(v["hooks"]["claude"]["PreToolUse"], false);
    let summary = v["server"]["detail"]["upstreams"]["advisories"]["summary"]
        .as_str()
        .expect("health names the advisory source")
        .to_string();
    assert!(
        summary.starts_with("OSV API at http://127.0.0.1:"),
        "{summary}"
    );
    let out = run(p.path(), &["status"], "");
    assert!(
        stdout(&out).contains("Server: reachable"),
        "{}",
        stdout(&out)
    );
    // The text output names the advisory source as health does.
    assert!(
        stdout(&out).contains(&format!("\nAdvisories: {summary}\n")),
        "{}",
        stdout(&out)
    );
}

/// An alert row as the daemon's re-scan writes it.
fn alert_row() -> lex_align_store::AuditRow {
    lex_align_store::AuditRow {
        project: "lex-align-server".into(),
        requester: "scanner".into(),
        package: "httpx".into(),
        canonical: "httpx".into(),
        version: Some("0.28.1".into()),
        resolved_version: Some("0.28.1".into()),
        verdict: "CVE_ALERT".into(),
        denial_category: "cve_alert".into(),
        reason: Some("New advisory for httpx 0.28.1".into()),
        cve_ids: vec!["GHSA-cvsc-an00-0009".into()],
        max_cvss: Some(7.5),
        source: "scanner".into(),
        ..Default::default()
    }
}

#[test]
fn status_and_session_brief_show_open_cve_alerts() {
    // Re-scan off: the alert in the log is open until a scan re-checks it.
    let d = daemon_with(vec![alert_row()], |c| c.cve_scan_interval_hours = 0.0);
    let p = project(&d.url, true);
    std::fs::write(p.path().join("pyproject.toml"), PYPROJECT).unwrap();
    let out = run(p.path(), &["status", "--json"], "");
    assert_eq!(out.status.code(), Some(0));
    let v: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(v["cve_scan"]["enabled"], false, "{v}");
    assert_eq!(v["cve_scan"]["open_alerts"], 1, "{v}");
    assert_eq!(
        v["cve_scan"]["alerts"][0]["advisories"],
        serde_json::json!(["GHSA-cvsc-an00-0009"])
    );
    let text = stdout(&run(p.path(), &["status"], ""));
    assert!(
        text.contains("\nCVE re-scan: disabled (LEXALIGN_CVE_SCAN_INTERVAL_HOURS=0)\n"),
        "{text}"
    );
    assert!(
        text.contains("\nCVE alert: httpx 0.28.1: GHSA-cvsc-an00-0009 (CVSS 7.5)\n"),
        "{text}"
    );

    let brief = stdout(&run(
        p.path(),
        &["hook", "session-start"],
        &event("sessionstart_startup.json", p.path()),
    ));
    let brief: Value = serde_json::from_str(brief.trim()).unwrap();
    let ctx = brief["hookSpecificOutput"]["additionalContext"]
        .as_str()
        .unwrap();
    assert!(
        ctx.contains("\nCVE alert: httpx 0.28.1: GHSA-cvsc-an00-0009 (CVSS 7.5).\n"),
        "{ctx}"
    );
    assert!(ctx.contains("\nCVE re-scan: disabled"), "{ctx}");
}

#[test]
fn status_and_session_brief_name_an_override_that_lapses_this_week() {
    let d = daemon_with(vec![], |c| {
        let store = lex_align_store::AccessDb::open(&c.database_path).unwrap();
        let soon = time::OffsetDateTime::now_utc() + time::Duration::days(3);
        let later = time::OffsetDateTime::now_utc() + time::Duration::days(30);
        let just = "Pinned by the vendor until their patch ships next month.";
        store
            .grant_override("requests", "svc", Some("2.31.0"), just, "olga", soon)
            .unwrap();
        // Lapses after the week: not named.
        store
            .grant_override("flask", "svc", None, just, "olga", later)
            .unwrap();
    });
    let p = project(&d.url, true);
    std::fs::write(p.path().join("pyproject.toml"), PYPROJECT).unwrap();
    let text = stdout(&run(p.path(), &["status"], ""));
    let line = text
        .lines()
        .find(|l| l.contains("override ") && l.contains("lapses"))
        .unwrap_or_else(|| panic!("no lapsing override in\n{text}"));
    assert!(line.starts_with("  ~ override ovr"), "{line}");
    assert!(line.contains(" for requests==2.31.0 lapses "), "{line}");
    assert!(line.contains("(approved by olga)"), "{line}");
    assert!(text.contains("\nLapsing within 7 days:\n"), "{text}");
    assert!(!text.contains("for flask"), "{text}");

    let brief = stdout(&run(
        p.path(),
        &["hook", "session-start"],
        &event("sessionstart_startup.json", p.path()),
    ));
    let brief: Value = serde_json::from_str(brief.trim()).unwrap();
    let ctx = brief["hookSpecificOutput"]["additionalContext"]
        .as_str()
        .unwrap();
    assert!(
        ctx.contains("Lapsing within 7 days: override ovr")
            && ctx.contains(" for requests==2.31.0 lapses "),
        "{ctx}"
    );
    assert!(!ctx.contains("for flask"), "{ctx}");
}

/// Packages the fixture lock pulls in that the fixture index does not carry.
fn add_lock_only_projects(d: &Daemon) {
    use lex_align_fakes::{FakeProject, FakeRelease};
    d.index.add_project(
        FakeProject::new("cffi").release(
            FakeRelease::new("1.17.1")
                .license("MIT")
                .classifier("License :: OSI Approved :: MIT License"),
        ),
    );
    d.index.add_project(
        FakeProject::new("itsdangerous").release(
            FakeRelease::new("2.1.2")
                .license_expression("BSD-3-Clause")
                .classifier("License :: OSI Approved :: BSD License"),
        ),
    );
}

fn lock_project(d: &Daemon) -> tempfile::TempDir {
    let p = project(&d.url, false);
    for f in ["pyproject.toml", "uv.lock"] {
        std::fs::copy(data(&format!("lock_project/{f}")), p.path().join(f)).unwrap();
    }
    p
}

fn by_package<'a>(verdicts: &'a [Value], canonical: &str) -> &'a Value {
    verdicts
        .iter()
        .find(|v| {
            v["package"]
                .as_str()
                .is_some_and(|p| p.eq_ignore_ascii_case(canonical))
        })
        .unwrap_or_else(|| panic!("{canonical} in {verdicts:#?}"))
}

#[test]
fn audit_attributes_lock_packages_to_direct_dependencies() {
    let d = daemon();
    add_lock_only_projects(&d);
    let p = lock_project(&d);
    let lock_text = std::fs::read_to_string(p.path().join("uv.lock")).unwrap();
    let line_of = |name: &str| {
        lock_text
            .lines()
            .position(|l| l == format!("name = \"{name}\""))
            .unwrap()
            + 1
    };

    let out = run(p.path(), &["audit", "--format", "json"], "");
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let v: Value = serde_json::from_str(&stdout(&out)).unwrap();
    let verdicts = v["verdicts"].as_array().unwrap();
    // 2 direct + the 8 locked packages they pull in (the project's own
    // entry and the direct ones' lock entries are not counted again).
    assert_eq!(v["deps_total"], 10, "{v:#}");

    let flask = by_package(verdicts, "flask");
    assert_eq!(flask["source"]["direct"], true);
    assert_eq!(flask["source"]["file"], "pyproject.toml");
    assert_eq!(flask["source"]["locked_version"], "2.2.4");

    // Two levels below `pyjwt[crypto]` (through its extra): the
    // version-constrained registry rule denies the locked 41.0.7.
    let crypto = by_package(verdicts, "cryptography");
    assert_eq!(crypto["verdict"], "DENIED", "{crypto:#}");
    assert_eq!(crypto["registry_status"], "version-constrained");
    assert_eq!(crypto["version"], "41.0.7");
    let src = &crypto["source"];
    assert_eq!(src["direct"], false);
    assert_eq!(src["via"], serde_json::json!(["pyjwt"]));
    assert_eq!(src["file"], "uv.lock");
    assert_eq!(src["line"], line_of("cryptography"));
    assert_eq!(src["requirement"], "cryptography==41.0.7");
    assert_eq!(
        by_package(verdicts, "pycparser")["source"]["via"],
        serde_json::json!(["pyjwt"])
    );

    // Vulnerable in the PyPA snapshot (below the denial threshold): the
    // advisories reach the report, attributed to flask.
    let werkzeug = by_package(verdicts, "werkzeug");
    assert_eq!(werkzeug["source"]["via"], serde_json::json!(["flask"]));
    assert!(
        werkzeug["max_cvss"].as_f64().unwrap() >= 7.0,
        "{werkzeug:#}"
    );
    let cves: Vec<&str> = werkzeug["cve_ids"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    // PYSEC-2023-58 is CVE-2023-25577 (multipart DoS, fixed in 2.2.3).
    assert!(cves.contains(&"PYSEC-2023-58"), "{cves:?}");
    // Reached by two paths (jinja2 and werkzeug), both under flask only.
    assert_eq!(
        by_package(verdicts, "markupsafe")["source"]["via"],
        serde_json::json!(["flask"])
    );
    assert!(v["summary"]["denied"].as_u64().unwrap() >= 1);

    // The text report says where the denied package comes from.
    let out = run(p.path(), &["audit"], "");
    let text = stdout(&out);
    assert!(
        text.contains(&format!(
            "at: uv.lock:{}, via pyjwt",
            line_of("cryptography")
        )),
        "{text}"
    );
}

#[test]
fn precommit_checks_the_staged_lock_file() {
    let d = daemon();
    add_lock_only_projects(&d);
    let p = lock_project(&d);
    git(p.path(), &["init", "-q"]);
    git(p.path(), &["add", "pyproject.toml", "uv.lock"]);
    let out = run(p.path(), &["precommit", "--json"], "");
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let v: Value = serde_json::from_str(&stdout(&out)).unwrap();
    let violations = v["violations"].as_array().unwrap();
    let crypto = by_package(violations, "cryptography");
    assert_eq!(crypto["file"], "uv.lock");
    assert_eq!(crypto["via"], serde_json::json!(["pyjwt"]));
    assert_eq!(crypto["category"], "version-constraint");

    // Upgrading cryptography in the lock but leaving the old lock staged
    // still blocks: the commit would contain the staged one.
    let fixed = std::fs::read_to_string(p.path().join("uv.lock"))
        .unwrap()
        .replace("version = \"41.0.7\"", "version = \"42.0.0\"");
    std::fs::write(p.path().join("uv.lock"), &fixed).unwrap();
    let out = run(p.path(), &["precommit", "--json"], "");
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    git(p.path(), &["add", "uv.lock"]);
    let out = run(p.path(), &["precommit", "--json"], "");
    let v: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert!(
        v["violations"]
            .as_array()
            .unwrap()
            .iter()
            .all(|x| x["package"] != "cryptography"),
        "{v:#}"
    );
}

fn git_commit(dir: &std::path::Path, args: &[&str]) -> std::process::Output {
    std::process::Command::new("git")
        .args([
            "-c",
            "user.name=t",
            "-c",
            "user.email=t@example.invalid",
            "commit",
            "-q",
        ])
        .args(args)
        .current_dir(dir)
        .env("LEXALIGN_NO_AUTOSTART", "1")
        .env("NO_COLOR", "1")
        .output()
        .unwrap()
}

/// `git commit -a` and `git commit <path>` hand the hook a temporary index
/// (`GIT_INDEX_FILE`): what gets committed is in there, not in `.git/index`.
#[test]
fn precommit_follows_the_index_git_is_committing() {
    let d = daemon();
    let p = project(&d.url, false);
    git(p.path(), &["init", "-q"]);
    let out = run(
        p.path(),
        &[
            "init",
            "--yes",
            "--no-claude-md",
            "--no-claude-hooks",
            "--server-url",
            &d.url,
        ],
        "",
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    std::fs::write(p.path().join("requirements.txt"), "six==1.16.0\n").unwrap();
    git(p.path(), &["add", "requirements.txt"]);
    let c = git_commit(p.path(), &["-m", "six"]);
    assert!(c.status.success(), "{}", String::from_utf8_lossy(&c.stderr));

    // Edited but not staged: `.git/index` still says six.
    std::fs::write(p.path().join("requirements.txt"), "pyqt5\n").unwrap();
    let out = run(p.path(), &["precommit"], "");
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    for args in [
        &["-m", "gui", "requirements.txt"][..],
        &["-a", "-m", "gui"][..],
    ] {
        let c = git_commit(p.path(), args);
        let err = String::from_utf8_lossy(&c.stderr);
        assert!(!c.status.success(), "git commit {args:?} must be blocked");
        assert!(err.contains("package=\"pyqt5\""), "{err}");
    }

    // The temporary index can also be the clean one.
    std::fs::write(p.path().join("requirements.txt"), "six==1.17.0\n").unwrap();
    let c = git_commit(p.path(), &["-a", "-m", "bump six"]);
    assert!(c.status.success(), "{}", String::from_utf8_lossy(&c.stderr));
}
