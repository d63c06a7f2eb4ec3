//! A policy backend over the real engine: a registry parsed from YAML,
//! canned index facts, and advisories read from the PyPA advisory database
//! snapshot. Only the network is replaced.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use lex_align_engine::advisory::{parse_osv_yaml, OsvRecord};
use lex_align_engine::evaluate::{
    decide, plan, AdvisoryFacts, Facts, FailPolicy, IndexFacts, LicenseMetadata, Plan, Release,
};
use lex_align_engine::registry::{validate_rule, Registry};
use lex_align_engine::request::EvalRequest;
use lex_align_engine::verdict::Verdict;
use lex_align_lsp::{EvalItem, PolicyBackend, PolicyEvent, RuleInfo, RuleProposal};
use tokio::sync::{broadcast, Semaphore};

/// The shared registry with a stricter CVE threshold, no review list and
/// an approved `rich`.
pub static REGISTRY: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    lex_align_fakes::fixtures::registry()
        .version("1")
        .policy("auto_approve_licenses", "[MIT, Apache-2.0, BSD-3-Clause]")
        .policy("hard_ban_licenses", "[GPL-3.0, AGPL-3.0]")
        .policy("cve_threshold", "0.7")
        .policy("require_human_review_licenses", "[]")
        .package("rich", "status: approved\nreason: Terminal output.")
        .yaml()
});

/// (canonical name, releases, license expression) as a package index would list them.
const INDEX: &[(&str, &[&str], &str)] = &[
    ("httpx", &["0.27.0", "0.27.2", "0.28.1"], "BSD-3-Clause"),
    ("requests", &["2.31.0", "2.32.3"], "Apache-2.0"),
    ("pyqt5", &["5.15.10", "5.15.11"], "GPL-3.0-only"),
    (
        "gitpython",
        &["3.1.29", "3.1.30", "3.1.41", "3.1.43"],
        "BSD-3-Clause",
    ),
    (
        "cryptography",
        &["41.0.7", "42.0.8", "43.0.3"],
        "Apache-2.0 OR BSD-3-Clause",
    ),
    ("idna", &["3.6", "3.7", "3.10"], "BSD-3-Clause"),
    ("certifi", &["2024.7.4", "2024.8.30"], "MPL-2.0"),
    ("rich", &["13.7.1", "13.9.4"], "MIT"),
    ("slowpkg", &["1.0.0"], "MIT"),
    ("leftpad", &["0.1.0"], "MIT"),
];

pub struct EngineBackend {
    pub registry: Mutex<Registry>,
    events: broadcast::Sender<PolicyEvent>,
    pub approvals: Mutex<Vec<(String, String, String)>>,
    /// Operator proposals (with their project), applied to the registry
    /// as the daemon's `local_file` proposer does.
    pub proposals: Mutex<Vec<(RuleProposal, String)>>,
    /// Evaluations of these packages wait for a permit (stale-result tests).
    pub slow: Mutex<HashSet<String>>,
    pub gate: Arc<Semaphore>,
    /// Every batch the server asked for, in order.
    pub calls: Mutex<Vec<Vec<EvalItem>>>,
    advisories: Mutex<HashMap<String, Vec<OsvRecord>>>,
}

impl EngineBackend {
    pub fn new() -> Arc<Self> {
        let (events, _) = broadcast::channel(16);
        Arc::new(EngineBackend {
            registry: Mutex::new(Registry::from_yaml(&REGISTRY).expect("test registry parses")),
            events,
            approvals: Mutex::new(Vec::new()),
            proposals: Mutex::new(Vec::new()),
            slow: Mutex::new(HashSet::new()),
            gate: Arc::new(Semaphore::new(0)),
            calls: Mutex::new(Vec::new()),
            advisories: Mutex::new(HashMap::new()),
        })
    }

    /// Replaces the registry and tells the server, as a daemon reload does.
    pub fn reload(&self, yaml: &str) {
        *self.registry.lock().unwrap() =
            Registry::from_yaml(yaml).expect("reloaded registry parses");
        self.events
            .send(PolicyEvent::RegistryReloaded)
            .expect("the server subscribed");
    }

    fn advisories_of(&self, canonical: &str) -> Vec<OsvRecord> {
        let mut cache = self.advisories.lock().unwrap();
        cache
            .entry(canonical.to_string())
            .or_insert_with(|| {
                let dir = PathBuf::from("/work/shared/data/pypa-advisory-db/vulns").join(canonical);
                let Ok(entries) = std::fs::read_dir(&dir) else {
                    return Vec::new();
                };
                let mut records: Vec<OsvRecord> = entries
                    .filter_map(Result::ok)
                    .filter_map(|e| std::fs::read_to_string(e.path()).ok())
                    .map(|t| parse_osv_yaml(&t).expect("PyPA record parses"))
                    .collect();
                records.sort_by(|a, b| a.id.cmp(&b.id));
                records
            })
            .clone()
    }

    fn index_facts(&self, req: &EvalRequest, registry: &Registry) -> IndexFacts {
        let Some((name, releases, license)) = INDEX.iter().find(|(n, _, _)| *n == req.canonical)
        else {
            return IndexFacts::NotFound {
                known_names: INDEX.iter().map(|(n, _, _)| (*n).to_string()).collect(),
            };
        };
        let releases: Vec<Release> = releases
            .iter()
            .map(|v| Release {
                version: (*v).to_string(),
                yanked: false,
            })
            .collect();
        let chosen = lex_align_engine::evaluate::select_version(req, registry, &releases);
        IndexFacts::Found {
            name: (*name).to_string(),
            metadata: chosen.map(|v| {
                (
                    v,
                    LicenseMetadata {
                        license_expression: Some((*license).to_string()),
                        ..LicenseMetadata::default()
                    },
                )
            }),
            releases,
        }
    }

    fn judge(&self, item: &EvalItem) -> Result<Verdict, String> {
        let req = EvalRequest::parse("", item.version.as_deref(), Some(&item.requirement))
            .map_err(|e| e.to_string())?;
        let registry = self.registry.lock().unwrap().clone();
        match plan(&req, &registry) {
            Plan::Decided(v) => Ok(v),
            Plan::Fetch(needs) => {
                let facts = Facts {
                    index: needs.index.then(|| self.index_facts(&req, &registry)),
                    advisories: needs
                        .advisories
                        .then(|| AdvisoryFacts::Found(self.advisories_of(&req.canonical))),
                };
                Ok(decide(&req, &registry, &facts, FailPolicy::Open))
            }
        }
    }
}

#[async_trait]
impl PolicyBackend for EngineBackend {
    async fn evaluate(&self, items: Vec<EvalItem>, _project: &str) -> Result<Vec<Verdict>, String> {
        self.calls.lock().unwrap().push(items.clone());
        let slow = {
            let slow = self.slow.lock().unwrap();
            items
                .iter()
                .any(|i| slow.iter().any(|s| i.requirement.starts_with(s.as_str())))
        };
        if slow {
            self.gate
                .acquire()
                .await
                .map_err(|e| e.to_string())?
                .forget();
        }
        items.iter().map(|i| self.judge(i)).collect()
    }

    fn registry_rule(&self, canonical: &str) -> Option<RuleInfo> {
        let registry = self.registry.lock().unwrap();
        registry.rule(canonical).map(|r| RuleInfo {
            status: r.status,
            reason: r.reason.clone(),
            replacement: r.replacement.clone(),
            min_version: r.min_version.clone(),
            max_version: r.max_version.clone(),
        })
    }

    async fn request_approval(
        &self,
        package: &str,
        rationale: &str,
        project: &str,
    ) -> Result<String, String> {
        self.approvals.lock().unwrap().push((
            package.to_string(),
            rationale.to_string(),
            project.to_string(),
        ));
        Ok(format!(
            "Approval request for {package} recorded (pending review)."
        ))
    }

    async fn propose_rule(&self, proposal: &RuleProposal, project: &str) -> Result<String, String> {
        let mut fields = serde_json::json!({ "status": proposal.status.as_str() });
        if let Some(r) = &proposal.reason {
            fields["reason"] = r.clone().into();
        }
        if let Some(r) = &proposal.replacement {
            fields["replacement"] = r.clone().into();
        }
        let rule = validate_rule(&proposal.name, &fields).map_err(|e| e.message)?;
        self.proposals
            .lock()
            .unwrap()
            .push((proposal.clone(), project.to_string()));
        let canonical = rule.name.clone();
        self.registry
            .lock()
            .unwrap()
            .packages
            .insert(canonical.clone(), rule);
        let _ = self.events.send(PolicyEvent::RegistryReloaded);
        Ok(format!(
            "Proposal applied: {canonical} is now {}.",
            proposal.status.as_str()
        ))
    }

    fn subscribe(&self) -> broadcast::Receiver<PolicyEvent> {
        self.events.subscribe()
    }
}
