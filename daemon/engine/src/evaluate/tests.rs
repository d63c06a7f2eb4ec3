use super::*;
use crate::advisory::{parse_osv_json, parse_osv_yaml};
use crate::registry::UnknownLicensePolicy;

/// The shared registry with LGPL banned, MPL for review and rules for a
/// banned, an approved, a preferred and a two-sided constrained package.
fn registry_yaml() -> String {
    crate::fixtures::registry()
        .version("1")
        .policy(
            "hard_ban_licenses",
            "[AGPL-3.0, GPL-3.0, GPL-2.0, LGPL-3.0, LGPL-2.1]",
        )
        .policy("require_human_review_licenses", "[MPL-2.0]")
        .package("left-pad", "status: banned")
        .package(
            "Django",
            "status: version-constrained\nmin_version: \"4.2\"\nmax_version: \"6.0\"",
        )
        .package("attrs", "status: approved")
        .package("apache-iotdb", "status: preferred")
        .yaml()
}

fn registry() -> Registry {
    Registry::from_yaml(&registry_yaml()).unwrap()
}

fn req(package: &str, version: Option<&str>, requirement: Option<&str>) -> EvalRequest {
    EvalRequest::parse(package, version, requirement).unwrap()
}

fn releases(versions: &[&str]) -> Vec<Release> {
    versions
        .iter()
        .map(|v| Release {
            version: v.trim_end_matches('!').to_string(),
            // A trailing `!` marks a yanked release in these fixtures.
            yanked: v.ends_with('!'),
        })
        .collect()
}

fn found(versions: &[&str], meta_version: &str, meta: LicenseMetadata) -> IndexFacts {
    IndexFacts::Found {
        name: "pkg".into(),
        releases: releases(versions),
        metadata: Some((meta_version.to_string(), meta)),
    }
}

fn lic(expr: &str) -> LicenseMetadata {
    LicenseMetadata {
        license_expression: Some(expr.to_string()),
        ..Default::default()
    }
}

fn facts(index: Option<IndexFacts>, records: Vec<OsvRecord>) -> Facts {
    Facts {
        index,
        advisories: Some(AdvisoryFacts::Found(records)),
    }
}

/// Every advisory of a package in the PyPA snapshot.
fn pypa(package: &str) -> Vec<OsvRecord> {
    let dir = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../shared/data/pypa-advisory-db/vulns/"
    );
    let mut out = Vec::new();
    let mut entries: Vec<_> = std::fs::read_dir(format!("{dir}{package}"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for path in entries {
        out.push(parse_osv_yaml(&std::fs::read_to_string(&path).unwrap()).unwrap());
    }
    assert!(!out.is_empty());
    out
}

fn decided(r: &EvalRequest) -> Verdict {
    match plan(r, &registry()) {
        Plan::Decided(v) => v,
        other => panic!("expected a registry decision, got {other:?}"),
    }
}

// ---------------------------------------------------------------- registry gates

#[test]
fn banned_and_deprecated_are_decided_without_upstream() {
    let v = decided(&req("PyQt5", Some("5.15.0"), None));
    assert_eq!(v.verdict, Decision::Denied);
    assert_eq!(v.reason, "GPL-licensed; no commercial license held.");
    assert_eq!(v.package, "PyQt5");
    assert_eq!(v.version.as_deref(), Some("5.15.0"));
    assert_eq!(v.resolved_version, None);
    assert_eq!(v.registry_status.as_deref(), Some("banned"));
    assert_eq!(v.replacement, None);
    assert_eq!(v.license, None);
    assert_eq!(v.denial_category, Some(DenialCategory::Registry));
    assert_eq!(v.audit_category(), "registry");
    assert!(!v.is_requestable && !v.needs_rationale && !v.auto_request_approval);

    let v = decided(&req("requests", None, None));
    assert_eq!(v.replacement.as_deref(), Some("httpx"));
    assert_eq!(v.registry_status.as_deref(), Some("deprecated"));
    assert_eq!(v.version_constraint, None);

    assert_eq!(
        decided(&req("left_pad", None, None)).reason,
        "Blocked by enterprise registry."
    );
    // decide() agrees with plan() whatever facts are handed in.
    let f = facts(
        Some(IndexFacts::NotFound {
            known_names: vec![],
        }),
        vec![],
    );
    assert_eq!(
        decide(
            &req("pyqt5", None, None),
            &registry(),
            &f,
            FailPolicy::Closed
        ),
        decided(&req("pyqt5", None, None))
    );
}

#[test]
fn pinned_version_outside_bounds_is_denied_with_a_fix() {
    let v = decided(&req("cryptography", Some("41.0.7"), None));
    assert_eq!(v.verdict, Decision::Denied);
    assert_eq!(v.version_constraint.as_deref(), Some(">=42.0.0"));
    assert_eq!(
        v.suggested_requirement.as_deref(),
        Some("cryptography>=42.0.0")
    );
    assert!(
        v.reason
            .starts_with("CVE-2023-50782 affects earlier versions."),
        "{}",
        v.reason
    );
    assert!(
        v.reason
            .contains("41.0.7 is outside the allowed range >=42.0.0"),
        "{}",
        v.reason
    );
    // PEP 440, not tuples: a pre-release of the bound is below it (W17) ...
    assert_eq!(
        decided(&req("cryptography", Some("42.0.0rc1"), None)).verdict,
        Decision::Denied
    );
    assert_eq!(
        decided(&req("django", Some("6.0rc1"), None)).verdict,
        Decision::Denied
    );
    // ... and `42.0` equals `42.0.0`.
    assert_eq!(
        plan(&req("cryptography", Some("42.0"), None), &registry()),
        Plan::Fetch(Needs {
            index: false,
            advisories: true
        })
    );
    assert_eq!(
        plan(
            &req("cryptography", None, Some("cryptography==42")),
            &registry()
        ),
        Plan::Fetch(Needs {
            index: false,
            advisories: true
        })
    );
    let v = decided(&req("django", Some("6.0"), None));
    assert_eq!(v.version_constraint.as_deref(), Some(">=4.2,<6.0"));
    assert_eq!(v.suggested_requirement.as_deref(), Some("django>=4.2,<6.0"));
}

#[test]
fn a_range_admitting_versions_outside_the_bounds_is_denied() {
    let v = decided(&req("cryptography", None, Some("cryptography>=41,<44")));
    assert_eq!(v.verdict, Decision::Denied);
    assert_eq!(v.denial_category, Some(DenialCategory::Registry));
    assert_eq!(v.requirement.as_deref(), Some("cryptography>=41,<44"));
    assert_eq!(
        v.suggested_requirement.as_deref(),
        Some("cryptography>=42.0.0,<44")
    );
    assert_eq!(v.version_constraint.as_deref(), Some(">=42.0.0"));

    // `<42` would have passed the original's "first number" check (W18).
    let v = decided(&req("cryptography", None, Some("cryptography<42")));
    assert_eq!(
        v.suggested_requirement.as_deref(),
        Some("cryptography>=42.0.0")
    );

    // Extras and markers are kept in the suggestion.
    let v = decided(&req(
        "cryptography",
        None,
        Some("Cryptography[ssh]>=40 ; python_version >= '3.9'"),
    ));
    assert_eq!(
        v.suggested_requirement.as_deref(),
        Some("cryptography[ssh]>=42.0.0 ; python_full_version >= '3.9'")
    );

    // A redundant clause of the user's is dropped, a useful one kept.
    let v = decided(&req("django", None, Some("django>=4,!=4.2.3")));
    assert_eq!(
        v.suggested_requirement.as_deref(),
        Some("django>=4.2,!=4.2.3,<6.0")
    );

    // Unbounded: no specifier at all is judged on the latest release instead.
    assert!(matches!(
        plan(&req("django", None, Some("django")), &registry()),
        Plan::Fetch(_)
    ));
    // Within bounds: needs the index to pick the release.
    assert_eq!(
        plan(&req("django", None, Some("django>=5.0,<5.3")), &registry()),
        Plan::Fetch(Needs {
            index: true,
            advisories: true
        })
    );
}

#[test]
fn a_range_within_bounds_resolves_the_best_release() {
    let r = req("django", None, Some("django>=5.0,<5.3"));
    let f = facts(
        Some(found(
            &["4.2.0", "5.0.1", "5.2.4", "5.2.5!", "5.3.0", "6.0"],
            "5.2.4",
            lic("BSD-3-Clause"),
        )),
        vec![],
    );
    let v = decide(&r, &registry(), &f, FailPolicy::Open);
    assert_eq!(v.verdict, Decision::Allowed);
    assert_eq!(v.resolved_version.as_deref(), Some("5.2.4"));
    assert_eq!(v.version_constraint.as_deref(), Some(">=4.2,<6.0"));
    assert_eq!(v.license.as_deref(), Some("BSD-3-Clause"));
    assert_eq!(v.reason, "Allowed by local registry (version-constrained).");
}

#[test]
fn unpinned_constrained_package_checks_the_latest_release() {
    let r = req("Django", None, None);
    let f = facts(
        Some(found(
            &["4.2.0", "5.2.1", "5.2.2!", "6.0.0", "6.1a1"],
            "6.0.0",
            lic("BSD-3-Clause"),
        )),
        vec![],
    );
    let v = decide(&r, &registry(), &f, FailPolicy::Open);
    assert_eq!(v.verdict, Decision::Denied);
    assert_eq!(v.denial_category, Some(DenialCategory::Registry));
    assert_eq!(v.resolved_version.as_deref(), Some("6.0.0"));
    assert_eq!(v.suggested_requirement.as_deref(), Some("Django==5.2.1"));
    assert!(
        v.reason
            .contains("latest release 6.0.0 is outside the allowed range >=4.2,<6.0"),
        "{}",
        v.reason
    );

    let f = facts(
        Some(found(
            &["4.2.0", "5.2.1", "6.0.0rc1"],
            "5.2.1",
            lic("BSD-3-Clause"),
        )),
        vec![],
    );
    let v = decide(&r, &registry(), &f, FailPolicy::Open);
    assert_eq!(v.verdict, Decision::Allowed);
    assert_eq!(v.resolved_version.as_deref(), Some("5.2.1"));
}

// ---------------------------------------------------------------- existence

#[test]
fn a_package_the_index_does_not_have_is_denied() {
    let r = req("reqeusts-toolbelt2", None, None);
    assert_eq!(
        plan(&r, &registry()),
        Plan::Fetch(Needs {
            index: true,
            advisories: true
        })
    );
    for policy in [
        UnknownLicensePolicy::Allow,
        UnknownLicensePolicy::PendingApproval,
        UnknownLicensePolicy::Block,
    ] {
        let mut reg = registry();
        reg.policies.unknown_license_policy = policy;
        let v = decide(
            &r,
            &reg,
            &facts(
                Some(IndexFacts::NotFound {
                    known_names: vec![],
                }),
                vec![],
            ),
            FailPolicy::Open,
        );
        assert_eq!(v.verdict, Decision::Denied);
        assert_eq!(v.denial_category, Some(DenialCategory::NotFound));
        assert_eq!(v.audit_category(), "not-found");
        assert_eq!(
            v.reason,
            "`reqeusts-toolbelt2` does not exist on the package index; check the name (possible typo or hallucinated package)."
        );
        assert!(!v.is_requestable && !v.auto_request_approval);
        assert_eq!(v.license, None);
    }
}

#[test]
fn a_requirement_no_release_satisfies_is_denied() {
    let r = req("leftish", None, Some("leftish>=9"));
    let v = decide(
        &r,
        &registry(),
        &facts(Some(found(&["1.0", "2.0"], "2.0", lic("MIT"))), vec![]),
        FailPolicy::Open,
    );
    assert_eq!(v.denial_category, Some(DenialCategory::NotFound));
    assert_eq!(
        v.reason,
        "No release of `leftish` on the package index satisfies `leftish>=9`."
    );
}

// ---------------------------------------------------------------- licenses

#[test]
fn unknown_package_license_outcomes() {
    let reg = registry();
    let r = req("tinylib", None, None);
    let run = |meta: LicenseMetadata| {
        decide(
            &r,
            &reg,
            &facts(Some(found(&["0.9", "1.0", "1.1b1"], "1.0", meta)), vec![]),
            FailPolicy::Open,
        )
    };

    let v = run(lic("MIT"));
    assert_eq!(v.verdict, Decision::ProvisionallyAllowed);
    assert_eq!(v.resolved_version.as_deref(), Some("1.0"));
    assert_eq!(v.license.as_deref(), Some("MIT"));
    assert!(v.is_requestable && !v.auto_request_approval && !v.needs_rationale);
    assert_eq!(v.registry_status, None);
    assert_eq!(v.denial_category, None);
    assert!(v.reason.contains("License MIT is on the auto-approve list"));

    let v = run(LicenseMetadata {
        classifiers: vec!["License :: OSI Approved :: BSD License".into()],
        ..Default::default()
    });
    assert_eq!(v.verdict, Decision::ProvisionallyAllowed, "{}", v.reason);
    assert_eq!(v.license.as_deref(), Some("LicenseRef-BSD"));

    let v = run(lic("GPL-3.0-or-later"));
    assert_eq!(v.verdict, Decision::Denied);
    assert_eq!(v.denial_category, Some(DenialCategory::License));
    assert_eq!(
        v.reason,
        "License GPL-3.0-or-later is hard-banned by the enterprise policy."
    );
    assert_eq!(v.resolved_version.as_deref(), Some("1.0"));
    assert!(!v.is_requestable);

    let v = run(lic("BSD-3-Clause OR GPL-2.0"));
    assert_eq!(v.verdict, Decision::ProvisionallyAllowed);
    assert_eq!(v.license.as_deref(), Some("BSD-3-Clause OR GPL-2.0-only"));

    let v = run(lic("MPL-2.0"));
    assert_eq!(v.verdict, Decision::ProvisionallyAllowed);
    assert!(v.auto_request_approval && v.is_requestable);

    let v = run(LicenseMetadata::default());
    assert_eq!(v.verdict, Decision::Denied);
    assert_eq!(v.license.as_deref(), Some("UNKNOWN"));
    assert_eq!(
        v.reason,
        "License could not be determined from PyPI; unknown_license_policy=block."
    );

    let mut warn = registry();
    warn.policies.unknown_license_policy = UnknownLicensePolicy::Warn;
    let v = decide(
        &r,
        &warn,
        &facts(
            Some(found(&["1.0"], "1.0", LicenseMetadata::default())),
            vec![],
        ),
        FailPolicy::Open,
    );
    assert_eq!(v.verdict, Decision::ProvisionallyAllowed);
    assert!(v.reason.contains("Warning"), "{}", v.reason);
    assert!(!v.auto_request_approval);
}

#[test]
fn registry_known_packages_record_but_do_not_judge_licenses() {
    let reg = registry();
    // Unpinned approved package: index consulted, license recorded.
    let r = req("attrs", None, None);
    assert_eq!(
        plan(&r, &reg),
        Plan::Fetch(Needs {
            index: true,
            advisories: true
        })
    );
    let v = decide(
        &r,
        &reg,
        &facts(
            Some(found(&["23.1.0", "24.2.0"], "24.2.0", lic("GPL-3.0-only"))),
            vec![],
        ),
        FailPolicy::Open,
    );
    assert_eq!(v.verdict, Decision::Allowed);
    assert!(v.needs_rationale);
    assert_eq!(v.reason, "Allowed by local registry (approved).");
    assert_eq!(v.license.as_deref(), Some("GPL-3.0-only"));
    assert_eq!(v.resolved_version.as_deref(), Some("24.2.0"));

    // Pinned preferred package: no index call, license null.
    let r = req("httpx", Some("0.27.0"), None);
    assert_eq!(
        plan(&r, &reg),
        Plan::Fetch(Needs {
            index: false,
            advisories: true
        })
    );
    let v = decide(&r, &reg, &facts(None, vec![]), FailPolicy::Closed);
    assert_eq!(v.verdict, Decision::Allowed);
    assert_eq!(v.reason, "Standard async HTTP client.");
    assert_eq!(v.license, None);
    assert_eq!(v.resolved_version.as_deref(), Some("0.27.0"));
    assert_eq!(v.upstream_error, None);
    assert!(!v.needs_rationale);
}

// ---------------------------------------------------------------- advisories

#[test]
fn critical_cve_from_real_osv_vectors_denies_even_preferred_packages() {
    let records = pypa("apache-iotdb");
    let r = req("apache_iotdb", Some("1.2.0"), None);
    let v = decide(
        &r,
        &registry(),
        &facts(None, records.clone()),
        FailPolicy::Open,
    );
    assert_eq!(v.verdict, Decision::Denied);
    assert_eq!(v.denial_category, Some(DenialCategory::Cve));
    assert_eq!(v.registry_status.as_deref(), Some("preferred"));
    assert!(
        v.cve_ids.contains(&"PYSEC-2024-11".to_string()),
        "{:?}",
        v.cve_ids
    );
    assert_eq!(v.max_cvss, Some(9.8));
    assert_eq!(
        v.reason,
        "Critical CVE detected (max CVSS 9.8); threshold is 9.0."
    );
    assert!(v.fixed_versions.contains(&FixedVersion {
        id: "PYSEC-2024-11".into(),
        fixed: "1.3.0".into()
    }));
    assert_eq!(v.advisories.len(), v.cve_ids.len());

    // Below the threshold: allowed, but the advisories are still reported.
    // (Only the scored records: an unscored one would count as meeting it.)
    let mut lenient = registry();
    lenient.policies.cve_threshold = 1.0;
    let scored: Vec<OsvRecord> = records
        .into_iter()
        .filter(|r| crate::advisory::score(r).is_some())
        .collect();
    let v = decide(&r, &lenient, &facts(None, scored), FailPolicy::Open);
    assert_eq!(v.verdict, Decision::Allowed);
    assert!(v.cve_ids.contains(&"PYSEC-2024-11".to_string()));
    assert_eq!(v.max_cvss, Some(9.8));
}

#[test]
fn unpinned_package_is_matched_at_the_resolved_release() {
    let records = pypa("apache-iotdb");
    let r = req("apache-iotdb", None, None);
    // Latest release 1.2.0 is affected; 1.3.0 is yanked here so not chosen.
    let f = facts(
        Some(found(
            &["1.1.0", "1.2.0", "1.3.0!"],
            "1.2.0",
            lic("Apache-2.0"),
        )),
        records.clone(),
    );
    let v = decide(&r, &registry(), &f, FailPolicy::Open);
    assert_eq!(v.resolved_version.as_deref(), Some("1.2.0"));
    assert_eq!(v.denial_category, Some(DenialCategory::Cve));
    // With the index down no version is known: advisories are not matched
    // against "all versions" (W11), and the verdict says why.
    let f = Facts {
        index: Some(IndexFacts::Unavailable("timed out after 3s".into())),
        advisories: Some(AdvisoryFacts::Found(records)),
    };
    let v = decide(&r, &registry(), &f, FailPolicy::Open);
    assert_eq!(v.verdict, Decision::Allowed);
    assert!(v.cve_ids.is_empty());
    let err = v.upstream_error.unwrap();
    assert!(
        err.contains("package index unavailable: timed out after 3s"),
        "{err}"
    );
    assert!(err.contains("advisories not matched"), "{err}");
}

const MAL_RECORD: &str = r#"{
  "id": "MAL-2024-4242",
  "summary": "Malicious code in tinylib (PyPI)",
  "details": "The package runs a credential stealer on install.",
  "affected": [{
    "package": {"ecosystem": "PyPI", "name": "tinylib"},
    "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}]}]
  }],
  "database_specific": {"malicious-packages-origins": [{"source": "ghsa-malware"}]}
}"#;

#[test]
fn malicious_advisories_deny_whatever_the_score() {
    let mal = parse_osv_json(MAL_RECORD).unwrap();
    let r = req("tinylib", None, None);
    let f = facts(Some(found(&["1.0"], "1.0", lic("MIT"))), vec![mal.clone()]);
    let mut reg = registry();
    reg.policies.cve_threshold = 1.0;
    let v = decide(&r, &reg, &f, FailPolicy::Open);
    assert_eq!(v.verdict, Decision::Denied);
    assert_eq!(v.denial_category, Some(DenialCategory::Malicious));
    assert_eq!(v.cve_ids, vec!["MAL-2024-4242".to_string()]);
    assert!(v.reason.contains("malicious"), "{}", v.reason);
    assert!(v.advisories[0].malicious);

    // Even a preferred package.
    let mut mal_httpx = mal;
    mal_httpx.affected[0].package.as_mut().unwrap().name = "httpx".into();
    let v = decide(
        &req("httpx", Some("0.27.0"), None),
        &registry(),
        &facts(None, vec![mal_httpx]),
        FailPolicy::Open,
    );
    assert_eq!(v.denial_category, Some(DenialCategory::Malicious));
    assert_eq!(v.registry_status.as_deref(), Some("preferred"));
}

#[test]
fn threshold_is_compared_in_integer_tenths() {
    assert!(meets_threshold(3.3, 0.33)); // 0.33 * 10 = 3.3000000000000003 in floats
    assert!(meets_threshold(9.0, 0.9));
    assert!(!meets_threshold(8.9, 0.9));
    assert!(meets_threshold(10.0, 1.0));
    assert!(meets_threshold(0.0, 0.0));

    // End to end with a real CVSS 3.1 vector scoring 3.3.
    let rec = parse_osv_json(
        r#"{"id": "GHSA-aaaa-bbbb-cccc", "aliases": ["CVE-2099-0001"],
            "severity": [{"type": "CVSS_V3", "score": "CVSS:3.1/AV:L/AC:L/PR:L/UI:N/S:U/C:L/I:N/A:N"}],
            "affected": [{"package": {"ecosystem": "PyPI", "name": "httpx"},
                          "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "0.28.0"}]}]}]}"#,
    )
    .unwrap();
    let mut reg = registry();
    reg.policies.cve_threshold = 0.33;
    let v = decide(
        &req("httpx", Some("0.27.0"), None),
        &reg,
        &facts(None, vec![rec]),
        FailPolicy::Open,
    );
    assert_eq!(v.max_cvss, Some(3.3));
    assert_eq!(v.denial_category, Some(DenialCategory::Cve));
    assert_eq!(
        v.reason,
        "Critical CVE detected (max CVSS 3.3); threshold is 3.3."
    );
    assert_eq!(
        v.fixed_versions,
        vec![FixedVersion {
            id: "GHSA-aaaa-bbbb-cccc".into(),
            fixed: "0.28.0".into()
        }]
    );
}

// ---------------------------------------------------------------- upstream outages

#[test]
fn index_outage_follows_the_fail_policy() {
    let r = req("tinylib", None, None);
    let f = Facts {
        index: Some(IndexFacts::Unavailable("connection refused".into())),
        advisories: Some(AdvisoryFacts::Found(vec![])),
    };
    let v = decide(&r, &registry(), &f, FailPolicy::Open);
    assert_eq!(v.verdict, Decision::ProvisionallyAllowed);
    assert!(!v.is_requestable && !v.auto_request_approval);
    assert!(v.reason.contains("gates were skipped"), "{}", v.reason);
    assert!(v
        .upstream_error
        .as_deref()
        .unwrap()
        .contains("package index unavailable: connection refused"));

    let v = decide(&r, &registry(), &f, FailPolicy::Closed);
    assert_eq!(v.verdict, Decision::Denied);
    assert_eq!(v.denial_category, Some(DenialCategory::Upstream));
    assert!(v.reason.contains("connection refused"), "{}", v.reason);

    // Index answered but the release's metadata could not be fetched.
    let f = facts(
        Some(IndexFacts::Found {
            name: "tinylib".into(),
            releases: releases(&["1.0"]),
            metadata: None,
        }),
        vec![],
    );
    let v = decide(&r, &registry(), &f, FailPolicy::Open);
    assert_eq!(v.verdict, Decision::ProvisionallyAllowed);
    assert_eq!(v.license, None);
    assert!(v
        .upstream_error
        .as_deref()
        .unwrap()
        .contains("metadata of tinylib 1.0"));
    assert_eq!(
        decide(&r, &registry(), &f, FailPolicy::Closed).denial_category,
        Some(DenialCategory::Upstream)
    );
}

#[test]
fn advisory_outage_keeps_registry_verdicts_when_open() {
    let r = req("httpx", Some("0.27.0"), None);
    let f = Facts {
        index: None,
        advisories: Some(AdvisoryFacts::Unavailable("HTTP 503".into())),
    };
    let v = decide(&r, &registry(), &f, FailPolicy::Open);
    assert_eq!(v.verdict, Decision::Allowed);
    assert_eq!(
        v.upstream_error.as_deref(),
        Some("advisory source unavailable: HTTP 503")
    );
    let v = decide(&r, &registry(), &f, FailPolicy::Closed);
    assert_eq!(v.verdict, Decision::Denied);
    assert_eq!(v.denial_category, Some(DenialCategory::Upstream));

    // Unknown package: the license gate still runs; the reason says advisories were not checked.
    let r = req("tinylib", None, None);
    let f = Facts {
        index: Some(found(&["1.0"], "1.0", lic("MIT"))),
        advisories: Some(AdvisoryFacts::Unavailable("HTTP 503".into())),
    };
    let v = decide(&r, &registry(), &f, FailPolicy::Open);
    assert_eq!(v.verdict, Decision::ProvisionallyAllowed);
    assert!(
        v.reason.contains("Advisories could not be checked"),
        "{}",
        v.reason
    );
    let f = Facts {
        index: Some(found(&["1.0"], "1.0", lic("GPL-3.0-only"))),
        advisories: Some(AdvisoryFacts::Unavailable("HTTP 503".into())),
    };
    assert_eq!(
        decide(&r, &registry(), &f, FailPolicy::Open).denial_category,
        Some(DenialCategory::License)
    );
}

// ---------------------------------------------------------------- version selection

#[test]
fn select_version_rules() {
    let reg = registry();
    let rel = releases(&["1.0", "1.5", "2.0!", "2.1rc1", "1.9.post1", "not-a-version"]);
    assert_eq!(
        select_version(&req("x", None, None), &reg, &rel).as_deref(),
        Some("1.9.post1")
    );
    assert_eq!(
        select_version(&req("x", Some("1.0"), None), &reg, &rel).as_deref(),
        Some("1.0")
    );
    assert_eq!(
        select_version(&req("x", None, Some("x<1.6")), &reg, &rel).as_deref(),
        Some("1.5")
    );
    // Only a pre-release satisfies: take it (as pip does).
    assert_eq!(
        select_version(&req("x", None, Some("x>=2.1rc1")), &reg, &rel).as_deref(),
        Some("2.1rc1")
    );
    // Nothing satisfies: fall back to the newest final release.
    assert_eq!(
        select_version(&req("x", None, Some("x>5")), &reg, &rel).as_deref(),
        Some("1.9.post1")
    );
    // The registry rule narrows the choice.
    let rel = releases(&["4.1", "4.2.16", "5.2.1", "6.0.1"]);
    assert_eq!(
        select_version(&req("django", None, None), &reg, &rel).as_deref(),
        Some("5.2.1")
    );
    assert_eq!(select_version(&req("x", None, None), &reg, &[]), None);
}
