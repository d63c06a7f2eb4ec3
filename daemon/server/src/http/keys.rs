//! `GET /api/v1/keys` and signed verdicts (DSSE envelopes) on request.

use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use lex_align_engine::verdict::Verdict;
use serde_json::{json, Value};

use super::errors::json_response;
use super::{query_get, ApiError, FieldIssue, Shared};
use crate::signing::{EnvelopeKind, VerdictContext, DSSE_MEDIA_TYPE};

/// The daemon's public keys: `{"keys": [{"key_id", "alg", "public_key"}]}`.
pub async fn keys(State(app): State<Shared>) -> Response {
    json_response(StatusCode::OK, &app.signer.keys_document())
}

/// Whether the caller asked for a signed verdict, and in which form:
/// `?envelope=dsse` or `Accept: application/vnd.dsse.envelope.v1+json`,
/// plus `format=vsa` for the in-toto / SLSA VSA payload. 422 on values it
/// does not know, before anything is evaluated.
pub fn envelope_requested(
    headers: &HeaderMap,
    pairs: &[(String, String)],
) -> Result<Option<EnvelopeKind>, ApiError> {
    let by_query = match query_get(pairs, "envelope") {
        None | Some("") => false,
        Some(v) if v.eq_ignore_ascii_case("dsse") => true,
        Some(v) => {
            return Err(ApiError::invalid(FieldIssue::value_error(
                vec![json!("query"), json!("envelope")],
                "envelope must be `dsse`".to_string(),
                json!(v),
            )))
        }
    };
    let by_accept = headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|m| {
            m.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .eq_ignore_ascii_case(DSSE_MEDIA_TYPE)
        });
    let vsa = match query_get(pairs, "format") {
        None | Some("") => false,
        Some(v) if v.eq_ignore_ascii_case("verdict") => false,
        Some(v) if v.eq_ignore_ascii_case("vsa") => true,
        Some(v) => {
            return Err(ApiError::invalid(FieldIssue::value_error(
                vec![json!("query"), json!("format")],
                "format must be `verdict` or `vsa`".to_string(),
                json!(v),
            )))
        }
    };
    if !(by_query || by_accept) {
        if vsa {
            return Err(ApiError::invalid(FieldIssue::value_error(
                vec![json!("query"), json!("format")],
                format!(
                    "format=vsa is a signed form: add envelope=dsse (or Accept: {DSSE_MEDIA_TYPE})"
                ),
                json!("vsa"),
            )));
        }
        return Ok(None);
    }
    Ok(Some(if vsa {
        EnvelopeKind::Vsa
    } else {
        EnvelopeKind::Verdict
    }))
}

/// The envelope of one verdict (`verdict_json` is its serialisation).
pub fn envelope_of(
    app: &Shared,
    kind: EnvelopeKind,
    verdict: &Verdict,
    verdict_json: &[u8],
    project: &str,
) -> crate::signing::Envelope {
    let loaded = app.registry.current();
    let ctx = VerdictContext {
        project,
        registry_version: &loaded.registry.version,
        registry_sha256: loaded.hash.as_deref(),
    };
    app.signer.sign_verdict(
        kind,
        verdict,
        verdict_json,
        &ctx,
        app.config.signing.verdict_ttl,
    )
}

/// `GET /evaluate` answered as a DSSE envelope.
pub fn envelope_response(
    app: &Shared,
    kind: EnvelopeKind,
    verdict: &Verdict,
    verdict_json: &[u8],
    project: &str,
) -> Response {
    let env = envelope_of(app, kind, verdict, verdict_json, project);
    let body = serde_json::to_vec(&env).expect("an envelope serialises");
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static(DSSE_MEDIA_TYPE),
        )],
        body,
    )
        .into_response()
}

/// One batch result as an envelope.
pub fn envelope_item(app: &Shared, kind: EnvelopeKind, verdict: &Verdict, project: &str) -> Value {
    let json = serde_json::to_vec(verdict).expect("a verdict serialises");
    serde_json::to_value(envelope_of(app, kind, verdict, &json, project)).unwrap_or(Value::Null)
}
