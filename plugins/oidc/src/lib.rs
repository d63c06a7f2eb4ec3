//! `lex-align-plugin-oidc`: an authenticator plugin (name `oidc`) that
//! accepts JWT bearer tokens from an OpenID provider — RS256 and ES256 only,
//! keys from the provider's JWKS (file or URL), `exp`, `nbf`, `iss` and `aud`
//! checked. Everything else is refused with 401 and a reason that never
//! repeats the token.

pub mod config;
mod http;
pub mod keys;
pub mod verify;

use lex_align_plugin_sdk::{AuthRequest, AuthenticatorPlugin, Identity, PluginError, Value};

use config::OidcConfig;
use keys::{KeyStore, Loader};
use verify::{Claims, Verifier};

/// The configured plugin: one per process, shared by the host's threads.
pub struct OidcAuth {
    verifier: Verifier,
}

impl OidcAuth {
    /// Reads the configuration and loads the key set once; an error here is
    /// a configuration error (400).
    pub fn from_config(config: &Value) -> Result<OidcAuth, String> {
        let cfg = OidcConfig::from_json(config)?;
        let loader = Loader::new(cfg.jwks.clone(), cfg.http_timeout);
        let keys = KeyStore::open(loader, cfg.jwks_refresh_min, cfg.jwks_max_age)?;
        Ok(OidcAuth {
            verifier: Verifier::new(cfg, keys),
        })
    }

    /// The identity a bearer token names; the error is the 401 detail.
    pub fn verify_bearer(&self, bearer: Option<&str>) -> Result<Claims, String> {
        match bearer.map(str::trim).filter(|t| !t.is_empty()) {
            Some(token) => self.verifier.verify(token),
            None => Err("missing bearer token (Authorization: Bearer <JWT>)".into()),
        }
    }

    /// How many times the key set was loaded (for tests and diagnostics).
    pub fn jwks_fetches(&self) -> u64 {
        self.verifier.keys().fetches()
    }
}

impl AuthenticatorPlugin for OidcAuth {
    fn configure(config: &Value) -> Result<Self, PluginError> {
        OidcAuth::from_config(config).map_err(PluginError::bad_config)
    }

    fn authenticate(&self, req: &AuthRequest) -> Result<Identity, PluginError> {
        let claims = self
            .verify_bearer(req.bearer())
            .map_err(PluginError::unauthorized)?;
        Ok(Identity {
            id: claims.id,
            email: claims.email,
            groups: claims.groups,
        })
    }
}

lex_align_plugin_sdk::export_authenticator!("oidc", OidcAuth);
