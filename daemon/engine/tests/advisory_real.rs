//! Advisory matching against the real PyPA advisory database snapshot.
//! Every fact asserted here was read off the YAML files by hand.

use std::path::PathBuf;
use std::str::FromStr;
use std::sync::OnceLock;

use lex_align_engine::advisory::{
    affects, assess, first_fixed, is_malicious, parse_osv_json, parse_osv_yaml, score, OsvRecord,
};
use lex_align_engine::verdict::AdvisoryHit;
use pep440_rs::Version;

fn snapshot_dir() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/data/pypa-advisory-db/vulns");
    assert!(
        dir.is_dir(),
        "PyPA advisory snapshot not found at {} (expected /work/shared/data/pypa-advisory-db/vulns)",
        dir.display()
    );
    dir
}

/// Every record of the snapshot as (package directory, record).
fn snapshot() -> &'static Vec<(String, OsvRecord)> {
    static ALL: OnceLock<Vec<(String, OsvRecord)>> = OnceLock::new();
    ALL.get_or_init(|| {
        let mut out = Vec::new();
        for pkg in std::fs::read_dir(snapshot_dir()).unwrap() {
            let pkg = pkg.unwrap();
            if !pkg.file_type().unwrap().is_dir() {
                continue;
            }
            let pkg_name = pkg.file_name().to_string_lossy().into_owned();
            for file in std::fs::read_dir(pkg.path()).unwrap() {
                let path = file.unwrap().path();
                if path.extension().and_then(|e| e.to_str()) != Some("yaml") {
                    continue;
                }
                let text = std::fs::read_to_string(&path).unwrap();
                let rec = parse_osv_yaml(&text)
                    .unwrap_or_else(|e| panic!("{} does not parse: {e}", path.display()));
                out.push((pkg_name.clone(), rec));
            }
        }
        out
    })
}

fn records_for(pkg_dir: &str) -> Vec<OsvRecord> {
    let recs: Vec<OsvRecord> = snapshot()
        .iter()
        .filter(|(p, _)| p == pkg_dir)
        .map(|(_, r)| r.clone())
        .collect();
    assert!(!recs.is_empty(), "no records for {pkg_dir} in the snapshot");
    recs
}

fn record(id: &str) -> OsvRecord {
    snapshot()
        .iter()
        .find(|(_, r)| r.id == id)
        .unwrap_or_else(|| panic!("{id} not in the snapshot"))
        .1
        .clone()
}

fn hit<'a>(hits: &'a [AdvisoryHit], id: &str) -> Option<&'a AdvisoryHit> {
    hits.iter().find(|h| h.id == id)
}

fn ids(hits: &[AdvisoryHit]) -> Vec<&str> {
    let mut v: Vec<&str> = hits.iter().map(|h| h.id.as_str()).collect();
    v.sort_unstable();
    v
}

fn ver(s: &str) -> Version {
    Version::from_str(s).unwrap()
}

#[test]
fn every_snapshot_file_parses() {
    let files: usize = std::fs::read_dir(snapshot_dir())
        .unwrap()
        .filter_map(|d| d.ok())
        .filter(|d| d.path().is_dir())
        .map(|d| {
            std::fs::read_dir(d.path())
                .unwrap()
                .filter(|f| {
                    f.as_ref()
                        .unwrap()
                        .path()
                        .extension()
                        .and_then(|e| e.to_str())
                        == Some("yaml")
                })
                .count()
        })
        .sum();
    assert!(files > 1000, "snapshot looks truncated: {files} files");
    assert_eq!(snapshot().len(), files);
    assert!(snapshot().iter().all(|(_, r)| !r.id.is_empty()));
}

#[test]
fn jinja2_ranges_and_fixed_versions() {
    let recs = records_for("jinja2");
    // 2.10: before 2.10.1 (PYSEC-2019-217) and 2.11.3 (PYSEC-2021-66), after
    // the 2.7.x/2.8.1 fixes.
    let hits = assess(&recs, "Jinja2", "2.10");
    assert_eq!(ids(&hits), vec!["PYSEC-2019-217", "PYSEC-2021-66"]);
    let h = hit(&hits, "PYSEC-2019-217").unwrap();
    assert_eq!(h.fixed_version.as_deref(), Some("2.10.1"));
    assert!(h.aliases.iter().any(|a| a == "CVE-2019-10906"));
    assert!(!h.malicious);
    assert_eq!(
        hit(&hits, "PYSEC-2021-66")
            .unwrap()
            .fixed_version
            .as_deref(),
        Some("2.11.3")
    );
    // 2.7.2 fixes CVE-2014-1402 but not CVE-2014-0012 (fixed 2.7.3).
    let hits = assess(&recs, "jinja2", "2.7.2");
    assert!(hit(&hits, "PYSEC-2014-8").is_none());
    assert_eq!(
        hit(&hits, "PYSEC-2014-82")
            .unwrap()
            .fixed_version
            .as_deref(),
        Some("2.7.3")
    );
    // The fixed version of the last one is clean.
    assert!(assess(&recs, "jinja2", "2.11.3").is_empty());
    assert!(assess(&recs, "jinja2", "3.1.4").is_empty());
}

#[test]
fn urllib3_unordered_range_with_two_pairs() {
    // PYSEC-2023-192 lists its ECOSYSTEM events as introduced 2.0.0, fixed
    // 2.0.6, introduced 0, fixed 1.26.17: evaluation must sort them.
    let full = record("PYSEC-2023-192");
    // Without its explicit `versions` list, so that the ranges alone decide.
    let mut rec = full.clone();
    for a in &mut rec.affected {
        a.versions.clear();
    }
    for (v, affected, fixed) in [
        ("1.26.16", true, Some("1.26.17")),
        ("1.25.0", true, Some("1.26.17")),
        ("1.26.17", false, None),
        ("1.26.18", false, None),
        ("2.0.0", true, Some("2.0.6")),
        ("2.0.5", true, Some("2.0.6")),
        ("2.0.6", false, None),
        ("2.2.1", false, None),
    ] {
        assert_eq!(affects(&rec, "urllib3", &ver(v)), affected, "urllib3 {v}");
        assert_eq!(
            affects(&full, "urllib3", &ver(v)),
            affected,
            "urllib3 {v} (full)"
        );
        let hits = assess(std::slice::from_ref(&rec), "urllib3", v);
        assert_eq!(hits.len(), usize::from(affected), "urllib3 {v}");
        if affected {
            assert_eq!(hits[0].fixed_version.as_deref(), fixed, "urllib3 {v}");
            assert_eq!(first_fixed(&rec, "urllib3", &ver(v)).as_deref(), fixed);
        }
    }
    // CVSS:3.1/AV:N/AC:L/PR:L/UI:N/S:U/C:H/I:H/A:N: ISS = 1-0.44*0.44 =
    // 0.8064, impact 6.42*ISS = 5.177, exploitability 8.22*0.85*0.77*0.62*0.85
    // = 2.835, roundup(8.012) = 8.1.
    assert_eq!(score(&full), Some(8.1));
}

#[test]
fn cryptography_versions_and_cvss_score() {
    let recs = records_for("cryptography");
    // PYSEC-2023-254: introduced 3.1, fixed 41.0.6 (plus a GIT range that is
    // ignored), vector CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:N/A:H:
    // impact 6.42*0.56 = 3.595, exploitability 8.22*0.85*0.77*0.85*0.85 =
    // 3.887, roundup(7.482) = 7.5.
    let hits = assess(&recs, "cryptography", "41.0.5");
    assert_eq!(ids(&hits), vec!["PYSEC-2023-254"]);
    assert_eq!(hits[0].score, Some(7.5));
    assert_eq!(hits[0].fixed_version.as_deref(), Some("41.0.6"));
    assert_eq!(
        hits[0].aliases,
        vec!["CVE-2023-49083", "GHSA-jfhm-5ghh-2f97"]
    );

    // 40.0.0: PYSEC-2023-112 (introduced 40.0.0, fixed 41.0.2) too.
    let hits = assess(&recs, "cryptography", "40.0.0");
    assert_eq!(ids(&hits), vec!["PYSEC-2023-112", "PYSEC-2023-254"]);
    assert_eq!(
        hit(&hits, "PYSEC-2023-112")
            .unwrap()
            .fixed_version
            .as_deref(),
        Some("41.0.2")
    );
    // No vector, no label: no score.
    assert_eq!(hit(&hits, "PYSEC-2023-112").unwrap().score, None);

    // 39.0.0 is in PYSEC-2023-11 (introduced 1.8, fixed 39.0.1).
    let hits = assess(&recs, "cryptography", "39.0.0");
    assert_eq!(
        hit(&hits, "PYSEC-2023-11")
            .unwrap()
            .fixed_version
            .as_deref(),
        Some("39.0.1")
    );
    assert!(hit(&hits, "PYSEC-2023-112").is_none());

    for clean in ["41.0.6", "41.0.7", "42.0.0", "44.0.0"] {
        assert!(
            assess(&recs, "cryptography", clean).is_empty(),
            "cryptography {clean}"
        );
    }
}

#[test]
fn pyyaml_prerelease_fix_and_display_name() {
    let recs = records_for("pyyaml");
    // 5.1.2: PYSEC-2020-176 (5.1 → fixed 5.2b1) and PYSEC-2020-96 (5.1 → 5.3.1).
    let hits = assess(&recs, "PyYAML", "5.1.2");
    assert_eq!(
        hit(&hits, "PYSEC-2020-176")
            .unwrap()
            .fixed_version
            .as_deref(),
        Some("5.2b1")
    );
    assert_eq!(
        hit(&hits, "PYSEC-2020-96")
            .unwrap()
            .fixed_version
            .as_deref(),
        Some("5.3.1")
    );
    // The pre-release 5.2b1 is itself the fix of PYSEC-2020-176 and orders
    // before 5.2.
    let hits = assess(&recs, "pyyaml", "5.2b1");
    assert!(hit(&hits, "PYSEC-2020-176").is_none());
    assert!(hit(&hits, "PYSEC-2020-96").is_some());
    let hits = assess(&recs, "pyyaml", "5.2a1");
    assert!(hit(&hits, "PYSEC-2020-176").is_some());
    // Before 5.1: PYSEC-2018-49 (fixed 5.1) only among these.
    let hits = assess(&recs, "pyyaml", "5.0");
    assert!(hit(&hits, "PYSEC-2018-49").is_some());
    assert!(hit(&hits, "PYSEC-2020-96").is_none());
}

#[test]
fn requests_and_flask_multi_range_records() {
    let recs = records_for("requests");
    let hits = assess(&recs, "requests", "2.30.0");
    let h = hit(&hits, "PYSEC-2023-74").unwrap();
    assert_eq!(h.fixed_version.as_deref(), Some("2.31.0"));
    assert!(h.aliases.iter().any(|a| a == "CVE-2023-32681"));
    assert!(assess(&recs, "requests", "2.31.0").is_empty());
    assert!(assess(&recs, "requests", "2.32.3").is_empty());
    // 2.2.1 is before 2.3.0 (PYSEC-2014-13/14) and in 2.1.0..2.6.0 (PYSEC-2015-17).
    let hits = assess(&recs, "requests", "2.2.1");
    for id in [
        "PYSEC-2014-13",
        "PYSEC-2014-14",
        "PYSEC-2015-17",
        "PYSEC-2018-28",
    ] {
        assert!(hit(&hits, id).is_some(), "requests 2.2.1 misses {id}");
    }
    assert!(hit(&hits, "PYSEC-2023-74").is_none());

    // Flask PYSEC-2023-62: introduced 0 fixed 2.2.5, introduced 2.3.0 fixed 2.3.2.
    let rec = record("PYSEC-2023-62");
    assert!(affects(&rec, "flask", &ver("2.2.4")));
    assert!(!affects(&rec, "flask", &ver("2.2.5")));
    assert!(affects(&rec, "Flask", &ver("2.3.1")));
    assert!(!affects(&rec, "flask", &ver("2.3.2")));
    assert_eq!(
        first_fixed(&rec, "flask", &ver("2.3.1")).as_deref(),
        Some("2.3.2")
    );
    assert_eq!(
        first_fixed(&rec, "flask", &ver("2.2.4")).as_deref(),
        Some("2.2.5")
    );
}

#[test]
fn last_affected_is_inclusive() {
    // py PYSEC-2022-42969: introduced 0, last_affected 1.11.0, no fix.
    let recs = records_for("py");
    let rec = record("PYSEC-2022-42969");
    assert!(affects(&rec, "py", &ver("1.11.0")));
    assert!(affects(&rec, "py", &ver("1.4.0")));
    assert!(!affects(&rec, "py", &ver("1.11.1")));
    let hits = assess(&recs, "py", "1.11.0");
    let h = hit(&hits, "PYSEC-2022-42969").unwrap();
    assert_eq!(h.fixed_version, None);
}

#[test]
fn explicit_versions_only_record() {
    // gratient PYSEC-2024-1 has no ranges, only versions: ["0.5"].
    let rec = record("PYSEC-2024-1");
    assert!(rec.affected[0].ranges.is_empty());
    assert!(affects(&rec, "gratient", &ver("0.5")));
    // PEP 440 equality, not string equality.
    assert!(affects(&rec, "gratient", &ver("0.5.0")));
    assert!(!affects(&rec, "gratient", &ver("0.4")));
    assert!(!affects(&rec, "gratient", &ver("0.5.1")));
    assert_eq!(
        assess(std::slice::from_ref(&rec), "gratient", "0.5").len(),
        1
    );
    // Another package's name never matches.
    assert!(!affects(&rec, "gradient", &ver("0.5")));
}

#[test]
fn withdrawn_records_are_ignored() {
    // redis PYSEC-2023-73 was withdrawn; it still lists 2.10.0 as affected.
    let rec = record("PYSEC-2023-73");
    assert!(rec.withdrawn.is_some());
    assert!(affects(&rec, "redis", &ver("2.10.0")));
    let hits = assess(&records_for("redis"), "redis", "2.10.0");
    assert!(hit(&hits, "PYSEC-2023-73").is_none());
}

#[test]
fn json_and_yaml_forms_agree() {
    let rec = record("PYSEC-2023-192");
    let json = serde_json::to_string(&rec).unwrap();
    assert_eq!(parse_osv_json(&json).unwrap(), rec);
    assert!(parse_osv_json("{\"summary\": 1}").is_err());
    assert!(parse_osv_yaml("- just\n- a list\n").is_err());
}

#[test]
fn whole_snapshot_scores_and_listed_versions() {
    let mut with_vector = 0;
    let mut scored_vector = 0;
    for (_, rec) in snapshot() {
        let s = score(rec);
        if let Some(s) = s {
            assert!((0.0..=10.0).contains(&s), "{} scored {s}", rec.id);
            assert_eq!((s * 10.0).round() / 10.0, s, "{} not rounded", rec.id);
        }
        let has_vector = rec
            .severity
            .iter()
            .chain(rec.affected.iter().flat_map(|a| a.severity.iter()))
            .any(|sev| sev.kind.starts_with("CVSS_V"));
        if has_vector {
            with_vector += 1;
            if s.is_some() {
                scored_vector += 1;
            }
        }
        assert!(!is_malicious(rec) || rec.id.starts_with("MAL-"));
        // Every explicitly listed version is affected.
        for a in &rec.affected {
            let Some(pkg) = &a.package else { continue };
            if pkg.ecosystem != "PyPI" {
                continue;
            }
            for listed in &a.versions {
                if let Ok(v) = Version::from_str(listed) {
                    assert!(
                        affects(rec, &pkg.name, &v),
                        "{} lists {} {listed} but does not match it",
                        rec.id,
                        pkg.name
                    );
                }
            }
        }
    }
    assert!(
        with_vector >= 202,
        "only {with_vector} records with vectors"
    );
    assert_eq!(scored_vector, with_vector, "some vectors did not score");
}

#[test]
fn scores_from_vectors_labels_and_numbers() {
    let base = OsvRecord {
        id: "GHSA-test".into(),
        ..Default::default()
    };
    let with = |f: &dyn Fn(&mut OsvRecord)| {
        let mut r = base.clone();
        f(&mut r);
        r
    };
    // CVSS v4: AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N is 9.3.
    let v4 = with(&|r| {
        r.severity.push(lex_align_engine::advisory::OsvSeverity {
            kind: "CVSS_V4".into(),
            score: "CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N".into(),
        })
    });
    assert_eq!(score(&v4), Some(9.3));
    // The highest of several vectors, affected-level included; a label is
    // only a fallback.
    let mixed = with(&|r| {
        r.severity.push(lex_align_engine::advisory::OsvSeverity {
            kind: "CVSS_V3".into(),
            score: "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:N/A:H".into(),
        });
        r.affected.push(lex_align_engine::advisory::OsvAffected {
            severity: vec![lex_align_engine::advisory::OsvSeverity {
                kind: "CVSS_V3".into(),
                score: "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H".into(),
            }],
            ..Default::default()
        });
        r.database_specific = Some(serde_json::json!({"severity": "LOW"}));
    });
    assert_eq!(score(&mixed), Some(9.8));
    // CVSS v2 AV:N/AC:L/Au:N/C:P/I:P/A:P is 7.5.
    let v2 = with(&|r| {
        r.severity.push(lex_align_engine::advisory::OsvSeverity {
            kind: "CVSS_V2".into(),
            score: "AV:N/AC:L/Au:N/C:P/I:P/A:P".into(),
        })
    });
    assert_eq!(score(&v2), Some(7.5));
    for (label, expect) in [
        ("CRITICAL", 9.0),
        ("HIGH", 7.0),
        ("MODERATE", 4.0),
        ("medium", 4.0),
        ("LOW", 0.1),
    ] {
        let r = with(&|r| r.database_specific = Some(serde_json::json!({"severity": label})));
        assert_eq!(score(&r), Some(expect), "{label}");
    }
    // A broken vector falls back to the label.
    let broken = with(&|r| {
        r.severity.push(lex_align_engine::advisory::OsvSeverity {
            kind: "CVSS_V3".into(),
            score: "CVSS:3.1/AV:X".into(),
        });
        r.database_specific = Some(serde_json::json!({"severity": "HIGH"}));
    });
    assert_eq!(score(&broken), Some(7.0));
    let numeric = with(&|r| r.database_specific = Some(serde_json::json!({"cvss": 6.54})));
    assert_eq!(score(&numeric), Some(6.5));
    let object = with(&|r| r.database_specific = Some(serde_json::json!({"cvss": {"score": 9.1}})));
    assert_eq!(score(&object), Some(9.1));
    assert_eq!(score(&base), None);
}

#[test]
fn malicious_ids_and_aliases() {
    let mal = OsvRecord {
        id: "MAL-2024-1234".into(),
        affected: vec![lex_align_engine::advisory::OsvAffected {
            package: Some(lex_align_engine::advisory::OsvPackage {
                ecosystem: "PyPI".into(),
                name: "Reqeusts_Lib".into(),
            }),
            ranges: vec![lex_align_engine::advisory::OsvRange {
                kind: "ECOSYSTEM".into(),
                events: vec![lex_align_engine::advisory::OsvEvent {
                    introduced: Some("0".into()),
                    ..Default::default()
                }],
            }],
            ..Default::default()
        }],
        ..Default::default()
    };
    let hits = assess(std::slice::from_ref(&mal), "reqeusts-lib", "1.0.0");
    assert_eq!(hits.len(), 1);
    assert!(hits[0].malicious);
    assert_eq!(hits[0].fixed_version, None);
    let aliased = OsvRecord {
        id: "GHSA-xxxx".into(),
        aliases: vec!["MAL-2024-9".into()],
        ..Default::default()
    };
    assert!(is_malicious(&aliased));
    assert!(!is_malicious(&record("PYSEC-2023-192")));
    // An npm record of the same name is not a PyPI advisory.
    let mut npm = mal.clone();
    npm.affected[0].package.as_mut().unwrap().ecosystem = "npm".into();
    assert!(assess(&[npm], "reqeusts-lib", "1.0.0").is_empty());
}

#[test]
fn unparseable_version_matches_only_explicit_lists() {
    let rec = record("PYSEC-2024-1");
    assert!(assess(std::slice::from_ref(&rec), "gratient", "not a version").is_empty());
    let mut odd = rec.clone();
    odd.affected[0].versions.push("weird-build-7".into());
    assert_eq!(assess(&[odd], "gratient", "weird-build-7").len(), 1);
}
