//! Replacing one dependency by another package, leaving one requirement per
//! package per table: what the editor's quick fix applies and what the
//! hooks and the pre-commit check advise.
//!
//! A "table" is one dependency list: `[project].dependencies`, one extra of
//! `[project.optional-dependencies]`, one group of `[dependency-groups]`
//! (its own array, not the groups it includes), `[build-system].requires`,
//! each `[tool.uv]` list, each Poetry dependency table, or one requirements
//! file. When the dependency's table already declares the replacement (by
//! PEP 503 name), the dependency's entry is removed and the existing entry
//! is kept, with the stricter of its specifier and the suggested one.

use std::cmp::Ordering;
use std::str::FromStr;

use pep440_rs::{Operator, Version, VersionSpecifier, VersionSpecifiers};
use toml_edit::{ImDocument, InlineTable, Item, TableLike, Value};

use crate::pyproject::string_at;
use crate::text::quoted_for;
use crate::{
    canonicalize, parse_pyproject, parse_requirements, poetry_constraint_to_pep440, Dependency,
    FindingKind, Manifest, Scope, Span,
};

/// How a requirement pins its version: the operator of its first specifier.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PinStyle {
    Unpinned,
    Exact,
    Compatible,
    Minimum,
}

impl PinStyle {
    pub fn of(dep: &Dependency) -> PinStyle {
        match dep.specifier.as_deref().map(str::trim_start) {
            None => PinStyle::Unpinned,
            Some(s) if s.starts_with("==") => PinStyle::Exact,
            Some(s) if s.starts_with("~=") => PinStyle::Compatible,
            Some(_) => PinStyle::Minimum,
        }
    }

    /// The specifier of this style for `version`; empty when unpinned.
    pub fn specifier(self, version: &str) -> String {
        match self {
            PinStyle::Unpinned => String::new(),
            PinStyle::Exact => format!("=={version}"),
            PinStyle::Compatible => format!("~={version}"),
            PinStyle::Minimum => format!(">={version}"),
        }
    }
}

/// The marker part of the requirement exactly as the user wrote it (`raw`
/// is the requirement's text in the file), so a rewrite does not turn
/// `python_version` into its normalised spelling.
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

/// `dep`'s requirement with `name` and `specifier`, keeping its extras and
/// its marker as written (`raw` is the requirement's text in the file).
pub fn rewrite_requirement(dep: &Dependency, raw: &str, name: &str, specifier: &str) -> String {
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

/// One change to a text: `span` becomes `new_text` (an empty span inserts).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TextChange {
    pub span: Span,
    pub new_text: String,
}

/// `text` with disjoint `changes` (in any order) applied.
pub fn apply_changes(text: &str, changes: &[TextChange]) -> String {
    let mut sorted: Vec<&TextChange> = changes.iter().collect();
    sorted.sort_by_key(|c| (c.span.start, c.span.end));
    let mut out = String::with_capacity(text.len());
    let mut at = 0;
    for c in sorted {
        out.push_str(&text[at..c.span.start]);
        out.push_str(&c.new_text);
        at = c.span.end;
    }
    out.push_str(&text[at..]);
    out
}

/// `span`'s text once the changes inside it are applied.
fn apply_within(text: &str, span: Span, changes: &[TextChange]) -> String {
    let inside: Vec<TextChange> = changes
        .iter()
        .filter(|c| span.start <= c.span.start && c.span.end <= span.end)
        .map(|c| TextChange {
            span: Span::new(c.span.start - span.start, c.span.end - span.start),
            new_text: c.new_text.clone(),
        })
        .collect();
    apply_changes(span.slice(text), &inside)
}

/// Which specifier a merged entry keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kept {
    /// The declared one admits only versions the suggested one admits: the
    /// entry stays as it is.
    Declared,
    /// The suggested one admits only versions the declared one admits.
    Suggested,
    /// Neither contains the other: the bounds of both.
    Intersection,
    /// No version satisfies both (or they cannot be compared): the
    /// suggested one (the registry's) wins.
    Conflict,
}

/// The stricter of a declared and a suggested specifier set: the one that
/// admits a subset of the other, else their intersection, else (when no
/// version satisfies both) the suggestion. `None` is "any version".
pub fn stricter_specifier(
    declared: Option<&str>,
    suggested: Option<&str>,
) -> (Option<String>, Kept) {
    let declared = declared.map(str::trim).filter(|s| !s.is_empty());
    let suggested = suggested.map(str::trim).filter(|s| !s.is_empty());
    let (d, s) = match (declared, suggested) {
        (_, None) => return (declared.map(str::to_string), Kept::Declared),
        (None, Some(s)) => return (Some(s.to_string()), Kept::Suggested),
        (Some(d), Some(s)) => (d, s),
    };
    let conflict = (Some(s.to_string()), Kept::Conflict);
    let (Ok(dv), Ok(sv)) = (
        VersionSpecifiers::from_str(d),
        VersionSpecifiers::from_str(s),
    ) else {
        return conflict;
    };
    let dv: Vec<VersionSpecifier> = dv.iter().cloned().collect();
    let sv: Vec<VersionSpecifier> = sv.iter().cloned().collect();
    let (dr, sr) = (Range::of(&dv), Range::of(&sv));
    if dr.opaque || sr.opaque {
        return if dv == sv {
            (Some(d.to_string()), Kept::Declared)
        } else {
            conflict
        };
    }
    if dr.within(&sr) {
        return (Some(d.to_string()), Kept::Declared);
    }
    if sr.within(&dr) {
        return (Some(s.to_string()), Kept::Suggested);
    }
    let mut clauses: Vec<VersionSpecifier> = Vec::new();
    for c in dv.into_iter().chain(sv) {
        if !clauses.contains(&c) {
            clauses.push(c);
        }
    }
    let target = Range::of(&clauses);
    if target.is_empty() {
        return conflict;
    }
    // Drop every clause the others already imply.
    let mut i = 0;
    while i < clauses.len() {
        let redundant = if is_exclusion(&clauses[i]) {
            !target.touches(&clauses[i])
        } else {
            let rest: Vec<VersionSpecifier> = clauses
                .iter()
                .enumerate()
                .filter(|(j, _)| *j != i)
                .map(|(_, c)| c.clone())
                .collect();
            let r = Range::of(&rest);
            r.lower == target.lower && r.upper == target.upper
        };
        if redundant {
            clauses.remove(i);
        } else {
            i += 1;
        }
    }
    clauses.sort_by_key(|c| match c.operator() {
        Operator::LessThan | Operator::LessThanEqual => 1,
        Operator::NotEqual | Operator::NotEqualStar => 2,
        _ => 0,
    });
    let text: Vec<String> = clauses.iter().map(ToString::to_string).collect();
    (Some(text.join(",")), Kept::Intersection)
}

fn is_exclusion(c: &VersionSpecifier) -> bool {
    matches!(c.operator(), Operator::NotEqual | Operator::NotEqualStar)
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Bound {
    version: Version,
    inclusive: bool,
}

/// The versions a specifier set admits, as an interval minus exclusions.
struct Range {
    lower: Option<Bound>,
    upper: Option<Bound>,
    excluded: Vec<VersionSpecifier>,
    /// `===`: arbitrary string equality, not an interval.
    opaque: bool,
}

/// `version` with its last kept release segment bumped: `drop_last` for
/// `~=1.4.5` (→ 1.5), not for `==1.4.*` (→ 1.5).
fn bump(version: &Version, drop_last: bool) -> Version {
    let release = version.release();
    let keep = if drop_last && release.len() > 1 {
        release.len() - 1
    } else {
        release.len()
    };
    let mut next = release[..keep].to_vec();
    if let Some(last) = next.last_mut() {
        *last += 1;
    }
    Version::new(next)
}

/// Whether bound `a` is at least as tight as `b` (`lower`: from below).
fn tighter(a: &Option<Bound>, b: &Option<Bound>, lower: bool) -> bool {
    match (a, b) {
        (_, None) => true,
        (None, Some(_)) => false,
        (Some(a), Some(b)) => {
            let order = if lower {
                a.version.cmp(&b.version)
            } else {
                b.version.cmp(&a.version)
            };
            order == Ordering::Greater
                || (order == Ordering::Equal && (!a.inclusive || b.inclusive))
        }
    }
}

impl Range {
    fn of(clauses: &[VersionSpecifier]) -> Range {
        let mut r = Range {
            lower: None,
            upper: None,
            excluded: Vec::new(),
            opaque: false,
        };
        for c in clauses {
            let v = c.version().clone();
            let at = |version: Version, inclusive: bool| Some(Bound { version, inclusive });
            let (lower, upper) = match c.operator() {
                Operator::Equal => (at(v.clone(), true), at(v, true)),
                Operator::EqualStar => (at(v.clone(), true), at(bump(&v, false), false)),
                Operator::TildeEqual => (at(v.clone(), true), at(bump(&v, true), false)),
                Operator::GreaterThanEqual => (at(v, true), None),
                Operator::GreaterThan => (at(v, false), None),
                Operator::LessThanEqual => (None, at(v, true)),
                Operator::LessThan => (None, at(v, false)),
                Operator::NotEqual | Operator::NotEqualStar => {
                    r.excluded.push(c.clone());
                    (None, None)
                }
                Operator::ExactEqual => {
                    r.opaque = true;
                    (None, None)
                }
            };
            if lower.is_some() && tighter(&lower, &r.lower, true) {
                r.lower = lower;
            }
            if upper.is_some() && tighter(&upper, &r.upper, false) {
                r.upper = upper;
            }
        }
        r
    }

    fn admits(&self, v: &Version) -> bool {
        let above = self.lower.as_ref().is_none_or(|l| match v.cmp(&l.version) {
            Ordering::Greater => true,
            Ordering::Equal => l.inclusive,
            Ordering::Less => false,
        });
        let below = self.upper.as_ref().is_none_or(|u| match v.cmp(&u.version) {
            Ordering::Less => true,
            Ordering::Equal => u.inclusive,
            Ordering::Greater => false,
        });
        above && below
    }

    /// Whether the interval holds a version the exclusion `e` removes.
    fn touches(&self, e: &VersionSpecifier) -> bool {
        let v = e.version();
        if *e.operator() != Operator::NotEqualStar {
            return self.admits(v);
        }
        let end = bump(v, false);
        let starts_before_end = self.lower.as_ref().is_none_or(|l| l.version < end);
        let ends_after_start = self
            .upper
            .as_ref()
            .is_none_or(|u| u.version > *v || (u.version == *v && u.inclusive));
        starts_before_end && ends_after_start
    }

    /// Whether every version this range admits, `other` admits too.
    fn within(&self, other: &Range) -> bool {
        tighter(&self.lower, &other.lower, true)
            && tighter(&self.upper, &other.upper, false)
            && other
                .excluded
                .iter()
                .all(|e| self.excluded.contains(e) || !self.touches(e))
    }

    fn is_empty(&self) -> bool {
        let (Some(l), Some(u)) = (&self.lower, &self.upper) else {
            return false;
        };
        match l.version.cmp(&u.version) {
            Ordering::Greater => true,
            Ordering::Less => false,
            Ordering::Equal => {
                !(l.inclusive && u.inclusive) || self.excluded.iter().any(|e| self.touches(e))
            }
        }
    }
}

/// What replacing a dependency does to its file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Replacement {
    /// Disjoint changes to the text, in order.
    pub changes: Vec<TextChange>,
    /// The replacement's requirement as the file reads afterwards (for
    /// Poetry: as PEP 508).
    pub requirement: String,
    /// Set when the table already declared the replacement.
    pub merged: Option<Merged>,
}

/// The replacement's entry that the table already had.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Merged {
    /// That entry's requirement as it read before (for Poetry: as PEP 508).
    pub declared: String,
    pub kept: Kept,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// An array of PEP 508 strings.
    Strings,
    /// A Poetry `name = constraint` table.
    Poetry,
    /// A requirements file.
    Lines,
}

struct Entry<'d> {
    /// The whole entry: the string with its quotes, or `name = value`.
    span: Span,
    /// Poetry: the key (with its quotes, if any) and the value.
    key: Span,
    item: Option<&'d Item>,
}

struct Table<'d> {
    kind: Kind,
    entries: Vec<Entry<'d>>,
}

fn span_of(r: Option<std::ops::Range<usize>>) -> Option<Span> {
    r.map(|r| Span::new(r.start, r.end))
}

fn string_table<'d>(item: &'d Item) -> Option<Table<'d>> {
    let entries = item
        .as_array()?
        .iter()
        .filter(|v| v.is_str())
        .filter_map(|v| {
            let span = span_of(v.span())?;
            Some(Entry {
                span,
                key: span,
                item: None,
            })
        })
        .collect();
    Some(Table {
        kind: Kind::Strings,
        entries,
    })
}

fn poetry_table<'d>(table: &'d dyn TableLike) -> Table<'d> {
    let mut entries = Vec::new();
    for (name, item) in table.iter() {
        if name.eq_ignore_ascii_case("python") {
            continue;
        }
        let Some(key) = span_of(table.key(name).and_then(|k| k.span())) else {
            continue;
        };
        let end = span_of(item.span()).map_or(key.end, |s| s.end.max(key.end));
        entries.push(Entry {
            span: Span::new(key.start, end),
            key,
            item: Some(item),
        });
    }
    Table {
        kind: Kind::Poetry,
        entries,
    }
}

/// Every dependency table of a `pyproject.toml`.
fn toml_tables<'d>(doc: &'d ImDocument<&str>) -> Vec<Table<'d>> {
    let root = doc.as_table();
    let mut out = Vec::new();
    let get = |t: Option<&'d dyn TableLike>, key: &str| t.and_then(|t| t.get(key));
    let project = root.get("project").and_then(Item::as_table_like);
    out.extend(get(project, "dependencies").and_then(string_table));
    if let Some(extras) = get(project, "optional-dependencies").and_then(Item::as_table_like) {
        out.extend(extras.iter().filter_map(|(_, i)| string_table(i)));
    }
    if let Some(groups) = root.get("dependency-groups").and_then(Item::as_table_like) {
        out.extend(groups.iter().filter_map(|(_, i)| string_table(i)));
    }
    let build = root.get("build-system").and_then(Item::as_table_like);
    out.extend(get(build, "requires").and_then(string_table));
    let tool = root.get("tool").and_then(Item::as_table_like);
    let uv = get(tool, "uv").and_then(Item::as_table_like);
    for key in [
        "dev-dependencies",
        "constraint-dependencies",
        "override-dependencies",
    ] {
        out.extend(get(uv, key).and_then(string_table));
    }
    let poetry = get(tool, "poetry").and_then(Item::as_table_like);
    for key in ["dependencies", "dev-dependencies"] {
        if let Some(t) = get(poetry, key).and_then(Item::as_table_like) {
            out.push(poetry_table(t));
        }
    }
    if let Some(groups) = get(poetry, "group").and_then(Item::as_table_like) {
        for (_, group) in groups.iter() {
            if let Some(t) = group
                .as_table_like()
                .and_then(|g| g.get("dependencies"))
                .and_then(Item::as_table_like)
            {
                out.push(poetry_table(t));
            }
        }
    }
    out
}

fn contains(outer: Span, inner: Span) -> bool {
    outer.start <= inner.start && inner.end <= outer.end
}

fn line_start(text: &str, at: usize) -> usize {
    text[..at].rfind('\n').map_or(0, |i| i + 1)
}

/// The end of the line holding `at`, past its newline.
fn line_end(text: &str, at: usize) -> usize {
    text[at..].find('\n').map_or(text.len(), |i| at + i + 1)
}

/// What to delete to remove an entry. A requirements line goes with its
/// continuation lines, comment and options. A TOML entry alone on its
/// line(s) goes with the line, its comma and its comment; one sharing a line
/// goes with its comma.
fn removal(text: &str, span: Span, kind: Kind) -> Span {
    if kind == Kind::Lines {
        let mut start = line_start(text, span.start);
        while start > 0 {
            let prev = line_start(text, start - 1);
            let body = text[prev..start].trim_end_matches(['\n', '\r']);
            if !body.ends_with('\\') {
                break;
            }
            start = prev;
        }
        let mut end = line_end(text, span.end);
        while end < text.len() && text[..end].trim_end_matches(['\n', '\r']).ends_with('\\') {
            end = line_end(text, end);
        }
        return Span::new(start, end);
    }
    let start = line_start(text, span.start);
    let alone_before = text[start..span.start].trim().is_empty();
    let rest = &text[span.end..];
    let after = rest.trim_start_matches([' ', '\t']);
    let after = after.strip_prefix(',').unwrap_or(after);
    let after = after.trim_start_matches([' ', '\t']);
    let alone_after = after.is_empty()
        || after.starts_with('#')
        || after.starts_with('\n')
        || after.starts_with("\r\n");
    if alone_before && alone_after {
        return Span::new(start, line_end(text, span.end));
    }
    let trimmed = rest.trim_start();
    if let Some(tail) = trimmed.strip_prefix(',') {
        let tail = tail.trim_start_matches([' ', '\t']);
        return Span::new(span.start, text.len() - tail.len());
    }
    let before = text[..span.start].trim_end();
    if before.ends_with(',') {
        return Span::new(before.len() - 1, span.end);
    }
    span
}

/// Where a Poetry entry keeps a version constraint.
struct Holder {
    /// The string's content; an empty span where `version = …` goes in.
    at: Span,
    insert: bool,
    /// The constraint as PEP 440 (`None`: any version); the raw text when
    /// it has no PEP 440 form (a `||` union), so it compares as a conflict.
    declared: Option<String>,
}

fn poetry_constraint(raw: &str) -> Option<String> {
    if raw.contains("||") {
        return Some(raw.to_string());
    }
    poetry_constraint_to_pep440(raw).unwrap_or_else(|_| Some(raw.to_string()))
}

fn string_holder(text: &str, v: &Value) -> Option<Holder> {
    let s = string_at(text, v)?;
    Some(Holder {
        at: s.span,
        insert: false,
        declared: poetry_constraint(s.value),
    })
}

fn inline_holder(text: &str, t: &InlineTable) -> Option<Holder> {
    if let Some(v) = t.get("version") {
        return string_holder(text, v);
    }
    let open = span_of(t.span())?.start + 1;
    let at = open + (text[open..].len() - text[open..].trim_start_matches([' ', '\t']).len());
    Some(Holder {
        at: Span::new(at, at),
        insert: true,
        declared: None,
    })
}

/// The version constraints of a Poetry entry (an array form has several).
fn poetry_holders(text: &str, item: &Item) -> Option<Vec<Holder>> {
    match item {
        Item::Value(v @ Value::String(_)) => Some(vec![string_holder(text, v)?]),
        Item::Value(Value::InlineTable(t)) => Some(vec![inline_holder(text, t)?]),
        Item::Value(Value::Array(a)) => a
            .iter()
            .map(|v| inline_holder(text, v.as_inline_table()?))
            .collect(),
        Item::Table(t) => Some(vec![string_holder(text, t.get("version")?.as_value()?)?]),
        _ => None,
    }
}

fn set_version(text: &str, holder: &Holder, spec: &str, empty_table: bool) -> TextChange {
    let new_text = if !holder.insert {
        quoted_for(text, holder.at, spec)
    } else if empty_table {
        format!("version = \"{spec}\"")
    } else {
        format!("version = \"{spec}\", ")
    };
    TextChange {
        span: holder.at,
        new_text,
    }
}

fn is_bare_key(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

fn broken(m: &Manifest) -> usize {
    m.findings
        .iter()
        .filter(|f| {
            matches!(
                f.kind,
                FindingKind::InvalidToml | FindingKind::InvalidRequirement
            )
        })
        .count()
}

/// Replaces `old` (a dependency parsed from `text`) by the package
/// `replacement`. The suggested specifier is `version` in `old`'s pin
/// style (none when `version` is unknown or `old` is unpinned).
///
/// When `old`'s table does not declare the replacement, `old`'s entry is
/// rewritten in place, keeping its extras and marker (Poetry: its table
/// keys). When it does, `old`'s entry is removed and the existing entry
/// keeps its name, extras and marker, with the stricter specifier
/// ([`stricter_specifier`]). Everything else in the file is untouched.
///
/// `None` when there is nothing to write: `old` is not in `text`, is a URL,
/// a lock entry or a Poetry sub-table, or the result would not parse.
pub fn replace_dependency(
    text: &str,
    old: &Dependency,
    replacement: &str,
    version: Option<&str>,
) -> Option<Replacement> {
    let canonical = canonicalize(replacement);
    if old.url.is_some() || !old.direct || canonical.is_empty() || canonical == old.canonical {
        return None;
    }
    let lines = match old.scope {
        Scope::Lock => return None,
        Scope::Requirements | Scope::Constraint => true,
        _ => false,
    };
    let parse = |t: &str| {
        if lines {
            parse_requirements(&old.source.file, t, &|_| None)
        } else {
            parse_pyproject(&old.source.file, t)
        }
    };
    let manifest = parse(text);
    let doc = if lines {
        None
    } else {
        Some(ImDocument::parse(text).ok()?)
    };
    let tables = match &doc {
        Some(doc) => toml_tables(doc),
        None => vec![Table {
            kind: Kind::Lines,
            entries: manifest
                .dependencies
                .iter()
                .map(|d| Entry {
                    span: d.source.span,
                    key: d.source.span,
                    item: None,
                })
                .collect(),
        }],
    };
    if !manifest
        .dependencies
        .iter()
        .any(|d| d.source.span == old.source.span && d.canonical == old.canonical)
    {
        return None;
    }
    let (table, own) = tables.iter().find_map(|t| {
        t.entries
            .iter()
            .position(|e| contains(e.span, old.source.span))
            .map(|i| (t, i))
    })?;
    let own_entry = &table.entries[own];
    let declared = manifest
        .dependencies
        .iter()
        .filter(|d| d.direct && d.canonical == canonical)
        .filter_map(|d| {
            let i = table
                .entries
                .iter()
                .position(|e| contains(e.span, d.source.span))?;
            (i != own).then_some((d, &table.entries[i]))
        })
        .min_by_key(|(d, _)| d.source.span.start);
    let suggested = version
        .map(|v| PinStyle::of(old).specifier(v))
        .filter(|s| !s.is_empty());

    let mut changes = Vec::new();
    let (requirement, merged) = match declared {
        None => {
            let requirement = match table.kind {
                Kind::Strings | Kind::Lines => {
                    let raw = old.source.span.slice(text);
                    let new = rewrite_requirement(
                        old,
                        raw,
                        replacement,
                        suggested.as_deref().unwrap_or(""),
                    );
                    changes.push(TextChange {
                        span: old.source.span,
                        new_text: quoted_for(text, old.source.span, &new),
                    });
                    apply_within(text, old.source.span, &changes)
                }
                Kind::Poetry => {
                    let item = own_entry.item?;
                    if item.is_table() {
                        return None;
                    }
                    let key_quoted = own_entry.key.slice(text).starts_with(['"', '\'']);
                    changes.push(if key_quoted || is_bare_key(replacement) {
                        TextChange {
                            span: old.source.name_span,
                            new_text: replacement.to_string(),
                        }
                    } else {
                        TextChange {
                            span: own_entry.key,
                            new_text: format!("\"{replacement}\""),
                        }
                    });
                    let spec = suggested.as_deref().unwrap_or("*");
                    let empty = item.as_inline_table().is_some_and(InlineTable::is_empty);
                    for h in poetry_holders(text, item)? {
                        changes.push(set_version(text, &h, spec, empty));
                    }
                    let spec = suggested.as_deref().unwrap_or("");
                    rewrite_requirement(old, &old.requirement, replacement, spec)
                }
            };
            (requirement, None)
        }
        Some((dep, entry)) => {
            if own_entry.item.is_some_and(Item::is_table) {
                return None;
            }
            changes.push(TextChange {
                span: removal(text, own_entry.span, table.kind),
                new_text: String::new(),
            });
            let mut kept = Kept::Declared;
            let requirement = match table.kind {
                Kind::Strings | Kind::Lines if dep.url.is_none() => {
                    let (spec, k) =
                        stricter_specifier(dep.specifier.as_deref(), suggested.as_deref());
                    kept = k;
                    if k != Kept::Declared {
                        let raw = dep.source.span.slice(text);
                        let new =
                            rewrite_requirement(dep, raw, &dep.name, spec.as_deref().unwrap_or(""));
                        changes.push(TextChange {
                            span: dep.source.span,
                            new_text: quoted_for(text, dep.source.span, &new),
                        });
                    }
                    apply_within(text, dep.source.span, &changes)
                }
                Kind::Strings | Kind::Lines => dep.source.span.slice(text).to_string(),
                Kind::Poetry => {
                    // Shown as PEP 508 (the first constraint of an array form).
                    let mut shown = None;
                    let item = entry.item?;
                    let empty = item.as_inline_table().is_some_and(InlineTable::is_empty);
                    for h in poetry_holders(text, item)? {
                        let (spec, k) =
                            stricter_specifier(h.declared.as_deref(), suggested.as_deref());
                        if k != Kept::Declared {
                            let spec = spec.as_deref().unwrap_or("*");
                            changes.push(set_version(text, &h, spec, empty));
                        }
                        shown.get_or_insert((spec, k));
                        kept = kept.max_with(k);
                    }
                    match shown {
                        Some((spec, k)) if k != Kept::Declared => rewrite_requirement(
                            dep,
                            &dep.requirement,
                            &dep.name,
                            spec.as_deref().unwrap_or(""),
                        ),
                        _ => dep.requirement.clone(),
                    }
                }
            };
            let declared = match table.kind {
                Kind::Poetry => dep.requirement.clone(),
                Kind::Strings | Kind::Lines => dep.source.span.slice(text).to_string(),
            };
            (requirement, Some(Merged { declared, kept }))
        }
    };
    changes.sort_by_key(|c| (c.span.start, c.span.end));
    if changes.windows(2).any(|w| w[0].span.end > w[1].span.start) {
        return None;
    }
    // A fix must never break the file.
    if broken(&parse(&apply_changes(text, &changes))) > broken(&manifest) {
        return None;
    }
    Some(Replacement {
        requirement,
        changes,
        merged,
    })
}

impl Kept {
    /// The more notable of two outcomes (for an entry with several constraints).
    fn max_with(self, other: Kept) -> Kept {
        let rank = |k: Kept| match k {
            Kept::Declared => 0,
            Kept::Suggested => 1,
            Kept::Intersection => 2,
            Kept::Conflict => 3,
        };
        if rank(other) > rank(self) {
            other
        } else {
            self
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(file: &str, text: &str) -> Manifest {
        if file == "pyproject.toml" {
            parse_pyproject(file, text)
        } else {
            parse_requirements(file, text, &|_| None)
        }
    }

    /// Replaces the first `old` of `scope` in `text` by httpx at `version`;
    /// checks that the scope then declares httpx once and `old` no more.
    fn replace(
        file: &str,
        text: &str,
        old: &str,
        scope: Scope,
        version: Option<&str>,
    ) -> (String, Replacement) {
        let m = parse(file, text);
        let dep = m
            .dependencies
            .iter()
            .find(|d| d.canonical == old && d.scope == scope)
            .unwrap_or_else(|| panic!("{old} in {scope:?}"));
        let r = replace_dependency(text, dep, "httpx", version).expect("a replacement");
        let out = apply_changes(text, &r.changes);
        let after = parse(file, &out);
        assert!(after.findings.is_empty(), "{:?}\n{out}", after.findings);
        let in_scope = |name: &str| {
            let mut spans: Vec<Span> = after
                .dependencies
                .iter()
                .filter(|d| d.scope == scope && d.canonical == name)
                .map(|d| d.source.span)
                .collect();
            spans.dedup();
            spans.len()
        };
        assert_eq!(in_scope("httpx"), 1, "one httpx in {scope:?}:\n{out}");
        assert_eq!(in_scope(old), 0, "no {old} in {scope:?}:\n{out}");
        (out, r)
    }

    fn merged(declared: &str, kept: Kept) -> Option<Merged> {
        Some(Merged {
            declared: declared.to_string(),
            kept,
        })
    }

    #[test]
    fn the_stricter_specifier_wins() {
        let s = |d: Option<&str>, x: Option<&str>| {
            let (spec, kept) = stricter_specifier(d, x);
            (spec.unwrap_or_default(), kept)
        };
        use Kept::*;
        assert_eq!(
            s(Some(">=0.27"), Some(">=0.29.0")),
            (">=0.29.0".into(), Suggested)
        );
        assert_eq!(
            s(Some(">=0.29"), Some(">=0.29.0")),
            (">=0.29".into(), Declared)
        );
        assert_eq!(
            s(Some("==0.28.1"), Some(">=0.28")),
            ("==0.28.1".into(), Declared)
        );
        assert_eq!(
            s(Some(">=0.27"), Some("==0.28.1")),
            ("==0.28.1".into(), Suggested)
        );
        assert_eq!(
            s(Some("~=0.28.0"), Some(">=0.28.1")),
            ("~=0.28.0,>=0.28.1".into(), Intersection)
        );
        assert_eq!(
            s(Some(">=0.27,<1"), Some(">=0.28.1")),
            (">=0.28.1,<1".into(), Intersection)
        );
        assert_eq!(
            s(Some("<1,!=0.30.1"), Some(">=0.28.1")),
            (">=0.28.1,<1,!=0.30.1".into(), Intersection)
        );
        // An exclusion outside the result is dropped; one inside is kept.
        assert_eq!(
            s(Some(">=0.27,!=0.27.5"), Some(">=0.28.1")),
            (">=0.28.1".into(), Suggested)
        );
        assert_eq!(
            s(Some("==0.27.*"), Some(">=0.28.1")),
            (">=0.28.1".into(), Conflict)
        );
        assert_eq!(
            s(Some("==0.27.2"), Some("==0.28.1")),
            ("==0.28.1".into(), Conflict)
        );
        assert_eq!(
            s(Some("<0.28"), Some(">=0.28.1")),
            (">=0.28.1".into(), Conflict)
        );
        assert_eq!(s(Some(">=0.27"), None), (">=0.27".into(), Declared));
        assert_eq!(s(None, Some(">=0.28.1")), (">=0.28.1".into(), Suggested));
        assert_eq!(s(None, None), (String::new(), Declared));
        assert_eq!(s(Some("^1 || ^2"), Some(">=2")), (">=2".into(), Conflict));
    }

    #[test]
    fn project_dependencies_keep_one_line() {
        // Issue 13: the fix used to add a second httpx line.
        let text = "[project]\nname = \"p\"\ndependencies = [\n    \"httpx>=0.27\",  # async\n    \"requests>=2.31\",  # legacy\n    \"click\",\n]\n";
        let (out, r) = replace(
            "pyproject.toml",
            text,
            "requests",
            Scope::Runtime,
            Some("0.29.0"),
        );
        assert_eq!(
            out,
            "[project]\nname = \"p\"\ndependencies = [\n    \"httpx>=0.29.0\",  # async\n    \"click\",\n]\n"
        );
        assert_eq!(r.requirement, "httpx>=0.29.0");
        assert_eq!(r.merged, merged("httpx>=0.27", Kept::Suggested));
        // CRLF line ends stay.
        let crlf = text.replace('\n', "\r\n");
        let (out, _) = replace(
            "pyproject.toml",
            &crlf,
            "requests",
            Scope::Runtime,
            Some("0.29.0"),
        );
        assert_eq!(out, "[project]\r\nname = \"p\"\r\ndependencies = [\r\n    \"httpx>=0.29.0\",  # async\r\n    \"click\",\r\n]\r\n");
    }

    #[test]
    fn one_line_arrays_lose_the_entry_and_its_comma() {
        for (text, want) in [
            (
                "[project]\ndependencies = [\"requests>=2\", \"httpx>=0.27\"]\n",
                "[project]\ndependencies = [\"httpx>=0.28.1\"]\n",
            ),
            (
                "[project]\ndependencies = ['httpx>=0.27', 'requests>=2']\n",
                "[project]\ndependencies = ['httpx>=0.28.1']\n",
            ),
            (
                "[project]\ndependencies = [\"requests>=2\",\n  \"httpx>=0.27\"]\n",
                "[project]\ndependencies = [\n  \"httpx>=0.28.1\"]\n",
            ),
        ] {
            let (out, _) = replace(
                "pyproject.toml",
                text,
                "requests",
                Scope::Runtime,
                Some("0.28.1"),
            );
            assert_eq!(out, want);
        }
    }

    #[test]
    fn without_a_declaration_the_entry_is_rewritten_in_place() {
        let text = "[project]\ndependencies = [\n  \"requests[socks]>=2.28 ; python_version >= '3.9'\",\n]\n[project.optional-dependencies]\ncli = [\"httpx\"]\n";
        let (out, r) = replace(
            "pyproject.toml",
            text,
            "requests",
            Scope::Runtime,
            Some("0.28.1"),
        );
        assert_eq!(
            out,
            text.replace(
                "requests[socks]>=2.28 ; python_version",
                "httpx[socks]>=0.28.1 ; python_version"
            )
        );
        assert_eq!(
            r.requirement,
            "httpx[socks]>=0.28.1 ; python_version >= '3.9'"
        );
        assert_eq!(r.merged, None, "another table's httpx does not count");
    }

    #[test]
    fn optional_dependencies_keep_extras_and_marker_of_the_declared_line() {
        let text = "[project.optional-dependencies]\nhttp = [\n  \"requests[socks]>=2 ; python_version >= '3.9'\",\n  \"HTTPX[http2] >= 0.27 ; os_name != 'nt'\",\n]\ncli = [\"requests\"]\n";
        let (out, r) = replace(
            "pyproject.toml",
            text,
            "requests",
            Scope::Optional("http".into()),
            Some("0.28.1"),
        );
        assert_eq!(
            out,
            "[project.optional-dependencies]\nhttp = [\n  \"HTTPX[http2]>=0.28.1 ; os_name != 'nt'\",\n]\ncli = [\"requests\"]\n"
        );
        assert_eq!(r.requirement, "HTTPX[http2]>=0.28.1 ; os_name != 'nt'");
    }

    #[test]
    fn dependency_groups_compare_their_own_array() {
        let text = "[dependency-groups]\nbase = [\"httpx>=0.27\"]\ndev = [\n  \"requests==2.31.0\",\n  \"httpx==0.27.2\",\n]\ntest = [{include-group = \"base\"}, \"requests\"]\n";
        // Pins conflict: the registry's version wins.
        let (out, r) = replace(
            "pyproject.toml",
            text,
            "requests",
            Scope::Group("dev".into()),
            Some("0.28.1"),
        );
        assert_eq!(
            out,
            text.replace("  \"requests==2.31.0\",\n", "")
                .replace("httpx==0.27.2", "httpx==0.28.1")
        );
        assert_eq!(r.merged, merged("httpx==0.27.2", Kept::Conflict));
        // `test` has httpx only through the group it includes: its own
        // entry is rewritten, the included group stays as it is.
        let m = parse_pyproject("pyproject.toml", text);
        let dep = m
            .dependencies
            .iter()
            .find(|d| d.canonical == "requests" && d.scope == Scope::Group("test".into()))
            .unwrap();
        let r = replace_dependency(text, dep, "httpx", None).unwrap();
        assert_eq!(r.merged, None);
        assert_eq!(
            apply_changes(text, &r.changes),
            text.replace("}, \"requests\"]", "}, \"httpx\"]")
        );
    }

    #[test]
    fn build_requires_take_the_intersection() {
        let text = "[build-system]\nrequires = [\n  \"setuptools>=61\",\n  \"requests>=2\",\n  \"httpx>=0.27,<1\",\n]\n";
        let (out, r) = replace(
            "pyproject.toml",
            text,
            "requests",
            Scope::Build,
            Some("0.28.1"),
        );
        assert_eq!(
            out,
            "[build-system]\nrequires = [\n  \"setuptools>=61\",\n  \"httpx>=0.28.1,<1\",\n]\n"
        );
        assert_eq!(r.merged, merged("httpx>=0.27,<1", Kept::Intersection));
    }

    #[test]
    fn uv_lists() {
        for (key, scope) in [
            ("dev-dependencies", Scope::UvDev),
            ("constraint-dependencies", Scope::UvConstraint),
            ("override-dependencies", Scope::UvOverride),
        ] {
            let text = format!(
                "[tool.uv]\n{key} = [\n    \"requests==2.31.0\",\n    \"httpx>=0.27\",\n]\n"
            );
            let (out, r) = replace("pyproject.toml", &text, "requests", scope, Some("0.28.1"));
            assert_eq!(
                out,
                format!("[tool.uv]\n{key} = [\n    \"httpx==0.28.1\",\n]\n")
            );
            assert_eq!(r.merged, merged("httpx>=0.27", Kept::Suggested));
        }
    }

    #[test]
    fn poetry_main_dependencies() {
        let text = "[tool.poetry.dependencies]\npython = \"^3.11\"\nrequests = \"^2.31\"  # legacy\nhttpx = { version = \"^0.27\", extras = [\"http2\"] }\n";
        let (out, r) = replace(
            "pyproject.toml",
            text,
            "requests",
            Scope::PoetryMain,
            Some("0.28.1"),
        );
        assert_eq!(
            out,
            "[tool.poetry.dependencies]\npython = \"^3.11\"\nhttpx = { version = \">=0.28.1\", extras = [\"http2\"] }\n"
        );
        assert_eq!(r.requirement, "httpx[http2]>=0.28.1");
        assert_eq!(r.merged, merged("httpx[http2]>=0.27,<0.28", Kept::Conflict));
        // A table without a version gets one.
        let text =
            "[tool.poetry.dependencies]\nrequests = \">=2\"\nhttpx = { extras = [\"http2\"] }\n";
        let (out, _) = replace(
            "pyproject.toml",
            text,
            "requests",
            Scope::PoetryMain,
            Some("0.28.1"),
        );
        assert_eq!(
            out,
            "[tool.poetry.dependencies]\nhttpx = { version = \">=0.28.1\", extras = [\"http2\"] }\n"
        );
    }

    #[test]
    fn poetry_groups_and_legacy_dev_dependencies() {
        let text = "[tool.poetry.group.test.dependencies]\nHTTPX = \"^0.28\"\nrequests = \">=2.31\"\n\n[tool.poetry.dev-dependencies]\nrequests = \"2.31.0\"\nhttpx = \"0.27.2\"\n";
        let (out, r) = replace(
            "pyproject.toml",
            text,
            "requests",
            Scope::PoetryGroup("test".into()),
            Some("0.28.1"),
        );
        assert_eq!(
            out,
            text.replace(
                "HTTPX = \"^0.28\"\nrequests = \">=2.31\"\n",
                "HTTPX = \">=0.28.1,<0.29\"\n"
            )
        );
        assert_eq!(r.merged, merged("httpx>=0.28,<0.29", Kept::Intersection));
        assert_eq!(r.requirement, "HTTPX>=0.28.1,<0.29", "the name as written");
        let (out, r) = replace(
            "pyproject.toml",
            text,
            "requests",
            Scope::PoetryGroup("dev".into()),
            Some("0.28.1"),
        );
        assert_eq!(
            out,
            text.replace(
                "requests = \"2.31.0\"\nhttpx = \"0.27.2\"\n",
                "httpx = \"==0.28.1\"\n"
            )
        );
        assert_eq!(r.merged, merged("httpx==0.27.2", Kept::Conflict));
        // Unpinned: nothing to suggest, the declared entry stays.
        let text = "[tool.poetry.group.dev.dependencies]\nrequests = \"*\"\nhttpx = \"^0.27\"\n";
        let (out, r) = replace(
            "pyproject.toml",
            text,
            "requests",
            Scope::PoetryGroup("dev".into()),
            Some("0.28.1"),
        );
        assert_eq!(
            out,
            "[tool.poetry.group.dev.dependencies]\nhttpx = \"^0.27\"\n"
        );
        assert_eq!(r.merged, merged("httpx>=0.27,<0.28", Kept::Declared));
    }

    #[test]
    fn poetry_entries_without_a_declaration_are_renamed() {
        let text = "[tool.poetry.dependencies]\nrequests = {version = \"^2.31\", extras = [\"socks\"]}\n\n[tool.poetry.group.dev.dependencies]\nhttpx = \"*\"\n";
        let (out, r) = replace(
            "pyproject.toml",
            text,
            "requests",
            Scope::PoetryMain,
            Some("0.28.1"),
        );
        assert_eq!(
            out,
            text.replace(
                "requests = {version = \"^2.31\"",
                "httpx = {version = \">=0.28.1\""
            )
        );
        assert_eq!(r.merged, None);
        let m = parse_pyproject("pyproject.toml", text);
        let dep = &m.dependencies[0];
        let r = replace_dependency(text, dep, "zope.interface", None).unwrap();
        assert!(
            apply_changes(text, &r.changes).contains("\"zope.interface\" = {version = \"*\""),
            "a name that is no bare key is quoted"
        );
    }

    #[test]
    fn requirements_files_drop_the_whole_logical_line() {
        let text = "# web\nrequests[socks]>=2.31 \\\n    --hash=sha256:abc\nhttpx>=0.27  # async client\nclick\n";
        let (out, r) = replace(
            "requirements.txt",
            text,
            "requests",
            Scope::Requirements,
            Some("0.29.0"),
        );
        assert_eq!(out, "# web\nhttpx>=0.29.0  # async client\nclick\n");
        assert_eq!(r.requirement, "httpx>=0.29.0");
        assert_eq!(r.merged, merged("httpx>=0.27", Kept::Suggested));
        // The last line, without a newline.
        let text = "httpx>=0.27\nrequests>=2";
        let (out, _) = replace(
            "requirements.txt",
            text,
            "requests",
            Scope::Requirements,
            None,
        );
        assert_eq!(out, "httpx>=0.27\n");
    }

    #[test]
    fn constraint_files_are_tables_of_their_own() {
        let constraints = "requests<3\nhttpx<0.30\n";
        let m = parse_requirements("requirements.txt", "-c constraints.txt\nclick\n", &|_| {
            Some(constraints.to_string())
        });
        let dep = m
            .dependencies
            .iter()
            .find(|d| d.scope == Scope::Constraint && d.canonical == "requests")
            .unwrap();
        let r = replace_dependency(constraints, dep, "httpx", Some("0.28.1")).unwrap();
        assert_eq!(
            apply_changes(constraints, &r.changes),
            "httpx>=0.28.1,<0.30\n"
        );
        assert_eq!(r.merged, merged("httpx<0.30", Kept::Intersection));
    }

    #[test]
    fn names_compare_by_pep503_and_urls_stay() {
        let text = "[project]\ndependencies = [\n  \"requests>=2\",\n  \"httpx @ https://example.com/httpx-0.28.1-py3-none-any.whl\",\n]\n";
        let (out, r) = replace(
            "pyproject.toml",
            text,
            "requests",
            Scope::Runtime,
            Some("0.28.1"),
        );
        assert_eq!(out, text.replace("  \"requests>=2\",\n", ""));
        assert_eq!(r.merged.unwrap().kept, Kept::Declared);
        let m = parse_pyproject(
            "pyproject.toml",
            "[project]\ndependencies = [\"Foo.Bar>=1\", \"baz\"]\n",
        );
        let baz = &m.dependencies[1];
        let r = replace_dependency(
            "[project]\ndependencies = [\"Foo.Bar>=1\", \"baz\"]\n",
            baz,
            "foo_bar",
            Some("2"),
        )
        .unwrap();
        assert_eq!(
            r.merged,
            merged("Foo.Bar>=1", Kept::Declared),
            "baz is unpinned"
        );
    }

    #[test]
    fn nothing_to_write_for_urls_and_locks() {
        let text = "[project]\ndependencies = [\"requests @ https://example.com/r.whl\"]\n";
        let m = parse_pyproject("pyproject.toml", text);
        assert!(replace_dependency(text, &m.dependencies[0], "httpx", None).is_none());
        let mut lock = m.dependencies[0].clone();
        lock.url = None;
        lock.scope = Scope::Lock;
        assert!(replace_dependency(text, &lock, "httpx", None).is_none());
    }
}
