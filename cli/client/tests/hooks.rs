//! Claude Code hooks end to end: recorded event JSON on stdin of the real
//! binary, a real daemon behind it.

mod common;

use common::*;
use serde_json::Value;

const PYPROJECT: &str = lex_align_fakes::pyproject!("svc"; "httpx>=0.27", "cryptography>=42");

fn hook(dir: &std::path::Path, name: &str, fixture: &str) -> (i32, String) {
    let out = run(dir, &["hook", name], &event(fixture, dir));
    (out.status.code().unwrap(), stdout(&out))
}

fn decision(out: &str) -> Value {
    serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("not JSON ({e}): {out:?}"))
}

#[test]
fn pre_tool_use_over_recorded_events() {
    let d = daemon();
    let p = project(&d.url, true);
    std::fs::write(p.path().join("pyproject.toml"), PYPROJECT).unwrap();
    std::fs::write(p.path().join("pyproject.toml.bak"), PYPROJECT).unwrap();
    std::fs::write(
        p.path().join("extra-requirements.txt"),
        "click\npyqt5==5.15.10\n",
    )
    .unwrap();

    // Adding a deprecated package: denied, with the replacement.
    let (code, out) = hook(
        p.path(),
        "pre-tool-use",
        "pretooluse_edit_pyproject_add_requests.json",
    );
    assert_eq!(code, 0);
    let v = decision(&out);
    assert_eq!(v["hookSpecificOutput"]["hookEventName"], "PreToolUse");
    assert_eq!(v["hookSpecificOutput"]["permissionDecision"], "deny");
    let reason = v["hookSpecificOutput"]["permissionDecisionReason"]
        .as_str()
        .unwrap();
    assert!(reason.contains("requests>=2.31"), "{reason}");
    // The file already declares httpx: the advice keeps one entry, as the
    // editor's quick fix and the pre-commit check do.
    assert!(
        reason.contains("fix: replace with `httpx` — this table already declares `httpx>=0.27`: remove `requests>=2.31` and keep one entry for it, `httpx>=0.28.1`"),
        "{reason}"
    );
    assert!(v.get("decision").is_none(), "no legacy top-level decision");

    // A specifier change (relative path, resolved against the event's cwd)
    // that admits versions below the registry minimum.
    let (_, out) = hook(
        p.path(),
        "pre-tool-use",
        "pretooluse_edit_pyproject_bump_cryptography.json",
    );
    let v = decision(&out);
    assert_eq!(
        v["hookSpecificOutput"]["permissionDecision"], "deny",
        "{out}"
    );
    let reason = v["hookSpecificOutput"]["permissionDecisionReason"]
        .as_str()
        .unwrap();
    assert!(reason.contains("cryptography>=40"), "{reason}");

    // Bash chain: the banned package is blocked, the preferred one is not listed.
    let (_, out) = hook(p.path(), "pre-tool-use", "pretooluse_bash_uv_add.json");
    let v = decision(&out);
    assert_eq!(
        v["hookSpecificOutput"]["permissionDecision"], "deny",
        "{out}"
    );
    let reason = v["hookSpecificOutput"]["permissionDecisionReason"]
        .as_str()
        .unwrap();
    assert!(reason.to_lowercase().contains("pyqt5"), "{reason}");
    assert!(!reason.contains("✗ httpx"), "{reason}");

    // `-r file` read relative to the cwd.
    let (_, out) = hook(p.path(), "pre-tool-use", "pretooluse_bash_pip_r_file.json");
    let v = decision(&out);
    assert_eq!(
        v["hookSpecificOutput"]["permissionDecision"], "deny",
        "{out}"
    );
    assert!(v["hookSpecificOutput"]["permissionDecisionReason"]
        .as_str()
        .unwrap()
        .contains("pyqt5==5.15.10"));

    // Write of a new requirements file: every line counts as added.
    let (_, out) = hook(
        p.path(),
        "pre-tool-use",
        "pretooluse_write_new_requirements.json",
    );
    let v = decision(&out);
    let reason = v["hookSpecificOutput"]["permissionDecisionReason"]
        .as_str()
        .unwrap();
    assert!(reason.contains("requests==2.31.0"), "{reason}");
    assert!(!reason.contains("✗ click"), "{reason}");

    // replace_all turns every httpx into requests.
    let (_, out) = hook(
        p.path(),
        "pre-tool-use",
        "pretooluse_multiedit_replace_all.json",
    );
    let v = decision(&out);
    assert_eq!(
        v["hookSpecificOutput"]["permissionDecision"], "deny",
        "{out}"
    );

    // No opinion: no output at all (never an unasked-for allow).
    for fixture in [
        "pretooluse_bash_pip_install_allowed.json",
        "pretooluse_bash_not_an_install.json",
        "pretooluse_edit_pyproject_backup.json",
    ] {
        let (code, out) = hook(p.path(), "pre-tool-use", fixture);
        assert_eq!(code, 0);
        assert_eq!(out, "", "{fixture} should get no output");
    }
}

#[test]
fn unreachable_server_follows_fail_open() {
    // A port nothing listens on (bound, then released).
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{port}");
    for fail_open in [true, false] {
        let p = project(&url, fail_open);
        std::fs::write(p.path().join("pyproject.toml"), PYPROJECT).unwrap();
        let (code, out) = hook(
            p.path(),
            "pre-tool-use",
            "pretooluse_edit_pyproject_add_requests.json",
        );
        assert_eq!(code, 0);
        let v = decision(&out);
        let specific = &v["hookSpecificOutput"];
        if fail_open {
            assert!(specific.get("permissionDecision").is_none(), "{out}");
            let ctx = specific["additionalContext"].as_str().unwrap();
            assert!(
                ctx.contains("fail_open=true") && ctx.contains("UNCHECKED"),
                "{ctx}"
            );
        } else {
            assert_eq!(specific["permissionDecision"], "deny");
            assert!(specific["permissionDecisionReason"]
                .as_str()
                .unwrap()
                .contains("fail_open=false"));
        }
    }
}

#[test]
fn session_start_brief_and_agent_identity() {
    let d = daemon();
    let p = project(&d.url, true);
    let env_file = p.path().join("claude.env");
    let mut cmd = std::process::Command::new(bin());
    let out = cmd
        .args(["hook", "session-start"])
        .current_dir(p.path())
        .env("LEXALIGN_NO_AUTOSTART", "1")
        .env_remove("LEXALIGN_AGENT_MODEL")
        .env_remove("LEXALIGN_AGENT_VERSION")
        .env("CLAUDE_ENV_FILE", &env_file)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            c.stdin
                .take()
                .unwrap()
                .write_all(event("sessionstart_startup.json", p.path()).as_bytes())?;
            c.wait_with_output()
        })
        .unwrap();
    let v = decision(&stdout(&out));
    assert_eq!(v["hookSpecificOutput"]["hookEventName"], "SessionStart");
    let ctx = v["hookSpecificOutput"]["additionalContext"]
        .as_str()
        .unwrap();
    assert!(ctx.contains("svc") && ctx.contains("sonnet 4.5"), "{ctx}");
    assert!(ctx.contains("Pending approval requests"), "{ctx}");
    let env = std::fs::read_to_string(env_file).unwrap();
    assert!(env.contains("export LEXALIGN_AGENT_MODEL=sonnet"), "{env}");
    assert!(env.contains("export LEXALIGN_AGENT_VERSION=4.5"), "{env}");
}

#[test]
fn no_config_means_no_opinion() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("pyproject.toml"), PYPROJECT).unwrap();
    let (code, out) = hook(
        dir.path(),
        "pre-tool-use",
        "pretooluse_edit_pyproject_add_requests.json",
    );
    assert_eq!((code, out.as_str()), (0, ""));
}

/// The hook sends `LEXALIGN_API_KEY` to a daemon with API keys on: with
/// the key it gets the verdict; without it, or with a wrong one, it is
/// refused and the hook blocks (an authentication failure never fails
/// open, even with fail_open = true), saying why and never echoing a key.
#[test]
fn pre_tool_use_sends_the_api_key() {
    let mut key = None;
    let d = daemon_with(Vec::new(), |c| {
        let vars = [("AUTH_ENABLED", "true"), ("AUTH_BACKEND", "apikey")];
        c.auth = lex_align_daemon::auth::AuthSettings::from_lookup(
            &|k: &str| {
                vars.iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| v.to_string())
            },
            |s| s.parse().ok(),
        )
        .expect("apikey settings");
        std::fs::create_dir_all(c.database_path.parent().unwrap()).unwrap();
        let db = lex_align_store::AccessDb::open(&c.database_path).unwrap();
        key = Some(
            db.create_key("hook-agent", "agent", None, None)
                .unwrap()
                .key,
        );
    });
    let key = key.unwrap();
    // fail_open = true: only an authentication failure may still block.
    let p = project(&d.url, true);
    std::fs::write(p.path().join("pyproject.toml"), PYPROJECT).unwrap();
    let hook_with = |env: &[(&str, &str)]| {
        let out = run_with_env(
            p.path(),
            &["hook", "pre-tool-use"],
            &event("pretooluse_edit_pyproject_add_requests.json", p.path()),
            env,
        );
        assert_eq!(out.status.code(), Some(0));
        // Every case here blocks; what differs is why.
        let v = decision(&stdout(&out));
        assert_eq!(v["hookSpecificOutput"]["permissionDecision"], "deny", "{v}");
        v["hookSpecificOutput"]["permissionDecisionReason"]
            .as_str()
            .unwrap()
            .to_string()
    };

    let reason = hook_with(&[("LEXALIGN_API_KEY", &key)]);
    assert!(
        reason.contains("requests>=2.31"),
        "the verdict itself: {reason}"
    );
    assert!(!reason.contains("could not check"), "{reason}");

    // The key with its last character changed.
    let last = if key.ends_with('x') { 'y' } else { 'x' };
    let forged = format!("{}{last}", &key[..key.len() - 1]);
    for env in [vec![], vec![("LEXALIGN_API_KEY", forged.as_str())]] {
        let reason = hook_with(&env);
        assert!(
            reason.contains("refused our credentials"),
            "says why: {reason}"
        );
        assert!(
            !reason.contains(&key) && !reason.contains(&forged),
            "{reason}"
        );
    }
}
