//! Claude Code hooks in the current protocol: `PreToolUse` answers `deny`
//! (with the fix) or nothing at all, never an unasked-for `allow` (W3);
//! `SessionStart` adds a brief as `additionalContext`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use lex_align_manifest::{parse_requirements, Dependency};
use serde_json::{json, Value};

use crate::api::{AgentId, Api, ApiError};
use crate::bash::parse_installs;
use crate::config::{self, Config, Mode};
use crate::edit::{changed_requirements, replacement_fixes};
use crate::project::{self, is_governed_manifest, Checked};
use crate::verdict::Verdict;

/// The whole hook must answer well inside Claude Code's timeout.
pub const HOOK_BUDGET: Duration = Duration::from_millis(3000);

/// What the hook prints; `None` = no output (no opinion).
#[derive(Debug, Clone, PartialEq)]
pub struct HookOutput(pub Option<Value>);

/// (model, version) from a model id: `claude-opus-4-7-20251001` →
/// (`opus`, `4.7`), `claude-3-5-sonnet-20241022` → (`sonnet`, `3.5`).
pub fn parse_model_id(raw: &str) -> (String, Option<String>) {
    let id = raw.trim().to_ascii_lowercase();
    let id = id.strip_prefix("claude-").unwrap_or(&id);
    let mut family = Vec::new();
    let mut numbers = Vec::new();
    for part in id.split(['-', '_', ' ', '.', '@']) {
        if part.is_empty() {
            continue;
        }
        if part.chars().all(|c| c.is_ascii_digit()) {
            // Dates (20250929) and long build numbers are not versions.
            if part.len() <= 2 && numbers.len() < 2 {
                numbers.push(part.to_string());
            }
        } else if part.chars().all(|c| c.is_ascii_alphabetic()) && part != "latest" {
            family.push(part.to_string());
        }
    }
    if family.is_empty() {
        return (raw.trim().to_string(), None);
    }
    let version = (!numbers.is_empty()).then(|| numbers.join("."));
    (family.join("-"), version)
}

/// Agent identity for a hook: env values win per field, then the event's model.
fn agent_from_event(event: &Value) -> AgentId {
    let mut agent = AgentId::from_flags(None, None);
    let raw = ["/model", "/agent_model", "/session/model"]
        .iter()
        .find_map(|p| event.pointer(p).and_then(Value::as_str).map(str::to_string))
        .or_else(|| std::env::var("CLAUDE_MODEL").ok())
        .or_else(|| std::env::var("CLAUDE_CODE_MODEL").ok());
    if let Some(raw) = raw.filter(|r| !r.trim().is_empty()) {
        let (model, version) = parse_model_id(&raw);
        agent.model = agent.model.or(Some(model));
        agent.version = agent.version.or(version);
    }
    agent
}

fn event_cwd(event: &Value) -> PathBuf {
    event
        .get("cwd")
        .and_then(Value::as_str)
        .map(PathBuf::from)
        .or_else(|| std::env::current_dir().ok())
        .unwrap_or_default()
}

/// The dependencies a tool call would add or change.
pub fn requested_dependencies(event: &Value) -> Vec<Dependency> {
    requested(event).0
}

/// The dependencies a tool call would add or change, and the texts (by
/// file label) of the manifests it edits, as they would read afterwards.
pub fn requested(event: &Value) -> (Vec<Dependency>, BTreeMap<String, String>) {
    let tool = event.get("tool_name").and_then(Value::as_str).unwrap_or("");
    let input = event.get("tool_input").cloned().unwrap_or(Value::Null);
    let cwd = event_cwd(event);
    match tool {
        "Edit" | "Write" | "MultiEdit" => {
            let Some(p) = input
                .get("file_path")
                .or_else(|| input.get("path"))
                .and_then(Value::as_str)
            else {
                return Default::default();
            };
            let path = cwd.join(p);
            let Some(name) = path
                .file_name()
                .and_then(|n| n.to_str())
                .filter(|n| is_governed_manifest(n))
            else {
                return Default::default();
            };
            match changed_requirements(&path, tool, &input) {
                Some((deps, _, text)) => (deps, BTreeMap::from([(name.to_string(), text)])),
                None => Default::default(),
            }
        }
        "Bash" => {
            let command = input.get("command").and_then(Value::as_str).unwrap_or("");
            (bash_dependencies(command, &cwd), BTreeMap::new())
        }
        _ => Default::default(),
    }
}

/// Requirements named by install commands (and their `-r` files, relative to `cwd`).
pub fn bash_dependencies(command: &str, cwd: &Path) -> Vec<Dependency> {
    let mut deps = Vec::new();
    for install in parse_installs(command) {
        let text = install.requirements.join("\n");
        let m = parse_requirements(&format!("`{}`", install.tool), &text, &|_| None);
        deps.extend(m.dependencies);
        for file in &install.requirement_files {
            let path = cwd.join(file);
            let Ok(text) = std::fs::read_to_string(&path) else {
                continue;
            };
            let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
            let read = move |rel: &str| std::fs::read_to_string(dir.join(rel)).ok();
            deps.extend(parse_requirements(file, &text, &read).dependencies);
        }
    }
    deps
}

fn pre_tool_output(
    decision: Option<&str>,
    reason: Option<String>,
    context: Option<String>,
) -> Value {
    let mut specific = serde_json::Map::new();
    specific.insert("hookEventName".into(), json!("PreToolUse"));
    if let Some(d) = decision {
        specific.insert("permissionDecision".into(), json!(d));
    }
    if let Some(r) = reason {
        specific.insert("permissionDecisionReason".into(), json!(r));
    }
    if let Some(c) = context {
        specific.insert("additionalContext".into(), json!(c));
    }
    json!({ "hookSpecificOutput": specific })
}

fn label(d: &Dependency) -> String {
    d.requirement.clone()
}

/// One blocked package: what, why, and how to fix it (`fix` overrides the
/// verdict's fix: a replacement its table already declares).
pub fn blocked_line(spec: &str, v: &Verdict, fix: Option<&str>) -> String {
    let mut s = format!("  ✗ {spec} — {}", v.reason);
    if let Some(fix) = fix.map(str::to_string).or_else(|| v.fix()) {
        s.push_str(&format!("\n      fix: {fix}"));
    }
    if !v.cve_ids.is_empty() {
        let ids: Vec<&str> = v.cve_ids.iter().take(5).map(String::as_str).collect();
        s.push_str(&format!("\n      CVEs: {}", ids.join(", ")));
    }
    if v.denial_category.as_deref() == Some("license") {
        if let Some(l) = &v.license {
            s.push_str(&format!("\n      license: {l}"));
        }
    }
    s
}

/// Decides a PreToolUse event. `api` is built from the project's config;
/// `texts` are the edited manifests after the edit, by file label.
pub fn decide_pre_tool_use(
    config: &Config,
    api: &Api,
    deps: &[Dependency],
    texts: &BTreeMap<String, String>,
) -> HookOutput {
    if deps.is_empty() {
        return HookOutput(None);
    }
    let checked = match project::evaluate(api, deps, false) {
        Ok(c) => c,
        Err(e) => return unreachable_output(config, deps, &e),
    };
    let fixes = replacement_fixes(api, texts, &checked.iter().collect::<Vec<_>>());
    let mut blocked = Vec::new();
    let mut notes = Vec::new();
    for (
        Checked {
            dependency,
            verdict,
        },
        fix,
    ) in checked.iter().zip(&fixes)
    {
        let spec = label(dependency);
        let v = match verdict {
            Ok(v) => v,
            Err(message) => {
                blocked.push(format!("  ✗ {spec} — not a valid requirement: {message}"));
                continue;
            }
        };
        if v.is_denied() {
            blocked.push(blocked_line(&spec, v, fix.as_deref()));
        } else if v.is_provisional() {
            let suffix = if config.mode == Mode::SingleUser
                && config.auto_request_approval
                && v.is_requestable
            {
                let mut rationale = format!(
                    "Auto-enqueued from Claude Code: added `{spec}`. Package passed CVE and license gates but is not yet in the registry."
                );
                if let Some(l) = &v.license {
                    rationale.push_str(&format!(" License: {l}."));
                }
                if let Some(r) = &v.resolved_version {
                    rationale.push_str(&format!(" Resolved version: {r}."));
                }
                match api.request_approval(&dependency.name, &rationale) {
                    Ok(_) => " (approval request filed for review)".to_string(),
                    Err(e) => format!(" (filing the approval request failed: {e})"),
                }
            } else if v.is_requestable {
                " (run `lex-align request-approval --package <name> --rationale \"…\"` after this lands)"
                    .replace("<name>", &dependency.name)
            } else {
                String::new()
            };
            notes.push(format!("  ◎ {spec} — provisional: {}{suffix}", v.reason));
        } else if v.needs_rationale {
            notes.push(format!(
                "  • {spec} — allowed, but registry-approved (neutral); document the architectural need in the commit message or PR."
            ));
        }
    }
    if !blocked.is_empty() {
        let mut reason =
            String::from("lex-align: this change adds dependencies the registry blocks:\n");
        reason.push_str(&blocked.join("\n"));
        if !notes.is_empty() {
            reason.push_str("\n\nAlso:\n");
            reason.push_str(&notes.join("\n"));
        }
        reason.push_str(
            "\n\nNothing was changed. Apply the fix above (or drop the package) and retry.",
        );
        return HookOutput(Some(pre_tool_output(Some("deny"), Some(reason), None)));
    }
    if notes.is_empty() {
        return HookOutput(None);
    }
    let context = format!("lex-align dependency notes:\n{}", notes.join("\n"));
    HookOutput(Some(pre_tool_output(None, None, Some(context))))
}

fn unreachable_output(config: &Config, deps: &[Dependency], e: &ApiError) -> HookOutput {
    let names: Vec<String> = deps.iter().map(label).collect();
    // Authentication failures never fail open (W9).
    let auth = matches!(
        e,
        ApiError::Server {
            status: 401 | 403,
            ..
        }
    );
    if config.fail_open && !auth {
        let msg = format!(
            "lex-align could not check {} ({e}); fail_open=true, so the change proceeds UNCHECKED.",
            names.join(", ")
        );
        let mut out = pre_tool_output(None, None, Some(msg.clone()));
        out["systemMessage"] = json!(msg);
        HookOutput(Some(out))
    } else {
        let reason = format!(
            "lex-align could not check {} ({e}); {} — blocked. Start the daemon (`lex-align daemon`) or fix the server, then retry.",
            names.join(", "),
            if auth { "the server refused our credentials" } else { "fail_open=false" }
        );
        HookOutput(Some(pre_tool_output(Some("deny"), Some(reason), None)))
    }
}

/// `hook pre-tool-use` end to end: event JSON in, hook output out.
pub fn pre_tool_use(event: &Value) -> HookOutput {
    let (deps, texts) = requested(event);
    if deps.is_empty() {
        return HookOutput(None);
    }
    let cwd = event_cwd(event);
    let config = match config::load(&cwd) {
        Ok(c) => c,
        Err(config::ConfigError::NotFound { .. }) => return HookOutput(None),
        Err(e) => {
            // A broken config must not silently disable the gate.
            let reason = format!("lex-align: cannot read the project configuration: {e}");
            return HookOutput(Some(pre_tool_output(Some("deny"), Some(reason), None)));
        }
    };
    let api = Api::new(&config, agent_from_event(event), HOOK_BUDGET);
    decide_pre_tool_use(&config, &api, &deps, &texts)
}

/// `hook session-start`: the brief, and the agent identity persisted for
/// later Bash calls through `CLAUDE_ENV_FILE` (W32).
pub fn session_start(event: &Value) -> HookOutput {
    let cwd = event_cwd(event);
    let Ok(config) = config::load(&cwd) else {
        return HookOutput(None);
    };
    let agent = agent_from_event(event);
    if let Some(env_file) = std::env::var_os("CLAUDE_ENV_FILE") {
        let mut lines = String::new();
        if let Some(m) = &agent.model {
            lines.push_str(&format!("export LEXALIGN_AGENT_MODEL={}\n", shell_quote(m)));
        }
        if let Some(v) = &agent.version {
            lines.push_str(&format!(
                "export LEXALIGN_AGENT_VERSION={}\n",
                shell_quote(v)
            ));
        }
        if !lines.is_empty() {
            use std::io::Write;
            if let Ok(mut f) = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(env_file)
            {
                let _ = f.write_all(lines.as_bytes());
            }
        }
    }
    let api = Api::new(&config, agent.clone(), HOOK_BUDGET);
    let brief = session_brief(&config, &api, &agent);
    HookOutput(Some(json!({
        "hookSpecificOutput": {"hookEventName": "SessionStart", "additionalContext": brief}
    })))
}

fn session_brief(config: &Config, api: &Api, agent: &AgentId) -> String {
    let mut out = format!(
        "lex-align governs Python dependencies in this project ({}).\nServer: {} (mode: {}). Agent: {}.\n",
        config.project,
        config.server_url,
        config.mode.as_str(),
        match (&agent.model, &agent.version) {
            (Some(m), Some(v)) => format!("{m} {v}"),
            (Some(m), None) => m.clone(),
            _ => "(unknown)".into(),
        }
    );
    match api.health() {
        Err(e) => out.push_str(&format!(
            "Server: unreachable ({e}); {}.\n",
            if config.fail_open {
                "edits pass unchecked (fail_open=true)"
            } else {
                "dependency edits are blocked until it is back (fail_open=false)"
            }
        )),
        Ok(health) => {
            for line in crate::api::lapsing_soon(&health) {
                out.push_str(&format!("Lapsing within 7 days: {line}.\n"));
            }
            // Scanner alerts are machine-wide (project `lex-align-server`):
            // the project-filtered security report never lists them.
            for line in crate::api::cve_scan_lines(&health) {
                out.push_str(&format!("{line}.\n"));
            }
            match api.pending_approvals() {
                Ok(items) if items.is_empty() => out.push_str("Pending approval requests: none.\n"),
                Ok(items) => {
                    let mut names: Vec<String> = items
                        .iter()
                        .filter_map(|i| {
                            i.get("package").and_then(Value::as_str).map(str::to_string)
                        })
                        .collect();
                    names.sort();
                    names.dedup();
                    out.push_str(&format!(
                        "Pending approval requests: {} ({}).\n",
                        items.len(),
                        names.join(", ")
                    ));
                }
                Err(e) => out.push_str(&format!("Pending approval requests: unavailable ({e}).\n")),
            }
            if let Ok(sec) = api.security_report() {
                let sev = |k: &str| {
                    sec.pointer(&format!("/severity_distribution/{k}"))
                        .and_then(Value::as_i64)
                        .unwrap_or(0)
                };
                if sev("critical") + sev("high") > 0 {
                    out.push_str(&format!(
                        "CVE-driven denials recently: critical={} high={}.\n",
                        sev("critical"),
                        sev("high")
                    ));
                }
                if let Some(hot) = sec.get("hot_registry_packages").and_then(Value::as_array) {
                    for h in hot.iter().take(5) {
                        let name = h.get("package").and_then(Value::as_str).unwrap_or("?");
                        let cvss = h
                            .get("max_cvss")
                            .and_then(Value::as_f64)
                            .map_or("?".into(), |c| format!("{c}"));
                        out.push_str(&format!(
                            "Approved package with new CVE pressure: {name} (CVSS {cvss}).\n"
                        ));
                    }
                }
            }
        }
    }
    out.push_str(
        "\nHow dependencies are checked here:\n\
         - Edits to pyproject.toml / requirements files and `uv add` / `pip install` / `poetry add` commands are checked before they run; a DENIED package is blocked with its fix (replacement or safe version).\n\
         - Check a package first with `lex-align check --package <name or requirement>` (JSON verdict: ALLOWED, PROVISIONALLY_ALLOWED or DENIED).\n\
         - PROVISIONALLY_ALLOWED means not yet reviewed; `lex-align request-approval --package <name> --rationale \"<why>\"` files it for review.\n\
         - DENIED is final for this change: use the `replacement` or `suggested_requirement` from the verdict.\n\
         - The git pre-commit hook re-checks every dependency; commits with `--no-verify` bypass policy and are not acceptable.\n",
    );
    out
}

fn shell_quote(s: &str) -> String {
    if s.chars()
        .all(|c| c.is_ascii_alphanumeric() || "._-/".contains(c))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

/// Runs a hook by name on an event read from stdin; prints and returns the exit code (always 0).
pub fn run(name: &str, stdin: &str) -> i32 {
    let event: Value = serde_json::from_str(stdin).unwrap_or_else(|_| json!({}));
    let out = match name {
        "pre-tool-use" | "PreToolUse" => pre_tool_use(&event),
        "session-start" | "SessionStart" => session_start(&event),
        _ => HookOutput(None),
    };
    if let Some(v) = out.0 {
        println!("{v}");
    }
    0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_ids() {
        assert_eq!(
            parse_model_id("claude-opus-4-7-20251001"),
            ("opus".into(), Some("4.7".into()))
        );
        assert_eq!(
            parse_model_id("claude-sonnet-4-5-20250929"),
            ("sonnet".into(), Some("4.5".into()))
        );
        assert_eq!(
            parse_model_id("claude-3-5-sonnet-20241022"),
            ("sonnet".into(), Some("3.5".into()))
        );
        assert_eq!(
            parse_model_id("claude-haiku-4-5"),
            ("haiku".into(), Some("4.5".into()))
        );
        assert_eq!(parse_model_id("opus"), ("opus".into(), None));
        assert_eq!(parse_model_id("12345"), ("12345".into(), None));
    }
}
