//! The provider's signing keys: read from a JWKS file or URL, cached, and
//! fetched again when a token names a key we do not have (a rotation) or the
//! set is older than its maximum age (a withdrawal) — never more often than
//! the refresh interval, so a flood of made-up `kid`s costs the IdP nothing.

use std::io::Read;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use jsonwebtoken::{Algorithm, DecodingKey};
use serde::Deserialize;
use serde_json::Value;

use crate::config::JwksSource;
use crate::http;

/// A key set larger than this is not a key set.
const MAX_JWKS_BYTES: u64 = 1 << 20;

/// One usable verification key.
pub struct Key {
    pub kid: Option<String>,
    /// The only algorithm this key verifies (RS256 for RSA, ES256 for P-256).
    pub alg: Algorithm,
    pub decoding: DecodingKey,
}

/// The keys of one fetch; unusable entries (symmetric, other curves or
/// algorithms, encryption keys) are left out.
pub struct KeySet {
    pub keys: Vec<Arc<Key>>,
    pub skipped: usize,
}

#[derive(Deserialize)]
struct RawJwk {
    kty: Option<String>,
    kid: Option<String>,
    #[serde(rename = "use")]
    use_: Option<String>,
    alg: Option<String>,
    n: Option<String>,
    e: Option<String>,
    crv: Option<String>,
    x: Option<String>,
    y: Option<String>,
}

impl KeySet {
    pub fn parse(text: &str) -> Result<KeySet, String> {
        let doc: Value =
            serde_json::from_str(text).map_err(|e| format!("the key set is not JSON: {e}"))?;
        let Some(entries) = doc.get("keys").and_then(Value::as_array) else {
            return Err("the key set has no `keys` array".into());
        };
        let mut keys = Vec::new();
        let mut skipped = 0;
        for entry in entries {
            // One odd key must not hide the others (providers add new key
            // types over time): parse each on its own.
            match serde_json::from_value::<RawJwk>(entry.clone())
                .ok()
                .and_then(usable)
            {
                Some(k) => keys.push(Arc::new(k)),
                None => skipped += 1,
            }
        }
        if keys.is_empty() {
            return Err(format!(
                "the key set has no usable RS256 or ES256 signing key ({skipped} skipped)"
            ));
        }
        Ok(KeySet { keys, skipped })
    }
}

fn usable(jwk: RawJwk) -> Option<Key> {
    if jwk.use_.as_deref().is_some_and(|u| u != "sig") {
        return None;
    }
    let (alg, decoding) = match jwk.kty.as_deref()? {
        "RSA" => {
            if jwk.alg.as_deref().is_some_and(|a| a != "RS256") {
                return None;
            }
            let key =
                DecodingKey::from_rsa_components(jwk.n.as_deref()?, jwk.e.as_deref()?).ok()?;
            (Algorithm::RS256, key)
        }
        "EC" => {
            if jwk.crv.as_deref() != Some("P-256")
                || jwk.alg.as_deref().is_some_and(|a| a != "ES256")
            {
                return None;
            }
            let key = DecodingKey::from_ec_components(jwk.x.as_deref()?, jwk.y.as_deref()?).ok()?;
            (Algorithm::ES256, key)
        }
        _ => return None,
    };
    Some(Key {
        kid: jwk.kid,
        alg,
        decoding,
    })
}

/// Where a key set is read from, with the HTTP agent for a URL.
pub struct Loader {
    source: JwksSource,
    agent: Option<ureq::Agent>,
}

impl Loader {
    pub fn new(source: JwksSource, timeout: Duration) -> Loader {
        let agent = match &source {
            JwksSource::Url(url) => Some(http::agent(url, timeout)),
            JwksSource::File(_) => None,
        };
        Loader { source, agent }
    }

    pub fn describe(&self) -> String {
        match &self.source {
            JwksSource::File(p) => p.display().to_string(),
            JwksSource::Url(u) => u.clone(),
        }
    }

    pub fn load(&self) -> Result<KeySet, String> {
        let text = match (&self.source, &self.agent) {
            (JwksSource::File(path), _) => std::fs::read_to_string(path)
                .map_err(|e| format!("cannot read the key set {}: {e}", path.display()))?,
            (JwksSource::Url(url), Some(agent)) => fetch(agent, url)?,
            (JwksSource::Url(_), None) => unreachable!("a URL source always has an agent"),
        };
        KeySet::parse(&text).map_err(|e| format!("{}: {e}", self.describe()))
    }
}

fn fetch(agent: &ureq::Agent, url: &str) -> Result<String, String> {
    let resp = agent
        .get(url)
        .set("Accept", "application/json")
        .call()
        .map_err(|e| match e {
            ureq::Error::Status(code, _) => format!("the key set {url} answered HTTP {code}"),
            ureq::Error::Transport(t) => format!("cannot fetch the key set {url}: {t}"),
        })?;
    let mut text = String::new();
    resp.into_reader()
        .take(MAX_JWKS_BYTES + 1)
        .read_to_string(&mut text)
        .map_err(|e| format!("reading the key set {url} failed: {e}"))?;
    if text.len() as u64 > MAX_JWKS_BYTES {
        return Err(format!(
            "the key set {url} is larger than {MAX_JWKS_BYTES} bytes"
        ));
    }
    Ok(text)
}

struct Cached {
    set: KeySet,
    loaded_at: Instant,
}

/// The cache shared by every thread calling the plugin.
pub struct KeyStore {
    loader: Loader,
    refresh_min: Duration,
    max_age: Duration,
    cached: RwLock<Cached>,
    /// Held while fetching (one fetch at a time); the last fetch attempt
    /// that counts against the refresh interval.
    refresh: Mutex<Option<Instant>>,
    fetches: std::sync::atomic::AtomicU64,
}

/// Why a token's key could not be found.
#[derive(Debug, PartialEq, Eq)]
pub enum KeyRefusal {
    /// No key with that `kid` (or, without `kid`, not exactly one candidate).
    Unknown,
    /// The key exists but verifies another algorithm (e.g. an ES256 token
    /// naming an RSA key).
    WrongType,
}

impl KeyStore {
    /// Loads the set once; failure is a configuration error.
    pub fn open(
        loader: Loader,
        refresh_min: Duration,
        max_age: Duration,
    ) -> Result<KeyStore, String> {
        let set = loader.load()?;
        Ok(KeyStore {
            loader,
            refresh_min,
            max_age,
            cached: RwLock::new(Cached {
                set,
                loaded_at: Instant::now(),
            }),
            refresh: Mutex::new(None),
            fetches: std::sync::atomic::AtomicU64::new(1),
        })
    }

    /// How many times the set was loaded (the first load included).
    pub fn fetches(&self) -> u64 {
        self.fetches.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// The key for a token's `kid` and `alg`.
    pub fn find(&self, kid: Option<&str>, alg: Algorithm) -> Result<Arc<Key>, KeyRefusal> {
        if self.age() >= self.max_age {
            self.refresh_if_allowed(|_| true);
        }
        match self.lookup(kid, alg) {
            Err(KeyRefusal::Unknown) => {
                // Another thread may have fetched while we waited for the
                // lock: look again before fetching.
                self.refresh_if_allowed(|cached| lookup_in(&cached.set, kid, alg).is_err());
                self.lookup(kid, alg)
            }
            other => other,
        }
    }

    fn age(&self) -> Duration {
        self.cached
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .loaded_at
            .elapsed()
    }

    fn lookup(&self, kid: Option<&str>, alg: Algorithm) -> Result<Arc<Key>, KeyRefusal> {
        let cached = self.cached.read().unwrap_or_else(|p| p.into_inner());
        lookup_in(&cached.set, kid, alg)
    }

    /// Fetches again unless a fetch was tried within the refresh interval
    /// or `still_needed` says the current set already answers. A failed
    /// fetch keeps the keys we have: an IdP outage must not log everyone out,
    /// and a key is only withdrawn by a set that no longer lists it.
    fn refresh_if_allowed(&self, still_needed: impl Fn(&Cached) -> bool) {
        let mut last = self.refresh.lock().unwrap_or_else(|p| p.into_inner());
        if last.is_some_and(|t| t.elapsed() < self.refresh_min) {
            return;
        }
        {
            let cached = self.cached.read().unwrap_or_else(|p| p.into_inner());
            if !still_needed(&cached) && cached.loaded_at.elapsed() < self.max_age {
                return;
            }
        }
        *last = Some(Instant::now());
        self.fetches
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        if let Ok(set) = self.loader.load() {
            *self.cached.write().unwrap_or_else(|p| p.into_inner()) = Cached {
                set,
                loaded_at: Instant::now(),
            };
        }
    }
}

fn lookup_in(set: &KeySet, kid: Option<&str>, alg: Algorithm) -> Result<Arc<Key>, KeyRefusal> {
    match kid {
        Some(kid) => {
            let key = set
                .keys
                .iter()
                .find(|k| k.kid.as_deref() == Some(kid))
                .ok_or(KeyRefusal::Unknown)?;
            if key.alg == alg {
                Ok(key.clone())
            } else {
                Err(KeyRefusal::WrongType)
            }
        }
        // No `kid`: only unambiguous when one key can verify this algorithm.
        None => {
            let mut candidates = set.keys.iter().filter(|k| k.alg == alg);
            match (candidates.next(), candidates.next()) {
                (Some(k), None) => Ok(k.clone()),
                _ => Err(KeyRefusal::Unknown),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unusable_keys_are_skipped_not_fatal() {
        let text = r#"{"keys":[
            {"kty":"oct","kid":"h","k":"c2VjcmV0"},
            {"kty":"EC","kid":"p384","crv":"P-384","x":"AA","y":"AA"},
            {"kty":"RSA","kid":"enc","use":"enc","n":"AQAB","e":"AQAB"},
            {"kty":"OKP","kid":"ed","crv":"Ed25519","x":"AA"},
            {"kty":"RSA","kid":"r","alg":"RS256","n":"zK8e1ZqQ3wXvYb7nT2hR5sLmP0aUcVd9kGjFoE4iNxWy","e":"AQAB"},
            "not an object"
        ]}"#;
        let set = KeySet::parse(text).unwrap();
        assert_eq!(set.keys.len(), 1);
        assert_eq!(set.keys[0].kid.as_deref(), Some("r"));
        assert_eq!(set.skipped, 5);
    }

    #[test]
    fn a_set_without_usable_keys_is_an_error() {
        assert!(KeySet::parse(r#"{"keys":[{"kty":"oct","k":"c2VjcmV0"}]}"#).is_err());
        assert!(KeySet::parse(r#"{"keys":[]}"#).is_err());
        assert!(KeySet::parse(r#"{"nokeys":1}"#).is_err());
        assert!(KeySet::parse("<html>").is_err());
    }
}
