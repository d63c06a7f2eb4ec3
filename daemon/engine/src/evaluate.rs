//! Gate order and verdict construction (see docs/evaluation.md).
//!
//! Two steps so the caller can do its I/O in between, concurrently:
//! [`plan`] (registry only) then [`decide`] (registry + upstream facts).
//!
//! Gate order: registry block (banned, deprecated, version rule) → existence
//! → malicious / CVE → fail policy for missing facts → license (unknown
//! packages only) → registry allow.

use std::str::FromStr;

use pep440_rs::{Version, VersionSpecifier, VersionSpecifiers};
use pep508_rs::VersionOrUrl;
use version_ranges::Ranges;

use crate::advisory::OsvRecord;
use crate::license::{self, LicenseAction};
use crate::registry::{self, Registry, Rule, Status};
use crate::request::EvalRequest;
use crate::verdict::{Decision, DenialCategory, FixedVersion, Verdict};

/// What the caller must fetch before [`decide`] can answer.
// One value per evaluation, moved once: boxing would only add an allocation.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum Plan {
    /// The registry alone settles it (banned, deprecated, version violation).
    Decided(Verdict),
    /// Fetch these, then call [`decide`].
    Fetch(Needs),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Needs {
    /// The project's release list and the resolved release's metadata.
    pub index: bool,
    /// All advisories of the package (matched locally to the resolved version).
    pub advisories: bool,
}

/// One release as listed by the index.
#[derive(Debug, Clone, PartialEq)]
pub struct Release {
    pub version: String,
    pub yanked: bool,
}

/// License-bearing core metadata of one release.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LicenseMetadata {
    /// PEP 639 `License-Expression` / JSON `license_expression`.
    pub license_expression: Option<String>,
    /// Legacy `License` field (identifier or full text).
    pub license: Option<String>,
    /// All `Classifier` values (only `License ::` ones are read).
    pub classifiers: Vec<String>,
}

/// What the package index said about the project.
#[derive(Debug, Clone, PartialEq)]
pub enum IndexFacts {
    Found {
        /// Canonical project name as the index spells it.
        name: String,
        releases: Vec<Release>,
        /// Metadata of the release chosen by [`select_version`] (or the
        /// pinned one). `None` if it could not be fetched.
        metadata: Option<(String, LicenseMetadata)>,
    },
    /// The index answered 404: the project does not exist.
    NotFound,
    /// Transport error, timeout or 5xx: say so, never cache.
    Unavailable(String),
}

#[derive(Debug, Clone, PartialEq)]
pub enum AdvisoryFacts {
    /// Every advisory record the source has for the package.
    Found(Vec<OsvRecord>),
    Unavailable(String),
}

/// What to do when an upstream is unavailable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FailPolicy {
    /// Judge on what is known; mark the verdict with `upstream_error` and
    /// never return ALLOWED for an unknown package on missing facts alone.
    #[default]
    Open,
    /// DENIED with category `upstream`.
    Closed,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Facts {
    pub index: Option<IndexFacts>,
    pub advisories: Option<AdvisoryFacts>,
}

const GENERIC_BLOCK: &str = "Blocked by enterprise registry.";

/// A verdict with every field at its neutral value.
fn base(req: &EvalRequest, decision: Decision, reason: String) -> Verdict {
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
    }
}

fn deny(req: &EvalRequest, category: DenialCategory, reason: String) -> Verdict {
    let mut v = base(req, Decision::Denied, reason);
    v.denial_category = Some(category);
    v
}

/// The DENIED verdict of a blocking registry rule (original field values:
/// no resolved version, license or CVEs).
fn registry_denial(
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

/// Non-yanked releases with a PEP 440 version (pre-releases included).
fn installable(releases: &[Release]) -> Vec<(Version, &str)> {
    releases
        .iter()
        .filter(|r| !r.yanked)
        .filter_map(|r| {
            Version::from_str(r.version.trim())
                .ok()
                .map(|v| (v, r.version.as_str()))
        })
        .collect()
}

fn highest<'a>(
    cands: impl Iterator<Item = &'a (Version, &'a str)>,
) -> Option<&'a (Version, &'a str)> {
    cands.max_by(|a, b| a.0.cmp(&b.0))
}

/// Highest non-yanked final release satisfying `filter` (pre-releases only
/// when no final release does, as pip does).
fn best_release(releases: &[Release], filter: impl Fn(&Version) -> bool) -> Option<String> {
    let all = installable(releases);
    highest(all.iter().filter(|(v, _)| !v.any_prerelease() && filter(v)))
        .or_else(|| highest(all.iter().filter(|(v, _)| filter(v))))
        .map(|(_, s)| s.to_string())
}

/// The release to judge: the pin, else the highest non-yanked final release
/// admitted by the requirement (and by the registry's version rule when one
/// exists), else the highest non-yanked final release.
pub fn select_version(
    req: &EvalRequest,
    registry: &Registry,
    releases: &[Release],
) -> Option<String> {
    if let Some(pin) = req.pinned_version() {
        return Some(pin);
    }
    let specs = req.specifiers();
    let bounds = registry
        .rule(&req.canonical)
        .filter(|r| r.status == Status::VersionConstrained)
        .and_then(Rule::bounds);
    let admitted = |v: &Version| {
        specs.as_ref().is_none_or(|s| s.contains(v))
            && bounds.as_ref().is_none_or(|b| b.contains(v))
    };
    best_release(releases, admitted).or_else(|| best_release(releases, |_| true))
}

fn ranges(specs: &VersionSpecifiers) -> Ranges<Version> {
    Ranges::from(specs.clone())
}

fn ranges_of(specs: &[VersionSpecifier]) -> Ranges<Version> {
    specs.iter().fold(Ranges::full(), |acc, s| {
        acc.intersection(&Ranges::from(s.clone()))
    })
}

/// The user's specifier intersected with the rule's bounds, redundant
/// clauses dropped: `>=41,<44` ∩ `>=42.0.0` → `>=42.0.0,<44`.
fn intersect_specifiers(
    user: Option<&VersionSpecifiers>,
    bounds: &VersionSpecifiers,
) -> VersionSpecifiers {
    let rule: Vec<VersionSpecifier> = bounds.iter().cloned().collect();
    let Some(user) = user else {
        return bounds.clone();
    };
    let target = ranges(user).intersection(&ranges(bounds));
    if target.is_empty() {
        // Nothing the user asked for is allowed: suggest the rule itself.
        return bounds.clone();
    }
    let mut set: Vec<VersionSpecifier> = user.iter().cloned().chain(rule).collect();
    let mut i = 0;
    while i < set.len() {
        let mut without = set.clone();
        without.remove(i);
        if !without.is_empty() && ranges_of(&without) == target {
            set = without;
        } else {
            i += 1;
        }
    }
    // `from_iter` orders the clauses by version.
    set.into_iter().collect()
}

/// `name[extras]<specs> ; markers`, from the caller's requirement when there
/// is one (extras and markers kept), else from the package name.
fn requirement_with(req: &EvalRequest, specs: VersionSpecifiers) -> String {
    match req.parsed_requirement() {
        Some(mut r) => {
            r.version_or_url = Some(VersionOrUrl::VersionSpecifier(specs));
            r.to_string()
        }
        None => {
            let parts: Vec<String> = specs.iter().map(ToString::to_string).collect();
            format!("{}{}", req.package, parts.join(","))
        }
    }
}

/// The registry-only version check of a `version-constrained` rule: a pin
/// outside the bounds, or a requirement admitting versions outside them.
fn version_violation(req: &EvalRequest, rule: &Rule) -> Option<Verdict> {
    if rule.status != Status::VersionConstrained {
        return None;
    }
    let bounds = rule.bounds()?;
    let constraint = rule.bounds_text().unwrap_or_default();
    if let Some(pin) = req.pinned_version() {
        let v = Version::from_str(&pin).ok()?;
        if bounds.contains(&v) {
            return None;
        }
        let suggested = requirement_with(req, intersect_specifiers(None, &bounds));
        return Some(registry_denial(
            req,
            rule,
            Some(format!(
                "Version {pin} is outside the allowed range {constraint}."
            )),
            Some(suggested),
        ));
    }
    let specs = req.specifiers()?;
    if ranges(&specs).subset_of(&ranges(&bounds)) {
        return None;
    }
    let suggested = requirement_with(req, intersect_specifiers(Some(&specs), &bounds));
    Some(registry_denial(
        req,
        rule,
        Some(format!(
            "The requirement `{}` admits versions outside the allowed range {constraint}.",
            req.requirement.as_deref().unwrap_or(&req.package)
        )),
        Some(suggested),
    ))
}

pub fn plan(req: &EvalRequest, registry: &Registry) -> Plan {
    match registry.rule(&req.canonical) {
        Some(rule) if matches!(rule.status, Status::Banned | Status::Deprecated) => {
            Plan::Decided(registry_denial(req, rule, None, None))
        }
        Some(rule) => match version_violation(req, rule) {
            Some(v) => Plan::Decided(v),
            // A pinned registry-known package needs no index call: its
            // license is not judged and its version is given.
            None => Plan::Fetch(Needs {
                index: req.pinned_version().is_none(),
                advisories: true,
            }),
        },
        None => Plan::Fetch(Needs {
            index: true,
            advisories: true,
        }),
    }
}

/// `9.8` → `9.8`, `10` → `10.0` (the original printed Python floats).
fn py_float(f: f64) -> String {
    if f.fract() == 0.0 && f.abs() < 1e16 {
        format!("{f:.1}")
    } else {
        format!("{f}")
    }
}

/// Score ≥ threshold, compared in integer tenths so 3.3 ≥ 0.33 holds (W22).
fn meets_threshold(score: f64, threshold: f64) -> bool {
    (score * 10.0).round() as i64 >= (threshold * 100.0).round() as i64
}

pub fn decide(req: &EvalRequest, registry: &Registry, facts: &Facts, fail: FailPolicy) -> Verdict {
    let needs = match plan(req, registry) {
        Plan::Decided(v) => return v,
        Plan::Fetch(needs) => needs,
    };
    let rule = registry.rule(&req.canonical);
    let pinned = req.pinned_version();
    let mut errors: Vec<String> = Vec::new();

    // ---- index: existence, releases, license metadata
    let not_consulted;
    let index = match (&facts.index, needs.index) {
        (Some(i), _) => Some(i),
        (None, true) => {
            not_consulted = IndexFacts::Unavailable("it was not consulted".into());
            Some(&not_consulted)
        }
        (None, false) => None,
    };
    let mut index_down = false;
    let mut releases: &[Release] = &[];
    let mut metadata = None;
    match index {
        Some(IndexFacts::NotFound) if rule.is_none() => {
            let mut v = deny(
                req,
                DenialCategory::NotFound,
                format!(
                    "`{}` does not exist on the package index; check the name (possible typo or hallucinated package).",
                    req.package
                ),
            );
            v.resolved_version = pinned;
            return v;
        }
        // A registry rule is an operator's decision; a package the index does not
        // carry (a private one) keeps it.
        Some(IndexFacts::NotFound) => {}
        Some(IndexFacts::Unavailable(e)) => {
            index_down = true;
            errors.push(format!("package index unavailable: {e}"));
        }
        Some(IndexFacts::Found {
            releases: r,
            metadata: m,
            ..
        }) => {
            releases = r;
            metadata = m.as_ref();
        }
        None => {}
    }

    // A requirement no release satisfies, or a pin the index does not list,
    // cannot be installed (a hallucinated version). Only judged when the
    // index listed releases.
    if !releases.is_empty() {
        let listed = installable(releases);
        match (&pinned, req.specifiers()) {
            (None, Some(specs)) if !listed.iter().any(|(v, _)| specs.contains(v)) => {
                return deny(
                    req,
                    DenialCategory::NotFound,
                    format!(
                        "No release of `{}` on the package index satisfies `{}`.",
                        req.package,
                        req.requirement.as_deref().unwrap_or_default()
                    ),
                );
            }
            (Some(pin), _) if rule.is_none() => {
                // Yanked releases still exist: compare against every listing.
                let wanted = Version::from_str(pin).ok();
                let exists = |w: &Version| {
                    releases
                        .iter()
                        .any(|r| Version::from_str(r.version.trim()).is_ok_and(|v| v == *w))
                };
                if wanted.is_some_and(|w| !exists(&w)) {
                    let mut v = deny(
                        req,
                        DenialCategory::NotFound,
                        format!(
                            "`{}` has no release {pin} on the package index; check the version.",
                            req.package
                        ),
                    );
                    v.resolved_version = Some(pin.clone());
                    return v;
                }
            }
            _ => {}
        }
    }

    let resolved: Option<String> = match &pinned {
        Some(p) => Some(p.clone()),
        None if releases.is_empty() => None,
        None => select_version(req, registry, releases),
    };

    // ---- unpinned version-constrained package: the release an unpinned
    // install gets must satisfy the bounds (W19).
    if let (Some(rule), None, None) = (rule, &pinned, req.specifiers()) {
        if let (Status::VersionConstrained, Some(bounds)) = (rule.status, rule.bounds()) {
            let latest = best_release(releases, |_| true);
            if let Some(latest) =
                latest.filter(|l| Version::from_str(l).is_ok_and(|v| !bounds.contains(&v)))
            {
                let compliant = best_release(releases, |v| bounds.contains(v));
                let suggested = match &compliant {
                    Some(c) => requirement_with(
                        req,
                        VersionSpecifiers::from_str(&format!("=={c}")).unwrap_or(bounds.clone()),
                    ),
                    None => requirement_with(req, bounds.clone()),
                };
                let constraint = rule.bounds_text().unwrap_or_default();
                let mut v = registry_denial(
                    req,
                    rule,
                    Some(format!(
                        "The latest release {latest} is outside the allowed range {constraint}; pin a version within it."
                    )),
                    Some(suggested),
                );
                v.resolved_version = Some(latest);
                return v;
            }
        }
    }

    // ---- license of the judged release (recorded for known packages, judged for unknown)
    let mut license_missing = false;
    let resolved_license = match (metadata, index) {
        (Some((_, meta)), _) => Some(license::resolve(meta)),
        (None, Some(IndexFacts::Found { .. })) if resolved.is_some() => {
            license_missing = true;
            errors.push(format!(
                "package index unavailable: metadata of {} {} could not be fetched",
                req.package,
                resolved.as_deref().unwrap_or_default()
            ));
            None
        }
        (None, Some(IndexFacts::Found { .. })) => Some(license::ResolvedLicense {
            expression: None,
            source: license::LicenseSource::None,
        }),
        _ => None,
    };
    let license_text = resolved_license.as_ref().map(|l| {
        l.expression
            .clone()
            .unwrap_or_else(|| "UNKNOWN".to_string())
    });

    // ---- advisories, matched to the judged release
    let mut hits = Vec::new();
    match (&facts.advisories, &resolved) {
        (Some(AdvisoryFacts::Found(records)), Some(version)) => {
            if !records.is_empty() {
                hits = crate::advisory::assess(records, &req.canonical, version);
            }
        }
        (Some(AdvisoryFacts::Unavailable(e)), _) => {
            errors.push(format!("advisory source unavailable: {e}"))
        }
        (None, Some(_)) => errors.push("advisory source unavailable: it was not consulted".into()),
        (_, None) => {
            if index_down {
                errors.push("advisories not matched: no version could be resolved while the index is unavailable".into());
            }
        }
    }
    let advisories_down = matches!(facts.advisories, Some(AdvisoryFacts::Unavailable(_)) | None)
        && resolved.is_some();

    let max_cvss = hits
        .iter()
        .filter_map(|h| h.score)
        .fold(None, |m: Option<f64>, s| Some(m.map_or(s, |m| m.max(s))));
    let fill = |v: &mut Verdict| {
        v.resolved_version = resolved.clone();
        v.registry_status = rule.map(|r| r.status.as_str().to_string());
        v.license = license_text.clone();
        v.cve_ids = hits.iter().map(|h| h.id.clone()).collect();
        v.max_cvss = max_cvss;
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
        v.upstream_error = (!errors.is_empty()).then(|| errors.join("; "));
    };

    // ---- malicious and CVE gates
    let malicious: Vec<&str> = hits
        .iter()
        .filter(|h| h.malicious)
        .map(|h| h.id.as_str())
        .collect();
    if !malicious.is_empty() {
        let mut v = deny(
            req,
            DenialCategory::Malicious,
            format!(
                "`{}` {} is flagged as a malicious package ({}); do not install it.",
                req.package,
                resolved.as_deref().unwrap_or_default(),
                malicious.join(", ")
            ),
        );
        fill(&mut v);
        return v;
    }
    let threshold = registry.policies.cve_threshold;
    if let Some(m) = max_cvss.filter(|m| meets_threshold(*m, threshold)) {
        let mut v = deny(
            req,
            DenialCategory::Cve,
            format!(
                "Critical CVE detected (max CVSS {}); threshold is {:.1}.",
                py_float(m),
                threshold * 10.0
            ),
        );
        fill(&mut v);
        return v;
    }

    // ---- missing facts: the fail policy decides
    let facts_missing = index_down || license_missing || advisories_down;
    if facts_missing && fail == FailPolicy::Closed {
        let mut v = deny(
            req,
            DenialCategory::Upstream,
            format!(
                "Could not be judged: {}. The fail policy is closed, so the package is denied until the upstream answers.",
                errors.join("; ")
            ),
        );
        fill(&mut v);
        return v;
    }

    // ---- registry-known and allowed (preferred, approved, version-constrained ok)
    if let Some(rule) = rule {
        let reason = rule
            .reason
            .clone()
            .unwrap_or_else(|| format!("Allowed by local registry ({}).", rule.status.as_str()));
        let mut v = base(req, Decision::Allowed, reason);
        fill(&mut v);
        v.version_constraint = registry::version_constraint(rule);
        v.needs_rationale = rule.status == Status::Approved;
        return v;
    }

    // ---- unknown package
    if index_down || license_missing {
        let mut v = base(
            req,
            Decision::ProvisionallyAllowed,
            format!(
                "Not yet in your approved registry. The package index could not be asked ({}), so the existence and \
                 license gates were skipped; provisionally allowed under the open fail policy. Check again when the \
                 index is reachable.",
                errors.join("; ")
            ),
        );
        fill(&mut v);
        return v;
    }
    let expression = resolved_license
        .as_ref()
        .and_then(|l| l.expression.as_deref());
    let judgement = license::judge(expression, &registry.policies);
    let mut v = match judgement.action {
        LicenseAction::Block => deny(req, DenialCategory::License, judgement.reason),
        LicenseAction::Allow | LicenseAction::Review => {
            let mut reason = judgement.reason;
            if advisories_down {
                reason.push_str(" Advisories could not be checked (see upstream_error).");
            }
            let mut v = base(req, Decision::ProvisionallyAllowed, reason);
            v.is_requestable = true;
            v.auto_request_approval = judgement.action == LicenseAction::Review;
            v
        }
    };
    fill(&mut v);
    v
}

#[cfg(test)]
mod tests;
