//! `daemon` / `serve`: run the HTTP API in the foreground.

use lex_align_daemon::Config;

use crate::fail;

pub fn run(host: Option<String>, port: Option<u16>, reload: bool) -> u8 {
    init_logging();
    if reload {
        tracing::info!(
            "--reload ignored: the daemon reloads registry.yml by itself when it changes"
        );
    }
    let mut config = match Config::from_env() {
        Ok(c) => c,
        Err(e) => return fail(format!("invalid configuration: {e}")),
    };
    if let Some(h) = host {
        config.bind_host = h;
    }
    if let Some(p) = port {
        config.bind_port = p;
    }
    serve(config)
}

/// Runs the daemon until Ctrl-C / SIGTERM; exit 1 when it cannot start.
pub fn serve(mut config: Config) -> u8 {
    use_pip_default_index(&mut config);
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if std::env::var_os("TOKIO_WORKER_THREADS").is_none() {
        builder.worker_threads(default_workers());
    }
    let rt = match builder.enable_all().build() {
        Ok(rt) => rt,
        Err(e) => return fail(format!("cannot start the async runtime: {e}")),
    };
    match rt.block_on(lex_align_daemon::serve(config)) {
        Ok(()) => 0,
        Err(e) => fail(format!("{e:#}")),
    }
}

/// Nothing configured: use the index the user's own pip installs from, so a
/// fresh machine gets existence, licence and advisory checks out of the box.
pub fn use_pip_default_index(config: &mut Config) {
    apply_default_index(config, &pip_default_index);
}

/// With no index configured, the daemon uses `default` (pip's default).
pub fn apply_default_index(config: &mut Config, default: &dyn Fn() -> Option<String>) {
    if config.index.is_some() {
        return;
    }
    if let Some(url) = default() {
        tracing::info!("package index: {url} (pip's default; set LEXALIGN_INDEX_URL to change)");
        config.index = Some(lex_align_upstream::discover::IndexSetting {
            kind: lex_align_upstream::IndexKind::Auto,
            url,
            source: "pip's built-in default index".to_owned(),
        });
    }
}

/// One worker per core but one: the daemon shares the machine with the
/// editors, agents and hooks it serves, and its audit writer and WAL
/// checkpointer run on threads of their own. On two cores this measured
/// better throughput and tail latency than two workers (tests/bench).
/// `TOKIO_WORKER_THREADS` overrides it.
fn default_workers() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get().saturating_sub(1).max(1))
        .unwrap_or(1)
}

/// The index URL the installed pip uses when nothing is configured. No
/// index host is written in this repository: we ask pip itself.
pub fn pip_default_index() -> Option<String> {
    let out = std::process::Command::new("python3")
        .args([
            "-c",
            "from pip._internal.models.index import PyPI; print(PyPI.simple_url)",
        ])
        .stderr(std::process::Stdio::null())
        .output()
        .ok()?;
    let url = String::from_utf8(out.stdout).ok()?.trim().to_owned();
    (out.status.success() && url.starts_with("http")).then_some(url)
}

pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // A second init (tests, embedding) is harmless.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}
