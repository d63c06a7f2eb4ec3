//! The plugin host: finds lex-align plugins (shared libraries of the C ABI
//! in `plugins/abi/lex_align_plugin.h`), loads them once and for good, and
//! calls them on threads of its own with a timeout, checking every answer.
//!
//! One bad library never stops the others: a library that cannot be
//! loaded, has the wrong ABI version, no entry symbol, a bad or duplicate
//! name, or a failing `configure` is reported ([`LibraryReport`]) and
//! skipped. Whether that is fatal (the selected authenticator) is the
//! caller's decision, through [`PluginHost::select`].
//!
//! This crate knows nothing of the daemon: it speaks the messages of
//! docs/plugins.md and leaves their meaning to its caller.

#![deny(unsafe_op_in_unsafe_fn)]

mod load;
mod messages;
mod pool;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use serde_json::Value;

pub use messages::{
    Answer, AuthCall, Op, PluginIdentity, PluginProposal, ProposalContext, ProposeCall,
    ProposedRule, MAX_ANSWER_BYTES,
};
pub use pool::{MAX_IN_FLIGHT, MAX_STUCK};

/// A plugin name: 1-64 characters of `[a-z0-9_-]`.
pub fn valid_plugin_name(name: &str) -> bool {
    lex_align_plugin_abi::valid_name(name) && name.len() <= load::MAX_NAME
}

/// `LEXALIGN_PLUGIN_TIMEOUT_MS` when unset.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_millis(2000);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Authenticator,
    Proposer,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Authenticator => "authenticator",
            Kind::Proposer => "proposer",
        }
    }
}

/// Why a call failed. The texts never carry a plugin's raw answer (which
/// may hold a credential), only what was wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallError {
    /// The plugin answered `{"error":{"status","detail"}}` (detail cleaned).
    #[error("{detail}")]
    Refused { status: u16, detail: String },
    #[error("did not answer within {} ms", .0.as_millis())]
    Timeout(Duration),
    /// The answer broke the contract (not UTF-8, not JSON, wrong shape).
    #[error("invalid answer: {0}")]
    Invalid(String),
    #[error("unhealthy: {stuck} calls are stuck past the timeout")]
    Unhealthy { stuck: usize },
    #[error("overloaded: {MAX_IN_FLIGHT} calls in flight")]
    Busy,
    #[error("{0}")]
    Internal(String),
}

/// The host's settings, from the environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostSettings {
    /// `LEXALIGN_PLUGIN_DIRS`, `:`-separated.
    pub dirs: Vec<PathBuf>,
    /// `LEXALIGN_PLUGIN_TIMEOUT_MS`.
    pub timeout: Duration,
}

impl Default for HostSettings {
    fn default() -> Self {
        HostSettings {
            dirs: Vec::new(),
            timeout: DEFAULT_TIMEOUT,
        }
    }
}

/// A bad setting: the variable and what to do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{variable}: {message}")]
pub struct SettingsError {
    pub variable: &'static str,
    pub message: String,
}

impl HostSettings {
    pub fn from_lookup(var: &impl Fn(&str) -> Option<String>) -> Result<Self, SettingsError> {
        let mut s = HostSettings::default();
        if let Some(dirs) = var("LEXALIGN_PLUGIN_DIRS") {
            s.dirs = std::env::split_paths(&dirs)
                .filter(|p| !p.as_os_str().is_empty())
                .collect();
        }
        if let Some(ms) = var("LEXALIGN_PLUGIN_TIMEOUT_MS") {
            match ms.trim().parse::<u64>() {
                Ok(n) if (1..=600_000).contains(&n) => s.timeout = Duration::from_millis(n),
                _ => {
                    return Err(SettingsError {
                        variable: "LEXALIGN_PLUGIN_TIMEOUT_MS",
                        message: format!(
                            "{ms:?} is not a number of milliseconds between 1 and 600000 (default 2000)"
                        ),
                    })
                }
            }
        }
        Ok(s)
    }

    pub fn from_env() -> Result<Self, SettingsError> {
        Self::from_lookup(&|k| std::env::var(k).ok())
    }
}

/// `ready`, or why not.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PluginState {
    Ready,
    /// Not loaded, or its configure failed; never called again.
    Failed,
    /// Loaded, but too many calls are stuck: calls fail fast for now.
    Unhealthy,
}

impl PluginState {
    pub fn as_str(self) -> &'static str {
        match self {
            PluginState::Ready => "ready",
            PluginState::Failed => "failed",
            PluginState::Unhealthy => "unhealthy",
        }
    }
}

/// One library found, as `lex-align plugins list` and health show it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LibraryReport {
    pub path: String,
    pub name: Option<String>,
    pub kind: Option<String>,
    pub abi: Option<u32>,
    pub state: PluginState,
    pub error: Option<String>,
}

/// A loaded, configured plugin; cheap to clone.
#[derive(Clone)]
pub struct PluginHandle {
    name: String,
    kind: Kind,
    pool: Arc<pool::Pool>,
}

impl std::fmt::Debug for PluginHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PluginHandle")
            .field("name", &self.name)
            .field("kind", &self.kind)
            .finish()
    }
}

impl PluginHandle {
    pub fn name(&self) -> &str {
        &self.name
    }
    pub fn kind(&self) -> Kind {
        self.kind
    }
    /// How long a caller waits for an answer before calling it failed.
    pub fn timeout(&self) -> Duration {
        self.pool.timeout()
    }
    /// Calls running past their deadline now.
    pub fn stuck(&self) -> usize {
        self.pool.stuck()
    }

    /// Starts `op` on the plugin's threads; `done` receives the checked
    /// answer there (it must not block). The caller stops waiting at
    /// [`PluginHandle::timeout`]: the call is then failed, and left to
    /// finish on its own. An `Err` here means the call never started.
    pub fn submit(
        &self,
        op: &Op,
        done: impl FnOnce(Result<Answer, CallError>) + Send + 'static,
    ) -> Result<(), CallError> {
        self.pool.submit(op, Box::new(done))
    }

    /// `op`, waiting for the answer at most the timeout (blocks the thread).
    pub fn call(&self, op: &Op) -> Result<Answer, CallError> {
        self.pool.call(op)
    }

    fn state(&self) -> (PluginState, Option<String>) {
        let stuck = self.pool.stuck();
        if stuck >= MAX_STUCK {
            (
                PluginState::Unhealthy,
                Some(CallError::Unhealthy { stuck }.to_string()),
            )
        } else {
            (PluginState::Ready, None)
        }
    }
}

enum Entry {
    Loaded {
        path: PathBuf,
        abi: u32,
        handle: PluginHandle,
    },
    Failed(LibraryReport),
}

/// Why [`PluginHost::select`] found no usable plugin.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SelectError {
    #[error("no plugin named {name:?} was found in LEXALIGN_PLUGIN_DIRS ({dirs}); found: {found}")]
    NotFound {
        name: String,
        dirs: String,
        found: String,
    },
    #[error("plugin {name:?} ({path}) failed to load: {error}")]
    Failed {
        name: String,
        path: String,
        error: String,
    },
    #[error("plugin {name:?} is a {found} plugin, not {wanted} plugin")]
    WrongKind {
        name: String,
        found: &'static str,
        /// "an authenticator" or "a proposer".
        wanted: &'static str,
    },
}

/// The loaded plugins of one process.
pub struct PluginHost {
    settings: HostSettings,
    entries: Vec<Entry>,
}

impl std::fmt::Debug for PluginHost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PluginHost")
            .field("settings", &self.settings)
            .field("libraries", &self.entries.len())
            .finish()
    }
}

/// The libraries of one directory, in name order (a stable load order, so
/// the first of two duplicates is always the same one).
fn libraries_in(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| {
            p.extension().and_then(|e| e.to_str()) == Some(std::env::consts::DLL_EXTENSION)
                && p.is_file()
        })
        .collect();
    out.sort();
    Ok(out)
}

/// `<dir>/<name>.json` beside the library, `{}` when there is none. Errors
/// never quote the file (it may hold a token).
fn read_config(lib: &Path, name: &str) -> Result<Value, String> {
    let path = lib
        .parent()
        .unwrap_or(Path::new("."))
        .join(format!("{name}.json"));
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Ok(Value::Object(Default::default()))
        }
        Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
    };
    match serde_json::from_str::<Value>(&text) {
        Ok(v @ Value::Object(_)) => Ok(v),
        Ok(_) => Err(format!("{} is not a JSON object", path.display())),
        Err(e) => Err(format!("{} is not valid JSON ({e})", path.display())),
    }
}

impl PluginHost {
    /// A host with no plugins.
    pub fn empty() -> PluginHost {
        PluginHost {
            settings: HostSettings::default(),
            entries: Vec::new(),
        }
    }

    /// Finds, loads and configures every library of `settings.dirs`. Never
    /// fails as a whole; each library's outcome is in [`PluginHost::report`].
    /// Blocks for up to the timeout per `configure`.
    pub fn load(settings: HostSettings) -> PluginHost {
        let mut entries: Vec<Entry> = Vec::new();
        for dir in &settings.dirs {
            let libs = match libraries_in(dir) {
                Ok(l) => l,
                Err(e) => {
                    entries.push(Entry::Failed(LibraryReport {
                        path: dir.display().to_string(),
                        name: None,
                        kind: None,
                        abi: None,
                        state: PluginState::Failed,
                        error: Some(format!("cannot read the plugin directory: {e}")),
                    }));
                    continue;
                }
            };
            for path in libs {
                let entry = Self::load_one(&path, &entries, settings.timeout);
                match &entry {
                    Entry::Loaded { handle, .. } => tracing::info!(
                        plugin = %handle.name, kind = handle.kind.as_str(), path = %path.display(),
                        "plugin ready"
                    ),
                    Entry::Failed(r) => tracing::warn!(
                        path = %r.path, name = r.name.as_deref().unwrap_or("?"),
                        error = r.error.as_deref().unwrap_or(""),
                        "plugin skipped"
                    ),
                }
                entries.push(entry);
            }
        }
        PluginHost { settings, entries }
    }

    fn load_one(path: &Path, before: &[Entry], timeout: Duration) -> Entry {
        let mut partial = load::Partial::default();
        let fail = |partial: load::Partial, error: String| {
            Entry::Failed(LibraryReport {
                path: path.display().to_string(),
                name: partial.name,
                kind: partial.kind,
                abi: partial.abi,
                state: PluginState::Failed,
                error: Some(error),
            })
        };
        let opened = match load::open(path, &mut partial) {
            Ok(o) => o,
            Err(e) => return fail(partial, e),
        };
        let taken = before.iter().find_map(|e| match e {
            Entry::Loaded {
                path: p, handle, ..
            } if handle.name == opened.name => Some(p.display().to_string()),
            Entry::Failed(r)
                if r.name.as_deref() == Some(opened.name.as_str()) && r.abi.is_some() =>
            {
                Some(r.path.clone())
            }
            _ => None,
        });
        if let Some(first) = taken {
            return fail(
                partial,
                format!("duplicate name {:?}: already used by {first}", opened.name),
            );
        }
        let config = match read_config(path, &opened.name) {
            Ok(c) => c,
            Err(e) => return fail(partial, e),
        };
        let handle = PluginHandle {
            name: opened.name.clone(),
            kind: opened.kind,
            pool: pool::Pool::new(opened.name, opened.native, timeout),
        };
        match handle.call(&Op::Configure(config)) {
            Ok(Answer::Configured) => Entry::Loaded {
                path: path.to_path_buf(),
                abi: lex_align_plugin_abi::LEX_ALIGN_ABI_VERSION,
                handle,
            },
            Ok(_) => fail(partial, "configure answered something else".into()),
            Err(CallError::Refused { status, detail }) => {
                fail(partial, format!("configure failed ({status}): {detail}"))
            }
            Err(e) => fail(partial, format!("configure failed: {e}")),
        }
    }

    pub fn settings(&self) -> &HostSettings {
        &self.settings
    }

    /// Every library found, in load order, with its state now.
    pub fn report(&self) -> Vec<LibraryReport> {
        self.entries
            .iter()
            .map(|e| match e {
                Entry::Failed(r) => r.clone(),
                Entry::Loaded { path, abi, handle } => {
                    let (state, error) = handle.state();
                    LibraryReport {
                        path: path.display().to_string(),
                        name: Some(handle.name.clone()),
                        kind: Some(handle.kind.as_str().into()),
                        abi: Some(*abi),
                        state,
                        error,
                    }
                }
            })
            .collect()
    }

    /// The ready plugin `name` of `kind`, or why there is none.
    pub fn select(&self, name: &str, kind: Kind) -> Result<PluginHandle, SelectError> {
        for e in &self.entries {
            match e {
                Entry::Loaded { handle, .. } if handle.name == name => {
                    if handle.kind != kind {
                        return Err(SelectError::WrongKind {
                            name: name.into(),
                            found: handle.kind.as_str(),
                            wanted: match kind {
                                Kind::Authenticator => "an authenticator",
                                Kind::Proposer => "a proposer",
                            },
                        });
                    }
                    return Ok(handle.clone());
                }
                Entry::Failed(r) if r.name.as_deref() == Some(name) => {
                    return Err(SelectError::Failed {
                        name: name.into(),
                        path: r.path.clone(),
                        error: r.error.clone().unwrap_or_default(),
                    })
                }
                _ => {}
            }
        }
        let found: Vec<String> = self
            .entries
            .iter()
            .filter_map(|e| match e {
                Entry::Loaded { handle, .. } => Some(handle.name.clone()),
                Entry::Failed(_) => None,
            })
            .collect();
        Err(SelectError::NotFound {
            name: name.into(),
            dirs: if self.settings.dirs.is_empty() {
                "unset".into()
            } else {
                std::env::join_paths(&self.settings.dirs)
                    .map(|p| p.to_string_lossy().into_owned())
                    .unwrap_or_default()
            },
            found: if found.is_empty() {
                "none ready".into()
            } else {
                found.join(", ")
            },
        })
    }
}
