//! The messages of the plugin contract (docs/plugins.md), as the host sends
//! them and as it insists answers look. Every answer is checked here before
//! anything in the daemon sees it.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::{Map, Value};

use crate::CallError;

/// Answers larger than this are refused unread.
pub const MAX_ANSWER_BYTES: usize = 1 << 20;
/// Longest `detail` passed on; the rest is cut.
const MAX_DETAIL_CHARS: usize = 500;

/// op `authenticate`: header names lower-case, repeated headers joined
/// with `", "`.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct AuthCall {
    pub method: String,
    pub path: String,
    pub headers: BTreeMap<String, String>,
    pub peer: Option<String>,
}

/// The rule of op `propose` (registry.md field names).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ProposedRule {
    pub name: String,
    pub status: String,
    pub reason: Option<String>,
    pub replacement: Option<String>,
    pub min_version: Option<String>,
    pub max_version: Option<String>,
    pub expires: Option<String>,
    pub owner: Option<String>,
}

/// Who proposes and why (op `propose`).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ProposalContext {
    pub source: String,
    pub project: String,
    pub requester: String,
    pub rationale: Option<String>,
    pub agent_model: Option<String>,
    pub agent_version: Option<String>,
}

/// op `propose`.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ProposeCall {
    pub rule: ProposedRule,
    pub context: ProposalContext,
}

/// An authenticator's answer, checked.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct PluginIdentity {
    pub id: String,
    pub email: Option<String>,
    pub groups: Vec<String>,
}

/// A proposer's answer, checked (the daemon adds `backend`).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct PluginProposal {
    /// `opened | amended | applied | logged | failed`.
    pub status: String,
    pub url: Option<String>,
    pub branch: Option<String>,
    pub commit_sha: Option<String>,
    pub detail: String,
}

/// One request to a plugin (built once per call and serialised at once, so
/// the size of a variant does not matter).
#[derive(Debug, Clone)]
#[allow(clippy::large_enum_variant)]
pub enum Op {
    Configure(Value),
    Authenticate(AuthCall),
    Propose(ProposeCall),
}

/// A checked answer, one per [`Op`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    Configured,
    Identity(PluginIdentity),
    Proposal(PluginProposal),
}

impl Op {
    pub fn name(&self) -> &'static str {
        match self {
            Op::Configure(_) => "configure",
            Op::Authenticate(_) => "authenticate",
            Op::Propose(_) => "propose",
        }
    }

    /// The request's JSON text (`op` first, for readers of a plugin's logs).
    pub(crate) fn to_json(&self) -> String {
        let body = match self {
            Op::Configure(config) => serde_json::json!({ "config": config }),
            Op::Authenticate(a) => serde_json::to_value(a).unwrap_or_default(),
            Op::Propose(p) => serde_json::to_value(p).unwrap_or_default(),
        }
        .to_string();
        // `op` goes first, for plugins that glance at the text before parsing.
        match body.strip_prefix('{').filter(|rest| *rest != "}") {
            Some(rest) => format!("{{\"op\":\"{}\",{rest}", self.name()),
            None => format!("{{\"op\":\"{}\"}}", self.name()),
        }
    }
}

fn invalid(what: impl Into<String>) -> CallError {
    CallError::Invalid(what.into())
}

/// Printable, bounded text from a plugin (control characters dropped).
pub(crate) fn clean_text(s: &str) -> String {
    let mut out: String = s
        .chars()
        .filter(|c| !c.is_control())
        .take(MAX_DETAIL_CHARS)
        .collect();
    if s.chars()
        .filter(|c| !c.is_control())
        .nth(MAX_DETAIL_CHARS)
        .is_some()
    {
        out.push('…');
    }
    out
}

fn opt_string(obj: &Map<String, Value>, key: &str, ctx: &str) -> Result<Option<String>, CallError> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(invalid(format!("{ctx}.{key} is neither a string nor null"))),
    }
}

/// Control characters have no place in what reaches logs and headers.
fn has_control(s: &str) -> bool {
    s.chars().any(char::is_control)
}

/// Checks one answer to `op` (raw bytes as the plugin returned them).
pub(crate) fn check_answer(op: &'static str, bytes: &[u8]) -> Result<Answer, CallError> {
    if bytes.len() > MAX_ANSWER_BYTES {
        return Err(invalid(format!(
            "answer of {} bytes is over the {MAX_ANSWER_BYTES}-byte limit",
            bytes.len()
        )));
    }
    let text = std::str::from_utf8(bytes).map_err(|_| invalid("answer is not UTF-8"))?;
    // The parser's message names a position, never the text (which may
    // hold a credential).
    let value: Value =
        serde_json::from_str(text).map_err(|e| invalid(format!("answer is not JSON ({e})")))?;
    let Value::Object(obj) = value else {
        return Err(invalid("answer is not a JSON object"));
    };
    if let Some(err) = obj.get("error") {
        let status = err
            .get("status")
            .and_then(Value::as_u64)
            .filter(|s| (100..=599).contains(s));
        let detail = err.get("detail").and_then(Value::as_str);
        return match (status, detail) {
            (Some(status), Some(detail)) => Err(CallError::Refused {
                status: status as u16,
                detail: clean_text(detail),
            }),
            _ => Err(invalid(
                "malformed error object; expected {\"error\":{\"status\":100-599,\"detail\":\"…\"}}",
            )),
        };
    }
    match op {
        "configure" => match obj.get("ok") {
            Some(Value::Bool(true)) => Ok(Answer::Configured),
            _ => Err(invalid(
                "configure answer is neither {\"ok\":true} nor an error",
            )),
        },
        "authenticate" => {
            let Some(Value::Object(id)) = obj.get("identity") else {
                return Err(invalid("authenticate answer has no \"identity\" object"));
            };
            let ident = match id.get("id") {
                Some(Value::String(s)) if !s.trim().is_empty() && s.len() <= 256 && !has_control(s) => {
                    s.clone()
                }
                _ => {
                    return Err(invalid(
                        "identity.id must be a non-empty string of at most 256 bytes without control characters",
                    ))
                }
            };
            let email = opt_string(id, "email", "identity")?;
            if email.as_deref().is_some_and(has_control) {
                return Err(invalid("identity.email has control characters"));
            }
            let groups = match id.get("groups") {
                None | Some(Value::Null) => Vec::new(),
                Some(Value::Array(items)) if items.len() <= 1000 => items
                    .iter()
                    .map(|g| match g {
                        Value::String(s) if !has_control(s) => Ok(s.clone()),
                        _ => Err(invalid("identity.groups must hold strings")),
                    })
                    .collect::<Result<_, _>>()?,
                Some(_) => {
                    return Err(invalid(
                        "identity.groups must be an array of at most 1000 strings",
                    ))
                }
            };
            Ok(Answer::Identity(PluginIdentity {
                id: ident,
                email,
                groups,
            }))
        }
        "propose" => {
            let Some(Value::Object(r)) = obj.get("result") else {
                return Err(invalid("propose answer has no \"result\" object"));
            };
            let status = match r.get("status").and_then(Value::as_str) {
                Some(s @ ("opened" | "amended" | "applied" | "logged" | "failed")) => s.to_string(),
                _ => {
                    return Err(invalid(
                        "result.status must be one of opened, amended, applied, logged, failed",
                    ))
                }
            };
            let detail = opt_string(r, "detail", "result")?.unwrap_or_default();
            Ok(Answer::Proposal(PluginProposal {
                status,
                url: opt_string(r, "url", "result")?,
                branch: opt_string(r, "branch", "result")?,
                commit_sha: opt_string(r, "commit_sha", "result")?,
                detail: clean_text(&detail),
            }))
        }
        other => Err(invalid(format!("no checks for op {other}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(op: &'static str, s: &str) -> Result<Answer, CallError> {
        check_answer(op, s.as_bytes())
    }

    #[test]
    fn good_answers() {
        assert_eq!(check("configure", r#"{"ok":true}"#), Ok(Answer::Configured));
        assert_eq!(
            check(
                "authenticate",
                r#"{"identity":{"id":"ann","email":null,"groups":["a"]}}"#
            ),
            Ok(Answer::Identity(PluginIdentity {
                id: "ann".into(),
                email: None,
                groups: vec!["a".into()]
            }))
        );
        assert_eq!(
            check("authenticate", r#"{"identity":{"id":"ann"}}"#).map(|_| ()),
            Ok(())
        );
        let Ok(Answer::Proposal(p)) = check(
            "propose",
            r#"{"result":{"status":"opened","url":"u","branch":null,"detail":"d"}}"#,
        ) else {
            panic!()
        };
        assert_eq!(
            (p.status.as_str(), p.url.as_deref(), p.commit_sha),
            ("opened", Some("u"), None)
        );
    }

    #[test]
    fn errors_are_passed_on_cleaned() {
        assert_eq!(
            check(
                "authenticate",
                r#"{"error":{"status":401,"detail":"bad\ntoken"}}"#
            ),
            Err(CallError::Refused {
                status: 401,
                detail: "badtoken".into()
            })
        );
        let long = format!(
            r#"{{"error":{{"status":403,"detail":"{}"}}}}"#,
            "x".repeat(900)
        );
        let Err(CallError::Refused { detail, .. }) = check("authenticate", &long) else {
            panic!()
        };
        assert_eq!(detail.chars().count(), 501);
    }

    #[test]
    fn bad_answers_are_invalid_and_never_echoed() {
        for (op, s) in [
            ("configure", "{\"ok\":false}"),
            ("configure", "[1]"),
            ("configure", "secret-token-123"),
            ("authenticate", "{\"identity\":{\"id\":\"\"}}"),
            ("authenticate", "{\"identity\":{\"id\":7}}"),
            ("authenticate", "{\"identity\":{\"id\":\"a\\nb\"}}"),
            (
                "authenticate",
                "{\"identity\":{\"id\":\"a\",\"groups\":\"g\"}}",
            ),
            (
                "authenticate",
                "{\"identity\":{\"id\":\"a\",\"groups\":[1]}}",
            ),
            ("authenticate", "{\"ok\":true}"),
            (
                "authenticate",
                "{\"error\":{\"status\":42,\"detail\":\"x\"}}",
            ),
            ("authenticate", "{\"error\":\"no\"}"),
            ("propose", "{\"result\":{\"status\":\"merged\"}}"),
            ("propose", "{\"result\":{\"status\":\"opened\",\"url\":3}}"),
        ] {
            match check(op, s) {
                Err(CallError::Invalid(why)) => assert!(!why.contains("secret-token"), "{why}"),
                other => panic!("{s}: {other:?}"),
            }
        }
        assert!(matches!(
            check_answer("configure", b"{\"ok\":\xff}"),
            Err(CallError::Invalid(w)) if w.contains("UTF-8")
        ));
        let big = format!(
            "{{\"ok\":true,\"pad\":\"{}\"}}",
            "x".repeat(MAX_ANSWER_BYTES)
        );
        assert!(matches!(
            check("configure", &big),
            Err(CallError::Invalid(_))
        ));
    }

    #[test]
    fn requests_carry_the_op() {
        let r = Op::Configure(serde_json::json!({"a": 1})).to_json();
        assert_eq!(r, r#"{"op":"configure","config":{"a":1}}"#);
        let r: Value = serde_json::from_str(
            &Op::Authenticate(AuthCall {
                method: "GET".into(),
                path: "/p".into(),
                headers: BTreeMap::new(),
                peer: None,
            })
            .to_json(),
        )
        .unwrap();
        assert_eq!(
            r,
            serde_json::json!({"op":"authenticate","method":"GET","path":"/p","headers":{},"peer":null})
        );
    }
}
