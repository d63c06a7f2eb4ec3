//! Gate 0, exception expiry: a registry rule past its `expires` no longer
//! applies. Every gate sees only the rule in force ([`lookup`]), so a lapsed
//! package is judged exactly as an unlisted one; [`note_lapse`] then says why.

use crate::registry::{Registry, Rule, RuleLookup};
use crate::request::EvalRequest;
use crate::verdict::Verdict;

/// The requested package's rule as it stands at `req.at`.
pub(crate) fn lookup<'a>(req: &EvalRequest, registry: &'a Registry) -> RuleLookup<'a> {
    registry.rule_at(&req.canonical, req.at)
}

/// Append the lapse to the reason when the package had a lapsed rule.
pub(crate) fn note_lapse(mut v: Verdict, lookup: RuleLookup) -> Verdict {
    if let RuleLookup::Lapsed(rule) = lookup {
        v.reason.push(' ');
        v.reason.push_str(&lapse_note(rule));
    }
    v
}

fn lapse_note(rule: &Rule) -> String {
    let mut about = vec![rule.status.as_str().to_string()];
    if let Some(owner) = &rule.owner {
        about.push(format!("owner {owner}"));
    }
    if let Some(reason) = &rule.reason {
        about.push(format!("reason \"{reason}\""));
    }
    let expires = rule.expires_text().unwrap_or_default();
    // A bare date is the last day the rule applied.
    let when = if expires.contains('T') {
        format!("at {expires}")
    } else {
        format!("at the end of {expires} (UTC)")
    };
    format!(
        "The registry rule for `{}` ({}) lapsed {when}; judged as unlisted.",
        rule.name,
        about.join(", ")
    )
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;
    use time::OffsetDateTime;

    use crate::evaluate::{
        decide, plan, select_version, AdvisoryFacts, Facts, FailPolicy, IndexFacts,
        LicenseMetadata, Needs, Plan, Release,
    };
    use crate::registry::Registry;
    use crate::request::EvalRequest;
    use crate::verdict::{Decision, DenialCategory, Verdict};

    /// The shared registry's `pyqt5` plus banned, constrained and approved
    /// rules, each with an expiry.
    fn registry_yaml() -> String {
        crate::fixtures::registry()
            .version("1")
            .policy("auto_approve_licenses", "[MIT]")
            .policy("hard_ban_licenses", "[GPL-3.0]")
            .without_policy("unknown_license_policy")
            .without_policy("cve_threshold")
            .only(&["pyqt5"])
            .package(
                "pyqt5",
                "status: banned\nreason: GPL-licensed; no commercial license held.\nowner: legal\nexpires: 2027-01-31",
            )
            .package("left-pad", "status: banned\nexpires: 2027-01-31T12:00:00Z")
            .package(
                "Django",
                "status: version-constrained\nmin_version: \"4.2\"\nmax_version: \"5.0\"\nexpires: 2027-01-31",
            )
            .package(
                "attrs",
                "status: approved\nowner: alice\nreason: Reviewed.\nexpires: 2027-01-31",
            )
            .yaml()
    }

    const BEFORE: OffsetDateTime = datetime!(2027-01-31 23:59:59 UTC);
    const LAPSE: OffsetDateTime = datetime!(2027-02-01 00:00 UTC);

    fn registry() -> Registry {
        Registry::from_yaml(&registry_yaml()).unwrap()
    }

    fn req_at(package: &str, version: Option<&str>, at: OffsetDateTime) -> EvalRequest {
        let mut r = EvalRequest::parse(package, version, None).unwrap();
        r.at = at;
        r
    }

    fn facts(versions: &[&str], license: &str) -> Facts {
        let latest = versions.last().unwrap();
        Facts {
            index: Some(IndexFacts::Found {
                name: "pkg".into(),
                releases: versions
                    .iter()
                    .map(|v| Release {
                        version: v.to_string(),
                        yanked: false,
                    })
                    .collect(),
                metadata: Some((
                    latest.to_string(),
                    LicenseMetadata {
                        license_expression: Some(license.into()),
                        ..Default::default()
                    },
                )),
            }),
            advisories: Some(AdvisoryFacts::Found(Vec::new())),
        }
    }

    fn decided(r: &EvalRequest) -> Verdict {
        match plan(r, &registry()) {
            Plan::Decided(v) => v,
            other => panic!("expected a registry decision, got {other:?}"),
        }
    }

    const UNLISTED: Needs = Needs {
        index: true,
        advisories: true,
    };

    #[test]
    fn a_banned_package_is_denied_until_its_ban_lapses() {
        let v = decided(&req_at("PyQt5", None, BEFORE));
        assert_eq!(v.verdict, Decision::Denied);
        assert_eq!(v.reason, "GPL-licensed; no commercial license held.");

        // The lapse instant itself is past: judged as unlisted (index asked,
        // license judged).
        let r = req_at("PyQt5", None, LAPSE);
        assert_eq!(plan(&r, &registry()), Plan::Fetch(UNLISTED));
        let v = decide(
            &r,
            &registry(),
            &facts(&["5.15.0"], "MIT"),
            FailPolicy::Open,
        );
        assert_eq!(v.verdict, Decision::ProvisionallyAllowed);
        assert!(v.is_requestable);
        assert_eq!(v.registry_status, None);
        assert_eq!(v.resolved_version.as_deref(), Some("5.15.0"));
        assert!(
            v.reason.ends_with(
                " The registry rule for `pyqt5` (banned, owner legal, reason \"GPL-licensed; no commercial license held.\") \
                 lapsed at the end of 2027-01-31 (UTC); judged as unlisted."
            ),
            "{}",
            v.reason
        );
        let v = decide(
            &r,
            &registry(),
            &facts(&["5.15.0"], "GPL-3.0-only"),
            FailPolicy::Open,
        );
        assert_eq!(v.verdict, Decision::Denied);
        assert_eq!(v.denial_category, Some(DenialCategory::License));
        assert!(v.reason.contains("lapsed"), "{}", v.reason);
    }

    #[test]
    fn an_rfc3339_expiry_lapses_at_that_instant() {
        let noon = datetime!(2027-01-31 12:00 UTC);
        let before = req_at("left-pad", None, noon - time::Duration::nanoseconds(1));
        assert!(matches!(plan(&before, &registry()), Plan::Decided(_)));
        let r = req_at("left-pad", None, noon);
        assert_eq!(plan(&r, &registry()), Plan::Fetch(UNLISTED));
        let v = decide(&r, &registry(), &facts(&["1.3.0"], "MIT"), FailPolicy::Open);
        assert_eq!(v.verdict, Decision::ProvisionallyAllowed);
        assert!(
            v.reason.ends_with(
                " The registry rule for `left-pad` (banned) lapsed at 2027-01-31T12:00:00Z; judged as unlisted."
            ),
            "{}",
            v.reason
        );
    }

    #[test]
    fn a_lapsed_version_rule_no_longer_constrains() {
        let releases: Vec<Release> = ["4.2.10", "5.1"]
            .iter()
            .map(|v| Release {
                version: v.to_string(),
                yanked: false,
            })
            .collect();
        let reg = registry();
        // In force: the pin is outside the bounds and the selection stays within them.
        let pinned = req_at("django", Some("5.1"), BEFORE);
        assert!(matches!(plan(&pinned, &reg), Plan::Decided(_)));
        let unpinned = req_at("django", None, BEFORE);
        assert_eq!(
            select_version(&unpinned, &reg, &releases).as_deref(),
            Some("4.2.10")
        );

        let pinned = req_at("django", Some("5.1"), LAPSE);
        assert_eq!(plan(&pinned, &reg), Plan::Fetch(UNLISTED));
        let unpinned = req_at("django", None, LAPSE);
        assert_eq!(
            select_version(&unpinned, &reg, &releases).as_deref(),
            Some("5.1")
        );
        // In force, the latest release outside the bounds denies; lapsed, the license decides.
        let facts = facts(&["4.2.10", "5.1"], "MIT");
        let v = decide(
            &req_at("django", None, BEFORE),
            &reg,
            &facts,
            FailPolicy::Open,
        );
        assert_eq!(
            v.denial_category,
            Some(DenialCategory::Registry),
            "{}",
            v.reason
        );
        let v = decide(&unpinned, &reg, &facts, FailPolicy::Open);
        assert_eq!(v.verdict, Decision::ProvisionallyAllowed, "{}", v.reason);
        assert_eq!(v.version_constraint, None);
        assert_eq!(v.resolved_version.as_deref(), Some("5.1"));
        assert!(
            v.reason.ends_with(
                "(version-constrained) lapsed at the end of 2027-01-31 (UTC); judged as unlisted."
            ),
            "{}",
            v.reason
        );
    }

    #[test]
    fn an_approval_lapses_into_the_license_gate() {
        let facts = facts(&["24.2.0"], "MIT");
        let v = decide(
            &req_at("attrs", None, BEFORE),
            &registry(),
            &facts,
            FailPolicy::Open,
        );
        assert_eq!(v.verdict, Decision::Allowed);
        assert_eq!(v.reason, "Reviewed.");
        let v = decide(
            &req_at("attrs", None, LAPSE),
            &registry(),
            &facts,
            FailPolicy::Open,
        );
        assert_eq!(v.verdict, Decision::ProvisionallyAllowed);
        assert!(!v.needs_rationale);
        assert!(
            v.reason
                .contains("(approved, owner alice, reason \"Reviewed.\")"),
            "{}",
            v.reason
        );
        // A lapsed approval is no longer exempt from the existence gate.
        let gone = Facts {
            index: Some(IndexFacts::NotFound {
                known_names: vec![],
            }),
            advisories: Some(AdvisoryFacts::Found(Vec::new())),
        };
        let v = decide(
            &req_at("attrs", None, LAPSE),
            &registry(),
            &gone,
            FailPolicy::Open,
        );
        assert_eq!(v.denial_category, Some(DenialCategory::NotFound));
        assert!(v.reason.contains("lapsed"), "{}", v.reason);
    }
}
