//! The verdict: the wire shape of `GET /api/v1/evaluate` (14 original keys,
//! in the original order) plus additive keys that old clients ignore.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Decision {
    Allowed,
    ProvisionallyAllowed,
    Denied,
}

impl Decision {
    pub fn as_str(self) -> &'static str {
        match self {
            Decision::Allowed => "ALLOWED",
            Decision::ProvisionallyAllowed => "PROVISIONALLY_ALLOWED",
            Decision::Denied => "DENIED",
        }
    }
}

/// Why a verdict is DENIED; stored in the audit log's `denial_category`
/// column. The original's values are `registry`, `license`, `cve`; ours add
/// finer categories that reports and editors key on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DenialCategory {
    /// banned, deprecated or version-constraint rule.
    Registry,
    License,
    Cve,
    /// A malicious-package advisory (OSV `MAL-` id).
    Malicious,
    /// The index does not know the package (hallucinated / typosquatted name).
    NotFound,
    /// An upstream was unavailable and the fail policy is closed.
    Upstream,
}

impl DenialCategory {
    pub fn as_str(self) -> &'static str {
        match self {
            DenialCategory::Registry => "registry",
            DenialCategory::License => "license",
            DenialCategory::Cve => "cve",
            DenialCategory::Malicious => "malicious",
            DenialCategory::NotFound => "not-found",
            DenialCategory::Upstream => "upstream",
        }
    }
}

/// One advisory that affects the evaluated version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AdvisoryHit {
    /// OSV id (`GHSA-…`, `PYSEC-…`, `MAL-…`).
    pub id: String,
    /// CVE and other aliases.
    pub aliases: Vec<String>,
    /// Base score from the CVSS vector, else from the severity label.
    pub score: Option<f64>,
    /// First fixed version after the evaluated one, if any.
    pub fixed_version: Option<String>,
    pub malicious: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Verdict {
    pub verdict: Decision,
    pub reason: String,
    pub package: String,
    pub version: Option<String>,
    pub resolved_version: Option<String>,
    pub registry_status: Option<String>,
    pub replacement: Option<String>,
    pub version_constraint: Option<String>,
    pub license: Option<String>,
    pub cve_ids: Vec<String>,
    pub max_cvss: Option<f64>,
    pub is_requestable: bool,
    pub needs_rationale: bool,
    pub auto_request_approval: bool,
    // ---- additive keys (old clients ignore unknown keys) ----
    /// `registry`, `license`, `cve`, `malicious`, `not-found`, `upstream`;
    /// null unless DENIED.
    pub denial_category: Option<DenialCategory>,
    /// The PEP 508 requirement that was judged, when one was given.
    pub requirement: Option<String>,
    /// A requirement that would pass the version rule, when one was violated.
    pub suggested_requirement: Option<String>,
    /// First safe version per affecting advisory (id → version).
    pub fixed_versions: Vec<FixedVersion>,
    pub advisories: Vec<AdvisoryHit>,
    /// Set when an upstream could not be asked; says which and why.
    pub upstream_error: Option<String>,
    /// Set when an override turned a denial into ALLOWED; says which and
    /// what the verdict was without it.
    #[serde(rename = "override", default)]
    pub override_: Option<OverrideApplied>,
    /// For a package the index does not have: real names close to it
    /// (registry and index-confirmed names), closest first.
    #[serde(default)]
    pub suggestions: Vec<String>,
}

/// The override that allowed an otherwise DENIED package.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OverrideApplied {
    pub id: String,
    pub approver: String,
    pub justification: String,
    /// RFC 3339.
    pub expires_at: String,
    /// The reason of the denial it lifted.
    pub original_reason: String,
    /// The denial's `denial_category` (`cve`, `registry`, …).
    pub original_category: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FixedVersion {
    pub id: String,
    pub fixed: String,
}

impl Verdict {
    /// The `denial_category` column value: `""` for non-denials (as the original).
    pub fn audit_category(&self) -> &'static str {
        self.denial_category
            .map(DenialCategory::as_str)
            .unwrap_or("")
    }
}
