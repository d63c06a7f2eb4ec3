//! The v1 HTTP API (http-api.md), with lex-align's additive routes.

pub(crate) mod errors;
mod evaluate;
mod keys;
mod misc;
mod openapi;
pub mod overrides;
mod registry;

use std::sync::Arc;
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::Router;
use serde_json::{json, Value};

pub use errors::{ApiError, ApiResult, FieldIssue};

use crate::config::Config;
use crate::metrics::Metrics;
use crate::proposer::Proposer;
use crate::registry_state::RegistryState;
use crate::service::{CallContext, Evaluator};

pub const MAX_PACKAGE: usize = 200;
pub const MAX_VERSION: usize = 100;
pub const MAX_REQUIREMENT: usize = 1000;
pub const MAX_HEADER: usize = 200;
pub const MAX_BATCH: usize = 500;

pub struct AppState {
    pub config: Config,
    pub evaluator: Evaluator,
    pub registry: Arc<RegistryState>,
    pub store: Arc<lex_align_store::Store>,
    pub proposer: Arc<dyn Proposer>,
    /// Set when the proposer reviews (`github`): approval requests go to it.
    pub reviews: Option<crate::proposer::review::ReviewQueue>,
    pub metrics: Arc<Metrics>,
    pub access: crate::auth::Access,
    /// Keys, overrides and webhook deliveries (same file as `store`).
    pub access_db: lex_align_store::AccessDb,
    /// Signs verdicts on request and audit checkpoints (`signing.rs`).
    pub signer: Arc<crate::signing::DaemonKey>,
    /// Every plugin library found, loaded or not (health lists them).
    pub plugins: Arc<lex_align_plugin_host::PluginHost>,
    /// The background CVE re-scan: its status and the open alerts.
    pub cve_scan: Arc<crate::cve_scan::CveScanner>,
}

impl AppState {
    /// Re-reads keys and overrides when they changed (or `force`).
    pub async fn refresh_access(&self, force: bool) {
        let db = self.access_db.clone();
        let keys = self.access.keys.clone();
        let book = self.evaluator.overrides.clone();
        let done = tokio::task::spawn_blocking(move || {
            keys.refresh(&db)?;
            book.refresh(&db, force)
        })
        .await;
        match done {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => tracing::warn!("cannot refresh keys and overrides: {e}"),
            Err(e) => tracing::warn!("key refresh task failed: {e}"),
        }
    }
}

pub type Shared = Arc<AppState>;

/// The v1 API behind its middleware (auth, metrics, body limit, panic
/// guard), without the LSP routes: the LSP side drives this router
/// in-process for its approval requests, so `http` must not depend on it.
pub fn router(state: Shared) -> Router {
    router_with(state, Router::new())
}

/// [`router`] plus `extra` routes (the crate root adds the LSP upgrade and
/// its docs page) behind the same middleware.
pub fn router_with(state: Shared, extra: Router<Shared>) -> Router {
    let routes = Router::new()
        .route("/api/v1/evaluate", get(evaluate::evaluate))
        .route("/api/v1/evaluate/batch", post(evaluate::batch))
        .route(
            "/api/v1/approval-requests",
            post(evaluate::approval_request),
        )
        .route("/api/v1/health", get(misc::health))
        .route("/api/v1/registry", get(crate::team::server::get_registry))
        .route("/api/v1/registry/pending", get(registry::pending))
        .route("/api/v1/registry/proposals", post(registry::proposals))
        .route("/api/v1/registry/parse-yaml", post(registry::parse_yaml))
        .route("/api/v1/registry/reload", post(registry::reload))
        .route("/api/v1/registry/webhook", post(registry::webhook))
        .route("/api/v1/reports/legal", get(misc::legal))
        .route("/api/v1/reports/security", get(misc::security))
        .route(
            "/api/v1/reports/approval-requests",
            get(misc::approval_requests),
        )
        .route("/api/v1/reports/projects", get(misc::projects))
        .route("/api/v1/reports/agents", get(misc::agents))
        .route("/api/v1/audit/verify", get(misc::audit_verify))
        .route("/api/v1/keys", get(keys::keys))
        .route(
            "/api/v1/overrides",
            post(overrides::grant).get(overrides::list),
        )
        .route("/api/v1/overrides/{id}", delete(overrides::revoke))
        .route("/metrics", get(misc::metrics))
        .route("/openapi.json", get(openapi::openapi))
        .merge(crate::pages::routes())
        .merge(crate::team::routes())
        .merge(extra);
    stack(state, routes)
}

/// `routes` behind the API's middleware (auth, metrics, body limit, panic
/// guard) and its 404. Public so that the bench can put a fixed-verdict
/// handler behind exactly the same stack.
pub fn stack(state: Shared, routes: Router<Shared>) -> Router {
    routes
        .fallback(not_found)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            crate::team::server::idempotent,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            crate::auth::authorize,
        ))
        .layer(axum::middleware::from_fn_with_state(state.clone(), observe))
        .layer(DefaultBodyLimit::max(state.config.max_body_bytes))
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(
            panic_response,
        ))
        .with_state(state)
}

async fn not_found() -> Response {
    ApiError::detail(StatusCode::NOT_FOUND, "Not Found").into_response()
}

fn panic_response(_err: Box<dyn std::any::Any + Send + 'static>) -> Response {
    tracing::error!("request handler panicked");
    errors::json_response(
        StatusCode::INTERNAL_SERVER_ERROR,
        &json!({"detail": "Internal Server Error"}),
    )
}

/// Latency and error counters per route.
async fn observe(State(state): State<Shared>, req: Request, next: Next) -> Response {
    let route = match req.uri().path() {
        "/api/v1/evaluate" => 0,
        "/api/v1/evaluate/batch" => 1,
        "/api/v1/approval-requests" => 2,
        _ => 3,
    };
    let start = Instant::now();
    let resp = next.run(req).await;
    state
        .metrics
        .request(route, resp.status().as_u16(), start.elapsed());
    resp
}

/// A header value, stripped; `None` when absent or blank.
fn header_str(headers: &HeaderMap, name: &str) -> Option<String> {
    let v = headers.get(name)?;
    let s = String::from_utf8_lossy(v.as_bytes());
    let s = s.trim();
    (!s.is_empty()).then(|| s.to_string())
}

/// The caller of a dependent route: project header (400 when missing), the
/// identity the access layer found, then header limits (422).
pub fn caller(
    headers: &HeaderMap,
    identity: &crate::auth::Identity,
    source: &'static str,
) -> Result<CallContext, ApiError> {
    let Some(project) = header_str(headers, "x-lexalign-project") else {
        return Err(ApiError::detail(
            StatusCode::BAD_REQUEST,
            "X-LexAlign-Project header is required.",
        ));
    };
    let agent_model = header_str(headers, "x-lexalign-agent-model");
    let agent_version = header_str(headers, "x-lexalign-agent-version");
    let mut issues = Vec::new();
    for (name, value) in [
        ("x-lexalign-project", Some(&project)),
        ("x-lexalign-agent-model", agent_model.as_ref()),
        ("x-lexalign-agent-version", agent_version.as_ref()),
    ] {
        if let Some(v) = value {
            if v.chars().count() > MAX_HEADER {
                issues.push(FieldIssue::too_long(&["header", name], v, MAX_HEADER));
            }
        }
    }
    if !issues.is_empty() {
        return Err(ApiError::Invalid(issues));
    }
    Ok(CallContext {
        project,
        requester: identity.id.clone(),
        auth_method: identity.method.clone(),
        agent_model,
        agent_version,
        source,
    })
}

/// Query string → pairs (last value of a repeated key wins, like FastAPI).
pub fn query_pairs(raw: Option<&str>) -> Result<Vec<(String, String)>, ApiError> {
    match raw {
        None | Some("") => Ok(Vec::new()),
        Some(q) => serde_urlencoded::from_str::<Vec<(String, String)>>(q).map_err(|e| {
            ApiError::invalid(FieldIssue::value_error(
                vec![json!("query")],
                format!("malformed query string: {e}"),
                json!(q),
            ))
        }),
    }
}

pub fn query_get<'a>(pairs: &'a [(String, String)], key: &str) -> Option<&'a str> {
    pairs
        .iter()
        .rev()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

/// The body as a JSON object: 413 when too large, 422 (pydantic style) when
/// not JSON or not an object. Never a 500.
pub fn json_object(
    body: Result<Bytes, BytesRejection>,
) -> Result<serde_json::Map<String, Value>, ApiError> {
    let bytes = body.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::detail(
                StatusCode::PAYLOAD_TOO_LARGE,
                "Request body is larger than the daemon accepts (LEXALIGN_MAX_BODY_BYTES, default 1 MiB).",
            )
        } else {
            ApiError::detail(
                StatusCode::BAD_REQUEST,
                format!("Could not read the request body: {e}"),
            )
        }
    })?;
    if bytes.is_empty() {
        return Err(ApiError::invalid(FieldIssue::missing(&["body"])));
    }
    let value: Value = serde_json::from_slice(&bytes).map_err(|e| {
        ApiError::invalid(FieldIssue {
            kind: "json_invalid",
            loc: vec![json!("body"), json!(e.column())],
            msg: "JSON decode error".into(),
            input: json!({}),
            ctx: Some(Box::new(json!({ "error": e.to_string() }))),
        })
    })?;
    match value {
        Value::Object(m) => Ok(m),
        other => Err(ApiError::invalid(FieldIssue {
            kind: "model_attributes_type",
            loc: vec![json!("body")],
            msg: "Input should be a valid dictionary or object to extract fields from".into(),
            input: other,
            ctx: None,
        })),
    }
}

/// A required string body field with min length 1 and a max length.
pub fn required_str(
    body: &serde_json::Map<String, Value>,
    field: &str,
    max: usize,
) -> Result<String, FieldIssue> {
    match body.get(field) {
        None | Some(Value::Null) => Err(FieldIssue::missing(&["body", field])),
        Some(Value::String(s)) if s.is_empty() => Err(FieldIssue::too_short(&["body", field], s)),
        Some(Value::String(s)) if s.chars().count() > max => {
            Err(FieldIssue::too_long(&["body", field], s, max))
        }
        Some(Value::String(s)) => Ok(s.clone()),
        Some(other) => Err(FieldIssue::string_type(
            vec![json!("body"), json!(field)],
            other,
        )),
    }
}

/// An optional string body field (`null` = absent).
pub fn optional_str(
    body: &serde_json::Map<String, Value>,
    field: &str,
    max: usize,
) -> Result<Option<String>, FieldIssue> {
    match body.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.chars().count() > max => {
            Err(FieldIssue::too_long(&["body", field], s, max))
        }
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(other) => Err(FieldIssue::string_type(
            vec![json!("body"), json!(field)],
            other,
        )),
    }
}
