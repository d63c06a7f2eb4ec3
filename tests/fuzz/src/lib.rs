//! Checks shared by the fuzz targets: cheap invariants that hold for any
//! input, so a target catches wrong answers as well as panics.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Once;

use lex_align_manifest::{offset_at, position, Dependency, Finding, LineIndex, Manifest, Span};

/// Panics already reported, each with an ignored regression test in the
/// crate it hits: (where it panics — a path fragment of the panic location,
/// what the message contains, what it is). Tolerated — the input is
/// skipped — so that a run keeps looking for new ones. `FUZZ_STRICT=1`
/// tolerates none. Remove an entry once its bug is fixed.
pub const KNOWN_BUGS: &[(&str, &str, &str)] = &[
    (
        "pep508_rs",
        "validation should match PEP 508 parsing",
        "pep508_rs 0.9.2 panics on a package or extra name ending in `.`/`-`/`_` \
         followed by a non-name character (`foo- >=1`, `foo[bar-]`); \
         regression tests `fuzz_pep508_*`",
    ),
    (
        "pep508_rs",
        "is not a char boundary",
        "pep508_rs 0.9.2 slices its input inside a multi-byte character while \
         reporting a bad marker (`x ; platform_release != 'Vi'''sta\u{2122}'`); \
         regression tests `fuzz_pep508_marker_*`",
    ),
    (
        "registry/edit.rs",
        "index out of bounds",
        "upsert_rule_in_yaml / remove_rule_in_yaml index past the last line of a \
         registry.yml with bare CR line breaks; regression test \
         `fuzz_registry_edit_bare_cr`",
    ),
];

/// A wrong answer already reported (a check in a target, not a panic of the
/// code under test): marks the input as skipped, like a [`KNOWN_BUGS`] panic.
pub fn known_bug(what: &str) {
    KNOWN_HIT.store(true, Ordering::SeqCst);
    if KNOWN_COUNT.fetch_add(1, Ordering::SeqCst) == 0 {
        eprintln!("fuzz: known bug hit, input skipped (reported once): {what}");
    }
}

static KNOWN_HIT: AtomicBool = AtomicBool::new(false);
static KNOWN_COUNT: AtomicU64 = AtomicU64::new(0);

fn install_hook() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        if std::env::var("FUZZ_STRICT").is_ok_and(|v| v == "1") {
            return;
        }
        // libFuzzer's hook (set before the first input) aborts: keep it for
        // every panic that is not a known bug.
        let abort = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let msg = info
                .payload()
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| info.payload().downcast_ref::<&str>().copied())
                .unwrap_or("");
            // After a known bug, whatever follows in the same input (a
            // check on the 500 a catch-panic layer made of it) is its echo.
            if KNOWN_HIT.load(Ordering::SeqCst) {
                return;
            }
            let file = info.location().map(|l| l.file()).unwrap_or("");
            if let Some((_, _, what)) = KNOWN_BUGS
                .iter()
                .find(|(at, needle, _)| file.contains(at) && msg.contains(needle))
            {
                known_bug(what);
                return;
            }
            abort(info)
        }));
    });
}

/// Runs one input's checks; an input that hits a [`KNOWN_BUGS`] panic
/// anywhere inside (also one a catch-panic layer would answer) is skipped.
pub fn fuzz(f: impl FnOnce()) {
    install_hook();
    KNOWN_HIT.store(false, Ordering::SeqCst);
    let result = catch_unwind(AssertUnwindSafe(f));
    if KNOWN_HIT.load(Ordering::SeqCst) {
        return;
    }
    if let Err(e) = result {
        std::panic::resume_unwind(e);
    }
}

/// Input bytes as the parsers get them from a file or a socket: UTF-8, or
/// nothing (the callers read with `read_to_string` / `from_utf8`).
pub fn text(data: &[u8]) -> Option<&str> {
    std::str::from_utf8(data).ok()
}

/// Splits at the first NUL: one fuzz input carrying two texts.
pub fn split2(data: &[u8]) -> (&[u8], &[u8]) {
    match data.iter().position(|&b| b == 0) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[]),
    }
}

/// A span lies inside `text`, on character boundaries.
pub fn check_span(text: &str, span: Span, what: &str) {
    assert!(
        span.start <= span.end && span.end <= text.len(),
        "{what}: span {span:?} outside a text of {} bytes",
        text.len()
    );
    assert!(
        text.is_char_boundary(span.start) && text.is_char_boundary(span.end),
        "{what}: span {span:?} splits a character"
    );
    let _ = span.slice(text);
}

/// A dependency's location agrees with its own text: spans in range, and
/// `line`/`column` (Unicode scalar values) are those of `span.start`; the
/// LSP position of the start maps back to it.
pub fn check_dependency(text: &str, d: &Dependency) {
    check_span(text, d.source.span, "dependency span");
    check_span(text, d.source.name_span, "dependency name span");
    let idx = LineIndex::new(text);
    assert_eq!(
        (d.source.line, d.source.column),
        idx.position(d.source.span.start, false),
        "line/column of {:?} at {:?}",
        d.requirement,
        d.source.span
    );
    for utf16 in [false, true] {
        let (line, col) = position(text, d.source.span.start, utf16);
        assert_eq!(
            offset_at(text, line, col, utf16),
            d.source.span.start,
            "LSP position ({line}, {col}) utf16={utf16} does not map back"
        );
    }
    assert!(!d.canonical.is_empty(), "empty canonical name");
}

pub fn check_finding(text: &str, f: &Finding) {
    check_span(text, f.span, "finding span");
    let idx = LineIndex::new(text);
    assert_eq!(
        (f.line, f.column),
        idx.position(f.span.start, false),
        "line/column of finding {:?}",
        f.message
    );
}

/// Every dependency and finding recorded for `label` is located in `text`.
pub fn check_manifest(label: &str, text: &str, m: &Manifest) {
    for d in m.dependencies.iter().filter(|d| d.source.file == label) {
        check_dependency(text, d);
    }
    for f in m.findings.iter().filter(|f| f.file == label) {
        check_finding(text, f);
    }
    // The diff against itself is empty, against nothing it is all additions.
    assert!(
        lex_align_manifest::diff(m, m).is_empty(),
        "diff(m, m) not empty"
    );
    let _ = lex_align_manifest::diff(&Manifest::default(), m);
    let _ = serde_json::to_string(m).expect("a manifest serialises");
}
