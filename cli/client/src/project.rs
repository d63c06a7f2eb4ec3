//! Every dependency of a project, from the working tree or from the git
//! index, through the shared manifest model (`lex-align-manifest`), and the
//! one batch evaluation that checks them all.

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use lex_align_manifest::{
    attribute, parse_poetry_lock, parse_pylock, parse_pyproject, parse_requirements, parse_uv_lock,
    Dependency, Finding, Manifest, Scope,
};

use crate::api::{Api, ApiError, EvalItem};
use crate::verdict::Verdict;

/// Is this file name one whose edits change what gets installed?
/// By file name, not substring (`pyproject.toml.bak` is not governed).
pub fn is_governed_manifest(file_name: &str) -> bool {
    file_name == "pyproject.toml" || is_requirements_file(file_name)
}

/// `requirements.txt`, `requirements-dev.txt`, `dev-requirements.txt`, `requirements.in`, …
pub fn is_requirements_file(file_name: &str) -> bool {
    let lower = file_name.to_ascii_lowercase();
    (lower.ends_with(".txt") || lower.ends_with(".in")) && lower.contains("requirements")
        || lower == "constraints.txt"
}

pub fn is_lock_file(file_name: &str) -> bool {
    matches!(file_name, "uv.lock" | "poetry.lock" | "pylock.toml")
        || (file_name.starts_with("pylock.") && file_name.ends_with(".toml"))
}

/// Where project files are read from.
pub trait Source {
    /// File names (relative to the project root, `/`-separated) that exist.
    fn files(&self) -> Vec<String>;
    fn read(&self, rel: &str) -> Option<String>;
}

/// The working tree.
pub struct FsSource {
    pub root: PathBuf,
}

impl Source for FsSource {
    fn files(&self) -> Vec<String> {
        let mut out = Vec::new();
        let list = |dir: &Path, prefix: &str, out: &mut Vec<String>| {
            if let Ok(rd) = std::fs::read_dir(dir) {
                for e in rd.flatten() {
                    if e.file_type().is_ok_and(|t| t.is_file()) {
                        out.push(format!("{prefix}{}", e.file_name().to_string_lossy()));
                    }
                }
            }
        };
        list(&self.root, "", &mut out);
        list(&self.root.join("requirements"), "requirements/", &mut out);
        out.sort();
        out
    }

    fn read(&self, rel: &str) -> Option<String> {
        std::fs::read_to_string(self.root.join(rel)).ok()
    }
}

/// The git index (what the next commit will contain): `git ls-files --stage`
/// for the blob ids, one `git cat-file --batch` for their contents.
pub struct GitIndexSource {
    files: BTreeMap<String, String>,
}

impl GitIndexSource {
    /// `None` when `root` is not inside a git work tree.
    pub fn load(root: &Path) -> Option<GitIndexSource> {
        let out = Command::new("git")
            .arg("-C")
            .arg(root)
            .args(["ls-files", "--stage", "-z", "--", "."])
            .stderr(Stdio::null())
            .output()
            .ok()?;
        if !out.status.success() {
            return None;
        }
        // `<mode> <blob> <stage>\t<path>`; only stage 0 (merged) entries and
        // only the files that declare dependencies.
        let mut wanted: Vec<(String, String)> = Vec::new();
        for rec in out.stdout.split(|b| *b == 0).filter(|r| !r.is_empty()) {
            let rec = String::from_utf8_lossy(rec);
            let Some((meta, path)) = rec.split_once('\t') else {
                continue;
            };
            let mut parts = meta.split(' ');
            let (_mode, blob, stage) = (parts.next(), parts.next(), parts.next());
            if stage != Some("0") {
                continue;
            }
            let depth_ok = !path.contains('/')
                || (path.starts_with("requirements/") && path.matches('/').count() == 1);
            let name = path.rsplit('/').next().unwrap_or(path);
            if depth_ok
                && (is_governed_manifest(name)
                    || is_lock_file(name)
                    || path.starts_with("requirements/"))
            {
                wanted.push((path.to_string(), blob.unwrap_or_default().to_string()));
            }
        }
        let mut files = BTreeMap::new();
        if wanted.is_empty() {
            return Some(GitIndexSource { files });
        }
        let mut child = Command::new("git")
            .arg("-C")
            .arg(root)
            .args(["cat-file", "--batch"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .ok()?;
        let mut input = String::new();
        for (_, blob) in &wanted {
            input.push_str(blob);
            input.push('\n');
        }
        let mut stdin = child.stdin.take()?;
        let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()));
        let out = child.wait_with_output().ok()?;
        let _ = writer.join();
        // `<blob> blob <size>\n<content>\n` per request.
        let mut rest = &out.stdout[..];
        for (path, _) in &wanted {
            let nl = rest.iter().position(|b| *b == b'\n')?;
            let header = String::from_utf8_lossy(&rest[..nl]).to_string();
            rest = &rest[nl + 1..];
            let size: usize = header.rsplit(' ').next()?.parse().ok()?;
            let content = rest.get(..size)?;
            files.insert(path.clone(), String::from_utf8_lossy(content).into_owned());
            rest = rest.get(size + 1..).unwrap_or_default();
        }
        Some(GitIndexSource { files })
    }
}

impl Source for GitIndexSource {
    fn files(&self) -> Vec<String> {
        self.files.keys().cloned().collect()
    }

    fn read(&self, rel: &str) -> Option<String> {
        self.files.get(rel.trim_start_matches("./")).cloned()
    }
}

/// A project's dependencies and the texts they were read from.
#[derive(Debug, Default)]
pub struct ProjectDeps {
    /// Direct dependencies (lock versions filled in) then transitive ones.
    pub dependencies: Vec<Dependency>,
    pub findings: Vec<Finding>,
    /// File label → text, for SARIF regions and messages.
    pub texts: BTreeMap<String, String>,
}

impl ProjectDeps {
    pub fn direct_count(&self) -> usize {
        self.dependencies.iter().filter(|d| d.direct).count()
    }
}

/// Collapses `a/../b` and `./` so include labels match the source's names.
fn normalize_rel(p: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for seg in p.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            s => parts.push(s),
        }
    }
    parts.join("/")
}

/// Reads every manifest and lock file of the project from `source`.
pub fn discover(source: &dyn Source) -> ProjectDeps {
    let files = source.files();
    let mut out = ProjectDeps::default();
    let mut manifest = Manifest::default();

    if let Some(text) = source.read("pyproject.toml") {
        manifest.extend(parse_pyproject("pyproject.toml", &text));
        out.texts.insert("pyproject.toml".into(), text);
    }
    let texts = std::cell::RefCell::new(BTreeMap::new());
    let read = |label: &str| {
        let rel = normalize_rel(label);
        let text = source.read(&rel)?;
        texts.borrow_mut().insert(label.to_string(), text.clone());
        Some(text)
    };
    for f in files.iter().filter(|f| {
        let name = f.rsplit('/').next().unwrap_or(f);
        is_requirements_file(name) || (f.starts_with("requirements/") && f.ends_with(".txt"))
    }) {
        // A file already pulled in by another's `-r` is read there.
        if manifest
            .dependencies
            .iter()
            .any(|d| d.source.file == *f && d.scope != Scope::Requirements)
        {
            continue;
        }
        if let Some(text) = source.read(f) {
            let m = parse_requirements(f, &text, &read);
            out.texts.insert(f.clone(), text);
            manifest.extend(m);
        }
    }
    out.texts.extend(texts.into_inner());
    // A file included by another and also read on its own appears twice.
    let mut seen = std::collections::HashSet::new();
    manifest.dependencies.retain(|d| {
        seen.insert((
            d.source.file.clone(),
            d.source.span,
            d.scope.clone(),
            d.requirement.clone(),
        ))
    });

    let direct = manifest.dependencies;
    out.findings = manifest.findings;
    let mut deps = direct.clone();
    let mut locked_any = false;
    for lock in files.iter().filter(|f| is_lock_file(f)) {
        let Some(text) = source.read(lock) else {
            continue;
        };
        let parsed = if lock == "uv.lock" {
            parse_uv_lock(lock, &text)
        } else if lock == "poetry.lock" {
            parse_poetry_lock(lock, &text)
        } else {
            parse_pylock(lock, &text)
        };
        out.texts.insert(lock.clone(), text);
        match parsed {
            Ok(packages) => {
                let attributed = attribute(&direct, &packages);
                if !locked_any {
                    deps = attributed;
                    locked_any = true;
                } else {
                    for d in attributed.into_iter().filter(|d| !d.direct) {
                        if !deps.iter().any(|e| e.canonical == d.canonical) {
                            deps.push(d);
                        }
                    }
                }
            }
            Err(f) => out.findings.push(f),
        }
    }
    out.dependencies = deps;
    out
}

/// What to ask the daemon about one dependency; `None` when there is
/// nothing to judge (constraints and overrides install nothing).
pub fn eval_item(d: &Dependency) -> Option<EvalItem> {
    if !d.scope.installs() {
        return None;
    }
    if !d.direct {
        return Some(EvalItem {
            package: d.name.clone(),
            version: d.locked_version.clone(),
            requirement: None,
        });
    }
    Some(EvalItem {
        package: d.name.clone(),
        version: d.locked_version.clone(),
        // A direct URL cannot be judged as a specifier; the name still can.
        requirement: d.url.is_none().then(|| d.requirement.clone()),
    })
}

/// One dependency with its verdict.
#[derive(Debug, Clone)]
pub struct Checked {
    pub dependency: Dependency,
    /// `Err` when the server rejected this item (e.g. invalid name).
    pub verdict: Result<Verdict, String>,
}

/// Evaluates dependencies in one batch (identical items asked once). With
/// `fail_open`, an unreachable server gives synthetic ALLOWED verdicts.
pub fn evaluate(api: &Api, deps: &[Dependency], fail_open: bool) -> Result<Vec<Checked>, ApiError> {
    let mut items: Vec<EvalItem> = Vec::new();
    let mut index: HashMap<EvalItem, usize> = HashMap::new();
    let mut slots: Vec<Option<usize>> = Vec::with_capacity(deps.len());
    for d in deps {
        slots.push(eval_item(d).map(|item| {
            *index.entry(item.clone()).or_insert_with(|| {
                items.push(item);
                items.len() - 1
            })
        }));
    }
    let results = match api.evaluate_batch(&items) {
        Ok(r) => r,
        Err(e) if e.is_unreachable() && fail_open => items
            .iter()
            .map(|i| {
                Ok(Verdict::fail_open(
                    &i.package,
                    i.version.as_deref(),
                    e.class(),
                ))
            })
            .collect(),
        Err(e) => return Err(e),
    };
    Ok(deps
        .iter()
        .zip(slots)
        .filter_map(|(d, slot)| {
            slot.map(|i| Checked {
                dependency: d.clone(),
                verdict: results[i].clone(),
            })
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn governed_by_file_name() {
        for ok in [
            "pyproject.toml",
            "requirements.txt",
            "requirements-dev.txt",
            "dev-requirements.txt",
            "requirements.in",
        ] {
            assert!(is_governed_manifest(ok), "{ok}");
        }
        for no in ["pyproject.toml.bak", "setup.py", "README.md", "uv.lock"] {
            assert!(!is_governed_manifest(no), "{no}");
        }
        assert!(is_lock_file("pylock.dev.toml") && is_lock_file("uv.lock"));
    }

    #[test]
    fn normalizes_include_paths() {
        assert_eq!(normalize_rel("./requirements/../base.txt"), "base.txt");
        assert_eq!(
            normalize_rel("requirements/dev.txt"),
            "requirements/dev.txt"
        );
    }
}
