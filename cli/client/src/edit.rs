//! What an Edit / Write / MultiEdit would do to a manifest, and which
//! requirements it adds or changes.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use lex_align_manifest::{
    diff, parse_pyproject, parse_requirements, replace_dependency, Change, ChangeKind, Dependency,
    Kept, Manifest, PinStyle,
};
use serde_json::Value;

use crate::api::{Api, EvalItem};
use crate::project::Checked;

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
/// something, the new manifest and the file's text after the edit. A new
/// file counts as all added.
pub fn changed_requirements(
    path: &Path,
    tool: &str,
    input: &Value,
) -> Option<(Vec<Dependency>, Manifest, String)> {
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
    Some((added_or_changed(&old, &new), new, new_text))
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

/// The fix for `dep` (parsed from `text`) when the registry replaces it by
/// `replacement` and `dep`'s table already declares that package: the
/// result of the editor's quick fix, one entry for the replacement with
/// the stricter specifier. `version` is the replacement's current version
/// (the quick fix's suggestion for a pinned `dep`). `None` when the table
/// does not declare the replacement: the verdict's own fix stands.
pub fn merged_replacement_fix(
    text: &str,
    dep: &Dependency,
    replacement: &str,
    version: Option<&str>,
) -> Option<String> {
    let r = replace_dependency(text, dep, replacement, version)?;
    let m = r.merged?;
    let keep = match m.kept {
        Kept::Declared => format!("keep `{}` as it is", m.declared),
        Kept::Suggested | Kept::Intersection => {
            format!("keep one entry for it, `{}`", r.requirement)
        }
        Kept::Conflict => format!(
            "keep one entry for it, `{}` (the declared `{}` conflicts with the registry's version; the registry's wins)",
            r.requirement, m.declared
        ),
    };
    Some(format!(
        "replace with `{replacement}` — this table already declares `{}`: remove `{}` and {keep}",
        m.declared,
        dep.source.span.slice(text)
    ))
}

/// [`merged_replacement_fix`] for each checked dependency (in order;
/// `None` where the verdict's own fix stands). `texts` maps file labels to
/// the texts the dependencies were parsed from. The replacements' current
/// versions come from one batch evaluation, asked only for pinned
/// dependencies whose table declares their replacement.
pub fn replacement_fixes(
    api: &Api,
    texts: &BTreeMap<String, String>,
    checked: &[&Checked],
) -> Vec<Option<String>> {
    let merging: Vec<Option<(&str, &Dependency, &str)>> = checked
        .iter()
        .map(|c| {
            let v = c.verdict.as_ref().ok().filter(|v| v.is_denied())?;
            let replacement = v.replacement.as_deref()?;
            let text = texts.get(&c.dependency.source.file)?;
            replace_dependency(text, &c.dependency, replacement, None)?.merged?;
            Some((text.as_str(), &c.dependency, replacement))
        })
        .collect();
    let mut wanted: Vec<&str> = merging
        .iter()
        .flatten()
        .filter(|(_, dep, _)| PinStyle::of(dep) != PinStyle::Unpinned)
        .map(|(_, _, r)| *r)
        .collect();
    wanted.sort_unstable();
    wanted.dedup();
    let items: Vec<EvalItem> = wanted
        .iter()
        .map(|r| EvalItem {
            package: r.to_string(),
            version: None,
            requirement: Some(r.to_string()),
        })
        .collect();
    let mut versions: HashMap<&str, String> = HashMap::new();
    if let Ok(results) = api.evaluate_batch(&items) {
        for (r, result) in wanted.iter().zip(results) {
            if let Some(v) = result.ok().and_then(|v| v.resolved_version) {
                versions.insert(r, v);
            }
        }
    }
    merging
        .into_iter()
        .map(|m| {
            let (text, dep, r) = m?;
            let version = (PinStyle::of(dep) != PinStyle::Unpinned)
                .then(|| versions.get(r).map(String::as_str))
                .flatten();
            merged_replacement_fix(text, dep, r, version)
        })
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
    fn replacement_advice_describes_the_one_entry_left() {
        let text = "[project]\nname='p'\ndependencies = [\n  \"httpx>=0.27\",\n  \"requests>=2.31\",\n]\n[project.optional-dependencies]\ncli = [\"requests==2.31.0\"]\n";
        let m = parse_manifest("pyproject.toml", "pyproject.toml", text, &|_| None);
        let runtime = &m.dependencies[1];
        assert_eq!(
            merged_replacement_fix(text, runtime, "httpx", Some("0.28.1")).as_deref(),
            Some("replace with `httpx` — this table already declares `httpx>=0.27`: remove `requests>=2.31` and keep one entry for it, `httpx>=0.28.1`")
        );
        assert_eq!(
            merged_replacement_fix(text, runtime, "httpx", None).as_deref(),
            Some("replace with `httpx` — this table already declares `httpx>=0.27`: remove `requests>=2.31` and keep `httpx>=0.27` as it is")
        );
        // Another table's httpx does not count: the verdict's fix stands.
        assert_eq!(
            merged_replacement_fix(text, &m.dependencies[2], "httpx", None),
            None
        );
        let reqs = "httpx==0.27.2\nrequests==2.31.0\n";
        let m = parse_manifest("requirements.txt", "requirements.txt", reqs, &|_| None);
        assert_eq!(
            merged_replacement_fix(reqs, &m.dependencies[1], "httpx", Some("0.28.1")).as_deref(),
            Some("replace with `httpx` — this table already declares `httpx==0.27.2`: remove `requests==2.31.0` and keep one entry for it, `httpx==0.28.1` (the declared `httpx==0.27.2` conflicts with the registry's version; the registry's wins)")
        );
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
