//! `requirements*.txt` in pip's format: comments, `\` continuations,
//! `-r`/`-c` includes, option lines and per-requirement options.

use std::collections::BTreeSet;

use crate::pyproject::dedup_findings;
use crate::text::LineIndex;
use crate::{name_range, parse_pep508, Dependency, FindingKind, Manifest, Scope, SourceRef, Span};

/// Parses a requirements file. Files named by `-r`/`--requirement` and
/// `-c`/`--constraint` are read through `read` (given the include's path
/// resolved against the including file's label) and parsed recursively;
/// their dependencies carry the included file as their source. Each file is
/// read once per scope, so include cycles end.
pub fn parse_requirements(
    path_label: &str,
    text: &str,
    read: &dyn Fn(&str) -> Option<String>,
) -> Manifest {
    let mut manifest = Manifest::default();
    let mut visited = BTreeSet::new();
    visited.insert((normalize_path(path_label), false));
    parse_file(path_label, text, false, read, &mut visited, &mut manifest);
    dedup_findings(&mut manifest.findings);
    manifest
}

/// One logical line: continuation lines joined, with the file offset of every byte.
struct Logical {
    text: String,
    offsets: Vec<usize>,
}

impl Logical {
    fn span(&self, start: usize, end: usize) -> Span {
        Span::new(self.offsets[start], self.offsets[end - 1] + 1)
    }
}

fn logical_lines(text: &str) -> Vec<Logical> {
    let mut out = Vec::new();
    let mut cur = Logical {
        text: String::new(),
        offsets: Vec::new(),
    };
    let mut pos = 0;
    for raw in text.split_inclusive('\n') {
        let line_start = pos;
        pos += raw.len();
        let body = raw.trim_end_matches(['\n', '\r']);
        let (body, continues) = match body.strip_suffix('\\') {
            Some(b) => (b, true),
            None => (body, false),
        };
        cur.text.push_str(body);
        cur.offsets.extend(line_start..line_start + body.len());
        if !continues {
            out.push(std::mem::replace(
                &mut cur,
                Logical {
                    text: String::new(),
                    offsets: Vec::new(),
                },
            ));
        }
    }
    if !cur.text.is_empty() {
        out.push(cur);
    }
    out
}

/// End of the content before a `#` comment (a `#` at the start or after whitespace).
fn comment_start(s: &str) -> usize {
    let bytes = s.as_bytes();
    (0..bytes.len())
        .find(|&i| bytes[i] == b'#' && (i == 0 || bytes[i - 1].is_ascii_whitespace()))
        .unwrap_or(s.len())
}

/// End of the requirement before trailing options such as `--hash=…`:
/// the first whitespace followed by `-`, outside quotes.
fn options_start(s: &str) -> usize {
    let bytes = s.as_bytes();
    let mut quote = None;
    for i in 0..bytes.len() {
        let b = bytes[i];
        match quote {
            Some(q) if b == q => quote = None,
            Some(_) => {}
            None if b == b'"' || b == b'\'' => quote = Some(b),
            None if b.is_ascii_whitespace() && bytes.get(i + 1) == Some(&b'-') => return i,
            None => {}
        }
    }
    s.len()
}

fn parse_file(
    label: &str,
    text: &str,
    constraint: bool,
    read: &dyn Fn(&str) -> Option<String>,
    visited: &mut BTreeSet<(String, bool)>,
    manifest: &mut Manifest,
) {
    let index = LineIndex::new(text);
    let scope = if constraint {
        Scope::Constraint
    } else {
        Scope::Requirements
    };
    for line in logical_lines(text) {
        let content = &line.text[..comment_start(&line.text)];
        let start = content.len() - content.trim_start().len();
        let end = content.trim_end().len();
        if start >= end {
            continue;
        }
        let body = &content[start..end];
        if body.starts_with('-') {
            let Some((option, value_start)) = include_option(body) else {
                // -i, --index-url, -e, --hash, … say nothing about which packages.
                continue;
            };
            let value = body[value_start..].trim();
            let value = value.trim_matches(|c| c == '"' || c == '\'');
            let value_offset = start + body.find(value).unwrap_or(value_start);
            let span = line.span(value_offset, value_offset + value.len().max(1));
            let nested_constraint = constraint || option == Include::Constraint;
            if value.is_empty() {
                manifest.findings.push(index.finding(
                    label,
                    span,
                    FindingKind::InvalidInclude,
                    format!("`{body}` names no file"),
                ));
                continue;
            }
            if value.contains("://") {
                manifest.findings.push(index.finding(
                    label,
                    span,
                    FindingKind::Unsupported,
                    format!("remote requirements file `{value}` is not read"),
                ));
                continue;
            }
            let path = resolve(label, value);
            if !visited.insert((normalize_path(&path), nested_constraint)) {
                continue;
            }
            match read(&path) {
                Some(included) => {
                    parse_file(&path, &included, nested_constraint, read, visited, manifest)
                }
                None => manifest.findings.push(index.finding(
                    label,
                    span,
                    FindingKind::InvalidInclude,
                    format!("cannot read included file `{path}`"),
                )),
            }
            continue;
        }
        let req_end = start + options_start(body);
        let req = content[start..req_end].trim_end();
        let span = line.span(start, start + req.len());
        let verbatim = span.slice(text) == req;
        match parse_pep508(req) {
            Ok(p) => {
                let (a, b) = name_range(req);
                let name_span = if verbatim {
                    Span::new(span.start + a, span.start + b)
                } else {
                    line.span(start + a, start + b.max(a + 1))
                };
                let (l, c) = index.position(span.start, false);
                manifest.dependencies.push(Dependency {
                    requirement: p.requirement,
                    name: req[a..b].to_string(),
                    canonical: p.canonical,
                    specifier: p.specifier,
                    extras: p.extras,
                    marker: p.marker,
                    url: p.url,
                    scope: scope.clone(),
                    source: SourceRef {
                        file: label.to_string(),
                        span,
                        line: l,
                        column: c,
                        name_span,
                    },
                    locked_version: None,
                    via: Vec::new(),
                    direct: true,
                });
            }
            Err((message, _, _)) => {
                let unnamed =
                    req.starts_with(['.', '/', '~']) || (req.contains("://") && !req.contains('@'));
                let (kind, message) = if unnamed {
                    (
                        FindingKind::Unsupported,
                        format!("`{req}` is a path or URL without a package name; not checked"),
                    )
                } else {
                    (
                        FindingKind::InvalidRequirement,
                        format!("invalid requirement `{req}`: {message}"),
                    )
                };
                manifest
                    .findings
                    .push(index.finding(label, span, kind, message));
            }
        }
    }
}

#[derive(PartialEq, Eq, Clone, Copy)]
enum Include {
    Requirement,
    Constraint,
}

/// For `-r`/`--requirement`/`-c`/`--constraint` lines: which include, and
/// where its value starts (`-r file`, `-rfile`, `--requirement=file`).
fn include_option(body: &str) -> Option<(Include, usize)> {
    for (long, kind) in [
        ("--requirement", Include::Requirement),
        ("--constraint", Include::Constraint),
    ] {
        if let Some(rest) = body.strip_prefix(long) {
            if rest.starts_with('=') {
                return Some((kind, long.len() + 1));
            }
            if rest.is_empty() || rest.starts_with(char::is_whitespace) {
                return Some((kind, long.len()));
            }
        }
    }
    for (short, kind) in [("-r", Include::Requirement), ("-c", Include::Constraint)] {
        if let Some(rest) = body.strip_prefix(short) {
            let skip = usize::from(rest.starts_with('='));
            return Some((kind, short.len() + skip));
        }
    }
    None
}

/// An include's path relative to the including file's directory.
fn resolve(base: &str, include: &str) -> String {
    if include.starts_with('/') {
        return normalize_path(include);
    }
    match base.rsplit_once('/') {
        Some((dir, _)) => normalize_path(&format!("{dir}/{include}")),
        None => normalize_path(include),
    }
}

/// Removes `.` and resolvable `..` components, lexically.
fn normalize_path(path: &str) -> String {
    let absolute = path.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." if parts.last().is_some_and(|p| *p != "..") => {
                parts.pop();
            }
            _ => parts.push(part),
        }
    }
    let joined = parts.join("/");
    if absolute {
        format!("/{joined}")
    } else {
        joined
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_resolve_against_the_including_file() {
        assert_eq!(resolve("reqs/base.txt", "../common.txt"), "common.txt");
        assert_eq!(
            resolve("requirements.txt", "./reqs/dev.txt"),
            "reqs/dev.txt"
        );
        assert_eq!(resolve("/p/requirements.txt", "a.txt"), "/p/a.txt");
        assert_eq!(resolve("x/requirements.txt", "/abs.txt"), "/abs.txt");
    }

    #[test]
    fn options_are_cut_outside_quotes() {
        let s = "a==1 ; os_name == ' -x' --hash=sha256:00";
        assert_eq!(&s[..options_start(s)], "a==1 ; os_name == ' -x'");
        assert_eq!(comment_start("a==1 # c"), 5);
        assert_eq!(comment_start("a @ https://x/#egg=a"), 20);
    }
}
