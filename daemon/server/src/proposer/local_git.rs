//! `local_git`: `local_file`, then a commit of the registry file (and only
//! that file: whatever else is staged stays staged, W26) in the repository
//! holding REGISTRY_PATH, authored by the bot.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use lex_align_engine::registry::{GlobalPolicies, Rule};

use super::git::{self, Git};
use super::{LocalFileProposer, ProposalContext, ProposalResult, Proposer, ProposerError};
use crate::config::RepoSettings;

pub struct LocalGitProposer {
    file: LocalFileProposer,
    path: PathBuf,
    root: PathBuf,
    /// REGISTRY_PATH relative to `root`, `/`-separated.
    relpath: String,
    git: Git,
    /// Write and commit as one step.
    lock: Mutex<()>,
}

impl LocalGitProposer {
    /// Needs git and REGISTRY_PATH inside a work tree (checked now, so a
    /// broken setup stops the start instead of failing every proposal).
    pub fn new(path: PathBuf, repo: &RepoSettings) -> anyhow::Result<LocalGitProposer> {
        git::version()
            .map_err(|e| anyhow::anyhow!("REGISTRY_PROPOSER=local_git needs git on PATH: {e}"))?;
        let dir = if path.is_dir() {
            anyhow::bail!(
                "REGISTRY_PATH {} is a directory; local_git needs the registry.yml inside a git work tree",
                path.display()
            )
        } else {
            super::parent(&path)
        };
        let root = git::work_tree_root(&dir).map_err(|e| {
            anyhow::anyhow!(
                "REGISTRY_PROPOSER=local_git needs REGISTRY_PATH inside a git work tree: {}",
                e.0
            )
        })?;
        let relpath = relative_to(&root, &dir, &path)?;
        Ok(LocalGitProposer {
            file: LocalFileProposer::new(path.clone()),
            path,
            root,
            relpath,
            git: Git::new().with_author(&repo.bot_author_name, &repo.bot_author_email),
            lock: Mutex::new(()),
        })
    }

    /// Stages and commits the registry file; HEAD when it has no change.
    fn commit(&self, message: &str) -> Result<(String, bool), ProposerError> {
        let rel = self.relpath.as_str();
        self.git.run(&self.root, &["add", "--", rel])?;
        let unchanged = self
            .git
            .check(&self.root, &["diff", "--cached", "--quiet", "--", rel])?;
        if !unchanged {
            self.git.run(
                &self.root,
                &["commit", "--quiet", "--no-verify", "-m", message, "--", rel],
            )?;
        }
        let sha = self.git.run(&self.root, &["rev-parse", "HEAD"])?;
        Ok((sha.trim().to_string(), !unchanged))
    }

    fn finish(
        &self,
        mut result: ProposalResult,
        message: &str,
    ) -> Result<ProposalResult, ProposerError> {
        let (sha, committed) = self.commit(message).map_err(|e| {
            ProposerError(format!(
                "{} (the change was written to {} but not committed)",
                e.0,
                self.path.display()
            ))
        })?;
        result.backend = "local_git".into();
        result.detail = if committed {
            format!("{} Committed as {}.", result.detail, short(&sha))
        } else {
            format!(
                "{} Nothing new to commit; HEAD is {}.",
                result.detail,
                short(&sha)
            )
        };
        result.commit_sha = Some(sha);
        Ok(result)
    }
}

impl Proposer for LocalGitProposer {
    fn name(&self) -> &'static str {
        "local_git"
    }
    fn class_name(&self) -> &'static str {
        "LocalGitProposer"
    }
    fn writes_registry(&self) -> bool {
        true
    }
    fn propose(&self, rule: &Rule, ctx: &ProposalContext) -> Result<ProposalResult, ProposerError> {
        let _guard = self.lock.lock().unwrap_or_else(|p| p.into_inner());
        let result = self.file.propose(rule, ctx)?;
        self.finish(result, &rule_message(rule, ctx))
    }
    fn propose_policies(
        &self,
        policies: &GlobalPolicies,
        ctx: &ProposalContext,
    ) -> Result<ProposalResult, ProposerError> {
        let _guard = self.lock.lock().unwrap_or_else(|p| p.into_inner());
        let result = self.file.propose_policies(policies, ctx)?;
        let message = format!(
            "lex-align: global policies (via {})\n\n{}",
            ctx.source,
            context_lines(ctx)
        );
        self.finish(result, &message)
    }
}

fn short(sha: &str) -> &str {
    &sha[..sha.len().min(12)]
}

/// server-ops.md §3: `lex-align: <name> → <status> (via <source>)`, the
/// context lines, then the rationale.
pub(crate) fn rule_message(rule: &Rule, ctx: &ProposalContext) -> String {
    let mut m = format!(
        "lex-align: {} → {} (via {})\n\nProject: {}\nRequester: {}\n",
        rule.name,
        rule.status.as_str(),
        ctx.source,
        ctx.project,
        ctx.requester
    );
    if let Some(agent) = agent(ctx) {
        m.push_str(&format!("Agent: {agent}\n"));
    }
    if let Some(r) = &rule.replacement {
        m.push_str(&format!("Replacement: {r}\n"));
    }
    if rule.min_version.is_some() || rule.max_version.is_some() {
        m.push_str(&format!(
            "Version constraint: {}..{}\n",
            rule.min_version.as_deref().unwrap_or(""),
            rule.max_version.as_deref().unwrap_or("")
        ));
    }
    m.push_str(&format!("\nRationale:\n{}\n", rationale(ctx)));
    m
}

fn context_lines(ctx: &ProposalContext) -> String {
    let mut m = format!("Project: {}\nRequester: {}\n", ctx.project, ctx.requester);
    if let Some(agent) = agent(ctx) {
        m.push_str(&format!("Agent: {agent}\n"));
    }
    m.push_str(&format!("\nRationale:\n{}\n", rationale(ctx)));
    m
}

pub(crate) fn agent(ctx: &ProposalContext) -> Option<String> {
    match (&ctx.agent_model, &ctx.agent_version) {
        (None, None) => None,
        (m, v) => Some(
            [m.as_deref(), v.as_deref()]
                .into_iter()
                .flatten()
                .collect::<Vec<_>>()
                .join(" "),
        ),
    }
}

pub(crate) fn rationale(ctx: &ProposalContext) -> &str {
    ctx.rationale
        .as_deref()
        .map(str::trim)
        .filter(|r| !r.is_empty())
        .unwrap_or("(none given)")
}

/// `path` relative to the work tree root, through the canonical directory
/// (the file itself may not exist yet; symlinked temp dirs differ).
fn relative_to(root: &Path, dir: &Path, path: &Path) -> anyhow::Result<String> {
    let root = root.canonicalize()?;
    let dir = dir.canonicalize()?;
    let name = path
        .file_name()
        .ok_or_else(|| anyhow::anyhow!("REGISTRY_PATH {} has no file name", path.display()))?;
    let rel = dir.join(name);
    let rel = rel.strip_prefix(&root).map_err(|_| {
        anyhow::anyhow!(
            "REGISTRY_PATH {} is not under the work tree {}",
            path.display(),
            root.display()
        )
    })?;
    Ok(rel
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join("/"))
}
