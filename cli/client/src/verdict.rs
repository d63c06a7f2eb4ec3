//! The verdict as the client sees it: every key the daemon sends, with the
//! original client's defaults for missing ones (so an original Python server
//! works too), plus `transport_error` for synthetic fail-open verdicts.

use serde::{Deserialize, Serialize};
use serde_json::Value;

pub const ALLOWED: &str = "ALLOWED";
pub const PROVISIONAL: &str = "PROVISIONALLY_ALLOWED";
pub const DENIED: &str = "DENIED";

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FixedVersion {
    pub id: String,
    pub fixed: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Verdict {
    pub verdict: String,
    pub reason: String,
    pub package: String,
    pub version: Option<String>,
    pub resolved_version: Option<String>,
    pub registry_status: Option<String>,
    pub replacement: Option<String>,
    pub version_constraint: Option<String>,
    pub license: Option<String>,
    pub cve_ids: Vec<String>,
    pub max_cvss: Option<f64>,
    pub is_requestable: bool,
    pub needs_rationale: bool,
    pub auto_request_approval: bool,
    pub denial_category: Option<String>,
    pub requirement: Option<String>,
    pub suggested_requirement: Option<String>,
    pub fixed_versions: Vec<FixedVersion>,
    pub advisories: Vec<Value>,
    pub upstream_error: Option<String>,
    /// Real names close to a package the index does not have.
    pub suggestions: Vec<String>,
    /// Set by the client when the verdict is synthetic (server unreachable).
    #[serde(skip)]
    pub transport_error: bool,
}

impl Default for Verdict {
    fn default() -> Self {
        Verdict {
            verdict: ALLOWED.into(),
            reason: String::new(),
            package: String::new(),
            version: None,
            resolved_version: None,
            registry_status: None,
            replacement: None,
            version_constraint: None,
            license: None,
            cve_ids: Vec::new(),
            max_cvss: None,
            is_requestable: false,
            needs_rationale: false,
            auto_request_approval: false,
            denial_category: None,
            requirement: None,
            suggested_requirement: None,
            fixed_versions: Vec::new(),
            advisories: Vec::new(),
            upstream_error: None,
            suggestions: Vec::new(),
            transport_error: false,
        }
    }
}

impl Verdict {
    pub fn is_denied(&self) -> bool {
        self.verdict == DENIED
    }

    pub fn is_provisional(&self) -> bool {
        self.verdict == PROVISIONAL
    }

    /// The synthetic verdict of a fail-open client when the server is unreachable.
    pub fn fail_open(package: &str, version: Option<&str>, error_class: &str) -> Verdict {
        Verdict {
            reason: format!(
                "lex-align server unreachable ({error_class}); fail_open=true — allowing without enforcement."
            ),
            package: package.to_string(),
            version: version.map(str::to_string),
            transport_error: true,
            ..Verdict::default()
        }
    }

    /// The client's JSON: the original 14 keys in their order (the server's
    /// minus `auto_request_approval`, plus `transport_error`), then the
    /// additive keys that carry the fix. Serialise it directly (a `Value`
    /// would sort the keys).
    pub fn client_view(&self) -> ClientVerdict<'_> {
        ClientVerdict {
            verdict: &self.verdict,
            reason: &self.reason,
            package: &self.package,
            version: self.version.as_deref(),
            resolved_version: self.resolved_version.as_deref(),
            registry_status: self.registry_status.as_deref(),
            replacement: self.replacement.as_deref(),
            version_constraint: self.version_constraint.as_deref(),
            license: self.license.as_deref(),
            cve_ids: &self.cve_ids,
            max_cvss: self.max_cvss,
            is_requestable: self.is_requestable,
            needs_rationale: self.needs_rationale,
            transport_error: self.transport_error,
            denial_category: self.denial_category.as_deref(),
            requirement: self.requirement.as_deref(),
            suggested_requirement: self.suggested_requirement.as_deref(),
            fixed_versions: &self.fixed_versions,
            advisories: &self.advisories,
            upstream_error: self.upstream_error.as_deref(),
            suggestions: &self.suggestions,
        }
    }

    pub fn client_json(&self) -> Value {
        serde_json::to_value(self.client_view()).expect("JSON")
    }

    /// The smallest version that clears every advisory, when the daemon named fixes.
    pub fn first_safe_version(&self) -> Option<String> {
        let mut best: Option<&str> = None;
        for f in &self.fixed_versions {
            // Every advisory must be cleared, so the highest of the fixes wins.
            if best.is_none_or(|b| version_lt(b, &f.fixed)) {
                best = Some(&f.fixed);
            }
        }
        best.map(str::to_string)
    }

    /// One-line fix for a DENIED verdict, for people and agents.
    pub fn fix(&self) -> Option<String> {
        if let Some(r) = &self.replacement {
            return Some(format!("replace with `{r}`"));
        }
        if let Some(s) = &self.suggested_requirement {
            return Some(format!("use `{s}`"));
        }
        if let Some(v) = self.first_safe_version() {
            return Some(format!("upgrade to `{}>={v}`", self.package));
        }
        match self.denial_category.as_deref() {
            Some("not-found") if !self.suggestions.is_empty() => {
                let names: Vec<String> =
                    self.suggestions.iter().map(|s| format!("`{s}`")).collect();
                Some(format!("did you mean {}?", names.join(" or ")))
            }
            Some("not-found") => {
                Some("check the spelling: the package index has no such package".into())
            }
            Some("license") | Some("malicious") | Some("cve") => {
                Some("remove it or pick another package".into())
            }
            Some("upstream") => Some("retry when the package index is reachable".into()),
            _ => None,
        }
    }
}

/// The verdict keys the client prints, in the original's order.
#[derive(Debug, Serialize)]
pub struct ClientVerdict<'a> {
    pub verdict: &'a str,
    pub reason: &'a str,
    pub package: &'a str,
    pub version: Option<&'a str>,
    pub resolved_version: Option<&'a str>,
    pub registry_status: Option<&'a str>,
    pub replacement: Option<&'a str>,
    pub version_constraint: Option<&'a str>,
    pub license: Option<&'a str>,
    pub cve_ids: &'a [String],
    pub max_cvss: Option<f64>,
    pub is_requestable: bool,
    pub needs_rationale: bool,
    pub transport_error: bool,
    pub denial_category: Option<&'a str>,
    pub requirement: Option<&'a str>,
    pub suggested_requirement: Option<&'a str>,
    pub fixed_versions: &'a [FixedVersion],
    pub advisories: &'a [Value],
    pub upstream_error: Option<&'a str>,
    pub suggestions: &'a [String],
}

/// Release-number comparison good enough to pick the highest of a few
/// fixed versions (numeric parts compared as numbers, then text).
fn version_lt(a: &str, b: &str) -> bool {
    let key = |s: &str| -> Vec<(u64, String)> {
        s.split(['.', '-', '+'])
            .map(|p| {
                let digits: String = p.chars().take_while(char::is_ascii_digit).collect();
                (digits.parse().unwrap_or(0), p[digits.len()..].to_string())
            })
            .collect()
    };
    key(a) < key(b)
}

/// `json.dumps(…, indent=2)` as Python writes it: non-ASCII escaped.
pub fn to_python_json<T: Serialize + ?Sized>(v: &T) -> String {
    let pretty = serde_json::to_string_pretty(v).expect("JSON values serialise");
    ascii_escape(&pretty)
}

fn ascii_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if c.is_ascii() {
            out.push(c);
        } else {
            let mut buf = [0u16; 2];
            for unit in c.encode_utf16(&mut buf) {
                out.push_str(&format!("\\u{unit:04x}"));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_keys_take_the_original_defaults() {
        let v: Verdict = serde_json::from_str(r#"{"package":"x"}"#).unwrap();
        assert_eq!(v.verdict, ALLOWED);
        assert!(v.cve_ids.is_empty() && !v.is_requestable);
    }

    #[test]
    fn client_json_keeps_the_original_key_order() {
        let v = Verdict::fail_open("httpx", Some("1.0"), "ConnectError");
        let text = to_python_json(&v.client_view());
        let keys: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with("  \""))
            .map(|l| l.trim().split('"').nth(1).unwrap())
            .collect();
        assert_eq!(keys[0], "verdict");
        assert_eq!(keys[12], "needs_rationale");
        assert_eq!(keys[13], "transport_error");
        assert_eq!(v.client_json()["transport_error"], true);
        assert!(text.contains("\\u2014"), "em dash escaped: {text}");
        assert!(text.is_ascii());
    }

    #[test]
    fn first_safe_version_clears_every_advisory() {
        let v = Verdict {
            package: "jinja2".into(),
            fixed_versions: vec![
                FixedVersion {
                    id: "A".into(),
                    fixed: "3.1.10".into(),
                },
                FixedVersion {
                    id: "B".into(),
                    fixed: "3.1.4".into(),
                },
            ],
            ..Verdict::default()
        };
        assert_eq!(v.first_safe_version().as_deref(), Some("3.1.10"));
        assert_eq!(v.fix().as_deref(), Some("upgrade to `jinja2>=3.1.10`"));
    }

    #[test]
    fn an_unknown_name_is_fixed_by_its_suggestions() {
        let mut v = Verdict {
            verdict: DENIED.into(),
            package: "reqeusts".into(),
            denial_category: Some("not-found".into()),
            ..Verdict::default()
        };
        assert_eq!(
            v.fix().as_deref(),
            Some("check the spelling: the package index has no such package")
        );
        v.suggestions = vec!["requests".into(), "requests-oauthlib".into()];
        assert_eq!(
            v.fix().as_deref(),
            Some("did you mean `requests` or `requests-oauthlib`?")
        );
        assert_eq!(v.client_json()["suggestions"][0], "requests");
    }
}
