//! The plugin's configuration (`oidc.json` beside the library), checked once
//! at `configure`: every mistake is a startup error, never a lax default.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;

/// Largest accepted clock leeway: the validator computes `now - leeway`, and
/// a leeway of hours would quietly accept long-expired tokens.
pub const MAX_LEEWAY_S: u64 = 600;

/// Where the signing keys come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JwksSource {
    File(PathBuf),
    Url(String),
}

#[derive(Debug, Clone)]
pub struct OidcConfig {
    pub issuer: String,
    /// Accepted audiences; a token is accepted when its `aud` names one.
    pub audience: Vec<String>,
    pub jwks: JwksSource,
    pub groups_claim: String,
    pub email_claim: String,
    pub id_claim: String,
    pub leeway_s: u64,
    /// Least time between two key-set fetches caused by an unknown `kid`.
    pub jwks_refresh_min: Duration,
    /// Age after which the key set is fetched again, so a key the provider
    /// withdrew stops being trusted.
    pub jwks_max_age: Duration,
    pub http_timeout: Duration,
}

/// The JSON shape; unknown keys are refused so a typo cannot silently drop a check.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    issuer: Option<String>,
    audience: Option<Value>,
    jwks: Option<String>,
    groups_claim: Option<String>,
    email_claim: Option<String>,
    id_claim: Option<String>,
    leeway_s: Option<u64>,
    jwks_refresh_min_s: Option<u64>,
    jwks_max_age_s: Option<u64>,
    http_timeout_ms: Option<u64>,
}

impl OidcConfig {
    pub fn from_json(config: &Value) -> Result<OidcConfig, String> {
        let raw: Raw = serde_json::from_value(config.clone())
            .map_err(|e| format!("invalid oidc configuration: {e}"))?;
        let issuer = non_empty(raw.issuer, "issuer")?;
        let audience = match raw.audience {
            None => return Err(missing("audience")),
            Some(Value::String(s)) if !s.trim().is_empty() => vec![s],
            Some(Value::Array(items)) if !items.is_empty() => items
                .into_iter()
                .map(|v| match v {
                    Value::String(s) if !s.trim().is_empty() => Ok(s),
                    _ => Err("`audience` entries must be non-empty strings".to_string()),
                })
                .collect::<Result<_, _>>()?,
            Some(_) => {
                return Err("`audience` must be a non-empty string or array of strings".into())
            }
        };
        let jwks = parse_jwks_source(&non_empty(raw.jwks, "jwks")?)?;
        let leeway_s = raw.leeway_s.unwrap_or(30);
        if leeway_s > MAX_LEEWAY_S {
            return Err(format!(
                "`leeway_s` is {leeway_s}; at most {MAX_LEEWAY_S} seconds is accepted"
            ));
        }
        let timeout_ms = raw.http_timeout_ms.unwrap_or(5000);
        if timeout_ms == 0 {
            return Err("`http_timeout_ms` must be above 0".into());
        }
        Ok(OidcConfig {
            issuer,
            audience,
            jwks,
            groups_claim: claim_name(raw.groups_claim, "groups_claim", "groups")?,
            email_claim: claim_name(raw.email_claim, "email_claim", "email")?,
            id_claim: claim_name(raw.id_claim, "id_claim", "sub")?,
            leeway_s,
            jwks_refresh_min: Duration::from_secs(raw.jwks_refresh_min_s.unwrap_or(60)),
            jwks_max_age: Duration::from_secs(raw.jwks_max_age_s.unwrap_or(3600)),
            http_timeout: Duration::from_millis(timeout_ms),
        })
    }
}

fn missing(key: &str) -> String {
    format!("`{key}` is required in the oidc configuration")
}

fn non_empty(v: Option<String>, key: &str) -> Result<String, String> {
    match v {
        Some(s) if !s.trim().is_empty() => Ok(s),
        _ => Err(missing(key)),
    }
}

fn claim_name(v: Option<String>, key: &str, default: &str) -> Result<String, String> {
    match v {
        None => Ok(default.to_string()),
        Some(s) if !s.trim().is_empty() => Ok(s),
        Some(_) => Err(format!("`{key}` must not be empty")),
    }
}

/// An absolute path, or an http(s) URL. Plain http only to this machine:
/// whoever can alter the key set on the wire can mint any identity.
pub fn parse_jwks_source(s: &str) -> Result<JwksSource, String> {
    let s = s.trim();
    if let Some(rest) = s
        .strip_prefix("https://")
        .or_else(|| s.strip_prefix("http://"))
    {
        if rest.is_empty() {
            return Err("`jwks` URL has no host".into());
        }
        if s.starts_with("http://") && !is_loopback_authority(rest) {
            return Err(
                "`jwks` must be an https URL (plain http is accepted only for 127.0.0.1, ::1 or localhost)"
                    .into(),
            );
        }
        return Ok(JwksSource::Url(s.to_string()));
    }
    if s.contains("://") {
        return Err("`jwks` must be an absolute file path or an http(s) URL".into());
    }
    let path = PathBuf::from(s);
    if !path.is_absolute() {
        // The daemon's working directory is nobody's choice; refuse to guess.
        return Err(format!("`jwks` path {s:?} must be absolute"));
    }
    Ok(JwksSource::File(path))
}

/// True when the URL's host (after `scheme://`) is a loopback name or address.
pub fn is_loopback_authority(rest: &str) -> bool {
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host_port = authority.rsplit('@').next().unwrap_or("");
    let host = if let Some(v6) = host_port.strip_prefix('[') {
        v6.split(']').next().unwrap_or("")
    } else {
        host_port.split(':').next().unwrap_or("")
    };
    if host.eq_ignore_ascii_case("localhost") {
        return true;
    }
    host.parse::<std::net::IpAddr>()
        .map(|ip| ip.is_loopback())
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn base() -> Value {
        json!({"issuer": "https://idp.test", "audience": "lex-align", "jwks": "/etc/jwks.json"})
    }

    #[test]
    fn defaults_apply() {
        let c = OidcConfig::from_json(&base()).unwrap();
        assert_eq!(c.groups_claim, "groups");
        assert_eq!(c.email_claim, "email");
        assert_eq!(c.id_claim, "sub");
        assert_eq!(c.leeway_s, 30);
        assert_eq!(c.audience, vec!["lex-align".to_string()]);
        assert_eq!(c.jwks, JwksSource::File("/etc/jwks.json".into()));
    }

    #[test]
    fn required_keys_are_required() {
        for key in ["issuer", "audience", "jwks"] {
            let mut v = base();
            v.as_object_mut().unwrap().remove(key);
            let e = OidcConfig::from_json(&v).unwrap_err();
            assert!(e.contains(key), "{e}");
            let mut v = base();
            v[key] = json!("  ");
            assert!(OidcConfig::from_json(&v).is_err());
        }
    }

    #[test]
    fn typos_and_lax_values_are_refused() {
        let mut v = base();
        v["groups_clam"] = json!("roles");
        assert!(OidcConfig::from_json(&v)
            .unwrap_err()
            .contains("groups_clam"));
        let mut v = base();
        v["leeway_s"] = json!(86400);
        assert!(OidcConfig::from_json(&v).unwrap_err().contains("leeway_s"));
        let mut v = base();
        v["audience"] = json!([]);
        assert!(OidcConfig::from_json(&v).is_err());
        let mut v = base();
        v["audience"] = json!(["a", 3]);
        assert!(OidcConfig::from_json(&v).is_err());
    }

    #[test]
    fn jwks_sources() {
        assert_eq!(
            parse_jwks_source("https://idp.test/keys").unwrap(),
            JwksSource::Url("https://idp.test/keys".into())
        );
        assert!(parse_jwks_source("http://127.0.0.1:8080/keys").is_ok());
        assert!(parse_jwks_source("http://[::1]:8080/keys").is_ok());
        assert!(parse_jwks_source("http://localhost/keys").is_ok());
        // A remote host over plain http, or one that merely starts like a
        // loopback address, is refused.
        assert!(parse_jwks_source("http://idp.test/keys").is_err());
        assert!(parse_jwks_source("http://127.0.0.1.idp.test/keys").is_err());
        assert!(parse_jwks_source("http://localhost@idp.test/keys").is_err());
        assert!(parse_jwks_source("relative/jwks.json").is_err());
        assert!(parse_jwks_source("ftp://idp.test/keys").is_err());
    }
}
