//! Agents' approval requests sent to a reviewing proposer ([`Proposer::reviews`]):
//! one worker, in request order, so the proposer's git work never ties up
//! more than one blocking thread. The request row says `queued` before the
//! 202 is answered and carries the outcome afterwards (opened / amended /
//! failed, with the pull request's URL), so a restart re-sends what was
//! still queued and status pages show what happened.
//!
//! Nothing here writes the registry: the proposer opens a pull request and
//! a human merges it (W1).

use std::sync::Arc;

use lex_align_engine::registry::validate_rule;
use lex_align_store::{ApprovalRequest, ProposalOutcome, Store};
use serde_json::json;

use super::{ProposalContext, Proposer};

/// The 202 body's `proposal.status` while the proposer has it.
pub const QUEUED: &str = "queued";

/// One approval request on its way to the proposer.
#[derive(Debug, Clone)]
pub struct ReviewJob {
    pub request_id: String,
    pub package: String,
    pub project: String,
    pub requester: String,
    pub rationale: String,
    pub agent_model: Option<String>,
    pub agent_version: Option<String>,
}

impl From<&ApprovalRequest> for ReviewJob {
    fn from(r: &ApprovalRequest) -> ReviewJob {
        ReviewJob {
            request_id: r.id.clone(),
            package: r.package.clone(),
            project: r.project.clone(),
            requester: r.requester.clone(),
            rationale: r.rationale.clone(),
            agent_model: r.agent_model.clone(),
            agent_version: r.agent_version.clone(),
        }
    }
}

#[derive(Clone)]
pub struct ReviewQueue {
    tx: tokio::sync::mpsc::UnboundedSender<ReviewJob>,
    backend: &'static str,
    store: Arc<Store>,
}

impl ReviewQueue {
    /// `None` unless the proposer reviews. Re-sends what a previous run
    /// left queued.
    pub fn start(proposer: Arc<dyn Proposer>, store: Arc<Store>) -> Option<ReviewQueue> {
        if !proposer.reviews() {
            return None;
        }
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<ReviewJob>();
        let worker_store = store.clone();
        let backend = proposer.name();
        tokio::spawn(async move {
            while let Some(job) = rx.recv().await {
                let outcome = run(&proposer, &job).await;
                match &outcome.url {
                    Some(url) => {
                        tracing::info!(package = %job.package, status = %outcome.status, url = %url, "approval request sent for review")
                    }
                    None => {
                        tracing::warn!(package = %job.package, status = %outcome.status, detail = %outcome.detail, "approval request sent for review")
                    }
                }
                if let Err(e) = worker_store
                    .set_proposal_outcome(&job.request_id, outcome)
                    .await
                {
                    tracing::warn!(request = %job.request_id, "proposal outcome not recorded: {e}");
                }
            }
        });
        let queue = ReviewQueue { tx, backend, store };
        match queue.store.queued_proposals() {
            Ok(rows) => {
                for r in &rows {
                    let _ = queue.tx.send(ReviewJob::from(r));
                }
                if !rows.is_empty() {
                    tracing::info!(
                        count = rows.len(),
                        "re-sending approval requests still queued for review"
                    );
                }
            }
            Err(e) => tracing::warn!("cannot read the queued approval requests: {e}"),
        }
        Some(queue)
    }

    /// Marks the request `queued` (durable before the caller answers), then
    /// hands it to the worker.
    pub async fn enqueue(&self, job: ReviewJob) -> Result<(), lex_align_store::StoreError> {
        self.store
            .set_proposal_outcome(
                &job.request_id,
                ProposalOutcome {
                    backend: self.backend.to_string(),
                    status: QUEUED.into(),
                    url: None,
                    detail: format!("waiting for the {} proposer", self.backend),
                },
            )
            .await?;
        // The worker lives as long as the runtime; a send after shutdown
        // leaves the row queued for the next start.
        let _ = self.tx.send(job);
        Ok(())
    }
}

async fn run(proposer: &Arc<dyn Proposer>, job: &ReviewJob) -> ProposalOutcome {
    let backend = proposer.name().to_string();
    let failed = |detail: String| ProposalOutcome {
        backend: backend.clone(),
        status: "failed".into(),
        url: None,
        detail,
    };
    // What the agent asks for is an approval; the reviewers may change it
    // on the branch before merging.
    let rule = match validate_rule(&job.package, &json!({"status": "approved"})) {
        Ok(r) => r,
        Err(e) => return failed(format!("not a valid rule: {}", e.message)),
    };
    let ctx = ProposalContext {
        source: "agent".into(),
        project: job.project.clone(),
        requester: job.requester.clone(),
        rationale: Some(job.rationale.clone()),
        agent_model: job.agent_model.clone(),
        agent_version: job.agent_version.clone(),
    };
    let p = proposer.clone();
    match tokio::task::spawn_blocking(move || p.propose(&rule, &ctx)).await {
        Ok(Ok(r)) => ProposalOutcome {
            backend: r.backend,
            status: r.status,
            url: r.url,
            detail: r.detail,
        },
        Ok(Err(e)) => failed(e.0),
        Err(e) => failed(format!("the proposer crashed: {e}")),
    }
}
