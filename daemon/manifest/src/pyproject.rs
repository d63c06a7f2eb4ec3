//! `pyproject.toml`: every table a Python dependency can be declared in.

use std::collections::{BTreeMap, BTreeSet};

use toml_edit::{ImDocument, Item, TableLike, Value};

use crate::text::LineIndex;
use crate::{
    canonicalize, name_range, parse_pep508, poetry, Dependency, Finding, FindingKind, Manifest,
    Scope, SourceRef, Span,
};

/// Parses a `pyproject.toml`. `path_label` is recorded as the file of every
/// dependency and finding. Invalid TOML gives one finding and no dependencies;
/// an invalid requirement gives one finding and the rest is still read.
pub fn parse_pyproject(path_label: &str, text: &str) -> Manifest {
    let index = LineIndex::new(text);
    let mut ctx = Ctx {
        file: path_label,
        text,
        index,
        manifest: Manifest::default(),
    };
    let doc = match ImDocument::parse(text) {
        Ok(doc) => doc,
        Err(e) => {
            let span = e
                .span()
                .map(|r| Span::new(r.start, r.end.max(r.start)))
                .unwrap_or(Span::new(0, 0));
            let finding = ctx.index.finding(
                path_label,
                span,
                FindingKind::InvalidToml,
                format!("invalid TOML: {}", e.message().trim()),
            );
            ctx.manifest.findings.push(finding);
            return ctx.manifest;
        }
    };
    let root = doc.as_table();

    if let Some(project) = root.get("project").and_then(Item::as_table_like) {
        if let Some(item) = project.get("dependencies") {
            ctx.requirement_array(item, &Scope::Runtime, "project.dependencies");
        }
        if let Some(extras) = project
            .get("optional-dependencies")
            .and_then(Item::as_table_like)
        {
            for (extra, item) in extras.iter() {
                let place = format!("project.optional-dependencies.{extra}");
                ctx.requirement_array(item, &Scope::Optional(extra.to_string()), &place);
            }
        }
    }

    if let Some(groups) = root.get("dependency-groups").and_then(Item::as_table_like) {
        ctx.dependency_groups(groups);
    }

    if let Some(build) = root.get("build-system").and_then(Item::as_table_like) {
        if let Some(item) = build.get("requires") {
            ctx.requirement_array(item, &Scope::Build, "build-system.requires");
        }
    }

    let tool = root.get("tool").and_then(Item::as_table_like);
    if let Some(uv) = tool.and_then(|t| t.get("uv")).and_then(Item::as_table_like) {
        for (key, scope) in [
            ("dev-dependencies", Scope::UvDev),
            ("constraint-dependencies", Scope::UvConstraint),
            ("override-dependencies", Scope::UvOverride),
        ] {
            if let Some(item) = uv.get(key) {
                ctx.requirement_array(item, &scope, &format!("tool.uv.{key}"));
            }
        }
    }

    if let Some(poetry) = tool
        .and_then(|t| t.get("poetry"))
        .and_then(Item::as_table_like)
    {
        if let Some(t) = poetry.get("dependencies").and_then(Item::as_table_like) {
            ctx.poetry_table(t, &Scope::PoetryMain);
        }
        if let Some(t) = poetry.get("dev-dependencies").and_then(Item::as_table_like) {
            ctx.poetry_table(t, &Scope::PoetryGroup("dev".into()));
        }
        if let Some(groups) = poetry.get("group").and_then(Item::as_table_like) {
            for (name, group) in groups.iter() {
                if let Some(t) = group
                    .as_table_like()
                    .and_then(|g| g.get("dependencies"))
                    .and_then(Item::as_table_like)
                {
                    ctx.poetry_table(t, &Scope::PoetryGroup(name.to_string()));
                }
            }
        }
    }

    dedup_findings(&mut ctx.manifest.findings);
    ctx.manifest
}

pub(crate) fn dedup_findings(findings: &mut Vec<Finding>) {
    let mut seen = BTreeSet::new();
    findings.retain(|f| seen.insert((f.file.clone(), f.span, f.message.clone())));
}

/// A TOML string value: its decoded text and where its content sits.
pub(crate) struct StrAt<'a> {
    pub value: &'a str,
    /// The content between the quotes.
    pub span: Span,
    /// The raw content equals the decoded value (no escapes), so offsets
    /// inside the value are offsets inside the file.
    pub verbatim: bool,
}

pub(crate) fn string_at<'a>(text: &str, value: &'a Value) -> Option<StrAt<'a>> {
    let Value::String(s) = value else {
        return None;
    };
    let range = value.span()?;
    let raw = &text[range.clone()];
    let quote = if raw.starts_with("\"\"\"") || raw.starts_with("'''") {
        3
    } else {
        1
    };
    let mut start = range.start + quote;
    let end = range.end.saturating_sub(quote).max(start);
    // A newline right after the opening delimiter of a multi-line string is not content.
    if quote == 3 {
        if text[start..end].starts_with("\r\n") {
            start += 2;
        } else if text[start..end].starts_with('\n') {
            start += 1;
        }
    }
    let span = Span::new(start, end);
    Some(StrAt {
        value: s.value(),
        span,
        verbatim: &text[start..end] == s.value().as_str(),
    })
}

fn value_span(v: &Value) -> Option<Span> {
    v.span().map(|r| Span::new(r.start, r.end))
}

fn item_span(i: &Item) -> Option<Span> {
    i.span().map(|r| Span::new(r.start, r.end))
}

enum GroupEntry {
    Dep(Box<Dependency>),
    Include {
        target: String,
        name: String,
        span: Span,
    },
}

struct Ctx<'a> {
    file: &'a str,
    text: &'a str,
    index: LineIndex<'a>,
    manifest: Manifest,
}

impl Ctx<'_> {
    fn finding(&mut self, span: Span, kind: FindingKind, message: String) {
        let f = self.index.finding(self.file, span, kind, message);
        self.manifest.findings.push(f);
    }

    fn source(&self, span: Span, name_span: Span) -> SourceRef {
        let (line, column) = self.index.position(span.start, false);
        SourceRef {
            file: self.file.to_string(),
            span,
            line,
            column,
            name_span,
        }
    }

    /// A PEP 508 string at `s` → a dependency, or a finding at its span.
    fn requirement(&mut self, s: &StrAt<'_>, scope: &Scope) -> Option<Dependency> {
        match parse_pep508(s.value) {
            Ok(p) => {
                let (a, b) = name_range(s.value);
                let name_span = if s.verbatim {
                    Span::new(s.span.start + a, s.span.start + b)
                } else {
                    s.span
                };
                Some(Dependency {
                    requirement: p.requirement,
                    name: s.value[a..b].to_string(),
                    canonical: p.canonical,
                    specifier: p.specifier,
                    extras: p.extras,
                    marker: p.marker,
                    url: p.url,
                    scope: scope.clone(),
                    source: self.source(s.span, name_span),
                    locked_version: None,
                    via: Vec::new(),
                    direct: true,
                })
            }
            Err((message, start, _)) => {
                let detail = if s.verbatim {
                    let (_, col) = self.index.position(s.span.start + start, false);
                    format!(" (column {})", col + 1)
                } else {
                    String::new()
                };
                self.finding(
                    s.span,
                    FindingKind::InvalidRequirement,
                    format!("invalid requirement `{}`: {message}{detail}", s.value),
                );
                None
            }
        }
    }

    fn requirement_array(&mut self, item: &Item, scope: &Scope, place: &str) {
        let Some(array) = item.as_array() else {
            let span = item_span(item).unwrap_or(Span::new(0, 0));
            self.finding(
                span,
                FindingKind::InvalidRequirement,
                format!("`{place}` must be an array of PEP 508 strings"),
            );
            return;
        };
        for value in array.iter() {
            match string_at(self.text, value) {
                Some(s) => {
                    if let Some(dep) = self.requirement(&s, scope) {
                        self.manifest.dependencies.push(dep);
                    }
                }
                None => self.not_a_string(value, place),
            }
        }
    }

    fn not_a_string(&mut self, value: &Value, place: &str) {
        let span = value_span(value).unwrap_or(Span::new(0, 0));
        self.finding(
            span,
            FindingKind::InvalidRequirement,
            format!("`{place}` entries must be PEP 508 strings"),
        );
    }

    /// PEP 735: each group's own entries first, then `include-group`
    /// expansion, so an included group's requirement is parsed (and a bad
    /// one reported) once.
    fn dependency_groups(&mut self, groups: &dyn TableLike) {
        let mut order: Vec<(String, String)> = Vec::new(); // (canonical, as written)
        let mut entries: BTreeMap<String, Vec<GroupEntry>> = BTreeMap::new();
        for (name, item) in groups.iter() {
            let place = format!("dependency-groups.{name}");
            let scope = Scope::Group(name.to_string());
            let mut list = Vec::new();
            let Some(array) = item.as_array() else {
                let span = item_span(item).unwrap_or(Span::new(0, 0));
                self.finding(
                    span,
                    FindingKind::InvalidRequirement,
                    format!("`{place}` must be an array"),
                );
                continue;
            };
            for value in array.iter() {
                if let Some(s) = string_at(self.text, value) {
                    if let Some(dep) = self.requirement(&s, &scope) {
                        list.push(GroupEntry::Dep(Box::new(dep)));
                    }
                } else if let Some(table) = value.as_inline_table() {
                    match table
                        .get("include-group")
                        .and_then(|v| string_at(self.text, v))
                    {
                        Some(s) => list.push(GroupEntry::Include {
                            target: canonicalize(s.value),
                            name: s.value.to_string(),
                            span: s.span,
                        }),
                        None => self.finding(
                            value_span(value).unwrap_or(Span::new(0, 0)),
                            FindingKind::InvalidInclude,
                            format!("`{place}` tables must be {{include-group = \"<group>\"}}"),
                        ),
                    }
                } else {
                    self.not_a_string(value, &place);
                }
            }
            let key = canonicalize(name);
            order.push((key.clone(), name.to_string()));
            entries.insert(key, list);
        }
        for (key, name) in &order {
            let scope = Scope::Group(name.clone());
            let mut stack = vec![key.clone()];
            let mut out = Vec::new();
            self.expand_group(key, &entries, &mut stack, &mut out);
            for mut dep in out {
                dep.scope = scope.clone();
                self.manifest.dependencies.push(dep);
            }
        }
    }

    fn expand_group(
        &mut self,
        key: &str,
        entries: &BTreeMap<String, Vec<GroupEntry>>,
        stack: &mut Vec<String>,
        out: &mut Vec<Dependency>,
    ) {
        let Some(list) = entries.get(key) else {
            return;
        };
        for entry in list {
            match entry {
                GroupEntry::Dep(dep) => out.push((**dep).clone()),
                GroupEntry::Include { target, name, span } => {
                    if stack.contains(target) {
                        let mut cycle = stack.clone();
                        cycle.push(target.clone());
                        self.finding(
                            *span,
                            FindingKind::InvalidInclude,
                            format!(
                                "include-group `{name}` forms a cycle: {}",
                                cycle.join(" -> ")
                            ),
                        );
                    } else if !entries.contains_key(target) {
                        self.finding(
                            *span,
                            FindingKind::InvalidInclude,
                            format!("include-group `{name}`: no such dependency group"),
                        );
                    } else {
                        stack.push(target.clone());
                        self.expand_group(target, entries, stack, out);
                        stack.pop();
                    }
                }
            }
        }
    }

    fn poetry_table(&mut self, table: &dyn TableLike, scope: &Scope) {
        for (name, item) in table.iter() {
            if name.eq_ignore_ascii_case("python") {
                continue;
            }
            let key_span = table
                .key(name)
                .and_then(|k| k.span())
                .map(|r| Span::new(r.start, r.end));
            let Some(key_span) = key_span else { continue };
            let end = item_span(item).map(|s| s.end).unwrap_or(key_span.end);
            let entry_span = Span::new(key_span.start, end.max(key_span.end));
            // A quoted key's span includes its quotes; the name is inside them.
            let raw_key = key_span.slice(self.text);
            let name_span = match raw_key.find(name) {
                Some(i) => Span::new(key_span.start + i, key_span.start + i + name.len()),
                None => key_span,
            };
            let specs: Vec<poetry::PoetrySpec> = match poetry::specs_of(item) {
                Ok(specs) => specs,
                Err(poetry::SpecError::Unsupported(kind)) => {
                    self.finding(
                        entry_span,
                        FindingKind::Unsupported,
                        format!(
                            "`{name}` is a {kind} dependency; lex-align checks only index packages"
                        ),
                    );
                    continue;
                }
                Err(poetry::SpecError::Invalid(message)) => {
                    self.finding(
                        entry_span,
                        FindingKind::InvalidRequirement,
                        format!("invalid Poetry dependency `{name}`: {message}"),
                    );
                    continue;
                }
            };
            for spec in specs {
                match poetry::to_pep508(name, &spec) {
                    Ok((text, note)) => match parse_pep508(&text) {
                        Ok(p) => {
                            if let Some(note) = note {
                                self.finding(
                                    entry_span,
                                    FindingKind::Unsupported,
                                    format!("`{name}`: {note}"),
                                );
                            }
                            let dep = Dependency {
                                requirement: p.requirement,
                                name: name.to_string(),
                                canonical: p.canonical,
                                specifier: p.specifier,
                                extras: p.extras,
                                marker: p.marker,
                                url: p.url,
                                scope: scope.clone(),
                                source: self.source(entry_span, name_span),
                                locked_version: None,
                                via: Vec::new(),
                                direct: true,
                            };
                            self.manifest.dependencies.push(dep);
                        }
                        Err((message, _, _)) => self.finding(
                            entry_span,
                            FindingKind::InvalidRequirement,
                            format!("invalid Poetry dependency `{name}` (as `{text}`): {message}"),
                        ),
                    },
                    Err(message) => self.finding(
                        entry_span,
                        FindingKind::InvalidRequirement,
                        format!("invalid Poetry dependency `{name}`: {message}"),
                    ),
                }
            }
        }
    }
}
