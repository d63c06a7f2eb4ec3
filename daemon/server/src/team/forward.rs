//! Decisions go to the team server: on a personal daemon, approval
//! requests, operator proposals and overrides are validated here, written
//! to the durable queue (`team_forward`), then sent to the team with the
//! queue id as `Idempotency-Key`. While the team is away they wait, in
//! order, and the answer says so (`queued: true`, a `detail`, the
//! original's fields); the shipper's loop delivers them once it is back.
//! The team's own answer (202, 403 for a role the key lacks, 409, …) is
//! passed through when it comes at once, and kept for `team status` when
//! it comes later.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use lex_align_store::forward::{Forward, NewForward, DELIVERED, REFUSED};
use serde_json::{json, Value};

use super::follow::{transport, Fail};
use super::status::LinkCell;
use super::{bearer, FollowSettings};
use crate::http::errors::json_response;
use crate::http::AppState;
use crate::service::CallContext;

/// Requests delivered per round of the background loop.
const DRAIN_BATCH: usize = 50;

/// How one delivery went.
enum Delivery {
    /// The team answered for good (2xx, or a 4xx it will answer again).
    Answered {
        status: StatusCode,
        body: Bytes,
    },
    Failed(Fail),
}

pub struct Forwarder {
    settings: FollowSettings,
    client: reqwest::Client,
    link: Arc<LinkCell>,
    /// Ids being delivered now (the inline path and the loop never send
    /// one request at the same time).
    claimed: Mutex<HashSet<String>>,
}

/// Releases a claim on drop.
struct Claim<'a>(&'a Forwarder, String);

impl Drop for Claim<'_> {
    fn drop(&mut self) {
        if let Ok(mut c) = self.0.claimed.lock() {
            c.remove(&self.1);
        }
    }
}

impl Forwarder {
    pub fn new(settings: FollowSettings, client: reqwest::Client, link: Arc<LinkCell>) -> Self {
        Forwarder {
            settings,
            client,
            link,
            claimed: Mutex::new(HashSet::new()),
        }
    }

    fn claim(&self, id: &str) -> Option<Claim<'_>> {
        let mut c = self.claimed.lock().unwrap_or_else(|p| p.into_inner());
        c.insert(id.to_string())
            .then(|| Claim(self, id.to_string()))
    }

    async fn deliver(&self, f: &Forward) -> Delivery {
        let url = format!("{}{}", self.settings.url, f.path);
        let method = if f.method == "DELETE" {
            reqwest::Method::DELETE
        } else {
            reqwest::Method::POST
        };
        let mut req = self
            .client
            .request(method, url)
            .timeout(self.settings.timeout)
            .header("idempotency-key", &f.id)
            .header("content-type", "application/json")
            .body(f.body.clone());
        if let Some(b) = bearer(&self.settings) {
            req = req.header("authorization", b);
        }
        for (name, v) in [
            ("x-lexalign-project", &f.project),
            ("x-lexalign-agent-model", &f.agent_model),
            ("x-lexalign-agent-version", &f.agent_version),
        ] {
            if let Some(v) = v {
                req = req.header(name, v);
            }
        }
        let resp = match req.send().await {
            Ok(r) => r,
            Err(e) => return Delivery::Failed(transport(&e, self.settings.timeout)),
        };
        let status = resp.status();
        let what = format!("{} {}", f.method, f.path);
        if status == StatusCode::UNAUTHORIZED {
            return Delivery::Failed(Fail::Auth(format!(
                "the team server answered HTTP 401 to {what}"
            )));
        }
        if status.is_server_error()
            || status == StatusCode::TOO_MANY_REQUESTS
            || status == StatusCode::REQUEST_TIMEOUT
        {
            return Delivery::Failed(Fail::Away(format!(
                "the team server answered HTTP {} to {what}",
                status.as_u16()
            )));
        }
        match resp.bytes().await {
            Ok(body) => Delivery::Answered { status, body },
            Err(e) => Delivery::Failed(transport(&e, self.settings.timeout)),
        }
    }

    /// Records a team answer as final.
    async fn settle(&self, app: &AppState, f: &Forward, status: StatusCode, body: &Bytes) {
        let state = if status.is_success() {
            DELIVERED
        } else {
            tracing::warn!(path = %f.path, status = status.as_u16(), "the team server refused a forwarded request");
            REFUSED
        };
        let answer = String::from_utf8_lossy(body).into_owned();
        if let Err(e) = app
            .store
            .forward_settle(&f.id, state, status.as_u16(), answer)
            .await
        {
            // It stays queued and is sent again: the team replays its answer.
            tracing::warn!("cannot record the team's answer to {}: {e}", f.path);
        }
        self.link.update(|l| l.forward_error = None);
    }

    async fn failed(&self, app: &AppState, f: &Forward, fail: &Fail) {
        let m = match fail {
            Fail::Auth(m) | Fail::Away(m) => m.clone(),
        };
        let _ = app.store.forward_attempt_failed(&f.id, m.clone()).await;
        match fail {
            Fail::Auth(m) => self.link.revoke(m.clone()),
            Fail::Away(m) => self
                .link
                .update(|l| LinkCell::set_error(&mut l.forward_error, m.clone())),
        }
    }

    /// Queues `new`, then delivers it at once when nothing older waits and
    /// the link is up. `queued` makes the answer given while it waits:
    /// `(status, body without queued/detail)`.
    pub async fn submit(
        &self,
        app: &AppState,
        new: NewForward,
        queued: impl FnOnce(&Forward) -> (StatusCode, Value),
    ) -> Response {
        let f = match app.store.forward_enqueue(new).await {
            Ok(f) => f,
            Err(e) => {
                return json_response(
                    StatusCode::SERVICE_UNAVAILABLE,
                    &json!({"detail": format!("could not queue the request for the team server: {e}")}),
                )
            }
        };
        let why = match self.try_now(app, &f).await {
            Ok(resp) => return resp,
            Err(why) => why,
        };
        let (status, mut body) = queued(&f);
        if let Value::Object(o) = &mut body {
            o.insert("queued".into(), Value::Bool(true));
            o.insert(
                "detail".into(),
                Value::String(format!(
                    "Queued on this machine for the team server {} ({why}); it is delivered when \
                     the team server is back (`lex-align team status` shows the queue).",
                    self.settings.url
                )),
            );
        }
        json_response(status, &body)
    }

    /// The team's answer to `f` now, or why it waits.
    async fn try_now(&self, app: &AppState, f: &Forward) -> Result<Response, String> {
        if let Some(r) = self.link.snapshot().revoked {
            return Err(format!(
                "the link is stopped: {}; restart with a valid LEXALIGN_API_KEY",
                r.reason
            ));
        }
        let store = app.store.clone();
        let older = tokio::task::spawn_blocking(move || store.forward_queued(2))
            .await
            .ok()
            .and_then(Result::ok)
            .is_some_and(|q| q.iter().any(|o| o.seq < f.seq));
        if older {
            return Err("older requests are still waiting for it".into());
        }
        let Some(_claim) = self.claim(&f.id) else {
            return Err("it is being delivered".into());
        };
        match self.deliver(f).await {
            Delivery::Answered { status, body } => {
                self.settle(app, f, status, &body).await;
                Ok(passed_through(status, body))
            }
            Delivery::Failed(fail) => {
                self.failed(app, f, &fail).await;
                Err(match fail {
                    Fail::Auth(m) | Fail::Away(m) => m,
                })
            }
        }
    }

    /// Delivers what waits, oldest first, until the queue is empty or the
    /// team fails. `Ok(delivered)`.
    pub(crate) async fn drain(&self, app: &AppState) -> Result<usize, Fail> {
        let store = app.store.clone();
        let queue = tokio::task::spawn_blocking(move || store.forward_queued(DRAIN_BATCH))
            .await
            .map_err(|e| Fail::Away(format!("forward queue read failed: {e}")))?
            .map_err(|e| Fail::Away(format!("forward queue read failed: {e}")))?;
        let mut n = 0;
        for f in &queue {
            // The inline path has it: later ones wait for their turn.
            let Some(_claim) = self.claim(&f.id) else {
                return Ok(n);
            };
            match self.deliver(f).await {
                Delivery::Answered { status, body } => {
                    self.settle(app, f, status, &body).await;
                    n += 1;
                }
                Delivery::Failed(fail) => {
                    self.failed(app, f, &fail).await;
                    return Err(fail);
                }
            }
        }
        Ok(n)
    }
}

/// A request for the team from a caller's context and its JSON body.
pub fn new_forward(method: &str, path: &str, ctx: &CallContext, body: &Value) -> NewForward {
    NewForward {
        method: method.to_string(),
        path: path.to_string(),
        project: Some(ctx.project.clone()),
        agent_model: ctx.agent_model.clone(),
        agent_version: ctx.agent_version.clone(),
        body: body.to_string(),
    }
}

/// The team's answer as this daemon's, with `queued: false` on a JSON
/// object success.
fn passed_through(status: StatusCode, body: Bytes) -> Response {
    let parsed = serde_json::from_slice::<Value>(&body).ok();
    match parsed {
        Some(Value::Object(mut o)) if status.is_success() => {
            o.insert("queued".into(), Value::Bool(false));
            json_response(status, &Value::Object(o))
        }
        Some(v) => json_response(status, &v),
        None => {
            let mut r = (status, body).into_response();
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain; charset=utf-8"),
            );
            r
        }
    }
}
