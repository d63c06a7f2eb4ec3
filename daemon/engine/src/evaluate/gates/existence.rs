//! Gate 2, existence: a package or version the index does not have cannot be
//! installed (a typo or a hallucination). Also takes in the index facts the
//! later gates use and resolves the judged release.

use std::str::FromStr;

use pep440_rs::Version;

use super::{deny, Ctx};
use crate::evaluate::versions::{installable, Admission};
use crate::evaluate::{select_version, IndexFacts};
use crate::registry::Status;
use crate::verdict::{DenialCategory, Verdict};

pub(crate) fn run(ctx: &mut Ctx) -> Option<Verdict> {
    let req = ctx.req;
    let facts = ctx.facts;
    match (&facts.index, ctx.needs.index) {
        (Some(IndexFacts::NotFound { known_names }), _) if ctx.rule.is_none() => {
            let suggestions = suggest(ctx, known_names);
            let mut reason = format!(
                "`{}` does not exist on the package index; check the name (possible typo or hallucinated package).",
                req.package
            );
            if !suggestions.is_empty() {
                let names: Vec<String> = suggestions.iter().map(|s| format!("`{s}`")).collect();
                reason.push_str(&format!(" Did you mean {}?", names.join(" or ")));
            }
            let mut v = deny(req, DenialCategory::NotFound, reason);
            v.resolved_version = ctx.pinned.clone();
            v.suggestions = suggestions;
            return Some(v);
        }
        // A registry rule is an operator's decision; a package the index does not
        // carry (a private one) keeps it.
        (Some(IndexFacts::NotFound { .. }), _) => {}
        (Some(IndexFacts::Unavailable(e)), _) => index_down(ctx, e),
        (None, true) => index_down(ctx, "it was not consulted"),
        (
            Some(IndexFacts::Found {
                releases, metadata, ..
            }),
            _,
        ) => {
            ctx.index_found = true;
            ctx.releases = releases;
            ctx.metadata = metadata.as_ref().map(|(_, meta)| meta);
        }
        (None, false) => {}
    }

    if let Some(v) = unlisted_version(ctx) {
        return Some(v);
    }

    ctx.resolved = match &ctx.pinned {
        Some(p) => Some(p.clone()),
        None if ctx.releases.is_empty() => None,
        None => select_version(req, ctx.registry, ctx.releases),
    };
    None
}

/// Close names a user could have meant: the registry's packages that are not
/// blocked (a banned package is no better a choice), then names the index
/// has confirmed.
fn suggest(ctx: &Ctx, known_names: &[String]) -> Vec<String> {
    let listed = ctx
        .registry
        .packages
        .iter()
        .filter(|(_, r)| !matches!(r.status, Status::Banned | Status::Deprecated))
        .map(|(k, _)| k.as_str());
    crate::name::similar_names(
        &ctx.req.package,
        listed.chain(known_names.iter().map(String::as_str)),
    )
}

fn index_down(ctx: &mut Ctx, why: &str) {
    ctx.index_down = true;
    ctx.errors.push(format!("package index unavailable: {why}"));
}

/// A requirement no release satisfies, or a pin the index does not list,
/// cannot be installed (a hallucinated version). Only judged when the index
/// listed releases.
fn unlisted_version(ctx: &Ctx) -> Option<Verdict> {
    let (req, releases) = (ctx.req, ctx.releases);
    if releases.is_empty() {
        return None;
    }
    let listed = installable(releases);
    match (&ctx.pinned, req.specifiers()) {
        (None, Some(specs))
            if !Admission::new(&specs).admits_any(listed.iter().map(|(v, _)| v)) =>
        {
            Some(deny(
                req,
                DenialCategory::NotFound,
                format!(
                    "No release of `{}` on the package index satisfies `{}`.",
                    req.package,
                    req.requirement.as_deref().unwrap_or_default()
                ),
            ))
        }
        (Some(pin), _) if ctx.rule.is_none() => {
            // Yanked releases still exist: compare against every listing.
            let wanted = Version::from_str(pin).ok();
            let exists = |w: &Version| {
                releases
                    .iter()
                    .any(|r| Version::from_str(r.version.trim()).is_ok_and(|v| v == *w))
            };
            if wanted.is_some_and(|w| !exists(&w)) {
                let mut v = deny(
                    req,
                    DenialCategory::NotFound,
                    format!(
                        "`{}` has no release {pin} on the package index; check the version.",
                        req.package
                    ),
                );
                v.resolved_version = Some(pin.clone());
                return Some(v);
            }
            None
        }
        _ => None,
    }
}
