//! `AUTH_BACKEND=webhook`: an outside verifier judges the bearer token
//! (`POST AUTH_VERIFY_URL {"token": …}` → `{"id", "email"?, "groups"?}`).
//!
//! Every failure of the verifier — down, slow, an error status, garbage —
//! is a 401: never a 5xx, never anonymous. A yes is remembered for
//! `AUTH_VERIFY_CACHE_S` under the SHA-256 of the token (the token itself
//! is kept nowhere).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

use async_trait::async_trait;
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::settings::WebhookSettings;
use super::{bearer, AuthRequest, Authenticator, Principal, Unauthorized};

/// Cached answers kept before the cache starts over.
const CACHE_CAP: usize = 10_000;

pub struct WebhookAuth {
    cfg: WebhookSettings,
    client: reqwest::Client,
    cache: Mutex<HashMap<[u8; 32], (Principal, Instant)>>,
}

impl WebhookAuth {
    pub fn new(cfg: WebhookSettings) -> anyhow::Result<WebhookAuth> {
        let client = reqwest::Client::builder()
            .timeout(cfg.timeout)
            // The verifier is named by the operator; never follow it elsewhere.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| anyhow::anyhow!("AUTH_VERIFY_URL: cannot build the HTTP client: {e}"))?;
        Ok(WebhookAuth {
            cfg,
            client,
            cache: Mutex::new(HashMap::new()),
        })
    }

    fn cached(&self, key: &[u8; 32]) -> Option<Principal> {
        if self.cfg.cache_ttl.is_zero() {
            return None;
        }
        let cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        cache
            .get(key)
            .filter(|(_, at)| at.elapsed() < self.cfg.cache_ttl)
            .map(|(p, _)| p.clone())
    }

    fn remember(&self, key: [u8; 32], p: &Principal) {
        if self.cfg.cache_ttl.is_zero() {
            return;
        }
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        if cache.len() >= CACHE_CAP {
            cache.clear();
        }
        cache.insert(key, (p.clone(), Instant::now()));
    }

    async fn ask(&self, token: &str) -> Result<Principal, Unauthorized> {
        let resp = self
            .client
            .post(&self.cfg.verify_url)
            .json(&serde_json::json!({ "token": token }))
            .send()
            .await
            .map_err(|e| {
                // The error names the URL, never the token.
                tracing::warn!("auth verifier unreachable: {}", e.without_url());
                Unauthorized("Authentication service unreachable.".into())
            })?;
        let status = resp.status().as_u16();
        if status == 401 || status == 403 {
            return Err(Unauthorized("Token rejected by verifier.".into()));
        }
        if status >= 400 {
            tracing::warn!(status, "auth verifier answered an error");
            return Err(Unauthorized("Authentication service error.".into()));
        }
        let body = resp
            .bytes()
            .await
            .map_err(|_| Unauthorized("Authentication service unreachable.".into()))?;
        let value: Value = serde_json::from_slice(&body)
            .map_err(|_| Unauthorized("Verifier returned non-JSON response.".into()))?;
        principal_from(&value)
    }
}

fn principal_from(v: &Value) -> Result<Principal, Unauthorized> {
    let id = v
        .get("id")
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| Unauthorized("Verifier response missing required `id` field.".into()))?;
    let email = match v.get("email") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => {
            return Err(Unauthorized(
                "Verifier response has a non-string `email`.".into(),
            ))
        }
    };
    let groups = match v.get("groups") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) => items
            .iter()
            .map(|g| {
                g.as_str()
                    .filter(|s| !s.trim().is_empty())
                    .map(|s| s.trim().to_string())
                    .ok_or_else(|| {
                        Unauthorized(
                            "Verifier response `groups` must be a list of non-empty strings."
                                .into(),
                        )
                    })
            })
            .collect::<Result<_, _>>()?,
        Some(_) => {
            return Err(Unauthorized(
                "Verifier response `groups` must be a list of non-empty strings.".into(),
            ))
        }
    };
    Ok(Principal {
        id: id.to_string(),
        email,
        groups,
        role: None,
        project: None,
        method: "webhook".into(),
    })
}

#[async_trait]
impl Authenticator for WebhookAuth {
    fn name(&self) -> &str {
        "webhook"
    }

    async fn authenticate(&self, req: &AuthRequest<'_>) -> Result<Principal, Unauthorized> {
        let Some(token) = bearer(req.headers)? else {
            return Err(Unauthorized("Bearer token required.".into()));
        };
        let key: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        if let Some(p) = self.cached(&key) {
            return Ok(p);
        }
        let p = self.ask(token).await?;
        self.remember(key, &p);
        Ok(p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn verifier_answers_are_validated() {
        let p =
            principal_from(&json!({"id": " alice ", "email": "a@x", "groups": ["ops", " dev "]}))
                .unwrap();
        assert_eq!(p.id, "alice");
        assert_eq!(p.groups, vec!["ops", "dev"]);
        for bad in [
            json!({}),
            json!({"id": ""}),
            json!({"id": 7}),
            json!({"id": "a", "groups": "ops"}),
            json!({"id": "a", "groups": [""]}),
            json!({"id": "a", "groups": [1]}),
            json!({"id": "a", "email": 1}),
            json!([1, 2]),
        ] {
            assert!(principal_from(&bad).is_err(), "{bad}");
        }
    }
}
