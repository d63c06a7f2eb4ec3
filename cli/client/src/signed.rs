//! `check --signed [-o FILE]`: a verdict the daemon signed (a DSSE
//! envelope), saved for `lex-align verify` to check offline, e.g. in CI.

use std::path::Path;

use base64::Engine;

use crate::api::{AgentId, Api, ApiError, EvalItem};
use crate::commands::{error, load_config, split_package_arg, HTTP_TIMEOUT};
use crate::verdict::{to_python_json, Verdict};

/// The verdict inside an envelope (not checked here: `lex-align verify` does).
fn payload_verdict(envelope: &str) -> Result<Verdict, String> {
    let env: serde_json::Value =
        serde_json::from_str(envelope).map_err(|e| format!("not a DSSE envelope: {e}"))?;
    let payload = env["payload"]
        .as_str()
        .ok_or("the envelope has no payload")?;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(payload)
        .map_err(|e| format!("the envelope's payload is not base64: {e}"))?;
    serde_json::from_slice(&bytes).map_err(|e| format!("the signed payload is not a verdict: {e}"))
}

pub fn check_signed(
    package: &str,
    version: Option<String>,
    agent: AgentId,
    output: Option<&Path>,
) -> i32 {
    let config = match load_config() {
        Ok(c) => c,
        Err(code) => return code,
    };
    let api = Api::new(&config, agent, HTTP_TIMEOUT);
    let (name, requirement) = split_package_arg(package);
    let item = EvalItem {
        package: name,
        version: version.filter(|v| !v.is_empty()),
        requirement,
    };
    // No fail-open here: a verdict nobody signed cannot be saved as one.
    let envelope = match api.evaluate_envelope(&item) {
        Ok(e) => e,
        Err(e @ ApiError::Unreachable { .. }) => {
            return error(format!(
                "Server unreachable: {e} (a signed verdict needs the daemon)"
            ))
        }
        Err(e) => return error(format!("Server error: {e}")),
    };
    let verdict = match payload_verdict(&envelope) {
        Ok(v) => v,
        Err(e) => return error(e),
    };
    match output {
        Some(path) => {
            let mut text = envelope;
            if !text.ends_with('\n') {
                text.push('\n');
            }
            if let Err(e) = std::fs::write(path, text) {
                return error(format!("cannot write {}: {e}", path.display()));
            }
            println!("{}", to_python_json(&verdict.client_view()));
            eprintln!("[lex-align] signed verdict saved to {}", path.display());
        }
        None => println!("{}", envelope.trim_end()),
    }
    if verdict.is_denied() {
        2
    } else {
        0
    }
}
