//! Team mode (docs/team.md).
//!
//! Team server side (every daemon offers it): `GET /api/v1/registry` with an
//! `ETag` and a monotonic `X-LexAlign-Registry-Generation` (the registry's
//! epoch, kept in the database so it only grows across restarts),
//! `GET /api/v1/registry/events` (server-sent events: the current
//! generation at once, then one event per change, keep-alive comments),
//! `POST /api/v1/audit/ingest` (rows shipped by personal daemons, exactly
//! once by row id) and `GET /api/v1/team/whoami`.
//!
//! Personal daemon side (`LEXALIGN_TEAM_URL` set): [`follow`] keeps the
//! local registry equal to the team's, never older; [`ship`] sends every
//! local audit row to the team; [`status`] says how the link is (health's
//! `team` object, `degraded` on verdicts while the team is away).

pub mod follow;
pub mod forward;
pub mod server;
pub mod ship;
pub mod status;
pub mod upstream;

use std::sync::Arc;
use std::time::Duration;

use axum::routing::{get, post};
use axum::Router;

use crate::config::ConfigError;
use crate::http::Shared;

pub use status::{Link, LinkState, Problem};

/// The header carrying the registry's epoch.
pub const GENERATION_HEADER: &str = "x-lexalign-registry-generation";

/// Largest `POST /api/v1/audit/ingest` body.
pub const INGEST_MAX_BYTES: usize = 16 * 1024 * 1024;

/// Where a personal daemon keeps the last team registry it applied.
pub const CACHE_FILE: &str = "team-registry.json";

/// `LEXALIGN_TEAM_*`.
#[derive(Debug, Clone)]
pub struct TeamSettings {
    /// `LEXALIGN_TEAM_URL`: follow this team server.
    pub follow: Option<FollowSettings>,
    /// `LEXALIGN_TEAM_KEEPALIVE_SECONDS` (team server side, default 10):
    /// how often the event stream sends a keep-alive comment.
    pub keepalive: Duration,
}

#[derive(Debug, Clone)]
pub struct FollowSettings {
    /// Base URL of the team server (no trailing slash).
    pub url: String,
    /// `LEXALIGN_API_KEY`: the credential (an API key of the machine's owner).
    pub api_key: Option<String>,
    /// `LEXALIGN_TEAM_POLL_SECONDS` (default 3): ETag polling while the
    /// event stream is down, and the longest reconnect backoff.
    pub poll: Duration,
    /// `LEXALIGN_TEAM_TIMEOUT_SECONDS` (default 5): a slower answer counts
    /// as the team being away.
    pub timeout: Duration,
    /// How often the shipper looks for new rows (default 200 ms).
    pub ship_every: Duration,
    /// `LEXALIGN_TEAM_UPSTREAM` (default on): package metadata and
    /// advisories through the team server's caches, falling back to this
    /// daemon's own upstreams.
    pub share_upstream: bool,
}

impl Default for TeamSettings {
    fn default() -> Self {
        TeamSettings {
            follow: None,
            keepalive: Duration::from_secs(10),
        }
    }
}

impl FollowSettings {
    pub fn new(url: &str, api_key: Option<String>) -> FollowSettings {
        FollowSettings {
            url: url.trim_end_matches('/').to_string(),
            api_key,
            poll: Duration::from_secs(3),
            timeout: Duration::from_secs(5),
            ship_every: Duration::from_millis(200),
            share_upstream: true,
        }
    }
}

fn secs(variable: &'static str, v: &str) -> Result<Duration, ConfigError> {
    v.parse::<f64>()
        .ok()
        .filter(|s| s.is_finite() && *s > 0.0)
        .map(Duration::from_secs_f64)
        .ok_or_else(|| ConfigError {
            variable,
            message: format!("{v:?} is not a positive number of seconds, e.g. 3"),
        })
}

impl TeamSettings {
    pub fn from_lookup(var: &dyn Fn(&str) -> Option<String>) -> Result<TeamSettings, ConfigError> {
        let mut t = TeamSettings::default();
        if let Some(k) = var("LEXALIGN_TEAM_KEEPALIVE_SECONDS") {
            t.keepalive = secs("LEXALIGN_TEAM_KEEPALIVE_SECONDS", &k)?;
        }
        let Some(url) = var("LEXALIGN_TEAM_URL") else {
            return Ok(t);
        };
        let parsed = reqwest::Url::parse(&url)
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https") && u.host_str().is_some());
        if parsed.is_none() {
            return Err(ConfigError {
                variable: "LEXALIGN_TEAM_URL",
                message: format!(
                    "{url:?} is not an http(s) URL; use the team server's base URL, e.g. https://lexalign.example.com"
                ),
            });
        }
        let mut f = FollowSettings::new(&url, var("LEXALIGN_API_KEY"));
        if let Some(p) = var("LEXALIGN_TEAM_POLL_SECONDS") {
            f.poll = secs("LEXALIGN_TEAM_POLL_SECONDS", &p)?;
        }
        if let Some(p) = var("LEXALIGN_TEAM_TIMEOUT_SECONDS") {
            f.timeout = secs("LEXALIGN_TEAM_TIMEOUT_SECONDS", &p)?;
        }
        if let Some(v) = var("LEXALIGN_TEAM_UPSTREAM") {
            f.share_upstream = match v.trim().to_ascii_lowercase().as_str() {
                "1" | "true" | "yes" | "on" => true,
                "0" | "false" | "no" | "off" => false,
                _ => {
                    return Err(ConfigError {
                        variable: "LEXALIGN_TEAM_UPSTREAM",
                        message: format!("{v:?} is not true or false"),
                    })
                }
            };
        }
        t.follow = Some(f);
        Ok(t)
    }
}

/// Team mode's shared state (an axum extension on every route).
pub struct TeamState {
    /// Team server side: the epoch of the registry last served.
    pub(crate) epoch: tokio::sync::Mutex<Option<(String, u64)>>,
    /// Personal daemon side: the link to the team (`None` when not following).
    pub link: Option<Arc<status::LinkCell>>,
    /// Personal daemon side: approval requests, proposals and overrides
    /// sent to the team (queued while it is away).
    pub forwarder: Option<Arc<forward::Forwarder>>,
}

/// Dropping it stops the follower and the shipper.
pub struct TeamHandle {
    pub state: Arc<TeamState>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for TeamHandle {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// Sets team mode up for an app: always the server side; with
/// `LEXALIGN_TEAM_URL`, the last team registry applied (so a restart while
/// the team is away answers with it), the follower and the shipper.
pub async fn start(app: &Shared) -> anyhow::Result<TeamHandle> {
    let Some(settings) = app.config.team.follow.clone() else {
        return Ok(TeamHandle {
            state: Arc::new(TeamState {
                epoch: tokio::sync::Mutex::new(None),
                link: None,
                forwarder: None,
            }),
            tasks: Vec::new(),
        });
    };
    app.store
        .outbox_init()
        .await
        .map_err(|e| anyhow::anyhow!("team mode: cannot create the outbox cursor: {e}"))?;
    let link = Arc::new(status::LinkCell::new(&settings.url));
    follow::apply_cached(app, &link).await;
    let client = reqwest::Client::builder()
        .connect_timeout(settings.timeout)
        .build()
        .map_err(|e| anyhow::anyhow!("team mode: HTTP client: {e}"))?;
    let forwarder = Arc::new(forward::Forwarder::new(
        settings.clone(),
        client.clone(),
        link.clone(),
    ));
    let weak = Arc::downgrade(app);
    let tasks = vec![
        tokio::spawn(follow::run(
            weak.clone(),
            link.clone(),
            settings.clone(),
            client.clone(),
        )),
        tokio::spawn(ship::run(
            weak,
            link.clone(),
            forwarder.clone(),
            settings,
            client,
        )),
    ];
    Ok(TeamHandle {
        state: Arc::new(TeamState {
            epoch: tokio::sync::Mutex::new(None),
            link: Some(link),
            forwarder: Some(forwarder),
        }),
        tasks,
    })
}

/// The team routes (merged into the v1 router, behind its access layer).
pub fn routes() -> Router<Shared> {
    Router::new()
        .route("/api/v1/registry/events", get(server::events))
        .route(
            "/api/v1/audit/ingest",
            // 500 rows with long reasons can pass the 1 MiB default.
            post(server::ingest).layer(axum::extract::DefaultBodyLimit::max(INGEST_MAX_BYTES)),
        )
        .route("/api/v1/team/whoami", get(server::whoami))
        .route("/api/v1/team/status", get(status::status_route))
        .merge(upstream::routes())
}

/// The `Authorization` header value for the team server.
pub(crate) fn bearer(settings: &FollowSettings) -> Option<String> {
    settings.api_key.as_ref().map(|k| format!("Bearer {k}"))
}
