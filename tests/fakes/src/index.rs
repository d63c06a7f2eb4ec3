//! A fake Python package index serving the JSON API (`/pypi/{name}/json`,
//! `/pypi/{name}/{version}/json`, with each release's `vulnerabilities`),
//! the PEP 691 simple API (`/simple/…`, JSON or HTML by `Accept`), wheel
//! core metadata (`{file url}.metadata`, PEP 658/714) and the files
//! themselves: real wheels (zip with `*.dist-info/METADATA`) and sdists
//! (tar.gz with `PKG-INFO`).
//!
//! Projects come from `data/projects.json` (real-looking metadata of ~50
//! projects) and from [`FakeIndex::add_project`]. Switches turn parts off
//! the way real mirrors lack them: the whole JSON API
//! ([`FakeIndex::set_json_api`]), one version's JSON page
//! ([`FakeIndex::hide_release_json`]), the simple API's JSON form
//! ([`FakeIndex::set_simple_json`]) and the core-metadata files
//! ([`FakeIndex::set_core_metadata`]).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use axum::extract::{Path as UrlPath, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use lex_align_engine::name::canonicalize;
use pep440_rs::Version;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::server::{gate, Control, Running};

const FIXTURES: &str = include_str!("../data/projects.json");
const SIMPLE_JSON: &str = "application/vnd.pypi.simple.v1+json";
const SIMPLE_HTML: &str = "application/vnd.pypi.simple.v1+html";

/// One project as the fake index knows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FakeProject {
    /// Display name (`PyYAML`); URLs use its PEP 503 form.
    pub name: String,
    #[serde(default)]
    pub summary: Option<String>,
    pub releases: Vec<FakeRelease>,
}

/// One release and the license-bearing metadata of its files.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct FakeRelease {
    pub version: String,
    #[serde(default)]
    pub yanked: bool,
    #[serde(default)]
    pub yanked_reason: Option<String>,
    /// PEP 639 `License-Expression`.
    #[serde(default)]
    pub license_expression: Option<String>,
    /// Legacy `License` (short name or full text).
    #[serde(default)]
    pub license: Option<String>,
    #[serde(default)]
    pub classifiers: Vec<String>,
    #[serde(default)]
    pub requires_python: Option<String>,
    #[serde(default)]
    pub upload_time: Option<String>,
    /// File names; `None` = a pure-Python wheel and an sdist.
    #[serde(default)]
    pub files: Option<Vec<String>>,
    /// What the JSON API lists under `vulnerabilities` for this release.
    #[serde(default)]
    pub vulnerabilities: Vec<FakeVulnerability>,
}

/// One entry of the JSON API's `vulnerabilities` list (as the index serves
/// it: no severity, the fixed versions in `fixed_in`).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct FakeVulnerability {
    pub id: String,
    #[serde(default)]
    pub aliases: Vec<String>,
    #[serde(default)]
    pub summary: Option<String>,
    #[serde(default)]
    pub details: Option<String>,
    #[serde(default)]
    pub fixed_in: Vec<String>,
    /// Withdrawal time (RFC 3339) of a retracted advisory.
    #[serde(default)]
    pub withdrawn: Option<String>,
}

impl FakeVulnerability {
    pub fn new(id: impl Into<String>) -> FakeVulnerability {
        FakeVulnerability {
            id: id.into(),
            ..Default::default()
        }
    }

    pub fn alias(mut self, alias: impl Into<String>) -> FakeVulnerability {
        self.aliases.push(alias.into());
        self
    }

    pub fn summary(mut self, summary: impl Into<String>) -> FakeVulnerability {
        self.summary = Some(summary.into());
        self
    }

    pub fn fixed_in(mut self, version: impl Into<String>) -> FakeVulnerability {
        self.fixed_in.push(version.into());
        self
    }

    pub fn withdrawn(mut self, at: impl Into<String>) -> FakeVulnerability {
        self.withdrawn = Some(at.into());
        self
    }

    fn to_json(&self, base: &str) -> Value {
        json!({
            "aliases": self.aliases,
            "details": self.details.clone().unwrap_or_default(),
            "fixed_in": self.fixed_in,
            "id": self.id,
            "link": format!("{base}/vulnerability/{}", self.id),
            "source": "osv",
            "summary": self.summary,
            "withdrawn": self.withdrawn,
        })
    }
}

/// Which core-metadata markers the simple API puts on wheels, and whether
/// `{file}.metadata` is served at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CoreMetadata {
    /// Both `core-metadata` (PEP 714) and `data-dist-info-metadata` (PEP 658),
    /// as booleans.
    #[default]
    Both,
    /// Only PEP 714's `core-metadata` / `data-core-metadata`, with the
    /// file's hash as value.
    Pep714,
    /// Only PEP 658's `data-dist-info-metadata`, with the file's hash.
    Pep658,
    /// No marker, and `.metadata` answers 404.
    Off,
}

impl FakeProject {
    pub fn new(name: impl Into<String>) -> FakeProject {
        FakeProject {
            name: name.into(),
            summary: None,
            releases: Vec::new(),
        }
    }

    pub fn release(mut self, release: FakeRelease) -> FakeProject {
        self.releases.push(release);
        self
    }

    /// PEP 503 name.
    pub fn canonical_name(&self) -> String {
        canonicalize(&self.name)
    }

    /// The version the JSON API reports as `info.version`: the highest
    /// non-yanked final release, else the highest non-yanked, else the highest.
    pub fn latest(&self) -> Option<&FakeRelease> {
        let key = |r: &&FakeRelease| Version::from_str(&r.version).ok();
        let final_ok = self.releases.iter().filter(|r| {
            !r.yanked && Version::from_str(&r.version).is_ok_and(|v| !v.any_prerelease())
        });
        final_ok
            .max_by_key(key)
            .or_else(|| self.releases.iter().filter(|r| !r.yanked).max_by_key(key))
            .or_else(|| self.releases.iter().max_by_key(key))
    }

    /// Releases in PEP 440 order (unparseable versions last, by string).
    fn sorted_releases(&self) -> Vec<&FakeRelease> {
        let mut v: Vec<&FakeRelease> = self.releases.iter().collect();
        v.sort_by(
            |a, b| match (Version::from_str(&a.version), Version::from_str(&b.version)) {
                (Ok(x), Ok(y)) => x.cmp(&y),
                (Ok(_), Err(_)) => std::cmp::Ordering::Less,
                (Err(_), Ok(_)) => std::cmp::Ordering::Greater,
                (Err(_), Err(_)) => a.version.cmp(&b.version),
            },
        );
        v
    }

    fn find_release(&self, version: &str) -> Option<&FakeRelease> {
        self.releases
            .iter()
            .find(|r| r.version == version)
            .or_else(|| {
                let want = Version::from_str(version).ok()?;
                self.releases
                    .iter()
                    .find(|r| Version::from_str(&r.version).is_ok_and(|v| v == want))
            })
    }
}

impl FakeRelease {
    pub fn new(version: impl Into<String>) -> FakeRelease {
        FakeRelease {
            version: version.into(),
            ..Default::default()
        }
    }

    pub fn license_expression(mut self, expr: impl Into<String>) -> FakeRelease {
        self.license_expression = Some(expr.into());
        self
    }

    pub fn license(mut self, license: impl Into<String>) -> FakeRelease {
        self.license = Some(license.into());
        self
    }

    pub fn classifier(mut self, classifier: impl Into<String>) -> FakeRelease {
        self.classifiers.push(classifier.into());
        self
    }

    pub fn yanked(mut self, reason: Option<&str>) -> FakeRelease {
        self.yanked = true;
        self.yanked_reason = reason.map(str::to_owned);
        self
    }

    pub fn vulnerability(mut self, v: FakeVulnerability) -> FakeRelease {
        self.vulnerabilities.push(v);
        self
    }

    /// Only these files (e.g. just an sdist).
    pub fn files<S: Into<String>>(mut self, files: impl IntoIterator<Item = S>) -> FakeRelease {
        self.files = Some(files.into_iter().map(Into::into).collect());
        self
    }

    /// The release's files (wheel first).
    pub fn file_names(&self, project: &str) -> Vec<String> {
        if let Some(files) = &self.files {
            return files.clone();
        }
        let dist = canonicalize(project).replace('-', "_");
        vec![
            format!("{dist}-{}-py3-none-any.whl", self.version),
            format!("{dist}-{}.tar.gz", self.version),
        ]
    }

    /// The wheel's core metadata (RFC 822), as `{file}.metadata` serves it.
    pub fn metadata_text(&self, project: &str, summary: Option<&str>) -> String {
        // Metadata 2.4 introduced License-Expression.
        let mv = if self.license_expression.is_some() {
            "2.4"
        } else {
            "2.1"
        };
        let mut out = format!(
            "Metadata-Version: {mv}\nName: {project}\nVersion: {}\n",
            self.version
        );
        if let Some(s) = summary {
            out.push_str(&format!("Summary: {s}\n"));
        }
        if let Some(e) = &self.license_expression {
            out.push_str(&format!("License-Expression: {e}\n"));
        }
        if let Some(l) = &self.license {
            // Multi-line values continue on lines indented by 8 spaces, as
            // setuptools writes them.
            let folded = l.lines().collect::<Vec<_>>().join("\n        ");
            out.push_str(&format!("License: {folded}\n"));
        }
        for c in &self.classifiers {
            out.push_str(&format!("Classifier: {c}\n"));
        }
        if let Some(rp) = &self.requires_python {
            out.push_str(&format!("Requires-Python: {rp}\n"));
        }
        out
    }
}

/// The fixture projects of `data/projects.json`: project-level `license`,
/// `license_expression`, `classifiers` and `requires_python` are defaults
/// for releases that do not set their own.
pub fn fixture_projects() -> Vec<FakeProject> {
    #[derive(Deserialize)]
    struct RawProject {
        name: String,
        #[serde(default)]
        summary: Option<String>,
        #[serde(default)]
        license: Option<String>,
        #[serde(default)]
        license_expression: Option<String>,
        #[serde(default)]
        classifiers: Option<Vec<String>>,
        #[serde(default)]
        requires_python: Option<String>,
        releases: Vec<RawRelease>,
    }
    #[derive(Deserialize)]
    struct RawRelease {
        version: String,
        #[serde(default)]
        yanked: bool,
        #[serde(default)]
        yanked_reason: Option<String>,
        #[serde(default)]
        license: Option<String>,
        #[serde(default)]
        license_expression: Option<String>,
        #[serde(default)]
        classifiers: Option<Vec<String>>,
        #[serde(default)]
        requires_python: Option<String>,
        #[serde(default)]
        upload_time: Option<String>,
        #[serde(default)]
        files: Option<Vec<String>>,
    }
    #[derive(Deserialize)]
    struct Fixtures {
        projects: Vec<RawProject>,
    }
    let raw: Fixtures = serde_json::from_str(FIXTURES).expect("data/projects.json is valid");
    raw.projects
        .into_iter()
        .map(|p| FakeProject {
            releases: p
                .releases
                .into_iter()
                .map(|r| {
                    // A release that sets either license field owns both.
                    let own = r.license.is_some() || r.license_expression.is_some();
                    FakeRelease {
                        version: r.version,
                        yanked: r.yanked,
                        yanked_reason: r.yanked_reason,
                        license_expression: if own {
                            r.license_expression
                        } else {
                            p.license_expression.clone()
                        },
                        license: if own { r.license } else { p.license.clone() },
                        classifiers: r
                            .classifiers
                            .or_else(|| p.classifiers.clone())
                            .unwrap_or_default(),
                        requires_python: r.requires_python.or_else(|| p.requires_python.clone()),
                        upload_time: r.upload_time,
                        files: r.files,
                        vulnerabilities: Vec::new(),
                    }
                })
                .collect(),
            name: p.name,
            summary: p.summary,
        })
        .collect()
}

/// A distribution file's bytes, built once.
type Built = Arc<Vec<u8>>;

struct IndexState {
    ctl: Arc<Control>,
    base: String,
    projects: RwLock<HashMap<String, Arc<FakeProject>>>,
    /// Built distribution files, by (canonical project, file name).
    files: RwLock<HashMap<(String, String), Built>>,
    json_api: AtomicBool,
    simple_json: AtomicBool,
    core_metadata: AtomicU8,
    /// (canonical project, version) whose JSON page answers 404.
    hidden_release_json: RwLock<HashSet<(String, String)>>,
}

impl IndexState {
    fn core_metadata(&self) -> CoreMetadata {
        match self.core_metadata.load(Ordering::SeqCst) {
            1 => CoreMetadata::Pep714,
            2 => CoreMetadata::Pep658,
            3 => CoreMetadata::Off,
            _ => CoreMetadata::Both,
        }
    }

    fn forget_files(&self, canonical: &str) {
        self.files
            .write()
            .unwrap()
            .retain(|(project, _), _| project != canonical);
    }
}

/// Fake package index on 127.0.0.1; stops on drop.
pub struct FakeIndex {
    state: Arc<IndexState>,
    server: Running,
}

impl FakeIndex {
    /// Serves the fixture projects of `data/projects.json`.
    pub fn start() -> FakeIndex {
        Self::with_projects(fixture_projects())
    }

    /// Serves no project until [`FakeIndex::add_project`].
    pub fn empty() -> FakeIndex {
        Self::with_projects(Vec::new())
    }

    pub fn with_projects(projects: Vec<FakeProject>) -> FakeIndex {
        let ctl = Control::new(("text/plain; charset=utf-8", "Service Unavailable"));
        let mut slot: Option<Arc<IndexState>> = None;
        let server = Running::start("index", |base| {
            let map = projects
                .into_iter()
                .map(|p| (p.canonical_name(), Arc::new(p)))
                .collect();
            let st = Arc::new(IndexState {
                ctl: ctl.clone(),
                base,
                projects: RwLock::new(map),
                files: RwLock::new(HashMap::new()),
                json_api: AtomicBool::new(true),
                simple_json: AtomicBool::new(true),
                core_metadata: AtomicU8::new(0),
                hidden_release_json: RwLock::new(HashSet::new()),
            });
            slot = Some(st.clone());
            Router::new()
                .route("/pypi/{name}/json", get(project_json))
                .route("/pypi/{name}/{version}/json", get(release_json))
                .route("/simple/", get(simple_root))
                .route("/simple/{name}/", get(simple_project))
                .route("/simple/{name}", get(simple_no_slash))
                .route("/files/{project}/{filename}", get(file))
                .fallback(|| async { not_found() })
                .layer(axum::middleware::from_fn_with_state(ctl.clone(), gate))
                .with_state(st)
        });
        FakeIndex {
            state: slot.expect("router was built"),
            server,
        }
    }

    /// Base URL, e.g. `http://127.0.0.1:41234`.
    pub fn url(&self) -> String {
        format!("http://{}", self.server.addr())
    }

    /// JSON API root: `{json_url}/{name}/json`.
    pub fn json_url(&self) -> String {
        format!("{}/pypi", self.url())
    }

    /// PEP 691 simple index root: `{simple_url}/{name}/`.
    pub fn simple_url(&self) -> String {
        format!("{}/simple", self.url())
    }

    /// Adds a project, replacing one with the same canonical name.
    pub fn add_project(&self, project: FakeProject) {
        let canonical = project.canonical_name();
        let mut map = self.state.projects.write().unwrap();
        self.state.forget_files(&canonical);
        map.insert(canonical, Arc::new(project));
    }

    /// Removes a project (any spelling); true if it was there.
    pub fn remove_project(&self, name: &str) -> bool {
        let canonical = canonicalize(name);
        self.state.forget_files(&canonical);
        self.state
            .projects
            .write()
            .unwrap()
            .remove(&canonical)
            .is_some()
    }

    /// Off: every JSON API URL (`/pypi/…`) answers 404, as on a mirror
    /// that only has the simple API. On by default.
    pub fn set_json_api(&self, on: bool) {
        self.state.json_api.store(on, Ordering::SeqCst);
    }

    /// The JSON page of one version (`/pypi/{name}/{version}/json`) answers
    /// 404 while the project page still lists the release.
    pub fn hide_release_json(&self, name: &str, version: &str) {
        self.state
            .hidden_release_json
            .write()
            .unwrap()
            .insert((canonicalize(name), version.to_owned()));
    }

    /// Off: the simple API answers HTML (PEP 503) whatever the `Accept`
    /// header asks for. On by default.
    pub fn set_simple_json(&self, on: bool) {
        self.state.simple_json.store(on, Ordering::SeqCst);
    }

    /// Which core-metadata markers wheels get, and whether `.metadata`
    /// files are served ([`CoreMetadata::Both`] by default).
    pub fn set_core_metadata(&self, mode: CoreMetadata) {
        let v = match mode {
            CoreMetadata::Both => 0,
            CoreMetadata::Pep714 => 1,
            CoreMetadata::Pep658 => 2,
            CoreMetadata::Off => 3,
        };
        self.state.core_metadata.store(v, Ordering::SeqCst);
    }

    /// The project as served (any spelling of its name).
    pub fn project(&self, name: &str) -> Option<FakeProject> {
        let map = self.state.projects.read().unwrap();
        map.get(&canonicalize(name)).map(|p| (**p).clone())
    }

    /// Canonical names of every project served, sorted.
    pub fn project_names(&self) -> Vec<String> {
        let mut v: Vec<String> = self
            .state
            .projects
            .read()
            .unwrap()
            .keys()
            .cloned()
            .collect();
        v.sort();
        v
    }

    /// Delay applied to every request before it is answered.
    pub fn set_latency(&self, latency: Duration) {
        self.state.ctl.set_latency(latency);
    }

    /// While down, every request gets 503.
    pub fn set_down(&self, down: bool) {
        self.state.ctl.set_down(down);
    }

    /// Requests received (including redirects and 404/503 answers).
    pub fn requests(&self) -> u64 {
        self.state.ctl.total()
    }

    /// Requests received for one path, e.g. `/pypi/requests/json`.
    pub fn requests_to(&self, path: &str) -> u64 {
        self.state.ctl.count_for(path)
    }

    /// Requests per path.
    pub fn request_counts(&self) -> HashMap<String, u64> {
        self.state.ctl.counts()
    }

    pub fn reset_counters(&self) {
        self.state.ctl.reset();
    }
}

/// 301, as the index answers a non-canonical project URL.
fn moved(location: &str) -> Response {
    (
        StatusCode::MOVED_PERMANENTLY,
        [(header::LOCATION, location.to_owned())],
    )
        .into_response()
}

fn not_found() -> Response {
    (StatusCode::NOT_FOUND, Json(json!({"message": "Not Found"}))).into_response()
}

fn lookup(st: &IndexState, canonical: &str) -> Option<Arc<FakeProject>> {
    st.projects.read().unwrap().get(canonical).cloned()
}

fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

/// The file's bytes: a real wheel or sdist carrying the release's core
/// metadata (built once, then kept), so the listed digest is the real one.
fn file_content(st: &IndexState, p: &FakeProject, r: &FakeRelease, filename: &str) -> Arc<Vec<u8>> {
    let key = (p.canonical_name(), filename.to_owned());
    if let Some(bytes) = st.files.read().unwrap().get(&key) {
        return bytes.clone();
    }
    let metadata = r.metadata_text(&p.name, p.summary.as_deref());
    let bytes = Arc::new(crate::dist::build(filename, &metadata));
    st.files.write().unwrap().insert(key, bytes.clone());
    bytes
}

fn file_url(st: &IndexState, canonical: &str, filename: &str) -> String {
    format!("{}/files/{canonical}/{filename}", st.base)
}

fn iso_time(r: &FakeRelease) -> String {
    r.upload_time
        .clone()
        .unwrap_or_else(|| "2024-01-01T00:00:00".to_owned())
}

/// JSON API file entries of one release.
fn json_files(st: &IndexState, p: &FakeProject, r: &FakeRelease) -> Vec<Value> {
    let canonical = p.canonical_name();
    r.file_names(&p.name)
        .into_iter()
        .map(|f| {
            let content = file_content(st, p, r, &f);
            let wheel = f.ends_with(".whl");
            let time = iso_time(r);
            json!({
                "comment_text": "",
                "digests": {"sha256": sha256_hex(&content)},
                "downloads": -1,
                "filename": f,
                "has_sig": false,
                "packagetype": if wheel { "bdist_wheel" } else { "sdist" },
                "python_version": if wheel { "py3" } else { "source" },
                "requires_python": r.requires_python,
                "size": content.len(),
                "upload_time": time,
                "upload_time_iso_8601": format!("{time}.000000Z"),
                "url": file_url(st, &canonical, &f),
                "yanked": r.yanked,
                "yanked_reason": r.yanked_reason,
            })
        })
        .collect()
}

fn info(st: &IndexState, p: &FakeProject, r: &FakeRelease) -> Value {
    let canonical = p.canonical_name();
    json!({
        "author": null,
        "classifiers": r.classifiers,
        "description": p.summary.clone().unwrap_or_default(),
        "description_content_type": "text/markdown",
        "home_page": null,
        "license": r.license,
        "license_expression": r.license_expression,
        "name": p.name,
        "package_url": format!("{}/project/{canonical}/", st.base),
        "project_url": format!("{}/project/{canonical}/", st.base),
        "release_url": format!("{}/project/{canonical}/{}/", st.base, r.version),
        "requires_dist": null,
        "requires_python": r.requires_python,
        "summary": p.summary,
        "version": r.version,
        "yanked": r.yanked,
        "yanked_reason": r.yanked_reason,
    })
}

/// The canonical name, or the 301 to use when `name` is not its PEP 503 form.
fn canonical_redirect(st: &IndexState, name: &str, rest: &str) -> Result<String, Box<Response>> {
    let canonical = canonicalize(name);
    if canonical != name {
        return Err(Box::new(moved(&format!(
            "{}{}",
            st.base,
            rest.replace("{}", &canonical)
        ))));
    }
    Ok(canonical)
}

async fn project_json(
    State(st): State<Arc<IndexState>>,
    UrlPath(name): UrlPath<String>,
) -> Response {
    if !st.json_api.load(Ordering::SeqCst) {
        return not_found();
    }
    let canonical = match canonical_redirect(&st, &name, "/pypi/{}/json") {
        Ok(c) => c,
        Err(r) => return *r,
    };
    let Some(p) = lookup(&st, &canonical) else {
        return not_found();
    };
    let Some(latest) = p.latest() else {
        return not_found();
    };
    let releases: BTreeMap<String, Value> = p
        .sorted_releases()
        .into_iter()
        .map(|r| (r.version.clone(), Value::Array(json_files(&st, &p, r))))
        .collect();
    Json(json!({
        "info": info(&st, &p, latest),
        "last_serial": 1,
        "releases": releases,
        "urls": json_files(&st, &p, latest),
        "vulnerabilities": vulnerabilities(&st, latest),
    }))
    .into_response()
}

async fn release_json(
    State(st): State<Arc<IndexState>>,
    UrlPath((name, version)): UrlPath<(String, String)>,
) -> Response {
    if !st.json_api.load(Ordering::SeqCst) {
        return not_found();
    }
    let rest = format!("/pypi/{{}}/{version}/json");
    let canonical = match canonical_redirect(&st, &name, &rest) {
        Ok(c) => c,
        Err(r) => return *r,
    };
    let Some(p) = lookup(&st, &canonical) else {
        return not_found();
    };
    let Some(r) = p.find_release(&version) else {
        return not_found();
    };
    let hidden =
        st.hidden_release_json.read().unwrap().iter().any(|(n, v)| {
            *n == canonical && p.find_release(v).is_some_and(|h| h.version == r.version)
        });
    if hidden {
        return not_found();
    }
    // The per-version endpoint has no `releases` key (as upstream).
    Json(json!({
        "info": info(&st, &p, r),
        "last_serial": 1,
        "urls": json_files(&st, &p, r),
        "vulnerabilities": vulnerabilities(&st, r),
    }))
    .into_response()
}

fn vulnerabilities(st: &IndexState, r: &FakeRelease) -> Vec<Value> {
    r.vulnerabilities
        .iter()
        .map(|v| v.to_json(&st.base))
        .collect()
}

fn wants_json(st: &IndexState, headers: &HeaderMap) -> bool {
    st.simple_json.load(Ordering::SeqCst)
        && headers
            .get_all(header::ACCEPT)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .any(|v| v.contains(SIMPLE_JSON))
}

async fn simple_root(State(st): State<Arc<IndexState>>, headers: HeaderMap) -> Response {
    let names: Vec<String> = {
        let map = st.projects.read().unwrap();
        let mut v: Vec<String> = map.values().map(|p| p.name.clone()).collect();
        v.sort();
        v
    };
    if wants_json(&st, &headers) {
        let projects: Vec<Value> = names.iter().map(|n| json!({"name": n})).collect();
        let body = json!({"meta": {"api-version": "1.1"}, "projects": projects});
        return ([(header::CONTENT_TYPE, SIMPLE_JSON)], body.to_string()).into_response();
    }
    let mut html = String::from("<!DOCTYPE html>\n<html><head><meta name=\"pypi:repository-version\" content=\"1.1\"><title>Simple index</title></head><body>\n");
    for n in names {
        html.push_str(&format!(
            "<a href=\"/simple/{}/\">{n}</a>\n",
            canonicalize(&n)
        ));
    }
    html.push_str("</body></html>\n");
    ([(header::CONTENT_TYPE, SIMPLE_HTML)], html).into_response()
}

async fn simple_no_slash(
    State(st): State<Arc<IndexState>>,
    UrlPath(name): UrlPath<String>,
) -> Response {
    moved(&format!("{}/simple/{}/", st.base, canonicalize(&name)))
}

async fn simple_project(
    State(st): State<Arc<IndexState>>,
    UrlPath(name): UrlPath<String>,
    headers: HeaderMap,
) -> Response {
    let canonical = match canonical_redirect(&st, &name, "/simple/{}/") {
        Ok(c) => c,
        Err(r) => return *r,
    };
    let Some(p) = lookup(&st, &canonical) else {
        return not_found();
    };
    let releases = p.sorted_releases();
    let mode = st.core_metadata();
    let mut files = Vec::new();
    for r in &releases {
        for f in r.file_names(&p.name) {
            let content = file_content(&st, &p, r, &f);
            let wheel = f.ends_with(".whl");
            // PEP 691: `yanked` is false, true or the reason.
            let yanked = match (&r.yanked, &r.yanked_reason) {
                (false, _) => json!(false),
                (true, Some(reason)) if !reason.is_empty() => json!(reason),
                (true, _) => json!(true),
            };
            let mut file = json!({
                "filename": f,
                "url": file_url(&st, &canonical, &f),
                "hashes": {"sha256": sha256_hex(&content)},
                "requires-python": r.requires_python,
                "yanked": yanked,
                "size": content.len(),
                "upload-time": format!("{}.000000Z", iso_time(r)),
            });
            let meta_hash = || {
                let text = r.metadata_text(&p.name, p.summary.as_deref());
                json!({"sha256": sha256_hex(text.as_bytes())})
            };
            match mode {
                CoreMetadata::Both => {
                    file["core-metadata"] = json!(wheel);
                    file["data-dist-info-metadata"] = json!(wheel);
                }
                CoreMetadata::Pep714 if wheel => file["core-metadata"] = meta_hash(),
                CoreMetadata::Pep658 if wheel => file["data-dist-info-metadata"] = meta_hash(),
                _ => {}
            }
            files.push(file);
        }
    }
    let versions: Vec<&str> = releases.iter().map(|r| r.version.as_str()).collect();
    if wants_json(&st, &headers) {
        let body = json!({
            "meta": {"api-version": "1.1"},
            "name": canonical,
            "files": files,
            "versions": versions,
        });
        return (
            [
                (header::CONTENT_TYPE, SIMPLE_JSON),
                (header::VARY, "Accept"),
            ],
            body.to_string(),
        )
            .into_response();
    }
    let mut html = format!(
        "<!DOCTYPE html>\n<html><head><meta name=\"pypi:repository-version\" content=\"1.1\"><title>Links for {canonical}</title></head><body>\n<h1>Links for {canonical}</h1>\n"
    );
    for f in &files {
        let filename = f["filename"].as_str().unwrap_or_default();
        let url = f["url"].as_str().unwrap_or_default();
        let sha = f["hashes"]["sha256"].as_str().unwrap_or_default();
        let mut attrs = String::new();
        if let Some(rp) = f["requires-python"].as_str() {
            attrs.push_str(&format!(
                " data-requires-python=\"{}\"",
                rp.replace('<', "&lt;").replace('>', "&gt;")
            ));
        }
        match &f["yanked"] {
            Value::String(reason) => attrs.push_str(&format!(" data-yanked=\"{reason}\"")),
            Value::Bool(true) => attrs.push_str(" data-yanked=\"\""),
            _ => {}
        }
        let hash_attr = |v: &Value| match v["sha256"].as_str() {
            Some(h) => format!("sha256={h}"),
            None => "true".to_owned(),
        };
        match (f.get("core-metadata"), f.get("data-dist-info-metadata")) {
            (Some(Value::Bool(false)), _) | (None, None) => {}
            (Some(Value::Bool(true)), _) => {
                attrs.push_str(" data-core-metadata=\"true\" data-dist-info-metadata=\"true\"")
            }
            (Some(v), _) => attrs.push_str(&format!(" data-core-metadata=\"{}\"", hash_attr(v))),
            (None, Some(v)) => {
                attrs.push_str(&format!(" data-dist-info-metadata=\"{}\"", hash_attr(v)))
            }
        }
        html.push_str(&format!(
            "<a href=\"{url}#sha256={sha}\"{attrs}>{filename}</a><br />\n"
        ));
    }
    html.push_str("</body></html>\n");
    (
        [
            (header::CONTENT_TYPE, SIMPLE_HTML),
            (header::VARY, "Accept"),
        ],
        html,
    )
        .into_response()
}

async fn file(
    State(st): State<Arc<IndexState>>,
    UrlPath((project, filename)): UrlPath<(String, String)>,
) -> Response {
    let Some(p) = lookup(&st, &project) else {
        return not_found();
    };
    let (dist_file, metadata) = match filename.strip_suffix(".metadata") {
        Some(f) => (f, true),
        None => (filename.as_str(), false),
    };
    let Some(r) = p
        .releases
        .iter()
        .find(|r| r.file_names(&p.name).iter().any(|f| f == dist_file))
    else {
        return not_found();
    };
    if metadata {
        // Only wheels carry separately served core metadata.
        if !dist_file.ends_with(".whl") || st.core_metadata() == CoreMetadata::Off {
            return not_found();
        }
        let text = r.metadata_text(&p.name, p.summary.as_deref());
        return ([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], text).into_response();
    }
    (
        [(header::CONTENT_TYPE, "application/octet-stream")],
        file_content(&st, &p, r, dist_file).to_vec(),
    )
        .into_response()
}
