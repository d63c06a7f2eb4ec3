//! Daemon configuration from the environment: the original server's variables
//! (so an existing deployment keeps working) plus lex-align's own.

use std::path::{Path, PathBuf};
use std::time::Duration;

use lex_align_engine::advisory::UnscoredPolicy;
use lex_align_engine::evaluate::FailPolicy;
use lex_align_upstream::discover::{discover_index, IndexSetting};

/// Which proposer backend runs operator proposals.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ProposerChoice {
    /// `REGISTRY_PROPOSER` unset: `github` when REGISTRY_REPO_URL is set;
    /// `local_git` when an explicit REGISTRY_PATH is inside a git work tree;
    /// `local_file` when REGISTRY_PATH's directory is writable; else
    /// `log_only` (proposer/mod.rs, `auto_backend`).
    #[default]
    Auto,
    LogOnly,
    LocalFile,
    LocalGit,
    Github,
}

/// A value that must never be printed: `Debug` shows `***`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// The git and GitHub proposers' settings (server-ops.md §2).
#[derive(Debug, Clone)]
pub struct RepoSettings {
    /// `REGISTRY_BOT_AUTHOR_NAME` / `_EMAIL`: author and committer.
    pub bot_author_name: String,
    pub bot_author_email: String,
    /// `REGISTRY_REPO_URL`, checked; `None` with `REGISTRY_PROPOSER=github`:
    /// the `origin` of the repository holding REGISTRY_PATH.
    pub repo_url: Option<crate::proposer::github::RepoUrl>,
    /// `REGISTRY_REPO_TOKEN` (or `GITHUB_TOKEN` / `GH_TOKEN`, see from_lookup).
    pub token: Option<Secret>,
    /// `REGISTRY_FILE_PATH`: the registry inside the repository.
    pub file_path: String,
    /// `REGISTRY_REPO_WORKDIR`: the clone cache.
    pub workdir: PathBuf,
    /// `GITHUB_API_BASE`; `None`: derived from the repository's host.
    pub api_base: Option<String>,
}

impl RepoSettings {
    fn new(data_dir: &Path) -> RepoSettings {
        RepoSettings {
            bot_author_name: "lex-align bot".into(),
            bot_author_email: "lex-align@localhost".into(),
            repo_url: None,
            token: None,
            file_path: "registry.yml".into(),
            workdir: data_dir.join("registry-work"),
            api_base: None,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Config {
    pub bind_host: String,
    pub bind_port: u16,
    pub data_dir: PathBuf,
    pub database_path: PathBuf,
    /// `registry.yml` (or its compiled JSON); `None` → built-in default policy.
    pub registry_path: Option<PathBuf>,
    /// True when REGISTRY_PATH was set (not the data directory's default):
    /// only then may auto-selection pick `local_git`, so a daemon never
    /// commits into a repository it merely happens to sit in (a dotfiles
    /// HOME).
    pub registry_path_explicit: bool,
    /// `None` when nothing is configured: index lookups then report
    /// `upstream_error` (no index host is built in).
    pub index: Option<IndexSetting>,
    pub osv_url: Option<String>,
    pub offline_advisories: Option<PathBuf>,
    /// How an advisory without a score is weighed
    /// (`LEXALIGN_UNSCORED_ADVISORIES`; default `deny`).
    pub unscored_advisories: UnscoredPolicy,
    /// Where `advisories sync` and the daemon's re-sync download the OSV
    /// PyPI export (`LEXALIGN_ADVISORY_EXPORT_URL`); `None`: the URL of the
    /// last sync, else the OSV project's export.
    pub advisory_export_url: Option<String>,
    /// How often a synced export is downloaded again
    /// (`LEXALIGN_ADVISORY_SYNC_INTERVAL_HOURS`, default 24); `None`: never.
    pub advisory_sync_interval: Option<Duration>,
    pub fail_policy: FailPolicy,
    /// How hard audit writes sync. `Normal` (default): an acknowledged row
    /// survives a crash or `kill -9` of the daemon; `Full` also survives
    /// power loss, at one disk sync per group of concurrent requests.
    pub audit_sync: lex_align_store::Synchronous,
    pub evaluate_budget: Duration,
    pub proposer: ProposerChoice,
    /// `REGISTRY_PROPOSER=plugin:<name>`: this proposer plugin instead of
    /// [`Config::proposer`].
    pub proposer_plugin: Option<String>,
    /// Plugin directories and call timeout (`LEXALIGN_PLUGIN_DIRS`,
    /// `LEXALIGN_PLUGIN_TIMEOUT_MS`; docs/plugins.md).
    pub plugins: lex_align_plugin_host::HostSettings,
    /// `local_git` / `github` settings.
    pub repo: RepoSettings,
    /// Poll interval for the registry file (fallback to file watching);
    /// `None` disables polling.
    pub reload_interval: Option<Duration>,
    /// Watch the registry file with OS notifications.
    pub watch_registry: bool,
    pub webhook_secret: Option<String>,
    pub default_branch: String,
    pub license_cache_ttl: Duration,
    pub cve_cache_ttl: Duration,
    pub outbound_timeout: Duration,
    /// Accepted for compatibility (the scanner is another issue's work).
    pub cve_scan_interval_hours: f64,
    pub auth: crate::auth::AuthSettings,
    /// Larger request bodies get 413 (`LEXALIGN_MAX_BODY_BYTES`).
    pub max_body_bytes: usize,
    /// Signed verdicts' lifetime and periodic audit checkpoints.
    pub signing: crate::signing::SigningSettings,
    /// Team mode (`LEXALIGN_TEAM_URL`, …; docs/team.md).
    pub team: crate::team::TeamSettings,
}

/// A configuration problem, naming the variable and the fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{variable}: {message}")]
pub struct ConfigError {
    pub variable: &'static str,
    pub message: String,
}

fn err(variable: &'static str, message: impl Into<String>) -> ConfigError {
    ConfigError {
        variable,
        message: message.into(),
    }
}

impl Config {
    /// Defaults for tests and embedding: loopback, data under `data_dir`, no
    /// registry file, no upstreams configured.
    pub fn new(data_dir: impl Into<PathBuf>) -> Config {
        let data_dir = data_dir.into();
        Config {
            bind_host: "127.0.0.1".into(),
            bind_port: 8765,
            database_path: data_dir.join("lexalign.sqlite"),
            repo: RepoSettings::new(&data_dir),
            data_dir,
            registry_path: None,
            registry_path_explicit: false,
            index: None,
            osv_url: None,
            offline_advisories: None,
            unscored_advisories: UnscoredPolicy::Deny,
            advisory_export_url: None,
            advisory_sync_interval: Some(Duration::from_secs(24 * 3600)),
            fail_policy: FailPolicy::Open,
            audit_sync: lex_align_store::Synchronous::Normal,
            evaluate_budget: Duration::from_millis(4000),
            proposer: ProposerChoice::Auto,
            proposer_plugin: None,
            plugins: lex_align_plugin_host::HostSettings::default(),
            reload_interval: Some(Duration::from_secs(300)),
            watch_registry: true,
            webhook_secret: None,
            default_branch: "main".into(),
            license_cache_ttl: Duration::from_secs(604_800),
            cve_cache_ttl: Duration::from_secs(21_600),
            outbound_timeout: Duration::from_secs_f64(5.0),
            cve_scan_interval_hours: 24.0,
            auth: crate::auth::AuthSettings::default(),
            max_body_bytes: 1024 * 1024,
            signing: crate::signing::SigningSettings::default(),
            team: crate::team::TeamSettings::default(),
        }
    }

    /// Read the process environment (and the user's uv/pip settings for the
    /// index when `LEXALIGN_INDEX_URL` / `PYPI_API_URL` are unset).
    pub fn from_env() -> Result<Config, ConfigError> {
        let home = std::env::var_os("HOME").map(PathBuf::from);
        let cwd = std::env::current_dir().ok();
        Self::from_lookup(|k| std::env::var(k).ok(), home.as_deref(), cwd.as_deref())
    }

    /// As [`Config::from_env`] with an explicit variable source.
    pub fn from_lookup(
        get: impl Fn(&str) -> Option<String>,
        home: Option<&Path>,
        cwd: Option<&Path>,
    ) -> Result<Config, ConfigError> {
        // Empty values count as unset, like the original's pydantic settings
        // for optional strings.
        let var = |k: &str| {
            get(k)
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
        };

        let data_dir = match var("LEXALIGN_DATA_DIR") {
            Some(d) => PathBuf::from(d),
            None => match home {
                Some(h) => h.join(".lexalign"),
                None => {
                    return Err(err(
                        "LEXALIGN_DATA_DIR",
                        "HOME is not set; set LEXALIGN_DATA_DIR to the directory for the audit database",
                    ))
                }
            },
        };
        let mut c = Config::new(data_dir);

        if let Some(h) = var("BIND_HOST") {
            c.bind_host = h;
        }
        if let Some(p) = var("BIND_PORT") {
            c.bind_port = p.parse().map_err(|_| {
                err(
                    "BIND_PORT",
                    format!(
                        "{p:?} is not a port number; use an integer 0-65535, e.g. BIND_PORT=8765"
                    ),
                )
            })?;
        }
        if let Some(p) = var("DATABASE_PATH") {
            c.database_path = PathBuf::from(p);
        }
        // Unset: the data directory's registry.yml (laid down by quickstart),
        // so a daemon started by a client or editor uses the same policy.
        c.registry_path_explicit = var("REGISTRY_PATH").is_some();
        c.registry_path = var("REGISTRY_PATH").map(PathBuf::from).or_else(|| {
            let default = c.data_dir.join("registry.yml");
            default.is_file().then_some(default)
        });

        // Index: LEXALIGN_INDEX_URL, PYPI_API_URL, then the user's uv/pip settings.
        c.index = match discover_index(&|k: &str| get(k), home, cwd) {
            Some(mut found) => {
                let variable = if found.source == "PYPI_API_URL" {
                    "PYPI_API_URL"
                } else {
                    "LEXALIGN_INDEX_URL"
                };
                found.url = check_url(variable, &found.url)?;
                Some(found)
            }
            None => None,
        };

        c.osv_url = match (var("LEXALIGN_OSV_URL"), var("OSV_API_URL")) {
            (Some(u), _) => Some(check_url("LEXALIGN_OSV_URL", &u)?),
            (None, Some(u)) => Some(check_url("OSV_API_URL", &u)?),
            (None, None) => None,
        };
        if let Some(p) = var("LEXALIGN_OFFLINE_ADVISORIES") {
            let p = PathBuf::from(p);
            if !p.exists() {
                return Err(err(
                    "LEXALIGN_OFFLINE_ADVISORIES",
                    format!(
                        "{} does not exist; point it at a directory of OSV records or an OSV export zip",
                        p.display()
                    ),
                ));
            }
            c.offline_advisories = Some(p);
        }
        if let Some(p) = var("LEXALIGN_UNSCORED_ADVISORIES") {
            c.unscored_advisories = UnscoredPolicy::parse(&p).ok_or_else(|| {
                err(
                    "LEXALIGN_UNSCORED_ADVISORIES",
                    format!("{p:?} is not a policy; use `deny` (an advisory without a score counts as meeting the CVE threshold) or `provisional`"),
                )
            })?;
        }
        if let Some(u) = var("LEXALIGN_ADVISORY_EXPORT_URL") {
            c.advisory_export_url = Some(check_url("LEXALIGN_ADVISORY_EXPORT_URL", &u)?);
        }
        if let Some(h) = var("LEXALIGN_ADVISORY_SYNC_INTERVAL_HOURS") {
            let hours = h
                .parse::<f64>()
                .ok()
                .filter(|v| v.is_finite())
                .ok_or_else(|| {
                    err(
                        "LEXALIGN_ADVISORY_SYNC_INTERVAL_HOURS",
                        format!("{h:?} is not a number of hours, e.g. 24 (0 turns re-syncing off)"),
                    )
                })?;
            c.advisory_sync_interval =
                (hours > 0.0).then(|| Duration::from_secs_f64(hours * 3600.0));
        }
        if let Some(p) = var("LEXALIGN_FAIL_POLICY") {
            c.fail_policy = match p.to_ascii_lowercase().as_str() {
                "open" => FailPolicy::Open,
                "closed" => FailPolicy::Closed,
                _ => {
                    return Err(err(
                        "LEXALIGN_FAIL_POLICY",
                        format!("{p:?} is not a fail policy; use `open` or `closed`"),
                    ))
                }
            };
        }
        if let Some(p) = var("LEXALIGN_AUDIT_SYNC") {
            c.audit_sync = match p.to_ascii_lowercase().as_str() {
                "normal" => lex_align_store::Synchronous::Normal,
                "full" => lex_align_store::Synchronous::Full,
                _ => {
                    return Err(err(
                        "LEXALIGN_AUDIT_SYNC",
                        format!("{p:?} is not a sync mode; use `normal` (survives crashes) or `full` (also survives power loss)"),
                    ))
                }
            };
        }
        if let Some(ms) = var("LEXALIGN_EVALUATE_BUDGET_MS") {
            let n: u64 = ms.parse().ok().filter(|n| *n > 0).ok_or_else(|| {
                err(
                    "LEXALIGN_EVALUATE_BUDGET_MS",
                    format!("{ms:?} is not a positive number of milliseconds, e.g. 4000"),
                )
            })?;
            c.evaluate_budget = Duration::from_millis(n);
        }
        if let Some(name) = var("REGISTRY_PROPOSER")
            .as_deref()
            .and_then(|p| p.strip_prefix("plugin:"))
        {
            if !lex_align_plugin_host::valid_plugin_name(name) {
                return Err(err(
                    "REGISTRY_PROPOSER",
                    format!("plugin:{name:?}: a plugin name is 1-64 characters of [a-z0-9_-], e.g. REGISTRY_PROPOSER=plugin:gitlab"),
                ));
            }
            c.proposer_plugin = Some(name.to_string());
        } else if let Some(p) = var("REGISTRY_PROPOSER") {
            c.proposer = match p.as_str() {
                "log_only" => ProposerChoice::LogOnly,
                "local_file" => ProposerChoice::LocalFile,
                "local_git" => ProposerChoice::LocalGit,
                "github" => ProposerChoice::Github,
                other => {
                    return Err(err(
                        "REGISTRY_PROPOSER",
                        format!("Unknown REGISTRY_PROPOSER={other}; use `local_file`, `local_git`, `github` or `log_only` (or unset it to auto-detect)"),
                    ))
                }
            };
        }
        if let Some(b) = var("REGISTRY_DEFAULT_BRANCH") {
            c.default_branch = b;
        }
        repo_settings(&var, &mut c)?;
        if let Some(s) = var("REGISTRY_RELOAD_INTERVAL") {
            let secs = parse_secs("REGISTRY_RELOAD_INTERVAL", &s)?;
            c.reload_interval = (secs > 0.0).then(|| Duration::from_secs_f64(secs));
        }
        c.webhook_secret = var("REGISTRY_WEBHOOK_SECRET");
        if let Some(s) = var("LICENSE_CACHE_TTL") {
            c.license_cache_ttl = positive_secs("LICENSE_CACHE_TTL", &s)?;
        }
        if let Some(s) = var("CVE_CACHE_TTL") {
            c.cve_cache_ttl = positive_secs("CVE_CACHE_TTL", &s)?;
        }
        if let Some(s) = var("OUTBOUND_TIMEOUT") {
            c.outbound_timeout = positive_secs("OUTBOUND_TIMEOUT", &s)?;
        }
        if let Some(s) =
            var("LEXALIGN_CVE_SCAN_INTERVAL_HOURS").or_else(|| var("CVE_SCAN_INTERVAL_HOURS"))
        {
            // Fractional hours are fine (0.25 = every 15 minutes); 0 = off.
            let hours = s
                .trim()
                .parse::<f64>()
                .ok()
                .filter(|h| h.is_finite() && *h >= 0.0);
            c.cve_scan_interval_hours = hours.ok_or_else(|| {
                err(
                    "LEXALIGN_CVE_SCAN_INTERVAL_HOURS",
                    format!("{s:?} is not a number of hours >= 0 (e.g. 24, 0.5; 0 turns the re-scan off)"),
                )
            })?;
        }

        c.auth = crate::auth::AuthSettings::from_lookup(&var, parse_bool)?;
        c.plugins = lex_align_plugin_host::HostSettings::from_lookup(&var)
            .map_err(|e| err(e.variable, e.message))?;
        c.signing = crate::signing::SigningSettings::from_lookup(&var)?;
        c.team = crate::team::TeamSettings::from_lookup(&var)?;
        if let Some(n) = var("LEXALIGN_MAX_BODY_BYTES") {
            c.max_body_bytes = n.parse().ok().filter(|n| *n > 0).ok_or_else(|| {
                err(
                    "LEXALIGN_MAX_BODY_BYTES",
                    format!("{n:?} is not a positive number of bytes, e.g. 1048576"),
                )
            })?;
        }
        Ok(c)
    }

    /// Refuses to serve a non-loopback address to anonymous callers unless
    /// told to (`LEXALIGN_ALLOW_ANONYMOUS_NETWORK=1`).
    pub fn check_exposure(&self) -> Result<(), ConfigError> {
        if self.auth.enabled || self.auth.allow_anonymous_network || is_loopback(&self.bind_host) {
            return Ok(());
        }
        Err(err(
            "BIND_HOST",
            format!(
                "{} is reachable from the network but AUTH_ENABLED is off, so anyone could change policy; \
                 enable authentication (AUTH_ENABLED=true) or set LEXALIGN_ALLOW_ANONYMOUS_NETWORK=1",
                self.bind_host
            ),
        ))
    }

    /// The OSV export `lex-align advisories sync` keeps in the data directory.
    pub fn advisory_export_path(&self) -> PathBuf {
        lex_align_upstream::export::export_path(&self.data_dir)
    }

    pub fn bind_addr(&self) -> String {
        if self.bind_host.contains(':') && !self.bind_host.starts_with('[') {
            format!("[{}]:{}", self.bind_host, self.bind_port)
        } else {
            format!("{}:{}", self.bind_host, self.bind_port)
        }
    }
}

/// REGISTRY_REPO_URL, the token and the rest of the git settings. A
/// repository URL selects `github` unless REGISTRY_PROPOSER says otherwise
/// (server-ops.md §3).
fn repo_settings(var: &dyn Fn(&str) -> Option<String>, c: &mut Config) -> Result<(), ConfigError> {
    if !crate::proposer::valid_git_branch(&c.default_branch) {
        return Err(err(
            "REGISTRY_DEFAULT_BRANCH",
            format!(
                "{:?} is not a branch name git accepts, e.g. main",
                c.default_branch
            ),
        ));
    }
    let url = var("REGISTRY_REPO_URL");
    if c.proposer == ProposerChoice::Auto && url.is_some() {
        c.proposer = ProposerChoice::Github;
    }
    let github = c.proposer == ProposerChoice::Github;
    let r = &mut c.repo;
    if let Some(n) = var("REGISTRY_BOT_AUTHOR_NAME") {
        r.bot_author_name = n;
    }
    if let Some(e) = var("REGISTRY_BOT_AUTHOR_EMAIL") {
        r.bot_author_email = e;
    }
    if let Some(f) = var("REGISTRY_FILE_PATH") {
        r.file_path = crate::proposer::github::check_file_path(&f)
            .map_err(|m| err("REGISTRY_FILE_PATH", m))?;
    }
    if let Some(w) = var("REGISTRY_REPO_WORKDIR") {
        r.workdir = PathBuf::from(w);
    }
    if !github {
        return Ok(());
    }
    if let Some(u) = &url {
        r.repo_url = Some(
            crate::proposer::github::RepoUrl::parse(u).map_err(|m| err("REGISTRY_REPO_URL", m))?,
        );
    }
    // GITHUB_TOKEN / GH_TOKEN only when the repository itself is detected:
    // an explicit REGISTRY_REPO_URL takes its own token.
    let token = var("REGISTRY_REPO_TOKEN").or_else(|| {
        url.is_none()
            .then(|| var("GITHUB_TOKEN").or_else(|| var("GH_TOKEN")))
            .flatten()
    });
    let Some(token) = token else {
        return Err(err(
            "REGISTRY_REPO_TOKEN",
            "the github proposer needs a token that may push branches and open pull requests; \
             set REGISTRY_REPO_TOKEN (or unset REGISTRY_REPO_URL / REGISTRY_PROPOSER=github)",
        ));
    };
    if token
        .chars()
        .any(|ch| ch.is_control() || ch.is_whitespace())
    {
        // Never echo it: it would land in the log of a failed start.
        return Err(err(
            "REGISTRY_REPO_TOKEN",
            "the token contains whitespace or control characters; paste it again",
        ));
    }
    r.token = Some(Secret::new(token));
    if let Some(a) = var("GITHUB_API_BASE") {
        r.api_base = Some(check_url("GITHUB_API_BASE", &a)?);
    }
    if let Some(u) = &r.repo_url {
        if r.api_base.is_none() && u.default_api_base().is_none() {
            return Err(err(
                "GITHUB_API_BASE",
                format!(
                    "REGISTRY_REPO_URL {} names no GitHub host to derive the REST API from; \
                     set GITHUB_API_BASE, e.g. https://github.example.com/api/v3",
                    u.display()
                ),
            ));
        }
    }
    Ok(())
}

pub(crate) fn is_loopback(host: &str) -> bool {
    let h = host.trim_start_matches('[').trim_end_matches(']');
    h.eq_ignore_ascii_case("localhost")
        || h.parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.to_canonical().is_loopback())
}

fn check_url(variable: &'static str, url: &str) -> Result<String, ConfigError> {
    if url.starts_with("http://") || url.starts_with("https://") {
        Ok(url.trim_end_matches('/').to_string())
    } else {
        Err(err(
            variable,
            format!(
                "{url:?} is not an http(s) URL; give the full URL, e.g. http://127.0.0.1:8080/pypi"
            ),
        ))
    }
}

fn parse_secs(variable: &'static str, s: &str) -> Result<f64, ConfigError> {
    s.parse::<f64>()
        .ok()
        .filter(|v| v.is_finite())
        .ok_or_else(|| err(variable, format!("{s:?} is not a number of seconds")))
}

fn positive_secs(variable: &'static str, s: &str) -> Result<Duration, ConfigError> {
    let v = parse_secs(variable, s)?;
    if v <= 0.0 {
        return Err(err(
            variable,
            format!("{s:?} must be a positive number of seconds"),
        ));
    }
    Ok(Duration::from_secs_f64(v))
}

fn parse_bool(s: &str) -> Option<bool> {
    match s.to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" | "t" | "y" => Some(true),
        "0" | "false" | "no" | "off" | "f" | "n" => Some(false),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn cfg(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let m: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let home = tempfile::tempdir().unwrap();
        Config::from_lookup(|k| m.get(k).cloned(), Some(home.path()), Some(home.path()))
    }

    #[test]
    fn defaults_and_original_variables() {
        let c = cfg(&[
            ("BIND_HOST", "0.0.0.0"),
            ("BIND_PORT", "9000"),
            ("DATABASE_PATH", "/tmp/x.sqlite"),
            ("REGISTRY_PATH", "/tmp/registry.yml"),
            ("PYPI_API_URL", "http://127.0.0.1:1/pypi/"),
            ("OSV_API_URL", "http://127.0.0.1:2/v1/query"),
            ("REGISTRY_RELOAD_INTERVAL", "0"),
            ("OUTBOUND_TIMEOUT", "2.5"),
            ("AUTH_ENABLED", "false"),
            ("AUTH_BACKEND", "header"),
            ("LEXALIGN_CVE_SCAN_INTERVAL_HOURS", "12"),
        ])
        .unwrap();
        assert_eq!(c.bind_addr(), "0.0.0.0:9000");
        assert_eq!(c.database_path, PathBuf::from("/tmp/x.sqlite"));
        assert_eq!(c.registry_path, Some(PathBuf::from("/tmp/registry.yml")));
        assert_eq!(c.index.as_ref().unwrap().url, "http://127.0.0.1:1/pypi");
        assert_eq!(c.osv_url.as_deref(), Some("http://127.0.0.1:2/v1/query"));
        assert_eq!(c.reload_interval, None);
        assert_eq!(c.outbound_timeout, Duration::from_millis(2500));
        assert_eq!(c.evaluate_budget, Duration::from_millis(4000));
        assert_eq!(c.fail_policy, FailPolicy::Open);
        assert_eq!(c.cve_scan_interval_hours, 12.0);
    }

    #[test]
    fn cve_scan_interval_takes_fractional_hours_and_zero() {
        assert_eq!(cfg(&[]).unwrap().cve_scan_interval_hours, 24.0);
        let hours = |v: &str| {
            cfg(&[("LEXALIGN_CVE_SCAN_INTERVAL_HOURS", v)]).map(|c| c.cve_scan_interval_hours)
        };
        assert_eq!(hours("0").unwrap(), 0.0);
        assert_eq!(hours("0.25").unwrap(), 0.25);
        // The original's name still works.
        let c = cfg(&[("CVE_SCAN_INTERVAL_HOURS", "6")]).unwrap();
        assert_eq!(c.cve_scan_interval_hours, 6.0);
        for bad in ["-1", "soon", "inf", "NaN"] {
            let e = hours(bad).unwrap_err();
            assert_eq!(e.variable, "LEXALIGN_CVE_SCAN_INTERVAL_HOURS", "{bad}");
        }
    }

    #[test]
    fn advisory_settings() {
        let c = cfg(&[("LEXALIGN_DATA_DIR", "/tmp/lexdata")]).unwrap();
        assert_eq!(c.unscored_advisories, UnscoredPolicy::Deny);
        assert_eq!(c.advisory_export_url, None);
        assert_eq!(c.advisory_sync_interval, Some(Duration::from_secs(86_400)));
        assert_eq!(
            c.advisory_export_path(),
            PathBuf::from("/tmp/lexdata/advisories/osv-pypi.zip")
        );
        let c = cfg(&[
            ("LEXALIGN_UNSCORED_ADVISORIES", "Provisional"),
            (
                "LEXALIGN_ADVISORY_EXPORT_URL",
                "http://127.0.0.1:5/PyPI/all.zip",
            ),
            ("LEXALIGN_ADVISORY_SYNC_INTERVAL_HOURS", "0.5"),
        ])
        .unwrap();
        assert_eq!(c.unscored_advisories, UnscoredPolicy::Provisional);
        assert_eq!(
            c.advisory_export_url.as_deref(),
            Some("http://127.0.0.1:5/PyPI/all.zip")
        );
        assert_eq!(c.advisory_sync_interval, Some(Duration::from_secs(1800)));
        let c = cfg(&[("LEXALIGN_ADVISORY_SYNC_INTERVAL_HOURS", "0")]).unwrap();
        assert_eq!(c.advisory_sync_interval, None);
        for (var, value, needle) in [
            ("LEXALIGN_UNSCORED_ADVISORIES", "maybe", "`deny`"),
            ("LEXALIGN_ADVISORY_EXPORT_URL", "ftp://x/all.zip", "http(s)"),
            ("LEXALIGN_ADVISORY_SYNC_INTERVAL_HOURS", "daily", "hours"),
        ] {
            let e = cfg(&[(var, value)]).unwrap_err();
            assert_eq!(e.variable, var);
            assert!(e.message.contains(needle), "{e}");
        }
    }

    #[test]
    fn ours_override_the_originals() {
        let c = cfg(&[
            ("PYPI_API_URL", "http://127.0.0.1:1/pypi"),
            ("LEXALIGN_INDEX_URL", "http://127.0.0.1:3/simple"),
            ("OSV_API_URL", "http://127.0.0.1:2/v1/query"),
            ("LEXALIGN_OSV_URL", "http://127.0.0.1:4"),
            ("LEXALIGN_FAIL_POLICY", "closed"),
            ("LEXALIGN_EVALUATE_BUDGET_MS", "1500"),
            ("LEXALIGN_DATA_DIR", "/tmp/lexdata"),
            ("REGISTRY_PROPOSER", "log_only"),
        ])
        .unwrap();
        let index = c.index.unwrap();
        assert_eq!(index.url, "http://127.0.0.1:3/simple");
        assert_eq!(index.source, "LEXALIGN_INDEX_URL");
        assert_eq!(c.osv_url.as_deref(), Some("http://127.0.0.1:4"));
        assert_eq!(c.fail_policy, FailPolicy::Closed);
        assert_eq!(c.evaluate_budget, Duration::from_millis(1500));
        assert_eq!(
            c.database_path,
            PathBuf::from("/tmp/lexdata/lexalign.sqlite")
        );
        assert_eq!(c.proposer, ProposerChoice::LogOnly);
    }

    #[test]
    fn invalid_values_name_the_variable_and_the_fix() {
        type Case = (
            &'static [(&'static str, &'static str)],
            &'static str,
            &'static str,
        );
        let cases: &[Case] = &[
            (&[("BIND_PORT", "eighty")], "BIND_PORT", "integer"),
            (
                &[("LEXALIGN_FAIL_POLICY", "maybe")],
                "LEXALIGN_FAIL_POLICY",
                "`open` or `closed`",
            ),
            (
                &[("LEXALIGN_EVALUATE_BUDGET_MS", "0")],
                "LEXALIGN_EVALUATE_BUDGET_MS",
                "positive",
            ),
            (
                &[("REGISTRY_PROPOSER", "github")],
                "REGISTRY_REPO_TOKEN",
                "needs a token",
            ),
            (
                &[("REGISTRY_REPO_URL", "https://git.example/o/r.git")],
                "REGISTRY_REPO_TOKEN",
                "set REGISTRY_REPO_TOKEN",
            ),
            (
                &[("REGISTRY_PROPOSER", "acme:Thing")],
                "REGISTRY_PROPOSER",
                "Unknown REGISTRY_PROPOSER",
            ),
            (
                &[("AUTH_ENABLED", "true"), ("AUTH_BACKEND", "ldap")],
                "AUTH_BACKEND",
                "Unknown AUTH_BACKEND",
            ),
            (
                &[("AUTH_ENABLED", "true"), ("AUTH_BACKEND", "webhook")],
                "AUTH_VERIFY_URL",
                "needs AUTH_VERIFY_URL",
            ),
            (
                &[("LEXALIGN_MAX_BODY_BYTES", "0")],
                "LEXALIGN_MAX_BODY_BYTES",
                "positive",
            ),
            (
                &[("AUTH_ENABLED", "perhaps")],
                "AUTH_ENABLED",
                "true or false",
            ),
            (
                &[("OUTBOUND_TIMEOUT", "-1")],
                "OUTBOUND_TIMEOUT",
                "positive",
            ),
            (
                &[("LEXALIGN_INDEX_URL", "ftp://x")],
                "LEXALIGN_INDEX_URL",
                "http(s) URL",
            ),
            (
                &[("LEXALIGN_OFFLINE_ADVISORIES", "/nonexistent/osv")],
                "LEXALIGN_OFFLINE_ADVISORIES",
                "does not exist",
            ),
        ];
        for (vars, variable, fix) in cases {
            let e = cfg(vars).unwrap_err();
            assert_eq!(e.variable, *variable, "{vars:?}");
            assert!(e.to_string().contains(fix), "{vars:?}: {e}");
        }
        for backend in ["anonymous", "header", "apikey"] {
            assert!(cfg(&[("AUTH_ENABLED", "true"), ("AUTH_BACKEND", backend)]).is_ok());
        }
    }

    #[test]
    fn a_network_address_needs_authentication_or_consent() {
        let exposed = cfg(&[("BIND_HOST", "0.0.0.0")]).unwrap();
        let e = exposed.check_exposure().unwrap_err();
        assert_eq!(e.variable, "BIND_HOST");
        assert!(
            e.to_string().contains("LEXALIGN_ALLOW_ANONYMOUS_NETWORK=1"),
            "{e}"
        );
        assert!(cfg(&[
            ("BIND_HOST", "0.0.0.0"),
            ("LEXALIGN_ALLOW_ANONYMOUS_NETWORK", "1")
        ])
        .unwrap()
        .check_exposure()
        .is_ok());
        assert!(cfg(&[("BIND_HOST", "0.0.0.0"), ("AUTH_ENABLED", "true")])
            .unwrap()
            .check_exposure()
            .is_ok());
        for host in ["127.0.0.1", "127.0.0.2", "::1", "[::1]", "localhost"] {
            assert!(
                cfg(&[("BIND_HOST", host)])
                    .unwrap()
                    .check_exposure()
                    .is_ok(),
                "{host}"
            );
        }
        assert!(cfg(&[("BIND_HOST", "::")])
            .unwrap()
            .check_exposure()
            .is_err());
    }
}
