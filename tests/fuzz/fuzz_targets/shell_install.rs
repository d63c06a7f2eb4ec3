//! The shell-install parser of the Bash hook (`pip install`, `uv add`,
//! `poetry add`, … across `&&` / `;` / `|` chains), then the requirement
//! parse the hook runs on what it found. No panic; an unterminated quote
//! finds nothing; every install names its tool and something to install.
#![no_main]

use lex_align_client::bash::{parse_installs, split_commands};
use lex_align_fuzz::check_manifest;
use lex_align_manifest::parse_requirements;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    lex_align_fuzz::fuzz(|| {
        let Ok(line) = std::str::from_utf8(data) else {
            return;
        };
        let commands = split_commands(line);
        let installs = parse_installs(line);
        if commands.is_none() {
            assert!(installs.is_empty(), "installs found in an unparsable line");
        }
        for install in &installs {
            assert!(!install.tool.is_empty());
            assert!(!install.requirements.is_empty() || !install.requirement_files.is_empty());
            // As hook::bash_dependencies does (without reading `-r` files).
            let label = format!("`{}`", install.tool);
            let text = install.requirements.join("\n");
            let m = parse_requirements(&label, &text, &|_| None);
            check_manifest(&label, &text, &m);
        }
    })
});
