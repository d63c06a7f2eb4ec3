//! `check-config`: the original six pre-flight checks (adapted: the cache is
//! SQLite, not Redis), plus the upstreams and every invalid variable, each
//! with its fix. Exit 1 on any FAIL.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use lex_align_daemon::config::{Config, ConfigError, ProposerChoice};
use lex_align_upstream::IndexKind;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Ok,
    Warn,
    Fail,
}

impl Status {
    fn glyph(self) -> &'static str {
        match self {
            Status::Ok => "OK ",
            Status::Warn => "WRN",
            Status::Fail => "FAIL",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Check {
    pub status: Status,
    pub label: String,
    pub detail: String,
}

fn check(status: Status, label: &str, detail: impl Into<String>) -> Check {
    Check {
        status,
        label: label.to_string(),
        detail: detail.into(),
    }
}

pub fn run() -> u8 {
    let results = run_checks(
        &|k| std::env::var(k).ok(),
        &crate::daemon::pip_default_index,
    );
    let width = results.iter().map(|r| r.label.len()).max().unwrap_or(10);
    for r in &results {
        println!("{}  {:<width$}  {}", r.status.glyph(), r.label, r.detail);
    }
    let fails = results.iter().filter(|r| r.status == Status::Fail).count();
    let warns = results.iter().filter(|r| r.status == Status::Warn).count();
    println!();
    if fails > 0 {
        eprintln!("{fails} failure(s), {warns} warning(s).");
        1
    } else if warns > 0 {
        println!("All checks passed with {warns} warning(s).");
        0
    } else {
        println!("All checks passed.");
        0
    }
}

/// Every check, in print order, against a variable source.
/// `default_index` is what the daemon falls back to when no index is
/// configured (pip's own default), so the check reports the index the
/// daemon will really use.
pub fn run_checks(
    get: &dyn Fn(&str) -> Option<String>,
    default_index: &dyn Fn() -> Option<String>,
) -> Vec<Check> {
    let var = |k: &str| {
        get(k)
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
    };
    let (mut config, env_errors) = load_config(get);
    if let Some(c) = config.as_mut() {
        crate::daemon::apply_default_index(c, default_index);
    }
    let mut out = Vec::new();

    // The daemon's view of REGISTRY_PATH / DATABASE_PATH; fall back to the
    // raw variables when the configuration as a whole did not load.
    let registry_path = match &config {
        Some(c) => c.registry_path.clone(),
        None => var("REGISTRY_PATH").map(PathBuf::from),
    };
    out.push(check_registry_path(registry_path.as_deref()));
    out.push(check_registry_yaml(registry_path.as_deref()));
    match &config {
        Some(c) => {
            out.push(check_audit_db(&c.database_path));
            out.push(check_cache(&c.database_path, var("REDIS_URL")));
            out.push(check_proposer(c));
            out.push(check_auth(c));
            out.extend(check_plugins(c));
            out.push(check_index(c));
            out.push(check_advisories(c));
        }
        None => out.push(check(
            Status::Fail,
            "configuration",
            "could not be loaded; fix the variables below first.",
        )),
    }
    for e in env_errors {
        out.push(check(Status::Fail, e.variable, e.message));
    }
    if let Some(v) = var("CVE_THRESHOLD") {
        out.push(check(
            Status::Warn,
            "CVE_THRESHOLD",
            format!(
                "={v} is read by nothing (it never was); set `global_policies.cve_threshold` in registry.yml and unset CVE_THRESHOLD."
            ),
        ));
    }
    out
}

/// Loads the configuration, collecting *every* invalid variable: each error
/// names its variable, which is then masked so the next one shows up.
fn load_config(get: &dyn Fn(&str) -> Option<String>) -> (Option<Config>, Vec<ConfigError>) {
    let home = get("HOME").map(PathBuf::from);
    let cwd = std::env::current_dir().ok();
    let mut masked: BTreeSet<&'static str> = BTreeSet::new();
    let mut errors: Vec<ConfigError> = Vec::new();
    // Bounded: each round masks one more variable.
    for _ in 0..64 {
        let lookup = |k: &str| {
            if masked.contains(k) {
                None
            } else {
                get(k)
            }
        };
        match Config::from_lookup(lookup, home.as_deref(), cwd.as_deref()) {
            Ok(c) => return (Some(c), errors),
            Err(e) => {
                if !masked.insert(e.variable) {
                    // Masking did not help (a default of one variable clashes
                    // with another, e.g. AUTH_BACKEND's default with
                    // AUTH_ENABLED=true): mask the switch too.
                    if e.variable.starts_with("AUTH_") && masked.insert("AUTH_ENABLED") {
                        continue;
                    }
                    errors.push(e);
                    return (None, errors);
                }
                errors.push(e);
            }
        }
    }
    (None, errors)
}

fn check_registry_path(path: Option<&Path>) -> Check {
    const L: &str = "REGISTRY_PATH";
    let Some(path) = path else {
        return check(
            Status::Warn,
            L,
            "unset — the daemon runs on the built-in starter policy and proposals are only logged. \
             Export REGISTRY_PATH=/path/to/registry.yml (`lex-align quickstart` lays one down).",
        );
    };
    if path.exists() {
        return match std::fs::metadata(path) {
            Ok(m) if m.is_file() => check(
                Status::Ok,
                L,
                format!("{} exists ({} bytes).", path.display(), m.len()),
            ),
            _ => check(
                Status::Fail,
                L,
                format!(
                    "{} exists but is not a regular file; point REGISTRY_PATH at the registry.yml file.",
                    path.display()
                ),
            ),
        };
    }
    let parent = parent_of(path);
    if !parent.exists() {
        return check(
            Status::Fail,
            L,
            format!(
                "{} does not exist and parent {} is missing — create the directory (mkdir -p {}) before starting the daemon.",
                path.display(),
                parent.display(),
                parent.display()
            ),
        );
    }
    if !writable(&parent) {
        return check(
            Status::Fail,
            L,
            format!(
                "{} does not exist and parent {} is not writable; the daemon cannot create the registry on first proposal. \
                 Fix the directory's permissions or choose another REGISTRY_PATH.",
                path.display(),
                parent.display()
            ),
        );
    }
    check(
        Status::Warn,
        L,
        format!(
            "{} does not exist yet; will be created on first proposal (until then the built-in starter policy applies).",
            path.display()
        ),
    )
}

fn check_registry_yaml(path: Option<&Path>) -> Check {
    const L: &str = "registry YAML";
    let Some(path) = path.filter(|p| p.is_file()) else {
        return check(Status::Ok, L, "no file to validate yet.");
    };
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) => {
            return check(
                Status::Fail,
                L,
                format!("{} cannot be read: {e}.", path.display()),
            )
        }
    };
    match crate::compile::load(&text) {
        Ok(r) => {
            let n = r.packages.len();
            check(
                Status::Ok,
                L,
                format!(
                    "{} validates ({n} package rule{}).",
                    path.display(),
                    if n == 1 { "" } else { "s" }
                ),
            )
        }
        Err(crate::compile::LoadError::Yaml(e)) => check(
            Status::Fail,
            L,
            format!("{} did not parse as YAML: {e}", path.display()),
        ),
        Err(crate::compile::LoadError::Invalid(e)) => check(
            Status::Fail,
            L,
            format!("{} failed validation: {e}", path.display()),
        ),
    }
}

fn check_audit_db(db: &Path) -> Check {
    const L: &str = "audit DB";
    let parent = parent_of(db);
    if db.exists() {
        if !writable(db) {
            return check(
                Status::Fail,
                L,
                format!(
                    "{} exists but is not writable by this user; fix its permissions (the audit log is required).",
                    db.display()
                ),
            );
        }
        return check(
            Status::Ok,
            L,
            format!("{} exists and is writable.", db.display()),
        );
    }
    if !parent.exists() {
        // The daemon creates missing directories; that needs the nearest
        // existing ancestor to be a writable directory.
        let ancestor = parent
            .ancestors()
            .find(|a| a.exists())
            .map(Path::to_path_buf);
        return match ancestor {
            Some(a) if a.is_dir() && writable(&a) => check(
                Status::Warn,
                L,
                format!(
                    "{} does not exist yet; it and its directory will be created on first start.",
                    db.display()
                ),
            ),
            Some(a) => check(
                Status::Fail,
                L,
                format!(
                    "parent {} is missing and cannot be created ({} is {}); set DATABASE_PATH to a writable location \
                     (the audit log is required, not optional).",
                    parent.display(),
                    a.display(),
                    if a.is_dir() { "not writable" } else { "not a directory" }
                ),
            ),
            None => check(
                Status::Fail,
                L,
                format!("parent {} cannot be created; set DATABASE_PATH.", parent.display()),
            ),
        };
    }
    if !writable(&parent) {
        return check(
            Status::Fail,
            L,
            format!(
                "parent {} is not writable by this user; fix its permissions or set DATABASE_PATH elsewhere.",
                parent.display()
            ),
        );
    }
    check(
        Status::Warn,
        L,
        format!(
            "{} does not exist yet; will be created on first start.",
            db.display()
        ),
    )
}

fn check_cache(db: &Path, redis_url: Option<String>) -> Check {
    const L: &str = "cache (sqlite)";
    match redis_url {
        Some(u) if !matches!(u.to_ascii_lowercase().as_str(), "none" | "disabled") => check(
            Status::Warn,
            L,
            format!(
                "REDIS_URL={u} is ignored: upstream metadata is cached in memory and in {}. Unset REDIS_URL.",
                db.display()
            ),
        ),
        _ => check(
            Status::Ok,
            L,
            format!(
                "in memory and in {} (survives restarts; no Redis needed).",
                db.display()
            ),
        ),
    }
}

fn check_proposer(c: &Config) -> Check {
    const L: &str = "proposer";
    if let Some(name) = &c.proposer_plugin {
        // Whether it loads is the plugins check's.
        return check(
            Status::Ok,
            L,
            format!("plugin:{name} (explicit, REGISTRY_PROPOSER); see the plugin checks below."),
        );
    }
    let explicit = "explicit (REGISTRY_PROPOSER)";
    let mut why = String::new();
    let (backend, source) = match c.proposer {
        ProposerChoice::LocalFile => ("local_file", explicit.to_string()),
        ProposerChoice::LogOnly => ("log_only", explicit.to_string()),
        ProposerChoice::LocalGit => ("local_git", explicit.to_string()),
        ProposerChoice::Github => (
            "github",
            match &c.repo.repo_url {
                Some(u) => format!("REGISTRY_REPO_URL={}", u.display()),
                None => "explicit (REGISTRY_PROPOSER); repository from the origin of REGISTRY_PATH"
                    .to_string(),
            },
        ),
        ProposerChoice::Auto => {
            let auto = lex_align_daemon::proposer::auto_backend(
                c.registry_path.as_deref(),
                c.registry_path_explicit,
            );
            why = format!(" ({})", auto.why);
            (auto.backend, "auto-detected".to_string())
        }
    };
    match backend {
        "local_file" => check(
            Status::Ok,
            L,
            format!("{backend} ({source}) — recommended for single-team installs.{why}"),
        ),
        "local_git" => check(
            Status::Ok,
            L,
            format!(
                "{backend} ({source}) — each accepted proposal is written and committed by {} <{}>.{why}",
                c.repo.bot_author_name, c.repo.bot_author_email
            ),
        ),
        "github" => check(
            Status::Warn,
            L,
            format!(
                "{backend} ({source}) — proposals and approval requests become pull requests; \
                 REGISTRY_REPO_TOKEN must be allowed to push branches and open pull requests, and \
                 merges reach this daemon through the registry webhook (REGISTRY_WEBHOOK_SECRET)."
            ),
        ),
        _ => check(
            Status::Warn,
            L,
            "log_only — proposals are logged but not written. \
             Set REGISTRY_PATH to a registry.yml in a writable directory to enable local_file (recommended).",
        ),
    }
}

fn check_auth(c: &Config) -> Check {
    const L: &str = "auth";
    if c.auth.enabled {
        return check(
            Status::Ok,
            L,
            format!(
                "enabled (backend={}; API keys accepted too). See docs/security.md.",
                c.auth.backend.label()
            ),
        );
    }
    match c.check_exposure() {
        Ok(()) if c.auth.allow_anonymous_network => check(
            Status::Warn,
            L,
            format!(
                "AUTH_ENABLED=false on BIND_HOST={} with LEXALIGN_ALLOW_ANONYMOUS_NETWORK=1 — anyone who can reach \
                 the port may change policy. Turn authentication on (AUTH_ENABLED=true) for a shared daemon.",
                c.bind_host
            ),
        ),
        Ok(()) => check(
            Status::Ok,
            L,
            format!(
                "disabled (anonymous), bound to {} — fine for single-user / local evaluation.",
                c.bind_host
            ),
        ),
        Err(e) => check(Status::Fail, L, format!("the daemon will refuse to start: {e}")),
    }
}

/// Loads the plugins as the daemon would (this runs each one's configure)
/// and reports every library; a selected plugin that would not load fails,
/// since the daemon then refuses to start.
fn check_plugins(c: &Config) -> Vec<Check> {
    use lex_align_daemon::auth::Backend;
    use lex_align_plugin_host::{Kind, PluginHost, PluginState};
    let auth_plugin = match &c.auth.backend {
        Backend::Plugin(name) if c.auth.enabled => Some(name.clone()),
        _ => None,
    };
    if c.plugins.dirs.is_empty() && auth_plugin.is_none() && c.proposer_plugin.is_none() {
        return Vec::new();
    }
    let host = PluginHost::load(c.plugins.clone());
    let mut out = Vec::new();
    for r in host.report() {
        let label = format!("plugin {}", r.name.as_deref().unwrap_or("?"));
        match r.state {
            PluginState::Ready => out.push(check(
                Status::Ok,
                &label,
                format!(
                    "ready ({}, ABI {}) — {}",
                    r.kind.as_deref().unwrap_or("?"),
                    r.abi.unwrap_or(0),
                    r.path
                ),
            )),
            _ => out.push(check(
                Status::Warn,
                &label,
                format!(
                    "{}, skipped by the daemon: {} — {}",
                    r.state.as_str(),
                    r.error.as_deref().unwrap_or("?"),
                    r.path
                ),
            )),
        }
    }
    for (variable, name, kind) in [
        ("AUTH_BACKEND", auth_plugin, Kind::Authenticator),
        (
            "REGISTRY_PROPOSER",
            c.proposer_plugin.clone(),
            Kind::Proposer,
        ),
    ] {
        let Some(name) = name else { continue };
        if let Err(e) = host.select(&name, kind) {
            out.push(check(
                Status::Fail,
                variable,
                format!("plugin:{name}: the daemon will refuse to start: {e}"),
            ));
        }
    }
    out
}

fn check_index(c: &Config) -> Check {
    const L: &str = "package index";
    match &c.index {
        Some(i) => check(
            Status::Ok,
            L,
            format!(
                "{} ({}, from {}).",
                i.url,
                match i.kind {
                    IndexKind::Json => "JSON API",
                    IndexKind::Simple => "PEP 691 simple index",
                    IndexKind::Auto => "kind detected on first use",
                },
                i.source
            ),
        ),
        None => check(
            Status::Fail,
            L,
            "none configured: packages outside the registry cannot be judged. Set LEXALIGN_INDEX_URL to your index \
             (a JSON API root `…/pypi` or a PEP 691 `…/simple`), or configure it for pip/uv \
             (PIP_INDEX_URL, UV_DEFAULT_INDEX, UV_INDEX_URL, pip.conf `index-url`, uv.toml `[[index]] default = true`).",
        ),
    }
}

fn check_advisories(c: &Config) -> Check {
    use lex_align_upstream::AdvisorySourceKind as Kind;
    const L: &str = "advisories";
    let source =
        lex_align_upstream::describe_advisory_source(&lex_align_daemon::upstream_config(c));
    match source.kind {
        Kind::Offline => check(
            Status::Ok,
            L,
            format!("{} (matched locally).", source.summary()),
        ),
        Kind::OsvApi | Kind::Export => check(Status::Ok, L, format!("{}.", source.summary())),
        Kind::PackageIndex => check(
            Status::Warn,
            L,
            format!(
                "{}. For scored OSV data set LEXALIGN_OSV_URL, or run `lex-align advisories sync`.",
                source.summary()
            ),
        ),
        Kind::None => check(
            Status::Fail,
            L,
            "no advisory source: the vulnerability gate cannot run. Set LEXALIGN_OSV_URL (or OSV_API_URL) to an OSV API, \
             LEXALIGN_OFFLINE_ADVISORIES to a directory of OSV records or an OSV export zip, or run \
             `lex-align advisories sync` (or configure a package index whose JSON API lists vulnerabilities).",
        ),
    }
}

fn parent_of(p: &Path) -> PathBuf {
    match p.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// Can this user write here? Tried for real (a file opened for writing, a
/// probe file created in a directory) rather than guessed from mode bits.
fn writable(p: &Path) -> bool {
    if p.is_dir() {
        let probe = p.join(format!(".lexalign-write-probe-{}", std::process::id()));
        let ok = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&probe)
            .is_ok();
        let _ = std::fs::remove_file(&probe);
        ok
    } else {
        std::fs::OpenOptions::new().write(true).open(p).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn checks(vars: &[(&str, String)]) -> Vec<Check> {
        let m: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect();
        run_checks(&move |k: &str| m.get(k).cloned(), &|| None)
    }

    fn find<'a>(cs: &'a [Check], label: &str) -> &'a Check {
        cs.iter()
            .find(|c| c.label == label)
            .unwrap_or_else(|| panic!("no {label} in {cs:?}"))
    }

    #[test]
    fn every_bad_variable_is_reported_with_its_fix() {
        let home = tempfile::tempdir().unwrap();
        let cs = checks(&[
            ("HOME", home.path().display().to_string()),
            ("BIND_PORT", "eighty".into()),
            ("LEXALIGN_FAIL_POLICY", "maybe".into()),
            ("OUTBOUND_TIMEOUT", "-3".into()),
            ("AUTH_ENABLED", "true".into()),
            ("AUTH_BACKEND", "webhook".into()),
        ]);
        for var in [
            "BIND_PORT",
            "LEXALIGN_FAIL_POLICY",
            "OUTBOUND_TIMEOUT",
            "AUTH_VERIFY_URL",
        ] {
            assert_eq!(find(&cs, var).status, Status::Fail, "{cs:?}");
        }
        assert!(find(&cs, "BIND_PORT").detail.contains("BIND_PORT=8765"));
        // The remaining checks still ran on the corrected configuration.
        assert_eq!(find(&cs, "package index").status, Status::Fail);
        assert_eq!(find(&cs, "audit DB").status, Status::Warn);
    }

    #[test]
    fn a_complete_local_setup_passes() {
        let dir = tempfile::tempdir().unwrap();
        let yml = dir.path().join("registry.yml");
        std::fs::write(&yml, lex_align_engine::registry::STARTER_YAML).unwrap();
        let cs = checks(&[
            ("HOME", dir.path().display().to_string()),
            ("REGISTRY_PATH", yml.display().to_string()),
            (
                "DATABASE_PATH",
                dir.path().join("x.sqlite").display().to_string(),
            ),
            ("LEXALIGN_INDEX_URL", "http://127.0.0.1:9/pypi".into()),
            ("LEXALIGN_OSV_URL", "http://127.0.0.1:9".into()),
        ]);
        assert!(cs.iter().all(|c| c.status != Status::Fail), "{cs:?}");
        assert!(find(&cs, "registry YAML")
            .detail
            .contains("validates (4 package rules)"));
        assert_eq!(find(&cs, "proposer").status, Status::Ok);
        assert!(find(&cs, "proposer").detail.starts_with("local_file"));
    }

    #[test]
    fn with_nothing_configured_the_index_is_pips_default() {
        let dir = tempfile::tempdir().unwrap();
        let m: HashMap<String, String> =
            [("HOME".to_string(), dir.path().display().to_string())].into();
        let cs = run_checks(&move |k: &str| m.get(k).cloned(), &|| {
            Some("http://127.0.0.1:9/simple/".to_string())
        });
        let index = find(&cs, "package index");
        assert_eq!(index.status, Status::Ok, "{cs:?}");
        assert!(
            index.detail.starts_with("http://127.0.0.1:9/simple/"),
            "{index:?}"
        );
        assert!(
            index.detail.contains("pip's built-in default index"),
            "{index:?}"
        );
        // That index's own advisories are the gate: a warning, not a failure.
        assert_eq!(find(&cs, "advisories").status, Status::Warn, "{cs:?}");
        // Without pip (resolver gives nothing) it stays a failure.
        let none = checks(&[("HOME", dir.path().display().to_string())]);
        assert_eq!(find(&none, "package index").status, Status::Fail);
        assert_eq!(find(&none, "advisories").status, Status::Fail);
    }

    #[test]
    fn non_loopback_anonymous_fails_and_redis_warns() {
        let dir = tempfile::tempdir().unwrap();
        let cs = checks(&[
            ("HOME", dir.path().display().to_string()),
            ("BIND_HOST", "0.0.0.0".into()),
            ("REDIS_URL", "redis://localhost:6379/0".into()),
            ("CVE_THRESHOLD", "0.9".into()),
        ]);
        // Without consent the daemon would refuse to start: a failure.
        assert_eq!(find(&cs, "auth").status, Status::Fail);
        assert!(
            find(&cs, "auth")
                .detail
                .contains("LEXALIGN_ALLOW_ANONYMOUS_NETWORK=1"),
            "{cs:?}"
        );
        let consented = checks(&[
            ("HOME", dir.path().display().to_string()),
            ("BIND_HOST", "0.0.0.0".into()),
            ("LEXALIGN_ALLOW_ANONYMOUS_NETWORK", "1".into()),
        ]);
        assert_eq!(find(&consented, "auth").status, Status::Warn);
        assert!(find(&consented, "auth")
            .detail
            .contains("BIND_HOST=0.0.0.0"));
        assert_eq!(find(&cs, "cache (sqlite)").status, Status::Warn);
        assert_eq!(find(&cs, "CVE_THRESHOLD").status, Status::Warn);
        assert_eq!(find(&cs, "REGISTRY_PATH").status, Status::Warn);
        assert_eq!(find(&cs, "proposer").status, Status::Warn);
    }

    #[test]
    fn broken_registry_fails_with_the_line() {
        let dir = tempfile::tempdir().unwrap();
        let yml = dir.path().join("registry.yml");
        std::fs::write(
            &yml,
            "version: \"1\"\npackages:\n  httpx:\n    status: preferred\n  flask:\n    status: shiny\n",
        )
        .unwrap();
        let cs = checks(&[
            ("HOME", dir.path().display().to_string()),
            ("REGISTRY_PATH", yml.display().to_string()),
        ]);
        let c = find(&cs, "registry YAML");
        assert_eq!(c.status, Status::Fail);
        assert!(c.detail.contains("failed validation"), "{}", c.detail);
        assert!(
            c.detail.contains("line 5") || c.detail.contains("line 6"),
            "{}",
            c.detail
        );
    }
}
