//! `GET /evaluate`, `POST /evaluate/batch`, `POST /approval-requests`.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use lex_align_engine::request::{EvalRequest, FieldError};
use lex_align_engine::verdict::Decision;
use lex_align_store::NewApprovalRequest;
use serde_json::{json, Value};

use super::errors::json_response;
use super::{
    caller, json_object, optional_str, query_get, query_pairs, required_str, ApiError, ApiResult,
    FieldIssue, Shared, MAX_BATCH, MAX_PACKAGE, MAX_REQUIREMENT, MAX_VERSION,
};
use crate::service::ServiceError;

fn service_error(e: ServiceError) -> ApiError {
    tracing::error!("{e}");
    ApiError::detail(StatusCode::SERVICE_UNAVAILABLE, e.to_string())
}

fn field_issue(location: &str, e: &FieldError, input: &str) -> FieldIssue {
    FieldIssue::value_error(
        vec![json!(location), json!(e.field)],
        e.message.clone(),
        json!(input),
    )
}

/// Length limits, then the engine's grammar checks; every problem reported.
fn parse_request(
    location: &str,
    package: Option<&str>,
    version: Option<&str>,
    requirement: Option<&str>,
) -> Result<EvalRequest, Vec<FieldIssue>> {
    let requirement = requirement.filter(|r| !r.trim().is_empty());
    let mut issues = Vec::new();
    match package {
        None if requirement.is_none() => issues.push(FieldIssue::missing(&[location, "package"])),
        Some("") if requirement.is_none() => {
            issues.push(FieldIssue::too_short(&[location, "package"], ""))
        }
        Some(p) if p.chars().count() > MAX_PACKAGE => {
            issues.push(FieldIssue::too_long(&[location, "package"], p, MAX_PACKAGE))
        }
        _ => {}
    }
    if let Some(v) = version.filter(|v| v.chars().count() > MAX_VERSION) {
        issues.push(FieldIssue::too_long(&[location, "version"], v, MAX_VERSION));
    }
    if let Some(r) = requirement.filter(|r| r.chars().count() > MAX_REQUIREMENT) {
        issues.push(FieldIssue::too_long(
            &[location, "requirement"],
            r,
            MAX_REQUIREMENT,
        ));
    }
    if !issues.is_empty() {
        return Err(issues);
    }
    // A requirement alone: echo its name as written (`PyQt5`, not `pyqt5`).
    let package = package
        .filter(|p| !p.is_empty())
        .or_else(|| requirement.map(written_name));
    EvalRequest::parse(package.unwrap_or(""), version, requirement).map_err(|e| {
        let input = match e.field {
            "version" => version.unwrap_or(""),
            "requirement" => requirement.unwrap_or(""),
            _ => package.unwrap_or(""),
        };
        vec![field_issue(location, &e, input)]
    })
}

/// The leading distribution name of a PEP 508 string, as written.
fn written_name(requirement: &str) -> &str {
    let r = requirement.trim_start();
    let end = r
        .find(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
        .unwrap_or(r.len());
    &r[..end]
}

pub async fn evaluate(
    State(app): State<Shared>,
    axum::Extension(identity): axum::Extension<crate::auth::Identity>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> ApiResult {
    let ctx = caller(&headers, &identity, "api")?;
    let pairs = query_pairs(query.as_deref())?;
    let req = parse_request(
        "query",
        query_get(&pairs, "package"),
        query_get(&pairs, "version"),
        query_get(&pairs, "requirement"),
    )
    .map_err(ApiError::Invalid)?;
    let envelope = super::keys::envelope_requested(&headers, &pairs)?;
    let judged = app
        .evaluator
        .evaluate_shared(&req, &ctx)
        .await
        .map_err(service_error)?;
    if let Some(kind) = envelope {
        return Ok(super::keys::envelope_response(
            &app,
            kind,
            &judged.verdict,
            &judged.body,
            &ctx.project,
        ));
    }
    // The body was serialised once, when the verdict was made.
    Ok((
        [(
            axum::http::header::CONTENT_TYPE,
            axum::http::HeaderValue::from_static("application/json"),
        )],
        judged.body.clone(),
    )
        .into_response())
}

/// One batch item's input, for per-item errors.
fn batch_items(
    body: &serde_json::Map<String, Value>,
) -> Result<Vec<Result<EvalRequest, Value>>, ApiError> {
    let (key, list) = match (body.get("requirements"), body.get("packages")) {
        (Some(Value::Array(l)), _) => ("requirements", l),
        (None, Some(Value::Array(l))) => ("packages", l),
        (Some(other), _) | (None, Some(other)) => {
            let key = if body.contains_key("requirements") {
                "requirements"
            } else {
                "packages"
            };
            return Err(ApiError::invalid(FieldIssue {
                kind: "list_type",
                loc: vec![json!("body"), json!(key)],
                msg: "Input should be a valid list".into(),
                input: other.clone(),
                ctx: None,
            }));
        }
        (None, None) => {
            return Err(ApiError::invalid(FieldIssue::missing(&[
                "body",
                "requirements",
            ])))
        }
    };
    if list.len() > MAX_BATCH {
        return Err(ApiError::invalid(FieldIssue {
            kind: "too_long",
            loc: vec![json!("body"), json!(key)],
            msg: format!(
                "List should have at most {MAX_BATCH} items after validation, not {}",
                list.len()
            ),
            input: Value::Null,
            ctx: Some(Box::new(
                json!({"field_type": "List", "max_length": MAX_BATCH, "actual_length": list.len()}),
            )),
        }));
    }
    let item_error = |issues: Vec<FieldIssue>| json!({ "error": issues_json(issues) });
    let items = list
        .iter()
        .map(|item| match (key, item) {
            ("requirements", Value::String(r)) => {
                parse_request("body", None, None, Some(r)).map_err(item_error)
            }
            ("packages", Value::String(p)) => {
                parse_request("body", Some(p), None, None).map_err(item_error)
            }
            ("packages", Value::Object(o)) => {
                let fields = (
                    optional_str(o, "package", usize::MAX),
                    optional_str(o, "version", usize::MAX),
                    optional_str(o, "requirement", usize::MAX),
                );
                match fields {
                    (Ok(p), Ok(v), Ok(r)) => {
                        parse_request("body", p.as_deref(), v.as_deref(), r.as_deref())
                            .map_err(item_error)
                    }
                    (p, v, r) => Err(item_error(
                        [p.err(), v.err(), r.err()].into_iter().flatten().collect(),
                    )),
                }
            }
            (_, other) => Err(item_error(vec![FieldIssue::string_type(
                vec![json!("body")],
                other,
            )])),
        })
        .collect();
    Ok(items)
}

/// A per-item error object: the first issue's field and message, plus all.
fn issues_json(issues: Vec<FieldIssue>) -> Value {
    let first = issues.first();
    json!({
        "field": first.and_then(|i| i.loc.last().cloned()),
        "message": first.map(|i| i.msg.clone()),
        "detail": issues,
    })
}

pub async fn batch(
    State(app): State<Shared>,
    axum::Extension(identity): axum::Extension<crate::auth::Identity>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult {
    let ctx = caller(&headers, &identity, "batch")?;
    let envelope = super::keys::envelope_requested(&headers, &query_pairs(query.as_deref())?)?;
    let body = json_object(body)?;
    let items = batch_items(&body)?;
    let valid: Vec<EvalRequest> = items
        .iter()
        .filter_map(|i| i.as_ref().ok().cloned())
        .collect();
    let mut verdicts = app
        .evaluator
        .evaluate_batch(&valid, &ctx)
        .await
        .map_err(service_error)?
        .into_iter();
    let mut results = Vec::with_capacity(items.len());
    for item in items {
        match item {
            Ok(_) => match verdicts.next() {
                Some(v) if envelope.is_some() => results.push(super::keys::envelope_item(
                    &app,
                    envelope.unwrap_or(crate::signing::EnvelopeKind::Verdict),
                    &v,
                    &ctx.project,
                )),
                Some(v) => results.push(serde_json::to_value(v).unwrap_or(Value::Null)),
                None => results.push(Value::Null),
            },
            Err(e) => results.push(e),
        }
    }
    Ok(json_response(
        StatusCode::OK,
        &json!({ "results": results }),
    ))
}

/// Approval requests are records, never registry writes: a package the
/// policy denies is refused (409) and nothing is stored (W1). With a
/// reviewing proposer the request also becomes a pull request (queued).
pub async fn approval_request(
    State(app): State<Shared>,
    axum::Extension(identity): axum::Extension<crate::auth::Identity>,
    team: Option<axum::Extension<std::sync::Arc<crate::team::TeamState>>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult {
    let ctx = caller(&headers, &identity, "approval")?;
    let body = json_object(body)?;
    let package = required_str(&body, "package", MAX_PACKAGE);
    let rationale = required_str(&body, "rationale", 10_000);
    let (package, rationale) = match (package, rationale) {
        (Ok(p), Ok(r)) => (p, r),
        (p, r) => {
            return Err(ApiError::Invalid(
                [p.err(), r.err()].into_iter().flatten().collect(),
            ))
        }
    };
    let req = parse_request("body", Some(&package), None, None).map_err(ApiError::Invalid)?;

    let verdict = app.evaluator.judge(&req).await;
    if verdict.verdict == Decision::Denied {
        return Err(ApiError::detail(StatusCode::CONFLICT, verdict.reason));
    }

    // A personal daemon: the request is the team's to review.
    if let Some(fw) = team.as_ref().and_then(|t| t.forwarder.clone()) {
        let new = crate::team::forward::new_forward(
            "POST",
            "/api/v1/approval-requests",
            &ctx,
            &json!({"package": package, "rationale": rationale}),
        );
        let resp = fw
            .submit(&app, new, |f| {
                (
                    StatusCode::ACCEPTED,
                    json!({
                        "request_id": f.id,
                        "status": lex_align_store::PENDING_REVIEW,
                        "package": package,
                        "project": ctx.project,
                        "agent_model": ctx.agent_model,
                        "agent_version": ctx.agent_version,
                        "proposal": {"backend": "team", "status": "queued"},
                    }),
                )
            })
            .await;
        return Ok(resp);
    }

    let stored = app
        .store
        .upsert_approval_request(NewApprovalRequest {
            project: ctx.project.clone(),
            requester: ctx.requester.clone(),
            package: package.clone(),
            rationale,
            agent_model: ctx.agent_model.clone(),
            agent_version: ctx.agent_version.clone(),
            last_audit_id: None,
        })
        .await
        .map_err(|e| {
            ApiError::detail(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("could not store the request: {e}"),
            )
        })?;

    // A reviewing proposer (a pull request) gets what is still open and not
    // in the registry yet; a decided request or a listed package stays a
    // record. Never a write to the live registry (W1).
    let mut proposal = "recorded";
    if let Some(queue) = &app.reviews {
        if stored.status == lex_align_store::PENDING_REVIEW && verdict.registry_status.is_none() {
            let job = crate::proposer::review::ReviewJob::from(&stored);
            match queue.enqueue(job).await {
                Ok(()) => proposal = crate::proposer::review::QUEUED,
                Err(e) => {
                    tracing::warn!(package = %package, "approval request not queued for review: {e}")
                }
            }
        }
    }
    let body = json!({
        "request_id": stored.id,
        "status": stored.status,
        "package": package,
        "project": ctx.project,
        "agent_model": ctx.agent_model,
        "agent_version": ctx.agent_version,
        "proposal": {"backend": app.proposer.class_name(), "status": proposal},
    });
    Ok(json_response(StatusCode::ACCEPTED, &body).into_response())
}
