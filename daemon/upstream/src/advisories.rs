//! Advisories of a package, from the first source configured:
//!
//! 1. the OSV API (all of a package's records, no version — matching is
//!    local — paged; many packages at once through `querybatch` +
//!    `vulns/{id}`);
//! 2. an offline source the operator names (directory or zip);
//! 3. the OSV export synced into the data directory (`lex-align advisories
//!    sync`), watched, reloaded and re-synced on a cadence;
//! 4. the package index itself: the `vulnerabilities` its JSON API lists
//!    per release (no severities), asked for the resolved version;
//! 5. none: every lookup says so.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime};

use futures_util::future::join_all;
use lex_align_engine::advisory::OsvRecord;
use lex_align_engine::evaluate::AdvisoryFacts;
use reqwest::Url;
use serde_json::{json, Value};

use crate::cache::{Codec, Tier};
use crate::export::{self, human_duration, unix, unix_now};
use crate::http::{Counters, Endpoint, Http};
use crate::offline::OfflineAdvisories;
use crate::peer::Peer;
use crate::{canonical_name, EndpointStats, PersistentCache, Upstream, UpstreamConfig};

/// Peer lookups of one batch in flight at once.
const PEER_CONCURRENCY: usize = 16;

/// What a lookup answers when there is no advisory source at all.
pub const NO_SOURCE: &str = "no advisory source: none is configured and the package index serves no \
     advisories (set LEXALIGN_OSV_URL, or LEXALIGN_OFFLINE_ADVISORIES, or run `lex-align advisories sync`)";

/// How often the synced export's file is looked at for changes.
const WATCH_EVERY: Duration = Duration::from_secs(60);
/// Wait after a failed re-sync before the next try (capped by the cadence).
const RETRY_AFTER_FAILURE: Duration = Duration::from_secs(3600);

/// Which source answers advisory lookups.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdvisorySourceKind {
    OsvApi,
    Offline,
    Export,
    PackageIndex,
    None,
}

impl AdvisorySourceKind {
    pub fn as_str(self) -> &'static str {
        match self {
            AdvisorySourceKind::OsvApi => "osv-api",
            AdvisorySourceKind::Offline => "offline",
            AdvisorySourceKind::Export => "export",
            AdvisorySourceKind::PackageIndex => "package-index",
            AdvisorySourceKind::None => "none",
        }
    }
}

/// The advisory source in use and the age of its data, for health,
/// `status` and `quickstart`.
#[derive(Debug, Clone, PartialEq)]
pub struct AdvisorySourceInfo {
    pub kind: AdvisorySourceKind,
    /// URL of the API or export, or path of the offline source.
    pub location: Option<String>,
    /// Records held (local sources, once loaded).
    pub records: Option<usize>,
    /// When the data was fetched (Unix seconds): the export's sync, the
    /// newest `modified` of offline records, else the file's time.
    pub updated_at: Option<u64>,
    /// Re-sync cadence of the export.
    pub resync_every: Option<Duration>,
    /// When the next re-sync is due (Unix seconds).
    pub next_sync_at: Option<u64>,
    /// Why the last re-sync failed, while it has not succeeded since.
    pub last_sync_error: Option<String>,
    /// The index could not be asked yet whether it has a JSON API (only
    /// for [`AdvisorySourceKind::PackageIndex`] before the first lookup).
    pub unconfirmed: bool,
}

impl AdvisorySourceInfo {
    fn bare(kind: AdvisorySourceKind, location: Option<String>) -> AdvisorySourceInfo {
        AdvisorySourceInfo {
            kind,
            location,
            records: None,
            updated_at: None,
            resync_every: None,
            next_sync_at: None,
            last_sync_error: None,
            unconfirmed: false,
        }
    }

    /// Seconds since the data was fetched.
    pub fn age_secs(&self) -> Option<u64> {
        self.updated_at.map(|t| unix_now().saturating_sub(t))
    }

    /// One line for people, e.g. `OSV PyPI export /d/advisories/osv-pypi.zip
    /// (14021 records, synced 3 h ago from …; re-synced every 24 h)`.
    pub fn summary(&self) -> String {
        let loc = self.location.as_deref().unwrap_or("?");
        let age = self
            .age_secs()
            .map(|a| format!("{} ago", human_duration(a)));
        let records = self.records.map(|n| format!("{n} records"));
        match self.kind {
            AdvisorySourceKind::OsvApi => format!("OSV API at {loc} (asked live)"),
            AdvisorySourceKind::Offline => {
                let mut parts: Vec<String> = records.into_iter().collect();
                if let Some(a) = age {
                    parts.push(format!("data from {a}"));
                }
                parts.push("never refreshed by lex-align".to_owned());
                format!("offline OSV records at {loc} ({})", parts.join(", "))
            }
            AdvisorySourceKind::Export => {
                let mut parts: Vec<String> = records.into_iter().collect();
                parts.push(match age {
                    Some(a) => format!("synced {a}"),
                    None => "sync time unknown".to_owned(),
                });
                parts.push(match self.resync_every {
                    Some(every) => format!("re-synced every {}", human_duration(every.as_secs())),
                    None => "not re-synced automatically".to_owned(),
                });
                if let Some(e) = &self.last_sync_error {
                    parts.push(format!("last re-sync failed: {e}"));
                }
                format!("OSV PyPI export at {loc} ({})", parts.join(", "))
            }
            AdvisorySourceKind::PackageIndex => format!(
                "the package index's own per-release `vulnerabilities`{} (asked live; no severities, \
                 so each counts as meeting the CVE threshold unless LEXALIGN_UNSCORED_ADVISORIES=provisional; \
                 `lex-align advisories sync` gets the OSV data offline)",
                if self.unconfirmed {
                    " (if it has a JSON API)"
                } else {
                    ""
                }
            ),
            AdvisorySourceKind::None => "none: the vulnerability gate cannot run. Set LEXALIGN_OSV_URL or \
                 LEXALIGN_OFFLINE_ADVISORIES, run `lex-align advisories sync`, or use an index whose JSON API \
                 lists vulnerabilities"
                .to_owned(),
        }
    }
}

/// The source a configuration selects, without loading or asking anything
/// (for `quickstart` and `check-config`, before a daemon runs).
pub fn describe_advisory_source(cfg: &UpstreamConfig) -> AdvisorySourceInfo {
    if let Some(path) = &cfg.offline_advisories {
        let mut info = AdvisorySourceInfo::bare(
            AdvisorySourceKind::Offline,
            Some(path.display().to_string()),
        );
        info.updated_at = file_time(path).map(unix);
        return info;
    }
    if let Some(url) = &cfg.osv_url {
        return AdvisorySourceInfo::bare(AdvisorySourceKind::OsvApi, Some(url.clone()));
    }
    if let Some(path) = cfg.advisory_export.as_deref().filter(|p| p.is_file()) {
        let meta = export::read_meta(path);
        let mut info =
            AdvisorySourceInfo::bare(AdvisorySourceKind::Export, Some(path.display().to_string()));
        info.records = meta.as_ref().map(|m| m.records);
        info.updated_at = export::synced_at(path);
        info.resync_every = cfg.export_resync;
        info.next_sync_at = cfg
            .export_resync
            .zip(info.updated_at)
            .map(|(every, at)| at + every.as_secs());
        return info;
    }
    if cfg.index_advisories
        && !cfg.index_url.trim().is_empty()
        && cfg.index_kind != crate::IndexKind::Simple
    {
        let mut info = AdvisorySourceInfo::bare(
            AdvisorySourceKind::PackageIndex,
            Some(cfg.index_url.clone()),
        );
        info.unconfirmed = cfg.index_kind == crate::IndexKind::Auto;
        return info;
    }
    AdvisorySourceInfo::bare(AdvisorySourceKind::None, None)
}

fn file_time(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).ok()?.modified().ok()
}

/// The synced export, once loaded.
struct LoadedExport {
    data: Arc<OfflineAdvisories>,
    /// The file's modification time when loaded (a change means a new sync).
    mtime: Option<SystemTime>,
    synced_at: Option<u64>,
    url: Option<String>,
}

/// The export file the daemon watches and re-syncs.
struct ExportSlot {
    path: PathBuf,
    loaded: RwLock<Option<LoadedExport>>,
    /// (when the last re-sync failed, why), until one succeeds.
    failure: Mutex<Option<(u64, String)>>,
}

impl ExportSlot {
    fn new(path: PathBuf) -> ExportSlot {
        let slot = ExportSlot {
            path,
            loaded: RwLock::new(None),
            failure: Mutex::new(None),
        };
        if slot.path.is_file() {
            match OfflineAdvisories::load(&slot.path) {
                Ok(data) => slot.swap(data),
                // A broken copy must not stop the daemon: the next sync
                // replaces it; meanwhile the next source answers (health says which).
                Err(e) => {
                    tracing::error!(path = %slot.path.display(), "synced advisory export unusable: {e}")
                }
            }
        }
        slot
    }

    fn swap(&self, data: OfflineAdvisories) {
        let meta = export::read_meta(&self.path);
        let loaded = LoadedExport {
            data: Arc::new(data),
            mtime: file_time(&self.path),
            synced_at: meta
                .as_ref()
                .map(|m| m.synced_at)
                .or_else(|| export::synced_at(&self.path)),
            url: meta.map(|m| m.url),
        };
        tracing::info!(
            records = loaded.data.record_count(),
            path = %self.path.display(),
            "advisories: using the synced OSV export"
        );
        *self.loaded.write().unwrap() = Some(loaded);
    }

    fn data(&self) -> Option<Arc<OfflineAdvisories>> {
        self.loaded.read().unwrap().as_ref().map(|l| l.data.clone())
    }
}

/// `(id, modified)` of each advisory `querybatch` lists for a package.
type Listing = Vec<(String, Option<String>)>;

/// OSV's documented maximum number of queries per `querybatch` call.
const BATCH_CHUNK: usize = 1000;
/// Safety stop for a server that keeps handing out page tokens.
const MAX_PAGES: usize = 100;

pub(crate) struct AdvisorySource {
    http: Http,
    ep: Endpoint,
    base: Option<Url>,
    /// The operator's offline source (fixed for the process's life).
    offline: Option<Arc<OfflineAdvisories>>,
    offline_path: Option<PathBuf>,
    export: Option<ExportSlot>,
    /// Fall back to the index's own `vulnerabilities`.
    index_advisories: bool,
    resync_every: Option<Duration>,
    lists: Tier<Vec<OsvRecord>>,
    vulns: Tier<OsvRecord>,
    /// Team mode: asked on a miss before the advisory API.
    peer: Option<Arc<dyn Peer>>,
    peer_counters: Counters,
    advisory_ttl: Duration,
    /// Records are revalidated by their `modified` stamp, so they can live long.
    vuln_ttl: Duration,
}

/// `OSV_API_URL` in the original's form is the full `…/v1/query` endpoint;
/// we need the root that also serves `/v1/querybatch` and `/v1/vulns/{id}`.
pub fn osv_base(url: &str) -> Result<Url, String> {
    let trimmed = url.trim().trim_end_matches('/');
    let base = ["/v1/query", "/v1/querybatch", "/v1"]
        .iter()
        .find_map(|suffix| trimmed.strip_suffix(suffix))
        .unwrap_or(trimmed);
    let parsed = Url::parse(base).map_err(|e| format!("invalid OSV API URL {url:?}: {e}"))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(format!("OSV API URL {url:?} must be http or https"));
    }
    Ok(parsed)
}

impl AdvisorySource {
    pub(crate) fn new(
        cfg: &UpstreamConfig,
        http: Http,
        persistent: Option<Arc<dyn PersistentCache>>,
        peer: Option<Arc<dyn Peer>>,
    ) -> Result<AdvisorySource, String> {
        let offline = cfg
            .offline_advisories
            .as_deref()
            .map(OfflineAdvisories::load)
            .transpose()?
            .map(Arc::new);
        let base = match (&offline, &cfg.osv_url) {
            (None, Some(url)) => Some(osv_base(url)?),
            _ => None,
        };
        let export = match (&offline, &base, &cfg.advisory_export) {
            (None, None, Some(path)) => Some(ExportSlot::new(path.clone())),
            _ => None,
        };
        Ok(AdvisorySource {
            http,
            ep: Endpoint::new(cfg.concurrency),
            base,
            offline,
            offline_path: cfg.offline_advisories.clone(),
            export,
            index_advisories: cfg.index_advisories,
            resync_every: cfg.export_resync,
            lists: Tier::new(cfg.memory_entries, persistent.clone()),
            vulns: Tier::new(cfg.memory_entries.saturating_mul(4), persistent),
            peer,
            peer_counters: Counters::default(),
            advisory_ttl: cfg.advisory_ttl,
            vuln_ttl: cfg.release_ttl,
        })
    }

    pub(crate) fn stats(&self) -> EndpointStats {
        self.ep.counters.snapshot()
    }

    pub(crate) fn offline_count(&self) -> Option<usize> {
        self.local().map(|o| o.record_count())
    }

    /// Packages the local records name.
    pub(crate) fn package_names(&self) -> Vec<String> {
        self.local().map(|o| o.package_names()).unwrap_or_default()
    }

    /// The local records in use: the operator's offline source, else the
    /// synced export once it is loaded.
    fn local(&self) -> Option<Arc<OfflineAdvisories>> {
        self.offline
            .clone()
            .or_else(|| self.export.as_ref().and_then(ExportSlot::data))
    }

    /// Whether lookups go to the index, per release (no API, nothing local).
    pub(crate) fn per_release(&self) -> bool {
        self.base.is_none() && self.local().is_none() && self.index_advisories
    }

    /// `has_json_api`: what the index client knows (`None` before its
    /// first answer).
    pub(crate) fn info(&self, has_json_api: Option<bool>) -> AdvisorySourceInfo {
        if let Some(base) = &self.base {
            return AdvisorySourceInfo::bare(AdvisorySourceKind::OsvApi, Some(base.to_string()));
        }
        if let Some(o) = &self.offline {
            let mut info = AdvisorySourceInfo::bare(
                AdvisorySourceKind::Offline,
                self.offline_path.as_ref().map(|p| p.display().to_string()),
            );
            info.records = Some(o.record_count());
            info.updated_at = o
                .newest_modified()
                .or_else(|| self.offline_path.as_deref().and_then(file_time).map(unix));
            return info;
        }
        if let Some(slot) = &self.export {
            if let Some(l) = slot.loaded.read().unwrap().as_ref() {
                let mut info = AdvisorySourceInfo::bare(
                    AdvisorySourceKind::Export,
                    Some(slot.path.display().to_string()),
                );
                info.records = Some(l.data.record_count());
                info.updated_at = l.synced_at;
                info.resync_every = self.resync_every;
                info.next_sync_at = self.next_sync_at(slot, l.synced_at);
                info.last_sync_error = slot.failure.lock().unwrap().as_ref().map(|f| f.1.clone());
                return info;
            }
        }
        if self.index_advisories && has_json_api != Some(false) {
            let mut info = AdvisorySourceInfo::bare(AdvisorySourceKind::PackageIndex, None);
            info.unconfirmed = has_json_api.is_none();
            return info;
        }
        AdvisorySourceInfo::bare(AdvisorySourceKind::None, None)
    }

    fn next_sync_at(&self, slot: &ExportSlot, synced_at: Option<u64>) -> Option<u64> {
        let every = self.resync_every?;
        let mut due = synced_at.unwrap_or(0) + every.as_secs();
        if let Some((failed, _)) = *slot.failure.lock().unwrap() {
            due = due.max(failed + every.min(RETRY_AFTER_FAILURE).as_secs());
        }
        Some(due)
    }

    /// One round of export upkeep: reload a changed file, re-sync when due.
    async fn export_tick(&self, cfg: &UpstreamConfig) {
        let Some(slot) = &self.export else { return };
        let mtime = file_time(&slot.path);
        let loaded_mtime = slot.loaded.read().unwrap().as_ref().map(|l| l.mtime);
        match (mtime, loaded_mtime) {
            (None, Some(_)) => {
                tracing::warn!(path = %slot.path.display(), "synced advisory export removed; no longer used");
                *slot.loaded.write().unwrap() = None;
            }
            (Some(now), was) if was != Some(Some(now)) => {
                let path = slot.path.clone();
                match tokio::task::spawn_blocking(move || OfflineAdvisories::load(&path)).await {
                    Ok(Ok(data)) => slot.swap(data),
                    Ok(Err(e)) => {
                        tracing::error!(path = %slot.path.display(), "synced advisory export unusable: {e}");
                        // Do not try the same broken file every tick.
                        if let Some(l) = slot.loaded.write().unwrap().as_mut() {
                            l.mtime = Some(now);
                        }
                    }
                    Err(e) => tracing::error!("loading the advisory export failed: {e}"),
                }
            }
            _ => {}
        }
        // Re-sync only an export that exists: the operator opted in by
        // syncing once; a fresh install never downloads by itself.
        let synced_at = slot.loaded.read().unwrap().as_ref().map(|l| l.synced_at);
        let Some(synced_at) = synced_at else { return };
        let Some(due) = self.next_sync_at(slot, synced_at) else {
            return;
        };
        if unix_now() < due {
            return;
        }
        let recorded = slot
            .loaded
            .read()
            .unwrap()
            .as_ref()
            .and_then(|l| l.url.clone());
        let url = cfg
            .export_url
            .clone()
            .or(recorded)
            .unwrap_or_else(|| export::DEFAULT_EXPORT_URL.to_owned());
        tracing::info!(%url, "re-syncing the OSV advisory export");
        match export::sync_export(&url, &slot.path, cfg.timeout, &mut |_, _| {}).await {
            Ok(synced) => {
                *slot.failure.lock().unwrap() = None;
                slot.swap(synced.data);
            }
            Err(e) => {
                tracing::warn!(
                    "advisory export re-sync failed (the previous copy stays in use): {e}"
                );
                *slot.failure.lock().unwrap() = Some((unix_now(), e));
            }
        }
    }

    fn url(&self, segments: &[&str]) -> Result<Url, String> {
        let mut url = self.base.clone().ok_or(NO_SOURCE)?;
        url.path_segments_mut()
            .expect("http(s) URLs have path segments")
            .pop_if_empty()
            .extend(segments);
        Ok(url)
    }

    async fn post(&self, url: &Url, body: &Value) -> Result<Value, String> {
        let fetched = self
            .http
            .send(&self.ep, || self.http.post(url.clone()).json(body))
            .await
            .map_err(|e| format!("advisory API: {e}"))?;
        serde_json::from_slice(&fetched.body)
            .map_err(|e| format!("advisory API {url}: response is not JSON: {e}"))
    }

    async fn advisories(&self, canonical: &str) -> AdvisoryFacts {
        if let Some(offline) = self.local() {
            return AdvisoryFacts::Found(offline.for_package(canonical));
        }
        if self.base.is_none() && self.index_advisories {
            return AdvisoryFacts::Unavailable(
                "the package index lists advisories per release: ask with the resolved version"
                    .to_owned(),
            );
        }
        if let Some(records) = self.ask_peer(canonical).await {
            return AdvisoryFacts::Found(records);
        }
        let result = self
            .lists
            .get_or_fetch(
                &format!("advisories:{canonical}"),
                &self.ep.counters,
                || async {
                    let records = self.query_all(canonical).await?;
                    Ok((records, self.advisory_ttl))
                },
            )
            .await;
        match result {
            Ok(records) => AdvisoryFacts::Found(records),
            Err(e) => AdvisoryFacts::Unavailable(e),
        }
    }

    /// The package's list from the local tiers or the peer; `None` when
    /// there is no peer or it failed.
    async fn ask_peer(&self, canonical: &str) -> Option<Vec<OsvRecord>> {
        let peer = self.peer.as_ref()?;
        let key = format!("advisories:{canonical}");
        if let Some(v) = self.lists.peek(&key) {
            Counters::bump(&self.ep.counters.cache_hits);
            return Some(v);
        }
        let asked = self
            .lists
            .get_or_fetch(&key, &self.peer_counters, || async {
                Ok((peer.advisories(canonical).await?, self.advisory_ttl))
            })
            .await;
        match asked {
            Ok(v) => {
                Counters::bump(&self.ep.counters.peer);
                Some(v)
            }
            Err(e) => {
                tracing::debug!(
                    package = canonical,
                    "the peer did not answer ({e}); asking the advisory API"
                );
                None
            }
        }
    }

    /// Every record of the package, following `next_page_token`.
    async fn query_all(&self, canonical: &str) -> Result<Vec<OsvRecord>, String> {
        let url = self.url(&["v1", "query"])?;
        let mut records = Vec::new();
        let mut token: Option<String> = None;
        for _ in 0..MAX_PAGES {
            let mut body = json!({"package": {"name": canonical, "ecosystem": "PyPI"}});
            if let Some(t) = &token {
                body["page_token"] = Value::String(t.clone());
            }
            let doc = self.post(&url, &body).await?;
            for v in doc
                .get("vulns")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                match serde_json::from_value::<OsvRecord>(v.clone()) {
                    // Not stored per id: the list is cached as a whole, and
                    // a hundred persistent writes per lookup would cost more
                    // than the rare batch revalidation they could save.
                    Ok(record) => records.push(record),
                    // A record we cannot read must not pass as "no advisory".
                    Err(e) => {
                        return Err(format!(
                            "advisory API returned an unreadable record for {canonical}: {e}"
                        ))
                    }
                }
            }
            token = page_token(&doc);
            if token.is_none() {
                return Ok(records);
            }
        }
        Err(format!(
            "advisory API: more than {MAX_PAGES} pages for {canonical}"
        ))
    }

    /// `fresh`: skip the cached lists (records still reused by revision)
    /// and put what the source answers now into the shared cache.
    async fn batch(&self, names: &[String], fresh: bool) -> HashMap<String, AdvisoryFacts> {
        let mut out = HashMap::new();
        let canon: Vec<(String, Option<String>)> = names
            .iter()
            .map(|n| (n.clone(), canonical_name(n)))
            .collect();
        if let Some(offline) = self.local() {
            for (given, _) in canon {
                let facts = AdvisoryFacts::Found(offline.for_package(&given));
                out.insert(given, facts);
            }
            return out;
        }
        // Cached lists first; the rest go upstream in one batched round.
        let mut facts: HashMap<String, AdvisoryFacts> = HashMap::new();
        let mut missing: Vec<String> = Vec::new();
        let mut seen = HashSet::new();
        for c in canon.iter().filter_map(|(_, c)| c.clone()) {
            if !seen.insert(c.clone()) {
                continue;
            }
            let cached = if fresh {
                None
            } else {
                self.lists.peek(&format!("advisories:{c}"))
            };
            match cached {
                Some(records) => {
                    Counters::bump(&self.ep.counters.cache_hits);
                    facts.insert(c, AdvisoryFacts::Found(records));
                }
                None => {
                    Counters::bump(&self.ep.counters.cache_misses);
                    missing.push(c);
                }
            }
        }
        if self.peer.is_some() {
            // A few at a time: a 500-package batch is not 500 requests at
            // once on the team server.
            let mut asked = Vec::with_capacity(missing.len());
            for chunk in missing.chunks(PEER_CONCURRENCY) {
                asked.extend(
                    join_all(chunk.iter().map(|c| async move {
                        let r = self.ask_peer(c).await;
                        (c.clone(), r)
                    }))
                    .await,
                );
            }
            missing = Vec::new();
            for (c, r) in asked {
                match r {
                    Some(records) => {
                        facts.insert(c, AdvisoryFacts::Found(records));
                    }
                    None => missing.push(c),
                }
            }
        }
        for chunk in missing.chunks(BATCH_CHUNK) {
            for (name, f) in self.batch_chunk(chunk).await {
                if matches!(f, AdvisoryFacts::Unavailable(_)) {
                    Counters::bump(&self.ep.counters.errors);
                }
                facts.insert(name, f);
            }
        }
        for (given, c) in canon {
            let f = match c {
                Some(c) => facts
                    .get(&c)
                    .cloned()
                    .unwrap_or_else(|| AdvisoryFacts::Found(Vec::new())),
                // Not a distribution name: nothing can be published under it.
                None => AdvisoryFacts::Found(Vec::new()),
            };
            out.insert(given, f);
        }
        out
    }

    async fn batch_chunk(&self, names: &[String]) -> Vec<(String, AdvisoryFacts)> {
        let url = match self.url(&["v1", "querybatch"]) {
            Ok(u) => u,
            Err(e) => {
                return names
                    .iter()
                    .map(|n| (n.clone(), AdvisoryFacts::Unavailable(e.clone())))
                    .collect()
            }
        };
        let queries: Vec<Value> = names
            .iter()
            .map(|n| json!({"package": {"name": n, "ecosystem": "PyPI"}}))
            .collect();
        let doc = match self.post(&url, &json!({"queries": queries})).await {
            Ok(doc) => doc,
            Err(e) => {
                return names
                    .iter()
                    .map(|n| (n.clone(), AdvisoryFacts::Unavailable(e.clone())))
                    .collect()
            }
        };
        let results = doc
            .get("results")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        if results.len() != names.len() {
            let e = format!(
                "advisory API: querybatch answered {} results for {} queries",
                results.len(),
                names.len()
            );
            return names
                .iter()
                .map(|n| (n.clone(), AdvisoryFacts::Unavailable(e.clone())))
                .collect();
        }

        // (package, [(id, modified)]) for the packages answered in full; the
        // ones with more pages take the single-package path, which pages.
        let mut listed: Vec<(String, Listing)> = Vec::new();
        let mut paged: Vec<String> = Vec::new();
        for (name, result) in names.iter().zip(&results) {
            if page_token(result).is_some() {
                paged.push(name.clone());
                continue;
            }
            let ids = result
                .get("vulns")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(|v| {
                    let id = v.get("id")?.as_str()?.to_owned();
                    let modified = v.get("modified").and_then(Value::as_str).map(str::to_owned);
                    Some((id, modified))
                })
                .collect();
            listed.push((name.clone(), ids));
        }

        // Fetch each record we do not hold in its current revision, once.
        let mut to_fetch: Vec<String> = Vec::new();
        let mut records: HashMap<String, Result<OsvRecord, String>> = HashMap::new();
        for (id, modified) in listed.iter().flat_map(|(_, ids)| ids) {
            if records.contains_key(id) || to_fetch.contains(id) {
                continue;
            }
            match self.vulns.peek(&format!("vuln:{id}")) {
                Some(r) if modified.is_none() || r.modified == *modified => {
                    records.insert(id.clone(), Ok(r));
                }
                _ => to_fetch.push(id.clone()),
            }
        }
        let fetched = join_all(to_fetch.iter().map(|id| self.fetch_vuln(id))).await;
        records.extend(to_fetch.into_iter().zip(fetched));

        let mut out: Vec<(String, AdvisoryFacts)> = Vec::new();
        for (name, ids) in listed {
            let list: Result<Vec<OsvRecord>, String> =
                ids.iter().map(|(id, _)| records[id].clone()).collect();
            let f = match list {
                Ok(list) => {
                    self.lists
                        .put(&format!("advisories:{name}"), &list, self.advisory_ttl);
                    AdvisoryFacts::Found(list)
                }
                Err(e) => AdvisoryFacts::Unavailable(e),
            };
            out.push((name, f));
        }
        let paged_facts = join_all(paged.iter().map(|n| self.advisories(n))).await;
        out.extend(paged.into_iter().zip(paged_facts));
        out
    }

    async fn fetch_vuln(&self, id: &str) -> Result<OsvRecord, String> {
        let url = self.url(&["v1", "vulns", id])?;
        let fetched = self
            .http
            .send(&self.ep, || self.http.get(url.clone()))
            .await
            .map_err(|e| format!("advisory API: {e}"))?;
        let record: OsvRecord = serde_json::from_slice(&fetched.body)
            .map_err(|e| format!("advisory API {url}: unreadable OSV record: {e}"))?;
        self.vulns
            .put(&format!("vuln:{id}"), &record, self.vuln_ttl);
        Ok(record)
    }
}

fn page_token(doc: &Value) -> Option<String> {
    doc.get("next_page_token")
        .and_then(Value::as_str)
        .filter(|t| !t.is_empty())
        .map(str::to_owned)
}

impl Upstream {
    /// Every advisory the source holds for the package (all versions; the
    /// engine matches them to the evaluated version). Never cached when
    /// the API fails.
    pub async fn advisories(&self, canonical: &str) -> AdvisoryFacts {
        match canonical_name(canonical) {
            Some(name) => self.inner.advisories.advisories(&name).await,
            None => AdvisoryFacts::Found(Vec::new()),
        }
    }

    /// [`Upstream::advisories`] for many packages in one batched round
    /// (`querybatch`, then the records not already cached). Keys are the
    /// names as given.
    pub async fn advisories_batch(&self, names: &[String]) -> HashMap<String, AdvisoryFacts> {
        self.inner.advisories.batch(names, false).await
    }

    /// [`Upstream::advisories_batch`] asking the source again for every
    /// name, whatever the cache holds, and refreshing the cache with the
    /// answers (the background re-scan: evaluations then see the same
    /// news). Records whose revision did not change are not fetched again.
    pub async fn advisories_batch_fresh(&self, names: &[String]) -> HashMap<String, AdvisoryFacts> {
        self.inner.advisories.batch(names, true).await
    }

    /// True while advisories come from the package index, which lists them
    /// per release: callers resolve the version first and ask
    /// [`Upstream::release_advisories`]. (It changes when a synced export
    /// appears.)
    pub fn advisories_per_release(&self) -> bool {
        self.inner.advisories.per_release()
    }

    /// The advisories to match against `version`: from the index's listing
    /// of that release when it is the source, else [`Upstream::advisories`].
    pub async fn release_advisories(&self, canonical: &str, version: &str) -> AdvisoryFacts {
        if !self.advisories_per_release() {
            return self.advisories(canonical).await;
        }
        let Some(name) = canonical_name(canonical) else {
            return AdvisoryFacts::Found(Vec::new());
        };
        match self.inner.index.release_vulns(&name, version.trim()).await {
            Ok(records) => AdvisoryFacts::Found(records),
            Err(e) => AdvisoryFacts::Unavailable(e),
        }
    }

    /// Starts the upkeep of the synced export (only when one is configured,
    /// i.e. no OSV API and no offline source): every minute (or the cadence,
    /// if shorter) a changed file is reloaded — so `lex-align advisories
    /// sync` takes effect in a running daemon — and once the export is older
    /// than [`UpstreamConfig::export_resync`] it is downloaded again.
    pub fn start_export_maintenance(&self) -> Option<tokio::task::JoinHandle<()>> {
        self.inner.advisories.export.as_ref()?;
        let tick = self
            .inner
            .cfg
            .export_resync
            .map_or(WATCH_EVERY, |every| every.min(WATCH_EVERY))
            .max(Duration::from_millis(100));
        let up = self.clone();
        Some(tokio::spawn(async move {
            loop {
                tokio::time::sleep(tick).await;
                up.inner.advisories.export_tick(&up.inner.cfg).await;
            }
        }))
    }
}

impl Codec for OsvRecord {
    fn to_json(&self) -> Value {
        serde_json::to_value(self).unwrap_or(Value::Null)
    }

    fn from_json(v: Value) -> Option<Self> {
        serde_json::from_value(v).ok()
    }
}

impl Codec for Vec<OsvRecord> {
    fn to_json(&self) -> Value {
        serde_json::to_value(self).unwrap_or(Value::Null)
    }

    fn from_json(v: Value) -> Option<Self> {
        serde_json::from_value(v).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn osv_base_forms() {
        for url in [
            "http://127.0.0.1:9/v1/query",
            "http://127.0.0.1:9/v1/query/",
            "http://127.0.0.1:9",
            "http://127.0.0.1:9/v1",
        ] {
            assert_eq!(
                osv_base(url).unwrap().as_str(),
                "http://127.0.0.1:9/",
                "{url}"
            );
        }
        assert_eq!(
            osv_base("http://127.0.0.1:9/osv/v1/query")
                .unwrap()
                .as_str(),
            "http://127.0.0.1:9/osv"
        );
        assert!(osv_base("ftp://x/v1/query").is_err());
    }
}
