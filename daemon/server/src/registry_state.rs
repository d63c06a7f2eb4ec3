//! The live registry and the single reload funnel (registry.md §7) shared by
//! every trigger: file watcher, poller, `POST /registry/reload`, the webhook
//! and the local_file proposer.
//!
//! Readers take an `Arc` snapshot lock-free (`arc-swap`); a reload parses and
//! validates off to the side and swaps in one store, so a broken file never
//! replaces a good one and in-flight evaluations keep the registry they began
//! with.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwap;
use axum::body::Bytes;
use lex_align_engine::registry::{Registry, RegistryError};
use lex_align_store::Store;
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::metrics::Metrics;

/// One registry generation.
pub struct LoadedRegistry {
    pub registry: Registry,
    /// SHA-256 of the file bytes; `None` for the built-in default.
    pub hash: Option<String>,
    /// False when running on the built-in default policy (health reports
    /// `registry_loaded: false`, as the original did without a file).
    pub from_file: bool,
    /// Pre-rendered `GET /api/v1/registry` body.
    pub api_body: Bytes,
}

impl LoadedRegistry {
    fn new(registry: Registry, hash: Option<String>, from_file: bool) -> LoadedRegistry {
        let api_body = Bytes::from(serde_json::to_vec(&registry.to_api_json()).unwrap_or_default());
        LoadedRegistry {
            registry,
            hash,
            from_file,
            api_body,
        }
    }
}

/// The `POST /registry/reload` 200 body (plus `changed`, additive).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ReloadOutcome {
    pub ok: bool,
    pub previous_version: Option<String>,
    pub new_version: String,
    pub package_count: usize,
    pub added_packages: usize,
    pub approved_requests: usize,
    pub detail: String,
    /// False when the file's content hash was unchanged (nothing swapped).
    pub changed: bool,
}

/// The last reload attempt, for health.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct LastReload {
    pub ok: bool,
    /// RFC 3339 UTC.
    pub at: String,
    /// `ok`, `unchanged` or the failure reason.
    pub detail: String,
    /// `startup`, `watch`, `poll`, `api`, `webhook`, `proposal`.
    pub trigger: String,
}

pub struct RegistryState {
    current: ArcSwap<LoadedRegistry>,
    path: Option<PathBuf>,
    store: Arc<Store>,
    metrics: Arc<Metrics>,
    /// Serialises reloads (two triggers firing together must not interleave
    /// their read-validate-swap-approve steps).
    reload_lock: tokio::sync::Mutex<()>,
    last: Mutex<LastReload>,
    /// Bumped on every swap; LSP sessions and others subscribe.
    generation: tokio::sync::watch::Sender<u64>,
}

/// How the file's bytes are parsed.
fn parse_registry(path: &Path, bytes: &[u8]) -> Result<Registry, RegistryError> {
    let text = std::str::from_utf8(bytes).map_err(|e| RegistryError {
        message: format!("YAML parse error: file is not UTF-8: {e}"),
        package: None,
        field: None,
        line: None,
    })?;
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .map(|e| e.to_ascii_lowercase());
    let json = match ext.as_deref() {
        Some("json") => true,
        Some("yml") | Some("yaml") => false,
        // Unknown extension: compiled JSON starts with `{`.
        _ => text.trim_start().starts_with('{'),
    };
    if json {
        Registry::from_json(text)
    } else {
        Registry::from_yaml(text)
    }
}

/// Parse errors (as opposed to validation errors) are reported as
/// `Failed reading …` like the original's YAML syntax errors.
fn is_parse_error(e: &RegistryError) -> bool {
    let m = &e.message;
    m.starts_with("invalid YAML")
        || m.starts_with("invalid JSON")
        || m.starts_with("YAML parse error")
}

pub fn content_hash(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

impl RegistryState {
    /// Boot load. A configured file that exists must parse and validate
    /// (the error names package, field and line); a configured path that does
    /// not exist yet, or none, runs on the built-in default policy.
    pub fn load(
        path: Option<PathBuf>,
        store: Arc<Store>,
        metrics: Arc<Metrics>,
    ) -> anyhow::Result<RegistryState> {
        let (loaded, detail) = match &path {
            Some(p) if p.exists() => {
                let bytes = std::fs::read(p)
                    .map_err(|e| anyhow::anyhow!("REGISTRY_PATH: cannot read {}: {e}", p.display()))?;
                let registry = parse_registry(p, &bytes).map_err(|e| {
                    anyhow::anyhow!(
                        "REGISTRY_PATH: {} is not a valid registry: {}; fix the file (or unset REGISTRY_PATH to run on the built-in policy)",
                        p.display(),
                        e.located()
                    )
                })?;
                (LoadedRegistry::new(registry, Some(content_hash(&bytes)), true), "ok".to_string())
            }
            Some(p) => (
                LoadedRegistry::new(Registry::builtin_default(), None, false),
                format!("REGISTRY_PATH {} does not exist; using the built-in policy until it is created", p.display()),
            ),
            None => (
                LoadedRegistry::new(Registry::builtin_default(), None, false),
                "REGISTRY_PATH is not configured; using the built-in policy".to_string(),
            ),
        };
        let ok = loaded.from_file || path.is_none();
        Ok(RegistryState {
            current: ArcSwap::from_pointee(loaded),
            path,
            store,
            metrics,
            reload_lock: tokio::sync::Mutex::new(()),
            last: Mutex::new(LastReload {
                ok,
                at: now_rfc3339(),
                detail,
                trigger: "startup".into(),
            }),
            generation: tokio::sync::watch::channel(0).0,
        })
    }

    /// The current generation (cheap; no lock).
    pub fn current(&self) -> Arc<LoadedRegistry> {
        self.current.load_full()
    }

    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    pub fn last_reload(&self) -> LastReload {
        self.last
            .lock()
            .map(|l| l.clone())
            .unwrap_or_else(|p| p.into_inner().clone())
    }

    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<u64> {
        self.generation.subscribe()
    }

    fn record(&self, trigger: &str, ok: bool, detail: &str) {
        let entry = LastReload {
            ok,
            at: now_rfc3339(),
            detail: detail.to_string(),
            trigger: trigger.to_string(),
        };
        match self.last.lock() {
            Ok(mut l) => *l = entry,
            Err(p) => *p.into_inner() = entry,
        }
    }

    /// The single reload funnel. `Err` carries the original's 409 detail.
    pub async fn reload(&self, trigger: &str) -> Result<ReloadOutcome, String> {
        let _guard = self.reload_lock.lock().await;
        let result = self.reload_locked().await;
        self.metrics.reload(result.is_ok());
        match &result {
            Ok(o) => self.record(trigger, true, if o.changed { "ok" } else { "unchanged" }),
            Err(detail) => {
                tracing::warn!(trigger, "registry reload failed: {detail}");
                self.record(trigger, false, detail)
            }
        }
        result
    }

    async fn reload_locked(&self) -> Result<ReloadOutcome, String> {
        let Some(path) = self.path.clone() else {
            return Err("REGISTRY_PATH is not configured; nothing to reload.".into());
        };
        let bytes = match tokio::fs::read(&path).await {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(format!("REGISTRY_PATH {} does not exist.", path.display()))
            }
            Err(e) => return Err(format!("Failed reading {}: {e}", path.display())),
        };
        let previous = self.current.load_full();
        let hash = content_hash(&bytes);
        if previous.hash.as_deref() == Some(hash.as_str()) {
            return Ok(ReloadOutcome {
                ok: true,
                previous_version: Some(previous.registry.version.clone()),
                new_version: previous.registry.version.clone(),
                package_count: previous.registry.packages.len(),
                added_packages: 0,
                approved_requests: 0,
                detail: "ok".into(),
                changed: false,
            });
        }
        let parse_path = path.clone();
        let parsed = tokio::task::spawn_blocking(move || parse_registry(&parse_path, &bytes))
            .await
            .map_err(|e| format!("Failed reading {}: {e}", path.display()))?;
        let registry = match parsed {
            Ok(r) => r,
            Err(e) if is_parse_error(&e) => {
                return Err(format!(
                    "Failed reading {}: {}",
                    path.display(),
                    e.located()
                ))
            }
            Err(e) => {
                return Err(format!(
                    "Validation failed; keeping previous registry: {}",
                    e.located()
                ))
            }
        };

        // With no file before, every key counts as added (the original had
        // no registry at all then).
        let added: Vec<String> = if previous.from_file {
            let old: BTreeSet<&String> = previous.registry.packages.keys().collect();
            registry
                .packages
                .keys()
                .filter(|k| !old.contains(k))
                .cloned()
                .collect()
        } else {
            registry.packages.keys().cloned().collect()
        };
        let outcome_base = (
            previous
                .from_file
                .then(|| previous.registry.version.clone()),
            registry.version.clone(),
            registry.packages.len(),
        );
        self.current
            .store(Arc::new(LoadedRegistry::new(registry, Some(hash), true)));
        self.generation.send_modify(|g| *g += 1);

        let approved = if added.is_empty() {
            0
        } else {
            match self
                .store
                .approve_pending_for(&added, "registry-reload")
                .await
            {
                Ok(n) => n,
                Err(e) => {
                    // The swap stands; the approvals are retried on no trigger,
                    // so say so loudly.
                    tracing::error!("registry reloaded but approving pending requests failed: {e}");
                    0
                }
            }
        };
        Ok(ReloadOutcome {
            ok: true,
            previous_version: outcome_base.0,
            new_version: outcome_base.1,
            package_count: outcome_base.2,
            added_packages: added.len(),
            approved_requests: approved,
            detail: "ok".into(),
            changed: true,
        })
    }

    /// Replaces the live registry with one received as JSON (a personal
    /// daemon following its team server, `team/follow.rs`): parsed and
    /// validated off to the side like a reload, swapped only when valid and
    /// different; `source` names the trigger in health's `last_reload`.
    pub async fn replace_from_json(&self, json: &[u8], source: &str) -> Result<bool, String> {
        let _guard = self.reload_lock.lock().await;
        let hash = content_hash(json);
        if self.current.load().hash.as_deref() == Some(hash.as_str()) {
            return Ok(false);
        }
        let text = std::str::from_utf8(json)
            .map_err(|e| format!("the registry is not UTF-8: {e}"))?
            .to_string();
        let parsed = tokio::task::spawn_blocking(move || Registry::from_json(&text))
            .await
            .map_err(|e| format!("parsing the registry failed: {e}"))?;
        let registry = match parsed {
            Ok(r) => r,
            Err(e) => {
                let detail = format!(
                    "Validation failed; keeping previous registry: {}",
                    e.located()
                );
                self.metrics.reload(false);
                self.record(source, false, &detail);
                return Err(detail);
            }
        };
        self.current
            .store(Arc::new(LoadedRegistry::new(registry, Some(hash), true)));
        self.generation.send_modify(|g| *g += 1);
        self.metrics.reload(true);
        self.record(source, true, "ok");
        Ok(true)
    }

    /// Hash of the file as it is on disk now (poller).
    fn disk_hash(&self) -> Option<String> {
        let path = self.path.as_ref()?;
        std::fs::read(path).ok().map(|b| content_hash(&b))
    }
}

/// Keeps the OS watcher alive; dropping it stops watching.
pub struct WatchGuard {
    _watcher: Option<notify::RecommendedWatcher>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for WatchGuard {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// Start the file watcher (parent directory, debounced) and the interval
/// poller. Both only trigger a reload; the funnel's content hash makes
/// spurious events no-ops.
pub fn start_triggers(
    state: Arc<RegistryState>,
    watch: bool,
    poll: Option<Duration>,
) -> WatchGuard {
    let mut guard = WatchGuard {
        _watcher: None,
        tasks: Vec::new(),
    };
    let Some(path) = state.path.clone() else {
        return guard;
    };

    if watch {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<()>();
        let file_name = path.file_name().map(|n| n.to_os_string());
        let dir = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."));
        let handler = move |res: notify::Result<notify::Event>| {
            if let Ok(ev) = res {
                let ours = ev
                    .paths
                    .iter()
                    .any(|p| p.file_name().map(|n| n.to_os_string()) == file_name);
                if ours && !ev.kind.is_access() {
                    let _ = tx.send(());
                }
            }
        };
        match notify::recommended_watcher(handler) {
            Ok(mut w) => {
                use notify::Watcher;
                match w.watch(&dir, notify::RecursiveMode::NonRecursive) {
                    Ok(()) => {
                        guard._watcher = Some(w);
                        let st = state.clone();
                        guard.tasks.push(tokio::spawn(async move {
                            while rx.recv().await.is_some() {
                                // Debounce: editors write in several steps.
                                tokio::time::sleep(Duration::from_millis(200)).await;
                                while rx.try_recv().is_ok() {}
                                let _ = st.reload("watch").await;
                            }
                        }));
                    }
                    Err(e) => {
                        tracing::warn!("cannot watch {}: {e}; relying on the poller", dir.display())
                    }
                }
            }
            Err(e) => tracing::warn!("file watching unavailable: {e}; relying on the poller"),
        }
    }

    if let Some(every) = poll {
        let st = state.clone();
        guard.tasks.push(tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            tick.tick().await;
            let mut last_failed: Option<String> = None;
            loop {
                tick.tick().await;
                let s = st.clone();
                let Ok(Some(hash)) = tokio::task::spawn_blocking(move || s.disk_hash()).await
                else {
                    continue;
                };
                let current = st.current();
                if current.hash.as_deref() == Some(hash.as_str())
                    || last_failed.as_deref() == Some(hash.as_str())
                {
                    continue;
                }
                last_failed = match st.reload("poll").await {
                    Ok(_) => None,
                    Err(_) => Some(hash),
                };
            }
        }));
    }
    guard
}
