//! The command implementations.

use std::io::{IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::api::{AgentId, Api, ApiError, EvalItem};
use crate::config::{self, Config, Mode};
use crate::edit;
use crate::hook;
use crate::install::{self, HookOutcome, MdOutcome};
use crate::project::{self, Checked, FsSource, GitIndexSource, ProjectDeps, Source};
use crate::sarif;
use crate::verdict::{to_python_json, Verdict};
use crate::{AuditFormat, ClientCommand, ModeArg};

pub(crate) const HTTP_TIMEOUT: Duration = Duration::from_secs(5);

fn cwd() -> PathBuf {
    std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."))
}

pub(crate) fn error(msg: impl std::fmt::Display) -> i32 {
    eprintln!("Error: {msg}");
    1
}

pub(crate) fn load_config() -> Result<Config, i32> {
    config::load(&cwd()).map_err(error)
}

pub fn run(cmd: ClientCommand) -> i32 {
    match cmd {
        ClientCommand::Init {
            yes,
            server_url,
            project,
            mode,
            no_claude_hooks,
            no_precommit,
            no_claude_md,
        } => init(InitOptions {
            yes,
            server_url,
            project,
            mode,
            claude_hooks: !no_claude_hooks,
            precommit: !no_precommit,
            claude_md: !no_claude_md,
        }),
        ClientCommand::Check {
            package,
            version,
            agent_model,
            agent_version,
            signed: true,
            output,
            ..
        } => crate::signed::check_signed(
            &package,
            version,
            AgentId::from_flags(agent_model, agent_version),
            output.as_deref(),
        ),
        ClientCommand::Check {
            package,
            version,
            agent_model,
            agent_version,
            ..
        } => check(
            &package,
            version,
            AgentId::from_flags(agent_model, agent_version),
        ),
        ClientCommand::RequestApproval {
            package,
            rationale,
            agent_model,
            agent_version,
        } => request_approval(
            &package,
            &rationale,
            AgentId::from_flags(agent_model, agent_version),
        ),
        ClientCommand::Audit {
            json,
            format,
            agent_model,
            agent_version,
        } => {
            let format = format.unwrap_or(if json {
                AuditFormat::Json
            } else {
                AuditFormat::Text
            });
            audit(format, AgentId::from_flags(agent_model, agent_version))
        }
        ClientCommand::Status { json } => status(json),
        ClientCommand::Precommit { json } => precommit(json),
        ClientCommand::Uninstall { yes } => uninstall(yes),
        ClientCommand::Hook { name } => {
            let mut input = String::new();
            let _ = std::io::stdin().read_to_string(&mut input);
            hook::run(&name, &input)
        }
    }
}

// ---------------------------------------------------------------- prompts

fn prompt(question: &str, default: &str) -> String {
    eprint!("{question} [{default}]: ");
    let _ = std::io::stderr().flush();
    let mut line = String::new();
    if std::io::stdin().read_line(&mut line).unwrap_or(0) == 0 {
        return default.to_string();
    }
    let answer = line.trim();
    if answer.is_empty() {
        default.to_string()
    } else {
        answer.to_string()
    }
}

fn confirm(question: &str) -> bool {
    eprint!("{question} [y/N]: ");
    let _ = std::io::stderr().flush();
    let mut line = String::new();
    let _ = std::io::stdin().read_line(&mut line);
    matches!(line.trim().to_ascii_lowercase().as_str(), "y" | "yes")
}

// ---------------------------------------------------------------- init

pub struct InitOptions {
    pub yes: bool,
    pub server_url: Option<String>,
    pub project: Option<String>,
    pub mode: Option<ModeArg>,
    pub claude_hooks: bool,
    pub precommit: bool,
    pub claude_md: bool,
}

fn default_project_name(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("pyproject.toml"))
        .ok()
        .and_then(|t| t.parse::<toml::Table>().ok())
        .and_then(|t| {
            t.get("project")?
                .get("name")?
                .as_str()
                .map(|s| s.trim().to_string())
        })
        .filter(|s| !s.is_empty())
        .or_else(|| dir.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_else(|| "project".into())
}

fn init(opts: InitOptions) -> i32 {
    let dir = cwd();
    let path = dir.join(config::CONFIG_FILE);
    if path.exists() && !opts.yes && !confirm(".lexalign.toml already exists. Overwrite?") {
        eprintln!("Aborted!");
        return 1;
    }
    let default_name = default_project_name(&dir);
    let (project, server_url, mode) = if opts.yes {
        (
            opts.project.unwrap_or(default_name),
            opts.server_url
                .unwrap_or_else(|| config::DEFAULT_SERVER_URL.into()),
            match opts.mode {
                Some(ModeArg::Org) => Mode::Org,
                _ => Mode::SingleUser,
            },
        )
    } else {
        let project = opts
            .project
            .unwrap_or_else(|| prompt("Project name", &default_name));
        let server_url = opts
            .server_url
            .unwrap_or_else(|| prompt("Server URL", config::DEFAULT_SERVER_URL));
        let mode = match opts.mode {
            Some(ModeArg::Org) => Mode::Org,
            Some(ModeArg::SingleUser) => Mode::SingleUser,
            None => loop {
                let m = prompt("Mode (single-user, org)", "single-user");
                if let Some(m) = Mode::parse(&m) {
                    break m;
                }
                eprintln!("Error: {m:?} is not one of 'single-user', 'org'.");
            },
        };
        (project, server_url, mode)
    };
    let config = Config::new(&project, &server_url, mode, &dir);
    if let Err(e) = config::parse(&config.to_toml(), &dir) {
        return error(e);
    }
    if let Err(e) = std::fs::write(&path, config.to_toml()) {
        return error(format!("cannot write {}: {e}", path.display()));
    }
    println!("Wrote {}", path.display());
    let program = install::program();
    let mut code = 0;
    if opts.claude_hooks {
        match install::install_claude_hooks(&dir, &program) {
            Ok(_) => println!("Installed Claude Code hooks in .claude/settings.json."),
            Err(e) => code = error(e),
        }
    }
    if opts.claude_md {
        match install::install_claude_md(&dir) {
            Ok(MdOutcome::Created) => {
                println!("Created CLAUDE.md with lex-align usage instructions.")
            }
            Ok(MdOutcome::Updated) => {
                println!("Updated CLAUDE.md with lex-align usage instructions.")
            }
            Ok(MdOutcome::Unchanged) => {
                println!("CLAUDE.md already contains lex-align section; skipped.")
            }
            Err(e) => code = error(e),
        }
    }
    if opts.precommit {
        match install::install_precommit(&dir, &program) {
            Ok(HookOutcome::Installed(p) | HookOutcome::Unchanged(p)) => {
                println!("Installed git pre-commit hook at {}.", p.display())
            }
            Ok(HookOutcome::NotARepo) => println!(
                "Skipped pre-commit install: this directory is not a git repo (run `git init` then `lex-align-client init` again)."
            ),
            Ok(HookOutcome::Framework(p)) => println!(
                "Skipped {}: the pre-commit framework manages it. Add to .pre-commit-config.yaml:\n  - repo: local\n    hooks:\n      - id: lex-align\n        name: lex-align dependency policy\n        entry: lex-align client precommit\n        language: system\n        pass_filenames: false",
                p.display()
            ),
            Err(e) => code = error(e),
        }
    }
    if mode == Mode::Org {
        println!();
        println!(
            "Organization mode: export your API key as ${} before running checks.",
            config.api_key_env_var
        );
    }
    code
}

fn uninstall(yes: bool) -> i32 {
    if !yes && !confirm("Remove lex-align hooks (Claude + git pre-commit)?") {
        eprintln!("Aborted!");
        return 1;
    }
    let root = config::find_project_root(&cwd()).unwrap_or_else(cwd);
    let mut code = 0;
    if let Err(e) = install::remove_claude_hooks(&root) {
        code = error(e);
    }
    if let Err(e) = install::remove_precommit(&root) {
        code = error(e);
    }
    let md = install::remove_claude_md(&root);
    if let Err(e) = &md {
        code = error(e);
    }
    println!("Removed Claude hooks and git pre-commit shim.");
    if md.unwrap_or(false) {
        println!("Removed the lex-align section from CLAUDE.md.");
    }
    println!(".lexalign.toml preserved.");
    code
}

// ---------------------------------------------------------------- check

/// Splits `--package` into (name as written, full requirement when it is one).
pub fn split_package_arg(arg: &str) -> (String, Option<String>) {
    let trimmed = arg.trim();
    let end = trimmed
        .find(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
        .unwrap_or(trimmed.len());
    if end == trimmed.len() {
        (arg.to_string(), None)
    } else {
        (trimmed[..end].to_string(), Some(trimmed.to_string()))
    }
}

fn check(package: &str, version: Option<String>, agent: AgentId) -> i32 {
    let config = match load_config() {
        Ok(c) => c,
        Err(code) => return code,
    };
    let api = Api::new(&config, agent, HTTP_TIMEOUT);
    let (name, requirement) = split_package_arg(package);
    let item = EvalItem {
        package: name,
        version: version.clone().filter(|v| !v.is_empty()),
        requirement,
    };
    let verdict = match api.evaluate(&item) {
        Ok(v) => v,
        Err(e @ ApiError::Unreachable { .. }) if config.fail_open => {
            eprintln!("[lex-align] {e}");
            Verdict::fail_open(&item.package, version.as_deref(), e.class())
        }
        Err(e @ ApiError::Unreachable { .. }) => return error(format!("Server unreachable: {e}")),
        Err(e) => return error(format!("Server error: {e}")),
    };
    println!("{}", to_python_json(&verdict.client_view()));
    if verdict.is_denied() {
        2
    } else {
        0
    }
}

fn request_approval(package: &str, rationale: &str, agent: AgentId) -> i32 {
    let config = match load_config() {
        Ok(c) => c,
        Err(code) => return code,
    };
    let api = Api::new(&config, agent, HTTP_TIMEOUT);
    match api.request_approval(package, rationale) {
        Ok(v) => {
            println!("{}", to_python_json(&v));
            0
        }
        Err(e @ ApiError::Unreachable { .. }) => error(format!("Server unreachable: {e}")),
        Err(e) => error(format!("Server error: {e}")),
    }
}

// ---------------------------------------------------------------- audit

fn color() -> bool {
    std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()) && std::io::stdout().is_terminal()
}

fn paint(on: bool, code: &str, s: &str) -> String {
    if on {
        format!("\x1b[{code}m{s}\x1b[0m")
    } else {
        s.to_string()
    }
}

/// A one-line progress indicator on stderr while the batch is in flight;
/// only on a terminal, and only if the wait is noticeable.
struct Progress {
    done: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Progress {
    fn start(total: usize) -> Progress {
        let done = Arc::new(AtomicBool::new(false));
        let thread = std::io::stderr().is_terminal().then(|| {
            let done = done.clone();
            std::thread::spawn(move || {
                let start = Instant::now();
                let mut drawn = false;
                let mut frame = 0usize;
                while !done.load(Ordering::Relaxed) {
                    std::thread::sleep(Duration::from_millis(80));
                    if start.elapsed() < Duration::from_millis(250) {
                        continue;
                    }
                    let width = 20;
                    let pos = frame % width;
                    let bar: String = (0..width)
                        .map(|i| if i == pos { '#' } else { '-' })
                        .collect();
                    eprint!(
                        "\r[{bar}] checking {total} dependenc{} … {:.1}s",
                        if total == 1 { "y" } else { "ies" },
                        start.elapsed().as_secs_f64()
                    );
                    drawn = true;
                    frame += 1;
                }
                if drawn {
                    eprint!("\r\x1b[2K");
                }
            })
        });
        Progress { done, thread }
    }

    fn finish(mut self) {
        self.done.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn spec_label(c: &Checked) -> String {
    let d = &c.dependency;
    match &d.locked_version {
        Some(v) if d.direct => format!("{} (locked {v})", d.requirement),
        _ => d.requirement.clone(),
    }
}

fn where_label(c: &Checked) -> String {
    let d = &c.dependency;
    let mut s = format!("{}:{}", d.source.file, d.source.line + 1);
    if !d.direct && !d.via.is_empty() {
        s.push_str(&format!(", via {}", d.via.join(", ")));
    } else {
        s.push_str(&format!(", {}", d.scope.label()));
    }
    s
}

fn denied_lines(c: &Checked, v: &Verdict, colored: bool) -> String {
    let mut s = format!(
        "  {} {} — {}\n      at: {}",
        paint(colored, "31", "✗"),
        spec_label(c),
        v.reason,
        where_label(c)
    );
    if let Some(r) = &v.replacement {
        s.push_str(&format!("\n      use instead: {r}"));
    }
    if let Some(sr) = &v.suggested_requirement {
        s.push_str(&format!("\n      suggested: {sr}"));
    }
    if let Some(safe) = v.first_safe_version() {
        s.push_str(&format!("\n      first safe version: {safe}"));
    }
    if !v.cve_ids.is_empty() {
        let ids: Vec<&str> = v.cve_ids.iter().take(5).map(String::as_str).collect();
        s.push_str(&format!("\n      CVEs: {}", ids.join(", ")));
    }
    if let Some(l) = &v.license {
        s.push_str(&format!("\n      license: {l}"));
    }
    s
}

struct Summary {
    allowed: usize,
    provisional: usize,
    denied: usize,
    transport: usize,
    invalid: usize,
}

fn summarize(checked: &[Checked]) -> Summary {
    let mut s = Summary {
        allowed: 0,
        provisional: 0,
        denied: 0,
        transport: 0,
        invalid: 0,
    };
    for c in checked {
        match &c.verdict {
            Ok(v) if v.transport_error => s.transport += 1,
            Ok(v) if v.is_denied() => s.denied += 1,
            Ok(v) if v.is_provisional() => s.provisional += 1,
            Ok(_) => s.allowed += 1,
            Err(_) => s.invalid += 1,
        }
    }
    s
}

fn checked_json(c: &Checked) -> Value {
    let d = &c.dependency;
    let mut v = match &c.verdict {
        Ok(v) => v.client_json(),
        Err(e) => json!({"package": d.name, "error": e}),
    };
    v["source"] = json!({
        "file": d.source.file, "line": d.source.line + 1, "column": d.source.column + 1,
        "scope": d.scope.label(), "requirement": d.requirement, "direct": d.direct,
        "locked_version": d.locked_version, "via": d.via,
    });
    v
}

fn run_checks(api: &Api, config: &Config, deps: &ProjectDeps) -> Result<Vec<Checked>, ApiError> {
    let total = deps.dependencies.len();
    let progress = Progress::start(total);
    let result = project::evaluate(api, &deps.dependencies, config.fail_open);
    progress.finish();
    result
}

fn audit(format: AuditFormat, agent: AgentId) -> i32 {
    let config = match load_config() {
        Ok(c) => c,
        Err(code) => return code,
    };
    let deps = project::discover(&FsSource {
        root: config.root.clone(),
    });
    let api = Api::new(&config, agent, HTTP_TIMEOUT);
    let checked = match run_checks(&api, &config, &deps) {
        Ok(c) => c,
        Err(e @ ApiError::Unreachable { .. }) => {
            eprintln!("[lex-align] server unreachable: {e}");
            return 1;
        }
        Err(e) => {
            eprintln!("[lex-align] server error: {e}");
            return 1;
        }
    };
    let s = summarize(&checked);
    match format {
        AuditFormat::Json => {
            let out = json!({
                "project": config.project,
                "deps_total": checked.len(),
                "summary": {
                    "allowed": s.allowed, "provisionally_allowed": s.provisional,
                    "denied": s.denied, "transport_errors": s.transport, "invalid": s.invalid,
                },
                "verdicts": checked.iter().map(checked_json).collect::<Vec<_>>(),
                "findings": deps.findings,
            });
            println!("{}", to_python_json(&out));
        }
        AuditFormat::Sarif => {
            let root_uri = format!("file://{}/", config.root.display());
            let out = sarif::sarif(&checked, &deps.findings, &deps.texts, &root_uri);
            println!("{}", serde_json::to_string_pretty(&out).expect("JSON"));
        }
        AuditFormat::Text => print_audit_text(&config, &deps, &checked, &s),
    }
    if s.denied > 0 || s.invalid > 0 {
        2
    } else {
        0
    }
}

fn print_audit_text(config: &Config, deps: &ProjectDeps, checked: &[Checked], s: &Summary) {
    let colored = color();
    let n = checked.len();
    let direct = checked.iter().filter(|c| c.dependency.direct).count();
    println!(
        "Audited {n} dep{} for project '{}' ({direct} direct, {} from lock files).",
        if n == 1 { "" } else { "s" },
        config.project,
        n - direct
    );
    println!();
    if n == 0 && deps.findings.is_empty() {
        println!("No dependencies found (pyproject.toml, requirements*.txt, lock files).");
        return;
    }
    println!("  ALLOWED              : {}", s.allowed);
    println!("  PROVISIONALLY_ALLOWED: {}", s.provisional);
    println!("  DENIED               : {}", s.denied);
    if s.transport > 0 {
        println!("  (server unreachable for {})", s.transport);
    }
    let denied: Vec<_> = checked
        .iter()
        .filter_map(|c| {
            c.verdict
                .as_ref()
                .ok()
                .filter(|v| v.is_denied())
                .map(|v| (c, v))
        })
        .collect();
    if !denied.is_empty() {
        println!();
        println!("{}", paint(colored, "1;31", "DENIED:"));
        for (c, v) in denied {
            println!("{}", denied_lines(c, v, colored));
        }
    }
    let invalid: Vec<_> = checked
        .iter()
        .filter_map(|c| c.verdict.as_ref().err().map(|e| (c, e)))
        .collect();
    if !invalid.is_empty() || !deps.findings.is_empty() {
        println!();
        println!("INVALID:");
        for (c, e) in invalid {
            println!(
                "  ✗ {} — {e}\n      at: {}",
                c.dependency.requirement,
                where_label(c)
            );
        }
        for f in &deps.findings {
            println!(
                "  ! {}:{}:{} — {}",
                f.file,
                f.line + 1,
                f.column + 1,
                f.message
            );
        }
    }
    let provisional: Vec<_> = checked
        .iter()
        .filter_map(|c| {
            c.verdict
                .as_ref()
                .ok()
                .filter(|v| v.is_provisional())
                .map(|v| (c, v))
        })
        .collect();
    if !provisional.is_empty() {
        println!();
        println!("{}", paint(colored, "1;33", "PROVISIONALLY_ALLOWED:"));
        for (c, v) in provisional {
            println!("  ◎ {} — {}", spec_label(c), v.reason);
        }
        println!("  → run `lex-align-client request-approval --package <name> --rationale \"<why>\"` to enqueue formal review.");
    }
}

// ---------------------------------------------------------------- precommit

/// `precommit`: 0 = pass, 1 = blocked (the original's codes).
fn precommit(as_json: bool) -> i32 {
    let config = match config::load(&cwd()) {
        Ok(c) => c,
        Err(config::ConfigError::NotFound { .. }) => {
            eprintln!("[lex-align] no .lexalign.toml found. Run `lex-align-client init` to enable enforcement.");
            return 0;
        }
        Err(e) => {
            // A broken config must not silently switch the gate off (W9).
            eprintln!("[lex-align] pre-commit blocked: {e}");
            return 1;
        }
    };
    let git = GitIndexSource::load(&config.root);
    let source: &dyn Source = match &git {
        Some(g) => g,
        None => &FsSource {
            root: config.root.clone(),
        },
    };
    let deps = project::discover(source);
    if deps.dependencies.is_empty() && deps.findings.is_empty() {
        return 0;
    }
    let api = Api::new(&config, AgentId::from_flags(None, None), HTTP_TIMEOUT);
    let checked = match project::evaluate(&api, &deps.dependencies, config.fail_open) {
        Ok(c) => c,
        Err(e @ ApiError::Unreachable { .. }) => {
            eprintln!(
                "[lex-align] pre-commit blocked: server unreachable at {} ({e}).",
                config.server_url
            );
            return 1;
        }
        Err(e) => {
            eprintln!("[lex-align] pre-commit blocked: server error: {e}");
            return 1;
        }
    };
    let s = summarize(&checked);
    let blocked: Vec<&Checked> = checked
        .iter()
        .filter(|c| c.verdict.as_ref().map_or(true, Verdict::is_denied))
        .collect();
    // A replacement the same table already declares: one entry, not two.
    let fixes = edit::replacement_fixes(&api, &deps.texts, &blocked);
    if as_json {
        let violations: Vec<Value> = blocked
            .iter()
            .zip(&fixes)
            .map(|(c, f)| violation_json(c, f.as_deref()))
            .collect();
        let out = json!({
            "project": config.project,
            "blocked": !blocked.is_empty(),
            "checked": checked.len(),
            "transport_errors": s.transport,
            "violations": violations,
        });
        println!("{}", serde_json::to_string_pretty(&out).expect("JSON"));
    }
    if s.transport > 0 {
        eprintln!(
            "[lex-align] WARNING: {} dependenc{} could not be checked (server unreachable, fail_open=true).",
            s.transport,
            if s.transport == 1 { "y" } else { "ies" }
        );
    }
    if blocked.is_empty() {
        return 0;
    }
    eprintln!("[lex-align] commit blocked — non-compliant dependencies:");
    for (c, fix) in blocked.iter().zip(&fixes) {
        match &c.verdict {
            Ok(v) => {
                eprintln!("{}", denied_lines(c, v, false));
                if let Some(fix) = fix {
                    eprintln!("      fix: {fix}");
                }
            }
            Err(e) => eprintln!(
                "  ✗ {} — invalid: {e}\n      at: {}",
                c.dependency.requirement,
                where_label(c)
            ),
        }
    }
    eprintln!();
    // One line per package for agents and scripts: key=value, values JSON-quoted.
    for (c, fix) in blocked.iter().zip(&fixes) {
        let v = violation_json(c, fix.as_deref());
        let q = |k: &str| serde_json::to_string(&v[k]).unwrap_or_default();
        eprintln!(
            "lex-align-blocked package={} requirement={} file={} line={} category={} fix={}",
            q("package"),
            q("requirement"),
            q("file"),
            v["line"],
            q("category"),
            q("fix")
        );
    }
    eprintln!();
    eprintln!(
        "Fix the listed packages (replace, pin a different version, or remove) and try again."
    );
    1
}

/// `fix` overrides the verdict's fix (see `edit::replacement_fixes`).
fn violation_json(c: &Checked, fix: Option<&str>) -> Value {
    let d = &c.dependency;
    let (category, reason, fix, replacement, suggested, safe) = match &c.verdict {
        Ok(v) => (
            sarif::code(v).unwrap_or("denied").to_string(),
            v.reason.clone(),
            fix.map(str::to_string).or_else(|| v.fix()),
            v.replacement.clone(),
            v.suggested_requirement.clone(),
            v.first_safe_version(),
        ),
        Err(e) => (
            "invalid-requirement".into(),
            e.clone(),
            None,
            None,
            None,
            None,
        ),
    };
    json!({
        "package": d.name, "requirement": d.requirement, "file": d.source.file,
        "line": d.source.line + 1, "column": d.source.column + 1, "scope": d.scope.label(),
        "via": d.via, "locked_version": d.locked_version, "category": category,
        "reason": reason, "fix": fix, "replacement": replacement,
        "suggested_requirement": suggested, "first_safe_version": safe,
    })
}

// ---------------------------------------------------------------- status

fn status(as_json: bool) -> i32 {
    let config = match load_config() {
        Ok(c) => c,
        Err(code) => return code,
    };
    let deps = project::discover(&FsSource {
        root: config.root.clone(),
    });
    let claude = install::claude_hook_state(&config.root);
    let precommit = install::precommit_installed(&config.root);
    // Status must not start a daemon as a side effect of looking.
    std::env::set_var("LEXALIGN_NO_AUTOSTART", "1");
    let api = Api::new(&config, AgentId::from_flags(None, None), HTTP_TIMEOUT);
    let health = api.health();
    let (pending, security) = if health.is_ok() {
        (api.pending_approvals().ok(), api.security_report().ok())
    } else {
        (None, None)
    };
    let mut names: Vec<String> = pending
        .iter()
        .flatten()
        .filter_map(|i| i.get("package").and_then(Value::as_str).map(str::to_string))
        .collect();
    names.sort();
    names.dedup();
    let count = pending.as_ref().map_or(0, Vec::len);
    let sev = |k: &str| {
        security
            .as_ref()
            .and_then(|s| s.pointer(&format!("/severity_distribution/{k}")))
            .and_then(Value::as_i64)
            .unwrap_or(0)
    };
    let hot: Vec<Value> = security
        .as_ref()
        .and_then(|s| s.get("hot_registry_packages"))
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let direct = deps.direct_count();
    if as_json {
        let out = json!({
            "project": config.project,
            "server_url": config.server_url,
            "mode": config.mode.as_str(),
            "auto_request_approval": config.auto_request_approval,
            "server": {
                "reachable": health.is_ok(),
                "detail": health.as_ref().ok(),
                "error": health.as_ref().err().map(ToString::to_string),
            },
            "deps_total": direct,
            "pending_approvals": {"count": count, "packages": names},
            "security": {
                "cve_severity": security.as_ref().and_then(|s| s.get("severity_distribution")).cloned().unwrap_or(json!({})),
                "hot_registry_packages": hot,
            },
            "hooks": {"claude": claude, "precommit_installed": precommit},
            "lapsing_soon": health.as_ref().ok().and_then(|h| h.get("lapsing_soon")).cloned(),
            "cve_scan": health.as_ref().ok().and_then(|h| h.get("cve_scan")).cloned(),
        });
        println!("{}", to_python_json(&out));
        return 0;
    }
    println!("# lex-align status — project: {}", config.project);
    println!("  server_url           : {}", config.server_url);
    println!("  mode                 : {}", config.mode.as_str());
    println!(
        "  auto_request_approval: {}",
        if config.auto_request_approval {
            "on"
        } else {
            "off"
        }
    );
    println!();
    match &health {
        Ok(h) => println!(
            "Server: reachable — registry={} redis={} db={}",
            if h.get("registry_loaded").and_then(Value::as_bool) == Some(true) {
                "loaded"
            } else {
                "absent"
            },
            h.get("redis").and_then(Value::as_str).unwrap_or("?"),
            h.get("db").and_then(Value::as_str).unwrap_or("?")
        ),
        Err(e) => println!("Server: UNREACHABLE ({e})"),
    }
    if let Ok(h) = &health {
        // Which advisory source the CVE gate uses and how old it is: without
        // one the gate is off, which a user must be able to see here.
        if let Some(summary) = h
            .pointer("/upstreams/advisories/summary")
            .and_then(Value::as_str)
        {
            println!("Advisories: {summary}");
        }
        for line in crate::api::cve_scan_lines(h) {
            println!("{line}");
        }
        let lapsing = crate::api::lapsing_soon(h);
        if !lapsing.is_empty() {
            println!("Lapsing within 7 days:");
            for line in lapsing {
                println!("  ~ {line}");
            }
        }
    }
    println!();
    println!("Dependencies declared in manifests: {direct}");
    println!();
    println!("Pending approvals for this project: {count}");
    for n in names.iter().take(10) {
        println!("  · {n}");
    }
    if names.len() > 10 {
        println!("  · ... and {} more", names.len() - 10);
    }
    println!();
    if sev("critical") > 0 || sev("high") > 0 {
        println!(
            "Recent CVE-driven denials: critical={} high={} medium={} low={}",
            sev("critical"),
            sev("high"),
            sev("medium"),
            sev("low")
        );
    } else {
        println!("Recent CVE-driven denials: none.");
    }
    if !hot.is_empty() {
        println!("Approved packages with new CVE pressure:");
        for h in hot.iter().take(5) {
            let name = h.get("package").and_then(Value::as_str).unwrap_or("?");
            match h.get("max_cvss").and_then(Value::as_f64) {
                Some(c) => println!("  ! {name} — CVSS {c}"),
                None => println!("  ! {name} — CVSS ?"),
            }
        }
    }
    println!();
    let state = |b: bool| if b { "installed" } else { "missing" };
    let ev = |k: &str| claude.get(k).and_then(Value::as_bool).unwrap_or(false);
    println!("Hooks:");
    println!("  Claude SessionStart   : {}", state(ev("SessionStart")));
    println!("  Claude PreToolUse     : {}", state(ev("PreToolUse")));
    println!("  git pre-commit       : {}", state(precommit));
    0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn package_argument_may_be_a_requirement() {
        assert_eq!(split_package_arg("httpx"), ("httpx".into(), None));
        assert_eq!(split_package_arg("PyQt5"), ("PyQt5".into(), None));
        assert_eq!(
            split_package_arg("cryptography>=41,<44"),
            ("cryptography".into(), Some("cryptography>=41,<44".into()))
        );
        assert_eq!(
            split_package_arg("httpx[http2] ; python_version>'3.8'"),
            (
                "httpx".into(),
                Some("httpx[http2] ; python_version>'3.8'".into())
            )
        );
    }
}
