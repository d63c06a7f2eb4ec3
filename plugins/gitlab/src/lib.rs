//! `lex-align-plugin-gitlab`: a proposer plugin (name `gitlab`) that turns
//! each approval into a merge request through the GitLab REST API v4 — one
//! branch `lex-align/approval/<package>` and one merge request per package;
//! a later request for the same package adds a commit and a comment to the
//! merge request still open. The GitHub proposer's flow (server-ops.md §3.1)
//! without a clone: files are read and committed through the API.

mod api;
pub mod config;
mod text;

use std::sync::Mutex;

use lex_align_engine::registry::{upsert_rule_in_yaml, validate_rule, Registry, Rule};
use lex_align_plugin_sdk::{
    json, normalize_name, PluginError, ProposalResult, ProposeRequest, ProposedRule,
    ProposerPlugin, Value,
};

use api::Api;
use config::GitLabConfig;

/// Starting document when the repository has no registry file yet.
const EMPTY_REGISTRY: &str = "version: \"1\"\nglobal_policies: {}\npackages: {}\n";

pub struct GitLabProposer {
    cfg: GitLabConfig,
    api: Api,
    /// One proposal at a time: read, edit and commit must not interleave
    /// (two requests for one package would race for its branch).
    lock: Mutex<()>,
}

impl GitLabProposer {
    /// `env` looks up `token_env` (the process environment in production).
    pub fn from_config(
        config: &Value,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<GitLabProposer, String> {
        let cfg = GitLabConfig::from_json(config, env)?;
        let api = Api::new(&cfg);
        Ok(GitLabProposer {
            cfg,
            api,
            lock: Mutex::new(()),
        })
    }

    fn run(&self, req: &ProposeRequest) -> Result<ProposalResult, PluginError> {
        let rule = engine_rule(&req.rule)?;
        let branch = format!("lex-align/approval/{}", normalize_name(&rule.name));
        let _guard = self.lock.lock().unwrap_or_else(|p| p.into_inner());
        let up = |e: String| PluginError::upstream(e);

        let existed = self.api.branch_exists(&branch).map_err(up)?;
        let reference = if existed {
            &branch
        } else {
            &self.cfg.default_branch
        };
        let current = self
            .api
            .read_file(&self.cfg.file_path, reference)
            .map_err(up)?;
        let before = current.as_deref().unwrap_or(EMPTY_REGISTRY);
        let merged = upsert_rule_in_yaml(before, &rule).map_err(|e| {
            PluginError::new(
                422,
                format!("Proposed rule failed validation: {}", e.located()),
            )
        })?;
        Registry::from_yaml(&merged).map_err(|e| {
            PluginError::new(
                422,
                format!("Proposed rule failed validation: {}", e.located()),
            )
        })?;
        let changed = current.as_deref() != Some(merged.as_str());

        if !changed && !existed {
            return Ok(ProposalResult {
                status: "applied".into(),
                url: None,
                branch: None,
                commit_sha: None,
                detail: format!(
                    "{} on {} already has this rule for {}; no branch, commit or merge request was made.",
                    self.cfg.file_path, self.cfg.default_branch, rule.name
                ),
            });
        }

        let commit_sha = if changed {
            let sha = self
                .api
                .commit(
                    &branch,
                    (!existed).then_some(self.cfg.default_branch.as_str()),
                    &self.cfg.file_path,
                    current.is_none(),
                    &merged,
                    &text::commit_message(&req.rule, &req.context),
                    (
                        self.cfg.author_name.as_deref(),
                        self.cfg.author_email.as_deref(),
                    ),
                )
                .map_err(up)?;
            Some(sha)
        } else {
            None
        };

        let open = self.api.open_merge_request(&branch).map_err(up)?;
        let result = match (open, changed) {
            (Some(mr), false) => ProposalResult {
                status: "amended".into(),
                url: Some(mr.web_url),
                branch: Some(branch),
                commit_sha: None,
                detail: format!(
                    "Branch already proposes this rule; no change pushed (merge request !{} is open).",
                    mr.iid
                ),
            },
            (Some(mr), true) => {
                self.api
                    .comment(mr.iid, &text::note(&req.rule, &req.context))
                    .map_err(up)?;
                ProposalResult {
                    status: "amended".into(),
                    url: Some(mr.web_url),
                    branch: Some(branch),
                    commit_sha,
                    detail: format!(
                        "Pushed an additional commit and commented on merge request !{}.",
                        mr.iid
                    ),
                }
            }
            (None, _) => {
                let mr = self
                    .api
                    .create_merge_request(
                        &branch,
                        &self.cfg.default_branch,
                        &text::title(&req.rule),
                        &text::description(&req.rule, &req.context),
                    )
                    .map_err(up)?;
                let detail = if changed {
                    format!("Opened merge request !{}.", mr.iid)
                } else {
                    format!(
                        "Branch already proposes this rule; no change pushed. Opened merge request !{}.",
                        mr.iid
                    )
                };
                ProposalResult {
                    status: "opened".into(),
                    url: Some(mr.web_url),
                    branch: Some(branch),
                    commit_sha,
                    detail,
                }
            }
        };
        Ok(result)
    }
}

/// The SDK's rule as the engine's, through the same check as a rule in
/// `registry.yml` (name, status, bounds, expiry).
fn engine_rule(rule: &ProposedRule) -> Result<Rule, PluginError> {
    let mut fields = json!({ "status": rule.status });
    for (key, value) in [
        ("reason", &rule.reason),
        ("replacement", &rule.replacement),
        ("min_version", &rule.min_version),
        ("max_version", &rule.max_version),
        ("expires", &rule.expires),
        ("owner", &rule.owner),
    ] {
        if let Some(v) = value {
            fields[key] = json!(v);
        }
    }
    validate_rule(&rule.name, &fields).map_err(|e| {
        PluginError::new(
            422,
            format!("Proposed rule failed validation: {}", e.located()),
        )
    })
}

impl ProposerPlugin for GitLabProposer {
    fn configure(config: &Value) -> Result<Self, PluginError> {
        GitLabProposer::from_config(config, |var| std::env::var(var).ok())
            .map_err(PluginError::bad_config)
    }

    fn propose(&self, req: &ProposeRequest) -> Result<ProposalResult, PluginError> {
        // Belt and braces: whatever path produced a text, the token is not in it.
        match self.run(req) {
            Ok(mut r) => {
                r.detail = self.api.scrub(&r.detail);
                Ok(r)
            }
            Err(mut e) => {
                e.detail = self.api.scrub(&e.detail);
                Err(e)
            }
        }
    }
}

lex_align_plugin_sdk::export_proposer!("gitlab", GitLabProposer);
