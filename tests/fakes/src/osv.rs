//! A fake OSV API serving a fixed set of records (usually the PyPA
//! snapshot): `POST /v1/query`, `POST /v1/querybatch`, `GET /v1/vulns/{id}`,
//! and the ecosystem export the OSV project publishes, `GET /PyPI/all.zip`
//! (one `<id>.json` per record).
//!
//! Like the real service, an empty result is `{}` (no `vulns` key), and a
//! version query also returns withdrawn records that match: filtering those
//! is the client's job.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use axum::extract::{Path as UrlPath, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use lex_align_engine::advisory::{affects, osv_yaml_to_json, OsvRecord};
use lex_align_engine::name::canonicalize;
use pep440_rs::Version;
use serde_json::{json, Value};

use crate::server::{gate, Control, Running};

/// Most queries the real service takes in one `querybatch`.
const MAX_BATCH: usize = 1000;

struct Stored {
    record: OsvRecord,
    /// The record as loaded, every field kept (references, published, …).
    raw: Value,
}

#[derive(Default)]
struct Db {
    records: Vec<Stored>,
    by_id: HashMap<String, usize>,
    /// Canonical PyPI package name → record indexes.
    by_package: HashMap<String, Vec<usize>>,
}

impl Db {
    fn insert(&mut self, record: OsvRecord, raw: Value) {
        if let Some(&old) = self.by_id.get(&record.id) {
            // Same id again: the newer copy replaces the old one in place.
            self.records[old] = Stored { record, raw };
            self.reindex();
            return;
        }
        let idx = self.records.len();
        self.by_id.insert(record.id.clone(), idx);
        for name in pypi_names(&record) {
            let list = self.by_package.entry(name).or_default();
            if !list.contains(&idx) {
                list.push(idx);
            }
        }
        self.records.push(Stored { record, raw });
    }

    fn reindex(&mut self) {
        let records = std::mem::take(&mut self.records);
        *self = Db::default();
        for s in records {
            self.insert(s.record, s.raw);
        }
    }

    /// Records of `canonical` that match `version` (all when `None`).
    fn query(&self, canonical: &str, version: Option<&str>) -> Vec<&Stored> {
        let Some(idxs) = self.by_package.get(canonical) else {
            return Vec::new();
        };
        let parsed = version.map(|v| Version::from_str(v.trim()));
        idxs.iter()
            .map(|&i| &self.records[i])
            .filter(|s| match (&parsed, version) {
                (None, _) => true,
                (Some(Ok(v)), _) => affects(&s.record, canonical, v),
                // Not PEP 440: only an explicit `versions` entry can match.
                (Some(Err(_)), Some(text)) => s.record.affected.iter().any(|a| {
                    a.package.as_ref().is_some_and(|p| {
                        p.ecosystem == "PyPI" && canonicalize(&p.name) == canonical
                    }) && a.versions.iter().any(|l| l.trim() == text.trim())
                }),
                (Some(Err(_)), None) => false,
            })
            .collect()
    }
}

fn pypi_names(record: &OsvRecord) -> Vec<String> {
    let mut names: Vec<String> = record
        .affected
        .iter()
        .filter_map(|a| a.package.as_ref())
        .filter(|p| p.ecosystem == "PyPI")
        .map(|p| canonicalize(&p.name))
        .collect();
    names.sort();
    names.dedup();
    names
}

struct OsvState {
    ctl: Arc<Control>,
    db: RwLock<Db>,
    /// Bumped on every change of `db`, so the export is rebuilt.
    generation: AtomicU64,
    /// The export zip of one generation.
    export: Mutex<Option<(u64, Arc<Vec<u8>>)>>,
    export_broken: AtomicBool,
}

/// Fake OSV API on 127.0.0.1; stops on drop.
pub struct FakeOsv {
    state: Arc<OsvState>,
    server: Running,
}

impl FakeOsv {
    /// Serves every OSV record (`*.yaml`, `*.yml`, `*.json`) found under
    /// `dir`, recursively. Panics with the offending file on a bad record.
    ///
    /// A directory is read and parsed once per process; later servers on the
    /// same directory start from that copy.
    pub fn start(dir: &Path) -> FakeOsv {
        let loaded = load_cached(dir).unwrap_or_else(|e| panic!("FakeOsv: {e}"));
        let mut db = Db::default();
        for (record, raw) in loaded.iter() {
            db.insert(record.clone(), raw.clone());
        }
        Self::serve(db)
    }

    /// Serves exactly `records` (e.g. a `MAL-` record or a critical score).
    pub fn with_records(records: Vec<OsvRecord>) -> FakeOsv {
        let mut db = Db::default();
        for r in records {
            let raw = serde_json::to_value(&r).expect("OsvRecord serialises");
            db.insert(r, raw);
        }
        Self::serve(db)
    }

    fn serve(db: Db) -> FakeOsv {
        let state = Arc::new(OsvState {
            ctl: Control::new((
                "application/json",
                r#"{"code":14,"message":"The service is currently unavailable."}"#,
            )),
            db: RwLock::new(db),
            generation: AtomicU64::new(0),
            export: Mutex::new(None),
            export_broken: AtomicBool::new(false),
        });
        let st = state.clone();
        let server = Running::start("osv", move |_base| {
            Router::new()
                .route("/v1/query", post(query))
                .route("/v1/querybatch", post(querybatch))
                .route("/v1/vulns/{id}", get(vuln))
                .route("/PyPI/all.zip", get(export))
                .fallback(not_found)
                .layer(axum::middleware::from_fn_with_state(st.ctl.clone(), gate))
                .with_state(st)
        });
        FakeOsv { state, server }
    }

    /// Base URL, e.g. `http://127.0.0.1:41234` (endpoints are under `/v1/`).
    pub fn url(&self) -> String {
        format!("http://{}", self.server.addr())
    }

    /// The `/v1/query` URL (the form the original server's `OSV_API_URL` takes).
    pub fn query_url(&self) -> String {
        format!("{}/v1/query", self.url())
    }

    /// The PyPI export zip (`GET /PyPI/all.zip`), as the OSV project's
    /// bucket serves it.
    pub fn export_url(&self) -> String {
        format!("{}/PyPI/all.zip", self.url())
    }

    /// On: the export URL answers 200 with a body that is not a zip.
    pub fn set_export_broken(&self, broken: bool) {
        self.state.export_broken.store(broken, Ordering::SeqCst);
    }

    /// Adds (or replaces, by id) a record while the server runs.
    pub fn add_record(&self, record: OsvRecord) {
        let raw = serde_json::to_value(&record).expect("OsvRecord serialises");
        self.state.db.write().unwrap().insert(record, raw);
        self.state.generation.fetch_add(1, Ordering::SeqCst);
    }

    /// Number of records served.
    pub fn record_count(&self) -> usize {
        self.state.db.read().unwrap().records.len()
    }

    /// Every record served for the PyPI package `name` (any spelling).
    pub fn records_for(&self, name: &str) -> Vec<OsvRecord> {
        let db = self.state.db.read().unwrap();
        db.query(&canonicalize(name), None)
            .into_iter()
            .map(|s| s.record.clone())
            .collect()
    }

    /// Delay applied to every request before it is answered.
    pub fn set_latency(&self, latency: Duration) {
        self.state.ctl.set_latency(latency);
    }

    /// While down, every request gets 503.
    pub fn set_down(&self, down: bool) {
        self.state.ctl.set_down(down);
    }

    /// Requests received (including those answered 503).
    pub fn requests(&self) -> u64 {
        self.state.ctl.total()
    }

    /// Requests received for one path, e.g. `/v1/querybatch`.
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

type Loaded = Arc<Vec<(OsvRecord, Value)>>;

fn load_cached(dir: &Path) -> Result<Loaded, String> {
    static CACHE: Mutex<Option<HashMap<PathBuf, Loaded>>> = Mutex::new(None);
    let key = dir
        .canonicalize()
        .map_err(|e| format!("cannot read {}: {e}", dir.display()))?;
    // Held while loading, so that parallel tests parse the directory once.
    let mut cache = CACHE.lock().unwrap_or_else(|p| p.into_inner());
    let cache = cache.get_or_insert_with(HashMap::new);
    if let Some(l) = cache.get(&key) {
        return Ok(l.clone());
    }
    let mut out = Vec::new();
    load_dir(&key, &mut out)?;
    if out.is_empty() {
        return Err(format!(
            "no OSV records (*.yaml, *.yml, *.json) under {}",
            dir.display()
        ));
    }
    let loaded = Arc::new(out);
    cache.insert(key, loaded.clone());
    Ok(loaded)
}

fn load_dir(dir: &Path, out: &mut Vec<(OsvRecord, Value)>) -> Result<(), String> {
    let entries =
        std::fs::read_dir(dir).map_err(|e| format!("cannot read {}: {e}", dir.display()))?;
    let mut paths: Vec<_> = entries
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()
        .map_err(|e| format!("cannot read {}: {e}", dir.display()))?;
    // Deterministic order, so the response order is stable between runs.
    paths.sort();
    for path in paths {
        if path.is_dir() {
            load_dir(&path, out)?;
            continue;
        }
        let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
        if !matches!(ext, "yaml" | "yml" | "json") {
            continue;
        }
        let text = std::fs::read_to_string(&path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let raw = if ext == "json" {
            serde_json::from_str::<Value>(&text).map_err(|e| e.to_string())
        } else {
            osv_yaml_to_json(&text)
        }
        .map_err(|e| format!("{}: {e}", path.display()))?;
        let record: OsvRecord = serde_json::from_value(raw.clone())
            .map_err(|e| format!("{}: not an OSV record: {e}", path.display()))?;
        out.push((record, raw));
    }
    Ok(())
}

fn osv_error(status: StatusCode, code: u32, message: &str) -> Response {
    (status, Json(json!({"code": code, "message": message}))).into_response()
}

async fn not_found() -> Response {
    osv_error(StatusCode::NOT_FOUND, 5, "Not Found")
}

/// One query's package: `{"package":{"name","ecosystem"}}` or a PyPI purl,
/// and the version (from `version` or the purl's `@…`).
fn parse_query(q: &Value) -> Result<Option<(String, Option<String>)>, &'static str> {
    let pkg = q
        .get("package")
        .ok_or("Invalid query: package is required.")?;
    let mut version = q.get("version").and_then(Value::as_str).map(str::to_owned);
    if q.get("commit").is_some() && version.is_some() {
        return Err("Invalid query: version and commit cannot both be given.");
    }
    if let Some(purl) = pkg.get("purl").and_then(Value::as_str) {
        let Some(rest) = purl.strip_prefix("pkg:pypi/") else {
            return Ok(None);
        };
        let (name, v) = match rest.split_once('@') {
            Some((n, v)) => (n, Some(v.to_owned())),
            None => (rest, None),
        };
        if v.is_some() {
            if version.is_some() {
                return Err("Invalid query: version is given twice.");
            }
            version = v;
        }
        return Ok(Some((canonicalize(name), version)));
    }
    let name = pkg
        .get("name")
        .and_then(Value::as_str)
        .filter(|n| !n.trim().is_empty())
        .ok_or("Invalid query: package name is required.")?;
    let ecosystem = pkg.get("ecosystem").and_then(Value::as_str).unwrap_or("");
    if ecosystem != "PyPI" {
        // Other ecosystems exist upstream; this fake only holds PyPI data.
        return Ok(None);
    }
    Ok(Some((canonicalize(name), version)))
}

async fn query(State(st): State<Arc<OsvState>>, body: axum::body::Bytes) -> Response {
    let Ok(q) = serde_json::from_slice::<Value>(&body) else {
        return osv_error(StatusCode::BAD_REQUEST, 3, "Invalid JSON body.");
    };
    let parsed = match parse_query(&q) {
        Ok(p) => p,
        Err(msg) => return osv_error(StatusCode::BAD_REQUEST, 3, msg),
    };
    let db = st.db.read().unwrap();
    let vulns: Vec<Value> = match &parsed {
        Some((name, version)) => db
            .query(name, version.as_deref())
            .into_iter()
            .map(|s| s.raw.clone())
            .collect(),
        None => Vec::new(),
    };
    if vulns.is_empty() {
        return Json(json!({})).into_response();
    }
    Json(json!({ "vulns": vulns })).into_response()
}

async fn querybatch(State(st): State<Arc<OsvState>>, body: axum::body::Bytes) -> Response {
    let Ok(q) = serde_json::from_slice::<Value>(&body) else {
        return osv_error(StatusCode::BAD_REQUEST, 3, "Invalid JSON body.");
    };
    let Some(queries) = q.get("queries").and_then(Value::as_array) else {
        return osv_error(
            StatusCode::BAD_REQUEST,
            3,
            "Invalid query: queries is required.",
        );
    };
    if queries.len() > MAX_BATCH {
        return osv_error(
            StatusCode::BAD_REQUEST,
            3,
            "Too many queries: at most 1000 per batch.",
        );
    }
    let db = st.db.read().unwrap();
    let mut results = Vec::with_capacity(queries.len());
    for one in queries {
        let parsed = match parse_query(one) {
            Ok(p) => p,
            Err(msg) => return osv_error(StatusCode::BAD_REQUEST, 3, msg),
        };
        let hits: Vec<Value> = match &parsed {
            Some((name, version)) => db
                .query(name, version.as_deref())
                .into_iter()
                .map(|s| json!({"id": s.record.id, "modified": s.record.modified}))
                .collect(),
            None => Vec::new(),
        };
        results.push(if hits.is_empty() {
            json!({})
        } else {
            json!({ "vulns": hits })
        });
    }
    Json(json!({ "results": results })).into_response()
}

async fn vuln(State(st): State<Arc<OsvState>>, UrlPath(id): UrlPath<String>) -> Response {
    let db = st.db.read().unwrap();
    match db.by_id.get(&id) {
        Some(&i) => Json(db.records[i].raw.clone()).into_response(),
        None => osv_error(StatusCode::NOT_FOUND, 5, "Bug not found."),
    }
}

/// The export: one `<id>.json` per record, deflated, built once per
/// generation of the records.
async fn export(State(st): State<Arc<OsvState>>) -> Response {
    if st.export_broken.load(Ordering::SeqCst) {
        return (
            [(header::CONTENT_TYPE, "application/zip")],
            "<html>this is not the export</html>",
        )
            .into_response();
    }
    let generation = st.generation.load(Ordering::SeqCst);
    let cached = st
        .export
        .lock()
        .unwrap()
        .as_ref()
        .filter(|(g, _)| *g == generation)
        .map(|(_, z)| z.clone());
    let zip = match cached {
        Some(z) => z,
        None => {
            let built = Arc::new(build_export(&st.db.read().unwrap()));
            *st.export.lock().unwrap() = Some((generation, built.clone()));
            built
        }
    };
    ([(header::CONTENT_TYPE, "application/zip")], zip.to_vec()).into_response()
}

fn build_export(db: &Db) -> Vec<u8> {
    let mut out = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated)
        .last_modified_time(zip::DateTime::default());
    for s in &db.records {
        out.start_file(format!("{}.json", s.record.id), options)
            .expect("zip entry starts");
        let text = serde_json::to_vec(&s.raw).expect("a JSON value serialises");
        out.write_all(&text).expect("zip entry is written");
    }
    out.finish().expect("zip is finished").into_inner()
}
