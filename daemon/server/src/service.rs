//! The evaluation service: engine plan → concurrent upstream facts under a
//! time budget → engine decision → durable audit row.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;

use lex_align_engine::evaluate::{
    apply_override, decide, plan, select_version, AdvisoryFacts, Facts, FailPolicy, IndexFacts,
    Needs, Plan,
};
use lex_align_engine::registry::Registry;
use lex_align_engine::request::EvalRequest;
use lex_align_engine::verdict::{Decision, Verdict};
use lex_align_store::{AuditRow, NewApprovalRequest, Store};
use lex_align_upstream::{IndexError, Upstream};

use crate::metrics::Metrics;
use crate::overrides::OverrideBook;
use crate::registry_state::RegistryState;

/// Who asks (from the request headers and the authenticator).
#[derive(Debug, Clone)]
pub struct CallContext {
    pub project: String,
    pub requester: String,
    /// How `requester` was authenticated (audit `auth_method` column).
    pub auth_method: String,
    pub agent_model: Option<String>,
    pub agent_version: Option<String>,
    /// `api`, `batch`, … (audit `source` column).
    pub source: &'static str,
}

#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// The audit row could not be made durable: the verdict is not given.
    #[error("audit log unavailable: {0}")]
    Audit(String),
}

const AUTO_RATIONALE: &str =
    "Auto-submitted: license unknown, pending human review of the registry entry.";

/// Concurrent index lookups in one batch.
const BATCH_INDEX_CONCURRENCY: usize = 32;

/// Batches with at most this many distinct names query advisories per
/// package; larger ones use querybatch (one request for all the names).
const PER_PACKAGE_ADVISORY_MAX: usize = 64;

pub struct Evaluator {
    pub registry: Arc<RegistryState>,
    pub upstream: Option<Upstream>,
    /// Whether an index is configured (else index facts are unavailable).
    pub index_configured: bool,
    pub store: Arc<Store>,
    pub fail: FailPolicy,
    pub budget: Duration,
    pub metrics: Arc<Metrics>,
    pub overrides: Arc<OverrideBook>,
}

fn timed_out(budget: Duration) -> String {
    format!(
        "timed out after {} ms (evaluate budget)",
        budget.as_millis()
    )
}

/// A verdict with its JSON body, serialised once and shared by every
/// request the memo answers with it.
#[derive(Debug)]
pub struct Judged {
    pub verdict: Verdict,
    /// `serde_json` of `verdict`: the body of `GET /api/v1/evaluate`.
    pub body: Bytes,
}

impl Judged {
    fn new(verdict: Verdict) -> Judged {
        let body = serde_json::to_vec(&verdict)
            .expect("a verdict of strings, numbers and lists serialises")
            .into();
        Judged { verdict, body }
    }
}

impl Evaluator {
    /// Judge one validated request and record it. Upstream trouble never
    /// fails the call; only an audit-log failure does.
    pub async fn evaluate(
        &self,
        req: &EvalRequest,
        ctx: &CallContext,
    ) -> Result<Verdict, ServiceError> {
        Ok(self.evaluate_shared(req, ctx).await?.verdict.clone())
    }

    /// [`Evaluator::evaluate`] returning the shared verdict and its body
    /// (the hot path of `GET /api/v1/evaluate`: no copy, no serialisation).
    pub async fn evaluate_shared(
        &self,
        req: &EvalRequest,
        ctx: &CallContext,
    ) -> Result<Arc<Judged>, ServiceError> {
        let judged = self.overridden(self.judge_shared(req).await, req, ctx);
        self.record(req, &judged.verdict, ctx).await?;
        Ok(judged)
    }

    /// The override gate: per project, after the memo (overrides are not
    /// memoised, so one lapses or is revoked at once).
    fn overridden(&self, judged: Arc<Judged>, req: &EvalRequest, ctx: &CallContext) -> Arc<Judged> {
        if judged.verdict.verdict != Decision::Denied || !self.overrides.has(&req.canonical) {
            return judged;
        }
        let Some(list) = self.overrides.for_package(&req.canonical) else {
            return judged;
        };
        let v = apply_override(judged.verdict.clone(), req, &ctx.project, &list);
        if v.override_.is_none() {
            return judged;
        }
        Arc::new(Judged::new(v))
    }

    fn override_verdict(&self, v: Verdict, req: &EvalRequest, ctx: &CallContext) -> Verdict {
        if v.verdict != Decision::Denied {
            return v;
        }
        match self.overrides.for_package(&req.canonical) {
            Some(list) => apply_override(v, req, &ctx.project, &list),
            None => v,
        }
    }

    /// Judge without recording (the approval-request pre-check).
    pub async fn judge(&self, req: &EvalRequest) -> Verdict {
        self.judge_shared(req).await.verdict.clone()
    }

    async fn judge_shared(&self, req: &EvalRequest) -> Arc<Judged> {
        let loaded = self.registry.current();
        if let Some(j) = memo::get(&loaded, req) {
            return j;
        }
        let reg = &loaded.registry;
        let v = match plan(req, reg) {
            Plan::Decided(v) => v,
            Plan::Fetch(needs) => {
                let deadline = tokio::time::Instant::now() + self.budget;
                let facts = self.gather(req, reg, needs, deadline).await;
                decide(req, reg, &facts, self.fail)
            }
        };
        let j = Arc::new(Judged::new(v));
        memo::put(&loaded, req, &j);
        j
    }

    async fn gather(
        &self,
        req: &EvalRequest,
        reg: &Registry,
        needs: Needs,
        deadline: tokio::time::Instant,
    ) -> Facts {
        if needs.advisories && self.per_release_advisories() {
            // The index lists advisories per release: resolve it first (the
            // release's page, fetched for its metadata, carries them).
            let index = if needs.index {
                Some(self.index_facts(req, reg, deadline).await)
            } else {
                None
            };
            let version = judged_version(req, reg, index.as_ref());
            let advisories = self
                .release_advisory_facts(&req.canonical, version.as_deref(), deadline)
                .await;
            return Facts {
                index,
                advisories: Some(advisories),
            };
        }
        // Index and advisories at once: advisories are per package and matched
        // locally to whatever version the index resolves.
        let index = async {
            if needs.index {
                Some(self.index_facts(req, reg, deadline).await)
            } else {
                None
            }
        };
        let advisories = async {
            if needs.advisories {
                Some(self.advisory_facts(&req.canonical, deadline).await)
            } else {
                None
            }
        };
        let (index, advisories) = tokio::join!(index, advisories);
        Facts { index, advisories }
    }

    async fn index_facts(
        &self,
        req: &EvalRequest,
        reg: &Registry,
        deadline: tokio::time::Instant,
    ) -> IndexFacts {
        let Some(up) = self.upstream.as_ref().filter(|_| self.index_configured) else {
            return IndexFacts::Unavailable(
                "no package index configured; set LEXALIGN_INDEX_URL (or PYPI_API_URL, or a uv/pip index setting)".into(),
            );
        };
        match tokio::time::timeout_at(deadline, fetch_index(up, req, reg)).await {
            Ok(f) => f,
            Err(_) => IndexFacts::Unavailable(timed_out(self.budget)),
        }
    }

    async fn advisory_facts(
        &self,
        canonical: &str,
        deadline: tokio::time::Instant,
    ) -> AdvisoryFacts {
        let Some(up) = self.upstream.as_ref() else {
            return AdvisoryFacts::Unavailable("no advisory source configured".into());
        };
        match tokio::time::timeout_at(deadline, up.advisories(canonical)).await {
            Ok(f) => f,
            Err(_) => AdvisoryFacts::Unavailable(timed_out(self.budget)),
        }
    }

    fn per_release_advisories(&self) -> bool {
        self.upstream
            .as_ref()
            .is_some_and(Upstream::advisories_per_release)
    }

    /// Advisories the index lists for the judged release (when the index is
    /// the advisory source).
    async fn release_advisory_facts(
        &self,
        canonical: &str,
        version: Option<&str>,
        deadline: tokio::time::Instant,
    ) -> AdvisoryFacts {
        let (Some(up), Some(version)) = (self.upstream.as_ref(), version) else {
            return AdvisoryFacts::Unavailable(
                "the package index lists advisories per release, and no release was resolved"
                    .into(),
            );
        };
        match tokio::time::timeout_at(deadline, up.release_advisories(canonical, version)).await {
            Ok(f) => f,
            Err(_) => AdvisoryFacts::Unavailable(timed_out(self.budget)),
        }
    }

    /// Make the audit row durable, then the approval side effect.
    async fn record(
        &self,
        req: &EvalRequest,
        v: &Verdict,
        ctx: &CallContext,
    ) -> Result<(), ServiceError> {
        self.metrics.verdict(v);
        let receipt = match self.store.append_audit(audit_row(req, v, ctx)).await {
            Ok(r) => r,
            Err(e) => {
                self.metrics.audit_error();
                return Err(ServiceError::Audit(e.to_string()));
            }
        };
        self.metrics.audit_rows(1);
        if v.auto_request_approval {
            self.auto_request(req, ctx, Some(receipt.id)).await;
        }
        Ok(())
    }

    /// `auto_request_approval`: a record for a human, never a registry write.
    async fn auto_request(&self, req: &EvalRequest, ctx: &CallContext, audit_id: Option<String>) {
        let new = NewApprovalRequest {
            project: ctx.project.clone(),
            requester: ctx.requester.clone(),
            package: req.package.clone(),
            rationale: AUTO_RATIONALE.to_string(),
            agent_model: ctx.agent_model.clone(),
            agent_version: ctx.agent_version.clone(),
            last_audit_id: audit_id,
        };
        if let Err(e) = self.store.upsert_approval_request(new).await {
            tracing::warn!(package = %req.package, "auto approval request not recorded: {e}");
        }
    }

    /// Many requests, one round of upstream work: one batched advisory query
    /// for every name plus concurrent (bounded) index lookups, all under one
    /// budget; then every row appended concurrently (the store groups them).
    pub async fn evaluate_batch(
        &self,
        reqs: &[EvalRequest],
        ctx: &CallContext,
    ) -> Result<Vec<Verdict>, ServiceError> {
        let loaded = self.registry.current();
        let reg = &loaded.registry;
        let deadline = tokio::time::Instant::now() + self.budget;
        let plans: Vec<Plan> = reqs.iter().map(|r| plan(r, reg)).collect();

        let mut advisory_names: Vec<String> = Vec::new();
        let mut seen = HashSet::new();
        for (r, p) in reqs.iter().zip(&plans) {
            if let Plan::Fetch(n) = p {
                if n.advisories && seen.insert(r.canonical.clone()) {
                    advisory_names.push(r.canonical.clone());
                }
            }
        }

        let per_release = self.per_release_advisories();
        let advisories = async {
            if advisory_names.is_empty() || per_release {
                return HashMap::new();
            }
            let Some(up) = self.upstream.as_ref() else {
                return HashMap::new();
            };
            if advisory_names.len() > PER_PACKAGE_ADVISORY_MAX {
                return (tokio::time::timeout_at(deadline, up.advisories_batch(&advisory_names))
                    .await)
                    .unwrap_or_default();
            }
            // One query per package returns whole records: for a handful of
            // names that is fewer round trips than querybatch followed by
            // one detail fetch per advisory id (242 for 40 common packages).
            // The endpoint's own bound limits concurrency.
            let per_package = advisory_names.iter().map(|name| async move {
                let facts = tokio::time::timeout_at(deadline, up.advisories(name)).await;
                facts.ok().map(|f| (name.clone(), f))
            });
            futures_util::future::join_all(per_package)
                .await
                .into_iter()
                .flatten()
                .collect()
        };
        // Futures are built eagerly (no closure held across awaits) and
        // bounded by a semaphore.
        let permits = tokio::sync::Semaphore::new(BATCH_INDEX_CONCURRENCY);
        let mut index_futures = Vec::new();
        for (i, (r, p)) in reqs.iter().zip(&plans).enumerate() {
            if let Plan::Fetch(n) = p {
                if n.index {
                    index_futures.push(self.bounded_index(i, r, reg, deadline, &permits));
                }
            }
        }
        let indexes = futures_util::future::join_all(index_futures);
        let (mut advisories, index_results) = tokio::join!(advisories, indexes);
        let mut index_by_pos: Vec<Option<IndexFacts>> = vec![None; reqs.len()];
        for (i, f) in index_results {
            index_by_pos[i] = Some(f);
        }
        // Advisories the index lists per release: asked once each release
        // is resolved (its page is usually cached by then).
        let mut release_advisories: HashMap<usize, AdvisoryFacts> = HashMap::new();
        if per_release {
            let asks = reqs
                .iter()
                .zip(&plans)
                .enumerate()
                .filter(|(_, (_, p))| matches!(p, Plan::Fetch(n) if n.advisories))
                .map(|(i, (r, _))| {
                    let version = judged_version(r, reg, index_by_pos[i].as_ref());
                    async move {
                        let f = self
                            .release_advisory_facts(&r.canonical, version.as_deref(), deadline)
                            .await;
                        (i, f)
                    }
                });
            release_advisories = futures_util::future::join_all(asks)
                .await
                .into_iter()
                .collect();
        }

        // How many verdicts still need each package's advisories: the last
        // one takes the records, earlier ones (a name repeated in the
        // batch) clone them — no copy per verdict in the common case.
        let mut uses: HashMap<&str, usize> = HashMap::new();
        for (r, p) in reqs.iter().zip(&plans) {
            if matches!(p, Plan::Fetch(n) if n.advisories) {
                *uses.entry(r.canonical.as_str()).or_default() += 1;
            }
        }
        let verdicts: Vec<Verdict> = reqs
            .iter()
            .zip(plans)
            .zip(index_by_pos)
            .enumerate()
            .map(|(i, ((r, p), index))| match p {
                Plan::Decided(v) => v,
                Plan::Fetch(n) => {
                    let adv = n.advisories.then(|| {
                        if let Some(f) = release_advisories.remove(&i) {
                            return f;
                        }
                        let left = uses.get_mut(r.canonical.as_str()).map(|c| {
                            *c -= 1;
                            *c
                        });
                        let facts = if left == Some(0) {
                            advisories.remove(&r.canonical)
                        } else {
                            advisories.get(&r.canonical).cloned()
                        };
                        facts.unwrap_or_else(|| AdvisoryFacts::Unavailable(timed_out(self.budget)))
                    });
                    let facts = Facts {
                        index,
                        advisories: adv,
                    };
                    decide(r, reg, &facts, self.fail)
                }
            })
            .zip(reqs)
            .map(|(v, r)| self.override_verdict(v, r, ctx))
            .collect();
        advisories.clear();

        // One contiguous append for the whole batch (one inbox write).
        let rows: Vec<AuditRow> = reqs
            .iter()
            .zip(&verdicts)
            .map(|(r, v)| audit_row(r, v, ctx))
            .collect();
        for v in &verdicts {
            self.metrics.verdict(v);
        }
        let receipts = match self.store.append_audit_batch(rows).await {
            Ok(r) => r,
            Err(e) => {
                self.metrics.audit_error();
                return Err(ServiceError::Audit(e.to_string()));
            }
        };
        self.metrics.audit_rows(receipts.len() as u64);
        for ((r, v), receipt) in reqs.iter().zip(&verdicts).zip(receipts) {
            if v.auto_request_approval {
                self.auto_request(r, ctx, Some(receipt.id)).await;
            }
        }
        Ok(verdicts)
    }
}

impl Evaluator {
    async fn bounded_index(
        &self,
        i: usize,
        req: &EvalRequest,
        reg: &Registry,
        deadline: tokio::time::Instant,
        permits: &tokio::sync::Semaphore,
    ) -> (usize, IndexFacts) {
        let Ok(_permit) = tokio::time::timeout_at(deadline, permits.acquire()).await else {
            return (i, IndexFacts::Unavailable(timed_out(self.budget)));
        };
        (i, self.index_facts(req, reg, deadline).await)
    }
}

/// The release the engine will judge: the pin, else the one whose
/// metadata the index lookup fetched, else the engine's own choice.
fn judged_version(req: &EvalRequest, reg: &Registry, index: Option<&IndexFacts>) -> Option<String> {
    if let Some(pin) = req.pinned_version() {
        return Some(pin);
    }
    match index? {
        IndexFacts::Found {
            metadata: Some((v, _)),
            ..
        } => Some(v.clone()),
        IndexFacts::Found { releases, .. } => select_version(req, reg, releases),
        _ => None,
    }
}

async fn fetch_index(up: &Upstream, req: &EvalRequest, reg: &Registry) -> IndexFacts {
    let project = match up.project(&req.canonical).await {
        Ok(p) => p,
        Err(IndexError::NotFound) => {
            return IndexFacts::NotFound {
                known_names: up.known_names(),
            }
        }
        Err(IndexError::Unavailable(m)) => return IndexFacts::Unavailable(m),
    };
    let selected = select_version(req, reg, &project.releases);
    let metadata = match selected {
        None => None,
        Some(v) => match &project.latest {
            // The JSON API gives the latest release's metadata for free.
            Some((latest, meta)) if *latest == v => Some((v, meta.clone())),
            _ => match up.release_metadata(&req.canonical, &v).await {
                Ok(meta) => Some((v, meta)),
                Err(e) => {
                    tracing::debug!(package = %req.canonical, version = %v, "release metadata unavailable: {e}");
                    None
                }
            },
        },
    };
    IndexFacts::Found {
        name: project.name,
        releases: project.releases,
        metadata,
    }
}

pub fn audit_row(req: &EvalRequest, v: &Verdict, ctx: &CallContext) -> AuditRow {
    AuditRow {
        project: ctx.project.clone(),
        requester: ctx.requester.clone(),
        package: req.package.clone(),
        canonical: req.canonical.clone(),
        version: req.version.clone(),
        requirement: req.requirement.clone(),
        resolved_version: v.resolved_version.clone(),
        verdict: v.verdict.as_str().to_string(),
        denial_category: v.audit_category().to_string(),
        reason: Some(v.reason.clone()),
        license: v.license.clone(),
        cve_ids: v.cve_ids.clone(),
        max_cvss: v.max_cvss,
        registry_status: v.registry_status.clone(),
        agent_model: ctx.agent_model.clone(),
        agent_version: ctx.agent_version.clone(),
        source: ctx.source.to_string(),
        auth_method: Some(ctx.auth_method.clone()),
    }
}

/// A short-lived per-thread memo of verdicts (with their serialised body).
///
/// A verdict is a pure function of the request, the registry generation and
/// the upstream facts, and those facts are already cached for hours; yet
/// copying them out of the cache and re-running the licence and advisory
/// gates is most of a warm evaluate's CPU, and serialising the verdict again
/// the next largest part. Registry-decided verdicts are kept too (no
/// upstream facts; the generation check covers them). Entries live one second (far
/// below any upstream TTL, so no verdict is noticeably staler than the
/// cache already allows), belong to one registry generation (a reload
/// empties the memo), and degraded verdicts are never kept (failures are
/// not cached). Per thread: no lock on the hot path.
mod memo {
    use std::cell::RefCell;
    use std::collections::HashMap;
    use std::hash::{Hash, Hasher};
    use std::sync::{Arc, Weak};
    use std::time::{Duration, Instant};

    use lex_align_engine::request::EvalRequest;

    use super::Judged;
    use crate::registry_state::LoadedRegistry;

    const TTL: Duration = Duration::from_secs(1);
    /// Entries per thread before the memo starts over.
    const CAP: usize = 4096;

    struct Entry {
        at: Instant,
        package: String,
        version: Option<String>,
        requirement: Option<String>,
        judged: Arc<Judged>,
    }

    #[derive(Default)]
    struct Memo {
        /// A weak handle keeps the allocation, so the pointer cannot be
        /// reused by a later generation while we compare against it.
        registry: Weak<LoadedRegistry>,
        map: HashMap<u64, Entry>,
    }

    thread_local! {
        static MEMO: RefCell<Memo> = RefCell::new(Memo::default());
    }

    fn key(req: &EvalRequest) -> u64 {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        (&req.package, &req.version, &req.requirement).hash(&mut h);
        h.finish()
    }

    pub(super) fn get(reg: &Arc<LoadedRegistry>, req: &EvalRequest) -> Option<Arc<Judged>> {
        MEMO.with(|m| {
            let m = m.borrow();
            if m.registry.as_ptr() != Arc::as_ptr(reg) {
                return None;
            }
            let e = m.map.get(&key(req))?;
            (e.at.elapsed() < TTL
                && e.package == req.package
                && e.version == req.version
                && e.requirement == req.requirement)
                .then(|| e.judged.clone())
        })
    }

    pub(super) fn put(reg: &Arc<LoadedRegistry>, req: &EvalRequest, j: &Arc<Judged>) {
        if j.verdict.upstream_error.is_some() {
            return;
        }
        MEMO.with(|m| {
            let mut m = m.borrow_mut();
            if m.registry.as_ptr() != Arc::as_ptr(reg) {
                m.registry = Arc::downgrade(reg);
                m.map.clear();
            }
            if m.map.len() >= CAP {
                m.map.clear();
            }
            m.map.insert(
                key(req),
                Entry {
                    at: Instant::now(),
                    package: req.package.clone(),
                    version: req.version.clone(),
                    requirement: req.requirement.clone(),
                    judged: j.clone(),
                },
            );
        });
    }
}
