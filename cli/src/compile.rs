//! `registry compile SRC DST`: validate a registry YAML and write the
//! compiled JSON form (the original server's format, byte for byte).

use std::path::Path;

use lex_align_engine::registry::Registry;

use crate::fail;

pub fn run(source: &Path, destination: &Path) -> u8 {
    let text = match std::fs::read_to_string(source) {
        Ok(t) => t,
        Err(e) => return fail(format!("cannot read {}: {e}", source.display())),
    };
    let registry = match load(&text) {
        Ok(r) => r,
        Err(LoadError::Yaml(e)) => return fail(format!("YAML parse error: {e}")),
        Err(LoadError::Invalid(e)) => return fail(format!("Registry validation failed: {e}")),
    };
    let json = compiled_json_text(&registry);
    if let Some(parent) = destination.parent().filter(|p| !p.as_os_str().is_empty()) {
        if let Err(e) = std::fs::create_dir_all(parent) {
            return fail(format!("cannot create {}: {e}", parent.display()));
        }
    }
    if let Err(e) = std::fs::write(destination, json) {
        return fail(format!("cannot write {}: {e}", destination.display()));
    }
    println!(
        "Compiled {} package rules from {} → {}",
        registry.packages.len(),
        source.display(),
        destination.display()
    );
    0
}

pub enum LoadError {
    /// Not YAML at all (the original's `YAML parse error`).
    Yaml(String),
    /// YAML, but not a valid registry (message names package, field and line).
    Invalid(String),
}

/// Parses and validates a registry document, telling syntax errors apart
/// from schema errors as the original did.
pub fn load(text: &str) -> Result<Registry, LoadError> {
    if let Err(e) = yaml_rust2::YamlLoader::load_from_str(text) {
        return Err(LoadError::Yaml(e.to_string()));
    }
    Registry::from_text(text).map_err(|e| LoadError::Invalid(e.to_string()))
}

/// `json.dumps(doc, indent=2, sort_keys=True) + "\n"`: serde_json's map is
/// sorted (no `preserve_order`), and Python escapes non-ASCII by default.
pub fn compiled_json_text(registry: &Registry) -> String {
    let value: serde_json::Value = registry.to_compiled_json();
    let pretty = serde_json::to_string_pretty(&value).expect("JSON values always serialize");
    let mut out = String::with_capacity(pretty.len() + 1);
    for ch in pretty.chars() {
        if ch.is_ascii() {
            out.push(ch);
        } else {
            // Non-ASCII only ever occurs inside JSON strings, where \u escapes are valid.
            let mut buf = [0u16; 2];
            for unit in ch.encode_utf16(&mut buf) {
                out.push_str(&format!("\\u{unit:04x}"));
            }
        }
    }
    out.push('\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn starter_registry_compiles_to_sorted_ascii_json() {
        let reg = Registry::from_yaml(lex_align_engine::registry::STARTER_YAML).unwrap();
        let text = compiled_json_text(&reg);
        assert!(text.ends_with("}\n"));
        assert!(text.is_ascii());
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert!(v["packages"]["httpx"].is_object(), "{text}");
        // Sorted keys at the top level.
        let keys: Vec<_> = v.as_object().unwrap().keys().cloned().collect();
        let mut sorted = keys.clone();
        sorted.sort();
        assert_eq!(keys, sorted);
    }

    #[test]
    fn non_ascii_is_escaped_like_python() {
        let yaml = "version: \"1\"\npackages:\n  httpx:\n    status: preferred\n    reason: \"caf\u{e9} \u{1f600}\"\n";
        let reg = Registry::from_yaml(yaml).unwrap();
        let text = compiled_json_text(&reg);
        assert!(text.contains("caf\\u00e9 \\ud83d\\ude00"), "{text}");
    }

    #[test]
    fn syntax_and_schema_errors_are_told_apart() {
        assert!(matches!(
            load("packages: [unclosed"),
            Err(LoadError::Yaml(_))
        ));
        match load("version: \"1\"\npackages:\n  httpx:\n    status: shiny\n") {
            Err(LoadError::Invalid(m)) => assert!(m.contains("httpx"), "{m}"),
            _ => panic!("expected a validation error"),
        }
    }
}
