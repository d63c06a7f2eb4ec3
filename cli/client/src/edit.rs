//! What an Edit / Write / MultiEdit would do to a manifest, and which
//! requirements it adds or changes.

use std::path::Path;

use lex_align_manifest::{
    diff, parse_pyproject, parse_requirements, Change, ChangeKind, Dependency, Manifest,
};
use serde_json::Value;

/// The file's text after the tool call, or `None` when the call cannot
/// apply (an `old_string` that is not there: the tool itself will fail).
/// `current` is `None` for a file that does not exist yet.
pub fn simulate(tool: &str, input: &Value, current: Option<&str>) -> Option<String> {
    let str_field = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).map(str::to_string);
    match tool {
        "Write" => str_field(input, "content"),
        "Edit" => apply_one(current?, input),
        "MultiEdit" => {
            let mut text = current.unwrap_or("").to_string();
            for e in input.get("edits")?.as_array()? {
                // MultiEdit may create a file when the first old_string is empty.
                text = if current.is_none()
                    && text.is_empty()
                    && str_field(e, "old_string")?.is_empty()
                {
                    str_field(e, "new_string")?
                } else {
                    apply_one(&text, e)?
                };
            }
            Some(text)
        }
        _ => None,
    }
}

fn apply_one(text: &str, edit: &Value) -> Option<String> {
    let old = edit.get("old_string")?.as_str()?;
    let new = edit.get("new_string")?.as_str()?;
    if old.is_empty() || !text.contains(old) {
        return None;
    }
    if edit.get("replace_all").and_then(Value::as_bool) == Some(true) {
        Some(text.replace(old, new))
    } else {
        Some(text.replacen(old, new, 1))
    }
}

/// Parses a governed file by its name; `read` resolves `-r` includes.
pub fn parse_manifest(
    file_name: &str,
    label: &str,
    text: &str,
    read: &dyn Fn(&str) -> Option<String>,
) -> Manifest {
    if file_name == "pyproject.toml" {
        parse_pyproject(label, text)
    } else {
        parse_requirements(label, text, read)
    }
}

/// The requirements an edit adds or changes, in the scopes that install
/// something. A new file counts as all added.
pub fn changed_requirements(
    path: &Path,
    tool: &str,
    input: &Value,
) -> Option<(Vec<Dependency>, Manifest)> {
    let file_name = path.file_name()?.to_str()?;
    let current = std::fs::read_to_string(path).ok();
    let new_text = simulate(tool, input, current.as_deref())?;
    let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
    let read = move |rel: &str| std::fs::read_to_string(dir.join(rel)).ok();
    let label = file_name;
    let old = current
        .as_deref()
        .map(|t| parse_manifest(file_name, label, t, &read))
        .unwrap_or_default();
    let new = parse_manifest(file_name, label, &new_text, &read);
    Some((added_or_changed(&old, &new), new))
}

pub fn added_or_changed(old: &Manifest, new: &Manifest) -> Vec<Dependency> {
    diff(old, new)
        .into_iter()
        .filter(|c: &Change| {
            matches!(c.kind, ChangeKind::Added | ChangeKind::SpecifierChanged)
                && c.dependency.scope.installs()
        })
        .map(|c| c.dependency)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn edit_replaces_first_or_all() {
        let text = "a\nb\na\n";
        let once = simulate(
            "Edit",
            &json!({"old_string":"a","new_string":"c"}),
            Some(text),
        );
        assert_eq!(once.as_deref(), Some("c\nb\na\n"));
        let all = simulate(
            "Edit",
            &json!({"old_string":"a","new_string":"c","replace_all":true}),
            Some(text),
        );
        assert_eq!(all.as_deref(), Some("c\nb\nc\n"));
        assert_eq!(
            simulate(
                "Edit",
                &json!({"old_string":"zz","new_string":"c"}),
                Some(text)
            ),
            None
        );
        assert_eq!(
            simulate("Edit", &json!({"old_string":"a","new_string":"c"}), None),
            None
        );
    }

    #[test]
    fn multiedit_applies_in_order() {
        let r = simulate(
            "MultiEdit",
            &json!({"edits":[{"old_string":"x","new_string":"y"},{"old_string":"y","new_string":"z","replace_all":true}]}),
            Some("x y"),
        );
        assert_eq!(r.as_deref(), Some("z z"));
    }

    #[test]
    fn specifier_changes_and_additions_are_reported() {
        let old = "[project]\nname='p'\ndependencies = [\"cryptography>=42\", \"httpx\"]\n";
        let new = "[project]\nname='p'\ndependencies = [\"cryptography>=40\", \"httpx\", \"requests\"]\n[tool.uv]\nconstraint-dependencies=[\"urllib3<2\"]\n";
        let read = |_: &str| None;
        let changed = added_or_changed(
            &parse_manifest("pyproject.toml", "pyproject.toml", old, &read),
            &parse_manifest("pyproject.toml", "pyproject.toml", new, &read),
        );
        let names: Vec<&str> = changed.iter().map(|d| d.requirement.as_str()).collect();
        assert_eq!(names, ["cryptography>=40", "requests"]);
    }
}
