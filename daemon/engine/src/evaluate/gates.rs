//! The gates of [`super::decide`], one module each, and what they share: the
//! context earlier gates fill in for later ones, and the verdict builders.

pub(crate) mod advisories;
pub(crate) mod exception_expiry;
pub(crate) mod existence;
pub(crate) mod fail_policy;
pub(crate) mod license;
pub(crate) mod overrides;
pub(crate) mod registry_allow;
pub(crate) mod registry_block;
pub(crate) mod unpinned_bounds;

use super::{Facts, FailPolicy, Needs, Release};
use crate::license::ResolvedLicense;
use crate::registry::{self, Registry, Rule};
use crate::request::EvalRequest;
use crate::verdict::{AdvisoryHit, Decision, DenialCategory, FixedVersion, Verdict};

/// One step of [`super::decide`]: `Some` settles the verdict.
pub(crate) type Gate = fn(&mut Ctx) -> Option<Verdict>;

/// The inputs of one evaluation and what the gates so far found out.
pub(crate) struct Ctx<'a> {
    pub req: &'a EvalRequest,
    pub registry: &'a Registry,
    pub facts: &'a Facts,
    pub fail: FailPolicy,
    pub needs: Needs,
    /// The rule in force (a lapsed rule is `None`: judged as unlisted).
    pub rule: Option<&'a Rule>,
    pub pinned: Option<String>,
    /// Upstream trouble, in the order found (joined into `upstream_error`).
    pub errors: Vec<String>,
    // ---- existence
    pub index_down: bool,
    /// The index answered with the project.
    pub index_found: bool,
    pub releases: &'a [Release],
    pub metadata: Option<&'a super::LicenseMetadata>,
    /// The release judged (`resolved_version`).
    pub resolved: Option<String>,
    // ---- license facts
    pub license: Option<ResolvedLicense>,
    /// The index listed the release but its metadata could not be fetched.
    pub license_missing: bool,
    // ---- advisories
    pub hits: Vec<AdvisoryHit>,
    pub advisories_down: bool,
    pub max_cvss: Option<f64>,
}

impl<'a> Ctx<'a> {
    pub fn new(
        req: &'a EvalRequest,
        registry: &'a Registry,
        rule: Option<&'a Rule>,
        facts: &'a Facts,
        fail: FailPolicy,
        needs: Needs,
    ) -> Self {
        Ctx {
            req,
            registry,
            facts,
            fail,
            needs,
            rule,
            pinned: req.pinned_version(),
            errors: Vec::new(),
            index_down: false,
            index_found: false,
            releases: &[],
            metadata: None,
            resolved: None,
            license: None,
            license_missing: false,
            hits: Vec::new(),
            advisories_down: false,
            max_cvss: None,
        }
    }

    /// The verdict's `license` field: `UNKNOWN` when resolution found nothing.
    fn license_text(&self) -> Option<String> {
        self.license.as_ref().map(|l| {
            l.expression
                .clone()
                .unwrap_or_else(|| "UNKNOWN".to_string())
        })
    }

    /// Copy the gathered facts onto a verdict of the fact-based gates.
    pub fn fill(&self, v: &mut Verdict) {
        let hits = &self.hits;
        v.resolved_version = self.resolved.clone();
        v.registry_status = self.rule.map(|r| r.status.as_str().to_string());
        v.license = self.license_text();
        v.cve_ids = hits.iter().map(|h| h.id.clone()).collect();
        v.max_cvss = self.max_cvss;
        v.advisories = hits.clone();
        v.fixed_versions = hits
            .iter()
            .filter_map(|h| {
                h.fixed_version.clone().map(|fixed| FixedVersion {
                    id: h.id.clone(),
                    fixed,
                })
            })
            .collect();
        v.upstream_error = (!self.errors.is_empty()).then(|| self.errors.join("; "));
    }
}

const GENERIC_BLOCK: &str = "Blocked by enterprise registry.";

/// A verdict with every field at its neutral value.
pub(crate) fn base(req: &EvalRequest, decision: Decision, reason: String) -> Verdict {
    Verdict {
        verdict: decision,
        reason,
        package: req.package.clone(),
        version: req.version.clone(),
        resolved_version: None,
        registry_status: None,
        replacement: None,
        version_constraint: None,
        license: None,
        cve_ids: Vec::new(),
        max_cvss: None,
        is_requestable: false,
        needs_rationale: false,
        auto_request_approval: false,
        denial_category: None,
        requirement: req.requirement.clone(),
        suggested_requirement: None,
        fixed_versions: Vec::new(),
        advisories: Vec::new(),
        upstream_error: None,
        override_: None,
        suggestions: Vec::new(),
    }
}

pub(crate) fn deny(req: &EvalRequest, category: DenialCategory, reason: String) -> Verdict {
    let mut v = base(req, Decision::Denied, reason);
    v.denial_category = Some(category);
    v
}

/// The DENIED verdict of a blocking registry rule (original field values:
/// no resolved version, license or CVEs).
pub(crate) fn registry_denial(
    req: &EvalRequest,
    rule: &Rule,
    extra: Option<String>,
    suggested: Option<String>,
) -> Verdict {
    let mut reason = rule
        .reason
        .clone()
        .unwrap_or_else(|| GENERIC_BLOCK.to_string());
    if let Some(extra) = extra {
        reason = format!("{reason} {extra}");
    }
    let mut v = deny(req, DenialCategory::Registry, reason);
    v.registry_status = Some(rule.status.as_str().to_string());
    // Any blocking rule may name a replacement (the original only echoed it for deprecated).
    v.replacement = rule.replacement.clone();
    v.version_constraint = registry::version_constraint(rule);
    v.suggested_requirement = suggested;
    v
}
