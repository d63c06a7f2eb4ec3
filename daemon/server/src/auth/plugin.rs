//! `AUTH_BACKEND=plugin:<name>`: an authenticator plugin (docs/plugins.md)
//! behind the [`Authenticator`] trait.
//!
//! Fail closed: whatever goes wrong in the plugin (an error answer, a
//! panic, a timeout, an answer that breaks the contract, an unhealthy
//! plugin) is a 401 for that request, never a 5xx and never anonymous.
//! The caller is told what kind of failure it was, never the plugin's raw
//! answer (which might echo a credential).

use std::collections::BTreeMap;

use async_trait::async_trait;
use lex_align_plugin_host::{Answer, AuthCall, CallError, Op, PluginHandle};

use super::{AuthRequest, Authenticator, Principal, Unauthorized};

pub struct PluginAuth {
    handle: PluginHandle,
    /// `plugin:<name>`: the backend's name and the audit rows' auth method.
    method: String,
}

impl PluginAuth {
    pub fn new(handle: PluginHandle) -> PluginAuth {
        let method = format!("plugin:{}", handle.name());
        PluginAuth { handle, method }
    }
}

/// The request as the plugin sees it: lower-case header names, repeated
/// headers joined with ", " (a value that is not UTF-8 is passed lossily).
fn auth_call(req: &AuthRequest<'_>) -> AuthCall {
    let mut headers: BTreeMap<String, String> = BTreeMap::new();
    for (name, value) in req.headers {
        let value = String::from_utf8_lossy(value.as_bytes());
        headers
            .entry(name.as_str().to_ascii_lowercase())
            .and_modify(|v| {
                v.push_str(", ");
                v.push_str(&value);
            })
            .or_insert_with(|| value.into_owned());
    }
    AuthCall {
        method: req.method.as_str().to_string(),
        path: req.path.to_string(),
        headers,
        peer: req.peer.map(|p| p.to_string()),
    }
}

impl PluginAuth {
    fn refusal(&self, e: CallError) -> Unauthorized {
        let name = self.handle.name();
        match e {
            // The plugin's own word to the caller (cleaned by the host).
            CallError::Refused { status, detail } if status < 500 => Unauthorized(detail),
            // A plugin's internal failure (a panic message among them) may
            // carry anything: only its status is told, to caller and log.
            CallError::Refused { status, .. } => {
                tracing::warn!(plugin = name, status, "authenticator plugin failed");
                Unauthorized(format!(
                    "Authentication failed: the {name} authenticator failed ({status})."
                ))
            }
            other => {
                tracing::warn!(plugin = name, error = %other, "authenticator plugin call failed");
                let what = match &other {
                    CallError::Timeout(_) => other.to_string(),
                    CallError::Invalid(why) => format!("gave an invalid answer: {why}"),
                    CallError::Unhealthy { .. } | CallError::Busy => format!("is {other}"),
                    _ => format!("failed: {other}"),
                };
                Unauthorized(format!(
                    "Authentication failed: the {name} authenticator {what}."
                ))
            }
        }
    }
}

#[async_trait]
impl Authenticator for PluginAuth {
    fn name(&self) -> &str {
        &self.method
    }

    async fn authenticate(&self, req: &AuthRequest<'_>) -> Result<Principal, Unauthorized> {
        // The call runs on the host's threads; this task only waits, at
        // most the timeout, so a stuck plugin never blocks the runtime.
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.handle
            .submit(&Op::Authenticate(auth_call(req)), move |answer| {
                let _ = tx.send(answer);
            })
            .map_err(|e| self.refusal(e))?;
        let answer = match tokio::time::timeout(self.handle.timeout(), rx).await {
            Ok(Ok(answer)) => answer,
            Ok(Err(_)) => Err(CallError::Internal("lost its answer".into())),
            Err(_) => Err(CallError::Timeout(self.handle.timeout())),
        };
        match answer {
            Ok(Answer::Identity(id)) => Ok(Principal {
                id: id.id,
                email: id.email,
                groups: id.groups,
                // Roles come from the groups (LEXALIGN_ROLE_GROUPS), never
                // from the plugin directly.
                role: None,
                project: None,
                method: self.method.clone(),
            }),
            Ok(_) => Err(self.refusal(CallError::Invalid("answered another op".into()))),
            Err(e) => Err(self.refusal(e)),
        }
    }
}
