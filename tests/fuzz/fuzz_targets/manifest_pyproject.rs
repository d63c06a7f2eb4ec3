//! `pyproject.toml` (PEP 621, PEP 735, uv and Poetry tables): no panic,
//! every span and position in range, and the code-action edit (the
//! requirement replaced by its normalised form) still parses to the same
//! package at the same place.
#![no_main]

use lex_align_fuzz::{check_manifest, text};
use lex_align_manifest::{parse_pyproject, replace_requirement, FindingKind, Scope};
use libfuzzer_sys::fuzz_target;

const LABEL: &str = "pyproject.toml";

fuzz_target!(|data: &[u8]| {
    lex_align_fuzz::fuzz(|| {
        let Some(text) = text(data) else { return };
        let m = parse_pyproject(LABEL, text);
        check_manifest(LABEL, text, &m);

        // Round trip of the first PEP 508 dependency through replace_requirement.
        let Some(d) = m.dependencies.iter().find(|d| {
            d.direct
                && !matches!(d.scope, Scope::PoetryMain | Scope::PoetryGroup(_))
                && d.source.file == LABEL
        }) else {
            return;
        };
        let edited = replace_requirement(text, d.source.span, &d.requirement);
        let again = parse_pyproject(LABEL, &edited);
        assert!(
            !again
                .findings
                .iter()
                .any(|f| f.kind == FindingKind::InvalidToml),
            "replacing {:?} with {:?} broke the TOML: {:?}",
            d.source.span.slice(text),
            d.requirement,
            again.findings
        );
        assert!(
            again
                .dependencies
                .iter()
                .any(|e| e.source.span.start == d.source.span.start && e.canonical == d.canonical),
            "replacing {:?} with {:?} lost the dependency",
            d.source.span.slice(text),
            d.requirement
        );
    })
});
