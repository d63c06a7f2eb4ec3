//! Requirement rewrites behind the code actions. Each produces a new
//! PEP 508 string for one dependency; `lex_align_manifest::replace_requirement`
//! puts it into the file without touching anything around it. Replacing a
//! package is `lex_align_manifest::replace_dependency`, which also keeps
//! one entry per package when the table already declares the replacement.

use lex_align_manifest::{rewrite_requirement, Dependency, Kept, Replacement};
use pep508_rs::{VerbatimUrl, VersionOrUrl};

/// How the user pins: the operator of the first specifier, when any.
pub use lex_align_manifest::PinStyle as Style;

pub fn style(dep: &Dependency) -> Style {
    Style::of(dep)
}

/// The title of the "Replace X with Y" quick fix; it says when the table
/// already declared Y and which specifier the kept entry ends up with.
pub fn replacement_title(dep: &Dependency, r: &Replacement) -> String {
    let head = format!("Replace {} with {}", dep.name, r.requirement);
    match &r.merged {
        None => head,
        Some(m) => match m.kept {
            Kept::Declared => format!("{head} (already declared; one entry kept)"),
            Kept::Suggested | Kept::Intersection => {
                format!("{head} (merged with the declared {})", m.declared)
            }
            Kept::Conflict => format!(
                "{head} (the declared {} conflicts with the registry's version; the registry's wins)",
                m.declared
            ),
        },
    }
}

/// `dep` with the specifier of `suggested` (a full requirement such as
/// `cryptography>=41,<44`), keeping the name as written, extras and marker.
pub fn tighten(dep: &Dependency, raw: &str, suggested: &str) -> Option<String> {
    let req = lex_align_manifest::parse_requirement::<VerbatimUrl>(suggested).ok()?;
    let spec = match req.version_or_url {
        Some(VersionOrUrl::VersionSpecifier(vs)) => vs
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(","),
        _ => return None,
    };
    Some(rewrite_requirement(dep, raw, &dep.name, &spec))
}

/// `dep` renamed to `name` (a "did you mean" suggestion), keeping its
/// specifier, extras and marker.
pub fn rename(dep: &Dependency, raw: &str, name: &str) -> String {
    rewrite_requirement(dep, raw, name, dep.specifier.as_deref().unwrap_or(""))
}

/// `dep` moved to `version` (the first version without known advisories):
/// `==` pins stay pins, everything else becomes a lower bound, so the
/// resolver can no longer pick a vulnerable release.
pub fn move_to(dep: &Dependency, raw: &str, version: &str) -> String {
    let style = match style(dep) {
        Style::Exact => Style::Exact,
        Style::Compatible => Style::Compatible,
        Style::Unpinned | Style::Minimum => Style::Minimum,
    };
    rewrite_requirement(dep, raw, &dep.name, &style.specifier(version))
}
