//! The one copy of the test fixtures every test crate shares: the team
//! registry (`data/registry.yml`) and the pyproject sample, with small
//! builders that derive a test's variant from them in the test itself.
//!
//! Std only, on purpose: the engine's unit tests include this file with
//! `#[path]` (a dev-dependency on this crate would build a second engine
//! and the whole fake-server stack for them).
#![allow(dead_code)]

use std::fmt;

/// The team registry: one package of each status, a comment at the top
/// and one above a package (the editing routes must keep them).
pub const REGISTRY_YAML: &str = include_str!("../data/registry.yml");

/// [`REGISTRY_YAML`], ready to be varied.
pub fn registry() -> RegistryText {
    RegistryText::new(REGISTRY_YAML)
}

/// A registry text edited line by line. It only has to understand the
/// fixture's own layout (two-space indentation, one `key: value` per line),
/// so it keeps comments and the order of what it does not touch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistryText {
    lines: Vec<String>,
}

impl RegistryText {
    pub fn new(text: &str) -> RegistryText {
        RegistryText {
            lines: text.lines().map(str::to_string).collect(),
        }
    }

    /// Sets the top-level `version`.
    pub fn version(mut self, v: &str) -> Self {
        let line = format!("version: \"{v}\"");
        match self.lines.iter().position(|l| l.starts_with("version:")) {
            Some(i) => self.lines[i] = line,
            None => self.lines.insert(0, line),
        }
        self
    }

    /// Sets a `global_policies` entry (added at the section's end when it
    /// is not there); `value` is YAML, e.g. `"[MIT, ISC]"` or `"0.7"`.
    pub fn policy(mut self, key: &str, value: &str) -> Self {
        let line = format!("  {key}: {value}");
        let (start, end) = self.section("global_policies");
        match self.find_key(start, end, 2, key) {
            Some(i) => self.lines[i] = line,
            None => self.lines.insert(end, line),
        }
        self
    }

    pub fn without_policy(mut self, key: &str) -> Self {
        let (start, end) = self.section("global_policies");
        if let Some(i) = self.find_key(start, end, 2, key) {
            self.lines.remove(i);
        }
        self
    }

    /// Sets a package's rule to `body` (`key: value` lines, unindented):
    /// an existing rule is replaced where it stands (its comment kept), a
    /// new one appended.
    pub fn package(mut self, name: &str, body: &str) -> Self {
        let mut block = vec![format!("  {name}:")];
        block.extend(body.lines().map(|l| format!("    {}", l.trim())));
        match self.package_block(name) {
            Some((i, j)) => {
                self.lines.splice(i..j, block);
            }
            None => {
                let (_, end) = self.section("packages");
                self.lines.splice(end..end, block);
            }
        }
        self
    }

    /// Drops a package's rule and the comment lines right above it.
    pub fn without(mut self, name: &str) -> Self {
        if let Some((mut i, j)) = self.package_block(name) {
            while i > 0 && self.lines[i - 1].trim_start().starts_with('#') {
                i -= 1;
            }
            self.lines.drain(i..j);
        }
        self
    }

    /// Keeps only these packages' rules.
    pub fn only(mut self, names: &[&str]) -> Self {
        for name in self.package_names() {
            if !names.contains(&name.as_str()) {
                self = self.without(&name);
            }
        }
        self
    }

    /// The packages in the text, in order.
    pub fn package_names(&self) -> Vec<String> {
        let Some((start, end)) = self.find_section("packages") else {
            return Vec::new();
        };
        self.lines[start..end]
            .iter()
            .filter_map(|l| header_key(l, 2))
            .map(str::to_string)
            .collect()
    }

    pub fn yaml(&self) -> String {
        let mut s = self.lines.join("\n");
        s.push('\n');
        s
    }

    /// For harnesses that hold the registry as `&'static str`.
    pub fn leak(&self) -> &'static str {
        Box::leak(self.yaml().into_boxed_str())
    }

    /// Lines `start..end` after a top-level `name:` up to the next
    /// top-level key (a missing section is appended).
    fn section(&mut self, name: &str) -> (usize, usize) {
        if let Some(range) = self.find_section(name) {
            return range;
        }
        self.lines.push(format!("{name}:"));
        (self.lines.len(), self.lines.len())
    }

    fn find_section(&self, name: &str) -> Option<(usize, usize)> {
        let head = format!("{name}:");
        let start = self.lines.iter().position(|l| l.trim_end() == head)? + 1;
        let mut end = start;
        while end < self.lines.len() {
            let l = &self.lines[end];
            if !l.is_empty() && !l.starts_with(' ') && !l.starts_with('#') {
                break;
            }
            end += 1;
        }
        // Trailing blank lines belong to the gap, not to the section.
        while end > start && self.lines[end - 1].trim().is_empty() {
            end -= 1;
        }
        Some((start, end))
    }

    fn find_key(&self, start: usize, end: usize, indent: usize, key: &str) -> Option<usize> {
        (start..end).find(|&i| header_key(&self.lines[i], indent) == Some(key))
    }

    /// The header line of a package's rule and the end of its body.
    fn package_block(&mut self, name: &str) -> Option<(usize, usize)> {
        let (start, end) = self.section("packages");
        let i = self.find_key(start, end, 2, name)?;
        let mut j = i + 1;
        while j < end && self.lines[j].starts_with("    ") {
            j += 1;
        }
        Some((i, j))
    }
}

/// `key` of a `key:` or `key: value` line at exactly `indent` spaces.
fn header_key(line: &str, indent: usize) -> Option<&str> {
    let rest = line.strip_prefix(&" ".repeat(indent))?;
    if rest.starts_with([' ', '#']) {
        return None;
    }
    let (key, _) = rest.split_once(':')?;
    Some(key.trim())
}

impl fmt::Display for RegistryText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.yaml())
    }
}

impl From<RegistryText> for String {
    fn from(r: RegistryText) -> String {
        r.yaml()
    }
}

/// A `pyproject.toml` with a `[project]` table named `name`, version
/// `0.1.0`, and one `dependencies` entry a line, in the given order, as a
/// `&'static str` (tests keep it in a `const` and find positions in it):
/// `pyproject!("svc"; "httpx>=0.27", "click")`.
#[macro_export]
macro_rules! pyproject {
    ($name:literal; $($dep:literal),* $(,)?) => {
        concat!(
            "[project]\nname = \"", $name, "\"\nversion = \"0.1.0\"\ndependencies = [\n",
            $("    \"", $dep, "\",\n",)*
            "]\n"
        )
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unchanged_text_round_trips() {
        assert_eq!(registry().yaml(), REGISTRY_YAML);
    }

    #[test]
    fn edits_keep_the_rest_and_its_comments() {
        let y = registry()
            .version("1")
            .policy("cve_threshold", "0.7")
            .policy("require_human_review_licenses", "[MPL-2.0]")
            .without_policy("hard_ban_licenses")
            .package("requests", "status: banned\nreason: No.")
            .package("click", "status: approved")
            .without("cryptography")
            .yaml();
        assert_eq!(
            y,
            "# Team registry: edited by humans, comments matter.\n\
             version: \"1\"\n\
             global_policies:\n  \
             auto_approve_licenses: [MIT, Apache-2.0, BSD-3-Clause, BSD-2-Clause, ISC]\n  \
             unknown_license_policy: block\n  \
             cve_threshold: 0.7\n  \
             require_human_review_licenses: [MPL-2.0]\n\
             packages:\n  \
             # The async client everyone should use.\n  \
             httpx:\n    status: preferred\n    reason: Standard async HTTP client.\n  \
             requests:\n    status: banned\n    reason: No.\n  \
             pyqt5:\n    status: banned\n    reason: GPL-licensed; no commercial license held.\n  \
             click:\n    status: approved\n"
        );
    }

    #[test]
    fn without_drops_the_comment_above_and_only_keeps_the_named() {
        let r = registry().only(&["requests", "pyqt5"]);
        assert_eq!(r.package_names(), ["requests", "pyqt5"]);
        assert!(!r.yaml().contains("async client everyone"));
        assert!(r.yaml().contains("# Team registry"));
    }

    #[test]
    fn pyproject_lists_one_dependency_a_line() {
        const TEXT: &str = concat!(pyproject!("svc"; "httpx>=0.27", "click"), "# end\n");
        assert_eq!(
            TEXT,
            "[project]\nname = \"svc\"\nversion = \"0.1.0\"\ndependencies = [\n    \"httpx>=0.27\",\n    \"click\",\n]\n# end\n"
        );
    }
}
