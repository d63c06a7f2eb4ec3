//! Durable state in one SQLite file (WAL): the hash-chained audit log, the
//! approval requests, the persistent upstream cache, and the report queries.
//!
//! One writer thread owns the write connection and commits in groups; an
//! append resolves only after its row is durable.

use serde::{Deserialize, Serialize};

/// One evaluation, as recorded. Every column of the original `audit_log`
/// plus the canonical name, the requirement and the source of the check.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct AuditRow {
    pub project: String,
    pub requester: String,
    /// As the caller wrote it.
    pub package: String,
    /// PEP 503 canonical name (reports group on it).
    pub canonical: String,
    pub version: Option<String>,
    pub requirement: Option<String>,
    pub resolved_version: Option<String>,
    /// `ALLOWED` | `PROVISIONALLY_ALLOWED` | `DENIED` | `CVE_ALERT`.
    pub verdict: String,
    /// `registry` | `license` | `cve` | `cve_alert` | `malicious` | `not-found` | `upstream` | `""`.
    pub denial_category: String,
    pub reason: Option<String>,
    pub license: Option<String>,
    pub cve_ids: Vec<String>,
    pub max_cvss: Option<f64>,
    pub registry_status: Option<String>,
    pub agent_model: Option<String>,
    pub agent_version: Option<String>,
    /// `api`, `batch`, `lsp`, `precommit`, `hook`, `scanner`, …
    pub source: String,
}
