//! OSV advisory records and local matching: which advisories affect a
//! version (OSV range semantics, PEP 440 ordering), their scores (CVSS
//! vectors via the `cvss` crate, else the severity label) and the first
//! fixed version.

use std::str::FromStr;
use std::sync::atomic::{AtomicU8, Ordering};

use pep440_rs::Version;
use serde::{Deserialize, Serialize};
use yaml_rust2::{Yaml, YamlLoader};

use crate::verdict::AdvisoryHit;

/// The subset of the OSV schema we read. Unknown fields are ignored, so a
/// full record from the API, the PyPA database or an export zip all parse.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct OsvRecord {
    pub id: String,
    #[serde(default)]
    pub modified: Option<String>,
    #[serde(default)]
    pub withdrawn: Option<String>,
    #[serde(default)]
    pub aliases: Vec<String>,
    #[serde(default)]
    pub summary: Option<String>,
    #[serde(default)]
    pub details: Option<String>,
    #[serde(default)]
    pub severity: Vec<OsvSeverity>,
    #[serde(default)]
    pub affected: Vec<OsvAffected>,
    #[serde(default)]
    pub database_specific: Option<serde_json::Value>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct OsvSeverity {
    #[serde(rename = "type")]
    pub kind: String,
    pub score: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct OsvAffected {
    #[serde(default)]
    pub package: Option<OsvPackage>,
    #[serde(default)]
    pub ranges: Vec<OsvRange>,
    #[serde(default)]
    pub versions: Vec<String>,
    #[serde(default)]
    pub severity: Vec<OsvSeverity>,
    #[serde(default)]
    pub database_specific: Option<serde_json::Value>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct OsvPackage {
    pub ecosystem: String,
    pub name: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct OsvRange {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub events: Vec<OsvEvent>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct OsvEvent {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub introduced: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fixed: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_affected: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<String>,
}

// ---------------------------------------------------------------- unscored

/// How an advisory with no score (no CVSS vector, no severity label, as
/// in the package index's own `vulnerabilities` list) is weighed against
/// the CVE threshold (`LEXALIGN_UNSCORED_ADVISORIES`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum UnscoredPolicy {
    /// It counts as meeting the threshold: DENIED (`cve`), the reason says
    /// the severity is unknown and names the fix.
    #[default]
    Deny,
    /// It does not deny by itself; the verdict still lists it (`cve_ids`,
    /// `advisories`, `fixed_versions`).
    Provisional,
}

impl UnscoredPolicy {
    pub fn as_str(self) -> &'static str {
        match self {
            UnscoredPolicy::Deny => "deny",
            UnscoredPolicy::Provisional => "provisional",
        }
    }

    /// `deny` or `provisional` (any case).
    pub fn parse(text: &str) -> Option<UnscoredPolicy> {
        match text.trim().to_ascii_lowercase().as_str() {
            "deny" => Some(UnscoredPolicy::Deny),
            "provisional" => Some(UnscoredPolicy::Provisional),
            _ => None,
        }
    }
}

static UNSCORED: AtomicU8 = AtomicU8::new(0);

/// Sets the process-wide [`UnscoredPolicy`] the advisories gate applies
/// (the daemon does, from its configuration, at start). Default: `Deny`.
pub fn set_unscored_policy(policy: UnscoredPolicy) {
    let v = match policy {
        UnscoredPolicy::Deny => 0,
        UnscoredPolicy::Provisional => 1,
    };
    UNSCORED.store(v, Ordering::Relaxed);
}

/// The policy set by [`set_unscored_policy`].
pub fn unscored_policy() -> UnscoredPolicy {
    match UNSCORED.load(Ordering::Relaxed) {
        1 => UnscoredPolicy::Provisional,
        _ => UnscoredPolicy::Deny,
    }
}

// ---------------------------------------------------------------- parsing

/// Parse one OSV record from its JSON form (API answer, export zip entry).
pub fn parse_osv_json(text: &str) -> Result<OsvRecord, String> {
    serde_json::from_str(text).map_err(|e| format!("invalid OSV JSON record: {e}"))
}

/// Parse one OSV record from its YAML form (the PyPA advisory database).
pub fn parse_osv_yaml(text: &str) -> Result<OsvRecord, String> {
    let value = osv_yaml_to_json(text)?;
    let id = value
        .get("id")
        .and_then(|v| v.as_str())
        .unwrap_or("<no id>")
        .to_owned();
    serde_json::from_value(value).map_err(|e| format!("invalid OSV YAML record {id}: {e}"))
}

/// The JSON value of an OSV YAML document, with every field kept (for
/// servers that hand the full record on).
///
/// Numbers outside `database_specific` become strings with their YAML text,
/// because an unquoted version such as `1.10` is a version, not the float
/// 1.1; inside `database_specific` they stay numbers (a numeric `cvss`).
pub fn osv_yaml_to_json(text: &str) -> Result<serde_json::Value, String> {
    let docs = YamlLoader::load_from_str(text).map_err(|e| format!("invalid YAML: {e}"))?;
    let doc = docs
        .into_iter()
        .next()
        .ok_or_else(|| "invalid OSV YAML record: empty document".to_owned())?;
    if !doc.is_hash() {
        return Err("invalid OSV YAML record: the top level is not a mapping".to_owned());
    }
    Ok(yaml_to_json(&doc, false))
}

fn yaml_to_json(y: &Yaml, numbers: bool) -> serde_json::Value {
    use serde_json::Value;
    match y {
        Yaml::String(s) => Value::String(s.clone()),
        Yaml::Real(s) => {
            if numbers {
                if let Some(n) = s.parse::<f64>().ok().and_then(serde_json::Number::from_f64) {
                    return Value::Number(n);
                }
            }
            Value::String(s.clone())
        }
        Yaml::Integer(i) => {
            if numbers {
                Value::Number((*i).into())
            } else {
                Value::String(i.to_string())
            }
        }
        Yaml::Boolean(b) => Value::Bool(*b),
        Yaml::Array(items) => {
            Value::Array(items.iter().map(|i| yaml_to_json(i, numbers)).collect())
        }
        Yaml::Hash(map) => {
            let mut out = serde_json::Map::new();
            for (k, v) in map {
                let key = match k {
                    Yaml::String(s) | Yaml::Real(s) => s.clone(),
                    Yaml::Integer(i) => i.to_string(),
                    Yaml::Boolean(b) => b.to_string(),
                    _ => continue,
                };
                let nested_numbers = numbers || key == "database_specific";
                out.insert(key, yaml_to_json(v, nested_numbers));
            }
            Value::Object(out)
        }
        Yaml::Alias(_) | Yaml::Null | Yaml::BadValue => Value::Null,
    }
}

// ---------------------------------------------------------------- matching

/// PEP 503 canonical form: lowercase, runs of `-`, `_`, `.` become one `-`.
fn canonicalize(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut in_sep = false;
    for c in name.trim().chars() {
        if matches!(c, '-' | '_' | '.') {
            if !in_sep {
                out.push('-');
            }
            in_sep = true;
        } else {
            out.extend(c.to_lowercase());
            in_sep = false;
        }
    }
    out
}

fn is_pypi_package(affected: &OsvAffected, canonical: &str) -> bool {
    affected.package.as_ref().is_some_and(|p| {
        p.ecosystem.eq_ignore_ascii_case("PyPI") && canonicalize(&p.name) == canonical
    })
}

/// Whether `record` says `version` of the PyPI package `canonical` is
/// affected: an explicit `versions` entry or an OSV range.
///
/// Pure matching: a withdrawn record still matches here; [`assess`] drops it.
pub fn affects(record: &OsvRecord, canonical: &str, version: &Version) -> bool {
    let canonical = canonicalize(canonical);
    let text = version.to_string();
    record
        .affected
        .iter()
        .any(|a| is_pypi_package(a, &canonical) && entry_affects(a, &text, Some(version)))
}

/// First fixed version after `version` among the ranges of the `affected`
/// entries of `record` that match `version`; `None` when nothing matches or
/// no fix is known.
pub fn first_fixed(record: &OsvRecord, canonical: &str, version: &Version) -> Option<String> {
    let canonical = canonicalize(canonical);
    let text = version.to_string();
    match_record(record, &canonical, &text, Some(version)).flatten()
}

/// `Some(first fixed version)` when the record affects the version.
fn match_record(
    record: &OsvRecord,
    canonical: &str,
    text: &str,
    version: Option<&Version>,
) -> Option<Option<String>> {
    let mut hit = false;
    let mut best: Option<(Version, String)> = None;
    for a in &record.affected {
        if !is_pypi_package(a, canonical) || !entry_affects(a, text, version) {
            continue;
        }
        hit = true;
        let Some(v) = version else { continue };
        for range in evaluable_ranges(a) {
            for ev in &range.events {
                let Some(fixed) = ev.fixed.as_deref() else {
                    continue;
                };
                let Ok(fv) = Version::from_str(fixed.trim()) else {
                    continue;
                };
                if &fv > v && best.as_ref().is_none_or(|(b, _)| &fv < b) {
                    best = Some((fv, fixed.trim().to_owned()));
                }
            }
        }
    }
    hit.then(|| best.map(|(_, s)| s))
}

/// ECOSYSTEM ranges; SEMVER ones only when there is no ECOSYSTEM data (a
/// PyPI version is not a semver, and GIT ranges name commits, not versions).
fn evaluable_ranges(a: &OsvAffected) -> impl Iterator<Item = &OsvRange> {
    let has_ecosystem = a.ranges.iter().any(|r| r.kind == "ECOSYSTEM");
    a.ranges
        .iter()
        .filter(move |r| r.kind == "ECOSYSTEM" || (!has_ecosystem && r.kind == "SEMVER"))
}

fn entry_affects(a: &OsvAffected, text: &str, version: Option<&Version>) -> bool {
    if let Some(v) = version {
        if evaluable_ranges(a).any(|r| range_affects(r, v)) {
            return true;
        }
    }
    a.versions
        .iter()
        .any(|listed| listed_matches(listed, text, version))
}

/// An explicit `versions` entry equals the version: as PEP 440 versions
/// (`2.0` == `2.0.0`), else as strings (legacy, unparseable versions).
fn listed_matches(listed: &str, text: &str, version: Option<&Version>) -> bool {
    let listed = listed.trim();
    if listed == text {
        return true;
    }
    let Some(v) = version else { return false };
    // Cheap pre-check so that long version lists are not all parsed: equal
    // versions of epoch 0 share their leading release number.
    if v.epoch() == 0 && !listed.contains('!') {
        let digits = listed.trim_start_matches(['v', 'V']);
        let end = digits
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(digits.len());
        if let Ok(major) = digits[..end].parse::<u64>() {
            if v.release().first() != Some(&major) {
                return false;
            }
        }
    }
    Version::from_str(listed).is_ok_and(|lv| &lv == v)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum EventKind {
    Introduced,
    Fixed,
    LastAffected,
}

/// OSV range evaluation: walk the events in version order; `introduced`
/// opens (`"0"` = from the beginning), `fixed` closes exclusively,
/// `last_affected` closes inclusively. `limit` caps the whole range.
fn range_affects(range: &OsvRange, v: &Version) -> bool {
    // (None = "0", i.e. below every version)
    let mut events: Vec<(Option<Version>, EventKind)> = Vec::with_capacity(range.events.len());
    let mut limits: Vec<Version> = Vec::new();
    let mut unlimited = false;
    for ev in &range.events {
        if let Some(s) = ev.introduced.as_deref() {
            let s = s.trim();
            if s == "0" {
                events.push((None, EventKind::Introduced));
            } else if let Ok(x) = Version::from_str(s) {
                events.push((Some(x), EventKind::Introduced));
            }
        }
        if let Some(s) = ev.fixed.as_deref() {
            if let Ok(x) = Version::from_str(s.trim()) {
                events.push((Some(x), EventKind::Fixed));
            }
        }
        if let Some(s) = ev.last_affected.as_deref() {
            if let Ok(x) = Version::from_str(s.trim()) {
                events.push((Some(x), EventKind::LastAffected));
            }
        }
        if let Some(s) = ev.limit.as_deref() {
            if s.trim() == "*" {
                unlimited = true;
            } else if let Ok(x) = Version::from_str(s.trim()) {
                limits.push(x);
            }
        }
    }
    if !unlimited && !limits.is_empty() && limits.iter().all(|l| v >= l) {
        return false;
    }
    // Stable sort: None ("0") first; ties keep the record's order.
    events.sort_by(|a, b| a.0.cmp(&b.0));
    let mut affected = false;
    for (at, kind) in &events {
        match (kind, at) {
            (EventKind::Introduced, None) => affected = true,
            (EventKind::Introduced, Some(x)) if v >= x => affected = true,
            (EventKind::Fixed, Some(x)) if v >= x => affected = false,
            (EventKind::LastAffected, Some(x)) if v > x => affected = false,
            _ => {}
        }
    }
    affected
}

// ---------------------------------------------------------------- scores

/// The record's score: the highest CVSS base score of its vectors
/// (record- and affected-level; v2, v3.0, v3.1, v4.0), else its severity
/// label (CRITICAL 9.0, HIGH 7.0, MODERATE/MEDIUM 4.0, LOW 0.1), else a
/// numeric `database_specific.cvss`. One decimal.
pub fn score(record: &OsvRecord) -> Option<f64> {
    let vectors = record
        .severity
        .iter()
        .chain(record.affected.iter().flat_map(|a| a.severity.iter()));
    let best = vectors
        .filter_map(vector_score)
        .fold(None, |acc: Option<f64>, s| {
            Some(acc.map_or(s, |a| a.max(s)))
        });
    let specifics = || {
        record.database_specific.iter().chain(
            record
                .affected
                .iter()
                .filter_map(|a| a.database_specific.as_ref()),
        )
    };
    best.or_else(|| specifics().filter_map(label_score).reduce(f64::max))
        .or_else(|| specifics().filter_map(numeric_score).reduce(f64::max))
        .map(|s| (s * 10.0).round() / 10.0)
}

fn vector_score(sev: &OsvSeverity) -> Option<f64> {
    if !matches!(sev.kind.as_str(), "CVSS_V2" | "CVSS_V3" | "CVSS_V4") {
        return None;
    }
    let s = cvss::Cvss::from_str(sev.score.trim()).ok()?.score();
    s.is_finite().then_some(s)
}

fn label_score(spec: &serde_json::Value) -> Option<f64> {
    let label = spec.get("severity")?.as_str()?;
    match label.trim().to_ascii_uppercase().as_str() {
        "CRITICAL" => Some(9.0),
        "HIGH" => Some(7.0),
        "MODERATE" | "MEDIUM" => Some(4.0),
        "LOW" => Some(0.1),
        _ => None,
    }
}

fn numeric_score(spec: &serde_json::Value) -> Option<f64> {
    let cvss = spec.get("cvss")?;
    let n = match cvss {
        serde_json::Value::Object(o) => o.get("score")?,
        other => other,
    };
    let s = match n {
        serde_json::Value::Number(n) => n.as_f64()?,
        serde_json::Value::String(s) => s.trim().parse().ok()?,
        _ => return None,
    };
    (s.is_finite() && (0.0..=10.0).contains(&s)).then_some(s)
}

/// A malicious-package advisory: an OSV `MAL-` id, or such an alias.
pub fn is_malicious(record: &OsvRecord) -> bool {
    std::iter::once(&record.id)
        .chain(record.aliases.iter())
        .any(|id| id.starts_with("MAL-"))
}

/// The advisories among `records` that affect `version` of the package
/// `canonical` (PEP 503 name), withdrawn ones dropped, each with its score,
/// first fixed version and malicious flag. Order: as in `records`.
///
/// A version that is not PEP 440 is matched only against explicit
/// `versions` lists (by string), as no range can order it.
pub fn assess(records: &[OsvRecord], canonical: &str, version: &str) -> Vec<AdvisoryHit> {
    let canonical = canonicalize(canonical);
    let text = version.trim();
    let parsed = Version::from_str(text).ok();
    records
        .iter()
        .filter(|r| r.withdrawn.is_none())
        .filter_map(|r| {
            let fixed = match_record(r, &canonical, text, parsed.as_ref())?;
            Some(AdvisoryHit {
                id: r.id.clone(),
                aliases: r.aliases.clone(),
                score: score(r),
                fixed_version: fixed,
                malicious: is_malicious(r),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> Version {
        Version::from_str(s).unwrap()
    }

    fn range(events: &[(&str, &str)]) -> OsvRange {
        OsvRange {
            kind: "ECOSYSTEM".into(),
            events: events
                .iter()
                .map(|(k, val)| {
                    let val = Some((*val).to_owned());
                    match *k {
                        "introduced" => OsvEvent {
                            introduced: val,
                            ..Default::default()
                        },
                        "fixed" => OsvEvent {
                            fixed: val,
                            ..Default::default()
                        },
                        "last_affected" => OsvEvent {
                            last_affected: val,
                            ..Default::default()
                        },
                        "limit" => OsvEvent {
                            limit: val,
                            ..Default::default()
                        },
                        other => panic!("unknown event {other}"),
                    }
                })
                .collect(),
        }
    }

    #[test]
    fn canonical_names() {
        assert_eq!(canonicalize("Foo__Bar.-baz"), "foo-bar-baz");
        assert_eq!(canonicalize("PyYAML"), "pyyaml");
    }

    #[test]
    fn unordered_multi_pair_range() {
        // Deliberately out of order: evaluation must sort.
        let r = range(&[
            ("fixed", "2.0"),
            ("introduced", "1.5"),
            ("fixed", "1.2"),
            ("introduced", "0"),
        ]);
        assert!(range_affects(&r, &v("1.1")));
        assert!(!range_affects(&r, &v("1.2")));
        assert!(!range_affects(&r, &v("1.4.9")));
        assert!(range_affects(&r, &v("1.5")));
        assert!(range_affects(&r, &v("2.0rc1")));
        assert!(!range_affects(&r, &v("2.0")));
    }

    #[test]
    fn last_affected_and_limit() {
        let r = range(&[("introduced", "1.0"), ("last_affected", "1.3")]);
        assert!(range_affects(&r, &v("1.3")));
        assert!(!range_affects(&r, &v("1.3.1")));
        assert!(!range_affects(&r, &v("0.9")));
        let r = range(&[("introduced", "0"), ("limit", "3.0")]);
        assert!(range_affects(&r, &v("2.9")));
        assert!(!range_affects(&r, &v("3.0")));
    }

    #[test]
    fn yaml_numbers_keep_their_text() {
        let rec = parse_osv_yaml(
            "id: X-1\naffected:\n- package: {name: a, ecosystem: PyPI}\n  versions: [1.10, 2]\n\
             database_specific: {cvss: 7.5}\n",
        )
        .unwrap();
        assert_eq!(rec.affected[0].versions, vec!["1.10", "2"]);
        assert_eq!(score(&rec), Some(7.5));
    }
}
