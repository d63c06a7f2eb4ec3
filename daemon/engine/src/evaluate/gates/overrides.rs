//! The override gate: a time-boxed exception an approver grants one project
//! for one denied package. Pure; the caller runs it after
//! [`crate::evaluate::decide`] with the overrides it holds.

use std::str::FromStr;

use pep440_rs::Version;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::name::canonicalize;
use crate::request::EvalRequest;
use crate::verdict::{Decision, DenialCategory, OverrideApplied, Verdict};

#[derive(Debug, Clone, PartialEq)]
pub struct Override {
    pub id: String,
    /// PEP 503 canonical name.
    pub package: String,
    /// Matched exactly.
    pub project: String,
    /// An exact PEP 440 version, or `None` for any version.
    pub version: Option<String>,
    pub approver: String,
    pub justification: String,
    /// Lapses at this instant (`req.at >= expires_at` no longer matches).
    pub expires_at: OffsetDateTime,
}

/// ALLOWED by the matching override that expires last, when `verdict` is
/// DENIED and one matches; otherwise `verdict` unchanged. The denial's
/// facts (CVEs, license, advisories, …) are kept.
pub fn apply_override(
    verdict: Verdict,
    req: &EvalRequest,
    project: &str,
    overrides: &[Override],
) -> Verdict {
    // A malicious package is never let through: no business reason
    // outweighs running an attacker's code.
    if verdict.verdict != Decision::Denied
        || verdict.denial_category == Some(DenialCategory::Malicious)
    {
        return verdict;
    }
    let version = verdict
        .resolved_version
        .clone()
        .or_else(|| req.pinned_version());
    let chosen = overrides
        .iter()
        .filter(|o| matches(o, req, project, version.as_deref()))
        // Ties on expiry go to the smallest id, so slice order never matters.
        .max_by(|a, b| a.expires_at.cmp(&b.expires_at).then(b.id.cmp(&a.id)));
    let Some(o) = chosen else {
        return verdict;
    };

    let expires_at = o
        .expires_at
        .format(&Rfc3339)
        .unwrap_or_else(|_| o.expires_at.to_string());
    let original_category = verdict.audit_category().to_string();
    let mut v = verdict;
    let original_reason = std::mem::take(&mut v.reason);
    v.reason = format!(
        "Allowed by override {} (approved by {} until {expires_at}): {}. Denied without it: {original_reason}",
        o.id,
        o.approver,
        o.justification.trim().trim_end_matches('.'),
    );
    v.verdict = Decision::Allowed;
    v.denial_category = None;
    v.override_ = Some(OverrideApplied {
        id: o.id.clone(),
        approver: o.approver.clone(),
        justification: o.justification.clone(),
        expires_at,
        original_reason,
        original_category,
    });
    v
}

fn matches(o: &Override, req: &EvalRequest, project: &str, version: Option<&str>) -> bool {
    canonicalize(&o.package) == req.canonical
        && o.project == project
        && req.at < o.expires_at
        && match &o.version {
            None => true,
            Some(want) => version.is_some_and(|have| same_version(want, have)),
        }
}

/// PEP 440 equality (`1.0` == `1.0.0`); unparsable text matches nothing.
fn same_version(a: &str, b: &str) -> bool {
    match (Version::from_str(a.trim()), Version::from_str(b.trim())) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;
    use time::Duration;

    use super::*;
    use crate::evaluate::gates::{base, deny};
    use crate::verdict::{AdvisoryHit, DenialCategory};

    const NOW: OffsetDateTime = datetime!(2027-01-15 09:00 UTC);

    fn req(package: &str, version: Option<&str>, requirement: Option<&str>) -> EvalRequest {
        let mut r = EvalRequest::parse(package, version, requirement).unwrap();
        r.at = NOW;
        r
    }

    fn ov(id: &str, version: Option<&str>, expires_at: OffsetDateTime) -> Override {
        Override {
            id: id.into(),
            package: "cryptography".into(),
            project: "billing".into(),
            version: version.map(str::to_string),
            approver: "alice".into(),
            justification: "Not reachable from our code path.".into(),
            expires_at,
        }
    }

    /// A CVE denial of `cryptography` at `resolved`.
    fn cve_denial(r: &EvalRequest, resolved: Option<&str>) -> Verdict {
        let mut v = deny(
            r,
            DenialCategory::Cve,
            "Critical CVE detected (max CVSS 9.8); threshold is 9.0.".into(),
        );
        v.resolved_version = resolved.map(str::to_string);
        v.license = Some("Apache-2.0 OR BSD-3-Clause".into());
        v.cve_ids = vec!["GHSA-x".into()];
        v.max_cvss = Some(9.8);
        v.advisories = vec![AdvisoryHit {
            id: "GHSA-x".into(),
            aliases: vec!["CVE-2099-1".into()],
            score: Some(9.8),
            fixed_version: Some("42.0.0".into()),
            malicious: false,
        }];
        v
    }

    const LATER: OffsetDateTime = datetime!(2027-02-01 00:00 UTC);

    #[test]
    fn a_matching_override_allows_and_keeps_the_facts() {
        let r = req("Cryptography", None, Some("cryptography>=41"));
        let denied = cve_denial(&r, Some("41.0.0"));
        let v = apply_override(denied.clone(), &r, "billing", &[ov("ovr-1", None, LATER)]);
        assert_eq!(v.verdict, Decision::Allowed);
        assert_eq!(v.denial_category, None);
        assert_eq!(
            v.reason,
            "Allowed by override ovr-1 (approved by alice until 2027-02-01T00:00:00Z): Not reachable from our code path. \
             Denied without it: Critical CVE detected (max CVSS 9.8); threshold is 9.0."
        );
        let applied = v.override_.clone().unwrap();
        assert_eq!(
            applied,
            OverrideApplied {
                id: "ovr-1".into(),
                approver: "alice".into(),
                justification: "Not reachable from our code path.".into(),
                expires_at: "2027-02-01T00:00:00Z".into(),
                original_reason: denied.reason.clone(),
                original_category: "cve".into(),
            }
        );
        // Everything else as denied.
        let mut same = v.clone();
        same.verdict = denied.verdict;
        same.denial_category = denied.denial_category;
        same.reason = denied.reason.clone();
        same.override_ = None;
        assert_eq!(same, denied);
    }

    #[test]
    fn project_package_and_lapse_must_match() {
        let r = req("cryptography", Some("41.0.0"), None);
        let denied = cve_denial(&r, Some("41.0.0"));
        let unchanged = |o: Override| apply_override(denied.clone(), &r, "billing", &[o]) == denied;

        let mut o = ov("x", None, LATER);
        o.project = "billing-v2".into();
        assert!(unchanged(o));
        let mut o = ov("x", None, LATER);
        o.package = "cryptography-vectors".into();
        assert!(unchanged(o));
        // The lapse instant itself no longer matches; a nanosecond before does.
        assert!(unchanged(ov("x", None, NOW)));
        assert!(!unchanged(ov("x", None, NOW + Duration::nanoseconds(1))));
        // Package spellings are canonicalised; the project is exact.
        let mut o = ov("x", None, LATER);
        o.package = "Cryptography".into();
        assert!(!unchanged(o));
        assert_eq!(
            apply_override(denied.clone(), &r, "Billing", &[ov("x", None, LATER)]),
            denied
        );
    }

    #[test]
    fn versions_compare_as_pep440() {
        let r = req("cryptography", None, None);
        let denied = cve_denial(&r, Some("41.0"));
        let allowed = |v: &str| {
            apply_override(denied.clone(), &r, "billing", &[ov("x", Some(v), LATER)]).verdict
                == Decision::Allowed
        };
        assert!(allowed("41.0"));
        assert!(allowed("41.0.0"));
        assert!(allowed("v41.0"));
        assert!(!allowed("41.0.1"));
        assert!(!allowed("not a version"));

        // No resolved version: the request's pin decides; without one, only
        // an any-version override matches.
        let r = req("cryptography", None, Some("cryptography==41.0.0"));
        let denied = cve_denial(&r, None);
        let v = apply_override(denied.clone(), &r, "billing", &[ov("x", Some("41"), LATER)]);
        assert_eq!(v.verdict, Decision::Allowed);
        let r = req("cryptography", None, None);
        let denied = cve_denial(&r, None);
        assert_eq!(
            apply_override(denied.clone(), &r, "billing", &[ov("x", Some("41"), LATER)]),
            denied
        );
        let v = apply_override(denied, &r, "billing", &[ov("x", None, LATER)]);
        assert_eq!(v.verdict, Decision::Allowed);
    }

    #[test]
    fn only_denials_are_overridden() {
        let r = req("cryptography", None, None);
        for decision in [Decision::Allowed, Decision::ProvisionallyAllowed] {
            let v = base(&r, decision, "fine".into());
            assert_eq!(
                apply_override(v.clone(), &r, "billing", &[ov("x", None, LATER)]),
                v
            );
        }
        let v = cve_denial(&r, Some("41.0.0"));
        assert_eq!(apply_override(v.clone(), &r, "billing", &[]), v);
        // A malicious package stays denied whatever an operator granted.
        let mut mal = cve_denial(&r, Some("41.0.0"));
        mal.denial_category = Some(DenialCategory::Malicious);
        assert_eq!(
            apply_override(mal.clone(), &r, "billing", &[ov("x", None, LATER)]),
            mal
        );
    }

    #[test]
    fn of_several_the_one_expiring_last_wins() {
        let r = req("cryptography", None, None);
        let denied = cve_denial(&r, Some("41.0.0"));
        let overrides = [
            ov("b-soon", None, LATER),
            ov("c-last", Some("41.0.0"), LATER + Duration::days(30)),
            ov("d-lapsed", None, NOW - Duration::days(1)),
            ov("e-other-version", Some("40"), LATER + Duration::days(90)),
            ov("a-last-too", None, LATER + Duration::days(30)),
        ];
        let v = apply_override(denied.clone(), &r, "billing", &overrides);
        // c-last and a-last-too tie on expiry: the smaller id wins.
        assert_eq!(v.override_.unwrap().id, "a-last-too");
        let v = apply_override(denied, &r, "billing", &overrides[..3]);
        assert_eq!(v.override_.unwrap().id, "c-last");
    }

    #[test]
    fn the_override_key_is_always_serialised_and_optional_on_input() {
        let r = req("cryptography", None, None);
        let v = base(&r, Decision::Allowed, "ok".into());
        // Declaration order, whatever serde_json's map type.
        let text = serde_json::to_string(&v).unwrap();
        assert!(
            text.ends_with(r#","upstream_error":null,"override":null,"suggestions":[]}"#),
            "{text}"
        );
        let json = serde_json::to_value(&v).unwrap();
        let mut old = json.clone();
        old.as_object_mut().unwrap().remove("override");
        assert_eq!(serde_json::from_value::<Verdict>(old).unwrap(), v);

        let v = apply_override(
            cve_denial(&r, Some("41.0.0")),
            &r,
            "billing",
            &[ov("x", None, LATER)],
        );
        let json = serde_json::to_value(&v).unwrap();
        assert_eq!(json["override"]["original_category"], "cve");
        assert_eq!(json["override"]["expires_at"], "2027-02-01T00:00:00Z");
        assert_eq!(serde_json::from_value::<Verdict>(json).unwrap(), v);
    }
}
