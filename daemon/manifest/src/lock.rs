//! Lock files (`uv.lock`, `pylock.toml`, `poetry.lock`) and the attribution
//! of each transitive package to the direct dependencies that pull it in.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use serde::{Deserialize, Serialize};
use toml_edit::{ImDocument, Item, Table, TableLike, Value};

use crate::pyproject::string_at;
use crate::text::LineIndex;
use crate::{canonicalize, Dependency, Finding, FindingKind, Scope, SourceRef, Span};

/// One package a lock file resolves.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockedPackage {
    pub name: String,
    pub canonical: String,
    pub version: Option<String>,
    /// Canonical names of what this package pulls in: its unconditional
    /// dependencies plus those of its extras that something in the lock asks for.
    pub dependencies: Vec<String>,
    /// Extras nothing in the lock asks for: extra (canonical) → what it would add.
    /// A direct requirement naming the extra (`httpx[http2]`) still follows them.
    pub extras: BTreeMap<String, Vec<String>>,
    /// The project itself (a `uv.lock` entry with an editable or virtual
    /// source); its dependencies are the project's direct dependencies.
    pub project: bool,
    /// Where the entry's `name` is written in the lock file.
    pub source: SourceRef,
}

/// An edge in a lock file: a package and the extras it is asked for with.
struct Edge {
    name: String,
    extras: Vec<String>,
}

/// A lock entry before extras are resolved across the whole lock.
struct Raw {
    package: LockedPackage,
    edges: Vec<Edge>,
    optional: BTreeMap<String, Vec<Edge>>,
}

fn parse_doc<'t>(path_label: &str, text: &'t str) -> Result<ImDocument<&'t str>, Finding> {
    ImDocument::parse(text).map_err(|e| {
        let span = e
            .span()
            .map(|r| Span::new(r.start, r.end))
            .unwrap_or(Span::new(0, 0));
        LineIndex::new(text).finding(
            path_label,
            span,
            FindingKind::InvalidToml,
            format!("invalid TOML: {}", e.message().trim()),
        )
    })
}

fn tables<'d>(doc: &'d ImDocument<&str>, key: &str) -> Vec<&'d Table> {
    doc.as_table()
        .get(key)
        .and_then(Item::as_array_of_tables)
        .map(|a| a.iter().collect())
        .unwrap_or_default()
}

/// The package header shared by all three formats: name (with its span) and version.
fn header(
    path_label: &str,
    text: &str,
    index: &LineIndex<'_>,
    table: &Table,
    what: &str,
) -> Result<LockedPackage, Finding> {
    let name_value = table.get("name").and_then(Item::as_value);
    let Some(name) = name_value.and_then(|v| string_at(text, v)) else {
        let span = table
            .span()
            .map(|r| Span::new(r.start, r.start))
            .unwrap_or(Span::new(0, 0));
        return Err(index.finding(
            path_label,
            span,
            FindingKind::InvalidToml,
            format!("a `{what}` entry has no `name`"),
        ));
    };
    let (line, column) = index.position(name.span.start, false);
    Ok(LockedPackage {
        name: name.value.to_string(),
        canonical: canonicalize(name.value),
        version: table
            .get("version")
            .and_then(Item::as_str)
            .map(str::to_string),
        dependencies: Vec::new(),
        extras: BTreeMap::new(),
        project: false,
        source: SourceRef {
            file: path_label.to_string(),
            span: name.span,
            line,
            column,
            name_span: name.span,
        },
    })
}

/// `[{ name = "x", extra = ["y"] }, …]` as used by uv.lock and pylock.toml.
fn edges_of(item: Option<&Item>, extra_key: &str) -> Vec<Edge> {
    let Some(array) = item.and_then(Item::as_array) else {
        return Vec::new();
    };
    array
        .iter()
        .filter_map(Value::as_inline_table)
        .filter_map(|t| {
            let name = t.get("name")?.as_str()?;
            let extras = t
                .get(extra_key)
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(Value::as_str)
                        .map(canonicalize)
                        .collect()
                })
                .unwrap_or_default();
            Some(Edge {
                name: canonicalize(name),
                extras,
            })
        })
        .collect()
}

fn edge_map(item: Option<&Item>, extra_key: &str) -> BTreeMap<String, Vec<Edge>> {
    let Some(table) = item.and_then(Item::as_table_like) else {
        return BTreeMap::new();
    };
    table
        .iter()
        .map(|(k, v)| (canonicalize(k), edges_of(Some(v), extra_key)))
        .collect()
}

/// Folds each requested extra into its package's dependencies, leaving the
/// rest in `extras`.
fn resolve(raws: Vec<Raw>, extra_requests: &BTreeSet<(String, String)>) -> Vec<LockedPackage> {
    raws.into_iter()
        .map(|raw| {
            let mut p = raw.package;
            let mut deps: Vec<String> = raw.edges.into_iter().map(|e| e.name).collect();
            for (extra, edges) in raw.optional {
                let names: Vec<String> = edges.into_iter().map(|e| e.name).collect();
                if p.project || extra_requests.contains(&(p.canonical.clone(), extra.clone())) {
                    deps.extend(names);
                } else {
                    p.extras.insert(extra, names);
                }
            }
            let mut seen = BTreeSet::new();
            deps.retain(|d| seen.insert(d.clone()));
            p.dependencies = deps;
            p
        })
        .collect()
}

fn requests_of<'a>(edges: impl Iterator<Item = &'a Edge>, into: &mut BTreeSet<(String, String)>) {
    for e in edges {
        for x in &e.extras {
            into.insert((e.name.clone(), x.clone()));
        }
    }
}

/// Parses `uv.lock`. The project's own entries (`source = { editable = "." }`
/// or `{ virtual = "." }`) are marked `project`; their dependencies, optional
/// dependencies and dev groups are the project's direct dependencies.
pub fn parse_uv_lock(path_label: &str, text: &str) -> Result<Vec<LockedPackage>, Finding> {
    let doc = parse_doc(path_label, text)?;
    let index = LineIndex::new(text);
    let mut raws = Vec::new();
    let mut requests = BTreeSet::new();
    for table in tables(&doc, "package") {
        let mut package = header(path_label, text, &index, table, "[[package]]")?;
        package.project = table
            .get("source")
            .and_then(Item::as_table_like)
            .is_some_and(|s| s.contains_key("editable") || s.contains_key("virtual"));
        let edges = edges_of(table.get("dependencies"), "extra");
        let mut optional = edge_map(table.get("optional-dependencies"), "extra");
        if package.project {
            // Dev groups are direct dependencies of the project, like its extras.
            for (group, e) in edge_map(table.get("dev-dependencies"), "extra") {
                optional.insert(format!("group:{group}"), e);
            }
        }
        requests_of(
            edges.iter().chain(optional.values().flatten()),
            &mut requests,
        );
        raws.push(Raw {
            package,
            edges,
            optional,
        });
    }
    Ok(resolve(raws, &requests))
}

/// Parses a PEP 751 `pylock.toml` (`[[packages]]` with optional `dependencies`).
pub fn parse_pylock(path_label: &str, text: &str) -> Result<Vec<LockedPackage>, Finding> {
    let doc = parse_doc(path_label, text)?;
    let index = LineIndex::new(text);
    let mut raws = Vec::new();
    for table in tables(&doc, "packages") {
        let package = header(path_label, text, &index, table, "[[packages]]")?;
        let edges = edges_of(table.get("dependencies"), "extras");
        raws.push(Raw {
            package,
            edges,
            optional: BTreeMap::new(),
        });
    }
    Ok(resolve(raws, &BTreeSet::new()))
}

/// The package name at the start of a Poetry extras entry such as
/// `"PySocks (>=1.5.6,!=1.5.7)"`.
fn leading_name(s: &str) -> String {
    let s = s.trim_start();
    let end = s
        .find(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
        .unwrap_or(s.len());
    canonicalize(&s[..end])
}

/// Parses `poetry.lock`: `[package.dependencies]` (optional ones only through
/// an extra) and `[package.extras]`.
pub fn parse_poetry_lock(path_label: &str, text: &str) -> Result<Vec<LockedPackage>, Finding> {
    let doc = parse_doc(path_label, text)?;
    let index = LineIndex::new(text);
    let mut raws = Vec::new();
    let mut requests = BTreeSet::new();
    for table in tables(&doc, "package") {
        let package = header(path_label, text, &index, table, "[[package]]")?;
        let mut edges = Vec::new();
        if let Some(deps) = table.get("dependencies").and_then(Item::as_table_like) {
            for (name, spec) in deps.iter() {
                // Several constraints for one name come as an array of tables.
                let specs: Vec<&dyn TableLike> = match spec {
                    Item::Value(Value::Array(a)) => a
                        .iter()
                        .filter_map(|v| v.as_inline_table().map(|t| t as &dyn TableLike))
                        .collect(),
                    other => other.as_table_like().into_iter().collect(),
                };
                let optional = !specs.is_empty()
                    && specs
                        .iter()
                        .all(|t| t.get("optional").and_then(Item::as_bool).unwrap_or(false));
                let extras: Vec<String> = specs
                    .iter()
                    .filter_map(|t| t.get("extras").and_then(Item::as_array))
                    .flat_map(|a| a.iter().filter_map(Value::as_str).map(canonicalize))
                    .collect();
                let edge = Edge {
                    name: canonicalize(name),
                    extras,
                };
                requests_of(std::iter::once(&edge), &mut requests);
                if !optional {
                    edges.push(edge);
                }
            }
        }
        let mut optional = BTreeMap::new();
        if let Some(extras) = table.get("extras").and_then(Item::as_table_like) {
            for (extra, list) in extras.iter() {
                let names = list
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .filter_map(Value::as_str)
                            .map(|s| Edge {
                                name: leading_name(s),
                                extras: Vec::new(),
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                optional.insert(canonicalize(extra), names);
            }
        }
        raws.push(Raw {
            package,
            edges,
            optional,
        });
    }
    Ok(resolve(raws, &requests))
}

/// Joins a project's direct dependencies with a lock file.
///
/// Returns the direct dependencies (in their order) with `locked_version`
/// filled in, followed by every other package of the lock (sorted by name)
/// as a transitive dependency: scope [`Scope::Lock`], `direct = false`,
/// `requirement = "name==version"`, its source the lock entry, and `via` the
/// direct dependencies whose dependency closure contains it. Roots are the
/// given direct dependencies that install something (not constraints or
/// overrides) and the dependencies of the lock's own project entries.
pub fn attribute(direct: &[Dependency], locked: &[LockedPackage]) -> Vec<Dependency> {
    let mut graph: BTreeMap<&str, Vec<&LockedPackage>> = BTreeMap::new();
    for p in locked.iter().filter(|p| !p.project) {
        graph.entry(p.canonical.as_str()).or_default().push(p);
    }

    let mut roots: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for d in direct
        .iter()
        .filter(|d| d.direct && d.scope.installs() && d.scope != Scope::Lock)
    {
        roots
            .entry(d.canonical.clone())
            .or_default()
            .extend(d.extras.iter().map(|e| canonicalize(e)));
    }
    for p in locked.iter().filter(|p| p.project) {
        for dep in &p.dependencies {
            roots.entry(dep.clone()).or_default();
        }
    }
    let project_names: BTreeSet<&str> = locked
        .iter()
        .filter(|p| p.project)
        .map(|p| p.canonical.as_str())
        .collect();

    let mut via: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for (root, extras) in &roots {
        let mut queue: VecDeque<&str> = VecDeque::new();
        let mut seen: BTreeSet<&str> = BTreeSet::new();
        for p in graph.get(root.as_str()).into_iter().flatten() {
            queue.extend(p.dependencies.iter().map(String::as_str));
            for extra in extras {
                queue.extend(
                    p.extras
                        .get(extra)
                        .into_iter()
                        .flatten()
                        .map(String::as_str),
                );
            }
        }
        while let Some(name) = queue.pop_front() {
            if !seen.insert(name) {
                continue;
            }
            for p in graph.get(name).into_iter().flatten() {
                queue.extend(p.dependencies.iter().map(String::as_str));
            }
        }
        for name in seen {
            if name != root.as_str() {
                via.entry(name).or_default().insert(root.as_str());
            }
        }
    }

    let mut out: Vec<Dependency> = direct
        .iter()
        .map(|d| {
            let mut d = d.clone();
            if d.locked_version.is_none() {
                d.locked_version = graph
                    .get(d.canonical.as_str())
                    .and_then(|ps| ps.iter().find_map(|p| p.version.clone()));
            }
            d
        })
        .collect();

    for (name, packages) in &graph {
        if roots.contains_key(*name) || project_names.contains(name) {
            continue;
        }
        let p = packages[0];
        let requirement = match &p.version {
            Some(v) => format!("{}=={v}", p.canonical),
            None => p.canonical.clone(),
        };
        out.push(Dependency {
            requirement,
            name: p.name.clone(),
            canonical: p.canonical.clone(),
            specifier: p.version.as_ref().map(|v| format!("=={v}")),
            extras: Vec::new(),
            marker: None,
            url: None,
            scope: Scope::Lock,
            source: p.source.clone(),
            locked_version: p.version.clone(),
            via: via
                .get(name)
                .map(|s| s.iter().map(|v| v.to_string()).collect())
                .unwrap_or_default(),
            direct: false,
        });
    }
    out
}
