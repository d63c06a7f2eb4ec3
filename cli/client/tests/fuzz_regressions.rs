//! Inputs the fuzz targets (tests/fuzz) found in the hook path; a hook must
//! answer (or stay silent), never panic: a panicking PreToolUse hook exits
//! 101 and Claude Code runs the command unchecked.

use lex_align_client::hook::{bash_dependencies, requested_dependencies};
use serde_json::json;

#[test]
fn fuzz_pep508_name_bash_install() {
    let dir = tempfile::tempdir().unwrap();
    let deps = bash_dependencies("pip install .r extra-+equirements.txt", dir.path());
    assert!(deps.is_empty(), "{deps:?}");
    let event = json!({
        "hook_event_name": "PreToolUse",
        "cwd": dir.path(),
        "tool_name": "Bash",
        "tool_input": {"command": "uv add 'requests- >=2' httpx"},
    });
    let deps = requested_dependencies(&event);
    assert_eq!(deps.len(), 1, "{deps:?}");
}
