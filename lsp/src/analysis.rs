//! A document's dependencies (via the shared manifest model), what to ask
//! the backend about them, and the diagnostics for the answers.

use std::collections::HashMap;
use std::path::Path;
use std::str::FromStr;

use lex_align_engine::registry::Status;
use lex_align_engine::verdict::{Decision, DenialCategory, Verdict};
use lex_align_manifest::{Dependency, FindingKind, Manifest, Scope, Span};
use pep440_rs::{Operator, Version, VersionSpecifiers};

use crate::backend::{EvalItem, PolicyBackend, RuleInfo};

/// The kinds of file the server judges.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DocKind {
    Pyproject,
    Requirements,
    /// Anything else: the server stays silent.
    Other,
}

impl DocKind {
    pub fn of(file_name: &str) -> DocKind {
        let lower = file_name.to_ascii_lowercase();
        if lower == "pyproject.toml" {
            DocKind::Pyproject
        } else if lower.ends_with(".txt") && lower.contains("requirements")
            || lower.ends_with(".in") && lower.contains("requirements")
        {
            DocKind::Requirements
        } else {
            DocKind::Other
        }
    }
}

/// One stable diagnostic code; see `docs/diagnostics.md`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Code {
    Banned,
    Deprecated,
    VersionConstraint,
    Vulnerable,
    Malicious,
    License,
    NotFound,
    Provisional,
    NeedsRationale,
    InvalidRequirement,
    UpstreamUnavailable,
    CveAlert,
}

impl Code {
    pub fn as_str(self) -> &'static str {
        match self {
            Code::Banned => "banned",
            Code::Deprecated => "deprecated",
            Code::VersionConstraint => "version-constraint",
            Code::Vulnerable => "vulnerable",
            Code::Malicious => "malicious",
            Code::License => "license",
            Code::NotFound => "not-found",
            Code::Provisional => "provisional",
            Code::NeedsRationale => "needs-rationale",
            Code::InvalidRequirement => "invalid-requirement",
            Code::UpstreamUnavailable => "upstream-unavailable",
            Code::CveAlert => "cve-alert",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    Error,
    Warning,
    Information,
    Hint,
}

/// A diagnostic in byte offsets; the server converts to positions.
#[derive(Debug, Clone, PartialEq)]
pub struct Problem {
    pub span: Span,
    pub severity: Severity,
    pub code: Code,
    pub message: String,
    /// Canonical name of the dependency the problem sits on.
    pub canonical: Option<String>,
}

/// The parsed view of one document.
#[derive(Debug, Clone, Default)]
pub struct Parsed {
    /// Direct dependencies, one per source span.
    pub direct: Vec<Dependency>,
    /// Packages only a lock file names, with `via` and `locked_version`.
    pub transitive: Vec<Dependency>,
    pub findings: Vec<lex_align_manifest::Finding>,
}

/// Parses `text` as a document of `kind`. `path` locates lock files and
/// `-r` includes next to it; `read` reads such files (open editor buffers
/// first, then disk).
pub fn parse(
    kind: DocKind,
    path: Option<&Path>,
    text: &str,
    read: &dyn Fn(&Path) -> Option<String>,
) -> Parsed {
    // The full path as label: `-r` includes resolve against it.
    let label = path.map_or_else(
        || "pyproject.toml".to_string(),
        |p| p.to_string_lossy().into_owned(),
    );
    let dir = path.and_then(Path::parent);
    let manifest: Manifest = match kind {
        DocKind::Pyproject => lex_align_manifest::parse_pyproject(&label, text),
        DocKind::Requirements => {
            let read_include = |name: &str| read(Path::new(name));
            lex_align_manifest::parse_requirements(&label, text, &read_include)
        }
        DocKind::Other => Manifest::default(),
    };
    let mut direct: Vec<Dependency> = Vec::new();
    for dep in manifest.dependencies {
        // Only what this file declares gets a diagnostic here; included files get their own.
        if dep.source.file != label || !dep.direct {
            continue;
        }
        if direct.iter().any(|d| d.source.span == dep.source.span) {
            continue;
        }
        direct.push(dep);
    }
    let findings = manifest
        .findings
        .into_iter()
        .filter(|f| f.file == label)
        .collect();
    let transitive = match (kind, dir) {
        (DocKind::Pyproject, Some(dir)) => locked(&mut direct, dir, read),
        _ => Vec::new(),
    };
    Parsed {
        direct,
        transitive,
        findings,
    }
}

/// Reads `uv.lock` (else `pylock.toml`) beside the project, sets the locked
/// version of each direct dependency and returns the transitive packages.
fn locked(
    direct: &mut [Dependency],
    dir: &Path,
    read: &dyn Fn(&Path) -> Option<String>,
) -> Vec<Dependency> {
    let packages = if let Some(text) = read(&dir.join("uv.lock")) {
        lex_align_manifest::parse_uv_lock("uv.lock", &text)
    } else if let Some(text) = read(&dir.join("pylock.toml")) {
        lex_align_manifest::parse_pylock("pylock.toml", &text)
    } else {
        return Vec::new();
    };
    let Ok(packages) = packages else {
        return Vec::new();
    };
    let attributed = lex_align_manifest::attribute(direct, &packages);
    // `attribute` returns the direct dependencies first, in their order.
    for (dep, found) in direct.iter_mut().zip(&attributed) {
        dep.locked_version.clone_from(&found.locked_version);
    }
    attributed.into_iter().filter(|a| !a.direct).collect()
}

/// What to ask the backend for `dep`: its requirement, and the version the
/// lock file resolves when that version satisfies the requirement (a stale
/// lock must not hide the specifier being typed).
pub fn eval_item(dep: &Dependency) -> EvalItem {
    let version =
        dep.locked_version
            .as_ref()
            .filter(|v| match (&dep.specifier, Version::from_str(v)) {
                (None, Ok(_)) => true,
                (Some(spec), Ok(version)) => {
                    VersionSpecifiers::from_str(spec).is_ok_and(|s| s.contains(&version))
                }
                _ => false,
            });
    EvalItem {
        requirement: dep.requirement.clone(),
        version: version.cloned(),
    }
}

/// The transitive package as an evaluation item (always at its locked version).
pub fn transitive_item(dep: &Dependency) -> EvalItem {
    EvalItem {
        requirement: dep.canonical.clone(),
        version: dep.locked_version.clone(),
    }
}

/// The verdict cache of one document: requirement (and pinned version) → verdict.
pub type Verdicts = HashMap<EvalItem, Verdict>;

/// Every diagnostic for `parsed`: parse findings, then per dependency the
/// full verdict when known, else what the registry alone says.
pub fn problems(parsed: &Parsed, verdicts: &Verdicts, backend: &dyn PolicyBackend) -> Vec<Problem> {
    let mut out = Vec::new();
    for f in &parsed.findings {
        if f.kind == FindingKind::Unsupported {
            continue;
        }
        out.push(Problem {
            span: f.span,
            severity: Severity::Error,
            code: Code::InvalidRequirement,
            message: f.message.clone(),
            canonical: None,
        });
    }
    for dep in &parsed.direct {
        let problem = match verdicts.get(&eval_item(dep)) {
            Some(v) => verdict_problem(v),
            None => backend
                .registry_rule(&dep.canonical)
                .and_then(|rule| rule_problem(dep, &rule)),
        };
        if let Some((severity, code, message)) = problem {
            out.push(Problem {
                span: dep.source.span,
                severity,
                code,
                message,
                canonical: Some(dep.canonical.clone()),
            });
        }
        if let Some(message) = cve_alert_message(&dep.name, &backend.cve_alerts(&dep.canonical)) {
            out.push(Problem {
                span: dep.source.span,
                severity: Severity::Warning,
                code: Code::CveAlert,
                message,
                canonical: Some(dep.canonical.clone()),
            });
        }
    }
    for t in &parsed.transitive {
        let Some(v) = verdicts.get(&transitive_item(t)) else {
            continue;
        };
        let Some((severity, code, message)) = verdict_problem(v) else {
            continue;
        };
        // Most transitive packages are not in the registry (provisional):
        // only denials travel up to the direct dependency.
        if severity != Severity::Error {
            continue;
        }
        let version = t.locked_version.as_deref().unwrap_or("?");
        for dep in parsed
            .direct
            .iter()
            .filter(|d| t.via.contains(&d.canonical))
        {
            out.push(Problem {
                span: dep.source.span,
                severity,
                code,
                message: format!("pulls in {} {version} (locked): {message}", t.name),
                canonical: Some(dep.canonical.clone()),
            });
        }
    }
    out
}

/// The warning for a dependency with open re-scan alerts, naming every
/// advisory and the versions in use it affects; `None` without alerts.
pub fn cve_alert_message(name: &str, alerts: &[crate::backend::CveAlertInfo]) -> Option<String> {
    if alerts.is_empty() {
        return None;
    }
    let mut ids: Vec<&str> = alerts
        .iter()
        .flat_map(|a| a.advisories.iter().map(String::as_str))
        .collect();
    ids.sort_unstable();
    ids.dedup();
    let mut versions: Vec<&str> = alerts.iter().map(|a| a.version.as_str()).collect();
    versions.sort_unstable();
    versions.dedup();
    let cvss = alerts
        .iter()
        .filter_map(|a| a.max_cvss)
        .reduce(f64::max)
        .map(|c| format!(", max CVSS {c}"))
        .unwrap_or_default();
    Some(format!(
        "{name}: CVE alert {} (new since allowed; affects {} in use{cvss}). Upgrade to a fixed version.",
        ids.join(", "),
        versions.join(", ")
    ))
}

/// Severity, code and message for a full verdict; `None` when it is clean.
pub fn verdict_problem(v: &Verdict) -> Option<(Severity, Code, String)> {
    let code = match v.verdict {
        Decision::Denied => match v.denial_category {
            Some(DenialCategory::Registry) | None => match v.registry_status.as_deref() {
                Some("banned") => Code::Banned,
                Some("deprecated") => Code::Deprecated,
                Some("version-constrained") => Code::VersionConstraint,
                _ => Code::Banned,
            },
            Some(DenialCategory::License) => Code::License,
            Some(DenialCategory::Cve) => Code::Vulnerable,
            Some(DenialCategory::Malicious) => Code::Malicious,
            Some(DenialCategory::NotFound) => Code::NotFound,
            Some(DenialCategory::Upstream) => Code::UpstreamUnavailable,
        },
        _ if v.upstream_error.is_some() => Code::UpstreamUnavailable,
        Decision::ProvisionallyAllowed => Code::Provisional,
        Decision::Allowed if v.needs_rationale => Code::NeedsRationale,
        Decision::Allowed => return None,
    };
    let severity = match v.verdict {
        Decision::Denied => Severity::Error,
        Decision::ProvisionallyAllowed => Severity::Warning,
        Decision::Allowed if code == Code::UpstreamUnavailable => Severity::Information,
        Decision::Allowed => Severity::Hint,
    };
    let mut message = format!("{} {}: {}", v.package, v.verdict.as_str(), v.reason);
    if let Some(r) = &v.replacement {
        message.push_str(&format!(" Use {r} instead."));
    }
    if let Some(s) = &v.suggested_requirement {
        message.push_str(&format!(" Suggested: {s}."));
    }
    if let Some(first_safe) = first_safe_version(v) {
        message.push_str(&format!(" First safe version: {first_safe}."));
    }
    if let Some(e) = &v.upstream_error {
        if code == Code::UpstreamUnavailable {
            message.push_str(&format!(" ({e})"));
        }
    }
    Some((severity, code, message))
}

/// What the registry alone says about `dep` (shown before the network answers).
pub fn rule_problem(dep: &Dependency, rule: &RuleInfo) -> Option<(Severity, Code, String)> {
    let reason = rule
        .reason
        .clone()
        .unwrap_or_else(|| "Blocked by enterprise registry.".to_string());
    match rule.status {
        Status::Banned => Some((
            Severity::Error,
            Code::Banned,
            format!("{} is banned: {reason}", dep.name),
        )),
        Status::Deprecated => {
            let mut m = format!("{} is deprecated: {reason}", dep.name);
            if let Some(r) = &rule.replacement {
                m.push_str(&format!(" Use {r} instead."));
            }
            Some((Severity::Error, Code::Deprecated, m))
        }
        Status::VersionConstrained => {
            let constraint = rule.version_constraint()?;
            if admits_only(dep.specifier.as_deref(), rule) {
                None
            } else {
                let spec = dep.specifier.as_deref().unwrap_or("any version");
                Some((
                    Severity::Error,
                    Code::VersionConstraint,
                    format!("{}: {spec} admits versions outside the registry's constraint {constraint}: {reason}", dep.name),
                ))
            }
        }
        Status::Preferred | Status::Approved => None,
    }
}

/// Whether every version `specifier` admits lies within the rule's bounds.
/// Conservative: an unbounded side or an unparsable specifier is outside.
pub fn admits_only(specifier: Option<&str>, rule: &RuleInfo) -> bool {
    let Some(spec) = specifier.and_then(|s| VersionSpecifiers::from_str(s).ok()) else {
        return false;
    };
    let mut lower: Option<Version> = None;
    let mut upper: Option<(Version, bool)> = None; // (bound, inclusive)
    for s in spec.iter() {
        let v = s.version().clone();
        match s.operator() {
            Operator::Equal | Operator::ExactEqual => {
                lower = Some(lower.map_or(v.clone(), |l| l.max(v.clone())));
                upper = Some((v, true));
            }
            Operator::GreaterThanEqual | Operator::GreaterThan => {
                lower = Some(lower.map_or(v.clone(), |l| l.max(v)));
            }
            Operator::TildeEqual => {
                lower = Some(lower.map_or(v.clone(), |l| l.max(v.clone())));
                // ~=X.Y.Z admits < X.(Y+1); the rule's exclusive max decides by comparing the prefix bump.
                let release = v.release();
                if release.len() >= 2 {
                    let mut bumped = release[..release.len() - 1].to_vec();
                    if let Some(last) = bumped.last_mut() {
                        *last += 1;
                    }
                    upper = Some((Version::new(bumped), false));
                }
            }
            Operator::LessThan => upper = Some((v, false)),
            Operator::LessThanEqual => upper = Some((v, true)),
            _ => {}
        }
    }
    let lower_ok = match (&rule.min_version, &lower) {
        (None, _) => true,
        (Some(min), Some(l)) => Version::from_str(min).is_ok_and(|m| *l >= m),
        (Some(_), None) => false,
    };
    let upper_ok = match (&rule.max_version, &upper) {
        (None, _) => true,
        (Some(max), Some((u, inclusive))) => {
            Version::from_str(max).is_ok_and(|m| if *inclusive { *u < m } else { *u <= m })
        }
        (Some(_), None) => false,
    };
    lower_ok && upper_ok
}

/// The lowest version that fixes every advisory of the verdict.
pub fn first_safe_version(v: &Verdict) -> Option<String> {
    if v.fixed_versions.is_empty() || v.advisories.iter().any(|a| a.malicious) {
        return None;
    }
    v.fixed_versions
        .iter()
        .filter_map(|f| {
            Version::from_str(&f.fixed)
                .ok()
                .map(|ver| (ver, f.fixed.clone()))
        })
        .max_by(|a, b| a.0.cmp(&b.0))
        .map(|(_, s)| s)
}

/// Whether a dependency's text is a PEP 508 string we may rewrite (Poetry
/// entries are `name = constraint` tables, not requirement strings).
pub fn rewritable(dep: &Dependency) -> bool {
    !matches!(dep.scope, Scope::PoetryMain | Scope::PoetryGroup(_)) && dep.url.is_none()
}
