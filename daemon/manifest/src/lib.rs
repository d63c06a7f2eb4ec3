//! The manifest model: every Python dependency of a project with its exact
//! source span.
//!
//! One parser shared by the CLI (audit, precommit, hooks) and the LSP server so
//! that a diagnostic, a SARIF location and a code action all point at the same
//! bytes. The crate is pure: it takes file contents (and a callback to read
//! included files) and never touches the file system or the network.
//!
//! Offsets are byte offsets into the file's text. `line` and `column` are
//! 0-based; `column` counts Unicode scalar values. Use [`position`] for LSP
//! positions in UTF-8 or UTF-16 code units.

mod edit;
mod lock;
mod poetry;
mod pyproject;
mod requirements;
mod text;

use std::collections::{BTreeMap, BTreeSet};
use std::str::FromStr;

use pep508_rs::{Requirement, VersionOrUrl};
use serde::{Deserialize, Serialize};

pub use edit::{
    apply_changes, replace_dependency, rewrite_requirement, stricter_specifier, Kept, Merged,
    PinStyle, Replacement, TextChange,
};
pub use lock::{attribute, parse_poetry_lock, parse_pylock, parse_uv_lock, LockedPackage};
pub use poetry::poetry_constraint_to_pep440;
pub use pyproject::parse_pyproject;
pub use requirements::parse_requirements;
pub use text::{offset_at, position, replace_requirement, LineIndex};

/// A byte range `start..end` in a file's text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Span {
    pub start: usize,
    pub end: usize,
}

impl Span {
    pub fn new(start: usize, end: usize) -> Self {
        Span { start, end }
    }

    /// The text this span covers.
    pub fn slice<'a>(&self, text: &'a str) -> &'a str {
        &text[self.start..self.end]
    }
}

/// Where a dependency is declared, which decides how it is installed.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(tag = "kind", content = "name", rename_all = "kebab-case")]
pub enum Scope {
    /// `[project].dependencies`
    Runtime,
    /// `[project].optional-dependencies.<extra>`
    Optional(String),
    /// `[dependency-groups].<group>` (PEP 735), including included groups
    Group(String),
    /// `[build-system].requires`
    Build,
    /// `[tool.uv].dev-dependencies`
    UvDev,
    /// `[tool.uv].constraint-dependencies`
    UvConstraint,
    /// `[tool.uv].override-dependencies`
    UvOverride,
    /// `[tool.poetry.dependencies]`
    PoetryMain,
    /// `[tool.poetry.group.<g>.dependencies]`; `[tool.poetry.dev-dependencies]` is group `dev`
    PoetryGroup(String),
    /// a `requirements*.txt` line (or a file it includes with `-r`)
    Requirements,
    /// a line of a constraints file included with `-c` / `--constraint`
    Constraint,
    /// a package only a lock file names (transitive)
    Lock,
}

impl Scope {
    /// A short human label: `runtime`, `optional:socks`, `group:dev`, …
    pub fn label(&self) -> String {
        match self {
            Scope::Runtime => "runtime".into(),
            Scope::Optional(e) => format!("optional:{e}"),
            Scope::Group(g) => format!("group:{g}"),
            Scope::Build => "build".into(),
            Scope::UvDev => "uv-dev".into(),
            Scope::UvConstraint => "uv-constraint".into(),
            Scope::UvOverride => "uv-override".into(),
            Scope::PoetryMain => "poetry".into(),
            Scope::PoetryGroup(g) => format!("poetry-group:{g}"),
            Scope::Requirements => "requirements".into(),
            Scope::Constraint => "constraint".into(),
            Scope::Lock => "lock".into(),
        }
    }

    /// Constraints and overrides restrict versions but install nothing by themselves.
    pub fn installs(&self) -> bool {
        !matches!(
            self,
            Scope::UvConstraint | Scope::UvOverride | Scope::Constraint
        )
    }
}

/// The location of a dependency in its file.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct SourceRef {
    /// The file label the caller gave (for includes: the included file's label).
    pub file: String,
    /// The requirement's text without quotes. For a Poetry entry: the whole
    /// `name = constraint` entry (there is no PEP 508 string to point at).
    pub span: Span,
    /// 0-based line of `span.start`.
    pub line: u32,
    /// 0-based column of `span.start`, in Unicode scalar values.
    pub column: u32,
    /// The package name as written.
    pub name_span: Span,
}

/// One dependency declaration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dependency {
    /// The normalised PEP 508 text (canonical name, specifiers, extras, marker).
    pub requirement: String,
    /// The name as written in the file.
    pub name: String,
    /// The PEP 503 normalised name.
    pub canonical: String,
    /// Version specifiers, e.g. `>=41,<44`; `None` when unconstrained or a URL.
    pub specifier: Option<String>,
    pub extras: Vec<String>,
    pub marker: Option<String>,
    /// A direct URL (`name @ https://…`) when the requirement has one.
    pub url: Option<String>,
    pub scope: Scope,
    pub source: SourceRef,
    /// The version a lock file resolves this package to.
    pub locked_version: Option<String>,
    /// For transitive lock entries: the direct dependencies (canonical) that pull it in.
    pub via: Vec<String>,
    /// Declared by the project (false for packages found only in a lock file).
    pub direct: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FindingKind {
    /// The file is not valid TOML; nothing in it was read.
    InvalidToml,
    /// A string that is not a valid PEP 508 requirement (or Poetry constraint).
    InvalidRequirement,
    /// A `-r`/`-c` file that cannot be read, or a missing / cyclic `include-group`.
    InvalidInclude,
    /// A declaration lex-align cannot check (path, git or URL-only dependency, `||` union).
    Unsupported,
}

/// A problem with the manifest itself; the rest of the file is still read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finding {
    pub file: String,
    pub span: Span,
    pub line: u32,
    pub column: u32,
    pub message: String,
    pub kind: FindingKind,
}

/// All dependencies of one manifest file (and what it includes).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub dependencies: Vec<Dependency>,
    pub findings: Vec<Finding>,
}

impl Manifest {
    /// Adds another file's dependencies and findings to this one.
    pub fn extend(&mut self, other: Manifest) {
        self.dependencies.extend(other.dependencies);
        self.findings.extend(other.findings);
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ChangeKind {
    Added,
    SpecifierChanged,
    Removed,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Change {
    pub kind: ChangeKind,
    /// The new declaration (for `Removed`: the old one).
    pub dependency: Dependency,
}

/// What changed between two versions of a manifest, per scope: a package is
/// `Added` when the scope did not have it, `SpecifierChanged` when its full
/// requirement (specifier, extras or marker) differs, `Removed` when it is gone.
pub fn diff(old: &Manifest, new: &Manifest) -> Vec<Change> {
    type Key = (Scope, String);
    fn group(m: &Manifest) -> BTreeMap<Key, BTreeSet<String>> {
        let mut map: BTreeMap<Key, BTreeSet<String>> = BTreeMap::new();
        for d in m.dependencies.iter().filter(|d| d.direct) {
            map.entry((d.scope.clone(), d.canonical.clone()))
                .or_default()
                .insert(d.requirement.clone());
        }
        map
    }
    let before = group(old);
    let after = group(new);
    let mut changes = Vec::new();
    // Several entries can share a span (an included dependency group); report each once.
    let mut seen = BTreeSet::new();
    for d in new.dependencies.iter().filter(|d| d.direct) {
        let key = (d.scope.clone(), d.canonical.clone());
        let kind = match before.get(&key) {
            None => ChangeKind::Added,
            Some(reqs) if !reqs.contains(&d.requirement) => ChangeKind::SpecifierChanged,
            Some(_) => continue,
        };
        if seen.insert((key, d.requirement.clone())) {
            changes.push(Change {
                kind,
                dependency: d.clone(),
            });
        }
    }
    for d in old.dependencies.iter().filter(|d| d.direct) {
        let key = (d.scope.clone(), d.canonical.clone());
        if !after.contains_key(&key) && seen.insert((key, d.requirement.clone())) {
            changes.push(Change {
                kind: ChangeKind::Removed,
                dependency: d.clone(),
            });
        }
    }
    changes
}

/// PEP 503 normalisation: lowercase, runs of `-`, `_`, `.` become one `-`.
pub fn canonicalize(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut in_sep = false;
    for c in name.trim().chars() {
        if matches!(c, '-' | '_' | '.') {
            in_sep = true;
        } else {
            if in_sep && !out.is_empty() {
                out.push('-');
            }
            in_sep = false;
            out.extend(c.to_lowercase());
        }
    }
    out
}

/// The parts of a requirement string once `pep508_rs` accepted it.
#[derive(Debug)]
pub(crate) struct Parsed {
    pub requirement: String,
    pub canonical: String,
    pub specifier: Option<String>,
    pub extras: Vec<String>,
    pub marker: Option<String>,
    pub url: Option<String>,
}

/// Checks the name and the extras of a PEP 508 string against PEP 508's
/// identifier rule (letters and digits at both ends) before `pep508_rs`
/// sees it: pep508_rs 0.9.2 panics on a name or extra that ends in `.`, `-`
/// or `_` followed by another character (found by the fuzz targets, e.g.
/// `requests- >=2`, `httpx[http2-]`). Returns the message, the byte offset
/// and the length of what it blames (as [`parse_pep508`] does).
pub fn pep508_identifier_error(s: &str) -> Option<(String, usize, usize)> {
    // pep508_rs 0.9.2 also slices its input inside multi-byte characters
    // when it reports an error: outside quoted marker values a requirement
    // is ASCII (names, versions, operators), so anything else is refused here.
    let mut quote = None;
    for (at, c) in s.char_indices() {
        match (quote, c) {
            (None, '\'' | '"') => quote = Some(c),
            (Some(q), c) if c == q => quote = None,
            (None, c) if !c.is_ascii() => {
                return Some((
                    format!("requirement contains the non-ASCII character {c:?}"),
                    at,
                    c.len_utf8(),
                ))
            }
            _ => {}
        }
    }
    let is_id = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_');
    let bad_end = |id: &str| id.ends_with(['.', '-', '_']) || id.starts_with(['.', '-', '_']);
    let start = s.len() - s.trim_start().len();
    let name_len = s[start..]
        .find(|c: char| !is_id(c))
        .unwrap_or(s.len() - start);
    let name = &s[start..start + name_len];
    if !name.is_empty() && bad_end(name) {
        return Some((
            format!("package name `{name}` must start and end with a letter or digit"),
            start,
            name_len,
        ));
    }
    let rest = &s[start + name_len..];
    let after = rest.trim_start();
    if let Some(extras) = after.strip_prefix('[') {
        let base = s.len() - extras.len();
        let end = extras.find(']').unwrap_or(extras.len());
        let mut offset = 0;
        for part in extras[..end].split(',') {
            let id = part.trim();
            let lead = part.len() - part.trim_start().len();
            if !id.is_empty() && id.chars().all(is_id) && bad_end(id) {
                let from = base + offset + lead;
                return Some((
                    format!("extra `{id}` must start and end with a letter or digit"),
                    from,
                    id.len(),
                ));
            }
            offset += part.len() + 1;
        }
    }
    None
}

/// `pep508_rs`'s parser behind [`pep508_identifier_error`]: the one way this
/// workspace parses a requirement string.
pub fn parse_requirement<T: pep508_rs::Pep508Url>(s: &str) -> Result<Requirement<T>, String> {
    if let Some((msg, _, _)) = pep508_identifier_error(s) {
        return Err(msg);
    }
    if let Some(shadow) = ascii_shadow(s) {
        // Errors are found on the ASCII copy, where reporting them is safe.
        Requirement::<T>::from_str(&shadow).map_err(|e| e.to_string())?;
    }
    Requirement::<T>::from_str(s).map_err(|e| e.to_string())
}

/// `s` with every non-ASCII character (only inside quoted marker values,
/// see [`pep508_identifier_error`]) replaced by as many `x` as it has bytes:
/// same structure, same byte offsets. `None` when `s` is ASCII.
fn ascii_shadow(s: &str) -> Option<String> {
    if s.is_ascii() {
        return None;
    }
    Some(
        s.chars()
            .map(|c| {
                if c.is_ascii() {
                    c.to_string()
                } else {
                    "x".repeat(c.len_utf8())
                }
            })
            .collect(),
    )
}

/// Parses a PEP 508 string; on error returns the message and the byte range
/// (within `s`) the parser blames.
pub(crate) fn parse_pep508(s: &str) -> Result<Parsed, (String, usize, usize)> {
    if let Some(e) = pep508_identifier_error(s) {
        return Err(e);
    }
    if let Some(shadow) = ascii_shadow(s) {
        if let Err(e) = Requirement::<pep508_rs::VerbatimUrl>::from_str(&shadow) {
            let (start, len) = (e.start.min(s.len()), e.len);
            let end = (start + len).min(s.len());
            // Byte offsets are the original's (same lengths); keep them on
            // character boundaries.
            let fix = |mut i: usize| {
                while i > 0 && !s.is_char_boundary(i) {
                    i -= 1;
                }
                i
            };
            let (start, end) = (fix(start), fix(end));
            return Err((e.message.to_string(), start, end - start));
        }
    }
    match Requirement::<pep508_rs::VerbatimUrl>::from_str(s) {
        Ok(req) => {
            let (specifier, url) = match &req.version_or_url {
                Some(VersionOrUrl::VersionSpecifier(vs)) => {
                    let parts: Vec<String> = vs.iter().map(ToString::to_string).collect();
                    (
                        if parts.is_empty() {
                            None
                        } else {
                            Some(parts.join(","))
                        },
                        None,
                    )
                }
                Some(VersionOrUrl::Url(u)) => (None, Some(u.to_string())),
                None => (None, None),
            };
            Ok(Parsed {
                requirement: req.to_string(),
                canonical: req.name.to_string(),
                specifier,
                extras: req.extras.iter().map(ToString::to_string).collect(),
                marker: req.marker.contents().map(|m| m.to_string()),
                url,
            })
        }
        Err(e) => {
            let message = e.message.to_string();
            Err((message, e.start, e.len))
        }
    }
}

/// The length of the distribution name at the start of `s` (after leading whitespace).
pub(crate) fn name_range(s: &str) -> (usize, usize) {
    let lead = s.len() - s.trim_start().len();
    let len = s[lead..]
        .bytes()
        .take_while(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        .count();
    (lead, lead + len)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_names_follow_pep503() {
        assert_eq!(
            canonicalize("Django_REST.framework"),
            "django-rest-framework"
        );
        assert_eq!(canonicalize("zope..interface"), "zope-interface");
        assert_eq!(canonicalize("A"), "a");
    }

    #[test]
    fn scopes_serialise_as_tagged_objects() {
        let json = serde_json::to_string(&[Scope::Runtime, Scope::Optional("s3".into())]).unwrap();
        assert_eq!(
            json,
            r#"[{"kind":"runtime"},{"kind":"optional","name":"s3"}]"#
        );
        let back: Vec<Scope> = serde_json::from_str(&json).unwrap();
        assert_eq!(back, vec![Scope::Runtime, Scope::Optional("s3".into())]);
        assert_eq!(Scope::PoetryGroup("dev".into()).label(), "poetry-group:dev");
        assert!(!Scope::UvConstraint.installs() && Scope::Build.installs());
    }

    #[test]
    fn pep508_normalises_and_reports_errors() {
        let p = parse_pep508("Requests[socks] >= 2.8.1 ; python_version < '3.11'").unwrap();
        assert_eq!(p.canonical, "requests");
        assert_eq!(p.specifier.as_deref(), Some(">=2.8.1"));
        assert_eq!(p.extras, vec!["socks"]);
        assert_eq!(p.marker.as_deref(), Some("python_full_version < '3.11'"));
        let (msg, start, _) = parse_pep508("requests >= ").unwrap_err();
        assert!(!msg.is_empty());
        assert!(start <= "requests >= ".len());
    }
}
