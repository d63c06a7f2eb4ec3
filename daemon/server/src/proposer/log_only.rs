//! `log_only`: logs the proposal, changes nothing.

use lex_align_engine::registry::Rule;

use super::{ProposalContext, ProposalResult, Proposer, ProposerError};

pub struct LogOnlyProposer;

impl Proposer for LogOnlyProposer {
    fn name(&self) -> &'static str {
        "log_only"
    }
    fn class_name(&self) -> &'static str {
        "LogOnlyProposer"
    }
    fn propose(&self, rule: &Rule, ctx: &ProposalContext) -> Result<ProposalResult, ProposerError> {
        tracing::info!(
            package = %rule.name,
            status = rule.status.as_str(),
            source = %ctx.source,
            project = %ctx.project,
            requester = %ctx.requester,
            "registry proposal logged (log_only proposer)"
        );
        Ok(ProposalResult {
            backend: "log_only".into(),
            status: "logged".into(),
            url: None,
            branch: None,
            commit_sha: None,
            detail: format!(
                "Logged proposal for {} → {}. No registry was changed: set REGISTRY_PATH to a writable registry.yml \
                 (or REGISTRY_PROPOSER=local_file) to have proposals written; or REGISTRY_REPO_URL (with REGISTRY_REPO_TOKEN) to have them opened as pull requests.",
                rule.name,
                rule.status.as_str()
            ),
        })
    }
}
