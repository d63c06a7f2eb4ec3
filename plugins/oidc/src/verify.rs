//! Token → identity. Every refusal says why in words of our own: no part of
//! the token (not even its `kid`) is ever repeated back.

use std::collections::HashSet;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::{Algorithm, Validation};
use serde::Deserialize;
use serde_json::Value;

use crate::config::OidcConfig;
use crate::keys::{KeyRefusal, KeyStore};

/// Tokens longer than this are refused before any parsing.
const MAX_TOKEN_BYTES: usize = 16 * 1024;
/// Caps on what one identity can carry into the daemon.
const MAX_GROUPS: usize = 256;
const MAX_CLAIM_CHARS: usize = 512;

/// Who the token names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claims {
    pub id: String,
    pub email: Option<String>,
    pub groups: Vec<String>,
}

#[derive(Deserialize)]
struct JoseHeader {
    alg: Option<String>,
    kid: Option<String>,
    crit: Option<Value>,
}

pub struct Verifier {
    cfg: OidcConfig,
    keys: KeyStore,
}

impl Verifier {
    pub fn new(cfg: OidcConfig, keys: KeyStore) -> Verifier {
        Verifier { cfg, keys }
    }

    pub fn keys(&self) -> &KeyStore {
        &self.keys
    }

    /// Checks signature, `exp` (required), `nbf`, `iss` and `aud`; the error
    /// is the 401 detail.
    pub fn verify(&self, token: &str) -> Result<Claims, String> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err("the bearer token is too long".into());
        }
        let (alg, kid) = self.header(token)?;
        let key = self.keys.find(kid.as_deref(), alg).map_err(|r| match r {
            KeyRefusal::Unknown => {
                "the token's signing key is not in the identity provider's key set".to_string()
            }
            KeyRefusal::WrongType => {
                "the token's algorithm does not match the type of its signing key".to_string()
            }
        })?;

        let mut v = Validation::new(alg);
        v.leeway = self.cfg.leeway_s;
        v.validate_exp = true;
        v.validate_nbf = true;
        v.required_spec_claims = ["exp", "iss", "aud"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        v.set_audience(&self.cfg.audience);
        // `iss` is compared below as a plain string: the library would also
        // accept an array that merely contains ours.
        v.iss = None;
        let data = jsonwebtoken::decode::<Value>(token, &key.decoding, &v).map_err(refusal)?;
        let claims = data.claims;
        match claims.get("iss") {
            Some(Value::String(iss)) if *iss == self.cfg.issuer => {}
            _ => return Err("the token was issued by another issuer".into()),
        }
        self.identity(&claims)
    }

    /// `alg` and `kid` from the JOSE header, refusing what we never verify
    /// before any key is looked up.
    fn header(&self, token: &str) -> Result<(Algorithm, Option<String>), String> {
        let mut parts = token.split('.');
        let (Some(h), Some(_), Some(_), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err("the bearer token is not a signed JWT (three dot-separated parts)".into());
        };
        let bytes = URL_SAFE_NO_PAD
            .decode(h)
            .map_err(|_| "the token header is not base64url".to_string())?;
        let header: JoseHeader = serde_json::from_slice(&bytes)
            .map_err(|_| "the token header is not a JSON object".to_string())?;
        // We implement no header extension, so any critical one must fail
        // (RFC 7515 §4.1.11).
        if header.crit.is_some() {
            return Err("the token has critical header extensions, which are not supported".into());
        }
        let alg = match header.alg.as_deref() {
            Some("RS256") => Algorithm::RS256,
            Some("ES256") => Algorithm::ES256,
            Some(a) if a.eq_ignore_ascii_case("none") => {
                return Err("unsigned tokens (alg none) are refused".into())
            }
            Some(a) if a.to_ascii_uppercase().starts_with("HS") => {
                return Err(
                    "HMAC-signed tokens are refused; only RS256 and ES256 are accepted".into(),
                )
            }
            Some(_) => {
                return Err(
                    "the token's algorithm is not accepted; only RS256 and ES256 are".into(),
                )
            }
            None => return Err("the token header names no algorithm".into()),
        };
        Ok((alg, header.kid))
    }

    fn identity(&self, claims: &Value) -> Result<Claims, String> {
        let id = match claim(claims, &self.cfg.id_claim) {
            Some(Value::String(s)) if !s.trim().is_empty() => s.trim().to_string(),
            _ => {
                return Err(format!(
                    "the token has no `{}` claim naming the user",
                    self.cfg.id_claim
                ))
            }
        };
        if id.chars().count() > MAX_CLAIM_CHARS {
            return Err(format!(
                "the token's `{}` claim is too long",
                self.cfg.id_claim
            ));
        }
        let email = match claim(claims, &self.cfg.email_claim) {
            Some(Value::String(s))
                if !s.trim().is_empty() && s.chars().count() <= MAX_CLAIM_CHARS =>
            {
                Some(s.trim().to_string())
            }
            _ => None,
        };
        let mut groups = Vec::new();
        let mut seen = HashSet::new();
        let mut push = |g: &str| {
            let g = g.trim();
            if !g.is_empty() && g.chars().count() <= MAX_CLAIM_CHARS && seen.insert(g.to_string()) {
                groups.push(g.to_string());
            }
        };
        match claim(claims, &self.cfg.groups_claim) {
            Some(Value::Array(items)) => {
                for g in items.iter().filter_map(Value::as_str) {
                    push(g);
                }
            }
            Some(Value::String(g)) => push(g),
            _ => {}
        }
        if groups.len() > MAX_GROUPS {
            return Err(format!(
                "the token's `{}` claim lists more than {MAX_GROUPS} groups",
                self.cfg.groups_claim
            ));
        }
        Ok(Claims { id, email, groups })
    }
}

/// A claim by exact name, else by a dotted path into nested objects
/// (`realm_access.roles`). Exact first: names like
/// `https://example.com/groups` contain dots.
fn claim<'a>(claims: &'a Value, name: &str) -> Option<&'a Value> {
    if let Some(v) = claims.get(name) {
        return Some(v);
    }
    if !name.contains('.') {
        return None;
    }
    name.split('.').try_fold(claims, |v, part| v.get(part))
}

fn refusal(e: jsonwebtoken::errors::Error) -> String {
    use jsonwebtoken::errors::ErrorKind as K;
    match e.kind() {
        K::ExpiredSignature => "the token has expired".into(),
        K::ImmatureSignature => "the token is not valid yet (nbf)".into(),
        K::InvalidAudience => "the token is for another audience".into(),
        K::InvalidIssuer => "the token was issued by another issuer".into(),
        K::InvalidSignature => "the token's signature does not verify".into(),
        K::MissingRequiredClaim(c) => format!("the token lacks the required `{c}` claim"),
        K::InvalidAlgorithm => {
            "the token's algorithm does not match the type of its signing key".into()
        }
        // Library messages may quote parts of the token: say nothing more.
        _ => "the token is malformed".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn claims_by_exact_name_then_by_path() {
        let c = json!({"https://x.test/groups": ["a"], "realm_access": {"roles": ["r"]}});
        assert_eq!(claim(&c, "https://x.test/groups"), Some(&json!(["a"])));
        assert_eq!(claim(&c, "realm_access.roles"), Some(&json!(["r"])));
        assert_eq!(claim(&c, "realm_access.nope"), None);
        assert_eq!(claim(&c, "groups"), None);
    }
}
