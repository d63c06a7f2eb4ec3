//! init / uninstall: idempotent, and never touching what the user wrote.

mod common;

use common::*;
use serde_json::{json, Value};

const USER_SETTINGS: &str = r#"{
  "permissions": {"allow": ["Bash(npm test)"]},
  "hooks": {
    "PreToolUse": [
      {"matcher": "Bash", "hooks": [{"type": "command", "command": "./scripts/guard.sh"}]},
      {"matcher": "Edit|Write|MultiEdit", "hooks": [{"type": "command", "command": "python .claude/lex-align-hook.py pre-tool-use"}]}
    ],
    "SessionEnd": [{"hooks": [{"type": "command", "command": "python .claude/lex-align-hook.py session-end"}]}],
    "Stop": [{"hooks": [{"type": "command", "command": "echo lex-align rocks"}]}]
  }
}
"#;

const USER_HOOK: &str = "#!/bin/sh\nset -e\nmake lint\n";

fn read(p: &std::path::Path) -> String {
    std::fs::read_to_string(p).unwrap()
}

#[test]
fn init_is_idempotent_and_uninstall_restores_user_content() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    git(root, &["init", "-q"]);
    std::fs::create_dir_all(root.join(".claude")).unwrap();
    std::fs::write(root.join(".claude/settings.json"), USER_SETTINGS).unwrap();
    std::fs::write(root.join(".claude/lex-align-hook.py"), "# old wrapper\n").unwrap();
    std::fs::write(root.join(".git/hooks/pre-commit"), USER_HOOK).unwrap();
    std::fs::write(root.join("CLAUDE.md"), "# Team notes\n\nBe nice.\n").unwrap();
    std::fs::write(
        root.join("pyproject.toml"),
        "[project]\nname = \"billing-api\"\n",
    )
    .unwrap();

    let out = run(root, &["init", "--yes"], "");
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("Installed Claude Code hooks"), "{text}");
    assert!(text.contains("Updated CLAUDE.md"), "{text}");
    assert!(text.contains("Installed git pre-commit hook at"), "{text}");
    assert!(read(&root.join(".lexalign.toml")).contains("project = \"billing-api\""));

    let settings: Value = serde_json::from_str(&read(&root.join(".claude/settings.json"))).unwrap();
    assert_eq!(
        settings["permissions"],
        json!({"allow": ["Bash(npm test)"]})
    );
    let pre = settings["hooks"]["PreToolUse"].as_array().unwrap();
    assert_eq!(
        pre.len(),
        2,
        "user guard kept, old wrapper replaced: {pre:?}"
    );
    assert_eq!(pre[0]["hooks"][0]["command"], "./scripts/guard.sh");
    assert_eq!(pre[1]["matcher"], "Edit|Write|MultiEdit|Bash");
    let cmd = pre[1]["hooks"][0]["command"].as_str().unwrap();
    assert!(
        cmd.starts_with(bin()) && cmd.ends_with(" hook pre-tool-use"),
        "{cmd}"
    );
    assert!(
        settings["hooks"].get("SessionEnd").is_none(),
        "legacy no-op hook removed"
    );
    assert_eq!(
        settings["hooks"]["Stop"][0]["hooks"][0]["command"],
        "echo lex-align rocks"
    );
    assert!(settings["hooks"]["SessionStart"][0]["hooks"][0]["command"]
        .as_str()
        .unwrap()
        .ends_with(" hook session-start"));
    assert!(!root.join(".claude/lex-align-hook.py").exists());

    let hook = read(&root.join(".git/hooks/pre-commit"));
    assert!(hook.starts_with(USER_HOOK), "{hook}");
    assert!(hook.contains("precommit || exit $?"));

    // Second run: byte-identical files.
    let snapshot = |p: &str| read(&root.join(p));
    let before: Vec<String> = [
        ".claude/settings.json",
        ".git/hooks/pre-commit",
        "CLAUDE.md",
    ]
    .iter()
    .map(|p| snapshot(p))
    .collect();
    let out = run(root, &["init", "--yes"], "");
    assert_eq!(out.status.code(), Some(0));
    assert!(stdout(&out).contains("CLAUDE.md already contains lex-align section; skipped."));
    let after: Vec<String> = [
        ".claude/settings.json",
        ".git/hooks/pre-commit",
        "CLAUDE.md",
    ]
    .iter()
    .map(|p| snapshot(p))
    .collect();
    assert_eq!(before, after);

    // The hook is seen as installed.
    let out = run(root, &["status", "--json"], "");
    let v: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(v["hooks"]["claude"]["PreToolUse"], true);
    assert_eq!(v["hooks"]["precommit_installed"], true);

    // A line the user appends right after our block (no blank line) survives uninstall.
    let mut hook = read(&root.join(".git/hooks/pre-commit"));
    hook.push_str("echo user-after\n");
    std::fs::write(root.join(".git/hooks/pre-commit"), hook).unwrap();

    let out = run(root, &["uninstall", "--yes"], "");
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(
        read(&root.join(".git/hooks/pre-commit")),
        format!("{USER_HOOK}echo user-after\n")
    );
    assert_eq!(read(&root.join("CLAUDE.md")), "# Team notes\n\nBe nice.\n");
    let settings: Value = serde_json::from_str(&read(&root.join(".claude/settings.json"))).unwrap();
    assert_eq!(
        settings["hooks"],
        json!({
            "PreToolUse": [{"matcher": "Bash", "hooks": [{"type": "command", "command": "./scripts/guard.sh"}]}],
            "Stop": [{"hooks": [{"type": "command", "command": "echo lex-align rocks"}]}]
        })
    );
    assert!(root.join(".lexalign.toml").exists());
    // Uninstall twice is harmless.
    let out = run(root, &["uninstall", "--yes"], "");
    assert_eq!(out.status.code(), Some(0));
}

#[test]
fn fresh_repo_hook_file_is_removed_on_uninstall() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    git(root, &["init", "-q"]);
    run(root, &["init", "--yes", "--project", "x"], "");
    let hooks_dir = root.join(".git/hooks/pre-commit");
    assert!(read(&hooks_dir).starts_with("#!/bin/sh\n"));
    run(root, &["uninstall", "--yes"], "");
    assert!(!hooks_dir.exists());
    assert!(!root.join("CLAUDE.md").exists());
}

#[test]
fn honours_core_hooks_path_and_refuses_broken_settings() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    git(root, &["init", "-q"]);
    git(root, &["config", "core.hooksPath", "githooks"]);
    std::fs::create_dir_all(root.join(".claude")).unwrap();
    std::fs::write(root.join(".claude/settings.json"), "{ not json").unwrap();
    let out = run(root, &["init", "--yes"], "");
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("not valid JSON"), "{}", stderr(&out));
    assert_eq!(read(&root.join(".claude/settings.json")), "{ not json");
    assert!(root.join("githooks/pre-commit").exists());
}

#[test]
fn not_a_repo_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(
        dir.path(),
        &["init", "--yes", "--no-claude-hooks", "--no-claude-md"],
        "",
    );
    assert!(
        stdout(&out).contains("Skipped pre-commit install"),
        "{}",
        stdout(&out)
    );
}
