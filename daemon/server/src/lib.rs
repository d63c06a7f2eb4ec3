//! The lex-align daemon: ties the engine, the upstream clients and the store
//! together and serves the v1 HTTP API.

pub mod auth;
pub mod config;
pub mod cve_scan;
pub mod http;
pub mod lsp;
pub mod metrics;
pub mod overrides;
pub mod pages;
pub mod plugin_proposer;
pub mod proposer;
pub mod registry_state;
pub mod service;
pub mod signing;
pub mod team;

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use lex_align_store::Store;
use lex_align_upstream::{PersistentCache, Upstream, UpstreamConfig};

pub use config::{Config, ConfigError, ProposerChoice};

use crate::http::AppState;
use crate::metrics::Metrics;
use crate::registry_state::{RegistryState, WatchGuard};
use crate::service::Evaluator;

/// The upstream clients' second cache tier, in the SQLite file.
struct StoreCache(Arc<Store>);

impl PersistentCache for StoreCache {
    fn get(&self, key: &str) -> Option<Vec<u8>> {
        self.0.cache_get(key)
    }
    fn put(&self, key: &str, value: &[u8], ttl: Duration) {
        self.0.cache_put(key, value, ttl)
    }
}

/// What a running app holds besides its router: shared state and the
/// registry triggers (dropping the handle stops file watching and polling).
pub struct AppHandle {
    pub state: Arc<AppState>,
    _triggers: WatchGuard,
    _access_poll: AbortOnDrop,
    _checkpoints: Option<AbortOnDrop>,
    /// Reloads and re-syncs the synced advisory export, when it is the source.
    _advisory_export: Option<AbortOnDrop>,
    /// The background CVE re-scan, unless disabled.
    _cve_scan: Option<AbortOnDrop>,
    /// Team mode: the follower and the shipper of a personal daemon.
    pub team: team::TeamHandle,
}

/// Stops a background task when the app goes away.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// How often the daemon looks for key and override changes made by
/// `lex-align admin …` (a revocation takes effect within this).
pub const ACCESS_POLL: Duration = Duration::from_millis(250);

impl AppHandle {
    pub fn registry(&self) -> &Arc<RegistryState> {
        &self.state.registry
    }
    pub fn store(&self) -> &Arc<Store> {
        &self.state.store
    }
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.state.metrics
    }
    pub fn cve_scan(&self) -> &Arc<cve_scan::CveScanner> {
        &self.state.cve_scan
    }
}

/// The upstream clients' settings from the daemon's configuration.
pub fn upstream_config(config: &Config) -> UpstreamConfig {
    // No index host is built in: without one, index lookups say so.
    let mut u = UpstreamConfig::default_with(
        config
            .index
            .as_ref()
            .map(|i| i.url.clone())
            .unwrap_or_default(),
    );
    if let Some(i) = &config.index {
        u.index_kind = i.kind;
    }
    u.osv_url = config.osv_url.clone();
    u.offline_advisories = config.offline_advisories.clone();
    // Without an advisory API or offline source: the export synced into the
    // data directory once it exists, else the index's own lists.
    if config.osv_url.is_none() && config.offline_advisories.is_none() {
        u.advisory_export = Some(config.advisory_export_path());
    }
    u.export_url = config.advisory_export_url.clone();
    u.export_resync = config.advisory_sync_interval;
    u.index_advisories = true;
    u.timeout = config.outbound_timeout;
    u.release_ttl = config.license_cache_ttl;
    u.advisory_ttl = config.cve_cache_ttl;
    u
}

/// Build the router and state without binding (tests bind it themselves).
pub async fn build_app(config: Config) -> anyhow::Result<(axum::Router, AppHandle)> {
    build_app_serving(config, None).await
}

/// [`build_app`], serving only `routes` (when given) instead of the API,
/// behind the same middleware and team layers over the same state. The
/// bench's fixed-verdict baseline is built this way: the HTTP stack's
/// limit, without our evaluation path.
pub async fn build_app_serving(
    config: Config,
    routes: Option<axum::Router<http::Shared>>,
) -> anyhow::Result<(axum::Router, AppHandle)> {
    if let Some(parent) = config
        .database_path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
    {
        std::fs::create_dir_all(parent).with_context(|| {
            format!(
                "DATABASE_PATH: cannot create {}; point DATABASE_PATH (or LEXALIGN_DATA_DIR) at a writable directory",
                parent.display()
            )
        })?;
    }
    let options = lex_align_store::StoreOptions {
        synchronous: config.audit_sync,
        ..Default::default()
    };
    let store = Arc::new(
        Store::open_with(&config.database_path, options).with_context(|| {
            format!(
                "DATABASE_PATH: cannot open the audit database {}",
                config.database_path.display()
            )
        })?,
    );
    let metrics = Arc::new(Metrics::default());
    let registry = Arc::new(RegistryState::load(
        config.registry_path.clone(),
        store.clone(),
        metrics.clone(),
    )?);
    // Plugins first: the authenticator and proposer may be among them.
    // Loading runs each plugin's configure (blocking, bounded by the
    // plugin timeout), so off the async workers.
    let plugin_settings = config.plugins.clone();
    let plugins = Arc::new(
        tokio::task::spawn_blocking(move || {
            lex_align_plugin_host::PluginHost::load(plugin_settings)
        })
        .await
        .context("loading plugins")?,
    );
    let proposer: Arc<dyn proposer::Proposer> = match &config.proposer_plugin {
        Some(name) => {
            let handle = plugins
                .select(name, lex_align_plugin_host::Kind::Proposer)
                .map_err(|e| {
                    anyhow::anyhow!(
                        "REGISTRY_PROPOSER=plugin:{name}: {e}; run `lex-align plugins list` to see what was found"
                    )
                })?;
            Arc::new(plugin_proposer::PluginProposer::new(handle))
        }
        None => proposer::select(&config)?,
    };
    let reviews = proposer::review::ReviewQueue::start(proposer.clone(), store.clone());

    let cache: Arc<dyn PersistentCache> = Arc::new(StoreCache(store.clone()));
    // A personal daemon asks its team server's caches first (one upstream
    // fetch for the team), its own upstreams when the team is away.
    let peer: Option<Arc<dyn lex_align_upstream::peer::Peer>> = match &config.team.follow {
        Some(f) if f.share_upstream => Some(Arc::new(team::upstream::TeamPeer::new(
            f.clone(),
            config.evaluate_budget,
        )?)),
        _ => None,
    };
    let shared_upstream = peer.is_some();
    let upstream = Upstream::with_peer(upstream_config(&config), Some(cache), peer)
        .map_err(|e| anyhow::anyhow!("upstream configuration: {e}"))?;
    lex_align_engine::advisory::set_unscored_policy(config.unscored_advisories);
    let advisory_export = upstream.start_export_maintenance().map(AbortOnDrop);
    tracing::info!("advisories: {}", upstream.advisory_source().summary());
    if config.index.is_none() && !shared_upstream {
        tracing::warn!(
            "no package index configured: set LEXALIGN_INDEX_URL (or PYPI_API_URL, or a uv/pip index); \
             verdicts will carry upstream_error"
        );
    }

    let access_db = lex_align_store::AccessDb::open(&config.database_path).with_context(|| {
        format!(
            "DATABASE_PATH: cannot open the access tables of {}",
            config.database_path.display()
        )
    })?;
    let keys = Arc::new(auth::KeyRing::default());
    let overrides = Arc::new(overrides::OverrideBook::default());
    keys.refresh(&access_db)
        .context("cannot read the API keys")?;
    overrides
        .refresh(&access_db, true)
        .context("cannot read the overrides")?;
    // Fail closed: a backend that cannot be built stops the start.
    let access = auth::Access::build(&config.auth, keys, &plugins)?;
    if config.auth.enabled {
        tracing::info!(backend = %config.auth.backend.label(), "authentication on");
    }

    // Signed verdicts and audit checkpoints: made on first start.
    let signer =
        Arc::new(signing::DaemonKey::load_or_create(&config.data_dir).context("signing key")?);

    let cve_scan = Arc::new(cve_scan::CveScanner::new(
        store.clone(),
        Some(upstream.clone()),
        registry.clone(),
        config.cve_scan_interval_hours,
    ));
    let evaluator = Evaluator {
        registry: registry.clone(),
        upstream: Some(upstream),
        index_configured: config.index.is_some() || shared_upstream,
        store: store.clone(),
        fail: config.fail_policy,
        budget: config.evaluate_budget,
        metrics: metrics.clone(),
        overrides,
    };
    // A personal daemon takes its registry from the team, not a local file.
    let following = config.team.follow.is_some();
    let triggers = registry_state::start_triggers(
        registry.clone(),
        config.watch_registry && !following,
        config.reload_interval.filter(|_| !following),
    );
    let state = Arc::new(AppState {
        config,
        evaluator,
        registry,
        store,
        proposer,
        reviews,
        metrics,
        access,
        access_db,
        signer,
        plugins,
        cve_scan,
    });
    let poll = tokio::spawn({
        let state = Arc::downgrade(&state);
        async move {
            let mut tick = tokio::time::interval(ACCESS_POLL);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let Some(state) = state.upgrade() else { return };
                state.refresh_access(false).await;
            }
        }
    });
    let checkpoints = state.config.signing.checkpoint_interval.map(|every| {
        AbortOnDrop(signing::start_checkpoints(
            state.store.clone(),
            state.signer.clone(),
            state.config.data_dir.join(signing::CHECKPOINTS_FILE),
            every,
        ))
    });
    let cve_scan = state.cve_scan.start().map(AbortOnDrop);
    let team = team::start(&state).await?;
    let router = match routes {
        None => http::router_with(state.clone(), lsp::routes()),
        Some(routes) => http::stack(state.clone(), routes),
    }
    .layer(axum::middleware::from_fn_with_state(
        (state.clone(), team.state.clone()),
        team::status::annotate,
    ))
    .layer(axum::Extension(team.state.clone()));
    Ok((
        router,
        AppHandle {
            state,
            _triggers: triggers,
            _access_poll: AbortOnDrop(poll),
            _checkpoints: checkpoints,
            _advisory_export: advisory_export,
            _cve_scan: cve_scan,
            team,
        },
    ))
}

/// Bind, serve until SIGINT/SIGTERM, then let in-flight requests finish and
/// the audit writer flush.
pub async fn serve(config: Config) -> anyhow::Result<()> {
    config.check_exposure()?;
    let addr = config.bind_addr();
    let (router, handle) = build_app(config).await?;
    let listener = tokio::net::TcpListener::bind(&addr)
        .await
        .with_context(|| {
            format!("cannot listen on {addr}; set BIND_HOST/BIND_PORT to a free address")
        })?;
    let local = listener.local_addr()?;
    println!("lex-align daemon listening on http://{local}");
    serve_on(listener, router)
        .with_graceful_shutdown(shutdown_signal())
        .await?;
    // Every acknowledged row is already durable; this waits for the writer
    // to drain anything still queued.
    let store = handle.state.store.clone();
    if let Err(e) = tokio::task::spawn_blocking(move || store.flush()).await? {
        tracing::error!("audit writer flush failed: {e}");
    }
    drop(handle);
    Ok(())
}

/// Serves `router` on `listener` with each connection's peer address (the
/// header authenticator needs it). Tests use this too.
pub fn serve_on(
    listener: tokio::net::TcpListener,
    router: axum::Router,
) -> axum::serve::Serve<
    tokio::net::TcpListener,
    axum::extract::connect_info::IntoMakeServiceWithConnectInfo<axum::Router, std::net::SocketAddr>,
    axum::middleware::AddExtension<axum::Router, axum::extract::ConnectInfo<std::net::SocketAddr>>,
> {
    axum::serve(
        listener,
        router.into_make_service_with_connect_info::<std::net::SocketAddr>(),
    )
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}
