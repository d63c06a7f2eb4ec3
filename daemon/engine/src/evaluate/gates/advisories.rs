//! Gates 4 and 5, advisories matched to the judged release: a malicious
//! package is denied whatever its score, then the highest CVSS score is held
//! against `cve_threshold`. Applies to registry packages too.

use super::{deny, Ctx};
use crate::evaluate::AdvisoryFacts;
use crate::verdict::{DenialCategory, Verdict};

pub(crate) fn run(ctx: &mut Ctx) -> Option<Verdict> {
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
    let m = ctx.max_cvss.filter(|m| meets_threshold(*m, threshold))?;
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
    Some(v)
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
