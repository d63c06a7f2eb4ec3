//! What the language server needs from the policy side. The daemon
//! implements it in-process; tests implement it over the real engine.

use async_trait::async_trait;
use lex_align_engine::registry::Status;
use lex_align_engine::verdict::Verdict;
use tokio::sync::broadcast;

/// One requirement to judge: a PEP 508 string, and the exact version a lock
/// file pins when one does.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct EvalItem {
    pub requirement: String,
    pub version: Option<String>,
}

/// The registry's rule for one package: what can be said without any
/// upstream call, shown the moment a name is typed.
#[derive(Debug, Clone, PartialEq)]
pub struct RuleInfo {
    pub status: Status,
    pub reason: Option<String>,
    pub replacement: Option<String>,
    /// Inclusive lower bound of a `version-constrained` rule.
    pub min_version: Option<String>,
    /// Exclusive upper bound of a `version-constrained` rule.
    pub max_version: Option<String>,
}

impl RuleInfo {
    /// The rule's bounds as a specifier, e.g. `>=41,<44`.
    pub fn version_constraint(&self) -> Option<String> {
        let parts: Vec<String> = [
            self.min_version.as_ref().map(|v| format!(">={v}")),
            self.max_version.as_ref().map(|v| format!("<{v}")),
        ]
        .into_iter()
        .flatten()
        .collect();
        (!parts.is_empty()).then(|| parts.join(","))
    }
}

/// An operator's proposed registry rule, as sent by the
/// `lexAlign.proposeRule` command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleProposal {
    /// The package as written or canonical; the registry normalises it.
    pub name: String,
    pub status: Status,
    pub reason: Option<String>,
    pub replacement: Option<String>,
    /// Why the operator proposes it (kept with the proposal).
    pub rationale: Option<String>,
}

/// An open alert of the daemon's background CVE re-scan: an advisory
/// published after `version` was allowed now affects it.
#[derive(Debug, Clone, PartialEq)]
pub struct CveAlertInfo {
    pub version: String,
    /// Advisory ids (`GHSA-…`, `PYSEC-…`).
    pub advisories: Vec<String>,
    pub max_cvss: Option<f64>,
}

/// Something changed on the policy side: open documents are re-judged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PolicyEvent {
    RegistryReloaded,
    ApprovalDecided { package: String },
    CveAlert { package: String },
}

#[async_trait]
pub trait PolicyBackend: Send + Sync + 'static {
    /// Judge every item; the answer has one verdict per item, in order.
    async fn evaluate(&self, items: Vec<EvalItem>, project: &str) -> Result<Vec<Verdict>, String>;

    /// The registry rule for a PEP 503 canonical name. Must be cheap and
    /// local: it runs on every keystroke.
    fn registry_rule(&self, canonical: &str) -> Option<RuleInfo>;

    /// File an approval request; the `Ok` text is shown to the user.
    async fn request_approval(
        &self,
        package: &str,
        rationale: &str,
        project: &str,
    ) -> Result<String, String>;

    /// Propose a registry rule (operator mode), through the same path as the
    /// daemon's `POST /api/v1/registry/proposals`; the `Ok` text is shown.
    async fn propose_rule(&self, proposal: &RuleProposal, project: &str) -> Result<String, String> {
        let _ = (proposal, project);
        Err("this lex-align server does not take registry proposals".to_string())
    }

    /// Open CVE alerts for a PEP 503 canonical name. Must be cheap and
    /// local (it runs with [`PolicyBackend::registry_rule`]).
    fn cve_alerts(&self, canonical: &str) -> Vec<CveAlertInfo> {
        let _ = canonical;
        Vec::new()
    }

    /// Registry reloads, approval decisions and CVE alerts.
    fn subscribe(&self) -> broadcast::Receiver<PolicyEvent>;
}
