//! `POST/GET /api/v1/overrides`, `DELETE /api/v1/overrides/{id}`: an
//! operator lets one DENIED package through for one project, for a while.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::Extension;
use serde_json::json;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use super::errors::json_response;
use super::{
    json_object, optional_str, query_get, query_pairs, required_str, ApiError, ApiResult,
    FieldIssue, Shared, MAX_HEADER, MAX_PACKAGE, MAX_VERSION,
};
use crate::auth::Identity;
use crate::team::TeamState;
use lex_align_store::forward::NewForward;
use std::sync::Arc;

/// The longest an override may run.
pub const MAX_OVERRIDE_DAYS: i64 = 90;
/// The shortest justification accepted.
pub const MIN_JUSTIFICATION: usize = 20;

fn db_error(e: impl std::fmt::Display) -> ApiError {
    ApiError::detail(
        StatusCode::SERVICE_UNAVAILABLE,
        format!("access database unavailable: {e}"),
    )
}

/// An RFC 3339 time or a date (the end of that day, UTC).
pub fn parse_expiry(s: &str) -> Option<OffsetDateTime> {
    if let Ok(t) = OffsetDateTime::parse(s, &Rfc3339) {
        return Some(t);
    }
    let fmt = time::macros::format_description!("[year]-[month]-[day]");
    let d = time::Date::parse(s, &fmt).ok()?;
    Some(d.next_day()?.midnight().assume_utc())
}

/// Checks an expiry against now: in the future, at most 90 days ahead.
pub fn check_expiry(t: OffsetDateTime) -> Result<(), String> {
    let now = OffsetDateTime::now_utc();
    if t <= now {
        return Err("expires_at is in the past; an override must lapse in the future".into());
    }
    if t > now + time::Duration::days(MAX_OVERRIDE_DAYS) {
        return Err(format!(
            "expires_at is more than {MAX_OVERRIDE_DAYS} days ahead; grant a shorter override and renew it if still needed"
        ));
    }
    Ok(())
}

pub async fn grant(
    State(app): State<Shared>,
    Extension(identity): Extension<Identity>,
    team: Option<Extension<Arc<TeamState>>>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult {
    let body = json_object(body)?;
    let original = serde_json::Value::Object(body.clone());
    let mut issues = Vec::new();
    let mut take = |field: &str, max: usize| {
        required_str(&body, field, max)
            .map_err(|e| issues.push(e))
            .ok()
    };
    let package = take("package", MAX_PACKAGE);
    let project = take("project", MAX_HEADER);
    let justification = take("justification", 2000);
    let expires = take("expires_at", 64);
    let version = optional_str(&body, "version", MAX_VERSION)
        .map_err(|e| issues.push(e))
        .ok()
        .flatten();
    let (Some(package), Some(project), Some(justification), Some(expires)) =
        (package, project, justification, expires)
    else {
        return Err(ApiError::Invalid(issues));
    };
    let value_error = |field: &str, msg: String, input: &str| {
        FieldIssue::value_error(vec![json!("body"), json!(field)], msg, json!(input))
    };
    // The package name and version follow the evaluate rules.
    if let Err(e) =
        lex_align_engine::request::EvalRequest::parse(&package, version.as_deref(), None)
    {
        issues.push(value_error(e.field, e.message, &package));
    }
    if justification.trim().chars().count() < MIN_JUSTIFICATION {
        issues.push(value_error(
            "justification",
            format!("say why in at least {MIN_JUSTIFICATION} characters (it is shown in every verdict it changes)"),
            &justification,
        ));
    }
    let expires_at = match parse_expiry(&expires) {
        None => {
            issues.push(value_error(
                "expires_at",
                "not an RFC 3339 time or a date (e.g. 2027-01-31T18:00:00Z or 2027-01-31)".into(),
                &expires,
            ));
            None
        }
        Some(t) => match check_expiry(t) {
            Ok(()) => Some(t),
            Err(m) => {
                issues.push(value_error("expires_at", m, &expires));
                None
            }
        },
    };
    if !issues.is_empty() {
        return Err(ApiError::Invalid(issues));
    }
    let expires_at = expires_at.expect("validated above");
    if let Some(scope) = identity.project.as_deref().filter(|s| *s != project) {
        return Err(ApiError::detail(
            StatusCode::FORBIDDEN,
            format!("This key is scoped to project `{scope}` and cannot grant overrides for `{project}`."),
        ));
    }
    // A personal daemon: exceptions are the team's to grant (its role
    // check applies to this machine's key).
    if let Some(fw) = team.as_ref().and_then(|t| t.forwarder.clone()) {
        let new = NewForward {
            method: "POST".into(),
            path: "/api/v1/overrides".into(),
            body: original.to_string(),
            ..Default::default()
        };
        let expires = expires_at.format(&Rfc3339).unwrap_or_default();
        let resp = fw
            .submit(&app, new, |f| {
                (
                    StatusCode::ACCEPTED,
                    json!({"request_id": f.id, "status": "queued", "package": package,
                           "project": project, "version": version, "expires_at": expires}),
                )
            })
            .await;
        return Ok(resp);
    }
    let db = app.access_db.clone();
    let approver = identity.id.clone();
    let row = tokio::task::spawn_blocking(move || {
        db.grant_override(
            &package,
            &project,
            version.as_deref(),
            justification.trim(),
            &approver,
            expires_at,
        )
    })
    .await
    .map_err(db_error)?
    .map_err(db_error)?;
    app.refresh_access(true).await;
    tracing::info!(id = %row.id, package = %row.package, project = %row.project, approver = %row.approver, expires_at = %row.expires_at, "override granted");
    Ok(json_response(StatusCode::CREATED, &row))
}

/// Active overrides; `?all=true` also lists lapsed and revoked ones.
pub async fn list(State(app): State<Shared>, RawQuery(q): RawQuery) -> ApiResult {
    let pairs = query_pairs(q.as_deref())?;
    let all = matches!(query_get(&pairs, "all"), Some("1" | "true" | "yes"));
    let db = app.access_db.clone();
    let rows = tokio::task::spawn_blocking(move || {
        if all {
            db.all_overrides()
        } else {
            db.active_overrides()
        }
    })
    .await
    .map_err(db_error)?
    .map_err(db_error)?;
    Ok(json_response(StatusCode::OK, &json!({ "overrides": rows })))
}

pub async fn revoke(
    State(app): State<Shared>,
    Extension(identity): Extension<Identity>,
    team: Option<Extension<Arc<TeamState>>>,
    Path(id): Path<String>,
) -> ApiResult {
    if let Some(fw) = team.as_ref().and_then(|t| t.forwarder.clone()) {
        // The id is a path segment on the team too.
        let Some(seg) = Some(id.as_str()).filter(|s| {
            !s.is_empty()
                && s.len() <= 100
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        }) else {
            return Err(ApiError::detail(
                StatusCode::NOT_FOUND,
                format!("No active override with id {id}."),
            ));
        };
        let new = NewForward {
            method: "DELETE".into(),
            path: format!("/api/v1/overrides/{seg}"),
            body: "{}".into(),
            ..Default::default()
        };
        let resp = fw
            .submit(&app, new, |f| {
                (
                    StatusCode::ACCEPTED,
                    json!({"request_id": f.id, "id": id, "revoked": false, "status": "queued"}),
                )
            })
            .await;
        return Ok(resp);
    }
    let db = app.access_db.clone();
    let by = identity.id.clone();
    let key = id.clone();
    let done = tokio::task::spawn_blocking(move || db.revoke_override(&key, &by))
        .await
        .map_err(db_error)?
        .map_err(db_error)?;
    if !done {
        return Err(ApiError::detail(
            StatusCode::NOT_FOUND,
            format!("No active override with id {id}."),
        ));
    }
    app.refresh_access(true).await;
    tracing::info!(%id, by = %identity.id, "override revoked");
    Ok(json_response(
        StatusCode::OK,
        &json!({"id": id, "revoked": true, "revoked_by": identity.id}),
    ))
}
