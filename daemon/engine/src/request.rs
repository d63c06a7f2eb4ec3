//! Validated evaluation input. Bad input is rejected here, before any
//! upstream call, with a field-level message.

#[derive(Debug, Clone, PartialEq)]
pub struct EvalRequest {
    /// As the caller wrote it (echoed in the verdict and the audit row).
    pub package: String,
    /// PEP 503 canonical name (registry key, cache key, upstream URLs).
    pub canonical: String,
    /// Exact version, validated as PEP 440.
    pub version: Option<String>,
    /// Full PEP 508 requirement when one was given.
    pub requirement: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct FieldError {
    /// `package`, `version` or `requirement`.
    pub field: &'static str,
    pub message: String,
}

impl EvalRequest {
    /// `package` must match the PEP 508 name grammar (≤ 200 chars); `version`
    /// must be PEP 440; `requirement` must be PEP 508 and name the same package
    /// (when `package` is empty/omitted the requirement's name is used).
    pub fn parse(package: &str, version: Option<&str>, requirement: Option<&str>) -> Result<Self, FieldError> {
        let _ = (package, version, requirement);
        todo!("engine helper")
    }
}
