//! The Claude Code hook entry: the event JSON a hook reads on stdin
//! (`PreToolUse` with Bash / Edit / Write / MultiEdit tool input,
//! `SessionStart`). The event runs in a sandbox project (pyproject.toml,
//! requirements files; no `.lexalign.toml`, so no server is asked):
//! `${PROJECT}` in the input stands for it and the event's `cwd` is set to
//! it. No panic; without a configuration the hooks give no opinion.
#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;

use lex_align_client::hook::{parse_model_id, pre_tool_use, requested_dependencies, session_start};
use libfuzzer_sys::fuzz_target;
use serde_json::{json, Value};

const PYPROJECT: &str = "[project]\nname = \"svc\"\nversion = \"0.1.0\"\ndependencies = [\n    \"httpx>=0.27\",\n    \"cryptography>=42\",\n]\n\n[dependency-groups]\ndev = [\"pytest>=8\", {include-group = \"lint\"}]\nlint = [\"ruff\"]\n";

fn sandbox() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        // Nothing must reach a server or start a daemon.
        std::env::set_var("LEXALIGN_NO_AUTOSTART", "1");
        std::env::remove_var("CLAUDE_ENV_FILE");
        let dir = tempfile::Builder::new()
            .prefix("lex-align-fuzz-hook")
            .tempdir()
            .expect("temp dir")
            .keep();
        let write = |name: &str, text: &str| std::fs::write(dir.join(name), text).unwrap();
        write("pyproject.toml", PYPROJECT);
        write("pyproject.toml.bak", PYPROJECT);
        write(
            "extra-requirements.txt",
            "click\npyqt5==5.15.10\n-r base.txt\n",
        );
        write(
            "requirements.txt",
            "-r base.txt\nrequests>=2.31 ; python_version >= '3.8'\n",
        );
        write("base.txt", "-c requirements.txt\nurllib3<3\n");
        assert!(
            lex_align_client::config::find_project_root(&dir).is_none(),
            "a .lexalign.toml above {} would send hook calls to a server",
            dir.display()
        );
        std::env::set_current_dir(&dir).unwrap();
        dir
    })
}

fuzz_target!(|data: &[u8]| {
    lex_align_fuzz::fuzz(|| {
        let dir = sandbox();
        let Ok(stdin) = std::str::from_utf8(data) else {
            return;
        };
        let stdin = stdin.replace("${PROJECT}", &dir.to_string_lossy());
        // As hook::run reads it.
        let mut event: Value = serde_json::from_str(&stdin).unwrap_or_else(|_| json!({}));
        if let Some(obj) = event.as_object_mut() {
            obj.insert("cwd".into(), json!(dir));
        }
        for p in ["/model", "/agent_model", "/session/model"] {
            if let Some(raw) = event.pointer(p).and_then(Value::as_str) {
                let (family, _) = parse_model_id(raw);
                assert!(!family.is_empty() || raw.trim().is_empty());
            }
        }
        let _ = requested_dependencies(&event);
        assert_eq!(
            pre_tool_use(&event).0,
            None,
            "an opinion without a configuration"
        );
        assert_eq!(
            session_start(&event).0,
            None,
            "a brief without a configuration"
        );
    })
});
