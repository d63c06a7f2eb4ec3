//! OSV advisory records: the same bytes as JSON (OSV API answer, export zip
//! entry) and as YAML (the PyPA advisory database, offline source), then
//! local matching and scoring. No panic; a record survives a JSON round
//! trip; YAML → JSON value → record agrees with the YAML parser.
#![no_main]

use std::str::FromStr;

use lex_align_engine::advisory::{
    affects, assess, first_fixed, is_malicious, osv_yaml_to_json, parse_osv_json, parse_osv_yaml,
    score, OsvRecord,
};
use libfuzzer_sys::fuzz_target;
use pep440_rs::Version;

/// The record without its free-form `database_specific` values (serde_json
/// does not promise to read back every float to the bit).
fn without_free_json(rec: &OsvRecord) -> OsvRecord {
    let mut r = rec.clone();
    r.database_specific = None;
    for a in &mut r.affected {
        a.database_specific = None;
    }
    r
}

fn exercise(rec: &OsvRecord) {
    let json = serde_json::to_string(rec).expect("a record serialises");
    let back = parse_osv_json(&json).unwrap_or_else(|e| panic!("round trip: {e}\n{json}"));
    assert_eq!(
        without_free_json(&back),
        without_free_json(rec),
        "JSON round trip"
    );

    let _ = score(rec);
    let _ = is_malicious(rec);
    let mut versions: Vec<String> = vec![
        "0".into(),
        "1.0".into(),
        "999!999".into(),
        "not-pep440".into(),
    ];
    for a in rec.affected.iter().take(4) {
        for r in a.ranges.iter().take(4) {
            for e in r.events.iter().take(8) {
                versions.extend(
                    e.introduced
                        .iter()
                        .chain(&e.fixed)
                        .chain(&e.last_affected)
                        .cloned(),
                );
            }
        }
        versions.extend(a.versions.iter().take(4).cloned());
    }
    versions.truncate(24);
    let names: Vec<String> = rec
        .affected
        .iter()
        .filter_map(|a| a.package.as_ref().map(|p| p.name.clone()))
        .take(3)
        .collect();
    for name in &names {
        for v in &versions {
            let hits = assess(std::slice::from_ref(rec), name, v);
            if let Ok(parsed) = Version::from_str(v.trim()) {
                let canonical = lex_align_engine::name::canonicalize(name);
                let _ = affects(rec, &canonical, &parsed);
                let _ = first_fixed(rec, &canonical, &parsed);
            }
            for h in hits {
                assert_eq!(h.id, rec.id);
            }
        }
    }
}

fuzz_target!(|data: &[u8]| {
    lex_align_fuzz::fuzz(|| {
        let Ok(text) = std::str::from_utf8(data) else {
            return;
        };
        if let Ok(rec) = parse_osv_json(text) {
            exercise(&rec);
        }
        if let Ok(rec) = parse_osv_yaml(text) {
            let value = osv_yaml_to_json(text).expect("parse_osv_yaml accepted it");
            let via_value: OsvRecord =
                serde_json::from_value(value).expect("same value, same record");
            assert_eq!(via_value, rec);
            exercise(&rec);
        }
    })
});
