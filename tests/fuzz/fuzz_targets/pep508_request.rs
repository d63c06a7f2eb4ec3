//! `EvalRequest::parse` (the `package` / `version` / `requirement` query or
//! body fields, split from the input at NULs), then the whole decision
//! against the starter registry with a fixed release list. No panic; an
//! accepted request re-parses from its own normalised fields to the same
//! request.
#![no_main]

use std::sync::OnceLock;

use lex_align_engine::evaluate::{
    decide, plan, select_version, AdvisoryFacts, Facts, FailPolicy, IndexFacts, LicenseMetadata,
    Release,
};
use lex_align_engine::name::{canonicalize, MAX_NAME_LEN};
use lex_align_engine::registry::Registry;
use lex_align_engine::request::{EvalRequest, MAX_REQUIREMENT_LEN};
use libfuzzer_sys::fuzz_target;

fn registry() -> &'static Registry {
    static R: OnceLock<Registry> = OnceLock::new();
    R.get_or_init(Registry::builtin_default)
}

fn releases() -> Vec<Release> {
    [
        "0.1",
        "1.0",
        "1.0.post1",
        "2.0rc1",
        "2.0",
        "41.0.7",
        "42.0.0",
        "2024.1",
        "3!1.0",
    ]
    .iter()
    .enumerate()
    .map(|(i, v)| Release {
        version: v.to_string(),
        yanked: i == 2,
    })
    .collect()
}

fuzz_target!(|data: &[u8]| {
    lex_align_fuzz::fuzz(|| {
        let Ok(text) = std::str::from_utf8(data) else {
            return;
        };
        let mut parts = text.splitn(3, '\0');
        let package = parts.next().unwrap_or("");
        let version = parts.next();
        let requirement = parts.next();
        let Ok(req) = EvalRequest::parse(package, version, requirement) else {
            return;
        };
        assert_eq!(req.canonical, canonicalize(&req.package));
        if req.package.chars().count() > MAX_NAME_LEN {
            // Reported: regression test `fuzz_request_name_length_via_requirement`.
            lex_align_fuzz::known_bug(
                "EvalRequest::parse takes a name longer than MAX_NAME_LEN from `requirement`",
            );
            return;
        }
        if let Some(r) = &req.requirement {
            assert!(
                req.parsed_requirement().is_some(),
                "stored requirement {r:?} does not parse"
            );
        }
        // (pep508's rendering may be longer than the input: the length cap
        // applies to what the caller sent.)
        if req
            .requirement
            .as_ref()
            .is_none_or(|r| r.len() <= MAX_REQUIREMENT_LEN)
        {
            let again = EvalRequest::parse(
                &req.package,
                req.version.as_deref(),
                req.requirement.as_deref(),
            )
            .unwrap_or_else(|e| panic!("normalised request {req:?} is refused: {e}"));
            assert_eq!(
                (
                    &again.package,
                    &again.canonical,
                    &again.version,
                    &again.requirement
                ),
                (&req.package, &req.canonical, &req.version, &req.requirement)
            );
        }
        let _ = req.specifiers();
        let _ = req.pinned_version();

        let reg = registry();
        let _ = plan(&req, reg);
        let releases = releases();
        let chosen = select_version(&req, reg, &releases);
        let facts = Facts {
            index: Some(IndexFacts::Found {
                name: req.canonical.clone(),
                releases,
                metadata: chosen.map(|v| {
                    (
                        v,
                        LicenseMetadata {
                            license_expression: Some("MIT".into()),
                            license: None,
                            classifiers: vec![],
                        },
                    )
                }),
            }),
            advisories: Some(AdvisoryFacts::Found(vec![])),
        };
        let _ = decide(&req, reg, &facts, FailPolicy::Open);
        let _ = decide(&req, reg, &facts, FailPolicy::Closed);
    })
});
