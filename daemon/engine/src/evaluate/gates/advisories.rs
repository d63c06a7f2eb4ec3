//! Gates 4 and 5, advisories matched to the judged release: a malicious
//! package is denied whatever its score, then the highest CVSS score is held
//! against `cve_threshold`, then advisories without any score (the package
//! index's own list carries none) count as meeting it unless the unscored
//! policy is `provisional`. Applies to registry packages too.

use std::str::FromStr;

use pep440_rs::Version;

use super::{deny, Ctx};
use crate::advisory::{unscored_policy, UnscoredPolicy};
use crate::evaluate::AdvisoryFacts;
use crate::verdict::{AdvisoryHit, DenialCategory, Verdict};

pub(crate) fn run(ctx: &mut Ctx) -> Option<Verdict> {
    run_with(ctx, unscored_policy())
}

pub(crate) fn run_with(ctx: &mut Ctx, unscored: UnscoredPolicy) -> Option<Verdict> {
    match_advisories(ctx);
    let req = ctx.req;

    let malicious: Vec<&str> = ctx
        .hits
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
                ctx.resolved.as_deref().unwrap_or_default(),
                malicious.join(", ")
            ),
        );
        ctx.fill(&mut v);
        return Some(v);
    }

    let threshold = ctx.registry.policies.cve_threshold;
    if let Some(m) = ctx.max_cvss.filter(|m| meets_threshold(*m, threshold)) {
        let mut v = deny(
            req,
            DenialCategory::Cve,
            format!(
                "Critical CVE detected (max CVSS {}); threshold is {:.1}.",
                py_float(m),
                threshold * 10.0
            ),
        );
        ctx.fill(&mut v);
        return Some(v);
    }

    let unknown = unscored_hits(&ctx.hits);
    if unknown.is_empty() || unscored == UnscoredPolicy::Provisional {
        return None;
    }
    let reason = unscored_reason(
        &req.package,
        ctx.resolved.as_deref().unwrap_or_default(),
        &unknown,
        threshold,
    );
    let mut v = deny(req, DenialCategory::Cve, reason);
    ctx.fill(&mut v);
    Some(v)
}

/// The hits with no score of their own and no scored hit for the same
/// vulnerability (a PYSEC record and its GHSA twin share an id or alias:
/// the twin's score stands for both).
fn unscored_hits(hits: &[AdvisoryHit]) -> Vec<&AdvisoryHit> {
    let names = |h: &AdvisoryHit| -> Vec<String> {
        std::iter::once(&h.id)
            .chain(h.aliases.iter())
            .map(|s| s.trim().to_ascii_uppercase())
            .collect()
    };
    let scored: Vec<Vec<String>> = hits
        .iter()
        .filter(|h| h.score.is_some())
        .map(names)
        .collect();
    hits.iter()
        .filter(|h| h.score.is_none())
        .filter(|h| {
            let mine = names(h);
            !scored.iter().any(|s| s.iter().any(|n| mine.contains(n)))
        })
        .collect()
}

/// Says the severity is unknown, why that denies, and the version to move
/// to (the highest of the advisories' first fixed versions, which clears
/// them all).
fn unscored_reason(
    package: &str,
    version: &str,
    unknown: &[&AdvisoryHit],
    threshold: f64,
) -> String {
    let label = |h: &AdvisoryHit| match h.aliases.iter().find(|a| a.starts_with("CVE-")) {
        Some(cve) => format!("{} ({cve})", h.id),
        None => h.id.clone(),
    };
    let ids: Vec<String> = unknown.iter().map(|h| label(h)).collect();
    let (count, noun) = match unknown.len() {
        1 => ("an advisory".to_owned(), "its"),
        n => (format!("{n} advisories"), "their"),
    };
    let mut reason = format!(
        "`{package}` {version} is affected by {count} of unknown severity: {}. The advisory source gives no \
         score, so {noun} severity counts as meeting the CVE threshold ({:.1}) under \
         LEXALIGN_UNSCORED_ADVISORIES=deny.",
        ids.join(", "),
        threshold * 10.0
    );
    let unfixed: Vec<&str> = unknown
        .iter()
        .filter(|h| h.fixed_version.is_none())
        .map(|h| h.id.as_str())
        .collect();
    let target = unknown
        .iter()
        .filter_map(|h| h.fixed_version.as_deref())
        .max_by_key(|f| Version::from_str(f).ok());
    match (target, unfixed.is_empty()) {
        (Some(fixed), true) => {
            reason.push_str(&format!(" Fixed in {fixed}: move to `{package}>={fixed}`."))
        }
        (Some(fixed), false) => reason.push_str(&format!(
            " {fixed} fixes the others; no fixed version is known for {}.",
            unfixed.join(", ")
        )),
        (None, _) => reason.push_str(" No fixed version is known yet."),
    }
    reason
}

/// The hits for the judged release, and why there may be none.
fn match_advisories(ctx: &mut Ctx) {
    let facts = ctx.facts;
    match (&facts.advisories, &ctx.resolved) {
        (Some(AdvisoryFacts::Found(records)), Some(version)) => {
            if !records.is_empty() {
                ctx.hits = crate::advisory::assess(records, &ctx.req.canonical, version);
            }
        }
        (Some(AdvisoryFacts::Unavailable(e)), _) => {
            ctx.errors.push(format!("advisory source unavailable: {e}"))
        }
        (None, Some(_)) => ctx
            .errors
            .push("advisory source unavailable: it was not consulted".into()),
        (_, None) => {
            if ctx.index_down {
                ctx.errors.push("advisories not matched: no version could be resolved while the index is unavailable".into());
            }
        }
    }
    ctx.advisories_down = matches!(facts.advisories, Some(AdvisoryFacts::Unavailable(_)) | None)
        && ctx.resolved.is_some();
    ctx.max_cvss = ctx
        .hits
        .iter()
        .filter_map(|h| h.score)
        .fold(None, |m: Option<f64>, s| Some(m.map_or(s, |m| m.max(s))));
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
pub(crate) fn meets_threshold(score: f64, threshold: f64) -> bool {
    (score * 10.0).round() as i64 >= (threshold * 100.0).round() as i64
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::advisory::{OsvAffected, OsvEvent, OsvPackage, OsvRange, OsvRecord};
    use crate::evaluate::{decide, Facts, FailPolicy, IndexFacts, LicenseMetadata, Needs, Release};
    use crate::registry::Registry;
    use crate::request::EvalRequest;
    use crate::verdict::{Decision, FixedVersion};

    /// The shared registry's policies cut down to MIT and the CVE
    /// threshold, with one preferred package.
    fn registry_yaml() -> String {
        crate::fixtures::registry()
            .version("1")
            .policy("auto_approve_licenses", "[MIT]")
            .without_policy("hard_ban_licenses")
            .without_policy("unknown_license_policy")
            .only(&[])
            .package("fastjson", "status: preferred")
            .yaml()
    }

    /// What the upstream makes of one entry of the index's `vulnerabilities`.
    fn index_record(id: &str, alias: &str, version: &str, fixed: Option<&str>) -> OsvRecord {
        OsvRecord {
            id: id.into(),
            aliases: vec![alias.into()],
            affected: vec![OsvAffected {
                package: Some(OsvPackage {
                    ecosystem: "PyPI".into(),
                    name: "demo".into(),
                }),
                versions: vec![version.into()],
                ranges: fixed
                    .map(|f| {
                        vec![OsvRange {
                            kind: "ECOSYSTEM".into(),
                            events: vec![
                                OsvEvent {
                                    introduced: Some(version.into()),
                                    ..Default::default()
                                },
                                OsvEvent {
                                    fixed: Some(f.into()),
                                    ..Default::default()
                                },
                            ],
                        }]
                    })
                    .unwrap_or_default(),
                ..Default::default()
            }],
            ..Default::default()
        }
    }

    fn facts(records: Vec<OsvRecord>) -> Facts {
        Facts {
            index: Some(IndexFacts::Found {
                name: "demo".into(),
                releases: ["2.30.0", "2.31.0", "2.32.0"]
                    .iter()
                    .map(|v| Release {
                        version: (*v).into(),
                        yanked: false,
                    })
                    .collect(),
                metadata: Some((
                    "2.30.0".into(),
                    LicenseMetadata {
                        license_expression: Some("MIT".into()),
                        ..Default::default()
                    },
                )),
            }),
            advisories: Some(AdvisoryFacts::Found(records)),
        }
    }

    fn hit(id: &str, aliases: &[&str], score: Option<f64>) -> AdvisoryHit {
        AdvisoryHit {
            id: id.into(),
            aliases: aliases.iter().map(|a| (*a).to_string()).collect(),
            score,
            fixed_version: None,
            malicious: false,
        }
    }

    #[test]
    fn an_unscored_advisory_denies_and_names_the_fix() {
        let reg = Registry::from_yaml(&registry_yaml()).unwrap();
        let req = EvalRequest::parse("demo", Some("2.30.0"), None).unwrap();
        let records = vec![
            index_record("PYSEC-2023-74", "CVE-2023-32681", "2.30.0", Some("2.31.0")),
            index_record(
                "GHSA-aaaa-bbbb-cccc",
                "CVE-2024-1",
                "2.30.0",
                Some("2.32.0"),
            ),
        ];
        let v = decide(&req, &reg, &facts(records), FailPolicy::Open);
        assert_eq!(v.verdict, Decision::Denied, "{v:?}");
        assert_eq!(v.denial_category, Some(DenialCategory::Cve));
        assert_eq!(v.max_cvss, None);
        assert_eq!(v.cve_ids, ["PYSEC-2023-74", "GHSA-aaaa-bbbb-cccc"]);
        assert_eq!(
            v.reason,
            "`demo` 2.30.0 is affected by 2 advisories of unknown severity: PYSEC-2023-74 (CVE-2023-32681), \
             GHSA-aaaa-bbbb-cccc (CVE-2024-1). The advisory source gives no score, so their severity counts as \
             meeting the CVE threshold (9.0) under LEXALIGN_UNSCORED_ADVISORIES=deny. Fixed in 2.32.0: move to \
             `demo>=2.32.0`."
        );
        assert_eq!(
            v.fixed_versions,
            [
                FixedVersion {
                    id: "PYSEC-2023-74".into(),
                    fixed: "2.31.0".into()
                },
                FixedVersion {
                    id: "GHSA-aaaa-bbbb-cccc".into(),
                    fixed: "2.32.0".into()
                }
            ]
        );
        assert_eq!(v.license.as_deref(), Some("MIT"));

        // No fix known.
        let v = decide(
            &req,
            &reg,
            &facts(vec![index_record("PYSEC-1", "CVE-1", "2.30.0", None)]),
            FailPolicy::Open,
        );
        assert!(
            v.reason.ends_with("an advisory of unknown severity: PYSEC-1 (CVE-1). The advisory source gives no score, so its severity counts as meeting the CVE threshold (9.0) under LEXALIGN_UNSCORED_ADVISORIES=deny. No fixed version is known yet."),
            "{}",
            v.reason
        );
        // A release the advisory does not list is not affected.
        let other = EvalRequest::parse("demo", Some("2.31.0"), None).unwrap();
        let mut f = facts(vec![index_record(
            "PYSEC-1",
            "CVE-1",
            "2.30.0",
            Some("2.31.0"),
        )]);
        if let Some(IndexFacts::Found { metadata, .. }) = &mut f.index {
            metadata.as_mut().unwrap().0 = "2.31.0".into();
        }
        let v = decide(&other, &reg, &f, FailPolicy::Open);
        assert_eq!(v.verdict, Decision::ProvisionallyAllowed, "{v:?}");
    }

    #[test]
    fn provisional_leaves_the_verdict_to_later_gates() {
        let reg = Registry::from_yaml(&registry_yaml()).unwrap();
        let req = EvalRequest::parse("demo", Some("2.30.0"), None).unwrap();
        let f = facts(vec![index_record(
            "PYSEC-1",
            "CVE-1",
            "2.30.0",
            Some("2.31.0"),
        )]);
        let needs = Needs {
            index: true,
            advisories: true,
        };
        for (policy, denies) in [
            (UnscoredPolicy::Provisional, false),
            (UnscoredPolicy::Deny, true),
        ] {
            let mut ctx = Ctx::new(&req, &reg, None, &f, FailPolicy::Open, needs);
            ctx.resolved = Some("2.30.0".into());
            let v = run_with(&mut ctx, policy);
            assert_eq!(v.is_some(), denies, "{policy:?}");
            assert_eq!(ctx.hits.len(), 1);
            assert_eq!(ctx.hits[0].fixed_version.as_deref(), Some("2.31.0"));
        }
    }

    #[test]
    fn a_scored_twin_stands_for_an_unscored_record() {
        let hits = [
            hit("PYSEC-2024-1", &["CVE-2024-9", "GHSA-x"], None),
            hit("GHSA-x", &["CVE-2024-9"], Some(5.3)),
            hit("PYSEC-2024-2", &["CVE-2024-10"], None),
        ];
        let unknown: Vec<&str> = unscored_hits(&hits).iter().map(|h| h.id.as_str()).collect();
        assert_eq!(unknown, ["PYSEC-2024-2"]);
        assert!(unscored_hits(&hits[..2]).is_empty());
    }
}
