//! The public flow as a caller (daemon, CLI, LSP) drives it: parse the
//! request, plan, fetch (here: the real PyPA snapshot and index-shaped
//! facts), decide; and the proposer's edit of a commented registry.yml.

use std::path::Path;

use lex_align_engine::advisory::{parse_osv_yaml, OsvRecord};
use lex_align_engine::evaluate::{
    decide, plan, AdvisoryFacts, Facts, FailPolicy, IndexFacts, LicenseMetadata, Plan, Release,
};
use lex_align_engine::registry::{upsert_rule_in_yaml, Registry, Rule, Status, STARTER_YAML};
use lex_align_engine::request::EvalRequest;
use lex_align_engine::verdict::{Decision, DenialCategory};

fn snapshot(package: &str) -> Vec<OsvRecord> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/data/pypa-advisory-db/vulns")
        .join(package);
    let mut paths: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    paths.sort();
    paths
        .iter()
        .map(|p| parse_osv_yaml(&std::fs::read_to_string(p).unwrap()).unwrap())
        .collect()
}

fn index(versions: &[&str], chosen: &str, classifier: &str) -> IndexFacts {
    IndexFacts::Found {
        name: "x".into(),
        releases: versions
            .iter()
            .map(|v| Release {
                version: v.to_string(),
                yanked: false,
            })
            .collect(),
        metadata: Some((
            chosen.to_string(),
            LicenseMetadata {
                classifiers: vec![classifier.to_string()],
                ..Default::default()
            },
        )),
    }
}

#[test]
fn cryptography_requirement_in_bounds_is_matched_against_real_advisories() {
    let registry = Registry::builtin_default();
    let req = EvalRequest::parse("", None, Some("cryptography>=42.0.0,<44")).unwrap();
    let Plan::Fetch(needs) = plan(&req, &registry) else {
        panic!("a requirement within the bounds needs upstream facts")
    };
    assert!(needs.index && needs.advisories);
    let facts = Facts {
        index: Some(index(
            &["41.0.7", "42.0.0", "42.0.4", "43.0.0", "43.0.1", "44.0.0"],
            "43.0.1",
            "License :: OSI Approved :: Apache Software License",
        )),
        advisories: Some(AdvisoryFacts::Found(snapshot("cryptography"))),
    };
    let v = decide(&req, &registry, &facts, FailPolicy::Open);
    assert_eq!(v.resolved_version.as_deref(), Some("43.0.1"));
    assert_eq!(v.verdict, Decision::Allowed, "{v:?}");
    assert_eq!(v.version_constraint.as_deref(), Some(">=42.0.0"));
    assert_eq!(v.license.as_deref(), Some("Apache-2.0"));
    // Every advisory reported for 43.0.1 really affects it: each has a fix above it.
    for f in &v.fixed_versions {
        let fixed: pep440_rs::Version = f.fixed.parse().unwrap();
        assert!(fixed > "43.0.1".parse().unwrap(), "{f:?}");
    }

    // The same range starting below the bound is refused with a fix.
    let req = EvalRequest::parse("cryptography", None, Some("cryptography>=41,<44")).unwrap();
    let Plan::Decided(v) = plan(&req, &registry) else {
        panic!("the registry alone settles a range outside the bounds")
    };
    assert_eq!(v.denial_category, Some(DenialCategory::Registry));
    assert_eq!(
        v.suggested_requirement.as_deref(),
        Some("cryptography>=42.0.0,<44")
    );
}

#[test]
fn old_cryptography_pin_reports_its_real_advisories_when_allowed_by_a_looser_rule() {
    // A registry without the version rule: 41.0.5 is affected by the
    // snapshot's PYSEC-2023-254 (fixed in 41.0.6).
    let text = STARTER_YAML.replace("min_version: \"42.0.0\"", "min_version: \"3.0\"");
    let registry = Registry::from_yaml(&text).unwrap();
    let req = EvalRequest::parse("cryptography", Some("41.0.5"), None).unwrap();
    let facts = Facts {
        index: None,
        advisories: Some(AdvisoryFacts::Found(snapshot("cryptography"))),
    };
    let v = decide(&req, &registry, &facts, FailPolicy::Open);
    assert!(
        v.cve_ids.iter().any(|id| id == "PYSEC-2023-254"),
        "{:?}",
        v.cve_ids
    );
    assert!(v
        .fixed_versions
        .iter()
        .any(|f| f.id == "PYSEC-2023-254" && f.fixed == "41.0.6"));
    assert!(v.max_cvss.is_some());
}

#[test]
fn proposer_edit_of_the_starter_file_keeps_its_comments() {
    let rule = Rule {
        name: "attrs".into(),
        status: Status::Approved,
        reason: Some("Operator approved after review.".into()),
        replacement: None,
        min_version: None,
        max_version: None,
        line: None,
        expires: None,
        owner: None,
    };
    let out = upsert_rule_in_yaml(STARTER_YAML, &rule).unwrap();
    assert!(
        out.starts_with(STARTER_YAML),
        "the existing text is kept byte for byte"
    );
    assert_eq!(
        &out[STARTER_YAML.len()..],
        "  attrs:\n    status: approved\n    reason: Operator approved after review.\n"
    );
    let reg = Registry::from_yaml(&out).unwrap();
    assert_eq!(reg.rule("attrs").unwrap().line, Some(26));
    assert_eq!(reg.packages.len(), 5);
}
