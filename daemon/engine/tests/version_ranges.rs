//! Version ranges proven against a brute force.
//!
//! The engine decides with ranges (`version_ranges::Ranges`): whether a
//! requirement's specifiers lie inside a registry window `>=min,<max`, which
//! specifiers to suggest (the requirement intersected with the window), and
//! which release to judge. Here each of those is compared to a brute force
//! over a finite universe of versions generated around every version the
//! specifiers and the window mention (their pre-, post-, dev- and local
//! neighbours, other epochs, longer and shorter release segments, next and
//! previous releases), with "admits" written directly from the PEP 440 text
//! ([`pep440_admits`]).
//!
//! The universe is finite, so it can only refute containment. The other
//! direction is covered by the engine's witness: whenever it says "not
//! contained" it must name a version the requirement admits and the window
//! does not, and the oracle checks that version.
//!
//! The oracle is pep440_rs's `VersionSpecifier::contains` except in three
//! classes where that breaks PEP 440 ([`known_pep440_rs_deviation`]; a
//! property checks there are no others). Where the text leaves room
//! (`<1.0.post1` and `1.0rc1`, `>1.0rc1` and `1.0.post1`) it is read
//! literally, "of V" meaning V's own, as current pypa/packaging does.

use std::collections::HashSet;
use std::str::FromStr;

use lex_align_engine::evaluate::{
    admits, admitted_outside, decide, mentions_prerelease, plan, select_version, Admission,
    AdvisoryFacts, Facts, FailPolicy, IndexFacts, Plan, Release,
};
use lex_align_engine::registry::Registry;
use lex_align_engine::request::EvalRequest;
use lex_align_engine::verdict::{DenialCategory, Verdict};
use pep440_rs::{
    LocalSegment, Operator, Prerelease, PrereleaseKind, Version, VersionSpecifier,
    VersionSpecifiers,
};
use proptest::prelude::*;
use proptest::sample::Index;

// ------------------------------------------------------------------ oracle

/// PEP 440's rule for one clause, from the specification's text (no ranges).
///
/// Local labels are ignored unless the clause itself has one (`==1.0+x`
/// matches exactly); `<V` excludes the pre-releases *of V* unless V is one;
/// `>V` excludes the post-releases of V unless V is one, and V's local
/// versions; `==X.*` is a prefix match on the zero-padded release, epoch
/// included; `~=V.N` is `>=V.N, ==V.*`; `===` is string identity (of the
/// normalised spelling, as pep440_rs prints it).
fn pep440_admits(spec: &VersionSpecifier, w: &Version) -> bool {
    let v = spec.version();
    let public = w.clone().without_local();
    let equal = || {
        if v.is_local() {
            w == v
        } else {
            &public == v
        }
    };
    match spec.operator() {
        Operator::ExactEqual => v.to_string() == w.to_string(),
        Operator::Equal => equal(),
        Operator::NotEqual => !equal(),
        Operator::EqualStar => prefix_match(v.epoch(), v.release(), w),
        Operator::NotEqualStar => !prefix_match(v.epoch(), v.release(), w),
        Operator::TildeEqual => {
            let prefix = &v.release()[..v.release().len() - 1];
            &public >= v && prefix_match(v.epoch(), prefix, w)
        }
        Operator::GreaterThanEqual => &public >= v,
        Operator::LessThanEqual => &public <= v,
        Operator::LessThan => &public < v && (v.any_prerelease() || !is_prerelease_of(&public, v)),
        Operator::GreaterThan => &public > v && (v.is_post() || !is_post_release_of(&public, v)),
    }
}

fn pep440_admits_all(specs: &VersionSpecifiers, w: &Version) -> bool {
    specs.iter().all(|s| pep440_admits(s, w))
}

/// `==X.*`: same epoch, and the release padded with zeros starts with X.
fn prefix_match(epoch: u64, prefix: &[u64], w: &Version) -> bool {
    w.epoch() == epoch
        && prefix
            .iter()
            .enumerate()
            .all(|(i, p)| w.release().get(i).copied().unwrap_or(0) == *p)
}

/// `w` is a pre-release of `v`: `1.0rc1`, `1.0.dev0`, `1.0a1.post1` of `1.0`;
/// `1.0.post1.dev0` of `1.0.post1` (a dev release is one of what it precedes).
fn is_prerelease_of(w: &Version, v: &Version) -> bool {
    let of = if w.is_pre() {
        Version::new(w.release().iter().copied()).with_epoch(w.epoch())
    } else if w.is_dev() {
        w.clone().with_dev(None)
    } else {
        return false;
    };
    &of == v
}

/// `w` is a post-release of `v`: `1.0.post1`, `1.0.post1.dev0` of `1.0`;
/// `1.0rc1.post1` of `1.0rc1`.
fn is_post_release_of(w: &Version, v: &Version) -> bool {
    w.is_post() && &w.clone().with_post(None).with_dev(None) == v
}

/// Whether a requirement asks for pre-releases: a clause other than `!=`
/// names one (PEP 440's "explicitly requested").
fn names_prerelease(specs: &VersionSpecifiers) -> bool {
    specs.iter().any(|s| match s.operator() {
        Operator::NotEqual | Operator::NotEqualStar => false,
        _ => s.version().is_pre() || s.version().is_dev(),
    })
}

/// Where pep440_rs's `VersionSpecifier::contains` departs from PEP 440, so
/// the oracle does not use it: each class with the rule it breaks.
fn known_pep440_rs_deviation(spec: &VersionSpecifier, w: &Version) -> Option<&'static str> {
    let v = spec.version();
    let public = w.clone().without_local();
    let same_release =
        Version::new(v.release().iter().copied()) == Version::new(w.release().iter().copied());
    match spec.operator() {
        // It refuses every pre-release of V's release (any epoch): `<1.0rc2`
        // refuses `1.0rc1`, `<1!1.0` refuses `1.0rc1`, `<1.0.post1` refuses
        // `1.0rc1` and `1.0`'s dev releases. PEP 440 refuses only the
        // pre-releases *of V*, and none when V is one.
        Operator::LessThan if same_release && public.any_prerelease() => {
            Some("`<V` refuses pre-releases that are not V's")
        }
        // It compares only as many release segments as the candidate has:
        // `==1.4.*` takes `1`. PEP 440 pads the candidate with zeros.
        Operator::EqualStar | Operator::NotEqualStar if w.release().len() < v.release().len() => {
            Some("`==X.*` truncates instead of padding")
        }
        // It refuses every post-release of V's release: `>1.0rc1` refuses
        // `1.0.post1`. PEP 440 refuses the post-releases *of V*.
        Operator::GreaterThan if same_release && public.is_post() && !v.is_post() => {
            Some("`>V` refuses post-releases that are not V's")
        }
        _ => None,
    }
}

// ------------------------------------------------------------------ universe

fn parse(s: &str) -> Version {
    Version::from_str(s).unwrap()
}

fn pre(kind: PrereleaseKind, number: u64) -> Option<Prerelease> {
    Some(Prerelease { kind, number })
}

fn local(text: &str) -> Vec<LocalSegment> {
    parse(&format!("0+{text}")).local().to_vec()
}

/// The suffixes tried on every release near a boundary.
fn suffixed(base: &Version) -> Vec<Version> {
    use PrereleaseKind::{Alpha, Beta, Rc};
    let b = || base.clone();
    vec![
        b(),
        b().with_dev(Some(0)),
        b().with_dev(Some(1)),
        b().with_pre(pre(Alpha, 0)),
        b().with_pre(pre(Alpha, 1)).with_dev(Some(0)),
        b().with_pre(pre(Beta, 1)),
        b().with_pre(pre(Rc, 1)),
        b().with_pre(pre(Rc, 1)).with_post(Some(1)),
        b().with_pre(pre(Rc, 2)).with_dev(Some(0)),
        b().with_post(Some(0)).with_dev(Some(0)),
        b().with_post(Some(1)),
        b().with_post(Some(1)).with_dev(Some(0)),
        b().with_post(Some(2)).with_dev(Some(0)),
        b().with_local(local("loc")),
        b().with_post(Some(1)).with_local(local("loc")),
        b().with_pre(pre(Rc, 1)).with_local(local("1")),
    ]
}

/// Neighbours of one boundary version `v`: `v` with each of its segments
/// moved by one, locals added or extended, and [`suffixed`] releases around
/// its own (prefixes, extensions, next and previous, other epochs).
fn neighbours(v: &Version, out: &mut Vec<Version>) {
    let e = v.epoch();
    let rel = v.release().to_vec();
    let bare = v.clone().without_local();
    // The boundary itself, its own segments moved.
    out.push(v.clone());
    out.push(bare.clone());
    for l in ["a", "0a", "1", "loc.0", "z"] {
        let mut seg = v.local().to_vec();
        seg.extend(local(l));
        out.push(bare.clone().with_local(seg));
        out.push(bare.clone().with_local(local(l)));
    }
    for d in [0, 1] {
        if let Some(dev) = v.dev() {
            out.push(bare.clone().with_dev(Some(dev + d)));
            out.push(bare.clone().with_dev(dev.checked_sub(d)));
        }
        if let Some(post) = v.post() {
            out.push(bare.clone().with_post(Some(post + d)).with_dev(None));
            out.push(bare.clone().with_post(Some(post + d)).with_dev(Some(0)));
            out.push(bare.clone().with_post(post.checked_sub(d)));
        }
        if let Some(p) = v.pre() {
            for n in [p.number + d, p.number.saturating_sub(d)] {
                out.push(bare.clone().with_pre(pre(p.kind, n)));
                out.push(bare.clone().with_pre(pre(p.kind, n)).with_dev(Some(0)));
                out.push(bare.clone().with_pre(pre(p.kind, n)).with_post(Some(0)));
            }
        }
    }
    out.push(bare.clone().with_post(Some(0)).with_dev(Some(0)));
    out.push(
        bare.clone()
            .with_post(Some(v.post().map_or(0, |p| p + 1)))
            .with_dev(Some(0)),
    );
    // Releases near this one.
    let mut releases: Vec<Vec<u64>> = vec![rel.clone()];
    for tail in [&[0][..], &[0, 0], &[1], &[0, 1], &[0, 0, 0, 1]] {
        releases.push([rel.as_slice(), tail].concat());
    }
    for i in 0..rel.len() {
        let mut up = rel[..=i].to_vec();
        *up.last_mut().unwrap() += 1;
        releases.push(up.clone());
        releases.push([up.as_slice(), &[0, 1]].concat());
        releases.push(rel[..=i].to_vec());
        if rel[i] > 0 {
            let mut down = rel[..=i].to_vec();
            *down.last_mut().unwrap() -= 1;
            releases.push([down.as_slice(), &[9]].concat());
            releases.push(down);
        }
    }
    for r in &releases {
        for base in suffixed(&Version::new(r.iter().copied()).with_epoch(e)) {
            out.push(base);
        }
    }
    for epoch in [e + 1, e.saturating_sub(1)] {
        out.push(Version::new(rel.iter().copied()).with_epoch(epoch));
        out.push(
            Version::new(rel.iter().copied())
                .with_epoch(epoch)
                .with_pre(pre(PrereleaseKind::Rc, 1)),
        );
        out.push(Version::new([0]).with_epoch(epoch));
    }
}

/// Every version of the brute force for these boundaries (deduplicated by
/// spelling: `1.0` and `1.0.0` are both kept, `===` tells them apart).
fn universe(boundaries: &[Version]) -> Vec<Version> {
    let mut out = vec![
        parse("0.dev0"),
        parse("0"),
        parse("0.0.1"),
        parse("999"),
        parse("999.post1"),
        parse("1!0"),
        parse("1!999"),
        parse("2!1.0"),
    ];
    for v in boundaries {
        neighbours(v, &mut out);
    }
    let mut seen = HashSet::new();
    out.retain(|v| seen.insert(v.to_string()));
    out
}

fn boundaries(specs: &VersionSpecifiers, bounds: &VersionSpecifiers) -> Vec<Version> {
    specs
        .iter()
        .chain(bounds.iter())
        .map(|s| s.version().clone())
        .collect()
}

// ------------------------------------------------------------------ generators

fn arb_version(allow_local: bool) -> impl Strategy<Value = Version> {
    let release = prop::collection::vec(0u64..4, 1..=4);
    let epoch = prop_oneof![6 => Just(0u64), 1 => Just(1u64)];
    let kind = prop_oneof![
        Just(PrereleaseKind::Alpha),
        Just(PrereleaseKind::Beta),
        Just(PrereleaseKind::Rc)
    ];
    let pre = prop::option::weighted(0.3, (kind, 0u64..3));
    let post = prop::option::weighted(0.25, 0u64..3);
    let dev = prop::option::weighted(0.25, 0u64..3);
    let loc = prop::option::weighted(0.2, prop::sample::select(vec!["loc", "1", "a.2", "0a"]))
        .prop_map(move |l| l.filter(|_| allow_local));
    (release, epoch, pre, post, dev, loc).prop_map(|(r, e, p, po, d, l)| {
        let v = Version::new(r)
            .with_epoch(e)
            .with_pre(p.map(|(kind, number)| Prerelease { kind, number }))
            .with_post(po)
            .with_dev(d);
        match l {
            Some(l) => v.with_local(local(l)),
            None => v,
        }
    })
}

fn arb_operator() -> impl Strategy<Value = Operator> {
    prop::sample::select(vec![
        Operator::Equal,
        Operator::EqualStar,
        Operator::ExactEqual,
        Operator::NotEqual,
        Operator::NotEqualStar,
        Operator::TildeEqual,
        Operator::LessThan,
        Operator::LessThanEqual,
        Operator::GreaterThan,
        Operator::GreaterThanEqual,
    ])
}

/// One clause: the version is coerced to what the operator accepts (no
/// local on ordered comparisons, a bare release before `.*`, two release
/// segments for `~=`), then printed and parsed as a user would write it.
fn arb_clause() -> impl Strategy<Value = VersionSpecifier> {
    (arb_operator(), arb_version(true)).prop_map(|(op, v)| {
        let v = match op {
            Operator::EqualStar | Operator::NotEqualStar => {
                Version::new(v.release().iter().copied()).with_epoch(v.epoch())
            }
            Operator::Equal | Operator::NotEqual | Operator::ExactEqual => v,
            _ => v.without_local(),
        };
        let v = if op == Operator::TildeEqual && v.release().len() < 2 {
            v.clone()
                .with_release(v.release().iter().copied().chain([0]))
        } else {
            v
        };
        let spec = VersionSpecifier::from_version(op, v).unwrap();
        VersionSpecifier::from_str(&spec.to_string()).unwrap()
    })
}

fn arb_specs() -> impl Strategy<Value = VersionSpecifiers> {
    prop::collection::vec(arb_clause(), 1..=4).prop_map(|c| c.into_iter().collect())
}

/// A registry window: `min_version` and/or `max_version`, `min < max`.
fn arb_window() -> impl Strategy<Value = (Option<Version>, Option<Version>)> {
    (
        prop::option::weighted(0.8, arb_version(false)),
        prop::option::weighted(0.8, arb_version(false)),
    )
        .prop_filter("a window has a bound and min < max", |(lo, hi)| {
            match (lo, hi) {
                (None, None) => false,
                (Some(lo), Some(hi)) => lo < hi,
                _ => true,
            }
        })
}

// ------------------------------------------------------------------ the engine

const PKG: &str = "pkg";

/// A registry with one `version-constrained` rule for `pkg` (through the
/// YAML validator, as an operator would write it).
fn registry(min: &Option<Version>, max: &Option<Version>) -> Registry {
    let mut yaml =
        format!("version: \"1\"\npackages:\n  {PKG}:\n    status: version-constrained\n");
    for (key, v) in [("min_version", min), ("max_version", max)] {
        if let Some(v) = v {
            yaml.push_str(&format!("    {key}: \"{v}\"\n"));
        }
    }
    Registry::from_yaml(&yaml).unwrap()
}

fn unlisted() -> Registry {
    Registry::from_yaml("version: \"1\"\npackages: {}\n").unwrap()
}

fn request(specs: &VersionSpecifiers) -> EvalRequest {
    EvalRequest::parse(PKG, None, Some(&format!("{PKG}{specs}"))).unwrap()
}

fn bounds_of(reg: &Registry) -> VersionSpecifiers {
    reg.packages[PKG].bounds().expect("the window parses")
}

fn decided(req: &EvalRequest, reg: &Registry) -> Option<Verdict> {
    match plan(req, reg) {
        Plan::Decided(v) => Some(v),
        Plan::Fetch(_) => None,
    }
}

fn suggested_specs(v: &Verdict) -> VersionSpecifiers {
    let text = v.suggested_requirement.as_deref().expect("a suggestion");
    request_specs(text)
}

fn request_specs(text: &str) -> VersionSpecifiers {
    EvalRequest::parse(PKG, None, Some(text))
        .unwrap()
        .specifiers()
        .unwrap_or_default()
}

fn show(vs: &[Version]) -> String {
    vs.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(" ")
}

// ------------------------------------------------------------------ properties

/// 256 cases each (`PROPTEST_CASES` overrides, for a longer soak).
fn config() -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(256);
    ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(config())]

    /// (a) Containment: a plan that lets the requirement through has no
    /// admitted version outside the window in the universe; a denial has one.
    #[test]
    fn containment_matches_the_brute_force(specs in arb_specs(), (min, max) in arb_window()) {
        let reg = registry(&min, &max);
        let req = request(&specs);
        let specs = req.specifiers().unwrap();
        let bounds = bounds_of(&reg);
        let verdict = decided(&req, &reg);
        if let Some(pin) = req.pinned_version() {
            let pin = parse(&pin);
            prop_assert_eq!(verdict.is_some(), !pep440_admits_all(&bounds, &pin),
                "pin {} against {}", pin, bounds);
            return Ok(());
        }
        let uni = universe(&boundaries(&specs, &bounds));
        let outside: Vec<Version> = uni
            .into_iter()
            .filter(|u| pep440_admits_all(&specs, u) && !pep440_admits_all(&bounds, u))
            .collect();
        let witness = admitted_outside(&specs, &bounds);
        prop_assert_eq!(verdict.is_some(), witness.is_some(),
            "the plan and admitted_outside disagree on `{}` in `{}`", specs, bounds);
        match witness {
            None => prop_assert!(outside.is_empty(),
                "`{}` judged within `{}`, but admits {}", specs, bounds, show(&outside)),
            Some(w) => prop_assert!(
                pep440_admits_all(&specs, &w) && !pep440_admits_all(&bounds, &w),
                "`{}` judged outside `{}` with witness {}, which is no witness", specs, bounds, w),
        }
    }

    /// The engine's admission is PEP 440's, version by version, and it asks
    /// for pre-releases when PEP 440 says the requirement does.
    #[test]
    fn admission_is_pep440(specs in arb_specs()) {
        prop_assert_eq!(mentions_prerelease(&specs), names_prerelease(&specs));
        let uni = universe(&boundaries(&specs, &VersionSpecifiers::empty()));
        let engine = Admission::new(&specs);
        let wrong: Vec<Version> = uni
            .into_iter()
            .filter(|u| engine.admits(u) != pep440_admits_all(&specs, u))
            .collect();
        prop_assert!(wrong.is_empty(), "`{}` admits wrongly: {}", specs, show(&wrong));
    }

    /// The oracle is pep440_rs's `contains` but where that breaks PEP 440.
    #[test]
    fn oracle_is_pep440_rs_but_for_known_deviations(spec in arb_clause()) {
        let uni = universe(&[spec.version().clone()]);
        for u in &uni {
            let ours = pep440_admits(&spec, u);
            prop_assert!(spec.contains(u) == ours || known_pep440_rs_deviation(&spec, u).is_some(),
                "`{}` on {}: pep440_rs {}, oracle {}", spec, u, !ours, ours);
        }
    }

    /// (b) The suggested requirement admits exactly requirement ∩ window
    /// (or, when that is empty, is the window), and passes the gate itself.
    #[test]
    fn suggestion_is_the_intersection(specs in arb_specs(), (min, max) in arb_window()) {
        let reg = registry(&min, &max);
        let req = request(&specs);
        let specs = req.specifiers().unwrap();
        let bounds = bounds_of(&reg);
        let Some(verdict) = decided(&req, &reg) else { return Ok(()) };
        if req.pinned_version().is_some() {
            return Ok(());
        }
        let sugg = suggested_specs(&verdict);
        let uni = universe(&boundaries(&specs, &bounds));
        let both = |u: &Version| pep440_admits_all(&specs, u) && pep440_admits_all(&bounds, u);
        let target: Box<dyn Fn(&Version) -> bool> = if uni.iter().any(both) {
            Box::new(both)
        } else {
            Box::new(|u: &Version| pep440_admits_all(&bounds, u))
        };
        let wrong: Vec<Version> = uni
            .iter()
            .filter(|u| pep440_admits_all(&sugg, u) != target(u))
            .cloned()
            .collect();
        prop_assert!(wrong.is_empty(),
            "`{}` ∩ `{}` suggested as `{}`; differs on {}", specs, bounds, sugg, show(&wrong));
        let again = request(&sugg);
        prop_assert!(decided(&again, &reg).is_none(),
            "the suggestion `{}` for `{}` is itself denied by `{}`", sugg, specs, bounds);
    }

    /// (c) The judged release: the highest non-yanked release admitted by the
    /// requirement and the window, pre-releases only when the requirement
    /// names one or no final release qualifies; else the newest final.
    #[test]
    fn selection_matches_the_brute_force(
        specs in arb_specs(),
        (min, max) in arb_window(),
        picks in prop::collection::vec((any::<Index>(), prop::bool::weighted(0.2)), 0..16),
        with_window in any::<bool>(),
    ) {
        let reg = if with_window { registry(&min, &max) } else { unlisted() };
        let req = request(&specs);
        let specs = req.specifiers().unwrap();
        let bounds: VersionSpecifiers = if with_window { bounds_of(&reg) } else { VersionSpecifiers::empty() };
        let uni = universe(&boundaries(&specs, &bounds));
        let releases: Vec<Release> = picks
            .iter()
            .map(|(i, yanked)| Release { version: i.get(&uni).to_string(), yanked: *yanked })
            .collect();
        let got = select_version(&req, &reg, &releases);
        let want = if let Some(pin) = req.pinned_version() {
            Some(pin)
        } else {
            brute_force_choice(&specs, &bounds, &releases)
        };
        prop_assert_eq!(got.as_deref().map(parse), want.as_deref().map(parse),
            "`{}` in `{}` from {:?}", specs, bounds, releases);
        if let (Some(got), Some(want)) = (&got, &want) {
            let ok = |s: &str| { let v = parse(s); pep440_admits_all(&specs, &v) && pep440_admits_all(&bounds, &v) };
            prop_assert_eq!(ok(got), ok(want), "{} vs {}", got, want);
        }
    }
}

/// The release a brute force judges: of the non-yanked releases admitted by
/// the requirement and the window, the highest final one, or the highest of
/// all when the requirement names a pre-release or no final one qualifies;
/// failing that, the newest non-yanked final release (else any).
fn brute_force_choice(
    specs: &VersionSpecifiers,
    bounds: &VersionSpecifiers,
    releases: &[Release],
) -> Option<String> {
    let installable: Vec<(Version, &str)> = releases
        .iter()
        .filter(|r| !r.yanked)
        .map(|r| (parse(&r.version), r.version.as_str()))
        .collect();
    let highest = |keep: &dyn Fn(&Version) -> bool| {
        installable
            .iter()
            .filter(|(v, _)| keep(v))
            .max_by(|a, b| a.0.cmp(&b.0))
            .map(|(_, s)| s.to_string())
    };
    let admitted = |v: &Version| pep440_admits_all(specs, v) && pep440_admits_all(bounds, v);
    let is_final = |v: &Version| !v.is_pre() && !v.is_dev();
    let chosen = if names_prerelease(specs) {
        highest(&admitted)
    } else {
        highest(&|v| admitted(v) && is_final(v)).or_else(|| highest(&admitted))
    };
    chosen
        .or_else(|| highest(&is_final))
        .or_else(|| highest(&|_| true))
}

// ------------------------------------------------------------------ regressions
//
// Counterexamples the properties found in the engine as it was (pep440_rs's
// `contains` and its `Ranges` conversion used directly), kept as plain tests.

fn spec(text: &str) -> VersionSpecifiers {
    VersionSpecifiers::from_str(text).unwrap()
}

fn window(min: Option<&str>, max: Option<&str>) -> Registry {
    registry(&min.map(parse), &max.map(parse))
}

fn within_window(requirement: &str, reg: &Registry) -> bool {
    let req = EvalRequest::parse(PKG, None, Some(requirement)).unwrap();
    decided(&req, reg).is_none()
}

fn releases(versions: &[&str]) -> Vec<Release> {
    versions
        .iter()
        .map(|v| Release {
            version: v.to_string(),
            yanked: false,
        })
        .collect()
}

fn select(requirement: &str, reg: &Registry, versions: &[&str]) -> Option<String> {
    let req = EvalRequest::parse(PKG, None, Some(requirement)).unwrap();
    select_version(&req, reg, &releases(versions))
}

/// The existence gate's verdict on `requirement` for an approved package
/// whose index lists `versions`: `Some` when it finds no release satisfies.
fn no_release_satisfies(requirement: &str, versions: &[&str]) -> bool {
    let reg = Registry::from_yaml(&format!(
        "version: \"1\"\npackages:\n  {PKG}:\n    status: approved\n"
    ))
    .unwrap();
    let req = EvalRequest::parse(PKG, None, Some(requirement)).unwrap();
    let facts = Facts {
        index: Some(IndexFacts::Found {
            name: PKG.into(),
            releases: releases(versions),
            metadata: None,
        }),
        advisories: Some(AdvisoryFacts::Found(Vec::new())),
    };
    decide(&req, &reg, &facts, FailPolicy::Open).denial_category == Some(DenialCategory::NotFound)
}

/// Issue 13: `~=5.2` is `>=5.2, ==5.*`, inside `>=4.2,<6.0`; the ranges
/// ended at `6.dev0` and `6.min0`, and phantom versions lay between.
#[test]
fn compatible_release_inside_the_window_is_allowed() {
    let django = window(Some("4.2"), Some("6.0"));
    assert!(within_window("pkg~=5.2", &django));
    assert!(within_window("pkg~=5.2.1", &django));
    assert!(within_window("pkg==5.*", &django));
    assert!(!within_window(
        "pkg~=5.2",
        &window(Some("4.2"), Some("5.9"))
    ));
    assert!(within_window("pkg~=2.2", &window(Some("2.2"), Some("3"))));
    assert!(within_window("pkg>=1,~=2.2", &window(None, Some("3"))));
    assert!(within_window("pkg==1.0.2.*", &window(None, Some("1.0.3"))));
    assert!(within_window(
        "pkg>1.2.3,<3.dev0",
        &window(Some("0"), Some("3"))
    ));
    assert_eq!(admitted_outside(&spec("~=5.2"), &spec(">=4.2,<6.0")), None);
}

/// `<0` admits nothing (`0`'s pre-releases are refused, nothing is below
/// them); it was judged to admit versions outside `>=3`.
#[test]
fn a_requirement_admitting_nothing_is_not_outside() {
    assert!(within_window("pkg<0", &window(Some("3"), None)));
    assert!(within_window("pkg!=0.*", &window(Some("0.dev0"), None)));
    assert_eq!(admitted_outside(&spec("<0"), &spec(">=3")), None);
}

/// `<1.0.post1` admits `1.0`: the range stopped below every `1.0` version,
/// so `>=1.0,<1.0.post1` looked empty and passed a window `>=2`.
#[test]
fn a_post_release_upper_bound_keeps_the_release() {
    let two = window(Some("2"), None);
    assert!(!within_window("pkg>=1.0,<1.0.post1", &two));
    assert_eq!(
        admitted_outside(&spec(">=1.0,<1.0.post1"), &spec(">=2")),
        Some(parse("1.0"))
    );
    // ... and `<=0.dev2` is inside `<0.post2`.
    assert!(within_window("pkg<=0.dev2", &window(None, Some("0.post2"))));
    // The suggestion keeps what the user asked for.
    let reg = window(Some("1b2.dev2"), Some("3.post1"));
    let v = decided(&request(&spec("~=3.0")), &reg).unwrap();
    assert_eq!(
        v.suggested_requirement.as_deref(),
        Some("pkg~=3.0,<3.post1")
    );
    let reg = window(Some("0.2.2"), Some("3.post2"));
    let v = decided(&request(&spec("!=3.0.*")), &reg).unwrap();
    assert_eq!(
        v.suggested_requirement.as_deref(),
        Some("pkg>=0.2.2,!=3.0.*,<3.post2")
    );
}

/// `==1.0` matches `1.0+a` (local labels are ignored), so `==1.0,==1.0+a`
/// admits `1.0+a`; the ranges made it empty and let it through `>=2`.
#[test]
fn equality_matches_local_versions() {
    assert!(!within_window("pkg==1.0,==1.0+a", &window(Some("2"), None)));
    assert!(admits(&spec("==1.0"), &parse("1.0+a")));
    assert!(!admits(&spec("!=1.0"), &parse("1.0+a")));
    assert!(admits(&spec("<=1.0"), &parse("1.0+a")));
    assert!(!admits(&spec("==1.0+a"), &parse("1.0+a.b")));
}

/// pep440_rs's `contains`, which selection and the existence gate used,
/// breaks PEP 440 in three places.
#[test]
fn admission_follows_pep440_where_pep440_rs_does_not() {
    // `==1.4.*` does not match `1` (zero-padded, it is `1.0`) ...
    assert!(!admits(&spec("==1.4.*"), &parse("1")));
    assert!(admits(&spec("==1.0.*"), &parse("1")));
    assert!(no_release_satisfies("pkg==1.4.*", &["1", "1.3"]));
    // ... `>1.4rc1` admits `1.4.post1` (not a post-release of 1.4rc1) ...
    assert!(admits(&spec(">1.4rc1"), &parse("1.4.post1")));
    assert!(!admits(&spec(">1.4rc1"), &parse("1.4rc1.post1")));
    assert!(!no_release_satisfies(
        "pkg>1.4rc1",
        &["1.4rc1", "1.4.post1"]
    ));
    // ... and `<V` refuses only V's own pre-releases, none when V is one.
    assert!(admits(&spec("<2.0rc1"), &parse("2.0a1")));
    assert!(admits(&spec("<1!1.4"), &parse("1.4rc1")));
    assert!(admits(&spec("<1.4.post1"), &parse("1.4rc1")));
    assert!(!admits(&spec("<1.4.post1"), &parse("1.4.post1.dev0")));
    assert!(!admits(&spec("<1.4"), &parse("1.4rc1.post1")));
    assert!(!no_release_satisfies("pkg<2.0rc1", &["2.0a1", "2.0"]));
    // PEP 440's own examples.
    assert!(admits(&spec(">1.7"), &parse("1.7.1")));
    assert!(!admits(&spec(">1.7"), &parse("1.7.0.post1")));
    assert!(admits(&spec(">1.7.post2"), &parse("1.7.0.post3")));
    assert!(!admits(&spec(">1.7.post2"), &parse("1.7.0")));
    assert!(admits(&spec("==1.1.*"), &parse("1.1a1")));
    assert!(!admits(&spec("==1.1.post1"), &parse("1.1a1")));
}

/// A requirement naming a pre-release asks for pre-releases (PEP 440):
/// `~=0.1.1a1` judged the final `0.1.1.1` over `0.1.2.dev0`.
#[test]
fn a_requirement_naming_a_prerelease_selects_prereleases() {
    let none = unlisted();
    assert_eq!(
        select("pkg~=0.1.1a1", &none, &["0.1.1.1+loc", "0.1.2.dev0"]).as_deref(),
        Some("0.1.2.dev0")
    );
    let rel = ["1.9", "2.0rc1", "2.0", "2.1rc1"];
    assert_eq!(
        select("pkg>=2.0rc1", &none, &rel).as_deref(),
        Some("2.1rc1")
    );
    assert_eq!(select("pkg>=2.0", &none, &rel).as_deref(), Some("2.0"));
    // `!=` excludes one; it does not ask for them.
    assert_eq!(select("pkg!=2.0rc1", &none, &rel).as_deref(), Some("2.0"));
    assert_eq!(
        select("pkg<2.0rc1", &none, &["1.0", "2.0a1"]).as_deref(),
        Some("2.0a1")
    );
    // Only pre-releases qualify: take one, as before.
    assert_eq!(select("pkg>2.0", &none, &rel).as_deref(), Some("2.1rc1"));
}

/// `===` is string identity: `===1.0` is not `1.0.0`.
#[test]
fn arbitrary_equality_is_the_spelling() {
    assert!(admits(&spec("===1.0"), &parse("1.0")));
    assert!(!admits(&spec("===1.0"), &parse("1.0.0")));
    assert!(!admits(&spec("===1.0"), &parse("1.0+a")));
    assert_eq!(
        admitted_outside(&spec("===1.0,===1.0.0"), &spec(">=2")),
        None
    );
    assert_eq!(
        admitted_outside(&spec("===1.0,>=0.5"), &spec(">=2")),
        Some(parse("1.0"))
    );
    let reg = window(Some("0.5"), None);
    assert_eq!(
        select("pkg===1.0,>=0", &reg, &["1.0.0", "1.0", "0.9"]).as_deref(),
        Some("1.0")
    );
}

/// A witness past a whole series is built longer than the bound after it:
/// `>1.0,<1.0.0.….1` admits `1.0.0.….0.1.dev0` with more zeros.
#[test]
fn witnesses_reach_past_long_releases() {
    let long = format!("1.{}1", "0.".repeat(20));
    let specs = spec(&format!(">1.0,<{long}"));
    let bounds = spec(">=2");
    let w = admitted_outside(&specs, &bounds).expect("a witness");
    assert!(
        pep440_admits_all(&specs, &w) && !pep440_admits_all(&bounds, &w),
        "{w}"
    );
    assert!(!within_window(
        &format!("pkg>1.0,<{long}"),
        &window(Some("2"), None)
    ));
}
