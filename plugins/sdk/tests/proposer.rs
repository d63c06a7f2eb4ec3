//! The proposer export macro through the real `extern "C"` call.
#![forbid(unsafe_code)]

use lex_align_plugin_sdk::{
    json, normalize_name, PluginError, ProposalResult, ProposeRequest, ProposerPlugin, Value,
};

struct Recorder;

impl ProposerPlugin for Recorder {
    fn configure(_config: &Value) -> Result<Self, PluginError> {
        Ok(Recorder)
    }
    fn propose(&self, req: &ProposeRequest) -> Result<ProposalResult, PluginError> {
        if req.rule.name == "down" {
            return Err(PluginError::upstream("review system is down"));
        }
        Ok(ProposalResult {
            status: "opened".into(),
            url: Some(format!(
                "https://review.example.test/{}",
                normalize_name(&req.rule.name)
            )),
            branch: Some(format!(
                "lex-align/approval/{}",
                normalize_name(&req.rule.name)
            )),
            commit_sha: None,
            detail: format!("for {}", req.context.requester),
        })
    }
}

lex_align_plugin_sdk::export_proposer!("recorder", Recorder);

fn call(v: Value) -> Value {
    serde_json::from_str(&__lex_align_call(&v.to_string())).unwrap()
}

fn propose(name: &str) -> Value {
    call(json!({"op": "propose",
        "rule": {"name": name, "status": "approved", "reason": null, "replacement": null,
                 "min_version": null, "max_version": null, "expires": null, "owner": null},
        "context": {"source": "operator", "project": "p", "requester": "ann",
                    "rationale": "needed", "agent_model": null, "agent_version": null}}))
}

#[test]
fn proposes_after_configure() {
    assert_eq!(call(json!({"op": "configure"})), json!({"ok": true}));
    assert_eq!(
        propose("Foo.Bar"),
        json!({"result": {"status": "opened", "url": "https://review.example.test/foo-bar",
            "branch": "lex-align/approval/foo-bar", "commit_sha": null, "detail": "for ann"}})
    );
    assert_eq!(
        propose("down"),
        json!({"error": {"status": 502, "detail": "review system is down"}})
    );
    // An authenticator op is not a proposer's.
    assert_eq!(
        call(json!({"op": "authenticate", "method": "GET", "path": "/", "headers": {}}))["error"]
            ["status"],
        400
    );
    // Configured once: a second configure is refused.
    assert_eq!(
        call(json!({"op": "configure", "config": {}}))["error"]["status"],
        409
    );
}
