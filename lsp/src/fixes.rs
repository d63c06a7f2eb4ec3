//! Requirement rewrites behind the code actions. Each produces a new
//! PEP 508 string for one dependency; `lex_align_manifest::replace_requirement`
//! puts it into the file without touching anything around it.

use std::str::FromStr;

use lex_align_manifest::Dependency;
use pep508_rs::{Requirement, VerbatimUrl, VersionOrUrl};

/// How the user pins: the operator of the first specifier, when any.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    Unpinned,
    Exact,
    Compatible,
    Minimum,
}

pub fn style(dep: &Dependency) -> Style {
    match dep.specifier.as_deref().map(str::trim_start) {
        None => Style::Unpinned,
        Some(s) if s.starts_with("===") || s.starts_with("==") => Style::Exact,
        Some(s) if s.starts_with("~=") => Style::Compatible,
        Some(_) => Style::Minimum,
    }
}

fn specifier_for(style: Style, version: &str) -> String {
    match style {
        Style::Unpinned => String::new(),
        Style::Exact => format!("=={version}"),
        Style::Compatible => format!("~={version}"),
        Style::Minimum => format!(">={version}"),
    }
}

/// The marker part of the requirement exactly as the user wrote it
/// (`raw` is the requirement's text in the file), so a fix does not
/// rewrite `python_version` into its normalised spelling.
fn marker_tail(dep: &Dependency, raw: &str) -> String {
    match raw.find(';') {
        // An escape sequence would be re-escaped by the writer: use the parsed form.
        Some(i) if !raw.contains('\\') => {
            let start = raw[..i].trim_end().len();
            raw[start..].to_string()
        }
        _ => dep
            .marker
            .as_ref()
            .map_or_else(String::new, |m| format!("; {m}")),
    }
}

fn assemble(dep: &Dependency, raw: &str, name: &str, specifier: &str) -> String {
    let mut out = name.to_string();
    if !dep.extras.is_empty() {
        out.push('[');
        out.push_str(&dep.extras.join(","));
        out.push(']');
    }
    out.push_str(specifier);
    out.push_str(&marker_tail(dep, raw));
    out
}

/// `dep` with its package swapped for `replacement`, keeping extras and
/// markers. The old version numbers mean nothing for the new package, so
/// the specifier keeps only its style, applied to `replacement_version`
/// (the version the policy resolved for the replacement) when known.
pub fn replace_package(
    dep: &Dependency,
    raw: &str,
    replacement: &str,
    replacement_version: Option<&str>,
) -> String {
    let spec = replacement_version.map_or_else(String::new, |v| specifier_for(style(dep), v));
    assemble(dep, raw, replacement, &spec)
}

/// `dep` with the specifier of `suggested` (a full requirement such as
/// `cryptography>=41,<44`), keeping the name as written, extras and marker.
pub fn tighten(dep: &Dependency, raw: &str, suggested: &str) -> Option<String> {
    let req = Requirement::<VerbatimUrl>::from_str(suggested).ok()?;
    let spec = match req.version_or_url {
        Some(VersionOrUrl::VersionSpecifier(vs)) => vs
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(","),
        _ => return None,
    };
    Some(assemble(dep, raw, &dep.name, &spec))
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
    assemble(dep, raw, &dep.name, &specifier_for(style, version))
}
