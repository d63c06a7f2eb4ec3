//! Registry routes: view, triage queue, operator proposals, YAML import,
//! reload and the GitHub-style webhook.

use std::collections::HashSet;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use hmac::{Hmac, Mac};
use lex_align_engine::registry::{validate_rule, Registry};
use serde_json::{json, Map, Value};
use sha2::Sha256;

use super::errors::json_response;
use super::{
    caller, json_object, optional_str, required_str, ApiError, ApiResult, Shared, MAX_PACKAGE,
};
use crate::proposer::ProposalContext;
use crate::registry_state::ReloadOutcome;

// `GET /api/v1/registry` (with ETag and generation): `team/server.rs`.

pub async fn pending(State(app): State<Shared>) -> ApiResult {
    let names: HashSet<String> = app
        .registry
        .current()
        .registry
        .packages
        .keys()
        .cloned()
        .collect();
    let value = super::misc::on_store(&app, move |s| s.pending(&names)).await?;
    Ok(json_response(StatusCode::OK, &value))
}

/// Operator proposal: validate the rule, run the proposer synchronously,
/// reload at once when it wrote the live file.
pub async fn proposals(
    State(app): State<Shared>,
    axum::Extension(identity): axum::Extension<crate::auth::Identity>,
    team: Option<axum::Extension<std::sync::Arc<crate::team::TeamState>>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult {
    let ctx = caller(&headers, &identity, "operator")?;
    let body = json_object(body)?;
    let mut issues = Vec::new();
    let name = required_str(&body, "name", MAX_PACKAGE)
        .map_err(|e| issues.push(e))
        .ok();
    let status = required_str(&body, "status", 100)
        .map_err(|e| issues.push(e))
        .ok();
    let mut optional = Map::new();
    for field in ["reason", "replacement", "min_version", "max_version"] {
        match optional_str(&body, field, 2000) {
            // Only truthy optional fields go into the rule (as the original).
            Ok(Some(v)) if !v.is_empty() => {
                optional.insert(field.to_string(), Value::String(v));
            }
            Ok(_) => {}
            Err(e) => issues.push(e),
        }
    }
    let rationale = optional_str(&body, "rationale", 10_000)
        .map_err(|e| issues.push(e))
        .ok()
        .flatten();
    let (Some(name), Some(status)) = (name, status) else {
        return Err(ApiError::Invalid(issues));
    };
    if !issues.is_empty() {
        return Err(ApiError::Invalid(issues));
    }
    let mut rule_json = Map::new();
    rule_json.insert("status".into(), Value::String(status));
    rule_json.extend(optional);
    let rule = validate_rule(&name, &Value::Object(rule_json))
        .map_err(|e| ApiError::detail(StatusCode::BAD_REQUEST, e.message))?;

    // A personal daemon: the registry is the team's; the team's proposer
    // runs (with this machine's key, so its role decides).
    if let Some(fw) = team.as_ref().and_then(|t| t.forwarder.clone()) {
        let new = crate::team::forward::new_forward(
            "POST",
            "/api/v1/registry/proposals",
            &ctx,
            &Value::Object(body),
        );
        let resp = fw
            .submit(&app, new, |f| {
                (
                    StatusCode::ACCEPTED,
                    json!({
                        "request_id": f.id,
                        "backend": "team",
                        "status": "queued",
                        "url": null,
                        "branch": null,
                        "commit_sha": null,
                    }),
                )
            })
            .await;
        return Ok(resp);
    }

    let context = ProposalContext {
        source: "operator".into(),
        project: ctx.project.clone(),
        requester: ctx.requester.clone(),
        rationale,
        agent_model: ctx.agent_model.clone(),
        agent_version: ctx.agent_version.clone(),
    };
    let proposer = app.proposer.clone();
    let (name, status) = (rule.name.clone(), rule.status.as_str().to_string());
    let outcome = tokio::task::spawn_blocking(move || proposer.propose(&rule, &context))
        .await
        .map_err(|e| {
            ApiError::detail(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("proposer crashed: {e}"),
            )
        })?;
    let result = match outcome {
        Ok(r) => r,
        Err(e) => {
            // Who tried to change policy and why it did not happen belongs
            // in the chained log, not only in a warning line.
            let row = failed_proposal_row(&ctx, &name, &status, &e.0);
            if let Err(store_err) = app.store.append_audit(row).await {
                tracing::error!(error = %store_err, "failed proposal not audited");
            }
            return Err(ApiError::detail(StatusCode::BAD_GATEWAY, e.0));
        }
    };
    let mut result = result;
    if app.proposer.writes_registry() {
        if let Err(e) = app.registry.reload("proposal").await {
            result.detail = format!("{} The reload failed: {e}", result.detail);
        }
    }
    Ok(json_response(StatusCode::OK, &result))
}

pub async fn parse_yaml(
    State(_app): State<Shared>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult {
    let body = json_object(body)?;
    let text = required_str(&body, "yaml_text", usize::MAX).map_err(ApiError::invalid)?;
    let registry = tokio::task::spawn_blocking(move || Registry::from_yaml(&text))
        .await
        .map_err(|e| ApiError::detail(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?
        .map_err(|e| {
            // The original's wording for syntax errors.
            let detail = match e.located().strip_prefix("invalid YAML: ") {
                Some(rest) => format!("YAML parse error: {rest}"),
                None => e.located(),
            };
            ApiError::detail(StatusCode::BAD_REQUEST, detail)
        })?;
    Ok(json_response(StatusCode::OK, &registry.to_compiled_json()))
}

pub async fn reload(State(app): State<Shared>) -> ApiResult {
    match app.registry.reload("api").await {
        Ok(outcome) => Ok(json_response(StatusCode::OK, &outcome)),
        Err(detail) => Err(ApiError::detail(StatusCode::CONFLICT, detail)),
    }
}

/// `sha256=<lowercase hex>` of HMAC-SHA256(secret, body), constant-time.
pub fn signature_valid(secret: &str, body: &[u8], header: Option<&str>) -> bool {
    let Some(hex_sig) = header.and_then(|h| h.strip_prefix("sha256=")) else {
        return false;
    };
    if hex_sig.len() != 64
        || !hex_sig
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        return false;
    }
    let Ok(sig) = hex::decode(hex_sig) else {
        return false;
    };
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret.as_bytes()) else {
        return false;
    };
    mac.update(body);
    mac.verify_slice(&sig).is_ok()
}

pub async fn webhook(
    State(app): State<Shared>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult {
    let Some(secret) = app.config.webhook_secret.as_deref() else {
        return Err(ApiError::detail(
            StatusCode::SERVICE_UNAVAILABLE,
            "Registry webhook is disabled: set REGISTRY_WEBHOOK_SECRET to enable it.",
        ));
    };
    let body = body.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::detail(StatusCode::PAYLOAD_TOO_LARGE, "Webhook body is too large.")
        } else {
            ApiError::detail(
                StatusCode::BAD_REQUEST,
                format!("Could not read the webhook body: {e}"),
            )
        }
    })?;
    let sig = headers
        .get("x-hub-signature-256")
        .and_then(|v| v.to_str().ok());
    if !signature_valid(secret, &body, sig) {
        return Err(ApiError::detail(
            StatusCode::UNAUTHORIZED,
            "Invalid webhook signature.",
        ));
    }
    // A signed body can be captured and sent again: each delivery counts once.
    let Some(delivery) = headers
        .get("x-github-delivery")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|d| !d.is_empty() && d.len() <= 200)
        .map(str::to_string)
    else {
        return Err(ApiError::detail(
            StatusCode::BAD_REQUEST,
            "X-GitHub-Delivery header required (each delivery is accepted once).",
        ));
    };
    let db = app.access_db.clone();
    let fresh = tokio::task::spawn_blocking(move || db.record_delivery(&delivery))
        .await
        .map_err(|e| ApiError::detail(StatusCode::SERVICE_UNAVAILABLE, e.to_string()))?
        .map_err(|e| {
            ApiError::detail(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("cannot record the webhook delivery: {e}"),
            )
        })?;
    if !fresh {
        return Err(ApiError::detail(
            StatusCode::CONFLICT,
            "This webhook delivery was already received; a replay changes nothing.",
        ));
    }
    let event = headers
        .get("x-github-event")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    match event.as_deref() {
        Some("ping") => {
            return Ok(json_response(
                StatusCode::OK,
                &json!({"ok": true, "event": "ping"}),
            ))
        }
        Some("pull_request") => {}
        _ => {
            return Ok(json_response(
                StatusCode::OK,
                &json!({"ok": true, "event": event, "ignored": true}),
            ))
        }
    }
    let payload: Value = serde_json::from_slice(&body).map_err(|e| {
        ApiError::detail(
            StatusCode::BAD_REQUEST,
            format!("Webhook body is not JSON: {e}"),
        )
    })?;
    let Some(payload) = payload.as_object() else {
        return Err(ApiError::detail(
            StatusCode::BAD_REQUEST,
            "Webhook body is not JSON: expected an object",
        ));
    };
    let action = payload.get("action").cloned().unwrap_or(Value::Null);
    let pr = payload.get("pull_request");
    let merged = pr.and_then(|p| p.get("merged")).is_some_and(truthy);
    if action.as_str() != Some("closed") || !merged {
        return Ok(json_response(
            StatusCode::OK,
            &json!({"ok": true, "event": "pull_request", "action": action, "ignored": true}),
        ));
    }
    let base = pr
        .and_then(|p| p.get("base"))
        .and_then(|b| b.get("ref"))
        .and_then(Value::as_str);
    if base != Some(app.config.default_branch.as_str()) {
        return Ok(json_response(
            StatusCode::OK,
            &json!({
                "ok": true, "event": "pull_request", "action": action, "ignored": true,
                "detail": format!(
                    "base branch {} is not the registry's default branch {} (REGISTRY_DEFAULT_BRANCH)",
                    base.unwrap_or("<none>"), app.config.default_branch
                ),
            }),
        ));
    }
    let outcome = match app.registry.reload("webhook").await {
        Ok(o) => o,
        Err(detail) => {
            let current = app.registry.current();
            ReloadOutcome {
                ok: false,
                previous_version: Some(current.registry.version.clone()),
                new_version: current.registry.version.clone(),
                package_count: current.registry.packages.len(),
                added_packages: 0,
                approved_requests: 0,
                detail,
                changed: false,
            }
        }
    };
    Ok(json_response(
        StatusCode::OK,
        &json!({
            "ok": outcome.ok,
            "event": "pull_request.merged",
            "previous_version": outcome.previous_version,
            "new_version": outcome.new_version,
            "package_count": outcome.package_count,
            "added_packages": outcome.added_packages,
            "approved_requests": outcome.approved_requests,
            "detail": outcome.detail,
        }),
    ))
}

/// Python truthiness of a JSON value.
fn truthy(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
    }
}

/// The audit row of an operator proposal the proposer refused or failed:
/// verdict `PROPOSAL_FAILED`, category `proposal`, the error as the reason
/// (proposers scrub credentials from their errors).
fn failed_proposal_row(
    ctx: &crate::service::CallContext,
    package: &str,
    status: &str,
    error: &str,
) -> lex_align_store::AuditRow {
    lex_align_store::AuditRow {
        project: ctx.project.clone(),
        requester: ctx.requester.clone(),
        package: package.to_string(),
        canonical: lex_align_engine::name::canonicalize(package),
        version: None,
        requirement: None,
        resolved_version: None,
        verdict: "PROPOSAL_FAILED".into(),
        denial_category: "proposal".into(),
        reason: Some(format!(
            "Proposal of `{package}` as {status} failed: {error}"
        )),
        license: None,
        cve_ids: Vec::new(),
        max_cvss: None,
        registry_status: None,
        agent_model: ctx.agent_model.clone(),
        agent_version: ctx.agent_version.clone(),
        source: "proposal".into(),
        auth_method: Some(ctx.auth_method.clone()),
    }
}
