//! Writing global policies into `registry.yml` in place, and rendering a
//! whole registry as YAML (the dashboards' "Export YAML").
//!
//! Like the rule edits in `edit.rs`, a policy edit touches only the lines of
//! the policy keys it rewrites: comments between keys and every other line
//! stay byte-identical, and the result is re-validated before it is returned.

use super::edit::render_rule;
use super::tree::{self, Node, Val};
use super::{unknown_policy_str, GlobalPolicies, Registry, RegistryError};

const KEYS: [&str; 5] = [
    "auto_approve_licenses",
    "hard_ban_licenses",
    "require_human_review_licenses",
    "unknown_license_policy",
    "cve_threshold",
];

fn err(message: impl Into<String>) -> RegistryError {
    RegistryError {
        message: message.into(),
        package: None,
        field: None,
        line: None,
    }
}

/// A flow-sequence item: plain when it cannot be read as anything but that
/// string, double-quoted (JSON escapes are valid YAML) otherwise.
fn item(s: &str) -> String {
    let plain = !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '+' | '-' | '_'))
        && s.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
        && s.parse::<f64>().is_err()
        && !matches!(
            s.to_ascii_lowercase().as_str(),
            "true" | "false" | "null" | "yes" | "no" | "on" | "off" | "y" | "n"
        );
    if plain {
        s.to_string()
    } else {
        serde_json::Value::String(s.to_string()).to_string()
    }
}

fn list(items: &[String]) -> String {
    format!(
        "[{}]",
        items.iter().map(|s| item(s)).collect::<Vec<_>>().join(", ")
    )
}

/// The value text of one policy key.
fn value_of(p: &GlobalPolicies, key: &str) -> String {
    match key {
        "auto_approve_licenses" => list(&p.auto_approve_licenses),
        "hard_ban_licenses" => list(&p.hard_ban_licenses),
        "require_human_review_licenses" => list(&p.require_human_review_licenses),
        "unknown_license_policy" => unknown_policy_str(p.unknown_license_policy).to_string(),
        // Shortest text that reads back as the same number.
        _ => format!("{}", p.cve_threshold),
    }
}

fn block_text(p: &GlobalPolicies, indent: usize, nl: &str) -> String {
    let pad = " ".repeat(indent);
    let mut out = format!("global_policies:{nl}");
    for key in KEYS {
        out.push_str(&format!("{pad}{key}: {}{nl}", value_of(p, key)));
    }
    out
}

/// Lines with their terminators, and the file's newline.
struct Lines<'a> {
    lines: Vec<&'a str>,
    nl: &'static str,
}

impl<'a> Lines<'a> {
    fn new(text: &'a str) -> Self {
        Lines {
            lines: text.split_inclusive('\n').collect(),
            nl: if text.contains("\r\n") { "\r\n" } else { "\n" },
        }
    }

    fn indent(&self, i: usize) -> usize {
        let l = self.lines[i];
        l.len() - l.trim_start_matches(' ').len()
    }

    fn blank_or_comment(&self, i: usize) -> bool {
        let t = self.lines[i].trim();
        t.is_empty() || t.starts_with('#')
    }

    /// `[start, end)`: the key line and the more-indented lines under it,
    /// without trailing blank or comment lines.
    fn block(&self, start: usize) -> (usize, usize) {
        let base = self.indent(start);
        let mut end = start + 1;
        while end < self.lines.len() && (self.blank_or_comment(end) || self.indent(end) > base) {
            end += 1;
        }
        while end > start + 1 && self.blank_or_comment(end - 1) {
            end -= 1;
        }
        (start, end)
    }
}

/// Replace lines `[s, e)` by `with` (each edit on disjoint ranges).
struct Edit {
    start: usize,
    end: usize,
    with: String,
}

fn apply(lines: &Lines, mut edits: Vec<Edit>) -> String {
    edits.sort_by_key(|e| e.start);
    let mut out = String::new();
    let mut at = 0;
    for e in edits {
        out.extend(lines.lines[at..e.start].iter().copied());
        if !out.is_empty() && !out.ends_with('\n') {
            out.push_str(lines.nl);
        }
        out.push_str(&e.with);
        at = e.end;
    }
    out.extend(lines.lines[at..].iter().copied());
    out
}

fn is_flow(node: &Node, text: &str) -> bool {
    node.index
        .and_then(|i| text.chars().nth(i))
        .is_some_and(|c| matches!(c, '{' | '['))
}

/// Set the five global policies of `text` to `policies`, keeping every other
/// line (comments between policy keys included). Nothing is returned unless
/// the result validates and reads back exactly these policies.
pub fn set_policies_in_yaml(
    text: &str,
    policies: &GlobalPolicies,
) -> Result<String, RegistryError> {
    let doc = tree::parse_yaml(text)?;
    let top = doc
        .as_map()
        .ok_or_else(|| err("top-level YAML must be a mapping"))?;
    if doc.line.is_none() || is_flow(&doc, text) {
        return Err(err(
            "registry.yml is written as a flow mapping (`{...}`); rewrite it in block style to edit it in place",
        ));
    }
    let lines = Lines::new(text);
    let nl = lines.nl;
    let find = |name: &str| top.iter().rev().find(|(k, _)| k.as_str() == Some(name));
    let edits = match find("global_policies") {
        None => {
            // A new block, just before `packages:` when there is one.
            let at = find("packages")
                .and_then(|(k, _)| k.line)
                .map(|l| l - 1)
                .unwrap_or(lines.lines.len());
            vec![Edit {
                start: at,
                end: at,
                with: block_text(policies, 2, nl),
            }]
        }
        Some((key, value)) => {
            let key_line = key
                .line
                .ok_or_else(|| err("cannot locate `global_policies:` in the file"))?
                - 1;
            match &value.val {
                Val::Map(entries) if !entries.is_empty() && !is_flow(value, text) => {
                    let indent = entries
                        .first()
                        .and_then(|(k, _)| k.line)
                        .map(|l| lines.indent(l - 1))
                        .unwrap_or(2);
                    let pad = " ".repeat(indent);
                    let mut edits = Vec::new();
                    let mut missing = String::new();
                    for name in KEYS {
                        let line = format!("{pad}{name}: {}{nl}", value_of(policies, name));
                        match entries.iter().find(|(k, _)| k.as_str() == Some(name)) {
                            Some((k, _)) => {
                                let start =
                                    k.line.ok_or_else(|| err("cannot locate a policy key"))? - 1;
                                let (start, end) = lines.block(start);
                                edits.push(Edit {
                                    start,
                                    end,
                                    with: line,
                                });
                            }
                            None => missing.push_str(&line),
                        }
                    }
                    if !missing.is_empty() {
                        let (_, end) = lines.block(key_line);
                        edits.push(Edit {
                            start: end,
                            end,
                            with: missing,
                        });
                    }
                    edits
                }
                // `global_policies:` empty, `{}`, `~` or in flow style: the
                // whole block is rewritten.
                _ => {
                    let (start, end) = lines.block(key_line);
                    vec![Edit {
                        start,
                        end,
                        with: block_text(policies, 2, nl),
                    }]
                }
            }
        }
    };
    let out = apply(&lines, edits);
    let reg = Registry::from_yaml(&out).map_err(|e| RegistryError {
        message: format!(
            "the edited registry would not be valid; nothing written: {}",
            e.message
        ),
        ..e
    })?;
    if reg.policies != *policies {
        return Err(err(
            "the edited registry does not read back the policies; nothing written",
        ));
    }
    Ok(out)
}

/// The registry as a YAML document that [`Registry::from_yaml`] reads back
/// as the same registry (packages sorted by name as written).
pub fn registry_to_yaml(registry: &Registry) -> String {
    let nl = "\n";
    let mut out = String::from("# lex-align registry, exported from the running daemon.\n");
    out.push_str(&format!(
        "version: {}{nl}",
        serde_json::Value::String(registry.version.clone())
    ));
    out.push_str(&block_text(&registry.policies, 2, nl));
    let mut rules: Vec<_> = registry.packages.values().collect();
    rules.sort_by(|a, b| a.name.cmp(&b.name));
    if rules.is_empty() {
        out.push_str("packages: {}\n");
    } else {
        out.push_str("packages:\n");
        for r in rules {
            out.push_str(&render_rule(r, &r.name, 2, 2, nl));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::{UnknownLicensePolicy, STARTER_YAML};

    fn policies() -> GlobalPolicies {
        GlobalPolicies {
            auto_approve_licenses: vec!["MIT".into(), "Apache-2.0".into()],
            hard_ban_licenses: vec!["AGPL-3.0".into()],
            require_human_review_licenses: vec![],
            unknown_license_policy: UnknownLicensePolicy::Warn,
            cve_threshold: 0.75,
        }
    }

    #[test]
    fn policy_lines_change_and_comments_stay() {
        let out = set_policies_in_yaml(STARTER_YAML, &policies()).unwrap();
        let reg = Registry::from_yaml(&out).unwrap();
        assert_eq!(reg.policies, policies());
        assert!(out.contains("  # Permissive licences;"), "{out}");
        assert!(out.contains("  auto_approve_licenses: [MIT, Apache-2.0]\n"));
        assert!(out.contains("  require_human_review_licenses: []\n"));
        assert!(out.contains("  cve_threshold: 0.75\n"));
        // Packages untouched, byte for byte.
        let tail = |s: &str| s[s.find("packages:").unwrap()..].to_string();
        assert_eq!(tail(&out), tail(STARTER_YAML));
        assert_eq!(
            Registry::from_yaml(&out).unwrap().packages,
            Registry::from_yaml(STARTER_YAML).unwrap().packages
        );
    }

    #[test]
    fn missing_keys_and_missing_block_are_added() {
        let partial = "version: '1'\nglobal_policies:\n    cve_threshold: 0.5 # old\npackages:\n  a:\n    status: approved\n";
        let out = set_policies_in_yaml(partial, &policies()).unwrap();
        assert!(out.contains("    cve_threshold: 0.75\n"), "{out}");
        assert!(out.contains("    hard_ban_licenses: [AGPL-3.0]\n"), "{out}");
        assert_eq!(Registry::from_yaml(&out).unwrap().policies, policies());

        let none = "version: '1'\n# rules\npackages:\n  a:\n    status: approved\n";
        let out = set_policies_in_yaml(none, &policies()).unwrap();
        assert!(
            out.starts_with("version: '1'\n# rules\nglobal_policies:\n"),
            "{out}"
        );
        assert_eq!(Registry::from_yaml(&out).unwrap().policies, policies());

        for empty in [
            "version: '1'\nglobal_policies: {}\n",
            "version: '1'\nglobal_policies:\n",
            "version: '1'\nglobal_policies: {cve_threshold: 0.2}\npackages: {}\n",
        ] {
            let out = set_policies_in_yaml(empty, &policies()).unwrap();
            assert_eq!(
                Registry::from_yaml(&out).unwrap().policies,
                policies(),
                "{out}"
            );
        }
    }

    #[test]
    fn awkward_items_are_quoted_and_bad_ones_refused() {
        let mut p = policies();
        p.auto_approve_licenses = vec!["LicenseRef-Ours, v2".into()];
        let out = set_policies_in_yaml("version: '1'\n", &p);
        // Not in the license vocabulary: refused, nothing returned.
        let e = out.unwrap_err();
        assert!(
            e.message
                .starts_with("the edited registry would not be valid"),
            "{e}"
        );
        assert_eq!(item("1.0"), "\"1.0\"");
        assert_eq!(item("true"), "\"true\"");
        assert_eq!(item("BSD-3-Clause"), "BSD-3-Clause");
        assert!(set_policies_in_yaml("{version: '1'}", &policies()).is_err());
    }

    #[test]
    fn export_reads_back_as_the_same_registry() {
        let reg = Registry::from_yaml(STARTER_YAML).unwrap();
        let text = registry_to_yaml(&reg);
        let back = Registry::from_yaml(&text).unwrap();
        assert_eq!(back.version, reg.version);
        assert_eq!(back.policies, reg.policies);
        let strip = |r: &Registry| {
            r.packages
                .values()
                .map(|x| {
                    let mut x = x.clone();
                    x.line = None;
                    x
                })
                .collect::<Vec<_>>()
        };
        assert_eq!(strip(&back), strip(&reg));
        let empty = Registry::from_yaml("version: '2'\n").unwrap();
        assert_eq!(Registry::from_yaml(&registry_to_yaml(&empty)).unwrap(), {
            let mut e = empty.clone();
            e.version = "2".into();
            e
        });
    }
}
