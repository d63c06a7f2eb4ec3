//! Proposers: where a registry proposal goes (server-ops.md §3).
//!
//! `log_only`, `local_file` (write registry.yml in place), `local_git`
//! (write and commit), `github` (branch, push, pull request). Operator
//! proposals go to whichever is configured; agents' approval requests reach
//! only a proposer that [`Proposer::reviews`] (a pull request is a request
//! for review, a file write would be self-approval, W1).

mod git;
pub mod github;
mod local_file;
mod local_git;
mod log_only;
pub mod review;

pub(crate) use git::valid_branch as valid_git_branch;
pub use github::GithubProposer;
pub use local_file::LocalFileProposer;
pub use local_git::LocalGitProposer;
pub use log_only::LogOnlyProposer;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use lex_align_engine::registry::{GlobalPolicies, Rule};
use serde::Serialize;

use crate::config::{Config, ProposerChoice};

/// Starting document when the registry file does not exist yet.
pub(crate) const EMPTY_REGISTRY: &str = "version: \"1\"\nglobal_policies: {}\npackages: {}\n";

/// Who proposes and why.
#[derive(Debug, Clone, Default)]
pub struct ProposalContext {
    /// `operator` (or `agent`).
    pub source: String,
    pub project: String,
    pub requester: String,
    pub rationale: Option<String>,
    pub agent_model: Option<String>,
    pub agent_version: Option<String>,
}

/// The `POST /registry/proposals` 200 body (http-api.md §6.3).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ProposalResult {
    pub backend: String,
    /// `opened | amended | applied | logged | failed`.
    pub status: String,
    pub url: Option<String>,
    pub branch: Option<String>,
    pub commit_sha: Option<String>,
    pub detail: String,
}

/// A recoverable proposer failure (502 on the operator route).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ProposerError(pub String);

pub trait Proposer: Send + Sync + 'static {
    /// `log_only` | `local_file` | `local_git` | `github`.
    fn name(&self) -> &'static str;
    /// The original's class name, used in the approval-requests 202 body.
    fn class_name(&self) -> &'static str;
    /// Blocking (file I/O): call from a blocking thread.
    fn propose(&self, rule: &Rule, ctx: &ProposalContext) -> Result<ProposalResult, ProposerError>;
    /// True when a successful proposal changed the live registry file, so the
    /// caller reloads at once instead of waiting for a poll (W24).
    fn writes_registry(&self) -> bool {
        false
    }
    /// True when a proposal is a change for humans to review (a pull
    /// request), not a write: only such a proposer also receives agents'
    /// approval requests (source `agent`, in the background; `review.rs`).
    /// A proposer that writes the live registry must keep `false`, or an
    /// agent could approve its own package (W1).
    fn reviews(&self) -> bool {
        false
    }
    /// New global policies (the registry workshop's policy editor). The
    /// default only logs them. Blocking, like [`Proposer::propose`].
    fn propose_policies(
        &self,
        policies: &GlobalPolicies,
        ctx: &ProposalContext,
    ) -> Result<ProposalResult, ProposerError> {
        tracing::info!(
            cve_threshold = policies.cve_threshold,
            unknown_license_policy = policies.unknown_license_policy.as_str(),
            requester = %ctx.requester,
            "global-policy proposal logged ({} proposer)",
            self.name()
        );
        Ok(ProposalResult {
            backend: self.name().into(),
            status: "logged".into(),
            url: None,
            branch: None,
            commit_sha: None,
            detail: "Logged the global-policy change. No registry was changed: set REGISTRY_PATH to a writable registry.yml \
                     (or REGISTRY_PROPOSER=local_file) to have proposals written."
                .into(),
        })
    }
}

/// What auto-selection picks and why (also shown by `check-config`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AutoChoice {
    pub backend: &'static str,
    pub why: String,
}

/// Selection per server-ops.md §3 with `REGISTRY_PROPOSER` unset (a
/// REGISTRY_REPO_URL already turned into `github` in the configuration):
/// an explicit REGISTRY_PATH inside a git work tree → `local_git`; a
/// writable registry directory → `local_file`; else `log_only`.
pub fn auto_backend(registry_path: Option<&Path>, explicit: bool) -> AutoChoice {
    let Some(p) = registry_path else {
        return AutoChoice {
            backend: "log_only",
            why: "REGISTRY_PATH is unset".into(),
        };
    };
    // The file's directory (or the path itself when it is one): proposals
    // write a temp file there and rename it over.
    let dir = if p.is_dir() {
        p.to_path_buf()
    } else {
        parent(p)
    };
    if explicit && dir.is_dir() {
        if let Ok(root) = git::work_tree_root(&dir) {
            return AutoChoice {
                backend: "local_git",
                why: format!(
                    "REGISTRY_PATH is inside the git work tree {}",
                    root.display()
                ),
            };
        }
    }
    if dir_writable(&dir) {
        return AutoChoice {
            backend: "local_file",
            why: format!("{} is writable", dir.display()),
        };
    }
    AutoChoice {
        backend: "log_only",
        why: format!("{} is not a writable directory", dir.display()),
    }
}

/// Builds the configured proposer once at startup. Git and GitHub
/// construction problems stop the start (fail closed: an operator who asked
/// for pull requests never silently gets file writes).
pub fn select(config: &Config) -> anyhow::Result<Arc<dyn Proposer>> {
    let registry_path = config.registry_path.as_deref();
    let choice = match config.proposer {
        ProposerChoice::Auto => {
            match auto_backend(registry_path, config.registry_path_explicit).backend {
                "local_git" => ProposerChoice::LocalGit,
                "local_file" => ProposerChoice::LocalFile,
                _ => {
                    tracing::warn!(
                        "proposals will only be logged: set REGISTRY_PATH to a writable registry.yml to have them written"
                    );
                    ProposerChoice::LogOnly
                }
            }
        }
        explicit => explicit,
    };
    Ok(match choice {
        ProposerChoice::Auto | ProposerChoice::LogOnly => Arc::new(LogOnlyProposer),
        ProposerChoice::LocalFile => match registry_path {
            Some(p) => Arc::new(LocalFileProposer::new(p.to_path_buf())),
            None => anyhow::bail!(
                "REGISTRY_PROPOSER=local_file needs REGISTRY_PATH: set it to the registry.yml proposals should be written to"
            ),
        },
        ProposerChoice::LocalGit => match registry_path {
            Some(p) => Arc::new(LocalGitProposer::new(p.to_path_buf(), &config.repo)?),
            None => anyhow::bail!(
                "REGISTRY_PROPOSER=local_git needs REGISTRY_PATH: set it to a registry.yml inside a git work tree"
            ),
        },
        ProposerChoice::Github => Arc::new(GithubProposer::new(config)?),
    })
}

pub(crate) fn parent(p: &Path) -> PathBuf {
    p.parent()
        .filter(|d| !d.as_os_str().is_empty())
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

/// Permission bits lie (root, ACLs, read-only mounts): try it.
fn dir_writable(dir: &Path) -> bool {
    if !dir.is_dir() {
        return false;
    }
    let probe = dir.join(format!(".lexalign-write-probe-{}", std::process::id()));
    match std::fs::File::create(&probe) {
        Ok(_) => {
            let _ = std::fs::remove_file(&probe);
            true
        }
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(choice: ProposerChoice, path: Option<&Path>, explicit: bool) -> Config {
        let mut c = Config::new(std::env::temp_dir().join("lexalign-unused"));
        c.proposer = choice;
        c.registry_path = path.map(Path::to_path_buf);
        c.registry_path_explicit = explicit;
        c
    }

    fn select(choice: ProposerChoice, path: Option<&Path>) -> anyhow::Result<Arc<dyn Proposer>> {
        super::select(&config(choice, path, true))
    }

    #[test]
    fn selection_follows_the_original_order() {
        let dir = tempfile::tempdir().unwrap();
        let yml = dir.path().join("registry.yml");
        // Writable directory, file not there yet → local_file.
        assert_eq!(
            select(ProposerChoice::Auto, Some(&yml)).unwrap().name(),
            "local_file"
        );
        // No registry path → log_only.
        assert_eq!(
            select(ProposerChoice::Auto, None).unwrap().name(),
            "log_only"
        );
        // Parent missing → log_only.
        let nowhere = dir.path().join("missing/registry.yml");
        assert_eq!(
            select(ProposerChoice::Auto, Some(&nowhere)).unwrap().name(),
            "log_only"
        );
        assert_eq!(
            select(ProposerChoice::LogOnly, Some(&yml))
                .unwrap()
                .class_name(),
            "LogOnlyProposer"
        );
        let e = select(ProposerChoice::LocalFile, None)
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("REGISTRY_PATH"), "{e}");
    }
}
