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

/// The git index (what the next commit will contain). The index file is
/// read directly to find the staged dependency files and their blob ids (no
/// `git ls-files` process). A working-tree file whose content hashes to the
/// staged blob id is read from disk; only the others come from one `git
/// cat-file --batch`, so git is usually not started at all.
/// Layouts the direct reader does not handle (split or sparse index,
/// `GIT_WORK_TREE`) fall back to `git ls-files --stage`.
pub struct GitIndexSource {
    files: BTreeMap<String, String>,
}

/// A staged file the project reads: path relative to the project root, blob id.
type Wanted = Vec<(String, String)>;

/// Would `discover` read this root-relative path?
fn wanted_path(path: &str) -> bool {
    let depth_ok = !path.contains('/')
        || (path.starts_with("requirements/") && path.matches('/').count() == 1);
    let name = path.rsplit('/').next().unwrap_or(path);
    depth_ok
        && (is_governed_manifest(name) || is_lock_file(name) || path.starts_with("requirements/"))
}

impl GitIndexSource {
    /// `None` when `root` is not inside a git work tree.
    pub fn load(root: &Path) -> Option<GitIndexSource> {
        let wanted = match read_index_direct(root) {
            Some(w) => w,
            None => ls_files(root)?,
        };
        let mut files = BTreeMap::new();
        // Usually the staged file is the working-tree file: same blob id.
        let mut from_git: Wanted = Vec::new();
        for (path, oid) in wanted {
            match std::fs::read(root.join(&path)) {
                Ok(bytes) if blob_id(&bytes, oid.len()).as_deref() == Some(oid.as_str()) => {
                    files.insert(path, String::from_utf8_lossy(&bytes).into_owned());
                }
                _ => from_git.push((path, oid)),
            }
        }
        if !from_git.is_empty() {
            cat_blobs(root, &from_git, &mut files)?;
        }
        Some(GitIndexSource { files })
    }
}

/// The git object id of a blob with this content (hex, SHA-1 or SHA-256
/// by the length of the ids the index uses).
fn blob_id(content: &[u8], hex_len: usize) -> Option<String> {
    use sha2::Digest as _;
    let header = format!("blob {}\0", content.len());
    let hex = |d: &[u8]| d.iter().map(|b| format!("{b:02x}")).collect::<String>();
    match hex_len {
        40 => {
            let mut h = sha1::Sha1::new();
            h.update(header.as_bytes());
            h.update(content);
            Some(hex(&h.finalize()))
        }
        64 => {
            let mut h = sha2::Sha256::new();
            h.update(header.as_bytes());
            h.update(content);
            Some(hex(&h.finalize()))
        }
        _ => None,
    }
}

/// Reads blobs with one `git cat-file --batch`.
fn cat_blobs(root: &Path, wanted: &Wanted, files: &mut BTreeMap<String, String>) -> Option<()> {
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
    for (_, blob) in wanted {
        input.push_str(blob);
        input.push('\n');
    }
    let mut stdin = child.stdin.take()?;
    let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()));
    let out = child.wait_with_output().ok()?;
    let _ = writer.join();
    // `<blob> blob <size>\n<content>\n` per request.
    let mut rest = &out.stdout[..];
    for (path, _) in wanted {
        let nl = rest.iter().position(|b| *b == b'\n')?;
        let header = String::from_utf8_lossy(&rest[..nl]).to_string();
        rest = &rest[nl + 1..];
        let size: usize = header.rsplit(' ').next()?.parse().ok()?;
        let content = rest.get(..size)?;
        files.insert(path.clone(), String::from_utf8_lossy(content).into_owned());
        rest = rest.get(size + 1..).unwrap_or_default();
    }
    Some(())
}

/// `git ls-files --stage` of `root`: the wanted stage-0 entries.
fn ls_files(root: &Path) -> Option<Wanted> {
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
    // `<mode> <blob> <stage>\t<path>`; only stage 0 (merged) entries.
    let mut wanted = Vec::new();
    for rec in out.stdout.split(|b| *b == 0).filter(|r| !r.is_empty()) {
        let rec = String::from_utf8_lossy(rec);
        let Some((meta, path)) = rec.split_once('\t') else {
            continue;
        };
        let mut parts = meta.split(' ');
        let (_mode, blob, stage) = (parts.next(), parts.next(), parts.next());
        if stage == Some("0") && wanted_path(path) {
            wanted.push((path.to_string(), blob.unwrap_or_default().to_string()));
        }
    }
    Some(wanted)
}

/// The wanted entries straight from the index file; `None` when this
/// layout is better left to git itself.
fn read_index_direct(root: &Path) -> Option<Wanted> {
    if std::env::var_os("GIT_WORK_TREE").is_some() {
        return None;
    }
    // The work tree top: the nearest directory with a `.git` entry.
    let (top, dot_git) = root
        .ancestors()
        .map(|d| (d, d.join(".git")))
        .find(|(_, g)| g.symlink_metadata().is_ok())?;
    let env_index = std::env::var_os("GIT_INDEX_FILE");
    let index = match &env_index {
        // Set by git for hooks (a temporary index for `commit -a` / `commit
        // <path>`); relative to the working directory, as git reads it.
        Some(f) => PathBuf::from(f),
        None => {
            let git_dir = match std::env::var_os("GIT_DIR") {
                Some(d) => PathBuf::from(d),
                None if dot_git.is_dir() => dot_git,
                None => {
                    // A linked work tree or submodule: `gitdir: <path>`.
                    let text = std::fs::read_to_string(&dot_git).ok()?;
                    let rel = text.strip_prefix("gitdir:")?.trim();
                    top.join(rel)
                }
            };
            git_dir.join("index")
        }
    };
    let prefix = root.strip_prefix(top).ok()?.to_str()?.replace('\\', "/");
    let data = match std::fs::read(&index) {
        Ok(d) => d,
        // A repository with nothing staged yet has no index file (but a
        // named index that is missing is for git to judge).
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && env_index.is_none() => {
            return Some(Vec::new())
        }
        Err(_) => return None,
    };
    let entries = parse_index(&data)?;
    let mut wanted = Vec::new();
    for e in entries {
        let rel = if prefix.is_empty() {
            e.path.as_str()
        } else {
            match e
                .path
                .strip_prefix(prefix.as_str())
                .and_then(|r| r.strip_prefix('/'))
            {
                Some(r) => r,
                None => continue,
            }
        };
        if e.stage == 0 && wanted_path(rel) {
            wanted.push((rel.to_string(), e.oid));
        }
    }
    Some(wanted)
}

#[derive(Debug, PartialEq)]
struct IndexEntry {
    path: String,
    /// Hex object id.
    oid: String,
    stage: u8,
}

/// Parses a git index file (versions 2–4, SHA-1 or SHA-256 ids). `None` for
/// anything it does not fully understand: a split index (`link`), sparse
/// directory entries, or data that does not parse end to end.
fn parse_index(data: &[u8]) -> Option<Vec<IndexEntry>> {
    if data.len() < 12 || &data[..4] != b"DIRC" {
        return None;
    }
    let be32 = |b: &[u8]| u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
    let version = be32(&data[4..8]);
    if !(2..=4).contains(&version) {
        return None;
    }
    let count = be32(&data[8..12]) as usize;
    // The id size is not in the file: the one whose parse ends exactly at
    // the extensions and trailing checksum is the right one.
    [20usize, 32]
        .into_iter()
        .find_map(|hash_len| parse_entries(data, version, count, hash_len))
}

fn parse_entries(
    data: &[u8],
    version: u32,
    count: usize,
    hash_len: usize,
) -> Option<Vec<IndexEntry>> {
    const STAT: usize = 40; // ctime, mtime, dev, ino, mode, uid, gid, size
    let end = data.len().checked_sub(hash_len)?;
    let mut pos = 12;
    let mut entries = Vec::with_capacity(count);
    let mut prev: Vec<u8> = Vec::new();
    for _ in 0..count {
        let start = pos;
        let head = data.get(pos..pos + STAT + hash_len + 2)?;
        let mode = u32::from_be_bytes(head[24..28].try_into().ok()?);
        let kind = mode & 0o170000;
        if kind == 0o040000 {
            return None; // sparse directory entry
        }
        let oid = &head[STAT..STAT + hash_len];
        let flags = u16::from_be_bytes([head[STAT + hash_len], head[STAT + hash_len + 1]]);
        pos += head.len();
        if flags & 0x4000 != 0 {
            if version < 3 {
                return None;
            }
            pos += 2;
        }
        let stage = ((flags >> 12) & 3) as u8;
        let path: Vec<u8> = if version == 4 {
            // Prefix compression: drop N bytes of the previous path, append the rest.
            let (strip, used) = read_offset_varint(data.get(pos..end)?)?;
            pos += used;
            let nul = data.get(pos..end)?.iter().position(|b| *b == 0)?;
            let keep = prev.len().checked_sub(strip)?;
            let mut p = prev[..keep].to_vec();
            p.extend_from_slice(&data[pos..pos + nul]);
            pos += nul + 1;
            p
        } else {
            let nul = data.get(pos..end)?.iter().position(|b| *b == 0)?;
            let name_len = (flags & 0x0fff) as usize;
            if name_len != 0x0fff && name_len != nul {
                return None;
            }
            let p = data[pos..pos + nul].to_vec();
            // Entries are NUL-padded to a multiple of 8 bytes.
            let len = pos + nul - start;
            pos = start + (len + 8) / 8 * 8;
            if pos > end || data[start + len..pos].iter().any(|b| *b != 0) {
                return None;
            }
            p
        };
        // A submodule (gitlink) names a commit, not a file to read.
        if kind != 0o160000 {
            entries.push(IndexEntry {
                path: String::from_utf8(path.clone()).ok()?,
                oid: oid.iter().map(|b| format!("{b:02x}")).collect(),
                stage,
            });
        }
        prev = path;
    }
    // Extensions (`<4-byte signature><be32 size><data>`) up to the checksum.
    while pos < end {
        let sig = data.get(pos..pos + 4)?;
        let size = u32::from_be_bytes(data.get(pos + 4..pos + 8)?.try_into().ok()?) as usize;
        if !sig[0].is_ascii_uppercase() {
            // A required extension (`link`: split index, `sdir`: sparse):
            // entries live elsewhere.
            return None;
        }
        pos = pos.checked_add(8 + size)?;
    }
    (pos == end).then_some(entries)
}

/// The index v4 varint ("offset encoding": each continuation adds one).
fn read_offset_varint(b: &[u8]) -> Option<(usize, usize)> {
    let mut i = 0;
    let mut c = *b.first()?;
    let mut val = (c & 0x7f) as usize;
    while c & 0x80 != 0 {
        i += 1;
        c = *b.get(i)?;
        val = val.checked_add(1)?.checked_mul(128)? | (c & 0x7f) as usize;
    }
    Some((val, i + 1))
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

    fn git(dir: &Path, args: &[&str]) -> String {
        let out = Command::new("git")
            .args(args)
            .current_dir(dir)
            .env_remove("GIT_INDEX_FILE")
            .env_remove("GIT_DIR")
            .output()
            .unwrap();
        assert!(out.status.success(), "git {args:?}: {out:?}");
        String::from_utf8(out.stdout).unwrap()
    }

    /// Every stage-0 entry as `git ls-files --stage` sees it: (path, blob).
    fn ls_stage(dir: &Path) -> Vec<(String, String)> {
        git(dir, &["ls-files", "--stage", "-z"])
            .split('\0')
            .filter(|r| !r.is_empty())
            .map(|r| {
                let (meta, path) = r.split_once('\t').unwrap();
                (
                    path.to_string(),
                    meta.split(' ').nth(1).unwrap().to_string(),
                )
            })
            .collect()
    }

    fn parsed(dir: &Path) -> Vec<(String, String)> {
        let data = std::fs::read(dir.join(".git/index")).unwrap();
        parse_index(&data)
            .expect("index parses")
            .into_iter()
            .map(|e| (e.path, e.oid))
            .collect()
    }

    #[test]
    fn index_reader_agrees_with_git_in_every_version() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        git(root, &["init", "-q"]);
        std::fs::create_dir_all(root.join("requirements")).unwrap();
        std::fs::create_dir_all(root.join("services/api")).unwrap();
        let files = [
            ("pyproject.toml", "[project]\nname = \"x\"\n"),
            ("requirements.txt", "httpx\n"),
            ("requirements/dev.txt", "pytest\n"),
            ("services/api/pyproject.toml", "[project]\nname = \"api\"\n"),
            ("services/api/uv.lock", "version = 1\n"),
            ("README.md", "hello\n"),
            (
                "a-rather-long-directory-name/with/a/deep/path/file.txt",
                "x",
            ),
        ];
        for (path, text) in files {
            let p = root.join(path);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, text).unwrap();
        }
        git(root, &["add", "."]);
        // An intent-to-add entry uses the extended flags (index version 3).
        std::fs::write(root.join("requirements-later.txt"), "six\n").unwrap();
        git(root, &["add", "-N", "requirements-later.txt"]);
        let version = |dir: &Path| {
            let d = std::fs::read(dir.join(".git/index")).unwrap();
            u32::from_be_bytes(d[4..8].try_into().unwrap())
        };
        for v in ["2", "3", "4"] {
            if v == "2" {
                // Version 2 cannot hold the intent-to-add entry.
                git(root, &["rm", "-q", "--cached", "requirements-later.txt"]);
            } else {
                git(root, &["add", "-N", "requirements-later.txt"]);
            }
            git(root, &["update-index", "--index-version", v]);
            assert_eq!(version(root).to_string(), v);
            let want = ls_stage(root);
            assert!(want.len() >= 7, "{want:?}");
            assert_eq!(parsed(root), want, "index version {v}");
        }
    }

    #[test]
    fn staged_files_from_the_index_in_a_subproject() {
        let dir = tempfile::tempdir().unwrap();
        let top = dir.path();
        git(top, &["init", "-q"]);
        let root = top.join("services/api");
        std::fs::create_dir_all(root.join("requirements")).unwrap();
        std::fs::write(root.join("pyproject.toml"), "staged\n").unwrap();
        std::fs::write(root.join("requirements/dev.txt"), "pytest\n").unwrap();
        std::fs::write(root.join("notes.txt"), "not a manifest\n").unwrap();
        std::fs::write(top.join("pyproject.toml"), "the top project\n").unwrap();
        git(top, &["add", "."]);
        // The working tree moves on; the index keeps what is staged.
        std::fs::write(root.join("pyproject.toml"), "edited\n").unwrap();

        let wanted = read_index_direct(&root).expect("direct read");
        let paths: Vec<&str> = wanted.iter().map(|(p, _)| p.as_str()).collect();
        assert_eq!(paths, ["pyproject.toml", "requirements/dev.txt"]);
        assert_eq!(
            wanted,
            ls_files(&root).unwrap(),
            "same answer as git ls-files"
        );
        let src = GitIndexSource::load(&root).unwrap();
        assert_eq!(src.read("pyproject.toml").as_deref(), Some("staged\n"));
        assert_eq!(
            src.read("requirements/dev.txt").as_deref(),
            Some("pytest\n")
        );
        assert_eq!(src.read("notes.txt"), None);
    }

    #[test]
    fn blob_ids_match_git() {
        let dir = tempfile::tempdir().unwrap();
        for text in ["", "httpx>=0.27\n", "caf\u{e9} \r\n no newline"] {
            let f = dir.path().join("f");
            std::fs::write(&f, text).unwrap();
            let want = git(dir.path(), &["hash-object", "f"]);
            assert_eq!(blob_id(text.as_bytes(), 40).unwrap(), want.trim());
        }
        assert_eq!(
            blob_id(b"", 64).unwrap(),
            "473a0f4c3be8a93681a267e3b1e9a7dcda1185436fe141f7749120a303721813"
        );
    }

    #[test]
    fn offset_varint() {
        assert_eq!(read_offset_varint(&[0x05]), Some((5, 1)));
        // Two bytes: ((0x01 + 1) << 7) + 0x00.
        assert_eq!(read_offset_varint(&[0x81, 0x00]), Some((256, 2)));
        assert_eq!(read_offset_varint(&[0x80]), None);
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
