//! The server's settings: defaults from the embedder ([`crate::serve_lsp_with`]),
//! then the client's `initializationOptions`, then `workspace/configuration`
//! section `lexAlign` (camelCase keys), merged key by key so one bad value
//! does not discard the others.

use lex_align_manifest::Scope;
use serde_json::Value;

/// Every scope name the `scopes` setting accepts (kebab-case, as the
/// editors' settings list them). `lock` is the transitive packages a lock
/// file adds.
pub const SCOPE_NAMES: [&str; 12] = [
    "runtime",
    "optional",
    "group",
    "build",
    "uv-dev",
    "uv-constraint",
    "uv-override",
    "poetry-main",
    "poetry-group",
    "requirements",
    "constraint",
    "lock",
];

/// The `scopes` name of a manifest scope.
pub fn scope_name(scope: &Scope) -> &'static str {
    match scope {
        Scope::Runtime => "runtime",
        Scope::Optional(_) => "optional",
        Scope::Group(_) => "group",
        Scope::Build => "build",
        Scope::UvDev => "uv-dev",
        Scope::UvConstraint => "uv-constraint",
        Scope::UvOverride => "uv-override",
        Scope::PoetryMain => "poetry-main",
        Scope::PoetryGroup(_) => "poetry-group",
        Scope::Requirements => "requirements",
        Scope::Constraint => "constraint",
        Scope::Lock => "lock",
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct LspOptions {
    /// Base of the diagnostic code links; `#<code>` is appended. The daemon
    /// sets it to its own `/docs/diagnostics` page.
    pub docs_base_url: String,
    /// Quiet period before a document is sent for full evaluation.
    pub debounce_ms: u64,
    /// Project name sent with evaluations; default: the document's folder name.
    pub project: Option<String>,
    /// From this many evaluation items on, the first full evaluation of a
    /// document reports `$/progress`.
    pub progress_threshold: usize,
    /// Which dependency scopes get diagnostics ([`SCOPE_NAMES`]); empty: all.
    pub scopes: Vec<String>,
    /// Operator mode: offer "propose registry rule" code actions.
    pub operator: bool,
}

/// The daemon's default address (`lex-align quickstart`): the embedder
/// normally replaces it with the address the editor actually reached.
pub const DEFAULT_DOCS_BASE_URL: &str = "http://127.0.0.1:8765/docs/diagnostics";

impl Default for LspOptions {
    fn default() -> Self {
        LspOptions {
            docs_base_url: DEFAULT_DOCS_BASE_URL.to_string(),
            debounce_ms: 150,
            project: None,
            progress_threshold: 20,
            scopes: Vec::new(),
            operator: false,
        }
    }
}

impl LspOptions {
    /// Overlays the keys present in `value` onto `self`; returns one message
    /// per value that was ignored (wrong type, unknown key or scope).
    pub fn merge(&mut self, value: &Value) -> Vec<String> {
        let mut problems = Vec::new();
        let Value::Object(map) = value else {
            if !value.is_null() {
                problems.push(format!("lexAlign settings must be an object, not {value}"));
            }
            return problems;
        };
        for (key, v) in map {
            // `null` means "not set": keep what is there.
            if v.is_null() && key != "project" {
                continue;
            }
            let ok = match key.as_str() {
                "docsBaseUrl" => set(v.as_str(), |s| self.docs_base_url = s.to_string()),
                "debounceMs" => set(v.as_u64(), |n| self.debounce_ms = n.min(10_000)),
                "progressThreshold" => set(v.as_u64(), |n| self.progress_threshold = n as usize),
                "operator" => set(v.as_bool(), |b| self.operator = b),
                "project" => match v {
                    Value::Null => set(Some(()), |()| self.project = None),
                    Value::String(s) => set(Some(s.trim()), |s| {
                        self.project = (!s.is_empty()).then(|| s.to_string());
                    }),
                    _ => false,
                },
                "scopes" => set(v.as_array(), |items| {
                    let mut scopes: Vec<String> = Vec::new();
                    for item in items {
                        match item.as_str().filter(|s| SCOPE_NAMES.contains(s)) {
                            Some(s) if !scopes.iter().any(|x| x == s) => scopes.push(s.to_string()),
                            Some(_) => {}
                            None => problems.push(format!(
                                "lexAlign.scopes: {item} is not a scope; known scopes: {}",
                                SCOPE_NAMES.join(", ")
                            )),
                        }
                    }
                    self.scopes = scopes;
                }),
                // Read by the `lex-align lsp` bridge to find the daemon; the
                // server is already reached when it sees it.
                "serverUrl" => true,
                _ => {
                    problems.push(format!(
                        "lexAlign.{key} is not a lex-align setting; ignored"
                    ));
                    true
                }
            };
            if !ok {
                problems.push(format!("lexAlign.{key}: unusable value {v}; ignored"));
            }
        }
        problems
    }

    /// Whether dependencies of `scope` get diagnostics.
    pub fn checks(&self, scope: &Scope) -> bool {
        self.scopes.is_empty() || self.scopes.iter().any(|s| s == scope_name(scope))
    }
}

/// Applies `f` to a value of the right type; `false` when there is none.
fn set<T>(value: Option<T>, f: impl FnOnce(T)) -> bool {
    value.map(f).is_some()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn merges_key_by_key_and_reports_what_it_ignores() {
        let mut o = LspOptions::default();
        let problems = o.merge(&json!({
            "serverUrl": "http://127.0.0.1:9000",
            "debounceMs": 40,
            "operator": true,
            "scopes": ["runtime", "lock", "nonsense", "runtime"],
            "progressThreshold": "many",
            "colour": "blue",
            "project": "  svc  ",
        }));
        assert_eq!(o.debounce_ms, 40);
        assert!(o.operator);
        assert_eq!(o.scopes, vec!["runtime".to_string(), "lock".to_string()]);
        assert_eq!(o.progress_threshold, 20, "a bad value keeps the old one");
        assert_eq!(o.project.as_deref(), Some("svc"));
        assert_eq!(problems.len(), 3, "{problems:?}");
        assert!(problems.iter().any(|p| p.contains("\"nonsense\"")));
        assert!(problems.iter().any(|p| p.contains("progressThreshold")));
        assert!(problems.iter().any(|p| p.contains("colour")));
        assert!(!problems.iter().any(|p| p.contains("serverUrl")));

        assert!(o.checks(&Scope::Runtime));
        assert!(o.checks(&Scope::Lock));
        assert!(!o.checks(&Scope::Group("dev".into())));
        assert!(LspOptions::default().checks(&Scope::Build), "empty = all");

        // null keeps values; an empty project goes back to the folder name.
        assert!(o
            .merge(&json!({"debounceMs": null, "project": ""}))
            .is_empty());
        assert_eq!(o.debounce_ms, 40);
        assert_eq!(o.project, None);
    }

    #[test]
    fn every_scope_has_a_name_the_setting_accepts() {
        for scope in [
            Scope::Runtime,
            Scope::Optional("x".into()),
            Scope::Group("g".into()),
            Scope::Build,
            Scope::UvDev,
            Scope::UvConstraint,
            Scope::UvOverride,
            Scope::PoetryMain,
            Scope::PoetryGroup("g".into()),
            Scope::Requirements,
            Scope::Constraint,
            Scope::Lock,
        ] {
            assert!(SCOPE_NAMES.contains(&scope_name(&scope)), "{scope:?}");
        }
    }
}
