//! `local_file`: writes the rule into the registry file, format-preserving
//! (the engine's in-place YAML edit keeps comments), validated, atomically.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use lex_align_engine::registry::{
    set_policies_in_yaml, upsert_rule_in_yaml, GlobalPolicies, Registry, Rule,
};

use super::{ProposalContext, ProposalResult, Proposer, ProposerError, EMPTY_REGISTRY};

/// Writes the rule into the registry file, format-preserving, atomically.
pub struct LocalFileProposer {
    path: PathBuf,
    /// In-process serialisation of read-modify-write.
    lock: Mutex<()>,
}

impl LocalFileProposer {
    pub fn new(path: PathBuf) -> LocalFileProposer {
        LocalFileProposer {
            path,
            lock: Mutex::new(()),
        }
    }

    /// The registry as it is on disk; a missing file is an empty registry.
    fn current_text(&self) -> Result<String, ProposerError> {
        match std::fs::read_to_string(&self.path) {
            Ok(t) => Ok(t),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(EMPTY_REGISTRY.to_string()),
            Err(e) => Err(ProposerError(format!(
                "Failed reading {}: {e}",
                self.path.display()
            ))),
        }
    }

    fn write_atomically(&self, text: &str) -> std::io::Result<()> {
        let dir = self
            .path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let file_name = self
            .path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "registry.yml".into());
        let tmp = dir.join(format!(
            ".{file_name}.tmp-{}",
            uuid::Uuid::new_v4().simple()
        ));
        let result = (|| {
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(text.as_bytes())?;
            f.sync_all()?;
            // Keep the original file's permissions.
            if let Ok(meta) = std::fs::metadata(&self.path) {
                std::fs::set_permissions(&tmp, meta.permissions())?;
            }
            std::fs::rename(&tmp, &self.path)?;
            // The rename is durable only once the directory entry is.
            std::fs::File::open(dir)?.sync_all()
        })();
        if result.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        result
    }
}

impl Proposer for LocalFileProposer {
    fn name(&self) -> &'static str {
        "local_file"
    }
    fn class_name(&self) -> &'static str {
        "LocalFileProposer"
    }
    fn writes_registry(&self) -> bool {
        true
    }
    fn propose_policies(
        &self,
        policies: &GlobalPolicies,
        ctx: &ProposalContext,
    ) -> Result<ProposalResult, ProposerError> {
        let _guard = self.lock.lock().unwrap_or_else(|p| p.into_inner());
        let current = self.current_text()?;
        let merged = set_policies_in_yaml(&current, policies).map_err(|e| {
            ProposerError(format!(
                "Proposed policies failed validation: {}",
                e.located()
            ))
        })?;
        self.write_atomically(&merged)
            .map_err(|e| ProposerError(format!("Failed writing {}: {e}", self.path.display())))?;
        tracing::info!(source = %ctx.source, requester = %ctx.requester, "global policies written");
        Ok(ProposalResult {
            backend: "local_file".into(),
            status: "applied".into(),
            url: Some(format!("file://{}", self.path.display())),
            branch: None,
            commit_sha: None,
            detail: format!(
                "Wrote the global policies to {}. The registry was reloaded; they are live.",
                self.path.display()
            ),
        })
    }
    fn propose(&self, rule: &Rule, ctx: &ProposalContext) -> Result<ProposalResult, ProposerError> {
        let _guard = self.lock.lock().unwrap_or_else(|p| p.into_inner());
        let current = self.current_text()?;
        let merged = upsert_rule_in_yaml(&current, rule).map_err(|e| {
            ProposerError(format!("Proposed rule failed validation: {}", e.located()))
        })?;
        // Validate the whole merged document before it can reach the disk.
        let registry = Registry::from_yaml(&merged).map_err(|e| {
            ProposerError(format!("Proposed rule failed validation: {}", e.located()))
        })?;
        let key = registry
            .packages
            .iter()
            .find(|(_, r)| r.name == rule.name)
            .map(|(k, _)| k.clone())
            .unwrap_or_else(|| rule.name.clone());
        self.write_atomically(&merged)
            .map_err(|e| ProposerError(format!("Failed writing {}: {e}", self.path.display())))?;
        tracing::info!(package = %key, status = rule.status.as_str(), source = %ctx.source, requester = %ctx.requester, "registry rule written");
        Ok(ProposalResult {
            backend: "local_file".into(),
            status: "applied".into(),
            url: Some(format!("file://{}", self.path.display())),
            branch: None,
            commit_sha: None,
            detail: format!(
                "Wrote {key} to {}. The registry was reloaded; the rule is live.",
                self.path.display()
            ),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proposer::LogOnlyProposer;
    use lex_align_engine::registry::validate_rule;
    use serde_json::json;

    fn ctx() -> ProposalContext {
        ProposalContext {
            source: "operator".into(),
            project: "p".into(),
            requester: "anonymous".into(),
            ..Default::default()
        }
    }

    #[test]
    fn log_only_changes_nothing() {
        let rule = validate_rule("Foo", &json!({"status": "approved"})).unwrap();
        let r = LogOnlyProposer.propose(&rule, &ctx()).unwrap();
        assert_eq!(r.backend, "log_only");
        assert_eq!(r.status, "logged");
        assert!(r.detail.contains("REGISTRY_PATH"));
    }

    #[test]
    fn local_file_creates_then_replaces_rules_atomically() {
        let dir = tempfile::tempdir().unwrap();
        let yml = dir.path().join("registry.yml");
        let p = LocalFileProposer::new(yml.clone());
        let banned =
            validate_rule("Foo.Bar", &json!({"status": "banned", "reason": "no"})).unwrap();
        let r = p.propose(&banned, &ctx()).unwrap();
        assert_eq!(r.status, "applied");
        let reg = Registry::from_yaml(&std::fs::read_to_string(&yml).unwrap()).unwrap();
        assert_eq!(reg.rule("foo-bar").unwrap().status.as_str(), "banned");

        let approved = validate_rule("foo-bar", &json!({"status": "approved"})).unwrap();
        p.propose(&approved, &ctx()).unwrap();
        let reg = Registry::from_yaml(&std::fs::read_to_string(&yml).unwrap()).unwrap();
        assert_eq!(reg.packages.len(), 1);
        assert_eq!(reg.rule("foo_bar").unwrap().status.as_str(), "approved");
        // No temp files left behind.
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("registry.yml")]);
    }

    #[test]
    fn policies_are_written_by_local_file_and_logged_by_log_only() {
        use lex_align_engine::registry::UnknownLicensePolicy;
        let dir = tempfile::tempdir().unwrap();
        let yml = dir.path().join("registry.yml");
        std::fs::write(
            &yml,
            "# ours\nversion: \"3\"\nglobal_policies:\n  cve_threshold: 0.9\npackages:\n  a:\n    status: approved\n",
        )
        .unwrap();
        let policies = GlobalPolicies {
            hard_ban_licenses: vec!["GPL-3.0".into()],
            unknown_license_policy: UnknownLicensePolicy::Warn,
            cve_threshold: 0.5,
            ..GlobalPolicies::default()
        };
        let r = LocalFileProposer::new(yml.clone())
            .propose_policies(&policies, &ctx())
            .unwrap();
        assert_eq!(
            (r.backend.as_str(), r.status.as_str()),
            ("local_file", "applied")
        );
        let text = std::fs::read_to_string(&yml).unwrap();
        assert!(text.starts_with("# ours\n"), "{text}");
        let reg = Registry::from_yaml(&text).unwrap();
        assert_eq!(reg.policies, policies);
        assert_eq!(reg.packages.len(), 1);

        let r = LogOnlyProposer.propose_policies(&policies, &ctx()).unwrap();
        assert_eq!(r.status, "logged");
        assert_eq!(std::fs::read_to_string(&yml).unwrap(), text);
    }

    #[test]
    fn local_file_refuses_to_write_over_a_broken_registry() {
        let dir = tempfile::tempdir().unwrap();
        let yml = dir.path().join("registry.yml");
        std::fs::write(&yml, "version: 1\npackages:\n  x:\n    status: wat\n").unwrap();
        let p = LocalFileProposer::new(yml.clone());
        let rule = validate_rule("y", &json!({"status": "approved"})).unwrap();
        let e = p.propose(&rule, &ctx()).unwrap_err();
        assert!(e.0.starts_with("Proposed rule failed validation: "), "{e}");
        assert!(std::fs::read_to_string(&yml).unwrap().contains("wat"));
    }
}
