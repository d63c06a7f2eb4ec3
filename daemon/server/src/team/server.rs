//! The team server's routes for its personal daemons.

use std::convert::Infallible;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use lex_align_store::outbox::{ShipRow, SHIP_BATCH_MAX};
use serde::Deserialize;
use serde_json::json;

use super::{TeamState, GENERATION_HEADER};
use crate::auth::Identity;
use crate::http::errors::json_response;
use crate::http::{ApiError, ApiResult, Shared};
use crate::registry_state::{content_hash, LoadedRegistry};

/// The registry served now, its ETag and its epoch. A personal daemon
/// reports the epoch it applied from its team instead of its own.
pub async fn current(
    app: &Shared,
    team: &TeamState,
) -> Result<(Arc<LoadedRegistry>, String, u64), ApiError> {
    let mut cached = team.epoch.lock().await;
    let loaded = app.registry.current();
    let hash = content_hash(&loaded.api_body);
    let etag = format!("\"{}\"", &hash[..32]);
    if let Some(link) = &team.link {
        let g = link.snapshot().registry_generation.unwrap_or(0);
        return Ok((loaded, etag, g));
    }
    if let Some((h, e)) = cached.as_ref() {
        if *h == hash {
            return Ok((loaded, etag, *e));
        }
    }
    let epoch = app
        .store
        .registry_epoch(&hash, &loaded.registry.version)
        .await
        .map_err(|e| {
            ApiError::detail(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("cannot record the registry generation: {e}"),
            )
        })?;
    *cached = Some((hash, epoch));
    Ok((loaded, etag, epoch))
}

/// `GET /api/v1/registry`: the registry JSON with `ETag` and the
/// generation header; `If-None-Match` with the current ETag gets a 304.
pub async fn get_registry(
    State(app): State<Shared>,
    team: Option<axum::Extension<Arc<TeamState>>>,
    headers: HeaderMap,
) -> Response {
    let Some(axum::Extension(team)) = team else {
        // An in-process router without team state (the LSP bridge).
        let mut r = (StatusCode::OK, app.registry.current().api_body.clone()).into_response();
        r.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        return r;
    };
    let (loaded, etag, epoch) = match current(&app, &team).await {
        Ok(c) => c,
        Err(e) => return e.into_response(),
    };
    let matches = headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| {
            let t = t.trim();
            t == "*" || t.trim_start_matches("W/") == etag
        });
    let mut r = if matches {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        let mut r = (StatusCode::OK, loaded.api_body.clone()).into_response();
        r.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        r
    };
    let h = r.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&etag) {
        h.insert(header::ETAG, v);
    }
    h.insert(GENERATION_HEADER, HeaderValue::from(epoch));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    r
}

fn event(version: &str, epoch: u64, etag: &str) -> Event {
    Event::default()
        .event("registry")
        .id(epoch.to_string())
        .data(json!({"version": version, "registry_generation": epoch, "etag": etag}).to_string())
}

/// `GET /api/v1/registry/events`: `registry` events (current at once, then
/// on every change), keep-alive comments in between.
pub async fn events(
    State(app): State<Shared>,
    axum::Extension(team): axum::Extension<Arc<TeamState>>,
) -> Response {
    let rx = app.registry.subscribe();
    let every = app_keepalive(&app);
    let first = match current(&app, &team).await {
        Ok((l, etag, epoch)) => (l.registry.version.clone(), epoch, etag),
        Err(e) => return e.into_response(),
    };
    let sent = first.1;
    let start = futures_util::stream::once(async move {
        Ok::<_, Infallible>(event(&first.0, first.1, &first.2))
    });
    let changes = futures_util::stream::unfold(
        (app, team, rx, sent),
        |(app, team, mut rx, mut sent)| async move {
            loop {
                rx.changed().await.ok()?;
                let Ok((l, etag, epoch)) = current(&app, &team).await else {
                    continue;
                };
                if epoch == sent {
                    continue;
                }
                sent = epoch;
                let ev = event(&l.registry.version, epoch, &etag);
                return Some((Ok::<_, Infallible>(ev), (app, team, rx, sent)));
            }
        },
    );
    let keepalive = KeepAlive::new().interval(every).text("keep-alive");
    let mut r = Sse::new(futures_util::StreamExt::chain(start, changes))
        .keep_alive(keepalive)
        .into_response();
    // Proxies must not buffer the stream.
    r.headers_mut()
        .insert("x-accel-buffering", HeaderValue::from_static("no"));
    r
}

fn app_keepalive(app: &Shared) -> std::time::Duration {
    app.config.team.keepalive
}

#[derive(Deserialize)]
struct IngestBody {
    rows: Vec<ShipRow>,
}

/// `POST /api/v1/audit/ingest` (agent role: a personal daemon uses its
/// owner's key): rows land in this chain with their original requester
/// and time and `auth_method = relay:<caller>`; exactly once by `row_id`.
/// A project-scoped key may only ship rows of its project.
pub async fn ingest(
    State(app): State<Shared>,
    axum::Extension(identity): axum::Extension<Identity>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult {
    let bytes = body.map_err(|e| ApiError::detail(e.status(), e.body_text()))?;
    let body: IngestBody = serde_json::from_slice(&bytes).map_err(|e| {
        ApiError::detail(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("expected {{\"rows\": [{{\"row_id\", \"ts\", …audit columns…}}]}}: {e}"),
        )
    })?;
    if body.rows.len() > SHIP_BATCH_MAX {
        return Err(ApiError::detail(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("at most {SHIP_BATCH_MAX} rows per batch"),
        ));
    }
    if let Some(scope) = &identity.project {
        if let Some(r) = body.rows.iter().find(|r| &r.row.project != scope) {
            return Err(ApiError::detail(
                StatusCode::FORBIDDEN,
                format!(
                    "This key is scoped to project `{scope}` and cannot ship rows of project `{}`.",
                    r.row.project
                ),
            ));
        }
    }
    let n = body.rows.len();
    let shipper = identity.id.clone();
    let outcome = app
        .store
        .relay_ingest(body.rows, &shipper)
        .await
        .map_err(|e| match e {
            lex_align_store::StoreError::Invalid(_)
            | lex_align_store::StoreError::InvalidTimestamp(_) => {
                ApiError::detail(StatusCode::UNPROCESSABLE_ENTITY, e.to_string())
            }
            e => ApiError::detail(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("audit log unavailable: {e}"),
            ),
        })?;
    app.metrics.audit_rows(outcome.new.len() as u64);
    tracing::debug!(
        shipper,
        rows = n,
        new = outcome.new.len(),
        "ingested shipped audit rows"
    );
    Ok(json_response(
        StatusCode::OK,
        &json!({
            "accepted": outcome.new.len(),
            "duplicates": outcome.duplicate.len(),
            "new": outcome.new,
            "duplicate": outcome.duplicate,
        }),
    ))
}

/// `GET /api/v1/team/whoami`: who this server takes the caller for.
pub async fn whoami(
    State(app): State<Shared>,
    axum::Extension(team): axum::Extension<Arc<TeamState>>,
    axum::Extension(identity): axum::Extension<Identity>,
) -> ApiResult {
    let (loaded, etag, epoch) = current(&app, &team).await?;
    Ok(json_response(
        StatusCode::OK,
        &json!({
            "id": identity.id,
            "role": identity.role.as_str(),
            "method": identity.method,
            "project": identity.project,
            "registry_version": loaded.registry.version,
            "registry_generation": epoch,
            "etag": etag,
        }),
    ))
}

/// The routes a personal daemon forwards to its team (`forward.rs`).
fn forwarded(method: &axum::http::Method, path: &str) -> bool {
    let path = path.trim_end_matches('/');
    match method.as_str() {
        "POST" => matches!(
            path,
            "/api/v1/approval-requests" | "/api/v1/registry/proposals" | "/api/v1/overrides"
        ),
        "DELETE" => path.starts_with("/api/v1/overrides/"),
        _ => false,
    }
}

/// Longest `Idempotency-Key` kept (the forwarder sends UUIDs).
const MAX_IDEMPOTENCY_KEY: usize = 100;

/// Largest answer kept for a replay.
const MAX_KEPT_ANSWER: usize = 1024 * 1024;

/// `Idempotency-Key` on the forwarded routes: the first answer to a
/// caller's key is kept and given again to a retry, so a delivery retried
/// after a lost answer never asks, proposes or grants twice. Keys are per
/// caller: nobody reads another's answer. 5xx answers are not kept (the
/// retry runs again). Runs after authorization.
pub async fn idempotent(
    State(app): State<Shared>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let key = req
        .headers()
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|k| !k.is_empty())
        .map(str::to_string);
    let Some(key) = key else {
        return next.run(req).await;
    };
    if !forwarded(req.method(), req.uri().path()) {
        return next.run(req).await;
    }
    if key.len() > MAX_IDEMPOTENCY_KEY {
        return json_response(
            StatusCode::BAD_REQUEST,
            &json!({"detail": format!("Idempotency-Key is longer than {MAX_IDEMPOTENCY_KEY} characters")}),
        );
    }
    let Some(identity) = req.extensions().get::<Identity>().cloned() else {
        return next.run(req).await;
    };
    // The credential, not the display name: two keys may share a name.
    let caller = format!("{}|{}", identity.method, identity.id);
    let slot = format!("{} {}|{key}", req.method(), req.uri().path());
    match app.store.idempotent_answer(&caller, &slot).await {
        Ok(Some((status, body))) => {
            let mut r =
                (StatusCode::from_u16(status).unwrap_or(StatusCode::OK), body).into_response();
            let h = r.headers_mut();
            h.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            h.insert("idempotent-replayed", HeaderValue::from_static("true"));
            return r;
        }
        Ok(None) => {}
        Err(e) => {
            // Fail closed: acting without knowing whether it was done
            // could act twice.
            return json_response(
                StatusCode::SERVICE_UNAVAILABLE,
                &json!({"detail": format!("audit database unavailable: {e}")}),
            );
        }
    }
    let resp = next.run(req).await;
    if resp.status().is_server_error() {
        return resp;
    }
    let (parts, body) = resp.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, MAX_KEPT_ANSWER).await else {
        return json_response(
            StatusCode::INTERNAL_SERVER_ERROR,
            &json!({"detail": "answer too large to keep"}),
        );
    };
    if let Err(e) = app
        .store
        .keep_idempotent_answer(&caller, &slot, parts.status.as_u16(), bytes.to_vec())
        .await
    {
        tracing::warn!("cannot keep the answer for Idempotency-Key replays: {e}");
    }
    Response::from_parts(parts, axum::body::Body::from(bytes))
}
