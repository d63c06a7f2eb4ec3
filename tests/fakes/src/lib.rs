//! Fake upstream servers for tests and benchmarks: a Python package index
//! ([`FakeIndex`]: JSON API with `vulnerabilities`, PEP 691 simple API,
//! core metadata, real wheels and sdists), an OSV API with its PyPI
//! export zip ([`FakeOsv`]), and for the shipped plugins an OpenID
//! provider's key endpoint ([`FakeJwks`]) and a GitLab REST API
//! ([`FakeGitLab`]), each on 127.0.0.1 with a random port, in its own
//! thread and runtime so that sync and async tests can use them alike.
//!
//! They count requests per path, can be switched "down" (503) and stop on
//! drop; the index and OSV fakes also take an artificial latency.
//! [`FakeGithub`] is the REST API the `github` proposer talks to.
//! [`fixtures`] holds the shared test data (registry, pyproject).

use std::path::PathBuf;

mod dist;
pub mod fixtures;
mod github;
mod gitlab;
mod index;
mod jwks;
mod osv;
mod server;

pub use github::{FakeGithub, FakePull, RecordedRequest};
pub use gitlab::{FakeCommit, FakeGitLab, FakeMergeRequest};
pub use jwks::FakeJwks;

pub use index::{
    fixture_projects, CoreMetadata, FakeIndex, FakeProject, FakeRelease, FakeVulnerability,
};
pub use osv::FakeOsv;

/// The PyPA advisory database snapshot (`<package>/<id>.yaml`) shipped
/// beside the workspace, at `../shared/data/pypa-advisory-db/vulns`.
pub fn pypa_snapshot_dir() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/data/pypa-advisory-db/vulns");
    match dir.canonicalize() {
        Ok(d) if d.is_dir() => d,
        _ => panic!(
            "PyPA advisory snapshot not found at {}: tests that use it need the \
             shared data directory next to the workspace (shared/data/pypa-advisory-db/vulns)",
            dir.display()
        ),
    }
}
