//! Lock files: the same bytes as `uv.lock`, `pylock.toml` and `poetry.lock`
//! (all TOML; each parser reads its own tables), then the attribution of
//! transitive packages to the direct dependencies. No panic; every entry's
//! location is in range.
#![no_main]

use lex_align_fuzz::{check_span, text};
use lex_align_manifest::{
    attribute, parse_poetry_lock, parse_pylock, parse_uv_lock, LineIndex, LockedPackage,
};
use libfuzzer_sys::fuzz_target;

fn check(label: &str, text: &str, r: Result<Vec<LockedPackage>, lex_align_manifest::Finding>) {
    let idx = LineIndex::new(text);
    match r {
        Ok(pkgs) => {
            for p in &pkgs {
                check_span(text, p.source.span, "locked package span");
                check_span(text, p.source.name_span, "locked package name span");
                assert_eq!(
                    (p.source.line, p.source.column),
                    idx.position(p.source.span.start, false),
                    "{label}: line/column of {}",
                    p.name
                );
            }
            // Every package of a lock counted as a direct dependency: the
            // attribution walks the whole graph (cycles included).
            let direct: Vec<_> = lex_align_manifest::parse_requirements(
                "requirements.txt",
                &pkgs
                    .iter()
                    .map(|p| p.name.clone())
                    .collect::<Vec<_>>()
                    .join("\n"),
                &|_| None,
            )
            .dependencies;
            let attributed = attribute(&direct, &pkgs);
            for d in &attributed {
                assert!(!d.canonical.is_empty());
            }
        }
        Err(f) => check_span(text, f.span, "lock finding span"),
    }
}

fuzz_target!(|data: &[u8]| {
    lex_align_fuzz::fuzz(|| {
        let Some(text) = text(data) else { return };
        check("uv.lock", text, parse_uv_lock("uv.lock", text));
        check("pylock.toml", text, parse_pylock("pylock.toml", text));
        check("poetry.lock", text, parse_poetry_lock("poetry.lock", text));
    })
});
