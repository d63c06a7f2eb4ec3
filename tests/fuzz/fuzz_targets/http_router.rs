//! The daemon's HTTP API in process: the whole router (access layer, query
//! and body parsing, handlers) on a current-thread runtime built once, over
//! a real SQLite file and the starter registry, with no upstream configured.
//!
//! Input: byte 0 picks the route, byte 1 the headers; then the query string
//! (up to the first newline; for `DELETE /overrides/{id}` its first segment
//! is the id) and the body. No panic (the panic hook aborts even where the
//! router's catch-panic layer would answer 500); never a 500; a JSON answer
//! is JSON.
#![no_main]

use std::sync::OnceLock;
use std::time::Duration;

use axum::body::Body;
use axum::http::{header, Method, Request, StatusCode};
use axum::Router;
use lex_align_daemon::{build_app, AppHandle, Config, ProposerChoice};
use libfuzzer_sys::fuzz_target;
use tower::ServiceExt;

const ROUTES: &[(Method, &str)] = &[
    (Method::GET, "/api/v1/evaluate"),
    (Method::POST, "/api/v1/evaluate/batch"),
    (Method::POST, "/api/v1/approval-requests"),
    (Method::GET, "/api/v1/health"),
    (Method::GET, "/api/v1/registry"),
    (Method::GET, "/api/v1/registry/pending"),
    (Method::POST, "/api/v1/registry/proposals"),
    (Method::POST, "/api/v1/registry/parse-yaml"),
    (Method::POST, "/api/v1/registry/reload"),
    (Method::POST, "/api/v1/registry/webhook"),
    (Method::GET, "/api/v1/reports/legal"),
    (Method::GET, "/api/v1/reports/security"),
    (Method::GET, "/api/v1/reports/approval-requests"),
    (Method::GET, "/api/v1/reports/projects"),
    (Method::GET, "/api/v1/reports/agents"),
    (Method::POST, "/api/v1/overrides"),
    (Method::GET, "/api/v1/overrides"),
    (Method::DELETE, "/api/v1/overrides/"),
    (Method::GET, "/metrics"),
    (Method::GET, "/no/such/route"),
];

struct App {
    rt: tokio::runtime::Runtime,
    router: Router,
    _handle: AppHandle,
}

fn app() -> &'static App {
    static APP: OnceLock<App> = OnceLock::new();
    APP.get_or_init(|| {
        let dir = tempfile::Builder::new()
            .prefix("lex-align-fuzz-http")
            .tempdir()
            .expect("temp dir")
            .keep();
        let registry = dir.join("registry.yml");
        std::fs::write(
            &registry,
            include_str!("../../../daemon/engine/src/starter_registry.yml"),
        )
        .unwrap();
        let mut config = Config::new(dir.join("data"));
        config.registry_path = Some(registry);
        config.watch_registry = false;
        config.reload_interval = None;
        config.proposer = ProposerChoice::LogOnly;
        config.webhook_secret = Some("fuzz-secret".into());
        config.evaluate_budget = Duration::from_millis(200);
        config.max_body_bytes = 64 * 1024;
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let (router, handle) = rt.block_on(build_app(config)).expect("app builds");
        App {
            rt,
            router,
            _handle: handle,
        }
    })
}

fuzz_target!(|data: &[u8]| {
    lex_align_fuzz::fuzz(|| {
        let app = app();
        if data.len() < 2 {
            return;
        }
        let (method, path) = &ROUTES[data[0] as usize % ROUTES.len()];
        let flags = data[1];
        let rest = &data[2..];
        let (query, body) = match rest.iter().position(|&b| b == b'\n') {
            Some(i) => (&rest[..i], &rest[i + 1..]),
            None => (rest, &[][..]),
        };
        let Ok(query) = std::str::from_utf8(query) else {
            return;
        };
        let uri = if path.ends_with('/') {
            // The id segment, then the query.
            format!("{path}{query}")
        } else if query.is_empty() {
            path.to_string()
        } else {
            format!("{path}?{query}")
        };
        let mut req = Request::builder().method(method.clone()).uri(uri.as_str());
        if flags & 1 != 0 {
            req = req.header("x-lexalign-project", "fuzz-project");
        }
        if flags & 2 != 0 {
            req = req
                .header("x-lexalign-agent-model", "opus")
                .header("x-lexalign-agent-version", "4.7");
        }
        if flags & 4 != 0 {
            req = req.header(header::CONTENT_TYPE, "application/json");
        }
        if flags & 8 != 0 {
            req = req.header("x-hub-signature-256", "sha256=00");
        }
        // An invalid URI never reaches the router (hyper refuses it).
        let Ok(req) = req.body(Body::from(body.to_vec())) else {
            return;
        };

        let (status, is_json, bytes) = app.rt.block_on(async {
            let resp = app.router.clone().oneshot(req).await.expect("infallible");
            let status = resp.status();
            let is_json = resp
                .headers()
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|c| c.contains("json"));
            let bytes = axum::body::to_bytes(resp.into_body(), 16 << 20)
                .await
                .expect("body reads");
            (status, is_json, bytes)
        });
        assert_ne!(
            status,
            StatusCode::INTERNAL_SERVER_ERROR,
            "{method} {uri}: 500 {}",
            String::from_utf8_lossy(&bytes)
        );
        if is_json {
            serde_json::from_slice::<serde_json::Value>(&bytes)
                .unwrap_or_else(|e| panic!("{method} {uri}: {status} answer is not JSON ({e})"));
        }
    })
});
