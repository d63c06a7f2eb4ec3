//! What `init` writes and `uninstall` removes: Claude Code hook entries in
//! `.claude/settings.json`, the CLAUDE.md section and the git pre-commit
//! hook. Every piece is recognised exactly (our command, begin/end markers),
//! so user entries and lines are never touched (W36).

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{json, Map, Value};

pub const CLAUDE_MD_BEGIN: &str =
    "<!-- lex-align:begin (managed by `lex-align init`; `lex-align uninstall` removes it) -->";
pub const CLAUDE_MD_END: &str = "<!-- lex-align:end -->";
/// The original client's section heading (its only marker).
pub const CLAUDE_MD_HEADING: &str = "## lex-align dependency governance";
pub const HOOK_BEGIN: &str = "# >>> lex-align pre-commit (managed by `lex-align init`) >>>";
pub const HOOK_END: &str = "# <<< lex-align pre-commit <<<";
/// The original client's pre-commit marker.
const LEGACY_HOOK_MARKER: &str = "# lex-align pre-commit";

pub const PRE_TOOL_MATCHER: &str = "Edit|Write|MultiEdit|Bash";
pub const SESSION_MATCHER: &str = "startup|resume|clear|compact";

fn shell_quote(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-/+=:@".contains(c))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

/// The program hooks run: this executable when it is lex-align (absolute
/// path, so PATH does not matter), else `lex-align` from PATH.
pub fn program() -> String {
    if let Some(p) = std::env::var_os("LEXALIGN_HOOK_PROGRAM") {
        return p.to_string_lossy().into_owned();
    }
    match std::env::current_exe() {
        Ok(exe)
            if exe
                .file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("lex-align")) =>
        {
            exe.to_string_lossy().into_owned()
        }
        _ => "lex-align".into(),
    }
}

/// How to invoke a client command through `program`: the `lex-align`
/// binary takes client commands under `client` (always wired, whatever
/// top-level aliases exist); `lex-align-client` takes them directly.
pub fn client_invocation(program: &str) -> String {
    let base = program.rsplit('/').next().unwrap_or(program);
    if base == "lex-align" {
        format!("{} client", shell_quote(program))
    } else {
        shell_quote(program)
    }
}

pub fn hook_command(program: &str, event: &str) -> String {
    format!("{} hook {event}", client_invocation(program))
}

/// Is this a command lex-align installed for `event` (any install path,
/// or the original Python client's wrapper)?
fn is_our_command(cmd: &str, event: Option<&str>) -> bool {
    let legacy = cmd.starts_with("python .claude/lex-align-hook.py ")
        || cmd.starts_with("python3 .claude/lex-align-hook.py ");
    let words: Vec<&str> = cmd.split_whitespace().collect();
    let ours = words.len() >= 3 && {
        let mut prog_words = &words[..words.len() - 2];
        if prog_words.len() > 1 && prog_words.last() == Some(&"client") {
            prog_words = &prog_words[..prog_words.len() - 1];
        }
        let prog = prog_words.join(" ");
        let prog = prog.trim_matches('\'').trim_matches('"');
        let base = prog.rsplit('/').next().unwrap_or(prog);
        base.starts_with("lex-align") && words[words.len() - 2] == "hook"
    };
    let event_ok = event.is_none_or(|e| cmd.ends_with(&format!(" {e}")));
    (ours || legacy) && event_ok
}

#[derive(Debug)]
pub enum InstallError {
    /// The file exists but is not JSON: we do not overwrite what a user wrote.
    Unparsable {
        path: PathBuf,
        message: String,
    },
    Io {
        path: PathBuf,
        message: String,
    },
}

impl std::fmt::Display for InstallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            InstallError::Unparsable { path, message } => write!(
                f,
                "{} is not valid JSON ({message}); fix it and run init again (it was left untouched)",
                path.display()
            ),
            InstallError::Io { path, message } => write!(f, "{}: {message}", path.display()),
        }
    }
}

fn io_err(path: &Path) -> impl Fn(std::io::Error) -> InstallError + '_ {
    move |e| InstallError::Io {
        path: path.to_path_buf(),
        message: e.to_string(),
    }
}

pub fn settings_path(root: &Path) -> PathBuf {
    root.join(".claude").join("settings.json")
}

fn load_settings(path: &Path) -> Result<Option<Value>, InstallError> {
    match std::fs::read_to_string(path) {
        Ok(text) if text.trim().is_empty() => Ok(Some(json!({}))),
        Ok(text) => match serde_json::from_str::<Value>(&text) {
            Ok(v @ Value::Object(_)) => Ok(Some(v)),
            Ok(_) => Err(InstallError::Unparsable {
                path: path.to_path_buf(),
                message: "the top level is not an object".into(),
            }),
            Err(e) => Err(InstallError::Unparsable {
                path: path.to_path_buf(),
                message: e.to_string(),
            }),
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io_err(path)(e)),
    }
}

fn write_json(path: &Path, v: &Value) -> Result<(), InstallError> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io_err(dir))?;
    }
    let text = serde_json::to_string_pretty(v).expect("JSON") + "\n";
    std::fs::write(path, text).map_err(io_err(path))
}

/// Removes our handlers from every event (and now-empty groups/events).
/// Returns whether anything was removed.
fn strip_our_hooks(settings: &mut Value) -> bool {
    let Some(hooks) = settings.get_mut("hooks").and_then(Value::as_object_mut) else {
        return false;
    };
    let mut changed = false;
    let events: Vec<String> = hooks.keys().cloned().collect();
    for event in events {
        let Some(groups) = hooks.get_mut(&event).and_then(Value::as_array_mut) else {
            continue;
        };
        for group in groups.iter_mut() {
            if let Some(handlers) = group.get_mut("hooks").and_then(Value::as_array_mut) {
                let before = handlers.len();
                handlers.retain(|h| {
                    !h.get("command")
                        .and_then(Value::as_str)
                        .is_some_and(|c| is_our_command(c, None))
                });
                changed |= handlers.len() != before;
            }
        }
        groups.retain(|g| {
            g.get("hooks")
                .and_then(Value::as_array)
                .is_none_or(|h| !h.is_empty())
        });
        if groups.is_empty() {
            hooks.remove(&event);
        }
    }
    if hooks.is_empty() {
        settings.as_object_mut().expect("object").remove("hooks");
    }
    changed
}

fn our_entries(program: &str) -> [(&'static str, Value); 2] {
    [
        (
            "PreToolUse",
            json!({
                "matcher": PRE_TOOL_MATCHER,
                "hooks": [{
                    "type": "command",
                    "command": hook_command(program, "pre-tool-use"),
                    "timeout": 10,
                    "statusMessage": "Checking dependency policy"
                }]
            }),
        ),
        (
            "SessionStart",
            json!({
                "matcher": SESSION_MATCHER,
                "hooks": [{
                    "type": "command",
                    "command": hook_command(program, "session-start"),
                    "timeout": 10
                }]
            }),
        ),
    ]
}

/// Merges our hooks into `.claude/settings.json`: any previous lex-align
/// entry (older path, or the Python client's wrapper) is replaced; every
/// other key and handler is kept. Returns whether the file changed.
pub fn install_claude_hooks(root: &Path, program: &str) -> Result<bool, InstallError> {
    let path = settings_path(root);
    let original = load_settings(&path)?;
    let mut settings = original.clone().unwrap_or_else(|| json!({}));
    strip_our_hooks(&mut settings);
    let obj = settings.as_object_mut().expect("object");
    let hooks = obj
        .entry("hooks")
        .or_insert_with(|| Value::Object(Map::new()));
    if !hooks.is_object() {
        return Err(InstallError::Unparsable {
            path,
            message: "`hooks` is not an object".into(),
        });
    }
    for (event, entry) in our_entries(program) {
        let list = hooks
            .as_object_mut()
            .expect("object")
            .entry(event)
            .or_insert_with(|| json!([]));
        match list.as_array_mut() {
            Some(l) => l.push(entry),
            None => {
                return Err(InstallError::Unparsable {
                    path,
                    message: format!("`hooks.{event}` is not a list"),
                })
            }
        }
    }
    if original.as_ref() == Some(&settings) {
        return Ok(false);
    }
    write_json(&path, &settings)?;
    // The Python client's wrapper script is superseded by the native binary.
    let _ = std::fs::remove_file(root.join(".claude").join("lex-align-hook.py"));
    Ok(true)
}

pub fn remove_claude_hooks(root: &Path) -> Result<bool, InstallError> {
    let path = settings_path(root);
    let Some(mut settings) = load_settings(&path)? else {
        return Ok(false);
    };
    let changed = strip_our_hooks(&mut settings);
    if changed {
        write_json(&path, &settings)?;
    }
    let _ = std::fs::remove_file(root.join(".claude").join("lex-align-hook.py"));
    Ok(changed)
}

/// Per event: is a lex-align handler installed?
pub fn claude_hook_state(root: &Path) -> Map<String, Value> {
    let settings = load_settings(&settings_path(root)).ok().flatten();
    let mut out = Map::new();
    for (event, arg) in [
        ("SessionStart", "session-start"),
        ("PreToolUse", "pre-tool-use"),
        ("SessionEnd", "session-end"),
    ] {
        let installed = settings
            .as_ref()
            .and_then(|s| s.pointer(&format!("/hooks/{event}")))
            .and_then(Value::as_array)
            .is_some_and(|groups| {
                groups.iter().any(|g| {
                    g.get("hooks").and_then(Value::as_array).is_some_and(|hs| {
                        hs.iter().any(|h| {
                            h.get("command")
                                .and_then(Value::as_str)
                                .is_some_and(|c| is_our_command(c, Some(arg)))
                        })
                    })
                })
            });
        out.insert(event.into(), json!(installed));
    }
    out
}

// ---------------------------------------------------------------- CLAUDE.md

pub fn claude_md_section() -> String {
    format!(
        "{CLAUDE_MD_BEGIN}\n{CLAUDE_MD_HEADING}\n\n\
Python dependencies in this project are governed by lex-align (a team registry plus license and vulnerability checks). \
This covers `pyproject.toml` (every dependency table), `requirements*.txt` and lock files.\n\n\
- Before adding or bumping a dependency run `lex-align check --package '<name or requirement>'` \
(e.g. `--package 'cryptography>=42'`). The JSON verdict is `ALLOWED`, `PROVISIONALLY_ALLOWED` or `DENIED`.\n\
- `PROVISIONALLY_ALLOWED`: usable, not yet reviewed. File it with \
`lex-align request-approval --package <name> --rationale \"<why it is needed>\"` (done automatically by the hook in single-user mode).\n\
- `DENIED`: do not use it. The verdict's `replacement`, `suggested_requirement` or `fixed_versions` say what to use instead.\n\
- `lex-align audit` checks every dependency of the project; `lex-align status` shows the set-up and pending approvals.\n\
- A Claude Code hook checks edits of manifests and `uv add` / `pip install` / `poetry add` commands before they run; \
the git pre-commit hook re-checks everything staged. Never commit with `--no-verify` to get around it.\n\
- Agent identity is sent with `--agent-model` / `--agent-version` or `LEXALIGN_AGENT_MODEL` / `LEXALIGN_AGENT_VERSION`.\n\
- Do not re-run `lex-align init` when `.lexalign.toml` exists, and do not run `lex-align uninstall` unless asked.\n\
{CLAUDE_MD_END}\n"
    )
}

#[derive(Debug, PartialEq, Eq)]
pub enum MdOutcome {
    Created,
    Updated,
    Unchanged,
}

pub fn install_claude_md(root: &Path) -> Result<MdOutcome, InstallError> {
    let path = root.join("CLAUDE.md");
    let section = claude_md_section();
    let existing = match std::fs::read_to_string(&path) {
        Ok(t) => Some(t),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(io_err(&path)(e)),
    };
    let Some(text) = existing else {
        std::fs::write(&path, &section).map_err(io_err(&path))?;
        return Ok(MdOutcome::Created);
    };
    let new_text = if let Some((before, after)) = split_block(&text, CLAUDE_MD_BEGIN, CLAUDE_MD_END)
    {
        format!("{before}{section}{after}")
    } else if text.contains(CLAUDE_MD_HEADING) {
        // Written by the original client, without markers: leave it.
        return Ok(MdOutcome::Unchanged);
    } else {
        format!("{}\n\n{section}", text.trim_end_matches('\n'))
    };
    if new_text == text {
        return Ok(MdOutcome::Unchanged);
    }
    std::fs::write(&path, new_text).map_err(io_err(&path))?;
    Ok(MdOutcome::Updated)
}

/// (text before the block, text after it) when begin … end lines are present.
fn split_block<'a>(text: &'a str, begin: &str, end: &str) -> Option<(&'a str, &'a str)> {
    let start = text.find(begin)?;
    let end_at = start + text[start..].find(end)? + end.len();
    let after = &text[end_at..];
    let after = after.strip_prefix('\n').unwrap_or(after);
    Some((&text[..start], after))
}

pub fn remove_claude_md(root: &Path) -> Result<bool, InstallError> {
    let path = root.join("CLAUDE.md");
    let Ok(text) = std::fs::read_to_string(&path) else {
        return Ok(false);
    };
    let Some((before, after)) = split_block(&text, CLAUDE_MD_BEGIN, CLAUDE_MD_END) else {
        return Ok(false);
    };
    let rest = format!(
        "{}{}",
        before.trim_end_matches('\n'),
        if after.is_empty() { "" } else { "\n\n" }
    ) + after;
    if rest.trim().is_empty() {
        std::fs::remove_file(&path).map_err(io_err(&path))?;
    } else {
        let rest = if rest.ends_with('\n') {
            rest
        } else {
            rest + "\n"
        };
        std::fs::write(&path, rest).map_err(io_err(&path))?;
    }
    Ok(true)
}

// ------------------------------------------------------------ git pre-commit

/// The hooks directory git uses (honours `core.hooksPath` and worktrees).
pub fn git_hooks_dir(root: &Path) -> Option<PathBuf> {
    let out = Command::new("git")
        .arg("-C")
        .arg(root)
        .args(["rev-parse", "--git-path", "hooks"])
        .stderr(std::process::Stdio::null())
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let p = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    Some(if p.is_absolute() { p } else { root.join(p) })
}

pub fn precommit_block(program: &str) -> String {
    let q = shell_quote(program);
    let run = client_invocation(program);
    format!(
        "{HOOK_BEGIN}\n\
if [ -x {q} ]; then\n  {run} precommit || exit $?\n\
elif command -v lex-align >/dev/null 2>&1; then\n  lex-align client precommit || exit $?\n\
else\n  echo \"[lex-align] WARNING: lex-align is not installed; dependency policy was NOT checked for this commit.\" >&2\n\
fi\n{HOOK_END}\n"
    )
}

#[derive(Debug, PartialEq, Eq)]
pub enum HookOutcome {
    Installed(PathBuf),
    Unchanged(PathBuf),
    NotARepo,
    /// The pre-commit framework owns the hook file; use `.pre-commit-hooks.yaml`.
    Framework(PathBuf),
}

/// Removes the original client's block: its marker line through the `fi` closing it.
fn strip_legacy_block(text: &str) -> Option<String> {
    let lines: Vec<&str> = text.lines().collect();
    let start = lines.iter().position(|l| l.trim() == LEGACY_HOOK_MARKER)?;
    let end = lines[start..].iter().position(|l| l.trim() == "fi")? + start;
    let mut kept: Vec<&str> = lines[..start].to_vec();
    while kept.last().is_some_and(|l| l.trim().is_empty()) {
        kept.pop();
    }
    kept.extend(&lines[end + 1..]);
    Some(kept.join("\n") + "\n")
}

pub fn install_precommit(root: &Path, program: &str) -> Result<HookOutcome, InstallError> {
    let Some(dir) = git_hooks_dir(root) else {
        return Ok(HookOutcome::NotARepo);
    };
    let path = dir.join("pre-commit");
    let block = precommit_block(program);
    let existing = std::fs::read_to_string(&path).ok();
    let new_text = match &existing {
        None => format!("#!/bin/sh\n{block}"),
        Some(text)
            if text.contains("pre-commit.com") || text.contains("File generated by pre-commit") =>
        {
            return Ok(HookOutcome::Framework(path));
        }
        Some(text) => {
            let text = strip_legacy_block(text).unwrap_or_else(|| text.clone());
            match split_block(&text, HOOK_BEGIN, HOOK_END) {
                Some((before, after)) => format!("{before}{block}{after}"),
                None => format!("{}\n\n{block}", text.trim_end_matches('\n')),
            }
        }
    };
    if existing.as_deref() == Some(new_text.as_str()) {
        return Ok(HookOutcome::Unchanged(path));
    }
    std::fs::create_dir_all(&dir).map_err(io_err(&dir))?;
    std::fs::write(&path, &new_text).map_err(io_err(&path))?;
    set_executable(&path)?;
    Ok(HookOutcome::Installed(path))
}

fn set_executable(path: &Path) -> Result<(), InstallError> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mut perm = std::fs::metadata(path).map_err(io_err(path))?.permissions();
        perm.set_mode(perm.mode() | 0o755);
        std::fs::set_permissions(path, perm).map_err(io_err(path))?;
    }
    Ok(())
}

pub fn precommit_installed(root: &Path) -> bool {
    git_hooks_dir(root)
        .and_then(|d| std::fs::read_to_string(d.join("pre-commit")).ok())
        .is_some_and(|t| {
            t.contains(HOOK_BEGIN) || t.lines().any(|l| l.trim() == LEGACY_HOOK_MARKER)
        })
}

/// Removes our block; deletes the file when nothing but our shebang is left.
pub fn remove_precommit(root: &Path) -> Result<bool, InstallError> {
    let Some(dir) = git_hooks_dir(root) else {
        return Ok(false);
    };
    let path = dir.join("pre-commit");
    let Ok(text) = std::fs::read_to_string(&path) else {
        return Ok(false);
    };
    let mut rest = match split_block(&text, HOOK_BEGIN, HOOK_END) {
        Some((before, after)) => {
            format!(
                "{}{}",
                before.trim_end_matches('\n'),
                if before.trim().is_empty() { "" } else { "\n" }
            ) + after
        }
        None => text.clone(),
    };
    if let Some(r) = strip_legacy_block(&rest) {
        rest = r;
    }
    if rest == text {
        return Ok(false);
    }
    let meaningful = rest
        .lines()
        .any(|l| !l.trim().is_empty() && !l.starts_with("#!") && l.trim() != "set -e");
    if meaningful {
        std::fs::write(&path, rest).map_err(io_err(&path))?;
    } else {
        std::fs::remove_file(&path).map_err(io_err(&path))?;
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_only_our_commands() {
        assert!(is_our_command(
            "/usr/local/bin/lex-align hook pre-tool-use",
            Some("pre-tool-use")
        ));
        assert!(is_our_command(
            "'/opt/my tools/lex-align' hook session-start",
            None
        ));
        assert!(is_our_command(
            "python .claude/lex-align-hook.py session-end",
            Some("session-end")
        ));
        assert!(!is_our_command("echo lex-align is great", None));
        assert!(!is_our_command("my-lex-align-wrapper.sh", None));
        assert!(!is_our_command(
            "/usr/local/bin/lex-align hook pre-tool-use",
            Some("session-start")
        ));
    }

    #[test]
    fn legacy_block_is_stripped_exactly() {
        let text = "#!/usr/bin/env bash\nset -e\nrun-lint\n\n# lex-align pre-commit\nif command -v lex-align-client >/dev/null 2>&1; then\n  lex-align-client precommit || exit $?\nelif command -v uv >/dev/null 2>&1; then\n  uv run lex-align-client precommit || exit $?\nfi\nuser-line-after\n";
        let out = strip_legacy_block(text).unwrap();
        assert_eq!(
            out,
            "#!/usr/bin/env bash\nset -e\nrun-lint\nuser-line-after\n"
        );
    }
}
