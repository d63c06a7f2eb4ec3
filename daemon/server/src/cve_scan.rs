//! The background CVE re-scan (`LEXALIGN_CVE_SCAN_INTERVAL_HOURS`).
//!
//! A version let in yesterday may have an advisory today. On a cadence the
//! daemon asks the advisory source again about every registry package and
//! every version the audit log shows allowed in the last
//! [`WINDOW_DAYS`] days, through the evaluator's upstream client (same
//! cache: the answers refresh it). An advisory that now affects such a
//! version, and that the allowing verdict did not already name, becomes an
//! alert-only `CVE_ALERT` row — once per (package, version, advisory): the
//! rows already in the log are the memory, so a restart does not repeat
//! them. A source that fails writes no row; the error is in health and
//! the next interval tries again.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use futures_util::stream::{self, StreamExt};
use lex_align_engine::advisory::assess;
use lex_align_engine::evaluate::AdvisoryFacts;
use lex_align_engine::registry::Status;
use lex_align_store::{AuditRow, ScanTarget, Store};
use lex_align_upstream::Upstream;
use serde::Serialize;
use serde_json::{json, Value};
use tokio::sync::broadcast;

use crate::registry_state::RegistryState;

/// How far back the audit log counts a version as in use.
pub const WINDOW_DAYS: i64 = 30;
/// The project scanner rows are written under (the original's; project
/// filtered reports therefore never count them as a project's activity).
pub const SCANNER_PROJECT: &str = "lex-align-server";
/// `requester` and `source` of scanner rows.
pub const SCANNER: &str = "scanner";
/// Names per batched advisory round: one round at a time, so a scan never
/// has more than the upstream client's concurrency limit in flight.
const CHUNK: usize = 100;
/// In-flight lookups when the index is the source (one per release).
const PER_RELEASE_CONCURRENCY: usize = 4;
/// The first scan, this long after start (or the interval, if shorter):
/// start is never held up, and the registry has loaded by then.
const FIRST_SCAN_AFTER: Duration = Duration::from_secs(30);

/// Open alerts listed in health (all are counted).
const MAX_LISTED: usize = 100;

/// What health and `status` show about the re-scan.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ScanStatus {
    pub enabled: bool,
    pub interval_hours: f64,
    /// Scans finished since start (successful or not).
    pub scans: u64,
    pub running: bool,
    pub last_scan_at: Option<String>,
    pub last_duration_ms: Option<u64>,
    /// Distinct packages whose advisories were checked in the last scan.
    pub packages_scanned: usize,
    /// Package versions matched against them.
    pub versions_scanned: usize,
    /// Alert rows the last scan wrote.
    pub new_alerts: usize,
    /// Why the last scan (or part of it) could not check; `None` when all
    /// of it did. The next interval tries again.
    pub last_error: Option<String>,
}

/// An alert still standing: the advisory affected the version at the last
/// scan (or, before the first scan after a start, an alert row says so).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OpenAlert {
    pub package: String,
    pub version: String,
    pub advisories: Vec<String>,
    pub max_cvss: Option<f64>,
    /// When the first alert row for this version was written.
    pub since: String,
}

pub struct CveScanner {
    store: Arc<Store>,
    upstream: Option<Upstream>,
    registry: Arc<RegistryState>,
    status: Mutex<ScanStatus>,
    /// Canonical name → its open alerts (one per version).
    open: RwLock<BTreeMap<String, Vec<OpenAlert>>>,
    /// Canonical names that got a new alert (editors re-judge).
    events: broadcast::Sender<String>,
    one_at_a_time: tokio::sync::Mutex<()>,
}

impl CveScanner {
    pub fn new(
        store: Arc<Store>,
        upstream: Option<Upstream>,
        registry: Arc<RegistryState>,
        interval_hours: f64,
    ) -> CveScanner {
        let scanner = CveScanner {
            store,
            upstream,
            registry,
            status: Mutex::new(ScanStatus {
                enabled: interval_hours > 0.0,
                interval_hours,
                ..ScanStatus::default()
            }),
            open: RwLock::new(BTreeMap::new()),
            events: broadcast::channel(64).0,
            one_at_a_time: tokio::sync::Mutex::new(()),
        };
        // Until the first scan, the log's alerts are the open ones.
        match scanner.store.cve_alert_records() {
            Ok(records) => {
                let mut open: BTreeMap<String, Vec<OpenAlert>> = BTreeMap::new();
                for r in records {
                    let version = r.version.unwrap_or_default();
                    let list = open.entry(r.canonical.clone()).or_default();
                    match list.iter_mut().find(|a| a.version == version) {
                        Some(a) => {
                            for id in r.cve_ids {
                                if !a.advisories.contains(&id) {
                                    a.advisories.push(id);
                                }
                            }
                            a.max_cvss = max_opt(a.max_cvss, r.max_cvss);
                            a.package = r.package;
                        }
                        None => list.push(OpenAlert {
                            package: r.package,
                            version,
                            advisories: r.cve_ids,
                            max_cvss: r.max_cvss,
                            since: r.ts,
                        }),
                    }
                }
                *scanner.open.write().unwrap_or_else(|p| p.into_inner()) = open;
            }
            Err(e) => tracing::warn!("CVE re-scan: cannot read earlier alerts: {e}"),
        }
        scanner
    }

    pub fn status(&self) -> ScanStatus {
        self.status
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Open alerts of one package (PEP 503 name); cheap, in memory.
    pub fn open_for(&self, canonical: &str) -> Vec<OpenAlert> {
        self.open
            .read()
            .unwrap()
            .get(canonical)
            .cloned()
            .unwrap_or_default()
    }

    pub fn open_alerts(&self) -> Vec<OpenAlert> {
        self.open
            .read()
            .unwrap()
            .values()
            .flatten()
            .cloned()
            .collect()
    }

    pub fn subscribe(&self) -> broadcast::Receiver<String> {
        self.events.subscribe()
    }

    /// Health's `cve_scan` section.
    pub fn health(&self) -> Value {
        let alerts = self.open_alerts();
        let mut v = serde_json::to_value(self.status()).unwrap_or(Value::Null);
        v["window_days"] = json!(WINDOW_DAYS);
        v["open_alerts"] = json!(alerts.len());
        // Bounded: the count is complete, the list is for reading.
        v["alerts"] = json!(alerts.iter().take(MAX_LISTED).collect::<Vec<_>>());
        v
    }

    /// Runs the cadence: the first scan shortly after start, then one per
    /// interval. `None` when the interval is 0 (disabled).
    pub fn start(self: &Arc<Self>) -> Option<tokio::task::JoinHandle<()>> {
        let hours = self.status().interval_hours;
        if hours <= 0.0 {
            tracing::info!("CVE re-scan disabled (LEXALIGN_CVE_SCAN_INTERVAL_HOURS=0)");
            return None;
        }
        let every = Duration::from_secs_f64(hours * 3600.0).max(Duration::from_millis(10));
        let scanner = Arc::downgrade(self);
        Some(tokio::spawn(async move {
            tokio::time::sleep(every.min(FIRST_SCAN_AFTER)).await;
            loop {
                let Some(s) = scanner.upgrade() else { return };
                s.scan_now().await;
                drop(s);
                tokio::time::sleep(every).await;
            }
        }))
    }

    /// One full scan; returns the status after it.
    pub async fn scan_now(&self) -> ScanStatus {
        let _one = self.one_at_a_time.lock().await;
        self.status
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .running = true;
        let started = Instant::now();
        let outcome = self.scan().await;
        let mut st = self.status.lock().unwrap_or_else(|p| p.into_inner());
        st.running = false;
        st.scans += 1;
        st.last_scan_at = Some(now_rfc3339());
        st.last_duration_ms = Some(started.elapsed().as_millis() as u64);
        match outcome {
            Ok(o) => {
                st.packages_scanned = o.packages;
                st.versions_scanned = o.versions;
                st.new_alerts = o.new_alerts;
                st.last_error = o.error;
            }
            Err(e) => {
                st.packages_scanned = 0;
                st.versions_scanned = 0;
                st.new_alerts = 0;
                st.last_error = Some(e);
            }
        }
        if let Some(e) = &st.last_error {
            tracing::warn!("CVE re-scan: {e}; retried at the next interval");
        } else {
            tracing::info!(
                packages = st.packages_scanned,
                versions = st.versions_scanned,
                new_alerts = st.new_alerts,
                "CVE re-scan done"
            );
        }
        st.clone()
    }

    async fn scan(&self) -> Result<Outcome, String> {
        let Some(upstream) = self.upstream.clone() else {
            return Err("no upstream client".into());
        };
        let store = self.store.clone();
        let (targets, alerted) = tokio::task::spawn_blocking(move || {
            let targets = store.cve_scan_targets(WINDOW_DAYS)?;
            let alerted: HashSet<(String, String, String)> = store
                .cve_alert_records()?
                .into_iter()
                .flat_map(|r| {
                    let version = r.version.unwrap_or_default();
                    r.cve_ids
                        .into_iter()
                        .map(move |id| (r.canonical.clone(), version.clone(), id))
                })
                .collect();
            Ok::<_, lex_align_store::StoreError>((targets, alerted))
        })
        .await
        .map_err(|e| format!("reading the audit log: {e}"))?
        .map_err(|e| format!("reading the audit log: {e}"))?;

        let loaded = self.registry.current();
        let statuses: HashMap<String, Status> = loaded
            .registry
            .packages
            .iter()
            .map(|(name, rule)| (name.clone(), rule.status))
            .collect();

        // (canonical, version) → facts.
        let mut facts: HashMap<(String, String), AdvisoryFacts> = HashMap::new();
        let mut packages: HashSet<String> = HashSet::new();
        let mut failures: Vec<(String, String)> = Vec::new();
        if upstream.advisories_per_release() {
            // The index lists advisories per release: only versions in use
            // can be asked about.
            let answers: Vec<(ScanTarget, AdvisoryFacts)> = stream::iter(targets.iter().cloned())
                .map(|t| {
                    let up = upstream.clone();
                    async move {
                        let f = up.release_advisories(&t.canonical, &t.version).await;
                        (t, f)
                    }
                })
                .buffer_unordered(PER_RELEASE_CONCURRENCY)
                .collect()
                .await;
            for (t, f) in answers {
                facts.insert((t.canonical.clone(), t.version.clone()), f);
            }
        } else {
            // Banned packages are denied whatever their advisories say.
            let mut names: Vec<String> = statuses
                .iter()
                .filter(|(_, s)| **s != Status::Banned)
                .map(|(n, _)| n.clone())
                .chain(targets.iter().map(|t| t.canonical.clone()))
                .collect();
            names.sort();
            names.dedup();
            let mut by_name: HashMap<String, AdvisoryFacts> = HashMap::new();
            for chunk in names.chunks(CHUNK) {
                by_name.extend(upstream.advisories_batch_fresh(chunk).await);
            }
            for (name, f) in &by_name {
                match f {
                    AdvisoryFacts::Found(_) => {
                        packages.insert(name.clone());
                    }
                    other => failures.push((name.clone(), facts_error(other))),
                }
            }
            for t in &targets {
                if let Some(f) = by_name.get(&t.canonical) {
                    facts.insert((t.canonical.clone(), t.version.clone()), f.clone());
                }
            }
        }

        let mut rows: Vec<AuditRow> = Vec::new();
        let mut new_open: BTreeMap<String, Vec<OpenAlert>> = BTreeMap::new();
        let mut failed_names: HashSet<String> = failures.iter().map(|f| f.0.clone()).collect();
        let mut versions = 0;
        for t in &targets {
            let key = (t.canonical.clone(), t.version.clone());
            let records = match facts.get(&key) {
                Some(AdvisoryFacts::Found(r)) => r,
                Some(other) => {
                    if failed_names.insert(t.canonical.clone()) {
                        failures.push((t.canonical.clone(), facts_error(other)));
                    }
                    continue;
                }
                None => continue,
            };
            packages.insert(t.canonical.clone());
            versions += 1;
            let hits = assess(records, &t.canonical, &t.version);
            let was_alerted =
                |id: &String| alerted.contains(&(key.0.clone(), key.1.clone(), id.clone()));
            // News: not alerted before, and not named by the verdicts that
            // let the version in (the policy weighed those already).
            let fresh: Vec<_> = hits
                .iter()
                .filter(|h| !was_alerted(&h.id))
                .filter(|h| {
                    !std::iter::once(&h.id)
                        .chain(&h.aliases)
                        .any(|id| t.known_ids.contains(id))
                })
                .collect();
            // Open: every alerted advisory that still affects the version.
            let open: Vec<_> = hits
                .iter()
                .filter(|h| was_alerted(&h.id) || fresh.iter().any(|f| f.id == h.id))
                .collect();
            if open.is_empty() {
                continue;
            }
            let previous = self.open_for(&t.canonical);
            new_open
                .entry(t.canonical.clone())
                .or_default()
                .push(OpenAlert {
                    package: t.package.clone(),
                    version: t.version.clone(),
                    advisories: open.iter().map(|h| h.id.clone()).collect(),
                    max_cvss: open.iter().filter_map(|h| h.score).reduce(f64::max),
                    since: previous
                        .iter()
                        .find(|a| a.version == t.version)
                        .map(|a| a.since.clone())
                        .unwrap_or_else(now_rfc3339),
                });
            if fresh.is_empty() {
                continue;
            }
            let detail: Vec<String> = fresh
                .iter()
                .map(|h| {
                    let mut s = h.id.clone();
                    let mut extra = Vec::new();
                    if let Some(c) = h.score {
                        extra.push(format!("CVSS {c}"));
                    }
                    if let Some(f) = &h.fixed_version {
                        extra.push(format!("fixed in {f}"));
                    }
                    if !extra.is_empty() {
                        s.push_str(&format!(" ({})", extra.join(", ")));
                    }
                    s
                })
                .collect();
            rows.push(AuditRow {
                project: SCANNER_PROJECT.into(),
                requester: SCANNER.into(),
                package: t.package.clone(),
                canonical: t.canonical.clone(),
                version: Some(t.version.clone()),
                requirement: None,
                resolved_version: Some(t.version.clone()),
                verdict: "CVE_ALERT".into(),
                denial_category: "cve_alert".into(),
                reason: Some(format!(
                    "New advisory for {} {}, allowed in the last {WINDOW_DAYS} days: {}.",
                    t.package,
                    t.version,
                    detail.join("; ")
                )),
                license: None,
                cve_ids: fresh.iter().map(|h| h.id.clone()).collect(),
                max_cvss: fresh.iter().filter_map(|h| h.score).reduce(f64::max),
                registry_status: statuses.get(&t.canonical).map(|s| s.as_str().to_string()),
                agent_model: None,
                agent_version: None,
                source: SCANNER.into(),
                auth_method: None,
            });
        }
        let new_alerts = rows.len();
        let alerted_names: Vec<String> = rows.iter().map(|r| r.canonical.clone()).collect();
        if !rows.is_empty() {
            // One batch through the writer: a short transaction.
            self.store
                .append_audit_batch(rows)
                .await
                .map_err(|e| format!("writing alert rows: {e}"))?;
        }
        {
            // A package that could not be checked keeps its alerts.
            let mut open = self.open.write().unwrap_or_else(|p| p.into_inner());
            for name in &failed_names {
                if let Some(prev) = open.remove(name) {
                    new_open.insert(name.clone(), prev);
                }
            }
            *open = new_open;
        }
        for name in alerted_names {
            let _ = self.events.send(name);
        }
        let error = (!failures.is_empty()).then(|| {
            failures.sort();
            format!(
                "{} of {} packages could not be checked: {}",
                failures.len(),
                packages.len() + failures.len(),
                failures[0].1
            )
        });
        Ok(Outcome {
            packages: packages.len(),
            versions,
            new_alerts,
            error,
        })
    }
}

struct Outcome {
    packages: usize,
    versions: usize,
    new_alerts: usize,
    error: Option<String>,
}

fn facts_error(f: &AdvisoryFacts) -> String {
    match f {
        AdvisoryFacts::Unavailable(e) => e.clone(),
        AdvisoryFacts::Found(_) => String::new(),
    }
}

fn max_opt(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(x), Some(y)) => Some(x.max(y)),
        (x, None) => x,
        (None, y) => y,
    }
}

fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}
