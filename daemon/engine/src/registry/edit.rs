//! Format-preserving edits of `registry.yml` for the `local_file` proposer:
//! one package block is replaced, inserted or removed; every other line,
//! comments included, stays byte-identical. The result is re-validated.

use super::tree::{self, Node, Val};
use super::{Registry, RegistryError, Rule};
use crate::name::canonicalize;

/// Line-oriented view of the source: each line with its terminator.
struct Lines<'a> {
    lines: Vec<&'a str>,
    newline: &'static str,
}

impl<'a> Lines<'a> {
    fn new(text: &'a str) -> Self {
        let newline = if text.contains("\r\n") { "\r\n" } else { "\n" };
        Lines {
            lines: text.split_inclusive('\n').collect(),
            newline,
        }
    }

    fn indent(&self, i: usize) -> usize {
        let l = self.lines[i];
        l.len() - l.trim_start_matches(' ').len()
    }

    fn is_blank_or_comment(&self, i: usize) -> bool {
        let t = self.lines[i].trim();
        t.is_empty() || t.starts_with('#')
    }

    /// `[start, end)` of the block whose key sits on line `start` (0-based):
    /// the key line plus every following line that is more indented, blank or
    /// a comment; trailing blank and comment lines are left to what follows.
    fn block(&self, start: usize) -> (usize, usize) {
        let key_indent = self.indent(start);
        let mut end = start + 1;
        while end < self.lines.len()
            && (self.is_blank_or_comment(end) || self.indent(end) > key_indent)
        {
            end += 1;
        }
        while end > start + 1 && self.is_blank_or_comment(end - 1) {
            end -= 1;
        }
        (start, end)
    }
}

/// The YAML parser counts a bare CR as a line break, the line view here
/// does not: editing such a file in place would address the wrong lines.
fn check_line_breaks(text: &str) -> Result<(), RegistryError> {
    let bare_cr = text
        .as_bytes()
        .windows(2)
        .any(|w| w[0] == b'\r' && w[1] != b'\n')
        || text.ends_with('\r');
    if bare_cr {
        return Err(err(
            "registry.yml has bare CR line breaks; convert it to LF (or CRLF) line endings to edit it in place".into(),
        ));
    }
    Ok(())
}

fn err(message: String) -> RegistryError {
    RegistryError {
        message,
        package: None,
        field: None,
        line: None,
    }
}

/// A YAML scalar for `s`: plain when that reads back as the same string,
/// double-quoted otherwise.
fn scalar(s: &str) -> String {
    let plain_ok = !s.is_empty()
        && s == s.trim()
        && s.chars()
            .next()
            .is_some_and(|c| c.is_alphanumeric() || c == '_')
        && !s.contains(": ")
        && !s.contains(" #")
        && !s.ends_with(':')
        && !s
            .chars()
            .any(|c| c.is_control() || matches!(c, '{' | '}' | '[' | ']' | '"' | '\'' | '`'))
        && matches!(tree::parse_yaml(&format!("k: {s}")).ok().and_then(|n| n.get("k").cloned()), Some(Node { val: Val::Str(ref v), .. }) if v == s);
    if plain_ok {
        s.to_string()
    } else {
        quoted(s)
    }
}

fn quoted(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn render(rule: &Rule, key: &str, indent: usize, step: usize, nl: &str) -> String {
    let pad = " ".repeat(indent);
    let fpad = " ".repeat(indent + step);
    let mut out = format!("{pad}{}:{nl}", scalar(key));
    out.push_str(&format!("{fpad}status: {}{nl}", rule.status.as_str()));
    if let Some(r) = rule.replacement.as_deref().filter(|s| !s.is_empty()) {
        out.push_str(&format!("{fpad}replacement: {}{nl}", scalar(r)));
    }
    // Versions always quoted: `2.0` plain would read back as a float.
    if let Some(v) = rule.min_version.as_deref().filter(|s| !s.is_empty()) {
        out.push_str(&format!("{fpad}min_version: {}{nl}", quoted(v)));
    }
    if let Some(v) = rule.max_version.as_deref().filter(|s| !s.is_empty()) {
        out.push_str(&format!("{fpad}max_version: {}{nl}", quoted(v)));
    }
    if let Some(r) = rule.reason.as_deref().filter(|s| !s.is_empty()) {
        out.push_str(&format!("{fpad}reason: {}{nl}", scalar(r)));
    }
    if let Some(o) = rule.owner.as_deref().filter(|s| !s.is_empty()) {
        out.push_str(&format!("{fpad}owner: {}{nl}", scalar(o)));
    }
    if let Some(e) = rule.expires_text() {
        out.push_str(&format!("{fpad}expires: {}{nl}", scalar(&e)));
    }
    out
}

/// One package block as the proposer writes it (for `compose.rs`).
pub(super) fn render_rule(rule: &Rule, key: &str, indent: usize, step: usize, nl: &str) -> String {
    render(rule, key, indent, step, nl)
}

/// Where the packages live in the document.
struct Located<'a> {
    top: &'a [(Node, Node)],
    packages: Option<(&'a Node, &'a Node)>,
}

fn locate(doc: &Node) -> Result<Located<'_>, RegistryError> {
    let top = doc
        .as_map()
        .ok_or_else(|| err("top-level YAML must be a mapping".into()))?;
    let packages = top
        .iter()
        .rev()
        .find(|(k, _)| k.as_str() == Some("packages"))
        .map(|(k, v)| (k, v));
    Ok(Located { top, packages })
}

fn is_flow(node: &Node, chars: &[char]) -> bool {
    node.index
        .and_then(|i| chars.get(i))
        .is_some_and(|c| matches!(c, '{' | '['))
}

fn check_block_style(doc: &Node, text: &str) -> Result<Vec<char>, RegistryError> {
    let chars: Vec<char> = text.chars().collect();
    if doc.line.is_none() || is_flow(doc, &chars) {
        return Err(err(
            "registry.yml is written as a flow mapping (`{...}`); rewrite it in block style to edit it in place".into(),
        ));
    }
    Ok(chars)
}

/// Indentation of package keys and of their fields, learned from the file.
fn learn_indent(
    lines: &Lines,
    entries: &[(Node, Node)],
    packages_key_line: usize,
) -> (usize, usize) {
    let pkg_indent = entries
        .first()
        .and_then(|(k, _)| k.line)
        .map(|l| lines.indent(l - 1))
        .unwrap_or_else(|| lines.indent(packages_key_line - 1) + 2);
    let step = entries
        .iter()
        .find_map(|(k, v)| {
            let (kl, vl) = (k.line?, v.line?);
            (vl > kl && v.as_map().is_some())
                .then(|| lines.indent(vl - 1).saturating_sub(lines.indent(kl - 1)))
        })
        .filter(|s| *s > 0)
        .unwrap_or(2);
    (pkg_indent, step)
}

fn revalidate(out: String) -> Result<(String, Registry), RegistryError> {
    match Registry::from_yaml(&out) {
        Ok(reg) => Ok((out, reg)),
        Err(e) => Err(RegistryError {
            message: format!(
                "the edited registry would not be valid; nothing written: {}",
                e.message
            ),
            ..e
        }),
    }
}

/// Replace the package block matching `rule.name` (by canonical name) or
/// append a new one under `packages:` (created when absent). The file's other
/// lines are untouched; the result must validate or nothing is returned.
pub fn upsert_rule_in_yaml(text: &str, rule: &Rule) -> Result<String, RegistryError> {
    check_line_breaks(text)?;
    let doc = tree::parse_yaml(text)?;
    let chars = check_block_style(&doc, text)?;
    let loc = locate(&doc)?;
    let lines = Lines::new(text);
    let nl = lines.newline;
    let canonical = canonicalize(&rule.name);
    let mut out = String::with_capacity(text.len() + 256);

    let result = match loc.packages {
        None => {
            out.push_str(text);
            if !text.is_empty() && !text.ends_with('\n') {
                out.push_str(nl);
            }
            out.push_str(&format!("packages:{nl}"));
            out.push_str(&render(rule, &rule.name, 2, 2, nl));
            out
        }
        Some((key, value)) => {
            let key_line = key
                .line
                .ok_or_else(|| err("cannot locate `packages:` in the file".into()))?;
            match &value.val {
                Val::Map(entries) if !entries.is_empty() => {
                    if is_flow(value, &chars) {
                        return Err(err(
                            "`packages` is written as a flow mapping (`{...}`); rewrite it in block style to edit it in place"
                                .into(),
                        ));
                    }
                    let (indent, step) = learn_indent(&lines, entries, key_line);
                    let existing = entries
                        .iter()
                        .find(|(k, _)| k.as_str().is_some_and(|s| canonicalize(s) == canonical));
                    match existing {
                        Some((k, _)) => {
                            let start = k
                                .line
                                .ok_or_else(|| err("cannot locate the package entry".into()))?
                                - 1;
                            let (s, e) = lines.block(start);
                            let written = k.as_str().unwrap_or(&rule.name);
                            out.extend(lines.lines[..s].iter().copied());
                            out.push_str(&render(rule, written, lines.indent(s), step, nl));
                            out.extend(lines.lines[e..].iter().copied());
                        }
                        None => {
                            let last =
                                entries.last().and_then(|(k, _)| k.line).unwrap_or(key_line) - 1;
                            let (_, e) = lines.block(last);
                            out.extend(lines.lines[..e].iter().copied());
                            if e > 0 && !lines.lines[e - 1].ends_with('\n') {
                                out.push_str(nl);
                            }
                            out.push_str(&render(rule, &rule.name, indent, step, nl));
                            out.extend(lines.lines[e..].iter().copied());
                        }
                    }
                    out
                }
                Val::Null | Val::Map(_) => {
                    // `packages:` / `packages: {}` / `packages: ~`: the key line
                    // becomes `packages:` and the block follows it.
                    let i = key_line - 1;
                    let line = lines.lines[i];
                    let indent = lines.indent(i);
                    out.extend(lines.lines[..i].iter().copied());
                    let keeps_line =
                        value.val == Val::Null && value.raw.as_deref().is_some_and(str::is_empty);
                    if keeps_line {
                        out.push_str(line);
                        if !line.ends_with('\n') {
                            out.push_str(nl);
                        }
                    } else {
                        out.push_str(&format!("{}packages:{nl}", " ".repeat(indent)));
                    }
                    out.push_str(&render(rule, &rule.name, indent + 2, 2, nl));
                    out.extend(lines.lines[i + 1..].iter().copied());
                    out
                }
                _ => {
                    return Err(err(
                        "packages must be a mapping keyed by package name".into()
                    ))
                }
            }
        }
    };
    let _ = loc.top;
    let (out, reg) = revalidate(result)?;
    if reg.packages.get(&canonical).map(|r| {
        (
            r.status,
            &r.reason,
            &r.replacement,
            &r.min_version,
            &r.max_version,
            r.expires,
            &r.owner,
        )
    }) != Some((
        rule.status,
        &rule.reason,
        &rule.replacement,
        &rule.min_version,
        &rule.max_version,
        rule.expires,
        &rule.owner,
    )) {
        return Err(err(format!(
            "the edited registry does not read back the rule for `{}`; nothing written",
            rule.name
        )));
    }
    Ok(out)
}

/// Remove the package block for `name` (any spelling). Errors when the
/// package is not in the file.
pub fn remove_rule_in_yaml(text: &str, name: &str) -> Result<String, RegistryError> {
    check_line_breaks(text)?;
    let doc = tree::parse_yaml(text)?;
    let chars = check_block_style(&doc, text)?;
    let loc = locate(&doc)?;
    let canonical = canonicalize(name);
    let not_found = || err(format!("package `{name}` is not in the registry"));
    let (_, value) = loc.packages.ok_or_else(not_found)?;
    let entries = value.as_map().ok_or_else(not_found)?;
    if is_flow(value, &chars) {
        return Err(err(
            "`packages` is written as a flow mapping (`{...}`); rewrite it in block style to edit it in place".into(),
        ));
    }
    let mut matching = entries
        .iter()
        .filter(|(k, _)| k.as_str().is_some_and(|s| canonicalize(s) == canonical));
    let (k, _) = matching.next().ok_or_else(not_found)?;
    // Removing one of two spellings would leave the package listed (found by
    // the registry_yaml fuzz target).
    if matching.next().is_some() {
        return Err(err(format!(
            "package `{name}` is declared more than once (under names that normalise alike); remove the duplicate by hand first"
        )));
    }
    let lines = Lines::new(text);
    let start = k.line.ok_or_else(not_found)? - 1;
    let (s, e) = lines.block(start);
    let mut out: String = lines.lines[..s].concat();
    out.push_str(&lines.lines[e..].concat());
    let (out, _) = revalidate(out)?;
    Ok(out)
}
