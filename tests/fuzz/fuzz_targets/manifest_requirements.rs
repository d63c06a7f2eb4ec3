//! `requirements*.txt` with `-r` / `-c` includes: the input is the top file,
//! then (after a NUL) the text every include named `base.txt` or
//! `constraints.txt` reads. No panic; spans and positions in range in the
//! file each dependency names.
#![no_main]

use lex_align_fuzz::{check_manifest, split2, text};
use lex_align_manifest::parse_requirements;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    lex_align_fuzz::fuzz(|| {
        let (top, inc) = split2(data);
        let (Some(top), Some(inc)) = (text(top), text(inc)) else {
            return;
        };
        let read =
            |path: &str| matches!(path, "base.txt" | "constraints.txt").then(|| inc.to_string());
        let m = parse_requirements("requirements.txt", top, &read);
        check_manifest("requirements.txt", top, &m);
        check_manifest("base.txt", inc, &m);
        check_manifest("constraints.txt", inc, &m);
    })
});
