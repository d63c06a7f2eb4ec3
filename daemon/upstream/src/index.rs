//! The package index: the JSON API (`{root}/{name}/json`,
//! `{root}/{name}/{version}/json`) or a PEP 691 simple index plus PEP 658
//! core metadata (`{file}.metadata`), with an HTML (PEP 503) fallback.
//!
//! Fallbacks, before the index is declared unavailable: a JSON API that
//! does not know a project or a release (404, or no JSON API at all) is
//! followed by the simple index next to it (`…/pypi` → `…/simple`); a
//! release's metadata comes from `{file}.metadata` (PEP 658/714), else the
//! wheel's `METADATA`, else the sdist's `PKG-INFO`.
//!
//! The JSON API's per-release `vulnerabilities` are kept as OSV records
//! (see [`index_vulnerabilities`]) for when the index is the advisory source.

use std::str::FromStr;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::time::Duration;

use lex_align_engine::advisory::{OsvAffected, OsvEvent, OsvPackage, OsvRange, OsvRecord};
use lex_align_engine::evaluate::{LicenseMetadata, Release};
use pep440_rs::Version;
use reqwest::Url;
use serde_json::{json, Value};

use crate::cache::{Codec, Entry, Tier};
use crate::dist::{dist_kind, metadata_from, DistKind};
use crate::http::{Counters, Endpoint, FetchError, Fetched, Http};
use crate::peer::Peer;
use crate::{
    canonical_name, EndpointStats, IndexError, IndexKind, PersistentCache, Project, Upstream,
    UpstreamConfig,
};

const SIMPLE_ACCEPT: &str = "application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.latest+json;q=0.9, text/html;q=0.1";

/// What an index lookup answers when no index URL is configured.
pub const NO_INDEX: &str =
    "no package index configured (set LEXALIGN_INDEX_URL, or an index in uv/pip settings)";

/// Which API the index is being spoken to with. `Undecided` only for
/// [`IndexKind::Auto`] on a `/simple` URL until the first answer.
const MODE_UNDECIDED: u8 = 0;
const MODE_JSON: u8 = 1;
const MODE_SIMPLE: u8 = 2;

pub(crate) struct IndexClient {
    http: Http,
    ep: Endpoint,
    json_root: Option<Url>,
    simple_root: Option<Url>,
    mode: AtomicU8,
    projects: Tier<Entry<Project>>,
    releases: Tier<Entry<LicenseMetadata>>,
    pages: Tier<Entry<SimplePage>>,
    /// The JSON API's `vulnerabilities` of one release, as OSV records.
    vulns: Tier<Vec<OsvRecord>>,
    /// The page tier sits under the project and release tiers: its hits and
    /// misses are not lookups of their own, so they are kept out of stats.
    page_counters: Counters,
    /// Team mode: asked on a miss before the index itself.
    peer: Option<Arc<dyn Peer>>,
    /// Peer flights (their failures fall back, so they are not errors).
    peer_counters: Counters,
    project_ttl: Duration,
    release_ttl: Duration,
    not_found_ttl: Duration,
    advisory_ttl: Duration,
    /// Names the index answered for, for "did you mean" (bounded).
    confirmed: std::sync::Mutex<std::collections::BTreeSet<String>>,
}

/// How many index-confirmed names are kept for suggestions.
const CONFIRMED_CAP: usize = 50_000;

impl IndexClient {
    pub(crate) fn new(
        cfg: &UpstreamConfig,
        http: Http,
        persistent: Option<Arc<dyn PersistentCache>>,
        peer: Option<Arc<dyn Peer>>,
    ) -> Result<IndexClient, String> {
        let url = cfg.index_url.trim();
        let cap = cfg.memory_entries;
        let client = |json_root, simple_root, mode| IndexClient {
            http,
            ep: Endpoint::new(cfg.concurrency),
            json_root,
            simple_root,
            mode: AtomicU8::new(mode),
            projects: Tier::new(cap, persistent.clone()),
            releases: Tier::new(cap, persistent.clone()),
            pages: Tier::new(cap, persistent.clone()),
            vulns: Tier::new(cap, persistent.clone()),
            page_counters: Counters::default(),
            peer: peer.clone(),
            peer_counters: Counters::default(),
            project_ttl: cfg.project_ttl,
            release_ttl: cfg.release_ttl,
            not_found_ttl: cfg.not_found_ttl,
            advisory_ttl: cfg.advisory_ttl,
            confirmed: Default::default(),
        };
        if url.is_empty() {
            // Advisories can still work; every index lookup says why not.
            return Ok(client(None, None, MODE_JSON));
        }
        let root =
            Url::parse(url).map_err(|e| format!("invalid package index URL {url:?}: {e}"))?;
        if !matches!(root.scheme(), "http" | "https") {
            return Err(format!("package index URL {url:?} must be http or https"));
        }
        let simple_suffix = root.path().trim_end_matches('/').ends_with("/simple");
        // A JSON root `…/pypi` conventionally has its simple index at
        // `…/simple`: the fallback for what the JSON API does not know.
        let simple_sibling = |root: &Url| {
            let path = root.path().trim_end_matches('/');
            path.ends_with("/pypi").then(|| {
                let mut simple = root.clone();
                simple.set_path(&format!("{}/simple", &path[..path.len() - "/pypi".len()]));
                simple
            })
        };
        let (json_root, simple_root, mode) = match cfg.index_kind {
            IndexKind::Json => {
                let simple = simple_sibling(&root);
                (Some(root), simple, MODE_JSON)
            }
            IndexKind::Simple => (None, Some(root), MODE_SIMPLE),
            IndexKind::Auto if simple_suffix => {
                // `…/simple` → `…/pypi`, where an index that has a JSON API
                // conventionally serves it; the first lookup tells.
                let mut json = root.clone();
                let path = root.path().trim_end_matches('/');
                json.set_path(&format!("{}/pypi", &path[..path.len() - "/simple".len()]));
                (Some(json), Some(root), MODE_UNDECIDED)
            }
            IndexKind::Auto => {
                let simple = simple_sibling(&root);
                (Some(root), simple, MODE_JSON)
            }
        };
        Ok(client(json_root, simple_root, mode))
    }

    pub(crate) fn stats(&self) -> EndpointStats {
        self.ep.counters.snapshot()
    }

    fn ttl<T>(&self, entry: &Entry<T>, found: Duration) -> Duration {
        match entry {
            Entry::Found(_) => found,
            Entry::NotFound => self.not_found_ttl,
        }
    }

    fn check_configured(&self) -> Result<(), IndexError> {
        if self.json_root.is_none() && self.simple_root.is_none() {
            return Err(IndexError::Unavailable(NO_INDEX.to_owned()));
        }
        Ok(())
    }

    async fn project(&self, canonical: &str) -> Result<Project, IndexError> {
        let key = format!("project:{canonical}");
        let mut entry = None;
        if let Some(peer) = &self.peer {
            entry = self
                .ask_peer(&self.projects, &key, || async {
                    Ok(match peer.project(canonical).await? {
                        Some(p) => (Entry::Found(p), self.project_ttl),
                        None => (Entry::NotFound, self.not_found_ttl),
                    })
                })
                .await;
        }
        let entry = match entry {
            Some(e) => e,
            None => {
                self.check_configured()?;
                self.projects
                    .get_or_fetch(&key, &self.ep.counters, || async {
                        let entry = self.fetch_project(canonical).await?;
                        let ttl = self.ttl(&entry, self.project_ttl);
                        Ok((entry, ttl))
                    })
                    .await
                    .map_err(IndexError::Unavailable)?
            }
        };
        match entry {
            Entry::Found(p) => {
                let mut known = self.confirmed.lock().unwrap_or_else(|e| e.into_inner());
                if known.len() < CONFIRMED_CAP && !known.contains(canonical) {
                    known.insert(canonical.to_owned());
                }
                Ok(p)
            }
            Entry::NotFound => Err(IndexError::NotFound),
        }
    }

    fn confirmed_names(&self) -> Vec<String> {
        let known = self.confirmed.lock().unwrap_or_else(|e| e.into_inner());
        known.iter().cloned().collect()
    }

    /// A value from the local tiers or the peer; `None` when the peer
    /// failed (the caller then asks the index itself).
    async fn ask_peer<V, F, Fut>(&self, tier: &Tier<V>, key: &str, ask: F) -> Option<V>
    where
        V: Clone + crate::cache::Codec,
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<(V, Duration), String>>,
    {
        if let Some(v) = tier.peek(key) {
            Counters::bump(&self.ep.counters.cache_hits);
            return Some(v);
        }
        match tier.get_or_fetch(key, &self.peer_counters, ask).await {
            Ok(v) => {
                Counters::bump(&self.ep.counters.peer);
                Some(v)
            }
            Err(e) => {
                tracing::debug!(key, "the peer did not answer ({e}); asking the index");
                None
            }
        }
    }

    /// Whether the index has a JSON API (`None` until the first answer
    /// of an `Auto` index settles it).
    pub(crate) fn has_json_api(&self) -> Option<bool> {
        match self.mode.load(Ordering::Relaxed) {
            _ if self.json_root.is_none() => Some(false),
            MODE_JSON => Some(true),
            MODE_SIMPLE => Some(false),
            _ => None,
        }
    }

    async fn fetch_project(&self, canonical: &str) -> Result<Entry<Project>, String> {
        match self.mode.load(Ordering::Relaxed) {
            MODE_JSON => match self.json_project(canonical).await {
                Ok(Entry::Found(p)) => Ok(Entry::Found(p)),
                json if self.simple_root.is_some() => {
                    // The JSON API does not know it (or failed): the simple
                    // index may, before the project is called missing.
                    let simple = self.simple_project(canonical).await;
                    if matches!(simple, Ok(Entry::Found(_))) {
                        tracing::debug!(package = canonical, json = ?json.as_ref().err(), "project from the simple index (the JSON API lacks it)");
                    }
                    combine(json, simple)
                }
                json => json.map_err(|e| e.to_string()),
            },
            MODE_SIMPLE => self.simple_project(canonical).await,
            _ => self.probe_project(canonical).await,
        }
    }

    /// `Auto` on a `/simple` URL: try the JSON API next to it, fall back to
    /// the simple index, and remember which one answered.
    async fn probe_project(&self, canonical: &str) -> Result<Entry<Project>, String> {
        let json = self.json_project(canonical).await;
        if let Ok(Entry::Found(p)) = json {
            self.mode.store(MODE_JSON, Ordering::Relaxed);
            tracing::info!(root = %self.json_root.as_ref().map(Url::as_str).unwrap_or(""), "package index has a JSON API; using it");
            return Ok(Entry::Found(p));
        }
        let simple = self.simple_project(canonical).await;
        match (&json, &simple) {
            (_, Ok(Entry::Found(_))) => {
                // The simple index knows a project the JSON root does not
                // (or the JSON root does not exist): there is no usable JSON API.
                if !matches!(
                    json,
                    Err(FetchError::Transport(_)) | Err(FetchError::Status(500..=599 | 429, _))
                ) {
                    self.mode.store(MODE_SIMPLE, Ordering::Relaxed);
                    tracing::info!("package index has no JSON API; using the simple index");
                }
                simple
            }
            (Ok(Entry::NotFound), Ok(Entry::NotFound)) => Ok(Entry::NotFound),
            (_, Err(e)) => Err(e.clone()),
            (Err(e), Ok(Entry::NotFound)) => Err(e.to_string()),
            (Ok(_), Ok(Entry::NotFound)) => Ok(Entry::NotFound),
        }
    }

    async fn release_metadata(
        &self,
        canonical: &str,
        version: &str,
    ) -> Result<LicenseMetadata, IndexError> {
        if let Some(peer) = &self.peer {
            let key = format!("release:{canonical}@{version}");
            let asked = self
                .ask_peer(&self.releases, &key, || async {
                    Ok(match peer.release(canonical, version).await? {
                        Some(m) => (Entry::Found(m), self.release_ttl),
                        None => (Entry::NotFound, self.not_found_ttl),
                    })
                })
                .await;
            match asked {
                Some(Entry::Found(m)) => return Ok(m),
                Some(Entry::NotFound) => return Err(IndexError::NotFound),
                None => {}
            }
        }
        self.check_configured()?;
        if self.mode.load(Ordering::Relaxed) == MODE_UNDECIDED {
            // Settle the API first; the project page is needed anyway.
            self.project(canonical).await?;
        }
        let entry = self
            .releases
            .get_or_fetch(
                &format!("release:{canonical}@{version}"),
                &self.ep.counters,
                || async {
                    let entry = match self.mode.load(Ordering::Relaxed) {
                        MODE_SIMPLE => self.simple_release(canonical, version).await?,
                        _ => match self.json_release(canonical, version).await {
                            Ok(Entry::Found(m)) => Entry::Found(m),
                            // The JSON API knows the project but not this
                            // release (or has no page for it): the simple
                            // index and the files' own metadata.
                            json if self.simple_root.is_some() => {
                                let simple = self.simple_release(canonical, version).await;
                                if matches!(simple, Ok(Entry::Found(_))) {
                                    tracing::debug!(package = canonical, version, "release metadata from the simple index (the JSON API lacks it)");
                                }
                                combine(json, simple)?
                            }
                            json => json.map_err(|e| e.to_string())?,
                        },
                    };
                    let ttl = self.ttl(&entry, self.release_ttl);
                    Ok((entry, ttl))
                },
            )
            .await
            .map_err(IndexError::Unavailable)?;
        match entry {
            Entry::Found(m) => Ok(m),
            Entry::NotFound => Err(IndexError::NotFound),
        }
    }

    // ---- JSON API -------------------------------------------------------

    fn json_url(&self, segments: &[&str]) -> Url {
        let mut url = self.json_root.clone().expect("JSON mode has a JSON root");
        url.path_segments_mut()
            .expect("http(s) URLs have path segments")
            .pop_if_empty()
            .extend(segments);
        url
    }

    async fn get_json(&self, url: Url) -> Result<Option<Value>, FetchError> {
        let fetched = self
            .http
            .send(&self.ep, || {
                self.http
                    .get(url.clone())
                    .header("Accept", "application/json")
            })
            .await;
        match fetched {
            Ok(f) => serde_json::from_slice(&f.body)
                .map(Some)
                .map_err(|e| FetchError::Transport(format!("{url}: response is not JSON: {e}"))),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn json_project(&self, canonical: &str) -> Result<Entry<Project>, FetchError> {
        let url = self.json_url(&[canonical, "json"]);
        let Some(doc) = self.get_json(url.clone()).await? else {
            return Ok(Entry::NotFound);
        };
        let project = parse_json_project(canonical, &doc)
            .ok_or_else(|| FetchError::Transport(format!("{url}: unexpected JSON document")))?;
        // The project page lists the latest release's vulnerabilities.
        if let Some((latest, _)) = &project.latest {
            self.keep_vulns(canonical, latest, &doc);
        }
        Ok(Entry::Found(project))
    }

    fn vulns_key(canonical: &str, version: &str) -> String {
        format!("index-vulns:{canonical}@{version}")
    }

    /// Keeps the document's `vulnerabilities` (when it has the key at all).
    fn keep_vulns(&self, canonical: &str, version: &str, doc: &Value) {
        if let Some(records) = index_vulnerabilities(canonical, version, doc) {
            self.vulns.put(
                &Self::vulns_key(canonical, version),
                &records,
                self.advisory_ttl,
            );
        }
    }

    /// The advisories the index's JSON API lists for one release.
    pub(crate) async fn release_vulns(
        &self,
        canonical: &str,
        version: &str,
    ) -> Result<Vec<OsvRecord>, String> {
        let key = Self::vulns_key(canonical, version);
        if let Some(records) = self.vulns.peek(&key) {
            Counters::bump(&self.ep.counters.cache_hits);
            return Ok(records);
        }
        if let Some(peer) = &self.peer {
            let asked = self
                .ask_peer(&self.vulns, &key, || async {
                    Ok((
                        peer.release_vulns(canonical, version).await?,
                        self.advisory_ttl,
                    ))
                })
                .await;
            if let Some(records) = asked {
                return Ok(records);
            }
        }
        self.check_configured().map_err(|e| e.to_string())?;
        if self.mode.load(Ordering::Relaxed) == MODE_UNDECIDED {
            // Settle the API first (the project page also lists the latest
            // release's vulnerabilities).
            let _ = self.project(canonical).await;
        }
        if self.json_root.is_none() || self.mode.load(Ordering::Relaxed) == MODE_SIMPLE {
            return Err(format!(
                "{}: the package index has no JSON API, so it lists no vulnerabilities",
                crate::advisories::NO_SOURCE
            ));
        }
        self.vulns
            .get_or_fetch(&key, &self.ep.counters, || async {
                let url = self.json_url(&[canonical, version, "json"]);
                let doc = match self.get_json(url.clone()).await {
                    Ok(Some(doc)) => doc,
                    Ok(None) => {
                        return Err(format!(
                            "the package index's JSON API has no page for {canonical} {version}, so the \
                             advisories it lists for that release are unknown"
                        ))
                    }
                    Err(e) => return Err(format!("advisories from the package index: {e}")),
                };
                if let Some(info) = doc.get("info").filter(|i| i.is_object()) {
                    self.releases.put(
                        &format!("release:{canonical}@{version}"),
                        &Entry::Found(metadata_from_info(info)),
                        self.release_ttl,
                    );
                }
                match index_vulnerabilities(canonical, version, &doc) {
                    Some(records) => Ok((records, self.advisory_ttl)),
                    None => Err(format!(
                        "{}: the package index's JSON API ({url}) has no `vulnerabilities` list",
                        crate::advisories::NO_SOURCE
                    )),
                }
            })
            .await
    }

    async fn json_release(
        &self,
        canonical: &str,
        version: &str,
    ) -> Result<Entry<LicenseMetadata>, FetchError> {
        // The project document already carries the latest release's metadata.
        if let Some(Entry::Found(p)) = self.projects.peek(&format!("project:{canonical}")) {
            if let Some((_, meta)) = p.latest.filter(|(v, _)| v == version) {
                return Ok(Entry::Found(meta));
            }
        }
        let url = self.json_url(&[canonical, version, "json"]);
        let Some(doc) = self.get_json(url.clone()).await? else {
            return Ok(Entry::NotFound);
        };
        let info = doc
            .get("info")
            .filter(|i| i.is_object())
            .ok_or_else(|| FetchError::Transport(format!("{url}: no `info` object")))?;
        self.keep_vulns(canonical, version, &doc);
        Ok(Entry::Found(metadata_from_info(info)))
    }

    // ---- simple API -----------------------------------------------------

    async fn simple_page(&self, canonical: &str) -> Result<Entry<SimplePage>, String> {
        self.pages
            .get_or_fetch(
                &format!("simple:{canonical}"),
                &self.page_counters,
                || async {
                    let entry = self.fetch_simple_page(canonical).await?;
                    let ttl = self.ttl(&entry, self.project_ttl);
                    Ok((entry, ttl))
                },
            )
            .await
    }

    async fn fetch_simple_page(&self, canonical: &str) -> Result<Entry<SimplePage>, String> {
        let mut url = self
            .simple_root
            .clone()
            .ok_or("no simple index configured")?;
        url.path_segments_mut()
            .expect("http(s) URLs have path segments")
            .pop_if_empty()
            .push(canonical)
            .push("");
        let fetched = self
            .http
            .send(&self.ep, || {
                self.http.get(url.clone()).header("Accept", SIMPLE_ACCEPT)
            })
            .await;
        let fetched = match fetched {
            Ok(f) => f,
            Err(e) if e.is_not_found() => return Ok(Entry::NotFound),
            Err(e) => return Err(e.to_string()),
        };
        parse_simple_page(canonical, &fetched)
            .map(Entry::Found)
            .ok_or_else(|| format!("{url}: not a simple-index project page"))
    }

    async fn simple_project(&self, canonical: &str) -> Result<Entry<Project>, String> {
        Ok(match self.simple_page(canonical).await? {
            Entry::Found(page) => Entry::Found(page.project()),
            Entry::NotFound => Entry::NotFound,
        })
    }

    async fn simple_release(
        &self,
        canonical: &str,
        version: &str,
    ) -> Result<Entry<LicenseMetadata>, String> {
        let Entry::Found(page) = self.simple_page(canonical).await? else {
            return Ok(Entry::NotFound);
        };
        let files: Vec<&SimpleFile> = page
            .files
            .iter()
            .filter(|f| {
                f.version
                    .as_deref()
                    .is_some_and(|v| same_version(v, version))
            })
            .collect();
        if files.is_empty() {
            return Ok(Entry::NotFound);
        }
        // In order: PEP 658/714 core metadata (wheels first: built, so they
        // carry the final fields), then the wheel's own METADATA, then the
        // sdist's PKG-INFO. The first that answers wins; each failure falls
        // through to the next.
        let mut with_metadata: Vec<&SimpleFile> =
            files.iter().copied().filter(|f| f.has_metadata).collect();
        with_metadata.sort_by_key(|f| !f.filename.ends_with(".whl"));
        let mut archives: Vec<(&SimpleFile, DistKind)> = files
            .iter()
            .filter_map(|f| dist_kind(&f.filename).map(|k| (*f, k)))
            .collect();
        archives.sort_by_key(|(_, k)| *k != DistKind::Wheel);
        if with_metadata.is_empty() && archives.is_empty() {
            tracing::warn!(
                package = canonical,
                version,
                "no core metadata, wheel or sdist to read; license unknown"
            );
            return Ok(Entry::Found(LicenseMetadata::default()));
        }
        let mut errors: Vec<String> = Vec::new();
        for file in with_metadata {
            match self.core_metadata_file(file).await {
                Ok(text) => return Ok(Entry::Found(parse_core_metadata(&text))),
                Err(e) => errors.push(format!("core metadata of {}: {e}", file.filename)),
            }
        }
        for (file, kind) in archives {
            match self.archive_metadata(file, kind).await {
                Ok(text) => return Ok(Entry::Found(parse_core_metadata(&text))),
                Err(e) => errors.push(format!("{}: {e}", file.filename)),
            }
        }
        Err(format!(
            "metadata of {canonical} {version} could not be read: {}",
            errors.join("; ")
        ))
    }

    /// `{file}.metadata` (PEP 658/714).
    async fn core_metadata_file(&self, file: &SimpleFile) -> Result<String, String> {
        let mut url =
            Url::parse(&file.url).map_err(|e| format!("bad file URL {}: {e}", file.url))?;
        url.set_fragment(None);
        let url = Url::parse(&format!("{url}.metadata")).map_err(|e| e.to_string())?;
        let fetched = self
            .http
            .send(&self.ep, || self.http.get(url.clone()))
            .await
            .map_err(|e| e.to_string())?;
        Ok(String::from_utf8_lossy(&fetched.body).into_owned())
    }

    /// The metadata inside the file itself (wheel `METADATA`, sdist `PKG-INFO`).
    async fn archive_metadata(&self, file: &SimpleFile, kind: DistKind) -> Result<String, String> {
        let url = Url::parse(&file.url).map_err(|e| format!("bad file URL {}: {e}", file.url))?;
        let fetched = self
            .http
            .send(&self.ep, || self.http.get(url.clone()))
            .await
            .map_err(|e| e.to_string())?;
        tokio::task::spawn_blocking(move || metadata_from(kind, &fetched.body))
            .await
            .map_err(|e| e.to_string())?
    }
}

/// One lookup's answer from the JSON API and from the simple index: found
/// by either is found; missing only when the simple index says so (it
/// lists every file, where a JSON API may lag or be absent); an error of
/// the simple index is an error even after a JSON 404, since on a mirror
/// without a JSON API that 404 says nothing.
fn combine<T>(
    json: Result<Entry<T>, FetchError>,
    simple: Result<Entry<T>, String>,
) -> Result<Entry<T>, String> {
    match (json, simple) {
        (Ok(Entry::Found(t)), _) | (_, Ok(Entry::Found(t))) => Ok(Entry::Found(t)),
        (_, Ok(Entry::NotFound)) => Ok(Entry::NotFound),
        (Ok(Entry::NotFound), Err(e)) => Err(e),
        (Err(j), Err(e)) => Err(format!("{e} (JSON API: {j})")),
    }
}

/// The index's `vulnerabilities` list of one release (the JSON API's, as
/// pip-audit's default service reads it) as OSV records that affect exactly
/// that release: `versions: [version]`, and a range closing at the first
/// `fixed_in` version above it, so the engine reports that fix. Withdrawn
/// entries are dropped. No severity is given: the records are unscored.
/// `None` when the document has no `vulnerabilities` key at all (an index
/// that does not serve them), as opposed to an empty list.
pub fn index_vulnerabilities(
    canonical: &str,
    version: &str,
    doc: &Value,
) -> Option<Vec<OsvRecord>> {
    let list = doc.get("vulnerabilities")?.as_array()?;
    let current = Version::from_str(version).ok();
    let records = list
        .iter()
        .filter(|v| {
            v.get("withdrawn")
                .is_none_or(|w| w.is_null() || w.as_str() == Some(""))
        })
        .filter_map(|v| {
            let id = v.get("id")?.as_str()?.trim().to_owned();
            if id.is_empty() {
                return None;
            }
            let strings = |key: &str| -> Vec<String> {
                v.get(key)
                    .and_then(Value::as_array)
                    .map(|a| {
                        a.iter()
                            .filter_map(Value::as_str)
                            .map(|s| s.trim().to_owned())
                            .filter(|s| !s.is_empty())
                            .collect()
                    })
                    .unwrap_or_default()
            };
            let text = |key: &str| {
                v.get(key)
                    .and_then(Value::as_str)
                    .map(str::trim)
                    .filter(|t| !t.is_empty())
                    .map(str::to_owned)
            };
            let fixed_in = strings("fixed_in");
            // The first fix above the release (fixes of older branches are
            // listed too).
            let first_fixed = fixed_in
                .iter()
                .filter_map(|f| Some((Version::from_str(f).ok()?, f)))
                .filter(|(f, _)| current.as_ref().is_some_and(|c| f > c))
                .min_by(|a, b| a.0.cmp(&b.0))
                .map(|(_, f)| f.clone());
            let ranges = match &first_fixed {
                Some(fixed) => vec![OsvRange {
                    kind: "ECOSYSTEM".to_owned(),
                    events: vec![
                        OsvEvent {
                            introduced: Some(version.to_owned()),
                            ..Default::default()
                        },
                        OsvEvent {
                            fixed: Some(fixed.clone()),
                            ..Default::default()
                        },
                    ],
                }],
                None => Vec::new(),
            };
            Some(OsvRecord {
                id,
                aliases: strings("aliases"),
                summary: text("summary"),
                details: text("details"),
                affected: vec![OsvAffected {
                    package: Some(OsvPackage {
                        ecosystem: "PyPI".to_owned(),
                        name: canonical.to_owned(),
                    }),
                    ranges,
                    versions: vec![version.to_owned()],
                    ..Default::default()
                }],
                database_specific: Some(json!({
                    "source": "package-index",
                    "fixed_in": fixed_in,
                    "link": text("link"),
                })),
                ..Default::default()
            })
        })
        .collect();
    Some(records)
}

impl Upstream {
    /// The project's releases (and the latest release's metadata when the
    /// index gives it for free). `canonical` is normalised again (PEP 503),
    /// so display spellings such as `PyYAML` or `python_dateutil` work.
    pub async fn project(&self, canonical: &str) -> Result<Project, IndexError> {
        let name = canonical_name(canonical).ok_or(IndexError::NotFound)?;
        self.inner.index.project(&name).await
    }

    /// Names known to exist, as "did you mean" candidates for a name the
    /// index does not have: every project the index has answered for in
    /// this process, and the packages the local advisory records name
    /// (all real projects, and the popular ones typosquats imitate).
    pub fn known_names(&self) -> Vec<String> {
        let mut names = self.inner.index.confirmed_names();
        names.extend(self.inner.advisories.package_names());
        names
    }

    /// The `vulnerabilities` the index's JSON API lists for one release
    /// (whatever the advisory source is; a team server serves them to its
    /// personal daemons).
    pub async fn index_release_vulns(
        &self,
        canonical: &str,
        version: &str,
    ) -> Result<Vec<OsvRecord>, String> {
        let name = canonical_name(canonical).ok_or("not a distribution name")?;
        self.inner.index.release_vulns(&name, version.trim()).await
    }

    /// License-bearing metadata of one release.
    pub async fn release_metadata(
        &self,
        canonical: &str,
        version: &str,
    ) -> Result<LicenseMetadata, IndexError> {
        let name = canonical_name(canonical).ok_or(IndexError::NotFound)?;
        self.inner
            .index
            .release_metadata(&name, version.trim())
            .await
    }
}

// ---- parsing --------------------------------------------------------------

/// Entry points for `tests/fuzz`; not an API.
#[doc(hidden)]
pub mod fuzz;

fn non_blank(v: Option<&Value>) -> Option<String> {
    v.and_then(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty() && !s.eq_ignore_ascii_case("UNKNOWN"))
        .map(str::to_owned)
}

fn metadata_from_info(info: &Value) -> LicenseMetadata {
    LicenseMetadata {
        license_expression: non_blank(info.get("license_expression")),
        license: non_blank(info.get("license")),
        classifiers: info
            .get("classifiers")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default(),
    }
}

fn parse_json_project(canonical: &str, doc: &Value) -> Option<Project> {
    let info = doc.get("info").filter(|i| i.is_object())?;
    let mut releases = Vec::new();
    if let Some(map) = doc.get("releases").and_then(Value::as_object) {
        for (version, files) in map {
            let files = files.as_array().map(Vec::as_slice).unwrap_or_default();
            // A release without files cannot be installed: skip it.
            if files.is_empty() {
                continue;
            }
            let yanked = files
                .iter()
                .all(|f| f.get("yanked").and_then(Value::as_bool) == Some(true));
            releases.push(Release {
                version: version.clone(),
                yanked,
            });
        }
    }
    sort_releases(&mut releases);
    let latest = non_blank(info.get("version")).map(|v| (v, metadata_from_info(info)));
    Some(Project {
        name: canonical.to_owned(),
        display_name: non_blank(info.get("name")),
        releases,
        latest,
    })
}

fn sort_releases(releases: &mut [Release]) {
    releases.sort_by_cached_key(|r| (Version::from_str(&r.version).ok(), r.version.clone()));
}

fn same_version(a: &str, b: &str) -> bool {
    a == b || matches!((Version::from_str(a), Version::from_str(b)), (Ok(x), Ok(y)) if x == y)
}

/// The parts of a simple-index project page we use.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct SimplePage {
    name: String,
    files: Vec<SimpleFile>,
}

#[derive(Debug, Clone, PartialEq)]
struct SimpleFile {
    filename: String,
    /// Absolute URL (relative links resolved against the page).
    url: String,
    /// Version from the file name, spelled as in the page's `versions`
    /// list when it has one.
    version: Option<String>,
    yanked: bool,
    has_metadata: bool,
}

impl SimplePage {
    fn project(&self) -> Project {
        let mut releases: Vec<Release> = Vec::new();
        for file in &self.files {
            let Some(version) = &file.version else {
                continue;
            };
            match releases.iter_mut().find(|r| &r.version == version) {
                // Yanked only if every file of the release is.
                Some(r) => r.yanked &= file.yanked,
                None => releases.push(Release {
                    version: version.clone(),
                    yanked: file.yanked,
                }),
            }
        }
        sort_releases(&mut releases);
        Project {
            name: self.name.clone(),
            display_name: None,
            releases,
            latest: None,
        }
    }
}

fn truthy_marker(v: Option<&Value>) -> bool {
    match v {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        // `{"sha256": …}`; anything else present counts as "published".
        Some(_) => true,
    }
}

fn parse_simple_page(canonical: &str, fetched: &Fetched) -> Option<SimplePage> {
    let is_json = fetched
        .content_type
        .as_deref()
        .is_some_and(|c| c.contains("json"))
        || fetched.body.first() == Some(&b'{');
    let (mut files, versions) = if is_json {
        let doc: Value = serde_json::from_slice(&fetched.body).ok()?;
        let files = doc.get("files")?.as_array()?;
        let versions: Vec<String> = doc
            .get("versions")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default();
        let files = files
            .iter()
            .filter_map(|f| {
                let filename = f.get("filename")?.as_str()?.to_owned();
                let url = fetched.url.join(f.get("url")?.as_str()?).ok()?.to_string();
                let yanked = match f.get("yanked") {
                    Some(Value::Bool(b)) => *b,
                    Some(Value::String(_)) => true,
                    _ => false,
                };
                let has_metadata =
                    truthy_marker(f.get("core-metadata").or(f.get("data-dist-info-metadata")));
                Some(SimpleFile {
                    version: version_from_filename(canonical, &filename),
                    filename,
                    url,
                    yanked,
                    has_metadata,
                })
            })
            .collect();
        (files, versions)
    } else {
        (
            parse_simple_html(
                canonical,
                &fetched.url,
                &String::from_utf8_lossy(&fetched.body),
            ),
            Vec::new(),
        )
    };
    for file in &mut files {
        if let Some(v) = &file.version {
            if let Some(listed) = versions.iter().find(|l| same_version(l, v)) {
                file.version = Some(listed.clone());
            }
        }
    }
    Some(SimplePage {
        name: canonical.to_owned(),
        files,
    })
}

/// PEP 503 HTML: one `<a href="…" data-…>filename</a>` per file.
fn parse_simple_html(canonical: &str, base: &Url, html: &str) -> Vec<SimpleFile> {
    let mut files = Vec::new();
    let mut rest = html;
    while let Some(start) = find_ci(rest, "<a ") {
        rest = &rest[start + 3..];
        let Some(end) = rest.find('>') else { break };
        let attrs = &rest[..end];
        rest = &rest[end + 1..];
        let text_end = find_ci(rest, "</a>").unwrap_or(rest.len());
        let filename = unescape_html(rest[..text_end].trim());
        let Some(href) = html_attr(attrs, "href") else {
            continue;
        };
        let Ok(url) = base.join(&unescape_html(&href)) else {
            continue;
        };
        let marker = |name: &str| html_attr(attrs, name).is_some_and(|v| v != "false");
        files.push(SimpleFile {
            version: version_from_filename(canonical, &filename),
            filename,
            url: url.to_string(),
            yanked: html_attr(attrs, "data-yanked").is_some(),
            has_metadata: marker("data-core-metadata") || marker("data-dist-info-metadata"),
        });
    }
    files
}

fn find_ci(hay: &str, needle: &str) -> Option<usize> {
    hay.to_ascii_lowercase().find(needle)
}

/// The value of `name` in an attribute list (quoted or bare; a bare
/// attribute without value gives "").
fn html_attr(attrs: &str, name: &str) -> Option<String> {
    let lower = attrs.to_ascii_lowercase();
    let mut from = 0;
    while let Some(pos) = lower[from..].find(name) {
        let at = from + pos;
        from = at + name.len();
        let before_ok = at == 0 || lower.as_bytes()[at - 1].is_ascii_whitespace();
        let after = &attrs[at + name.len()..];
        let after_trim = after.trim_start();
        if !before_ok || after.starts_with(|c: char| c.is_ascii_alphanumeric() || c == '-') {
            continue;
        }
        let Some(value) = after_trim.strip_prefix('=') else {
            return Some(String::new());
        };
        let value = value.trim_start();
        return Some(match value.chars().next() {
            Some(q @ ('"' | '\'')) => value[1..].split(q).next().unwrap_or("").to_owned(),
            _ => value.split_whitespace().next().unwrap_or("").to_owned(),
        });
    }
    None
}

fn unescape_html(s: &str) -> String {
    s.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&amp;", "&")
}

/// The version part of a distribution file name: wheels and eggs
/// (`name-version-…`, name with `_`), sdists (`name-version.tar.gz`, where
/// the name itself may contain `-`).
fn version_from_filename(canonical: &str, filename: &str) -> Option<String> {
    if let Some(stem) = filename
        .strip_suffix(".whl")
        .or_else(|| filename.strip_suffix(".egg"))
    {
        return stem.split('-').nth(1).map(str::to_owned);
    }
    let stem = [".tar.gz", ".zip", ".tar.bz2", ".tgz", ".tar.xz", ".tar"]
        .iter()
        .find_map(|ext| filename.strip_suffix(ext))?;
    stem.match_indices('-').find_map(|(i, _)| {
        let (name, version) = (&stem[..i], &stem[i + 1..]);
        (canonical_name(name).as_deref() == Some(canonical) && !version.is_empty())
            .then(|| version.to_owned())
    })
}

/// Core metadata (RFC 822 style headers; the body, the long description,
/// is ignored). Continuation lines (leading whitespace) extend the previous
/// field; the legacy `       |` prefix of multi-line License fields is removed.
pub(crate) fn parse_core_metadata(text: &str) -> LicenseMetadata {
    let mut fields: Vec<(String, String)> = Vec::new();
    for line in text.lines() {
        // Only a truly empty line ends the headers; a whitespace-only line
        // is a blank line inside a folded value.
        if line.is_empty() {
            break;
        }
        if line.starts_with([' ', '\t']) {
            if let Some((_, value)) = fields.last_mut() {
                // Continuations are indented by 8 spaces (or the legacy
                // `       |`); deeper indentation belongs to the value.
                let cont = line
                    .strip_prefix("       |")
                    .or_else(|| line.strip_prefix("        "))
                    .unwrap_or_else(|| line.trim_start());
                value.push('\n');
                value.push_str(cont);
            }
            continue;
        }
        if let Some((name, value)) = line.split_once(':') {
            fields.push((name.trim().to_ascii_lowercase(), value.trim().to_owned()));
        }
    }
    let get = |name: &str| {
        fields
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.trim().to_owned())
            .filter(|v| !v.is_empty() && !v.eq_ignore_ascii_case("UNKNOWN"))
    };
    LicenseMetadata {
        license_expression: get("license-expression"),
        license: get("license"),
        classifiers: fields
            .iter()
            .filter(|(n, _)| n == "classifier")
            .map(|(_, v)| v.clone())
            .collect(),
    }
}

// ---- persistent-cache encodings ------------------------------------------

impl Codec for LicenseMetadata {
    fn to_json(&self) -> Value {
        json!({
            "license_expression": self.license_expression,
            "license": self.license,
            "classifiers": self.classifiers,
        })
    }

    fn from_json(v: Value) -> Option<Self> {
        Some(LicenseMetadata {
            license_expression: v.get("license_expression")?.as_str().map(str::to_owned),
            license: v.get("license")?.as_str().map(str::to_owned),
            classifiers: serde_json::from_value(v.get("classifiers")?.clone()).ok()?,
        })
    }
}

impl Codec for Project {
    fn to_json(&self) -> Value {
        json!({
            "name": self.name,
            "display_name": self.display_name,
            "releases": self.releases.iter().map(|r| json!([r.version, r.yanked])).collect::<Vec<_>>(),
            "latest": self.latest.as_ref().map(|(v, m)| json!({"version": v, "metadata": m.to_json()})),
        })
    }

    fn from_json(v: Value) -> Option<Self> {
        let releases = v
            .get("releases")?
            .as_array()?
            .iter()
            .map(|r| {
                Some(Release {
                    version: r.get(0)?.as_str()?.to_owned(),
                    yanked: r.get(1)?.as_bool()?,
                })
            })
            .collect::<Option<Vec<_>>>()?;
        let latest = match v.get("latest")? {
            Value::Null => None,
            l => Some((
                l.get("version")?.as_str()?.to_owned(),
                LicenseMetadata::from_json(l.get("metadata")?.clone())?,
            )),
        };
        Some(Project {
            name: v.get("name")?.as_str()?.to_owned(),
            display_name: v.get("display_name")?.as_str().map(str::to_owned),
            releases,
            latest,
        })
    }
}

impl Codec for SimplePage {
    fn to_json(&self) -> Value {
        json!({
            "name": self.name,
            "files": self.files.iter().map(|f| json!({
                "filename": f.filename, "url": f.url, "version": f.version,
                "yanked": f.yanked, "has_metadata": f.has_metadata,
            })).collect::<Vec<_>>(),
        })
    }

    fn from_json(v: Value) -> Option<Self> {
        let files = v
            .get("files")?
            .as_array()?
            .iter()
            .map(|f| {
                Some(SimpleFile {
                    filename: f.get("filename")?.as_str()?.to_owned(),
                    url: f.get("url")?.as_str()?.to_owned(),
                    version: f.get("version")?.as_str().map(str::to_owned),
                    yanked: f.get("yanked")?.as_bool()?,
                    has_metadata: f.get("has_metadata")?.as_bool()?,
                })
            })
            .collect::<Option<Vec<_>>>()?;
        Some(SimplePage {
            name: v.get("name")?.as_str()?.to_owned(),
            files,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn redirects_to_the_canonical_name_are_followed() {
        let index = lex_align_fakes::FakeIndex::start();
        let mut cfg = UpstreamConfig::default_with(index.json_url());
        cfg.index_kind = IndexKind::Json;
        let client = IndexClient::new(&cfg, Http::new(&cfg).unwrap(), None, None).unwrap();
        // Bypass our own canonicalisation: the index answers 301.
        let got = client.json_project("PyYAML").await.unwrap();
        assert!(
            matches!(got, Entry::Found(ref p) if !p.releases.is_empty()),
            "{got:?}"
        );
        assert_eq!(index.requests_to("/pypi/PyYAML/json"), 1);
        assert_eq!(index.requests_to("/pypi/pyyaml/json"), 1);
    }

    #[test]
    fn versions_from_filenames() {
        let cases = [
            (
                "python-dateutil",
                "python_dateutil-2.9.0.post0-py2.py3-none-any.whl",
                Some("2.9.0.post0"),
            ),
            (
                "python-dateutil",
                "python-dateutil-2.9.0.post0.tar.gz",
                Some("2.9.0.post0"),
            ),
            ("pyyaml", "PyYAML-6.0.1.tar.gz", Some("6.0.1")),
            (
                "pyyaml",
                "PyYAML-6.0.1-cp312-cp312-manylinux_2_17_x86_64.whl",
                Some("6.0.1"),
            ),
            ("django", "Django-5.0.zip", Some("5.0")),
            ("django", "other-5.0.zip", None),
            ("django", "Django-5.0.exe", None),
        ];
        for (name, file, want) in cases {
            assert_eq!(version_from_filename(name, file).as_deref(), want, "{file}");
        }
    }

    #[test]
    fn core_metadata_fields() {
        let text = "Metadata-Version: 2.1\nName: demo\nVersion: 1.0\nLicense: Copyright (c) demo\n       |\n       |Permission is hereby granted\n        \n          indented\nClassifier: License :: OSI Approved :: MIT License\nClassifier: Programming Language :: Python\n\nLicense: in the body, ignored\n";
        let m = parse_core_metadata(text);
        assert_eq!(
            m.license.as_deref(),
            Some("Copyright (c) demo\n\nPermission is hereby granted\n\n  indented")
        );
        assert_eq!(m.license_expression, None);
        assert_eq!(m.classifiers.len(), 2);
        let m =
            parse_core_metadata("Metadata-Version: 2.4\nLicense-Expression: MIT OR Apache-2.0\n");
        assert_eq!(m.license_expression.as_deref(), Some("MIT OR Apache-2.0"));
    }

    #[test]
    fn html_simple_page() {
        let base = Url::parse("http://127.0.0.1:1/simple/demo/").unwrap();
        let html = r#"<html><body>
<a href="../../files/demo-1.0-py3-none-any.whl#sha256=ab" data-dist-info-metadata="sha256=cd">demo-1.0-py3-none-any.whl</a>
<a href="../../files/demo-1.1.tar.gz" data-yanked="">demo-1.1.tar.gz</a>
</body></html>"#;
        let files = parse_simple_html("demo", &base, html);
        assert_eq!(files.len(), 2);
        assert_eq!(
            files[0].url,
            "http://127.0.0.1:1/files/demo-1.0-py3-none-any.whl#sha256=ab"
        );
        assert!(files[0].has_metadata && !files[0].yanked);
        assert!(!files[1].has_metadata && files[1].yanked);
        assert_eq!(files[1].version.as_deref(), Some("1.1"));
    }
}
