//! Health, reports, audit verification and metrics.

use axum::extract::{RawQuery, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

use lex_align_store::{Store, StoreError};

use super::errors::json_response;
use super::{query_get, query_pairs, ApiError, ApiResult, AppState, Shared};

fn db_error(e: impl std::fmt::Display) -> ApiError {
    ApiError::detail(
        StatusCode::SERVICE_UNAVAILABLE,
        format!("audit database unavailable: {e}"),
    )
}

/// Store reads are blocking SQLite queries: keep them off the async workers.
pub(super) async fn on_store<T: Send + 'static>(
    app: &Shared,
    f: impl FnOnce(&Store) -> Result<T, StoreError> + Send + 'static,
) -> Result<T, ApiError> {
    let store = app.store.clone();
    tokio::task::spawn_blocking(move || f(&store))
        .await
        .map_err(db_error)?
        .map_err(db_error)
}

/// Overrides and registry exceptions lapsing within this window are named
/// in health (the session brief and `status` show them).
const LAPSING_WINDOW: time::Duration = time::Duration::days(7);

/// What lapses within [`LAPSING_WINDOW`]: overrides (of the caller's
/// project when it names one) and registry rules with an `expires`.
fn lapsing_soon(app: &AppState, project: Option<&str>) -> Value {
    let overrides: Vec<Value> = app
        .evaluator
        .overrides
        .lapsing_within(LAPSING_WINDOW)
        .into_iter()
        .filter(|o| project.is_none_or(|p| p == o.project))
        .map(|o| {
            json!({"id": o.id, "package": o.package, "project": o.project,
                   "version": o.version, "approver": o.approver, "expires_at": o.expires_at})
        })
        .collect();
    let loaded = app.registry.current();
    let now = time::OffsetDateTime::now_utc();
    let exceptions: Vec<Value> = loaded
        .registry
        .rules_lapsing_within(now, LAPSING_WINDOW)
        .into_iter()
        .map(|r| {
            json!({"package": r.name, "status": r.status.as_str(), "owner": r.owner,
                   "reason": r.reason, "expires": r.expires_text()})
        })
        .collect();
    json!({"overrides": overrides, "exceptions": exceptions})
}

/// Always 200 (the original's contract); the original keys first, then ours.
/// With authentication on, an unauthenticated caller learns only that the
/// daemon is up.
pub async fn health(
    State(app): State<Shared>,
    identity: Option<axum::Extension<crate::auth::Identity>>,
    headers: axum::http::HeaderMap,
) -> Response {
    let Some(axum::Extension(identity)) = identity else {
        return json_response(
            StatusCode::OK,
            &json!({"status": "ok", "auth_enabled": true}),
        );
    };
    // Health is open to every role, so the access layer does not hold a
    // project-scoped key to its project here: its scope, not the header,
    // picks whose overrides it sees.
    let project = identity.project.clone().or_else(|| {
        headers
            .get("x-lexalign-project")
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(str::to_string)
    });
    let store = app.store.clone();
    let db_ok = tokio::task::spawn_blocking(move || store.ping())
        .await
        .unwrap_or(false);
    let loaded = app.registry.current();
    let cfg = &app.config;
    let body = json!({
        // No Redis exists in this daemon; the key stays for old clients.
        "redis": "down",
        "db": if db_ok { "ok" } else { "down" },
        "registry_loaded": loaded.from_file,
        "registry_version": loaded.from_file.then(|| loaded.registry.version.clone()),
        "auth_enabled": cfg.auth.enabled,
        "cache": "memory+sqlite",
        "auth_backend": cfg.auth.enabled.then(|| cfg.auth.backend.label()),
        "registry_path": cfg.registry_path.as_ref().map(|p| p.display().to_string()),
        "registry_packages": loaded.registry.packages.len(),
        "last_reload": app.registry.last_reload(),
        "proposer": app.proposer.name(),
        "upstreams": {
            "index": cfg.index.as_ref().map(|i| json!({
                "url": i.url, "kind": format!("{:?}", i.kind).to_ascii_lowercase(), "source": i.source,
            })),
            "advisories": advisories_health(&app),
            "fail_policy": format!("{:?}", cfg.fail_policy).to_ascii_lowercase(),
            "evaluate_budget_ms": cfg.evaluate_budget.as_millis() as u64,
        },
        "lapsing_soon": lapsing_soon(&app, project.as_deref()),
        // Last re-scan (time, packages, versions, error) and open alerts.
        "cve_scan": app.cve_scan.health(),
        // Each library found in LEXALIGN_PLUGIN_DIRS: path, name, kind,
        // abi, state (ready | failed | unhealthy), error.
        "plugins": app.plugins.report(),
    });
    json_response(StatusCode::OK, &body)
}

/// The advisory source in use, how old its data is and when it is next
/// refreshed (the original's `offline`/`url` keys kept for old clients).
fn advisories_health(app: &AppState) -> Value {
    let cfg = &app.config;
    let info = match app.evaluator.upstream.as_ref() {
        Some(u) => u.advisory_source(),
        None => lex_align_upstream::describe_advisory_source(&crate::upstream_config(cfg)),
    };
    let rfc3339 = |t: u64| {
        time::OffsetDateTime::from_unix_timestamp(i64::try_from(t).ok()?)
            .ok()?
            .format(&time::format_description::well_known::Rfc3339)
            .ok()
    };
    let mut v = json!({
        "source": info.kind.as_str(),
        "location": info.location,
        "records": info.records,
        "updated_at": info.updated_at.and_then(rfc3339),
        "age_seconds": info.age_secs(),
        "resync_every_hours": info.resync_every.map(|d| d.as_secs_f64() / 3600.0),
        "next_sync_at": info.next_sync_at.and_then(rfc3339),
        "last_sync_error": info.last_sync_error,
        "unscored": cfg.unscored_advisories.as_str(),
        "summary": info.summary(),
    });
    match &cfg.offline_advisories {
        Some(p) => v["offline"] = json!(p.display().to_string()),
        None => v["url"] = json!(cfg.osv_url),
    }
    v
}

fn project_param(query: Option<&str>) -> Result<Option<String>, ApiError> {
    let pairs = query_pairs(query)?;
    Ok(query_get(&pairs, "project").map(str::to_string))
}

pub async fn legal(State(app): State<Shared>, RawQuery(q): RawQuery) -> ApiResult {
    let project = project_param(q.as_deref())?;
    let v = on_store(&app, move |s| s.legal_report(project.as_deref())).await?;
    Ok(json_response(StatusCode::OK, &v))
}

pub async fn security(State(app): State<Shared>, RawQuery(q): RawQuery) -> ApiResult {
    let project = project_param(q.as_deref())?;
    let registry: Vec<(String, String)> = app
        .registry
        .current()
        .registry
        .packages
        .iter()
        .map(|(k, r)| (k.clone(), r.status.as_str().to_string()))
        .collect();
    let v = on_store(&app, move |s| {
        s.security_report(project.as_deref(), &registry)
    })
    .await?;
    Ok(json_response(StatusCode::OK, &v))
}

pub async fn approval_requests(State(app): State<Shared>, RawQuery(q): RawQuery) -> ApiResult {
    let pairs = query_pairs(q.as_deref())?;
    let project = query_get(&pairs, "project").map(str::to_string);
    let status = query_get(&pairs, "status").map(str::to_string);
    let v = on_store(&app, move |s| {
        s.approval_requests_report(project.as_deref(), status.as_deref())
    })
    .await?;
    Ok(json_response(StatusCode::OK, &v))
}

pub async fn projects(State(app): State<Shared>) -> ApiResult {
    let v = on_store(&app, |s| s.projects_report()).await?;
    Ok(json_response(StatusCode::OK, &v))
}

pub async fn agents(State(app): State<Shared>, RawQuery(q): RawQuery) -> ApiResult {
    let project = project_param(q.as_deref())?;
    let v = on_store(&app, move |s| s.agents_report(project.as_deref())).await?;
    Ok(json_response(StatusCode::OK, &v))
}

/// 200 when the hash chain holds, 409 naming the first broken row.
pub async fn audit_verify(State(app): State<Shared>) -> ApiResult {
    let report = on_store(&app, |s| s.verify()).await?;
    let status = if report.ok {
        StatusCode::OK
    } else {
        StatusCode::CONFLICT
    };
    Ok(json_response(status, &report))
}

pub async fn metrics(State(app): State<Shared>) -> Response {
    let stats = app.evaluator.upstream.as_ref().map(|u| u.stats());
    let text = app.metrics.render(stats.as_ref());
    let mut r = (StatusCode::OK, text).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    r
}
