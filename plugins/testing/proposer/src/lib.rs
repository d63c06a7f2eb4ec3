//! Proposer `test-proposer`, for the plugin tests only.
//!
//! Config (`test-proposer.json`): `{"fail": "why"}` makes configure fail;
//! `{"release_file": path}` ends a hanging call's wait when it appears.
//!
//! By the proposed package's name: `hang-*` blocks until the release file
//! appears (at most 60 s); `panic-*` panics; `down-*` answers a 502 error;
//! anything else is "opened" with a URL naming package and requester.
#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use lex_align_plugin_sdk::{
    normalize_name, PluginError, ProposalResult, ProposeRequest, ProposerPlugin, Value,
};

pub struct TestProposer {
    release_file: Option<PathBuf>,
    count: AtomicUsize,
}

impl ProposerPlugin for TestProposer {
    fn configure(config: &Value) -> Result<Self, PluginError> {
        if let Some(why) = config.get("fail").and_then(Value::as_str) {
            return Err(PluginError::bad_config(why));
        }
        Ok(TestProposer {
            release_file: config
                .get("release_file")
                .and_then(Value::as_str)
                .map(PathBuf::from),
            count: AtomicUsize::new(0),
        })
    }

    fn propose(&self, req: &ProposeRequest) -> Result<ProposalResult, PluginError> {
        let name = normalize_name(&req.rule.name);
        if name.starts_with("hang-") {
            let start = Instant::now();
            while start.elapsed() < Duration::from_secs(60)
                && !self.release_file.as_ref().is_some_and(|f| f.exists())
            {
                std::thread::sleep(Duration::from_millis(10));
            }
            return Err(PluginError::upstream("released"));
        }
        if name.starts_with("panic-") {
            panic!("test-proposer was told to panic");
        }
        if name.starts_with("down-") {
            return Err(PluginError::upstream("the review system is down"));
        }
        let n = self.count.fetch_add(1, Ordering::SeqCst) + 1;
        Ok(ProposalResult {
            status: "opened".into(),
            url: Some(format!("https://review.example.test/{name}/{n}")),
            branch: Some(format!("lex-align/approval/{name}")),
            commit_sha: None,
            detail: format!(
                "Opened review {n} for {name} → {} requested by {}.",
                req.rule.status, req.context.requester
            ),
        })
    }
}

lex_align_plugin_sdk::export_proposer!("test-proposer", TestProposer);
