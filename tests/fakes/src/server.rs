//! What both fakes share: a server on 127.0.0.1:0 in its own thread and
//! runtime (so sync and async tests alike can start and drop it), request
//! counters, artificial latency and an outage switch.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Router;

/// Counters and switches of one fake server.
pub(crate) struct Control {
    latency_ns: AtomicU64,
    down: AtomicBool,
    total: AtomicU64,
    per_path: Mutex<HashMap<String, u64>>,
    /// Body and content type answered while down.
    down_body: (&'static str, &'static str),
}

impl Control {
    pub(crate) fn new(down_body: (&'static str, &'static str)) -> Arc<Control> {
        Arc::new(Control {
            latency_ns: AtomicU64::new(0),
            down: AtomicBool::new(false),
            total: AtomicU64::new(0),
            per_path: Mutex::new(HashMap::new()),
            down_body,
        })
    }

    pub(crate) fn set_latency(&self, latency: Duration) {
        let ns = u64::try_from(latency.as_nanos()).unwrap_or(u64::MAX);
        self.latency_ns.store(ns, Ordering::SeqCst);
    }

    pub(crate) fn latency(&self) -> Duration {
        Duration::from_nanos(self.latency_ns.load(Ordering::SeqCst))
    }

    pub(crate) fn set_down(&self, down: bool) {
        self.down.store(down, Ordering::SeqCst);
    }

    pub(crate) fn is_down(&self) -> bool {
        self.down.load(Ordering::SeqCst)
    }

    pub(crate) fn total(&self) -> u64 {
        self.total.load(Ordering::SeqCst)
    }

    pub(crate) fn count_for(&self, path: &str) -> u64 {
        self.per_path
            .lock()
            .unwrap()
            .get(path)
            .copied()
            .unwrap_or(0)
    }

    pub(crate) fn counts(&self) -> HashMap<String, u64> {
        self.per_path.lock().unwrap().clone()
    }

    pub(crate) fn reset(&self) {
        self.total.store(0, Ordering::SeqCst);
        self.per_path.lock().unwrap().clear();
    }
}

/// Counts every request, then waits the artificial latency, then answers
/// 503 if the server is "down".
pub(crate) async fn gate(State(ctl): State<Arc<Control>>, req: Request, next: Next) -> Response {
    ctl.total.fetch_add(1, Ordering::SeqCst);
    *ctl.per_path
        .lock()
        .unwrap()
        .entry(req.uri().path().to_owned())
        .or_insert(0) += 1;
    let latency = ctl.latency();
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    if ctl.is_down() {
        let (content_type, body) = ctl.down_body;
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            [(header::CONTENT_TYPE, content_type)],
            Body::from(body),
        )
            .into_response();
    }
    next.run(req).await
}

/// A running server; stops (and its thread ends) on drop.
pub(crate) struct Running {
    addr: SocketAddr,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Running {
    /// Binds 127.0.0.1:0 first so that the router can know its own base URL
    /// (for redirects and file URLs), then serves in a new thread.
    pub(crate) fn start(name: &str, make_router: impl FnOnce(String) -> Router) -> Running {
        let listener = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap_or_else(|e| panic!("fake {name}: cannot bind 127.0.0.1:0: {e}"));
        listener
            .set_nonblocking(true)
            .unwrap_or_else(|e| panic!("fake {name}: cannot make the listener non-blocking: {e}"));
        let addr = listener
            .local_addr()
            .expect("bound listener has an address");
        let router = make_router(format!("http://{addr}"));
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name(format!("fake-{name}"))
            .spawn(move || {
                let rt = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .thread_name("fake-upstream-worker")
                    .enable_all()
                    .build()
                    .expect("fake upstream runtime");
                rt.block_on(async move {
                    let listener = tokio::net::TcpListener::from_std(listener)
                        .expect("register the listener with tokio");
                    // No graceful shutdown: clients may hold keep-alive
                    // connections open forever; dropping the runtime below
                    // closes them.
                    tokio::select! {
                        res = axum::serve(listener, router) => {
                            if let Err(e) = res {
                                eprintln!("fake upstream server stopped: {e}");
                            }
                        }
                        _ = rx => {}
                    }
                });
                rt.shutdown_background();
            })
            .unwrap_or_else(|e| panic!("fake {name}: cannot spawn the server thread: {e}"));
        Running {
            addr,
            shutdown: Some(tx),
            thread: Some(thread),
        }
    }

    pub(crate) fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
