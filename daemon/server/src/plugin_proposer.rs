//! `REGISTRY_PROPOSER=plugin:<name>`: a proposer plugin (docs/plugins.md)
//! behind the [`Proposer`] trait. Kept apart from the built-in proposers.
//!
//! Every failure of the plugin (an error answer, a panic, a timeout, an
//! answer that breaks the contract) is a [`ProposerError`]: the operator
//! route answers 502 with it, and the daemon serves on.

use lex_align_engine::registry::Rule;
use lex_align_plugin_host::{
    Answer, CallError, Op, PluginHandle, ProposalContext as WireContext, ProposeCall, ProposedRule,
};

use crate::proposer::{ProposalContext, ProposalResult, Proposer, ProposerError};

pub struct PluginProposer {
    handle: PluginHandle,
    /// `plugin:<name>`, for the life of the process (the trait wants a
    /// `'static` name; one small string per selected plugin).
    backend: &'static str,
}

impl PluginProposer {
    pub fn new(handle: PluginHandle) -> PluginProposer {
        let backend: &'static str = Box::leak(format!("plugin:{}", handle.name()).into_boxed_str());
        PluginProposer { handle, backend }
    }
}

/// The rule and context as the built-in proposers receive them.
fn propose_call(rule: &Rule, ctx: &ProposalContext) -> ProposeCall {
    ProposeCall {
        rule: ProposedRule {
            name: rule.name.clone(),
            status: rule.status.as_str().to_string(),
            reason: rule.reason.clone(),
            replacement: rule.replacement.clone(),
            min_version: rule.min_version.clone(),
            max_version: rule.max_version.clone(),
            expires: rule.expires_text(),
            owner: rule.owner.clone(),
        },
        context: WireContext {
            source: ctx.source.clone(),
            project: ctx.project.clone(),
            requester: ctx.requester.clone(),
            rationale: ctx.rationale.clone(),
            agent_model: ctx.agent_model.clone(),
            agent_version: ctx.agent_version.clone(),
        },
    }
}

impl Proposer for PluginProposer {
    fn name(&self) -> &'static str {
        self.backend
    }
    fn class_name(&self) -> &'static str {
        "PluginProposer"
    }
    /// A plugin proposer opens reviews (a merge request, a ticket): it gets
    /// approval requests too.
    fn reviews(&self) -> bool {
        true
    }
    /// Blocking: waits on the host's threads at most the plugin timeout.
    fn propose(&self, rule: &Rule, ctx: &ProposalContext) -> Result<ProposalResult, ProposerError> {
        let failed = |e: CallError| {
            let message = match e {
                CallError::Refused { status, detail } => {
                    format!("{}: {detail} ({status})", self.backend)
                }
                other => format!("{}: {other}", self.backend),
            };
            tracing::warn!(package = %rule.name, requester = %ctx.requester, "proposal failed: {message}");
            ProposerError(message)
        };
        match self.handle.call(&Op::Propose(propose_call(rule, ctx))) {
            Ok(Answer::Proposal(p)) => Ok(ProposalResult {
                backend: self.backend.to_string(),
                status: p.status,
                url: p.url,
                branch: p.branch,
                commit_sha: p.commit_sha,
                detail: p.detail,
            }),
            Ok(_) => Err(failed(CallError::Invalid("answered another op".into()))),
            Err(e) => Err(failed(e)),
        }
    }
}
