//! `github`: each proposal becomes a commit on the branch
//! `lex-align/approval/<normalized name>` of a clone kept in
//! REGISTRY_REPO_WORKDIR, pushed with `--force-with-lease`, then a pull
//! request through the REST API, or a comment on the one already open
//! (server-ops.md §3.1).
//!
//! Unlike the original: git talks to the host of REGISTRY_REPO_URL (any
//! GitHub Enterprise host, `file://` or a local path); the token reaches git
//! as an `http.<url>.extraHeader` in the environment, never in a URL, argv or
//! `.git/config`; git's stderr is redacted before it is surfaced; an
//! existing branch is fetched with an explicit refspec (the original's
//! shallow clone could not re-propose, W26); the registry edit keeps
//! comments; git and REST run under one lock, so two proposals for a package
//! never open two pull requests.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use base64::Engine as _;
use lex_align_engine::name::canonicalize;
use lex_align_engine::registry::{
    set_policies_in_yaml, upsert_rule_in_yaml, GlobalPolicies, Registry, Rule,
};
use serde_json::{json, Value};

use super::git::{self, Git};
use super::local_git::{agent, rationale};
use super::{ProposalContext, ProposalResult, Proposer, ProposerError, EMPTY_REGISTRY};
use crate::config::{Config, Secret};

/// Branches of rule proposals: `<prefix><normalized name>`.
pub const BRANCH_PREFIX: &str = "lex-align/approval/";
/// The branch of global-policy proposals.
pub const POLICIES_BRANCH: &str = "lex-align/policies";

const API_VERSION: &str = "2022-11-28";
/// How much of an API error body a detail quotes.
const API_QUOTE: usize = 400;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UrlKind {
    Https,
    /// Loopback only (a local test server): the token would travel in clear.
    Http,
    Ssh,
    /// `file://` or an absolute path (tests, mirrors).
    Local,
}

/// A checked REGISTRY_REPO_URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepoUrl {
    /// What git is given: the configured URL, which carries no credentials.
    pub git_url: String,
    pub kind: UrlKind,
    /// `host[:port]` (https, http, ssh).
    pub host: Option<String>,
    pub owner: String,
    pub repo: String,
}

const URL_FORMS: &str = "use https://<host>/<owner>/<repo>.git, git@<host>:<owner>/<repo>.git, \
     ssh://git@<host>/<owner>/<repo>.git, or a file:// URL / absolute path of a repository";

impl RepoUrl {
    pub fn parse(raw: &str) -> Result<RepoUrl, String> {
        let s = raw.trim();
        let shown = git::redact_userinfo(s);
        if s.contains("://") {
            let url = reqwest::Url::parse(s)
                .map_err(|e| format!("{shown:?} is not a URL ({e}); {URL_FORMS}"))?;
            let kind = match url.scheme() {
                "https" => UrlKind::Https,
                "http" => UrlKind::Http,
                "ssh" => UrlKind::Ssh,
                "file" => UrlKind::Local,
                other => {
                    return Err(format!(
                        "{shown:?}: scheme {other}:// is not supported; {URL_FORMS}"
                    ))
                }
            };
            if url.password().is_some()
                || (matches!(kind, UrlKind::Https | UrlKind::Http) && !url.username().is_empty())
            {
                // Not even the redacted form: the user meant to give a secret.
                return Err(
                    "the URL carries credentials; put the token in REGISTRY_REPO_TOKEN \
                     and give the repository URL without them"
                        .into(),
                );
            }
            let host = match kind {
                UrlKind::Local => None,
                _ => {
                    let h = url
                        .host_str()
                        .filter(|h| !h.is_empty())
                        .ok_or_else(|| format!("{shown:?} names no host; {URL_FORMS}"))?;
                    Some(match url.port() {
                        Some(p) => format!("{h}:{p}"),
                        None => h.to_string(),
                    })
                }
            };
            if kind == UrlKind::Http
                && !url
                    .host_str()
                    .is_some_and(|h| crate::config::is_loopback(h.trim_matches(['[', ']'])))
            {
                return Err(format!(
                    "{shown:?}: http:// would send the token in clear; use https://"
                ));
            }
            let (owner, repo) = owner_repo(url.path()).map_err(|m| format!("{shown:?}: {m}"))?;
            return Ok(RepoUrl {
                git_url: s.to_string(),
                kind,
                host,
                owner,
                repo,
            });
        }
        if s.starts_with('/') {
            let (owner, repo) = owner_repo(s).map_err(|m| format!("{shown:?}: {m}"))?;
            return Ok(RepoUrl {
                git_url: s.to_string(),
                kind: UrlKind::Local,
                host: None,
                owner,
                repo,
            });
        }
        // scp-like `[user@]host:owner/repo.git`.
        if let Some((left, path)) = s.split_once(':') {
            let host = left.rsplit_once('@').map_or(left, |(_, h)| h);
            if !host.is_empty()
                && !left.contains('/')
                && host
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-')
            {
                let (owner, repo) = owner_repo(path).map_err(|m| format!("{shown:?}: {m}"))?;
                return Ok(RepoUrl {
                    git_url: s.to_string(),
                    kind: UrlKind::Ssh,
                    host: Some(host.to_string()),
                    owner,
                    repo,
                });
            }
        }
        Err(format!("{shown:?} is not a repository URL; {URL_FORMS}"))
    }

    /// For messages (it never carries credentials).
    pub fn display(&self) -> &str {
        &self.git_url
    }

    fn hostname(&self) -> Option<&str> {
        self.host.as_deref().map(|h| {
            if h.starts_with('[') {
                h.split_once(']')
                    .map_or(h, |(a, _)| a.trim_start_matches('['))
            } else {
                h.split(':').next().unwrap_or(h)
            }
        })
    }

    /// The REST base when GITHUB_API_BASE is unset: GitHub's for its own
    /// host, `https://<host>/api/v3` for an Enterprise server; `None` for a
    /// local repository (then it must be configured).
    pub fn default_api_base(&self) -> Option<String> {
        let host = self.hostname()?;
        match self.kind {
            UrlKind::Local | UrlKind::Http => None,
            _ if host.eq_ignore_ascii_case("github.com")
                || host.eq_ignore_ascii_case("www.github.com") =>
            {
                Some("https://api.github.com".into())
            }
            _ => Some(format!("https://{host}/api/v3")),
        }
    }

    /// Where git may send the token: this scheme, host and port only.
    fn auth_scope(&self) -> Option<String> {
        match self.kind {
            UrlKind::Https => Some(format!("https://{}/", self.host.as_deref()?)),
            UrlKind::Http => Some(format!("http://{}/", self.host.as_deref()?)),
            _ => None,
        }
    }
}

/// The last two path segments as owner and repository (`.git` dropped).
fn owner_repo(path: &str) -> Result<(String, String), String> {
    let segs: Vec<&str> = path
        .trim_end_matches('/')
        .split('/')
        .filter(|s| !s.is_empty())
        .collect();
    if segs.len() < 2 {
        return Err(format!("the path names no <owner>/<repo>; {URL_FORMS}"));
    }
    let owner = segs[segs.len() - 2];
    let repo = segs[segs.len() - 1];
    let repo = repo.strip_suffix(".git").unwrap_or(repo);
    for (what, v) in [("owner", owner), ("repository", repo)] {
        let ok = !v.is_empty()
            && !v.starts_with('.')
            && v.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'));
        if !ok {
            return Err(format!(
                "{what} name {v:?} has characters GitHub does not allow (letters, digits, `.`, `-`, `_`)"
            ));
        }
    }
    Ok((owner.to_string(), repo.to_string()))
}

/// REGISTRY_FILE_PATH: relative, inside the repository.
pub fn check_file_path(p: &str) -> Result<String, String> {
    let p = p.trim().trim_start_matches("./");
    let ok = !p.is_empty()
        && !p.starts_with('/')
        && !p.contains('\\')
        && p.split('/')
            .all(|seg| !seg.is_empty() && seg != "." && seg != ".." && seg != ".git");
    if ok {
        Ok(p.to_string())
    } else {
        Err(format!(
            "{p:?} is not a path inside the repository; give it relative to the repository root, e.g. registry.yml or policy/registry.yml"
        ))
    }
}

pub struct GithubProposer {
    url: RepoUrl,
    api: String,
    token: Secret,
    file_path: String,
    default_branch: String,
    clone_dir: PathBuf,
    git: Git,
    http: reqwest::Client,
    rt: Runtime,
    /// git work, REST lookups and creation as one step.
    lock: Mutex<()>,
}

/// The runtime REST calls run on: the daemon's, else (a proposer built
/// outside one) a small private one.
enum Runtime {
    Shared(tokio::runtime::Handle),
    Own(tokio::runtime::Runtime),
}

impl Runtime {
    fn block_on<F: std::future::Future>(&self, f: F) -> F::Output {
        match self {
            Runtime::Shared(h) => h.block_on(f),
            Runtime::Own(rt) => rt.block_on(f),
        }
    }
}

/// What one proposal changes and how it is described.
struct Change<'a> {
    branch: String,
    /// What the change is about in details (`the rule for foo`).
    subject: String,
    edit: &'a dyn Fn(&str) -> Result<String, ProposerError>,
    commit_message: String,
    title: String,
    body: String,
    comment: String,
}

impl GithubProposer {
    pub fn new(config: &Config) -> anyhow::Result<GithubProposer> {
        let repo = &config.repo;
        git::version()
            .map_err(|e| anyhow::anyhow!("the github proposer needs git on PATH: {e}"))?;
        let url = match &repo.repo_url {
            Some(u) => u.clone(),
            None => detect_origin(config.registry_path.as_deref())?,
        };
        let api = match (&repo.api_base, url.default_api_base()) {
            (Some(a), _) => a.clone(),
            (None, Some(d)) => d,
            (None, None) => anyhow::bail!(
                "GITHUB_API_BASE: the repository {} names no GitHub host; set GITHUB_API_BASE to its REST API",
                url.display()
            ),
        };
        let token = repo.token.clone().ok_or_else(|| {
            anyhow::anyhow!("REGISTRY_REPO_TOKEN: the github proposer needs a token")
        })?;
        std::fs::create_dir_all(&repo.workdir).map_err(|e| {
            anyhow::anyhow!(
                "REGISTRY_REPO_WORKDIR: cannot create {}: {e}",
                repo.workdir.display()
            )
        })?;
        let clone_dir = repo.workdir.join(format!("{}__{}", url.owner, url.repo));
        let mut git = Git::new().with_author(&repo.bot_author_name, &repo.bot_author_email);
        if let Some(scope) = url.auth_scope() {
            let basic = base64::engine::general_purpose::STANDARD
                .encode(format!("x-access-token:{}", token.expose()));
            git = git.with_auth_header(
                &scope,
                Secret::new(format!("Basic {basic}")),
                &[token.expose(), &basic],
            );
        } else {
            // ssh and local remotes authenticate without it; still never
            // let it through in a message.
            git = git.with_secrets(&[token.expose()]);
        }
        let http = reqwest::Client::builder()
            .timeout(config.outbound_timeout.max(Duration::from_secs(5)))
            .user_agent(concat!("lex-align/", env!("CARGO_PKG_VERSION")))
            // The bearer header must not follow a redirect to another host.
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        let rt = match tokio::runtime::Handle::try_current() {
            Ok(h) => Runtime::Shared(h),
            Err(_) => Runtime::Own(
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()?,
            ),
        };
        tracing::info!(
            repository = url.display(),
            api = %api,
            file = %repo.file_path,
            "github proposer: pull requests against {}",
            config.default_branch
        );
        Ok(GithubProposer {
            url,
            api: api.trim_end_matches('/').to_string(),
            token,
            file_path: repo.file_path.clone(),
            default_branch: config.default_branch.clone(),
            clone_dir,
            git,
            http,
            rt,
            lock: Mutex::new(()),
        })
    }

    /// The clone, current with the default branch (cloned on first use).
    fn refresh_clone(&self) -> Result<(), ProposerError> {
        let dir = &self.clone_dir;
        let default = self.default_branch.as_str();
        if !dir.join(".git").exists() {
            if dir.exists() {
                std::fs::remove_dir_all(dir).map_err(|e| {
                    ProposerError(format!(
                        "git operation failed: cannot clear {}: {e}",
                        dir.display()
                    ))
                })?;
            }
            let parent = super::parent(dir);
            let target = dir.to_string_lossy().into_owned();
            self.git.run(
                &parent,
                &[
                    "clone",
                    "--quiet",
                    "--no-tags",
                    "--depth",
                    "1",
                    "--branch",
                    default,
                    "--",
                    &self.url.git_url,
                    &target,
                ],
            )?;
        } else {
            // A changed REGISTRY_REPO_URL with the same owner/repo.
            self.git
                .run(dir, &["remote", "set-url", "origin", &self.url.git_url])?;
        }
        self.fetch_branch(default)
    }

    /// A shallow fetch of one remote branch into `origin/<branch>`.
    fn fetch_branch(&self, branch: &str) -> Result<(), ProposerError> {
        let spec = format!("+refs/heads/{branch}:refs/remotes/origin/{branch}");
        self.git.run(
            &self.clone_dir,
            &[
                "fetch",
                "--quiet",
                "--no-tags",
                "--depth",
                "1",
                "origin",
                &spec,
            ],
        )?;
        Ok(())
    }

    /// The branch's commit on the remote, if it exists.
    fn remote_branch(&self, branch: &str) -> Result<Option<String>, ProposerError> {
        let out = self.git.run(
            &self.clone_dir,
            &[
                "ls-remote",
                "--heads",
                "origin",
                &format!("refs/heads/{branch}"),
            ],
        )?;
        Ok(out
            .lines()
            .find_map(|l| l.split_whitespace().next())
            .map(str::to_string))
    }

    fn rev(&self, what: &str) -> Result<String, ProposerError> {
        Ok(self
            .git
            .run(&self.clone_dir, &["rev-parse", what])?
            .trim()
            .to_string())
    }

    fn propose_change(&self, change: Change<'_>) -> Result<ProposalResult, ProposerError> {
        let _guard = self.lock.lock().unwrap_or_else(|p| p.into_inner());
        let dir = &self.clone_dir;
        let branch = change.branch.as_str();
        self.refresh_clone()?;
        let existing = self.remote_branch(branch)?;
        let start = match &existing {
            Some(_) => {
                self.fetch_branch(branch)?;
                format!("origin/{branch}")
            }
            None => format!("origin/{}", self.default_branch),
        };
        self.git.run(
            dir,
            &["checkout", "--quiet", "--force", "-B", branch, &start],
        )?;
        self.git.run(dir, &["clean", "--quiet", "-fdx"])?;

        let file = dir.join(&self.file_path);
        let current = match std::fs::read_to_string(&file) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => EMPTY_REGISTRY.to_string(),
            Err(e) => {
                return Err(ProposerError(format!(
                    "Failed reading {} in the clone of {}: {e}",
                    self.file_path,
                    self.url.display()
                )))
            }
        };
        let updated = (change.edit)(&current)?;

        if updated == current {
            if existing.is_none() {
                let sha = self.rev("HEAD")?;
                return Ok(ProposalResult {
                    backend: "github".into(),
                    status: "applied".into(),
                    url: None,
                    branch: None,
                    commit_sha: Some(sha),
                    detail: format!(
                        "{} already has {}; nothing to propose.",
                        self.default_branch, change.subject
                    ),
                });
            }
            let sha = self.rev("HEAD")?;
            return self.rest(&change, sha, false);
        }

        if let Some(parent) = file.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|e| ProposerError(format!("Failed writing {}: {e}", self.file_path)))?;
        }
        std::fs::write(&file, &updated)
            .map_err(|e| ProposerError(format!("Failed writing {}: {e}", self.file_path)))?;
        let rel = self.file_path.as_str();
        self.git.run(dir, &["add", "--", rel])?;
        self.git.run(
            dir,
            &[
                "commit",
                "--quiet",
                "--no-verify",
                "-m",
                &change.commit_message,
                "--",
                rel,
            ],
        )?;
        let sha = self.rev("HEAD")?;
        // The lease: the branch is where we saw it (or still absent), so a
        // push made meanwhile by someone else is never overwritten.
        let lease = format!(
            "--force-with-lease=refs/heads/{branch}:{}",
            existing.as_deref().unwrap_or("")
        );
        self.git.run(
            dir,
            &[
                "push",
                "--quiet",
                "--porcelain",
                &lease,
                "origin",
                &format!("HEAD:refs/heads/{branch}"),
            ],
        )?;
        tracing::info!(branch, commit = %sha, "github proposer: pushed");
        self.rest(&change, sha, true)
    }

    /// The pull request side: comment on the open one, or open one.
    fn rest(
        &self,
        change: &Change<'_>,
        sha: String,
        pushed: bool,
    ) -> Result<ProposalResult, ProposerError> {
        let branch = change.branch.clone();
        let done = self.rt.block_on(async {
            let open = self.open_pull(&branch).await?;
            match open {
                Some((number, url)) => {
                    self.api_call(
                        reqwest::Method::POST,
                        &format!("issues/{number}/comments"),
                        Some(json!({"body": change.comment})),
                    )
                    .await?;
                    let detail = if pushed {
                        format!("Pushed an additional commit and commented on PR #{number}.")
                    } else {
                        format!(
                            "Branch already proposes this rule; no change pushed. Commented on PR #{number}."
                        )
                    };
                    Ok::<_, ProposerError>(("amended", url, detail))
                }
                None => {
                    let pr = self
                        .api_call(
                            reqwest::Method::POST,
                            "pulls",
                            Some(json!({
                                "title": change.title,
                                "head": branch,
                                "base": self.default_branch,
                                "body": change.body,
                                "maintainer_can_modify": true,
                            })),
                        )
                        .await?;
                    let number = pr.get("number").and_then(Value::as_u64).unwrap_or(0);
                    let url = pr
                        .get("html_url")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_string();
                    Ok(("opened", url, format!("Opened PR #{number}.")))
                }
            }
        });
        let (status, url, detail) = done.map_err(|e| {
            if pushed {
                ProposerError(format!("{} (branch {branch} was pushed at {sha})", e.0))
            } else {
                e
            }
        })?;
        Ok(ProposalResult {
            backend: "github".into(),
            status: status.into(),
            url: Some(url).filter(|u| !u.is_empty()),
            branch: Some(branch),
            commit_sha: Some(sha),
            detail,
        })
    }

    async fn open_pull(&self, branch: &str) -> Result<Option<(u64, String)>, ProposerError> {
        let head = format!("{}:{branch}", self.url.owner);
        let query = serde_urlencoded::to_string([
            ("state", "open"),
            ("head", head.as_str()),
            ("per_page", "1"),
        ])
        .unwrap_or_default();
        let list = self
            .api_call(reqwest::Method::GET, &format!("pulls?{query}"), None)
            .await?;
        let Some(first) = list.as_array().and_then(|a| a.first()) else {
            if list.is_array() {
                return Ok(None);
            }
            return Err(ProposerError(format!(
                "GitHub API GET {} answered something other than a list of pull requests",
                self.repo_path("pulls")
            )));
        };
        let number = first.get("number").and_then(Value::as_u64).ok_or_else(|| {
            ProposerError("GitHub API: an open pull request without a number".into())
        })?;
        let url = first
            .get("html_url")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        Ok(Some((number, url)))
    }

    fn repo_path(&self, rest: &str) -> String {
        format!("/repos/{}/{}/{rest}", self.url.owner, self.url.repo)
    }

    /// One REST call with the spec's headers; ≥ 400 is a ProposerError
    /// naming the call and GitHub's message (never the token).
    async fn api_call(
        &self,
        method: reqwest::Method,
        rest: &str,
        body: Option<Value>,
    ) -> Result<Value, ProposerError> {
        let path = self.repo_path(rest);
        let shown = path.split('?').next().unwrap_or(&path).to_string();
        let mut req = self
            .http
            .request(method.clone(), format!("{}{path}", self.api))
            .bearer_auth(self.token.expose())
            .header(reqwest::header::ACCEPT, "application/vnd.github+json")
            .header("X-GitHub-Api-Version", API_VERSION);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.map_err(|e| {
            ProposerError(self.git.redact(&format!(
                "GitHub API {method} {shown} failed: {}",
                e.without_url()
            )))
        })?;
        let status = resp.status();
        let text = resp.text().await.unwrap_or_default();
        let value: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        if status.as_u16() >= 400 || status.is_redirection() {
            let mut message = value
                .get("message")
                .and_then(Value::as_str)
                .map(str::to_string)
                .unwrap_or_else(|| text.trim().to_string());
            if let Some(errors) = value.get("errors").and_then(Value::as_array) {
                let extra: Vec<String> = errors
                    .iter()
                    .map(|e| {
                        e.get("message")
                            .and_then(Value::as_str)
                            .map(str::to_string)
                            .unwrap_or_else(|| e.to_string())
                    })
                    .collect();
                if !extra.is_empty() {
                    message = format!("{message} ({})", extra.join("; "));
                }
            }
            if message.len() > API_QUOTE {
                let mut cut = API_QUOTE;
                while !message.is_char_boundary(cut) {
                    cut -= 1;
                }
                message = format!("{}…", &message[..cut]);
            }
            return Err(ProposerError(self.git.redact(&format!(
                "GitHub API {method} {shown} answered {}: {message}",
                status.as_u16()
            ))));
        }
        Ok(value)
    }
}

impl Proposer for GithubProposer {
    fn name(&self) -> &'static str {
        "github"
    }
    fn class_name(&self) -> &'static str {
        "GitHubProposer"
    }
    fn reviews(&self) -> bool {
        true
    }
    fn propose(&self, rule: &Rule, ctx: &ProposalContext) -> Result<ProposalResult, ProposerError> {
        let branch = format!("{BRANCH_PREFIX}{}", canonicalize(&rule.name));
        if !git::valid_branch(&branch) {
            return Err(ProposerError(format!(
                "{:?} cannot be part of a branch name",
                rule.name
            )));
        }
        let edit = |text: &str| {
            let merged = upsert_rule_in_yaml(text, rule).map_err(|e| {
                ProposerError(format!("Proposed rule failed validation: {}", e.located()))
            })?;
            Registry::from_yaml(&merged).map_err(|e| {
                ProposerError(format!("Proposed rule failed validation: {}", e.located()))
            })?;
            Ok(merged)
        };
        let status = rule.status.as_str();
        let change = Change {
            branch,
            subject: format!("this rule for {}", rule.name),
            edit: &edit,
            commit_message: commit_message(
                &format!(
                    "lex-align: classify {} as {status} (via {})",
                    rule.name, ctx.source
                ),
                ctx,
            ),
            title: format!("lex-align: classify `{}` as {status}", rule.name),
            body: pr_body(rule, ctx, &self.file_path, &self.default_branch),
            comment: comment_body(&format!("`{}` as {status}", md_code(&rule.name)), ctx),
        };
        self.propose_change(change)
    }
    fn propose_policies(
        &self,
        policies: &GlobalPolicies,
        ctx: &ProposalContext,
    ) -> Result<ProposalResult, ProposerError> {
        let edit = |text: &str| {
            set_policies_in_yaml(text, policies).map_err(|e| {
                ProposerError(format!(
                    "Proposed policies failed validation: {}",
                    e.located()
                ))
            })
        };
        let change = Change {
            branch: POLICIES_BRANCH.into(),
            subject: "these global policies".into(),
            edit: &edit,
            commit_message: commit_message(
                &format!("lex-align: global policies (via {})", ctx.source),
                ctx,
            ),
            title: "lex-align: change the global policies".into(),
            body: format!(
                "lex-align proposes new `global_policies` for `{}`.\n\n{}\n### Rationale\n\n{}\n\n{}",
                md_code(&self.file_path),
                context_table(ctx),
                quote(rationale(ctx)),
                edit_note(&self.file_path, &self.default_branch),
            ),
            comment: comment_body("new global policies", ctx),
        };
        self.propose_change(change)
    }
}

/// `origin` of the repository holding REGISTRY_PATH (REGISTRY_PROPOSER=github
/// without REGISTRY_REPO_URL).
fn detect_origin(registry_path: Option<&Path>) -> anyhow::Result<RepoUrl> {
    let Some(p) = registry_path else {
        anyhow::bail!(
            "REGISTRY_REPO_URL: REGISTRY_PROPOSER=github needs the repository; set REGISTRY_REPO_URL \
             (or REGISTRY_PATH inside a clone whose origin is it)"
        );
    };
    let dir = if p.is_dir() {
        p.to_path_buf()
    } else {
        super::parent(p)
    };
    let out = Git::new()
        .run(&dir, &["remote", "get-url", "origin"])
        .map_err(|e| {
            anyhow::anyhow!(
                "REGISTRY_REPO_URL is unset and the origin of {} cannot be read ({}); set REGISTRY_REPO_URL",
                dir.display(),
                e.0
            )
        })?;
    RepoUrl::parse(out.trim()).map_err(|m| {
        anyhow::anyhow!(
            "REGISTRY_REPO_URL is unset and the origin of {} is unusable: {m}",
            dir.display()
        )
    })
}

fn commit_message(first: &str, ctx: &ProposalContext) -> String {
    let mut m = format!(
        "{first}\n\nProject: {}\nRequester: {}\n",
        ctx.project, ctx.requester
    );
    if let Some(a) = agent(ctx) {
        m.push_str(&format!("Agent: {a}\n"));
    }
    m.push_str(&format!("\nRationale:\n{}\n", rationale(ctx)));
    m
}

/// Text from agents and callers goes into Markdown that people read: no
/// table breaks, no @-mentions that would notify teams.
fn md_cell(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('|', "\\|")
        .replace(['\r', '\n'], " ")
        .replace('@', "&#64;")
}

fn md_code(s: &str) -> String {
    s.replace('`', "'")
}

fn quote(s: &str) -> String {
    s.lines()
        .map(|l| format!("> {}", l.replace('@', "&#64;")))
        .collect::<Vec<_>>()
        .join("\n")
}

fn context_table(ctx: &ProposalContext) -> String {
    table(context_table_rows(ctx))
}

fn table(rows: Vec<(&str, String)>) -> String {
    let mut t = String::from("| | |\n|---|---|\n");
    for (k, v) in rows {
        t.push_str(&format!("| {k} | {} |\n", md_cell(&v)));
    }
    t
}

fn edit_note(file: &str, base: &str) -> String {
    format!(
        "_Opened by lex-align. The proposed status may be edited on this branch before merging; \
         merging applies the change to `{}` on `{}`._",
        md_code(file),
        md_code(base)
    )
}

fn pr_body(rule: &Rule, ctx: &ProposalContext, file: &str, base: &str) -> String {
    let mut rows: Vec<(&str, String)> = vec![
        ("Package", format!("`{}`", md_code(&rule.name))),
        ("Proposed status", format!("`{}`", rule.status.as_str())),
    ];
    rows.extend(context_table_rows(ctx));
    if let Some(r) = &rule.replacement {
        rows.push(("Replacement", format!("`{}`", md_code(r))));
    }
    if let Some(v) = &rule.min_version {
        rows.push(("Minimum version", format!("`{}`", md_code(v))));
    }
    if let Some(v) = &rule.max_version {
        rows.push(("Maximum version (exclusive)", format!("`{}`", md_code(v))));
    }
    if let Some(r) = &rule.reason {
        rows.push(("Reason", r.clone()));
    }
    let t = table(rows);
    format!(
        "lex-align proposes a registry rule for `{}`.\n\n{t}\n### Rationale\n\n{}\n\n{}",
        md_code(&rule.name),
        quote(rationale(ctx)),
        edit_note(file, base)
    )
}

fn context_table_rows(ctx: &ProposalContext) -> Vec<(&'static str, String)> {
    vec![
        ("Source", ctx.source.clone()),
        ("Project", ctx.project.clone()),
        ("Requester", ctx.requester.clone()),
        ("Agent", agent(ctx).unwrap_or_else(|| "—".into())),
    ]
}

fn comment_body(what: &str, ctx: &ProposalContext) -> String {
    format!(
        "lex-align: another proposal of {what} (via {}).\n\n{}\n{}",
        md_cell(&ctx.source),
        context_table(ctx),
        quote(rationale(ctx))
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repository_urls() {
        let u = RepoUrl::parse("https://github.com/acme/registry.git").unwrap();
        assert_eq!(
            (u.kind, u.host.as_deref(), u.owner.as_str(), u.repo.as_str()),
            (UrlKind::Https, Some("github.com"), "acme", "registry")
        );
        assert_eq!(
            u.default_api_base().as_deref(),
            Some("https://api.github.com")
        );
        assert_eq!(u.auth_scope().as_deref(), Some("https://github.com/"));

        let u = RepoUrl::parse("https://ghe.example:8443/team/policy.registry/").unwrap();
        assert_eq!(
            (u.owner.as_str(), u.repo.as_str()),
            ("team", "policy.registry")
        );
        assert_eq!(
            u.default_api_base().as_deref(),
            Some("https://ghe.example/api/v3")
        );
        assert_eq!(u.auth_scope().as_deref(), Some("https://ghe.example:8443/"));

        let u = RepoUrl::parse("git@ghe.example:team/reg.git").unwrap();
        assert_eq!(
            (u.kind, u.host.as_deref(), u.repo.as_str()),
            (UrlKind::Ssh, Some("ghe.example"), "reg")
        );
        assert_eq!(u.auth_scope(), None);

        let u = RepoUrl::parse("file:///srv/git/acme/registry.git").unwrap();
        assert_eq!((u.kind, u.owner.as_str()), (UrlKind::Local, "acme"));
        assert_eq!(u.default_api_base(), None);
        let u = RepoUrl::parse("/srv/git/acme/registry.git").unwrap();
        assert_eq!((u.kind, u.repo.as_str()), (UrlKind::Local, "registry"));
        assert!(RepoUrl::parse("http://127.0.0.1:9/o/r.git").is_ok());
    }

    #[test]
    fn bad_repository_urls_never_echo_credentials() {
        for (bad, needle) in [
            (
                "https://x-access-token:ghp_SECRET@github.com/o/r.git",
                "credentials",
            ),
            ("https://ghp_SECRET@github.com/o/r.git", "credentials"),
            ("http://github.com/o/r.git", "in clear"),
            ("https://github.com/onlyowner", "<owner>/<repo>"),
            ("ftp://host/o/r", "not supported"),
            ("registry", "not a repository URL"),
            ("https://github.com/o/r%20x", "characters"),
        ] {
            let e = RepoUrl::parse(bad).unwrap_err();
            assert!(e.contains(needle), "{bad}: {e}");
            assert!(!e.contains("SECRET"), "{e}");
        }
    }

    #[test]
    fn file_paths_stay_inside_the_repository() {
        assert_eq!(
            check_file_path("policy/registry.yml").unwrap(),
            "policy/registry.yml"
        );
        assert_eq!(check_file_path("./registry.yml").unwrap(), "registry.yml");
        for bad in [
            "/etc/passwd",
            "../x.yml",
            "a/../../b",
            ".git/config",
            "",
            "a//b",
        ] {
            assert!(check_file_path(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn markdown_from_callers_cannot_break_out() {
        assert_eq!(md_cell("a|b\n@team"), "a\\|b &#64;team");
        assert_eq!(quote("line 1\n@org/all"), "> line 1\n> &#64;org/all");
    }
}
