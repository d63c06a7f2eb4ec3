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
pub fn serve(config: Config) -> u8 {
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return fail(format!("cannot start the async runtime: {e}")),
    };
    match rt.block_on(lex_align_daemon::serve(config)) {
        Ok(()) => 0,
        Err(e) => fail(format!("{e:#}")),
    }
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
