//! Version arithmetic shared by the gates: which versions a specifier admits
//! (PEP 440), the same as exact ranges, containment in a registry window,
//! the best release under a filter, and specifier intersection for
//! suggested fixes.
//!
//! pep440_rs gives both `VersionSpecifier::contains` and a conversion to
//! [`Ranges`], but they disagree with each other and with PEP 440 at the
//! edges (`<1.0rc2` refusing `1.0rc1`, `==1.4.*` taking `1`, `<1.0.post1`
//! refusing `1.0`, `<=1.0` refusing `1.0+local`, gaps of phantom versions
//! that made `~=2.2` look wider than `>=2.2,<3`). So one rule is built here,
//! [`clause_ranges`], and everything else (admission, containment,
//! intersection, selection) derives from it. `tests/version_ranges.rs`
//! checks it against the PEP 440 text by brute force.
//!
//! Exactness: every cut between admitted and refused versions is written in
//! one canonical form (below a real version, above a real version, or above
//! a whole release series via pep440_rs's internal `max` marker), so two
//! ranges are equal, or one a subset of the other, exactly when that holds
//! for the real versions they contain. `===` is string identity and not a
//! range: [`Admission`] checks it apart.

use std::ops::Bound;
use std::str::FromStr;

use pep440_rs::{LocalSegment, Operator, Prerelease, Version, VersionSpecifier, VersionSpecifiers};
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
    best_release_with(releases, filter, false)
}

/// [`best_release`]; with `prereleases` (the requirement names one, see
/// [`mentions_prerelease`]) pre-releases compete with final releases.
pub(crate) fn best_release_with(
    releases: &[Release],
    filter: impl Fn(&Version) -> bool,
    prereleases: bool,
) -> Option<String> {
    let all = installable(releases);
    let first = highest(
        all.iter()
            .filter(|(v, _)| (prereleases || !v.any_prerelease()) && filter(v)),
    );
    first
        .or_else(|| highest(all.iter().filter(|(v, _)| filter(v))))
        .map(|(_, s)| s.to_string())
}

/// Whether a requirement asks for pre-releases by naming one (PEP 440: they
/// are otherwise taken only when nothing else satisfies). Excluding one with
/// `!=` is not asking for it.
pub fn mentions_prerelease(specs: &VersionSpecifiers) -> bool {
    specs.iter().any(|s| {
        !matches!(s.operator(), Operator::NotEqual | Operator::NotEqualStar)
            && s.version().any_prerelease()
    })
}

// ------------------------------------------------------------------ ranges

/// The smallest version there is: `0.dev0` (epoch 0).
fn is_least(v: &Version) -> bool {
    v.epoch() == 0
        && v.release().iter().all(|n| *n == 0)
        && v.pre().is_none()
        && v.post().is_none()
        && v.dev() == Some(0)
        && v.local().is_empty()
}

/// The first version of the series `epoch!release`: `release.dev0`.
fn series_start(epoch: u64, release: &[u64]) -> Version {
    Version::new(release.iter().copied())
        .with_epoch(epoch)
        .with_dev(Some(0))
}

/// The first version after `epoch!prefix.*`: the next release's `.dev0`.
fn after_prefix(epoch: u64, prefix: &[u64]) -> Version {
    let mut next = prefix.to_vec();
    if let Some(last) = next.last_mut() {
        *last = last.saturating_add(1);
    }
    series_start(epoch, &next)
}

/// The first version after `v` and all its local versions (`v` has no
/// local label): `1.0` → `1.0.post0.dev0`, `1.0.post1` → `1.0.post2.dev0`,
/// `1.0.dev1` → `1.0.dev2`, `1.0rc1` → `1.0rc1.post0.dev0`.
fn after_locals(v: &Version) -> Version {
    match (v.post(), v.dev()) {
        (_, Some(dev)) => v.clone().with_dev(Some(dev.saturating_add(1))),
        (Some(post), None) => v
            .clone()
            .with_post(Some(post.saturating_add(1)))
            .with_dev(Some(0)),
        (None, None) => v.clone().with_post(Some(0)).with_dev(Some(0)),
    }
}

/// `[lo, hi)`.
fn between(lo: Version, hi: Version) -> Ranges<Version> {
    Ranges::from_range_bounds(lo..hi)
}

/// The versions one clause admits, exactly, as PEP 440 reads it (`===` as
/// the versions equal to its own; [`Admission`] narrows that to the
/// spelling).
pub(crate) fn clause_ranges(spec: &VersionSpecifier) -> Ranges<Version> {
    let v = spec.version().clone();
    let (epoch, release) = (v.epoch(), v.release().to_vec());
    let ranges = match spec.operator() {
        // Local labels of candidates are ignored unless the clause has one.
        Operator::Equal | Operator::NotEqual => {
            let eq = if v.is_local() {
                Ranges::singleton(v.clone())
            } else {
                between(v.clone(), after_locals(&v))
            };
            if *spec.operator() == Operator::Equal {
                eq
            } else {
                eq.complement()
            }
        }
        Operator::ExactEqual => Ranges::singleton(v),
        // A prefix of the zero-padded release: `==1.4.*` is
        // `[1.4.dev0, 1.5.dev0)`, `==1.0.*` takes `1`, `==1.4.*` does not.
        Operator::EqualStar | Operator::NotEqualStar => {
            let eq = between(series_start(epoch, &release), after_prefix(epoch, &release));
            if *spec.operator() == Operator::EqualStar {
                eq
            } else {
                eq.complement()
            }
        }
        // `~=V.N` is `>=V.N, ==V.*`.
        Operator::TildeEqual => between(v, after_prefix(epoch, &release[..release.len() - 1])),
        Operator::GreaterThanEqual => Ranges::higher_than(v),
        Operator::LessThanEqual => Ranges::strictly_lower_than(after_locals(&v)),
        // `<V` refuses V's own pre-releases unless V is one: below `1.0.dev0`
        // for `<1.0`, below `1.0.post1.dev0` for `<1.0.post1`.
        Operator::LessThan if v.any_prerelease() => Ranges::strictly_lower_than(v),
        Operator::LessThan => Ranges::strictly_lower_than(v.with_dev(Some(0))),
        // `>V` refuses V's local versions, and V's post-releases unless V is
        // one: from `1.0.dev1` for `>1.0.dev0`, `1.0.post2.dev0` for
        // `>1.0.post1`, `1.0rc2.dev0` for `>1.0rc1`, past every `1.0.postN`
        // for `>1.0`.
        Operator::GreaterThan if v.is_post() || v.is_dev() => Ranges::higher_than(after_locals(&v)),
        Operator::GreaterThan => match v.pre() {
            Some(Prerelease { kind, number }) => Ranges::higher_than(
                v.with_pre(Some(Prerelease {
                    kind,
                    number: number.saturating_add(1),
                }))
                .with_dev(Some(0)),
            ),
            None => Ranges::strictly_higher_than(v.with_max(Some(0))),
        },
    };
    canonical(ranges)
}

/// No version lies below `0.dev0`: a lower bound there is no bound, and a
/// piece ending there is empty.
fn canonical(ranges: Ranges<Version>) -> Ranges<Version> {
    let touches_least = ranges.iter().any(|(lo, hi)| {
        matches!(lo, Bound::Included(v) if is_least(v))
            || matches!(hi, Bound::Excluded(v) if is_least(v))
    });
    if !touches_least {
        return ranges;
    }
    ranges
        .iter()
        .filter(|(_, hi)| !matches!(hi, Bound::Excluded(v) if is_least(v)))
        .map(|(lo, hi)| match lo {
            Bound::Included(v) if is_least(v) => (Bound::Unbounded, hi.clone()),
            _ => (lo.clone(), hi.clone()),
        })
        .fold(Ranges::empty(), |acc, piece| {
            acc.union(&Ranges::from_range_bounds(piece))
        })
}

/// The versions all of `specs` admit, as ranges (`===` as in
/// [`clause_ranges`]).
pub(crate) fn ranges(specs: &VersionSpecifiers) -> Ranges<Version> {
    ranges_of(specs.iter())
}

fn ranges_of<'a>(specs: impl IntoIterator<Item = &'a VersionSpecifier>) -> Ranges<Version> {
    specs
        .into_iter()
        .fold(Ranges::full(), |acc, s| acc.intersection(&clause_ranges(s)))
}

/// What a set of specifiers admits ([`admits`]), computed once for many
/// versions.
#[derive(Debug, Clone)]
pub struct Admission {
    ranges: Ranges<Version>,
    /// The spellings `===` clauses demand (all must match).
    exact: Vec<String>,
}

impl Admission {
    pub fn new(specs: &VersionSpecifiers) -> Self {
        Admission {
            ranges: ranges(specs),
            exact: specs
                .iter()
                .filter(|s| *s.operator() == Operator::ExactEqual)
                .map(|s| s.version().to_string())
                .collect(),
        }
    }

    pub fn admits(&self, v: &Version) -> bool {
        self.ranges.contains(v) && self.exact.iter().all(|e| *e == v.to_string())
    }

    /// Whether any of `versions` is admitted.
    pub fn admits_any<'a>(&self, mut versions: impl Iterator<Item = &'a Version>) -> bool {
        versions.any(|v| self.admits(v))
    }

    /// The one version `===` leaves, if any clause is `===` (admitted or
    /// not by the rest).
    fn exact_version(&self) -> Option<Version> {
        Version::from_str(self.exact.first()?).ok()
    }
}

/// Whether `specs` admit `v`, by PEP 440 (local labels, pre- and
/// post-release exclusions of `<` and `>`, prefix matching, `===`); no
/// pre-release policy (that is selection's: [`mentions_prerelease`]).
pub fn admits(specs: &VersionSpecifiers, v: &Version) -> bool {
    Admission::new(specs).admits(v)
}

/// A version `specs` admit and `bounds` do not, `None` when every version
/// `specs` admit is within `bounds` (containment, exact: see the module).
pub fn admitted_outside(specs: &VersionSpecifiers, bounds: &VersionSpecifiers) -> Option<Version> {
    let mine = Admission::new(specs);
    let theirs = Admission::new(bounds);
    if let Some(v) = mine.exact_version() {
        return (mine.admits(&v) && !theirs.admits(&v)).then_some(v);
    }
    let outside = mine.ranges.intersection(&theirs.ranges.complement());
    if outside.is_empty() {
        return None;
    }
    // `===` in the bounds (never in a registry window) is not a range.
    let found = outside
        .iter()
        .find_map(|piece| witness(piece, |v| !theirs.admits(v)));
    // Not empty but no witness found: still not contained (fail closed).
    found.or_else(|| outside.iter().find_map(|piece| witness(piece, |_| true)))
}

/// Whether every version `specs` admit is admitted by `bounds`.
pub(crate) fn within(specs: &VersionSpecifiers, bounds: &VersionSpecifiers) -> bool {
    let mine = Admission::new(specs);
    let theirs = Admission::new(bounds);
    match mine.exact_version() {
        Some(v) => !mine.admits(&v) || theirs.admits(&v),
        None => mine.ranges.subset_of(&theirs.ranges) && theirs.exact.is_empty(),
    }
}

/// A real version inside one piece `(lo, hi)` of a canonical range that
/// `also` accepts: an included end, the least version, or a version just
/// above an excluded lower end (a longer local label, or a longer release
/// past a whole series).
fn witness(
    (lo, hi): (&Bound<Version>, &Bound<Version>),
    also: impl Fn(&Version) -> bool,
) -> Option<Version> {
    // Long enough to pass below `hi` (see the two searches below).
    let reach = match hi {
        Bound::Included(h) | Bound::Excluded(h) => {
            let label = h.local().iter().map(|s| s.to_string().len()).max();
            h.release().len().max(label.unwrap_or(0)) + 2
        }
        Bound::Unbounded => 2,
    };
    let mut cands: Vec<Version> = Vec::new();
    match lo {
        Bound::Included(v) => cands.push(v.clone()),
        Bound::Unbounded => cands.push(series_start(0, &[0])),
        Bound::Excluded(v) if v.max().is_some() => {
            // Past every `X.*` version: `X.1.dev0`, `X.0.1.dev0`, … until
            // the release is longer than `hi`'s, which it then precedes.
            let release = v.release().to_vec();
            for zeros in 0..reach {
                let mut r = release.clone();
                r.extend(std::iter::repeat_n(0, zeros));
                r.push(1);
                cands.push(series_start(v.epoch(), &r));
            }
        }
        Bound::Excluded(v) => {
            // `v+a`, `v+0a`, `v+00a`, … (after `v`'s own label): one of them
            // sorts below any longer label `hi` may have.
            for zeros in 0..reach {
                let mut local = v.local().to_vec();
                local.push(LocalSegment::String(format!("{}a", "0".repeat(zeros))));
                cands.push(v.clone().with_local(local));
            }
            let mut local = v.local().to_vec();
            local.push(LocalSegment::Number(0));
            cands.push(v.clone().with_local(local));
        }
    }
    if let Bound::Included(v) = hi {
        cands.push(v.clone());
    }
    let piece: Ranges<Version> = Ranges::from_range_bounds((lo.clone(), hi.clone()));
    cands
        .into_iter()
        .find(|c| c.max().is_none() && piece.contains(c) && also(c))
}

// ------------------------------------------------------------------ suggestions

/// The user's specifier intersected with the rule's bounds, redundant
/// clauses dropped: `>=41,<44` ∩ `>=42.0.0` → `>=42.0.0,<44`. It admits
/// exactly what both admit; when that is nothing, the rule itself.
pub(crate) fn intersect_specifiers(
    user: Option<&VersionSpecifiers>,
    bounds: &VersionSpecifiers,
) -> VersionSpecifiers {
    let Some(user) = user else {
        return bounds.clone();
    };
    let mine = Admission::new(user);
    let theirs = Admission::new(bounds);
    if let Some(v) = mine.exact_version().or_else(|| theirs.exact_version()) {
        // `===` admits one spelling: suggest it alone, if both admit it.
        return if mine.admits(&v) && theirs.admits(&v) {
            VersionSpecifiers::from(
                VersionSpecifier::from_version(Operator::ExactEqual, v)
                    .expect("=== takes any version"),
            )
        } else {
            bounds.clone()
        };
    }
    let target = mine.ranges.intersection(&theirs.ranges);
    if target.is_empty() {
        // Nothing the user asked for is allowed: suggest the rule itself.
        return bounds.clone();
    }
    let mut set: Vec<VersionSpecifier> = user.iter().chain(bounds.iter()).cloned().collect();
    let mut i = 0;
    while i < set.len() {
        let without: Vec<&VersionSpecifier> = set
            .iter()
            .enumerate()
            .filter(|(j, _)| *j != i)
            .map(|(_, s)| s)
            .collect();
        if !without.is_empty() && ranges_of(without) == target {
            set.remove(i);
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
