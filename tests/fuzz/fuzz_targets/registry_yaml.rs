//! The registry loader (`registry.yml`, or its JSON form when the text
//! starts with `{`), the compiled-JSON round trip and the in-place YAML
//! edits the proposer makes. No panic; a loaded registry comes back the same
//! from its compiled JSON; an upserted rule reads back as given; a removed
//! one is gone.
#![no_main]

use lex_align_engine::registry::{remove_rule_in_yaml, upsert_rule_in_yaml, Registry, Rule};
use libfuzzer_sys::fuzz_target;
use time::{Duration, OffsetDateTime};

/// What the compiled JSON keeps of a rule: no source line, empty strings
/// dropped.
fn comparable(r: &Rule) -> Rule {
    let keep = |s: &Option<String>| s.clone().filter(|s| !s.is_empty());
    Rule {
        line: None,
        reason: keep(&r.reason),
        replacement: keep(&r.replacement),
        min_version: keep(&r.min_version),
        max_version: keep(&r.max_version),
        owner: keep(&r.owner),
        ..r.clone()
    }
}

fn comparable_registry(r: &Registry) -> Registry {
    let mut r = r.clone();
    for rule in r.packages.values_mut() {
        *rule = comparable(rule);
    }
    r
}

fuzz_target!(|data: &[u8]| {
    lex_align_fuzz::fuzz(|| {
        let Ok(text) = std::str::from_utf8(data) else {
            return;
        };
        let Ok(reg) = Registry::from_text(text) else {
            return;
        };

        let compiled = serde_json::to_string(&reg.to_compiled_json()).expect("compiled JSON");
        let back = Registry::from_json(&compiled)
            .unwrap_or_else(|e| panic!("compiled JSON {compiled} does not load: {e}"));
        assert_eq!(
            comparable_registry(&back),
            comparable_registry(&reg),
            "compiled round trip"
        );
        let _ = reg.to_api_json();

        let now = OffsetDateTime::UNIX_EPOCH + Duration::days(20_000);
        let _ = reg.rules_lapsing_within(now, Duration::days(7));
        for rule in reg.packages.values().take(4) {
            let _ = reg.rule_at(&rule.name, now);
            let _ = rule.bounds();
        }

        if text
            .trim_start_matches('\u{feff}')
            .trim_start()
            .starts_with('{')
        {
            return;
        }
        // The proposer's edits, on the first rule (its own block rewritten) and a
        // new one (appended).
        let first = reg.packages.values().next().cloned();
        let fresh = Rule {
            name: "Fuzz_New.Pkg".into(),
            status: lex_align_engine::registry::Status::Approved,
            reason: Some("added by the fuzzer: 'quotes' \"and\" # hash".into()),
            replacement: None,
            min_version: None,
            max_version: None,
            line: None,
            expires: None,
            owner: None,
        };
        for rule in first.iter().chain([&fresh]) {
            if let Ok(out) = upsert_rule_in_yaml(text, rule) {
                let edited = Registry::from_yaml(&out)
                    .unwrap_or_else(|e| panic!("upsert returned invalid YAML: {e}\n{out}"));
                let got = edited
                    .rule(&rule.name)
                    .unwrap_or_else(|| panic!("upserted {} is missing:\n{out}", rule.name));
                assert_eq!(
                    comparable(got),
                    comparable(rule),
                    "upserted rule reads back:\n{out}"
                );
            }
        }
        if let Some(rule) = &first {
            if let Ok(out) = remove_rule_in_yaml(text, &rule.name) {
                if let Ok(edited) = Registry::from_yaml(&out) {
                    assert!(
                        edited.rule(&rule.name).is_none(),
                        "removed {} is still there:\n{out}",
                        rule.name
                    );
                }
            }
        }
    })
});
