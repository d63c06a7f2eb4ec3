//! Version arithmetic shared by the gates: installable releases, the best
//! release under a filter, and specifier intersection for suggested fixes.

use std::str::FromStr;

use pep440_rs::{Version, VersionSpecifier, VersionSpecifiers};
use pep508_rs::VersionOrUrl;
use version_ranges::Ranges;

use super::Release;
use crate::request::EvalRequest;

/// Non-yanked releases with a PEP 440 version (pre-releases included).
pub(crate) fn installable(releases: &[Release]) -> Vec<(Version, &str)> {
    releases
        .iter()
        .filter(|r| !r.yanked)
        .filter_map(|r| {
            Version::from_str(r.version.trim())
                .ok()
                .map(|v| (v, r.version.as_str()))
        })
        .collect()
}

fn highest<'a>(
    cands: impl Iterator<Item = &'a (Version, &'a str)>,
) -> Option<&'a (Version, &'a str)> {
    cands.max_by(|a, b| a.0.cmp(&b.0))
}

/// Highest non-yanked final release satisfying `filter` (pre-releases only
/// when no final release does, as pip does).
pub(crate) fn best_release(
    releases: &[Release],
    filter: impl Fn(&Version) -> bool,
) -> Option<String> {
    let all = installable(releases);
    highest(all.iter().filter(|(v, _)| !v.any_prerelease() && filter(v)))
        .or_else(|| highest(all.iter().filter(|(v, _)| filter(v))))
        .map(|(_, s)| s.to_string())
}

pub(crate) fn ranges(specs: &VersionSpecifiers) -> Ranges<Version> {
    Ranges::from(specs.clone())
}

fn ranges_of(specs: &[VersionSpecifier]) -> Ranges<Version> {
    specs.iter().fold(Ranges::full(), |acc, s| {
        acc.intersection(&Ranges::from(s.clone()))
    })
}

/// The user's specifier intersected with the rule's bounds, redundant
/// clauses dropped: `>=41,<44` ∩ `>=42.0.0` → `>=42.0.0,<44`.
pub(crate) fn intersect_specifiers(
    user: Option<&VersionSpecifiers>,
    bounds: &VersionSpecifiers,
) -> VersionSpecifiers {
    let rule: Vec<VersionSpecifier> = bounds.iter().cloned().collect();
    let Some(user) = user else {
        return bounds.clone();
    };
    let target = ranges(user).intersection(&ranges(bounds));
    if target.is_empty() {
        // Nothing the user asked for is allowed: suggest the rule itself.
        return bounds.clone();
    }
    let mut set: Vec<VersionSpecifier> = user.iter().cloned().chain(rule).collect();
    let mut i = 0;
    while i < set.len() {
        let mut without = set.clone();
        without.remove(i);
        if !without.is_empty() && ranges_of(&without) == target {
            set = without;
        } else {
            i += 1;
        }
    }
    // `from_iter` orders the clauses by version.
    set.into_iter().collect()
}

/// `name[extras]<specs> ; markers`, from the caller's requirement when there
/// is one (extras and markers kept), else from the package name.
pub(crate) fn requirement_with(req: &EvalRequest, specs: VersionSpecifiers) -> String {
    match req.parsed_requirement() {
        Some(mut r) => {
            r.version_or_url = Some(VersionOrUrl::VersionSpecifier(specs));
            r.to_string()
        }
        None => {
            let parts: Vec<String> = specs.iter().map(ToString::to_string).collect();
            format!("{}{}", req.package, parts.join(","))
        }
    }
}
