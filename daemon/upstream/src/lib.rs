//! Upstream clients: the package index (JSON API, or PEP 691 simple index +
//! wheel METADATA) and advisories (OSV API, or an offline OSV directory/zip).
//!
//! Canonical (PEP 503) names in URLs, redirects followed, timeouts, bounded
//! concurrency, retries with backoff; results cached in memory and in the
//! persistent cache with TTLs; failures never cached.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use lex_align_engine::evaluate::{AdvisoryFacts, LicenseMetadata, Release};

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
    /// Canonical name as the index spells it.
    pub name: String,
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
