//! Error bodies of the wire contract: `{"detail": "<string>"}` for HTTP
//! errors and the pydantic-style 422 list for validation errors.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::{json, Value};

/// One pydantic-v2-style validation error item.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct FieldIssue {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub loc: Vec<Value>,
    pub msg: String,
    pub input: Value,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ctx: Option<Box<Value>>,
}

impl FieldIssue {
    pub fn missing(loc: &[&str]) -> FieldIssue {
        FieldIssue {
            kind: "missing",
            loc: loc.iter().map(|s| json!(s)).collect(),
            msg: "Field required".into(),
            input: Value::Null,
            ctx: None,
        }
    }

    pub fn too_short(loc: &[&str], input: &str) -> FieldIssue {
        FieldIssue {
            kind: "string_too_short",
            loc: loc.iter().map(|s| json!(s)).collect(),
            msg: "String should have at least 1 character".into(),
            input: json!(input),
            ctx: Some(Box::new(json!({"min_length": 1}))),
        }
    }

    pub fn too_long(loc: &[&str], input: &str, max: usize) -> FieldIssue {
        FieldIssue {
            kind: "string_too_long",
            loc: loc.iter().map(|s| json!(s)).collect(),
            msg: format!("String should have at most {max} characters"),
            // Do not echo megabytes back.
            input: json!(truncate(input, 256)),
            ctx: Some(Box::new(json!({"max_length": max}))),
        }
    }

    pub fn string_type(loc: Vec<Value>, input: &Value) -> FieldIssue {
        FieldIssue {
            kind: "string_type",
            loc,
            msg: "Input should be a valid string".into(),
            input: input.clone(),
            ctx: None,
        }
    }

    pub fn value_error(loc: Vec<Value>, msg: impl Into<String>, input: Value) -> FieldIssue {
        let msg = msg.into();
        FieldIssue {
            kind: "value_error",
            loc,
            msg: format!("Value error, {msg}"),
            input,
            ctx: Some(Box::new(json!({ "error": msg }))),
        }
    }
}

pub fn truncate(s: &str, max_chars: usize) -> String {
    match s.char_indices().nth(max_chars) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
    }
}

#[derive(Debug)]
pub enum ApiError {
    /// `{"detail": "<string>"}` with this status.
    Detail(StatusCode, String),
    /// 422 with the validation list.
    Invalid(Vec<FieldIssue>),
}

impl ApiError {
    pub fn detail(status: StatusCode, detail: impl Into<String>) -> ApiError {
        ApiError::Detail(status, detail.into())
    }
    pub fn invalid(issue: FieldIssue) -> ApiError {
        ApiError::Invalid(vec![issue])
    }
}

pub fn json_response(status: StatusCode, body: &impl Serialize) -> Response {
    match serde_json::to_vec(body) {
        Ok(bytes) => {
            let mut r = (status, bytes).into_response();
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            r
        }
        Err(e) => {
            tracing::error!("response serialisation failed: {e}");
            (StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error").into_response()
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match self {
            ApiError::Detail(status, detail) => json_response(status, &json!({ "detail": detail })),
            ApiError::Invalid(issues) => json_response(
                StatusCode::UNPROCESSABLE_ENTITY,
                &json!({ "detail": issues }),
            ),
        }
    }
}

pub type ApiResult = Result<Response, ApiError>;
