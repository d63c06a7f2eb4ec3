//! How a personal daemon's link to its team server is: health's `team`
//! object, `GET /api/v1/team/status`, and `degraded` on verdicts while the
//! team is away.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::{json, Value};

use super::TeamState;
use crate::http::errors::json_response;
use crate::http::Shared;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LinkState {
    /// Not yet in contact since start.
    Connecting,
    /// Registry followed and rows delivered.
    Following,
    /// The team is unreachable, slow or failing: local answers go on.
    Degraded,
    /// The team refused the credential (401/403): following and shipping
    /// stopped until the daemon is restarted with a valid key.
    Revoked,
}

/// Why and since when (RFC 3339).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    pub reason: String,
    pub since: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Link {
    pub url: String,
    /// The identity the team server sees for our key (`whoami`).
    pub identity: Option<Value>,
    /// Version and epoch of the team registry applied here.
    pub registry_version: Option<String>,
    pub registry_generation: Option<u64>,
    /// The newest epoch the team announced.
    pub team_generation: Option<u64>,
    /// ETag of the applied registry (revalidation).
    pub etag: Option<String>,
    pub applied_at: Option<String>,
    /// Last successful exchange with the team server.
    pub last_contact_at: Option<String>,
    /// Whether the event stream is connected (else ETag polling).
    pub events_connected: bool,
    pub follow_error: Option<Problem>,
    pub ship_error: Option<Problem>,
    /// A queued approval request, proposal or override could not be sent.
    pub forward_error: Option<Problem>,
    /// Set once the team refused the credential.
    pub revoked: Option<Problem>,
    /// Rows shipped since start, and the last batch's size.
    pub shipped_rows: u64,
    pub last_batch: usize,
}

/// The link, shared by the follower, the shipper and the routes.
pub struct LinkCell {
    inner: Mutex<Link>,
    degraded: AtomicBool,
}

pub(crate) fn now() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

impl LinkCell {
    pub fn new(url: &str) -> LinkCell {
        LinkCell {
            inner: Mutex::new(Link {
                url: url.to_string(),
                identity: None,
                registry_version: None,
                registry_generation: None,
                team_generation: None,
                etag: None,
                applied_at: None,
                last_contact_at: None,
                events_connected: false,
                follow_error: None,
                ship_error: None,
                forward_error: None,
                revoked: None,
                shipped_rows: 0,
                last_batch: 0,
            }),
            degraded: AtomicBool::new(false),
        }
    }

    pub fn update<T>(&self, f: impl FnOnce(&mut Link) -> T) -> T {
        let mut l = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let out = f(&mut l);
        self.degraded.store(
            l.follow_error.is_some()
                || l.ship_error.is_some()
                || l.forward_error.is_some()
                || l.revoked.is_some(),
            Ordering::Relaxed,
        );
        out
    }

    pub fn snapshot(&self) -> Link {
        self.inner.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Cheap: read on every verdict.
    pub fn is_degraded(&self) -> bool {
        self.degraded.load(Ordering::Relaxed)
    }

    pub fn is_revoked(&self) -> bool {
        self.snapshot().revoked.is_some()
    }

    /// The verdicts' `degraded` object: the oldest open problem.
    pub fn degraded(&self) -> Option<Problem> {
        let l = self.snapshot();
        if l.revoked.is_some() {
            return l.revoked;
        }
        [l.follow_error, l.ship_error, l.forward_error]
            .into_iter()
            .flatten()
            .min_by(|a, b| a.since.cmp(&b.since))
    }

    pub(crate) fn set_error(slot: &mut Option<Problem>, reason: String) {
        match slot {
            // Keep the first `since` of an ongoing outage.
            Some(p) => p.reason = reason,
            None => {
                *slot = Some(Problem {
                    reason,
                    since: now(),
                })
            }
        }
    }

    pub fn revoke(&self, reason: String) {
        self.update(|l| {
            if l.revoked.is_none() {
                tracing::error!("team server refused the credential: {reason}; following and shipping stop (restart with a valid LEXALIGN_API_KEY)");
                l.revoked = Some(Problem {
                    reason,
                    since: now(),
                });
            }
            l.events_connected = false;
        });
    }

    fn state(l: &Link) -> LinkState {
        if l.revoked.is_some() {
            LinkState::Revoked
        } else if l.follow_error.is_some() || l.ship_error.is_some() || l.forward_error.is_some() {
            LinkState::Degraded
        } else if l.last_contact_at.is_none() {
            LinkState::Connecting
        } else {
            LinkState::Following
        }
    }
}

/// The `team` object of health and `GET /api/v1/team/status`.
pub async fn team_json(app: &Shared, link: &LinkCell) -> Value {
    let l = link.snapshot();
    let store = app.store.clone();
    let (outbox, forward) =
        tokio::task::spawn_blocking(move || (store.outbox_status(), store.forward_status()))
            .await
            .map(|(o, f)| (o.ok(), f.ok()))
            .unwrap_or((None, None));
    let lag = match (l.team_generation, l.registry_generation) {
        (Some(t), Some(a)) => Some(t.saturating_sub(a)),
        (Some(t), None) => Some(t),
        _ => None,
    };
    json!({
        "mode": "personal",
        "url": l.url,
        "state": LinkCell::state(&l),
        "identity": l.identity,
        "registry_version": l.registry_version,
        "registry_generation": l.registry_generation,
        "team_generation": l.team_generation,
        "lag_generations": lag,
        "applied_at": l.applied_at,
        "last_contact_at": l.last_contact_at,
        "events_connected": l.events_connected,
        "degraded": link.degraded(),
        "follow_error": l.follow_error,
        "ship_error": l.ship_error,
        "forward_error": l.forward_error,
        "revoked": l.revoked,
        "outbox": {
            "depth": outbox.as_ref().map(|o| o.depth),
            "shipped_seq": outbox.as_ref().map(|o| o.shipped_seq),
            "last_delivery_at": outbox.as_ref().and_then(|o| o.last_delivery_at.clone()),
            "shipped_since_start": l.shipped_rows,
        },
        // Approval requests, proposals and overrides for the team.
        "forward": forward,
    })
}

/// `GET /api/v1/team/status`.
pub async fn status_route(
    State(app): State<Shared>,
    axum::Extension(team): axum::Extension<Arc<TeamState>>,
) -> Response {
    match &team.link {
        Some(link) => json_response(StatusCode::OK, &team_json(&app, link).await),
        None => json_response(
            StatusCode::OK,
            &json!({"mode": "standalone", "detail": "LEXALIGN_TEAM_URL is not set: this daemon follows no team server."}),
        ),
    }
}

/// Largest response this layer rewrites.
const MAX_REWRITE: usize = 32 * 1024 * 1024;

/// Outermost layer of a personal daemon: while the team is away, verdicts
/// carry `degraded: {reason, since}`; health carries the `team` object.
/// Untouched (no copy) when following normally and not a health call.
/// `{…}` → `{…,"degraded":<d>}`; `None` unless `body` is a non-empty
/// JSON object without that key.
fn splice_degraded(body: &[u8], degraded: &Value) -> Option<Bytes> {
    let text = std::str::from_utf8(body).ok()?.trim_end();
    let inner = text.strip_prefix('{')?.strip_suffix('}')?;
    if inner.trim().is_empty() || text.contains("\"degraded\"") {
        return None;
    }
    let d = serde_json::to_string(degraded).ok()?;
    let mut out = String::with_capacity(text.len() + d.len() + 13);
    out.push_str(&text[..text.len() - 1]);
    out.push_str(",\"degraded\":");
    out.push_str(&d);
    out.push('}');
    Some(Bytes::from(out))
}

pub async fn annotate(
    State((app, team)): State<(Shared, Arc<TeamState>)>,
    req: Request,
    next: Next,
) -> Response {
    let Some(link) = team.link.clone() else {
        return next.run(req).await;
    };
    let path = req.uri().path().to_string();
    let kind = match path.as_str() {
        "/api/v1/evaluate" | "/api/v1/evaluate/batch" if link.is_degraded() => 0,
        "/api/v1/health" => 1,
        _ => return next.run(req).await,
    };
    let resp = next.run(req).await;
    let json = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if resp.status() != StatusCode::OK || !json {
        return resp;
    }
    let (mut parts, body) = resp.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, MAX_REWRITE).await else {
        return (StatusCode::INTERNAL_SERVER_ERROR, "response too large").into_response();
    };
    if kind == 0 && path == "/api/v1/evaluate" {
        // One verdict object of our own making: the key goes in before its
        // closing brace, without parsing and re-serialising every answer
        // for as long as the team is away.
        if let Some(out) = splice_degraded(&bytes, &json!(link.degraded())) {
            parts.headers.remove(header::CONTENT_LENGTH);
            return Response::from_parts(parts, Body::from(out));
        }
    }
    let Ok(Value::Object(mut obj)) = serde_json::from_slice::<Value>(&bytes) else {
        return Response::from_parts(parts, Body::from(bytes));
    };
    if kind == 0 {
        let d = json!(link.degraded());
        if let Some(Value::Array(results)) = obj.get_mut("results") {
            for r in results.iter_mut().filter_map(Value::as_object_mut) {
                r.insert("degraded".into(), d.clone());
            }
        }
        obj.insert("degraded".into(), d);
    } else if obj.contains_key("db") {
        // Only the authenticated health (a stranger's says just "up").
        obj.insert("team".into(), team_json(&app, &link).await);
    }
    let out = Bytes::from(serde_json::to_vec(&Value::Object(obj)).unwrap_or_default());
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, Body::from(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn degraded_goes_into_the_verdict_object() {
        let d = json!({"reason": "team away", "since": "2026-12-07T00:00:00Z"});
        let out = splice_degraded(br#"{"verdict":"ALLOWED","reason":"ok"}"#, &d).unwrap();
        let v: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["verdict"], "ALLOWED");
        assert_eq!(v["degraded"], d);
        // Not an object, empty, or already carrying the key: parsed instead.
        assert!(splice_degraded(b"[1]", &d).is_none());
        assert!(splice_degraded(b"{ }", &d).is_none());
        assert!(splice_degraded(br#"{"degraded":null}"#, &d).is_none());
    }
}
