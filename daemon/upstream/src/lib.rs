//! Upstream clients: the package index (JSON API, falling back to the PEP 691
//! simple index + core metadata, wheel `METADATA` or sdist `PKG-INFO`) and
//! advisories (OSV API, an offline OSV directory/zip, the OSV export synced
//! into the data directory, or the index's own per-release
//! `vulnerabilities`).
//!
//! Canonical (PEP 503) names in URLs, redirects followed, timeouts, bounded
//! concurrency, retries with backoff; results cached in memory and in the
//! persistent cache with TTLs; failures never cached.

use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use lex_align_engine::evaluate::{LicenseMetadata, Release};

pub mod advisories;
mod cache;
pub mod discover;
mod dist;
pub mod export;
mod http;
pub mod index;
pub mod offline;
pub mod peer;

pub use advisories::{describe_advisory_source, AdvisorySourceInfo, AdvisorySourceKind};
pub use discover::{discover_index, discover_index_with, IndexSetting};
pub use offline::OfflineAdvisories;

#[derive(Debug, Clone)]
pub struct UpstreamConfig {
    /// Index root. A JSON-API root (`…/pypi`, serving `/{name}/json`) or a
    /// PEP 691 simple index (`…/simple`); see [`IndexKind`].
    pub index_url: String,
    pub index_kind: IndexKind,
    /// OSV API base (`…` serving `/v1/query`, `/v1/querybatch`, `/v1/vulns/{id}`).
    /// A full `…/v1/query` URL (the original's `OSV_API_URL`) is accepted too.
    pub osv_url: Option<String>,
    /// Offline advisories: a directory of OSV JSON/YAML records or an OSV
    /// export zip. When set, the OSV API is not used.
    pub offline_advisories: Option<PathBuf>,
    /// The OSV export `lex-align advisories sync` keeps in the data
    /// directory ([`export::export_path`]). Used when neither `osv_url` nor
    /// `offline_advisories` is set, from the moment the file exists (it is
    /// watched and reloaded; see [`Upstream::start_export_maintenance`]).
    pub advisory_export: Option<PathBuf>,
    /// Where the maintenance task re-syncs the export from; `None`: the URL
    /// recorded at the last sync, else [`export::DEFAULT_EXPORT_URL`].
    pub export_url: Option<String>,
    /// How often the export is re-synced once it exists; `None`: never (the
    /// file is still watched and reloaded).
    pub export_resync: Option<Duration>,
    /// With no other advisory source, use the `vulnerabilities` the index's
    /// JSON API lists for each release.
    pub index_advisories: bool,
    /// Per-request timeout.
    pub timeout: Duration,
    /// Max concurrent requests per upstream.
    pub concurrency: usize,
    pub retries: u32,
    /// TTL of project data (release list, latest).
    pub project_ttl: Duration,
    /// TTL of one release's metadata (immutable upstream; long).
    pub release_ttl: Duration,
    /// TTL of a package's advisory list.
    pub advisory_ttl: Duration,
    /// TTL of a 404 (short: names get registered).
    pub not_found_ttl: Duration,
    /// Entries kept per in-memory cache (projects, releases, advisories, …).
    pub memory_entries: usize,
    /// Longest `Retry-After` we are willing to sleep before a retry.
    pub max_retry_after: Duration,
}

impl UpstreamConfig {
    /// Defaults for everything but the index URL. An empty URL is allowed
    /// (nothing configured): index lookups then answer `Unavailable` with
    /// [`index::NO_INDEX`]. No advisory source is set: the caller fills
    /// `osv_url` or `offline_advisories` from its config.
    pub fn default_with(index_url: impl Into<String>) -> Self {
        UpstreamConfig {
            index_url: index_url.into(),
            index_kind: IndexKind::Auto,
            osv_url: None,
            offline_advisories: None,
            advisory_export: None,
            export_url: None,
            export_resync: None,
            index_advisories: true,
            timeout: Duration::from_secs(5),
            concurrency: 32,
            retries: 2,
            project_ttl: Duration::from_secs(10 * 60),
            release_ttl: Duration::from_secs(7 * 24 * 3600),
            advisory_ttl: Duration::from_secs(3600),
            not_found_ttl: Duration::from_secs(5 * 60),
            memory_entries: 10_000,
            max_retry_after: Duration::from_secs(5),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IndexKind {
    /// Decide from the URL and the first response.
    Auto,
    Json,
    Simple,
}

/// A second cache tier that survives restarts (the daemon backs it with the
/// SQLite file). Values are opaque bytes; expiry is the caller's.
pub trait PersistentCache: Send + Sync + 'static {
    fn get(&self, key: &str) -> Option<Vec<u8>>;
    fn put(&self, key: &str, value: &[u8], ttl: Duration);
}

#[derive(Debug, Clone, PartialEq)]
pub struct Project {
    /// Canonical (PEP 503) name of the project.
    pub name: String,
    /// The project's display name when the index gives it (the JSON API's
    /// `info.name`, e.g. `PyYAML`); the simple API only has the canonical one.
    pub display_name: Option<String>,
    /// Releases that have at least one file, oldest first (PEP 440 order).
    pub releases: Vec<Release>,
    /// Metadata of the latest release, when the index gives it for free
    /// (the JSON API does).
    pub latest: Option<(String, LicenseMetadata)>,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum IndexError {
    #[error("not found on the package index")]
    NotFound,
    #[error("package index unavailable: {0}")]
    Unavailable(String),
}

/// Counters of one upstream, for `/metrics`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EndpointStats {
    /// HTTP requests sent (each retry counts).
    pub requests: u64,
    /// Requests retried after a transport error, 5xx or 429.
    pub retries: u64,
    /// Lookups that ended in an error (after retries); 404s not included.
    pub errors: u64,
    /// Lookups answered by the memory or persistent cache.
    pub cache_hits: u64,
    /// Lookups that had to go upstream.
    pub cache_misses: u64,
    /// Lookups answered by the peer (team mode: the team server's caches).
    pub peer: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UpstreamStats {
    pub index: EndpointStats,
    pub advisories: EndpointStats,
    /// Records loaded from the offline advisory source, if one is configured.
    pub offline_records: Option<usize>,
}

/// The facade the daemon uses: index and advisory lookups with caching.
/// Cheap to clone; all clones share clients, caches and counters.
#[derive(Clone)]
pub struct Upstream {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) cfg: UpstreamConfig,
    pub(crate) index: index::IndexClient,
    pub(crate) advisories: advisories::AdvisorySource,
}

impl Upstream {
    /// Builds the HTTP client and caches, and loads the offline advisory
    /// source when one is configured (an unreadable source is an error: a
    /// configured-but-broken source must not silently mean "no advisories").
    pub fn new(
        cfg: UpstreamConfig,
        persistent: Option<Arc<dyn PersistentCache>>,
    ) -> Result<Upstream, String> {
        Upstream::with_peer(cfg, persistent, None)
    }

    /// [`Upstream::new`] asking `peer` on every cache miss before the
    /// upstreams themselves (see [`peer`]).
    pub fn with_peer(
        cfg: UpstreamConfig,
        persistent: Option<Arc<dyn PersistentCache>>,
        peer: Option<Arc<dyn peer::Peer>>,
    ) -> Result<Upstream, String> {
        let http = http::Http::new(&cfg)?;
        let index = index::IndexClient::new(&cfg, http.clone(), persistent.clone(), peer.clone())?;
        let advisories = advisories::AdvisorySource::new(&cfg, http, persistent, peer)?;
        Ok(Upstream {
            inner: Arc::new(Inner {
                cfg,
                index,
                advisories,
            }),
        })
    }

    pub fn config(&self) -> &UpstreamConfig {
        &self.inner.cfg
    }

    pub fn stats(&self) -> UpstreamStats {
        UpstreamStats {
            index: self.inner.index.stats(),
            advisories: self.inner.advisories.stats(),
            offline_records: self.inner.advisories.offline_count(),
        }
    }

    /// The advisory source in use now, and how old its data is.
    pub fn advisory_source(&self) -> AdvisorySourceInfo {
        self.inner.advisories.info(self.inner.index.has_json_api())
    }
}

/// PEP 503 canonical form (`Foo.Bar_baz` → `foo-bar-baz`); `None` when the
/// string is not a valid distribution name at all.
pub fn canonical_name(name: &str) -> Option<String> {
    pep508_rs::PackageName::from_str(name.trim())
        .ok()
        .map(|n| n.to_string())
}
