//! A real daemon for the `lex-align lsp` tests: the app on 127.0.0.1:0 with
//! a YAML registry, a SQLite file and the fake index / OSV servers (PyPA
//! snapshot), on its own runtime so a test can kill it mid-session.
#![allow(dead_code)]

use std::path::PathBuf;

use lex_align_daemon::{build_app, AppHandle, Config};
use lex_align_fakes::{pypa_snapshot_dir, FakeIndex, FakeOsv};
use lex_align_upstream::{IndexKind, IndexSetting};

pub struct Daemon {
    pub base: String,
    pub dir: tempfile::TempDir,
    pub registry_path: PathBuf,
    pub database: PathBuf,
    pub index: FakeIndex,
    pub osv: FakeOsv,
    handle: Option<AppHandle>,
    runtime: Option<tokio::runtime::Runtime>,
}

impl Daemon {
    /// Audit rows the LSP session wrote for `project` and `canonical`,
    /// read from the SQLite file once the daemon has filed its inbox.
    pub fn lsp_rows(&self, project: &str, canonical: &str) -> i64 {
        if let Some(h) = &self.handle {
            h.state.store.flush().unwrap();
        }
        rusqlite::Connection::open(&self.database)
            .unwrap()
            .query_row(
                "SELECT count(*) FROM audit_log WHERE source = 'lsp' AND project = ?1 AND canonical = ?2",
                [project, canonical],
                |r| r.get(0),
            )
            .unwrap()
    }

    pub fn start(registry_yaml: &str) -> Daemon {
        let dir = tempfile::tempdir().unwrap();
        let registry_path = dir.path().join("registry.yml");
        std::fs::write(&registry_path, registry_yaml).unwrap();
        let index = FakeIndex::start();
        let osv = FakeOsv::start(&pypa_snapshot_dir());
        let mut config = Config::new(dir.path().join("data"));
        config.registry_path = Some(registry_path.clone());
        config.index = Some(IndexSetting {
            url: index.json_url(),
            kind: IndexKind::Json,
            source: "test".into(),
        });
        config.osv_url = Some(osv.url());
        config.watch_registry = true;
        let database = config.database_path.clone();

        // Its own thread: tests calling this already run inside a runtime.
        let (runtime, base, handle) = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            let (base, handle) = runtime.block_on(async {
                let (router, handle) = build_app(config).await.expect("app builds");
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                let addr = listener.local_addr().unwrap();
                tokio::spawn(async move {
                    let _ = lex_align_daemon::serve_on(listener, router).await;
                });
                (format!("http://{addr}"), handle)
            });
            (runtime, base, handle)
        })
        .join()
        .expect("the daemon starts");
        Daemon {
            base,
            dir,
            registry_path,
            database,
            index,
            osv,
            handle: Some(handle),
            runtime: Some(runtime),
        }
    }

    /// The daemon dies: every task (listener and LSP sessions) is dropped
    /// and its sockets close, as when the process is killed.
    pub fn kill(&mut self) {
        drop(self.handle.take());
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.kill();
    }
}
