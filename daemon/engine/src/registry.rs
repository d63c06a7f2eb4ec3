//! The approved-package registry: YAML (source of truth) and compiled JSON,
//! validation with package/field/line, lookup by canonical name.

use std::collections::BTreeMap;

/// The starter registry laid down by `quickstart` and used as the built-in
/// default policy when no registry file is configured.
pub const STARTER_YAML: &str = include_str!("starter_registry.yml");

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Status {
    Preferred,
    Approved,
    Deprecated,
    VersionConstrained,
    Banned,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Preferred => "preferred",
            Status::Approved => "approved",
            Status::Deprecated => "deprecated",
            Status::VersionConstrained => "version-constrained",
            Status::Banned => "banned",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum UnknownLicensePolicy {
    #[default]
    Block,
    /// Allowed, flagged with a warning (the original denied here).
    Warn,
    Allow,
    /// Provisionally allowed and queued for human review.
    PendingApproval,
}

#[derive(Debug, Clone, PartialEq)]
pub struct GlobalPolicies {
    pub auto_approve_licenses: Vec<String>,
    pub hard_ban_licenses: Vec<String>,
    pub require_human_review_licenses: Vec<String>,
    pub unknown_license_policy: UnknownLicensePolicy,
    /// Fraction of CVSS 10 (0.9 → deny at 9.0); compared in integer tenths.
    pub cve_threshold: f64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    /// The key as written in the file (display form).
    pub name: String,
    pub status: Status,
    pub reason: Option<String>,
    pub replacement: Option<String>,
    /// Inclusive lower bound.
    pub min_version: Option<String>,
    /// Exclusive upper bound.
    pub max_version: Option<String>,
    /// 1-based line of the package key in the YAML source, when known.
    pub line: Option<usize>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Registry {
    pub version: String,
    pub policies: GlobalPolicies,
    /// Keyed by PEP 503 canonical name.
    pub packages: BTreeMap<String, Rule>,
}

/// A validation or parse failure. `message` keeps the original server's
/// wording (it is the wire `detail`); `Display` adds the location.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", self.located())]
pub struct RegistryError {
    pub message: String,
    pub package: Option<String>,
    pub field: Option<String>,
    pub line: Option<usize>,
}

impl RegistryError {
    pub fn located(&self) -> String {
        match self.line {
            Some(line) => format!("{} (line {line})", self.message),
            None => self.message.clone(),
        }
    }
}
