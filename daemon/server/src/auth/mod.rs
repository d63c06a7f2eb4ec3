//! Who is asking, and may they?
//!
//! Every request passes [`authorize`] before its handler: the configured
//! [`Authenticator`] names the caller (an API key is accepted whatever the
//! backend), the route table ([`route_rule`]) says which [`Role`] the route
//! needs, a project-scoped key is held to its project, and the per-identity
//! rate limit applies. The handler receives the [`Identity`] as a request
//! extension; nothing else in the daemon reads credentials.
//!
//! Fail closed: every error of an authenticator is a 401, never a 5xx and
//! never anonymous.

mod header;
mod keys;
mod limit;
mod plugin;
mod settings;
mod webhook;

use std::net::SocketAddr;
use std::sync::Arc;

use async_trait::async_trait;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header as h, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::json;

pub use keys::KeyRing;
pub use limit::RateLimiter;
pub use settings::{AuthSettings, Backend, HeaderSettings, RoleMap, WebhookSettings};

use crate::http::errors::json_response;

/// Ordered: each role may do everything the roles below it may.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Role {
    Agent,
    Developer,
    Operator,
}

impl Role {
    pub const ALL: [Role; 3] = [Role::Agent, Role::Developer, Role::Operator];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Agent => "agent",
            Role::Developer => "developer",
            Role::Operator => "operator",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str().eq_ignore_ascii_case(s.trim()))
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What an authenticator found out about the caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub id: String,
    pub email: Option<String>,
    pub groups: Vec<String>,
    /// Set by credentials that carry their own role (API keys); otherwise
    /// the role comes from the groups ([`RoleMap`]).
    pub role: Option<Role>,
    /// The only project this credential may act for.
    pub project: Option<String>,
    /// Recorded in the audit log: `apikey:<id>`, `header`, `webhook`, …
    pub method: String,
}

/// The caller of one request, as handlers see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub id: String,
    pub email: Option<String>,
    pub groups: Vec<String>,
    pub role: Role,
    pub project: Option<String>,
    pub method: String,
}

impl Identity {
    /// The one user of a daemon with authentication off.
    pub fn single_user() -> Identity {
        Identity {
            id: "anonymous".into(),
            email: None,
            groups: Vec::new(),
            role: Role::Operator,
            project: None,
            method: "anonymous".into(),
        }
    }
}

/// What an authenticator may look at.
pub struct AuthRequest<'a> {
    pub method: &'a Method,
    pub path: &'a str,
    pub headers: &'a HeaderMap,
    /// `None` when the server was not started with connection info (the
    /// header backend then refuses everyone).
    pub peer: Option<SocketAddr>,
}

/// Why a caller is not let in; the message is the 401's `detail`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Unauthorized(pub String);

#[async_trait]
pub trait Authenticator: Send + Sync {
    fn name(&self) -> &str;
    async fn authenticate(&self, req: &AuthRequest<'_>) -> Result<Principal, Unauthorized>;
}

/// `AUTH_BACKEND=anonymous` with authentication on: everyone is
/// `anonymous`, with the default role.
pub struct AnonymousAuth;

#[async_trait]
impl Authenticator for AnonymousAuth {
    fn name(&self) -> &str {
        "anonymous"
    }
    async fn authenticate(&self, _req: &AuthRequest<'_>) -> Result<Principal, Unauthorized> {
        Ok(Principal {
            id: "anonymous".into(),
            email: None,
            groups: Vec::new(),
            role: None,
            project: None,
            method: "anonymous".into(),
        })
    }
}

/// The token of `Authorization: Bearer <token>`: `Ok(None)` when there is
/// no Authorization header, `Err` when there is one in another shape.
pub fn bearer(headers: &HeaderMap) -> Result<Option<&str>, Unauthorized> {
    let mut values = headers.get_all(h::AUTHORIZATION).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    let malformed = || {
        Unauthorized(
            "Malformed Authorization header; expected `Authorization: Bearer <token>`.".into(),
        )
    };
    if values.next().is_some() {
        return Err(malformed());
    }
    let s = value.to_str().map_err(|_| malformed())?;
    let (scheme, token) = s.trim().split_once(' ').ok_or_else(malformed)?;
    let token = token.trim();
    if !scheme.eq_ignore_ascii_case("bearer")
        || token.is_empty()
        || token.contains(char::is_whitespace)
    {
        return Err(malformed());
    }
    Ok(Some(token))
}

/// Everything [`authorize`] needs, built once at start-up.
pub struct Access {
    pub enabled: bool,
    pub authenticator: Arc<dyn Authenticator>,
    pub keys: Arc<KeyRing>,
    pub roles: RoleMap,
    pub limiter: Option<RateLimiter>,
}

impl Access {
    /// From the settings; fails when the selected backend cannot be built
    /// (fail closed: the daemon does not start).
    pub fn build(
        settings: &AuthSettings,
        keys: Arc<KeyRing>,
        plugins: &lex_align_plugin_host::PluginHost,
    ) -> anyhow::Result<Access> {
        let authenticator: Arc<dyn Authenticator> = match &settings.backend {
            // Only when authentication is on: a daemon with it off never
            // calls an authenticator, so it needs none.
            Backend::Plugin(name) if settings.enabled => {
                let handle = plugins
                    .select(name, lex_align_plugin_host::Kind::Authenticator)
                    .map_err(|e| {
                        anyhow::anyhow!(
                            "AUTH_BACKEND=plugin:{name}: {e}. The daemon does not start without its authenticator (fail closed); \
                             run `lex-align plugins list` to see what was found"
                        )
                    })?;
                Arc::new(plugin::PluginAuth::new(handle))
            }
            Backend::Plugin(_) => Arc::new(AnonymousAuth),
            Backend::Anonymous => Arc::new(AnonymousAuth),
            Backend::Header(cfg) => Arc::new(header::HeaderAuth::new(cfg.clone())),
            Backend::Webhook(cfg) => Arc::new(webhook::WebhookAuth::new(cfg.clone())?),
            Backend::ApiKey => Arc::new(keys::ApiKeyAuth(keys.clone())),
        };
        Ok(Access {
            enabled: settings.enabled,
            authenticator,
            keys,
            roles: settings.roles.clone(),
            limiter: (settings.rate_limit_per_minute > 0)
                .then(|| RateLimiter::per_minute(settings.rate_limit_per_minute)),
        })
    }

    /// Names the caller: an API key when the bearer token is one, else the
    /// backend.
    pub async fn identify(&self, req: &AuthRequest<'_>) -> Result<Identity, Unauthorized> {
        if !self.enabled {
            return Ok(Identity::single_user());
        }
        let token = bearer(req.headers)?;
        let principal = match token {
            // A key never goes to an outside verifier.
            Some(t) if t.starts_with(lex_align_store::KEY_PREFIX) => self.keys.check(t)?,
            _ => self.authenticator.authenticate(req).await?,
        };
        let role = principal
            .role
            .unwrap_or_else(|| self.roles.role_for(&principal.groups));
        Ok(Identity {
            id: principal.id,
            email: principal.email,
            groups: principal.groups,
            role,
            project: principal.project,
            method: principal.method,
        })
    }
}

/// What a route asks of its caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RouteRule {
    /// Open to all; authenticated callers get more (health).
    Public,
    /// Authenticated by its own signature (the registry webhook).
    Signed,
    Needs(Role),
}

/// The route table of access: one place to read who may call what.
pub fn route_rule(method: &Method, path: &str) -> RouteRule {
    use Role::*;
    let path = path.trim_end_matches('/');
    match (method.as_str(), path) {
        ("GET", "/api/v1/health") => RouteRule::Public,
        ("POST", "/api/v1/registry/webhook") => RouteRule::Signed,
        ("GET", "/api/v1/evaluate")
        | ("POST", "/api/v1/evaluate/batch")
        | ("POST", "/api/v1/approval-requests")
        // An agent reads its own queue (the session brief lists it).
        | ("GET", "/api/v1/reports/approval-requests")
        | ("GET", "/api/v1/registry")
        // Team mode: what a personal daemon (an agent key) follows and ships.
        | ("GET", "/api/v1/registry/events")
        | ("POST", "/api/v1/audit/ingest")
        | ("GET", "/api/v1/team/whoami")
        | ("POST", "/api/v1/registry/parse-yaml")
        | ("GET", "/api/v1/lsp")
        // Public keys: whoever checks a signed verdict (a CI agent) may fetch them.
        | ("GET", "/api/v1/keys") => RouteRule::Needs(Agent),
        // Team mode: the team's upstream caches, for its personal daemons.
        ("GET", p) if p.starts_with("/api/v1/upstream/") => RouteRule::Needs(Agent),
        ("POST", "/api/v1/registry/proposals") | ("POST", "/api/v1/registry/reload") => {
            RouteRule::Needs(Operator)
        }
        (_, p) if p == "/api/v1/overrides" || p.starts_with("/api/v1/overrides/") => {
            RouteRule::Needs(Operator)
        }
        // The registry workshop's form actions (pages themselves are GETs).
        ("POST", p) if p.starts_with("/dashboard/") => RouteRule::Needs(Operator),
        // Reports, audit, metrics, OpenAPI, docs and pages (and anything
        // unknown, so route names cannot be probed anonymously).
        _ => RouteRule::Needs(Developer),
    }
}

pub fn unauthorized(detail: &str) -> Response {
    let mut resp = json_response(StatusCode::UNAUTHORIZED, &json!({ "detail": detail }));
    resp.headers_mut()
        .insert(h::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    resp
}

fn forbidden(detail: String) -> Response {
    json_response(StatusCode::FORBIDDEN, &json!({ "detail": detail }))
}

/// The project a request acts for, from the header or `?project=`.
fn requested_projects(req: &Request) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(p) = req
        .headers()
        .get("x-lexalign-project")
        .map(|v| String::from_utf8_lossy(v.as_bytes()).trim().to_string())
        .filter(|p| !p.is_empty())
    {
        out.push(p);
    }
    if let Some(q) = req.uri().query() {
        if let Ok(pairs) = serde_urlencoded::from_str::<Vec<(String, String)>>(q) {
            out.extend(
                pairs
                    .into_iter()
                    .filter(|(k, v)| k == "project" && !v.is_empty())
                    .map(|(_, v)| v),
            );
        }
    }
    out
}

/// The access middleware (see the module docs).
pub async fn authorize(
    State(app): State<crate::http::Shared>,
    mut req: Request,
    next: Next,
) -> Response {
    let access = &app.access;
    let rule = route_rule(req.method(), req.uri().path());
    if rule == RouteRule::Signed {
        return next.run(req).await;
    }
    let peer = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0);
    // An in-process call (an LSP session's request) carries the identity
    // its session was authenticated with; the wire cannot set extensions.
    let found = if let Some(id) = req.extensions().get::<Identity>() {
        Ok(id.clone())
    } else {
        let auth_req = AuthRequest {
            method: req.method(),
            path: req.uri().path(),
            headers: req.headers(),
            peer,
        };
        access.identify(&auth_req).await
    };
    let identity = match (found, rule) {
        (Ok(id), _) => id,
        (Err(_), RouteRule::Public) => return next.run(req).await,
        (Err(e), _) => {
            app.metrics.auth_failure();
            return unauthorized(&e.0);
        }
    };
    if let RouteRule::Needs(needed) = rule {
        if identity.role < needed {
            return forbidden(format!(
                "{} {} needs the {needed} role; {} has the {} role.",
                req.method(),
                req.uri().path(),
                identity.id,
                identity.role
            ));
        }
        if let Some(scope) = &identity.project {
            let asked = requested_projects(&req);
            if let Some(other) = asked.iter().find(|p| *p != scope) {
                return forbidden(format!(
                    "This key is scoped to project `{scope}` and cannot act for project `{other}`."
                ));
            }
            // Reports and the developer routes span projects unless told one.
            let spans_projects =
                needed >= Role::Developer || req.uri().path().starts_with("/api/v1/reports/");
            if asked.is_empty() && spans_projects {
                return forbidden(format!(
                    "This key is scoped to project `{scope}`: add ?project={scope} (or X-LexAlign-Project)."
                ));
            }
        }
    }
    if let Some(limiter) = &access.limiter {
        if let Err(wait) = limiter.check(&identity.id) {
            let secs = wait.as_secs_f64().ceil().max(1.0) as u64;
            let mut resp = json_response(
                StatusCode::TOO_MANY_REQUESTS,
                &json!({"detail": format!(
                    "Rate limit of {} requests per minute exceeded for {}; retry in {secs} s.",
                    limiter.limit(), identity.id
                )}),
            );
            resp.headers_mut()
                .insert(h::RETRY_AFTER, HeaderValue::from(secs));
            return resp.into_response();
        }
    }
    req.extensions_mut().insert(identity);
    next.run(req).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_are_ordered() {
        assert!(Role::Agent < Role::Developer && Role::Developer < Role::Operator);
        assert_eq!(Role::parse(" Operator "), Some(Role::Operator));
        assert_eq!(Role::parse("admin"), None);
    }

    fn headers(v: &[&str]) -> HeaderMap {
        let mut m = HeaderMap::new();
        for s in v {
            m.append(h::AUTHORIZATION, HeaderValue::from_str(s).unwrap());
        }
        m
    }

    #[test]
    fn bearer_tokens_are_parsed_strictly() {
        assert_eq!(bearer(&headers(&[])).unwrap(), None);
        assert_eq!(bearer(&headers(&["Bearer abc"])).unwrap(), Some("abc"));
        assert_eq!(bearer(&headers(&["bearer  abc "])).unwrap(), Some("abc"));
        for bad in [
            "Bearer",
            "Bearer ",
            "Basic abc",
            "Bearer a b",
            "abc",
            "Token abc",
        ] {
            assert!(bearer(&headers(&[bad])).is_err(), "{bad:?}");
        }
        assert!(bearer(&headers(&["Bearer a", "Bearer b"])).is_err());
    }

    #[test]
    fn every_operator_route_needs_the_operator_role() {
        for (m, p) in [
            (Method::POST, "/api/v1/registry/proposals"),
            (Method::POST, "/api/v1/registry/reload"),
            (Method::POST, "/api/v1/overrides"),
            (Method::GET, "/api/v1/overrides"),
            (Method::DELETE, "/api/v1/overrides/ovr_1"),
            (Method::POST, "/dashboard/registry/decide"),
            (Method::POST, "/dashboard/registry/rules"),
            (Method::POST, "/dashboard/registry/policies"),
        ] {
            assert_eq!(route_rule(&m, p), RouteRule::Needs(Role::Operator), "{p}");
        }
        assert_eq!(
            route_rule(&Method::GET, "/api/v1/health"),
            RouteRule::Public
        );
        assert_eq!(
            route_rule(&Method::POST, "/api/v1/health"),
            RouteRule::Needs(Role::Developer)
        );
        assert_eq!(
            route_rule(&Method::GET, "/nowhere"),
            RouteRule::Needs(Role::Developer)
        );
    }
}
