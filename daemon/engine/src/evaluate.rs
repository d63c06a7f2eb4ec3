//! Gate order and verdict construction (see docs/evaluation.md).
//!
//! Two steps so the caller can do its I/O in between, concurrently:
//! [`plan`] (registry only) then [`decide`] (registry + upstream facts).

use crate::advisory::OsvRecord;
use crate::registry::Registry;
use crate::request::EvalRequest;
use crate::verdict::Verdict;

/// What the caller must fetch before [`decide`] can answer.
#[derive(Debug, Clone, PartialEq)]
pub enum Plan {
    /// The registry alone settles it (banned, deprecated, version violation).
    Decided(Verdict),
    /// Fetch these, then call [`decide`].
    Fetch(Needs),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Needs {
    /// The project's release list and the resolved release's metadata.
    pub index: bool,
    /// All advisories of the package (matched locally to the resolved version).
    pub advisories: bool,
}

/// One release as listed by the index.
#[derive(Debug, Clone, PartialEq)]
pub struct Release {
    pub version: String,
    pub yanked: bool,
}

/// License-bearing core metadata of one release.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LicenseMetadata {
    /// PEP 639 `License-Expression` / JSON `license_expression`.
    pub license_expression: Option<String>,
    /// Legacy `License` field (identifier or full text).
    pub license: Option<String>,
    /// All `Classifier` values (only `License ::` ones are read).
    pub classifiers: Vec<String>,
}

/// What the package index said about the project.
#[derive(Debug, Clone, PartialEq)]
pub enum IndexFacts {
    Found {
        /// Canonical project name as the index spells it.
        name: String,
        releases: Vec<Release>,
        /// Metadata of the release chosen by [`select_version`] (or the
        /// pinned one). `None` if it could not be fetched.
        metadata: Option<(String, LicenseMetadata)>,
    },
    /// The index answered 404: the project does not exist.
    NotFound,
    /// Transport error, timeout or 5xx: say so, never cache.
    Unavailable(String),
}

#[derive(Debug, Clone, PartialEq)]
pub enum AdvisoryFacts {
    /// Every advisory record the source has for the package.
    Found(Vec<OsvRecord>),
    Unavailable(String),
}

/// What to do when an upstream is unavailable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FailPolicy {
    /// Judge on what is known; mark the verdict with `upstream_error` and
    /// never return ALLOWED for an unknown package on missing facts alone.
    #[default]
    Open,
    /// DENIED with category `upstream`.
    Closed,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Facts {
    pub index: Option<IndexFacts>,
    pub advisories: Option<AdvisoryFacts>,
}

pub fn plan(req: &EvalRequest, registry: &Registry) -> Plan {
    let _ = (req, registry);
    todo!("engine helper")
}

/// The release to judge: the pin, else the highest non-yanked final release
/// admitted by the requirement (and by the registry's version rule when one
/// exists), else the highest non-yanked final release.
pub fn select_version(req: &EvalRequest, registry: &Registry, releases: &[Release]) -> Option<String> {
    let _ = (req, registry, releases);
    todo!("engine helper")
}

pub fn decide(req: &EvalRequest, registry: &Registry, facts: &Facts, fail: FailPolicy) -> Verdict {
    let _ = (req, registry, facts, fail);
    todo!("engine helper")
}
