//! Upstream sharing: a team server serves what its upstream clients cached
//! (or fetch now) to its personal daemons, so a team asks the package
//! index and the advisory source once per package, not once per laptop.
//!
//! Team server side: `GET /api/v1/upstream/project/{name}`,
//! `/release/{name}/{version}`, `/release-vulns/{name}/{version}` and
//! `/advisories/{name}` (agent role: a personal daemon's key). Answers are
//! `200 {"found", …}` (a package the index does not know is a real answer),
//! or 503 when the team's own upstream failed.
//!
//! Personal daemon side: [`TeamPeer`] is the upstream clients' peer. Any
//! failure falls back to the daemon's own upstream, and after one the team
//! is skipped for the poll interval, so a stopped team server costs one
//! timeout, not one per lookup.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use lex_align_engine::advisory::OsvRecord;
use lex_align_engine::evaluate::AdvisoryFacts;
use lex_align_engine::license::LicenseMetadata;
use lex_align_upstream::peer::{self, Peer, PeerFuture};
use lex_align_upstream::{canonical_name, IndexError, Project};
use serde_json::{json, Value};

use super::{bearer, FollowSettings};
use crate::http::errors::json_response;
use crate::http::Shared;

/// The upstream routes (merged into the team routes).
pub fn routes() -> axum::Router<Shared> {
    use axum::routing::get;
    axum::Router::new()
        .route("/api/v1/upstream/project/{name}", get(project))
        .route("/api/v1/upstream/release/{name}/{version}", get(release))
        .route(
            "/api/v1/upstream/release-vulns/{name}/{version}",
            get(release_vulns),
        )
        .route("/api/v1/upstream/advisories/{name}", get(advisories))
}

/// The team's own upstream failed. Its error stays in the team's log: it
/// may name the team's index URL (and any credential in it).
fn unavailable(what: &str, error: &str) -> Response {
    tracing::debug!(
        what,
        "upstream sharing: the team's upstream failed: {error}"
    );
    json_response(
        StatusCode::SERVICE_UNAVAILABLE,
        &json!({"detail": "the team server's upstream did not answer"}),
    )
}

fn refused(detail: &'static str) -> Response {
    json_response(StatusCode::NOT_FOUND, &json!({ "detail": detail }))
}

/// A distribution name (PEP 503 form) or nothing: only such names reach
/// the team's upstreams through these routes.
fn name_of(raw: &str) -> Option<String> {
    (raw.len() <= crate::http::MAX_PACKAGE)
        .then(|| canonical_name(raw))
        .flatten()
}

/// The canonical name and a checked version, or the 404 that refuses them.
fn name_version(name: &str, version: &str) -> Result<(String, String), &'static str> {
    let name = name_of(name).ok_or("not a distribution name")?;
    if !peer::is_version_segment(version) {
        return Err("not a version");
    }
    Ok((name, version.to_owned()))
}

fn upstream_of(app: &Shared) -> Option<&lex_align_upstream::Upstream> {
    app.evaluator.upstream.as_ref()
}

fn no_upstream() -> Response {
    json_response(
        StatusCode::SERVICE_UNAVAILABLE,
        &json!({"detail": "this team server has no upstream clients"}),
    )
}

fn found_or_not(what: &str, field: &str, answer: Result<Value, IndexError>) -> Response {
    match answer {
        Ok(v) => json_response(StatusCode::OK, &json!({"found": true, field: v})),
        Err(IndexError::NotFound) => json_response(StatusCode::OK, &json!({"found": false})),
        Err(IndexError::Unavailable(e)) => unavailable(what, &e),
    }
}

fn records_or_not(what: &str, answer: Result<Vec<OsvRecord>, String>) -> Response {
    match answer {
        Ok(r) => json_response(
            StatusCode::OK,
            &json!({"records": peer::encode_records(&r)}),
        ),
        Err(e) => unavailable(what, &e),
    }
}

async fn project(State(app): State<Shared>, Path(name): Path<String>) -> Response {
    let Some(name) = name_of(&name) else {
        return refused("not a distribution name");
    };
    let Some(up) = upstream_of(&app) else {
        return no_upstream();
    };
    let answer = up.project(&name).await.map(|p| peer::encode_project(&p));
    found_or_not("project", "project", answer)
}

async fn release(
    State(app): State<Shared>,
    Path((name, version)): Path<(String, String)>,
) -> Response {
    let (name, version) = match name_version(&name, &version) {
        Ok(nv) => nv,
        Err(why) => return refused(why),
    };
    let Some(up) = upstream_of(&app) else {
        return no_upstream();
    };
    let answer = up
        .release_metadata(&name, &version)
        .await
        .map(|m| peer::encode_metadata(&m));
    found_or_not("release", "metadata", answer)
}

async fn release_vulns(
    State(app): State<Shared>,
    Path((name, version)): Path<(String, String)>,
) -> Response {
    let (name, version) = match name_version(&name, &version) {
        Ok(nv) => nv,
        Err(why) => return refused(why),
    };
    let Some(up) = upstream_of(&app) else {
        return no_upstream();
    };
    records_or_not(
        "release vulnerabilities",
        up.index_release_vulns(&name, &version).await,
    )
}

async fn advisories(State(app): State<Shared>, Path(name): Path<String>) -> Response {
    let Some(name) = name_of(&name) else {
        return refused("not a distribution name");
    };
    let Some(up) = upstream_of(&app) else {
        return no_upstream();
    };
    let answer = match up.advisories(&name).await {
        AdvisoryFacts::Found(r) => Ok(r),
        AdvisoryFacts::Unavailable(e) => Err(e),
    };
    records_or_not("advisories", answer)
}

/// The personal daemon's peer: the team server's upstream routes.
pub struct TeamPeer {
    settings: FollowSettings,
    /// Per request: the team timeout, capped at half the evaluate budget
    /// so a stopped team leaves time for the own upstream.
    timeout: Duration,
    client: reqwest::Client,
    /// After a failure, the team is not asked again until then.
    skip_until: Mutex<Option<Instant>>,
}

impl TeamPeer {
    pub fn new(settings: FollowSettings, evaluate_budget: Duration) -> anyhow::Result<TeamPeer> {
        let timeout = settings.timeout.min(evaluate_budget / 2);
        let client = reqwest::Client::builder()
            .connect_timeout(timeout)
            .build()
            .map_err(|e| anyhow::anyhow!("team mode: HTTP client: {e}"))?;
        Ok(TeamPeer {
            settings,
            timeout,
            client,
            skip_until: Mutex::new(None),
        })
    }

    fn skip_window(&self) -> Duration {
        self.settings.poll
    }

    /// `GET <team>/api/v1/upstream/<segments…>` (each segment escaped).
    async fn get(&self, segments: &[&str]) -> Result<Value, String> {
        if let Some(until) = *self.skip_until.lock().unwrap_or_else(|p| p.into_inner()) {
            if Instant::now() < until {
                return Err("the team server failed recently; not asked".into());
            }
        }
        let mut url = reqwest::Url::parse(&self.settings.url).map_err(|e| e.to_string())?;
        url.path_segments_mut()
            .map_err(|_| "the team URL cannot take a path".to_string())?
            .pop_if_empty()
            .extend(["api", "v1", "upstream"])
            .extend(segments);
        let out = self.fetch(url).await;
        let mut skip = self.skip_until.lock().unwrap_or_else(|p| p.into_inner());
        *skip = match &out {
            // 503 is the team's upstream failing, not the team: no skip.
            Err((true, _)) => Some(Instant::now() + self.skip_window()),
            _ => None,
        };
        out.map_err(|(_, e)| e)
    }

    /// `Err((team_failed, why))`.
    async fn fetch(&self, url: reqwest::Url) -> Result<Value, (bool, String)> {
        let mut req = self.client.get(url).timeout(self.timeout);
        if let Some(b) = bearer(&self.settings) {
            req = req.header("authorization", b);
        }
        let resp = req
            .send()
            .await
            .map_err(|e| (true, format!("team server: {e}")))?;
        let status = resp.status();
        if status == StatusCode::SERVICE_UNAVAILABLE {
            let detail = resp.text().await.unwrap_or_default();
            return Err((false, format!("the team's upstream failed: {detail}")));
        }
        if !status.is_success() {
            return Err((
                true,
                format!("team server answered HTTP {}", status.as_u16()),
            ));
        }
        read_capped(resp)
            .await
            .map_err(|e| (true, format!("team server: unreadable answer: {e}")))
    }
}

/// The answer's JSON, refused past [`peer::MAX_ANSWER_BYTES`] (read in
/// chunks, so an endless body costs at most that much memory).
async fn read_capped(mut resp: reqwest::Response) -> Result<Value, String> {
    let cap = peer::MAX_ANSWER_BYTES;
    if resp.content_length().is_some_and(|n| n > cap as u64) {
        return Err(format!("more than {cap} bytes"));
    }
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(|e| e.to_string())? {
        if body.len() + chunk.len() > cap {
            return Err(format!("more than {cap} bytes"));
        }
        body.extend_from_slice(&chunk);
    }
    serde_json::from_slice(&body).map_err(|e| e.to_string())
}

fn found<T>(
    v: Value,
    field: &str,
    decode: impl FnOnce(Value) -> Option<T>,
) -> Result<Option<T>, String> {
    match v.get("found").and_then(Value::as_bool) {
        Some(false) => Ok(None),
        Some(true) => v
            .get(field)
            .cloned()
            .and_then(decode)
            .map(Some)
            .ok_or_else(|| format!("team server: no readable `{field}`")),
        None => Err("team server: no `found` in the answer".into()),
    }
}

fn records(v: Value) -> Result<Vec<OsvRecord>, String> {
    v.get("records")
        .cloned()
        .and_then(peer::decode_records)
        .ok_or_else(|| "team server: no readable `records`".into())
}

/// An odd version is not sent (the team would refuse it, and its refusal
/// would read as the team failing); the own upstream answers it.
fn check_version(v: &str) -> Result<(), String> {
    if peer::is_version_segment(v) {
        Ok(())
    } else {
        Err("not a version the team is asked about".into())
    }
}

impl Peer for TeamPeer {
    fn project<'a>(&'a self, canonical: &'a str) -> PeerFuture<'a, Option<Project>> {
        Box::pin(async move {
            let v = self.get(&["project", canonical]).await?;
            found(v, "project", peer::decode_project)
        })
    }

    fn release<'a>(
        &'a self,
        canonical: &'a str,
        version: &'a str,
    ) -> PeerFuture<'a, Option<LicenseMetadata>> {
        Box::pin(async move {
            check_version(version)?;
            let v = self.get(&["release", canonical, version]).await?;
            found(v, "metadata", peer::decode_metadata)
        })
    }

    fn release_vulns<'a>(
        &'a self,
        canonical: &'a str,
        version: &'a str,
    ) -> PeerFuture<'a, Vec<OsvRecord>> {
        Box::pin(async move {
            check_version(version)?;
            let v = self.get(&["release-vulns", canonical, version]).await?;
            records(v)
        })
    }

    fn advisories<'a>(&'a self, canonical: &'a str) -> PeerFuture<'a, Vec<OsvRecord>> {
        Box::pin(async move {
            let v = self.get(&["advisories", canonical]).await?;
            records(v)
        })
    }
}
