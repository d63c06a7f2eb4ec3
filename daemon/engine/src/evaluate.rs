//! Gate order and verdict construction (see docs/evaluation.md).
//!
//! Two steps so the caller can do its I/O in between, concurrently:
//! [`plan`] (registry only) then [`decide`] (registry + upstream facts).
//!
//! One module per gate under `gates/`, run in this order; the first verdict
//! wins (numbers as in docs/evaluation.md):
//! 0. exception expiry: a rule past its `expires` is ignored by every gate
//!    below (the package is judged as unlisted) and the verdict says so;
//! 1. registry block (banned, deprecated, version rule), settled by [`plan`];
//! 2. existence (404, unsatisfiable requirement, unlisted pin);
//! 3. unpinned bounds (the latest release must satisfy a version rule);
//!    then the judged release's license is recorded (decides nothing);
//! 4. malicious, 5. CVE;
//! 6. fail policy for missing facts;
//! 7. registry allow;
//! 8. license (unknown packages only; always decides).
//!
//! [`apply_override`] comes after [`decide`], in the caller: it needs the
//! project and the overrides in force.

mod gates;
mod versions;

use pep440_rs::Version;

use crate::advisory::OsvRecord;
use crate::registry::{Registry, Rule, Status};
use crate::request::EvalRequest;
use crate::verdict::Verdict;
use gates::{
    advisories, exception_expiry, existence, fail_policy, license, registry_allow, registry_block,
    unpinned_bounds, Ctx, Gate,
};
use versions::{best_release, best_release_with};

pub use versions::{admits, admitted_outside, mentions_prerelease, Admission};

pub use gates::overrides::{apply_override, Override};

// Names the tests reach through `super::*`.
#[cfg(test)]
use crate::verdict::{Decision, DenialCategory, FixedVersion};
#[cfg(test)]
use advisories::meets_threshold;

/// What the caller must fetch before [`decide`] can answer.
// One value per evaluation, moved once: boxing would only add an allocation.
#[allow(clippy::large_enum_variant)]
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

// Defined beside the code that reads it, so `license` needs nothing from
// `evaluate`; re-exported here, where callers have always found it.
pub use crate::license::LicenseMetadata;

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
    /// The index answered 404: the project does not exist. `known_names`
    /// are names the index has confirmed (looked up before), offered as
    /// "did you mean" candidates beside the registry's own.
    NotFound { known_names: Vec<String> },
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

/// The release to judge: the pin, else the highest non-yanked release
/// admitted by the requirement (and by the registry's version rule when one
/// is in force), final releases first unless the requirement names a
/// pre-release (PEP 440), else the highest non-yanked final release.
pub fn select_version(
    req: &EvalRequest,
    registry: &Registry,
    releases: &[Release],
) -> Option<String> {
    if let Some(pin) = req.pinned_version() {
        return Some(pin);
    }
    let specs = req.specifiers();
    let bounds = exception_expiry::lookup(req, registry)
        .active()
        .filter(|r| r.status == Status::VersionConstrained)
        .and_then(Rule::bounds);
    let wanted = specs.as_ref().map(Admission::new);
    let allowed = bounds.as_ref().map(Admission::new);
    let admitted = |v: &Version| {
        wanted.as_ref().is_none_or(|s| s.admits(v)) && allowed.as_ref().is_none_or(|b| b.admits(v))
    };
    let prereleases = specs.as_ref().is_some_and(mentions_prerelease);
    best_release_with(releases, admitted, prereleases).or_else(|| best_release(releases, |_| true))
}

pub fn plan(req: &EvalRequest, registry: &Registry) -> Plan {
    registry_block::plan(req, exception_expiry::lookup(req, registry).active())
}

/// Gates 2–7; gate 8 ([`license::judge`]) closes the pipeline.
const GATES: [Gate; 6] = [
    existence::run,
    unpinned_bounds::run,
    license::record,
    advisories::run,
    fail_policy::run,
    registry_allow::run,
];

pub fn decide(req: &EvalRequest, registry: &Registry, facts: &Facts, fail: FailPolicy) -> Verdict {
    let lookup = exception_expiry::lookup(req, registry);
    let needs = match registry_block::plan(req, lookup.active()) {
        Plan::Decided(v) => return v,
        Plan::Fetch(needs) => needs,
    };
    let mut ctx = Ctx::new(req, registry, lookup.active(), facts, fail, needs);
    let verdict = GATES
        .iter()
        .find_map(|gate| gate(&mut ctx))
        .unwrap_or_else(|| license::judge(&mut ctx));
    exception_expiry::note_lapse(verdict, lookup)
}

#[cfg(test)]
mod tests;
