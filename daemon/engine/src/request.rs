//! Validated evaluation input. Bad input is rejected here, before any
//! upstream call, with a field-level message.

use std::str::FromStr;

use pep440_rs::{Operator, Version, VersionSpecifiers};
use pep508_rs::{Requirement, VersionOrUrl};
use time::OffsetDateTime;

use crate::name;

/// Longest `version` we accept (real versions are a few dozen characters).
pub const MAX_VERSION_LEN: usize = 128;
/// Longest `requirement` we accept.
pub const MAX_REQUIREMENT_LEN: usize = 1024;

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
    /// The instant the request is judged at (registry exceptions lapse by
    /// it). [`EvalRequest::parse`] sets the current time; tests may move it.
    pub at: OffsetDateTime,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct FieldError {
    /// `package`, `version` or `requirement`.
    pub field: &'static str,
    pub message: String,
}

fn field_err(field: &'static str, message: impl Into<String>) -> FieldError {
    FieldError {
        field,
        message: message.into(),
    }
}

impl EvalRequest {
    /// `package` must match the PEP 508 name grammar (≤ 200 chars); `version`
    /// must be PEP 440; `requirement` must be PEP 508 and name the same package
    /// (when `package` is empty/omitted the requirement's name is used).
    ///
    /// An empty `version` counts as absent. A direct reference
    /// (`pkg @ https://…`) is refused: nothing about it can be judged from an
    /// index. The stored requirement is pep508's normalised rendering.
    pub fn parse(
        package: &str,
        version: Option<&str>,
        requirement: Option<&str>,
    ) -> Result<Self, FieldError> {
        let package = package.trim();
        let requirement = requirement.map(str::trim).filter(|r| !r.is_empty());

        let parsed = match requirement {
            Some(text) => Some(parse_requirement(text)?),
            None => None,
        };

        let package = match (&parsed, package.is_empty()) {
            (None, true) => return Err(field_err("package", "package is required")),
            (Some(req), true) => {
                // The same cap as a `package` given on its own.
                name::validate(req.name.as_ref()).map_err(|m| field_err("requirement", m))?;
                req.name.to_string()
            }
            (_, false) => {
                name::validate(package).map_err(|m| field_err("package", m))?;
                package.to_string()
            }
        };
        let canonical = name::canonicalize(&package);
        if let Some(req) = &parsed {
            if req.name.as_ref() != canonical {
                return Err(field_err(
                    "requirement",
                    format!(
                        "requirement names `{}` but package is `{package}`; they must be the same package",
                        req.name
                    ),
                ));
            }
        }

        let version = match version.map(str::trim).filter(|v| !v.is_empty()) {
            None => None,
            Some(v) => {
                if v.len() > MAX_VERSION_LEN {
                    return Err(field_err(
                        "version",
                        format!(
                            "version is {} characters long; at most {MAX_VERSION_LEN} are allowed",
                            v.len()
                        ),
                    ));
                }
                Version::from_str(v).map_err(|e| {
                    field_err("version", format!("invalid PEP 440 version {v:?}: {e}"))
                })?;
                Some(v.to_string())
            }
        };

        Ok(EvalRequest {
            package,
            canonical,
            version,
            requirement: parsed.map(|r| r.to_string()),
            at: OffsetDateTime::now_utc(),
        })
    }

    /// The requirement re-parsed (it was validated by [`EvalRequest::parse`]).
    pub fn parsed_requirement(&self) -> Option<Requirement> {
        self.requirement
            .as_deref()
            .and_then(|r| lex_align_manifest::parse_requirement(r).ok())
    }

    /// The requirement's version specifiers; `None` without a requirement or
    /// when it has none (`pkg`, `pkg[extra]`).
    pub fn specifiers(&self) -> Option<VersionSpecifiers> {
        match self.parsed_requirement()?.version_or_url {
            Some(VersionOrUrl::VersionSpecifier(s)) if !s.is_empty() => Some(s),
            _ => None,
        }
    }

    /// The exact version being asked about: `version`, else a requirement of
    /// the form `pkg==X` / `pkg===X` (no wildcard).
    pub fn pinned_version(&self) -> Option<String> {
        if let Some(v) = &self.version {
            return Some(v.clone());
        }
        let specs = self.specifiers()?;
        let mut iter = specs.iter();
        let only = iter.next()?;
        if iter.next().is_some() {
            return None;
        }
        match only.operator() {
            Operator::Equal | Operator::ExactEqual => Some(only.version().to_string()),
            _ => None,
        }
    }
}

fn parse_requirement(text: &str) -> Result<Requirement, FieldError> {
    if text.len() > MAX_REQUIREMENT_LEN {
        return Err(field_err(
            "requirement",
            format!(
                "requirement is {} characters long; at most {MAX_REQUIREMENT_LEN} are allowed",
                text.len()
            ),
        ));
    }
    let req = lex_align_manifest::parse_requirement(text).map_err(|e| {
        field_err(
            "requirement",
            format!("invalid PEP 508 requirement {text:?}: {e}"),
        )
    })?;
    if matches!(req.version_or_url, Some(VersionOrUrl::Url(_))) {
        return Err(field_err(
            "requirement",
            format!(
                "direct reference requirements (`name @ url`) cannot be judged from the package index: {text:?}"
            ),
        ));
    }
    Ok(req)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_package() {
        let r = EvalRequest::parse("PyYAML", None, None).unwrap();
        assert_eq!(r.package, "PyYAML");
        assert_eq!(r.canonical, "pyyaml");
        assert_eq!(r.version, None);
        assert_eq!(r.requirement, None);
    }

    #[test]
    fn empty_version_is_absent_and_bad_version_rejected() {
        assert_eq!(
            EvalRequest::parse("httpx", Some(""), None).unwrap().version,
            None
        );
        assert_eq!(
            EvalRequest::parse("httpx", Some("1.0rc1"), None)
                .unwrap()
                .version
                .as_deref(),
            Some("1.0rc1")
        );
        let e = EvalRequest::parse("httpx", Some("not a version"), None).unwrap_err();
        assert_eq!(e.field, "version");
        assert!(e.message.contains("PEP 440"), "{e}");
        let e = EvalRequest::parse("httpx", Some(&"1".repeat(200)), None).unwrap_err();
        assert_eq!(e.field, "version");
    }

    #[test]
    fn bad_names_rejected() {
        let e = EvalRequest::parse("foo/../bar", None, None).unwrap_err();
        assert_eq!(e.field, "package");
        let e = EvalRequest::parse("", None, None).unwrap_err();
        assert_eq!(e.field, "package");
    }

    #[test]
    fn requirement_is_normalised_and_supplies_the_name() {
        let r = EvalRequest::parse("", None, Some("Cryptography >= 41 , <44")).unwrap();
        assert_eq!(r.package, "cryptography");
        assert_eq!(r.requirement.as_deref(), Some("cryptography>=41,<44"));
        assert_eq!(r.specifiers().unwrap().to_string(), ">=41, <44");
        assert_eq!(r.pinned_version(), None);

        let r =
            EvalRequest::parse("python_dateutil", None, Some("python-dateutil[x]==2.9.0")).unwrap();
        assert_eq!(r.pinned_version().as_deref(), Some("2.9.0"));
        assert_eq!(r.canonical, "python-dateutil");
    }

    #[test]
    fn requirement_must_match_package_and_not_be_a_url() {
        let e = EvalRequest::parse("httpx", None, Some("requests>=2")).unwrap_err();
        assert_eq!(e.field, "requirement");
        assert!(e.message.contains("same package"));
        let e = EvalRequest::parse(
            "httpx",
            None,
            Some("httpx @ https://example.invalid/httpx.whl"),
        )
        .unwrap_err();
        assert_eq!(e.field, "requirement");
        assert!(e.message.contains("direct reference"));
        let e = EvalRequest::parse("httpx", None, Some("httpx >= = 1")).unwrap_err();
        assert_eq!(e.field, "requirement");
    }

    #[test]
    fn wildcard_pin_is_not_exact() {
        let r = EvalRequest::parse("django", None, Some("django==4.2.*")).unwrap();
        assert_eq!(r.pinned_version(), None);
    }
}
