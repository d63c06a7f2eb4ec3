//! Core metadata: a PEP 658 `.metadata` file (RFC 822 headers, folded
//! values) and the metadata inside a distribution file — wheel METADATA,
//! sdist PKG-INFO in a `.tar.gz` or `.zip` (the same bytes as each). No
//! panic; the fields the license gate reads are trimmed, non-empty and never
//! `UNKNOWN`; the license they resolve to is in normal form.
#![no_main]

use std::sync::OnceLock;

use lex_align_engine::evaluate::LicenseMetadata;
use lex_align_engine::license::{judge, normalize_expression, resolve};
use lex_align_engine::registry::Registry;
use lex_align_upstream::index::fuzz;
use libfuzzer_sys::fuzz_target;

fn policies() -> &'static Registry {
    static R: OnceLock<Registry> = OnceLock::new();
    R.get_or_init(Registry::builtin_default)
}

fn check(m: &LicenseMetadata) {
    for v in m.license_expression.iter().chain(&m.license) {
        assert!(
            !v.is_empty() && v.trim() == v && !v.eq_ignore_ascii_case("UNKNOWN"),
            "{v:?}"
        );
    }
    let resolved = resolve(m);
    if let Some(e) = &resolved.expression {
        if let Some(again) = normalize_expression(e) {
            assert_eq!(&again, e, "normalising a resolved expression changed it");
        }
    }
    let _ = judge(resolved.expression.as_deref(), &policies().policies);
}

fuzz_target!(|data: &[u8]| {
    lex_align_fuzz::fuzz(|| {
        check(&fuzz::core_metadata(data));
        for name in [
            "demo-1.0-py3-none-any.whl",
            "demo-1.0.tar.gz",
            "demo-1.0.zip",
        ] {
            if let Some(Ok(m)) = fuzz::dist_metadata(name, data) {
                check(&m);
            }
        }
    })
});
