//! Test harness: the real app on 127.0.0.1:0 with a real SQLite file, a
//! YAML registry in a temp dir and the fake index / OSV servers.
#![allow(dead_code)]

use std::path::PathBuf;
use std::time::Duration;

use lex_align_daemon::{build_app, AppHandle, Config};
use lex_align_fakes::{pypa_snapshot_dir, FakeIndex, FakeOsv};
use lex_align_upstream::{IndexKind, IndexSetting};
use serde_json::Value;

pub const SECRET: &str = "webhook-test-secret";

pub const REGISTRY_YAML: &str = lex_align_fakes::fixtures::REGISTRY_YAML;

pub struct TestServer {
    pub base: String,
    pub client: reqwest::Client,
    pub dir: tempfile::TempDir,
    pub registry_path: PathBuf,
    pub handle: AppHandle,
    pub index: FakeIndex,
    pub osv: FakeOsv,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The last word on a test daemon's configuration.
pub type Tweak = Box<dyn FnOnce(&mut Config) + Send>;

pub struct Options {
    pub registry: Option<&'static str>,
    pub webhook_secret: Option<&'static str>,
    pub watch: bool,
    pub poll: Option<Duration>,
    pub budget: Option<Duration>,
    pub fail_closed: bool,
    /// Last word on the configuration (auth settings, limits, …).
    pub tweak: Option<Tweak>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            registry: Some(REGISTRY_YAML),
            webhook_secret: Some(SECRET),
            watch: false,
            poll: None,
            budget: None,
            fail_closed: false,
            tweak: None,
        }
    }
}

pub async fn start() -> TestServer {
    start_with(Options::default()).await
}

pub async fn start_with(opts: Options) -> TestServer {
    let dir = tempfile::tempdir().unwrap();
    let registry_path = dir.path().join("registry.yml");
    if let Some(text) = opts.registry {
        std::fs::write(&registry_path, text).unwrap();
    }
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
    config.webhook_secret = opts.webhook_secret.map(str::to_string);
    config.watch_registry = opts.watch;
    config.reload_interval = opts.poll;
    if let Some(b) = opts.budget {
        config.evaluate_budget = b;
    }
    if opts.fail_closed {
        config.fail_policy = lex_align_engine::evaluate::FailPolicy::Closed;
    }

    if let Some(tweak) = opts.tweak {
        tweak(&mut config);
    }
    let (router, handle) = build_app(config).await.expect("app builds");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        lex_align_daemon::serve_on(listener, router).await.unwrap();
    });
    TestServer {
        base: format!("http://{addr}"),
        client: reqwest::Client::new(),
        dir,
        registry_path,
        handle,
        index,
        osv,
        task,
    }
}

impl TestServer {
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// GET with the project header.
    pub async fn get(&self, path: &str) -> (u16, Value) {
        let r = self
            .client
            .get(self.url(path))
            .header("X-LexAlign-Project", "proj")
            .send()
            .await
            .unwrap();
        split(r).await
    }

    pub async fn get_bare(&self, path: &str) -> (u16, Value) {
        split(self.client.get(self.url(path)).send().await.unwrap()).await
    }

    pub async fn post_json(&self, path: &str, body: &Value) -> (u16, Value) {
        let r = self
            .client
            .post(self.url(path))
            .header("X-LexAlign-Project", "proj")
            .json(body)
            .send()
            .await
            .unwrap();
        split(r).await
    }

    pub async fn post_raw(&self, path: &str, body: &'static str) -> (u16, Value) {
        let r = self
            .client
            .post(self.url(path))
            .header("X-LexAlign-Project", "proj")
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        split(r).await
    }

    pub async fn evaluate(&self, query: &str) -> (u16, Value) {
        self.get(&format!("/api/v1/evaluate?{query}")).await
    }

    pub fn audit_rows(&self) -> u64 {
        self.handle.store().row_count().unwrap()
    }

    /// Waits (bounded) until `cond` holds on `GET /api/v1/registry`.
    pub async fn wait_for_registry(&self, cond: impl Fn(&Value) -> bool) -> Value {
        let mut last = Value::Null;
        for _ in 0..200 {
            let (_, v) = self.get_bare("/api/v1/registry").await;
            if cond(&v) {
                return v;
            }
            last = v;
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("registry never reached the expected state; last: {last}");
    }
}

pub async fn split(r: reqwest::Response) -> (u16, Value) {
    let status = r.status().as_u16();
    let text = r.text().await.unwrap();
    let v = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, v)
}
