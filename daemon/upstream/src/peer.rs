//! A peer: a shared cache in front of this client's own upstreams (team
//! mode: the team server's caches, so a team fetches each package once).
//!
//! On a miss of both local tiers, the index and advisory clients ask the
//! peer first and keep its answer in their tiers with their own TTLs; any
//! peer failure falls back to the client's own upstream. The wire form of
//! what a peer serves ([`encode_project`], …) lives here so both ends agree.

use std::future::Future;
use std::pin::Pin;

use lex_align_engine::advisory::OsvRecord;
use lex_align_engine::license::LicenseMetadata;
use serde_json::Value;

use crate::cache::Codec;
use crate::Project;

/// A peer's answer: `Err` means "ask your own upstream".
pub type PeerFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, String>> + Send + 'a>>;

/// What a peer can answer. `Ok(None)`: the index does not know it (a real
/// answer, cached as not-found).
pub trait Peer: Send + Sync + 'static {
    fn project<'a>(&'a self, canonical: &'a str) -> PeerFuture<'a, Option<Project>>;
    fn release<'a>(
        &'a self,
        canonical: &'a str,
        version: &'a str,
    ) -> PeerFuture<'a, Option<LicenseMetadata>>;
    /// The index's per-release `vulnerabilities`, as OSV records.
    fn release_vulns<'a>(
        &'a self,
        canonical: &'a str,
        version: &'a str,
    ) -> PeerFuture<'a, Vec<OsvRecord>>;
    /// Every advisory of a package from the peer's advisory source.
    fn advisories<'a>(&'a self, canonical: &'a str) -> PeerFuture<'a, Vec<OsvRecord>>;
}

pub fn encode_project(p: &Project) -> Value {
    p.to_json()
}

pub fn decode_project(v: Value) -> Option<Project> {
    Project::from_json(v)
}

pub fn encode_metadata(m: &LicenseMetadata) -> Value {
    m.to_json()
}

pub fn decode_metadata(v: Value) -> Option<LicenseMetadata> {
    LicenseMetadata::from_json(v)
}

pub fn encode_records(r: &[OsvRecord]) -> Value {
    serde_json::to_value(r).unwrap_or(Value::Null)
}

pub fn decode_records(v: Value) -> Option<Vec<OsvRecord>> {
    serde_json::from_value(v).ok()
}

/// The most a peer answer may weigh: a project's compact form (releases
/// and their upload times) stays far under it; more is a broken peer.
pub const MAX_ANSWER_BYTES: usize = 4 << 20;

/// Whether `v` may travel as a version path segment: PEP 440 characters
/// only (letters, digits, `.+!_-`), starting with a letter or digit (so
/// never `.` or `..`), at most 100 characters. Both ends check it.
pub fn is_version_segment(v: &str) -> bool {
    v.len() <= 100
        && v.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
        && v.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '+' | '!' | '_' | '-'))
}

#[cfg(test)]
mod tests {
    use super::is_version_segment;

    #[test]
    fn version_segments_are_pep440_characters_only() {
        for ok in ["1.0", "2.0.0rc1", "1!2.0+local.7", "v1.0", "1_0-post"] {
            assert!(is_version_segment(ok), "{ok}");
        }
        let long = "1".repeat(101);
        for bad in [
            "", ".", "..", "../x", "1/2", "1%2F2", "1\\2", "-1", "1 0", "1?x", "1#x", "é", &long,
        ] {
            assert!(!is_version_segment(bad), "{bad:?}");
        }
    }
}
