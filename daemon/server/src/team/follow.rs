//! A personal daemon follows its team server's registry: a fetch at start,
//! one on every event of the team's stream, ETag polling while the stream
//! is down; never an older generation than the one applied.

use std::sync::Weak;
use std::time::Duration;

use axum::http::StatusCode;
use serde::{Deserialize, Serialize};

use super::status::{now, LinkCell};
use super::{bearer, FollowSettings, CACHE_FILE, GENERATION_HEADER};
use crate::http::{AppState, Shared};

/// Without a byte (event or keep-alive comment) for this long, the stream
/// is taken for dead (a stopped team server keeps its sockets open).
const STREAM_IDLE: Duration = Duration::from_secs(35);

/// First reconnect delay (doubles up to the poll interval).
const BACKOFF_START: Duration = Duration::from_millis(250);

/// Why an exchange with the team failed.
pub(crate) enum Fail {
    /// 401/403: the credential is refused.
    Auth(String),
    /// Unreachable, slow, 5xx or nonsense: try again later.
    Away(String),
}

pub(crate) fn classify(status: StatusCode, what: &str) -> Fail {
    if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
        Fail::Auth(format!(
            "the team server answered HTTP {} to {what}",
            status.as_u16()
        ))
    } else {
        Fail::Away(format!(
            "the team server answered HTTP {} to {what}",
            status.as_u16()
        ))
    }
}

pub(crate) fn transport(e: &reqwest::Error, timeout: Duration) -> Fail {
    if e.is_timeout() {
        Fail::Away(format!(
            "the team server did not answer within {} ms",
            timeout.as_millis()
        ))
    } else {
        let mut s = e.to_string();
        let mut cur = std::error::Error::source(e);
        while let Some(c) = cur {
            s.push_str(": ");
            s.push_str(&c.to_string());
            cur = c.source();
        }
        Fail::Away(format!("the team server is unreachable: {s}"))
    }
}

/// The last team registry applied, kept across restarts.
#[derive(Serialize, Deserialize)]
struct Cached {
    registry_generation: u64,
    etag: Option<String>,
    /// The exact bytes the team sent.
    registry_json: String,
}

/// At start: apply the last team registry (the team may be away now).
pub async fn apply_cached(app: &Shared, link: &LinkCell) {
    let path = app.config.data_dir.join(CACHE_FILE);
    let Ok(text) = tokio::fs::read_to_string(&path).await else {
        return;
    };
    let Ok(c) = serde_json::from_str::<Cached>(&text) else {
        tracing::warn!("ignoring {}: not a team registry cache", path.display());
        return;
    };
    match app
        .registry
        .replace_from_json(c.registry_json.as_bytes(), "team-cache")
        .await
    {
        Ok(_) => {
            let version = app.registry.current().registry.version.clone();
            link.update(|l| {
                l.registry_generation = Some(c.registry_generation);
                l.registry_version = Some(version);
                l.etag = c.etag;
            });
        }
        Err(e) => tracing::warn!("ignoring the cached team registry: {e}"),
    }
}

async fn write_cache(app: &AppState, c: &Cached) {
    let path = app.config.data_dir.join(CACHE_FILE);
    let tmp = path.with_extension("json.tmp");
    let Ok(bytes) = serde_json::to_vec(c) else {
        return;
    };
    let done = async {
        tokio::fs::write(&tmp, &bytes).await?;
        tokio::fs::rename(&tmp, &path).await
    };
    if let Err(e) = done.await {
        tracing::warn!("cannot keep the team registry in {}: {e}", path.display());
    }
}

/// One revalidation: `GET /api/v1/registry` with the ETag held; applies a
/// newer registry.
pub(crate) async fn sync(
    app: &AppState,
    link: &LinkCell,
    settings: &FollowSettings,
    client: &reqwest::Client,
) -> Result<(), Fail> {
    if link.snapshot().identity.is_none() {
        let mut req = client
            .get(format!("{}/api/v1/team/whoami", settings.url))
            .timeout(settings.timeout);
        if let Some(b) = bearer(settings) {
            req = req.header("authorization", b);
        }
        let resp = req
            .send()
            .await
            .map_err(|e| transport(&e, settings.timeout))?;
        match resp.status() {
            s if s.is_success() => {
                let v: serde_json::Value = resp
                    .json()
                    .await
                    .map_err(|e| transport(&e, settings.timeout))?;
                link.update(|l| l.identity = Some(v));
            }
            s => return Err(classify(s, "GET /api/v1/team/whoami")),
        }
    }

    let held = link.snapshot();
    let mut req = client
        .get(format!("{}/api/v1/registry", settings.url))
        .timeout(settings.timeout);
    if let Some(b) = bearer(settings) {
        req = req.header("authorization", b);
    }
    if let Some(etag) = &held.etag {
        req = req.header("if-none-match", etag);
    }
    let resp = req
        .send()
        .await
        .map_err(|e| transport(&e, settings.timeout))?;
    let status = resp.status();
    let generation = resp
        .headers()
        .get(GENERATION_HEADER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let etag = resp
        .headers()
        .get("etag")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    if status == StatusCode::NOT_MODIFIED {
        link.update(|l| {
            l.team_generation = generation.or(l.team_generation);
            l.last_contact_at = Some(now());
            l.follow_error = None;
        });
        return Ok(());
    }
    if !status.is_success() {
        return Err(classify(status, "GET /api/v1/registry"));
    }
    let Some(generation) = generation else {
        return Err(Fail::Away(format!(
            "the team server sent no {GENERATION_HEADER} header (is it a lex-align team server?)"
        )));
    };
    let body = resp
        .bytes()
        .await
        .map_err(|e| transport(&e, settings.timeout))?;
    if held
        .registry_generation
        .is_some_and(|applied| generation < applied)
    {
        // Never go back (a replica or a proxy cache answering stale).
        tracing::warn!(
            generation,
            applied = held.registry_generation,
            "the team server sent an older registry generation than the one applied; keeping it"
        );
        link.update(|l| {
            l.last_contact_at = Some(now());
            l.follow_error = None;
        });
        return Ok(());
    }
    match app.registry.replace_from_json(&body, "team").await {
        Ok(changed) => {
            let version = app.registry.current().registry.version.clone();
            if changed {
                tracing::info!(generation, version, "applied the team registry");
            }
            link.update(|l| {
                l.registry_generation = Some(generation);
                l.team_generation = Some(generation.max(l.team_generation.unwrap_or(0)));
                l.registry_version = Some(version);
                l.etag = etag.clone();
                l.applied_at = Some(now());
                l.last_contact_at = Some(now());
                l.follow_error = None;
            });
            let cache = Cached {
                registry_generation: generation,
                etag,
                registry_json: String::from_utf8_lossy(&body).into_owned(),
            };
            write_cache(app, &cache).await;
            Ok(())
        }
        Err(detail) => Err(Fail::Away(format!(
            "the team registry (generation {generation}) was not applied: {detail}"
        ))),
    }
}

fn record(link: &LinkCell, fail: Fail) -> bool {
    match fail {
        Fail::Auth(m) => {
            link.revoke(m);
            false
        }
        Fail::Away(m) => {
            link.update(|l| LinkCell::set_error(&mut l.follow_error, m));
            true
        }
    }
}

/// The follower loop (see the module docs). Ends when the app is gone or
/// the credential is refused.
pub async fn run(
    app: Weak<AppState>,
    link: std::sync::Arc<LinkCell>,
    settings: FollowSettings,
    client: reqwest::Client,
) {
    let mut backoff = BACKOFF_START;
    loop {
        if link.is_revoked() {
            return;
        }
        let Some(state) = app.upgrade() else { return };
        if let Err(f) = sync(&state, &link, &settings, &client).await {
            if !record(&link, f) {
                return;
            }
        }
        drop(state);

        let mut req = client
            .get(format!("{}/api/v1/registry/events", settings.url))
            .header("accept", "text/event-stream")
            .timeout(Duration::from_secs(365 * 24 * 3600));
        if let Some(b) = bearer(&settings) {
            req = req.header("authorization", b);
        }
        let opened = tokio::time::timeout(settings.timeout, req.send()).await;
        match opened {
            Ok(Ok(resp)) if resp.status().is_success() => {
                backoff = BACKOFF_START;
                link.update(|l| l.events_connected = true);
                if !read_events(&app, &link, &settings, &client, resp).await {
                    return;
                }
                link.update(|l| l.events_connected = false);
            }
            Ok(Ok(resp)) => {
                if let super::follow::Fail::Auth(m) =
                    classify(resp.status(), "GET /api/v1/registry/events")
                {
                    link.revoke(m);
                    return;
                }
                tracing::debug!(status = resp.status().as_u16(), "no event stream; polling");
            }
            Ok(Err(e)) => tracing::debug!("event stream unavailable: {e}"),
            Err(_) => tracing::debug!("event stream did not open in time"),
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(settings.poll);
    }
}

/// Reads the stream; every `registry` event triggers a revalidation.
/// `false` when the loop must end (credential refused, app gone).
async fn read_events(
    app: &Weak<AppState>,
    link: &LinkCell,
    settings: &FollowSettings,
    client: &reqwest::Client,
    mut resp: reqwest::Response,
) -> bool {
    let mut buf = String::new();
    loop {
        let chunk = match tokio::time::timeout(STREAM_IDLE, resp.chunk()).await {
            Ok(Ok(Some(c))) => c,
            Ok(Ok(None)) => return true,
            Ok(Err(e)) => {
                tracing::debug!("event stream broke: {e}");
                return true;
            }
            Err(_) => {
                tracing::debug!("event stream silent for {} s", STREAM_IDLE.as_secs());
                return true;
            }
        };
        buf.push_str(&String::from_utf8_lossy(&chunk));
        let mut saw_event = false;
        while let Some(end) = buf.find("\n\n") {
            let block: String = buf.drain(..end + 2).collect();
            if block.lines().any(|l| l.starts_with("data:")) {
                saw_event = true;
            }
        }
        if saw_event {
            let Some(state) = app.upgrade() else {
                return false;
            };
            if let Err(f) = sync(&state, link, settings, client).await {
                if !record(link, f) {
                    return false;
                }
            }
        }
    }
}
