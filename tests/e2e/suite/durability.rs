//! `kill -9` under load loses no acknowledged decision.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use lex_align_e2e::{Daemon, Upstreams};

use crate::commands::rows_checked;
use crate::{daemon_cmd, lex, STARTER};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_under_load_loses_no_acknowledged_row() {
    let dir = tempfile::tempdir().unwrap();
    let up = Upstreams::start();
    let mut d = Daemon::start(daemon_cmd(dir.path(), STARTER, &up.env())).await;

    let acked = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let client = reqwest::Client::new();
    let packages = [
        "httpx",
        "requests",
        "pyqt5",
        "cryptography",
        "flask",
        "django",
        "numpy",
    ];
    let mut workers = Vec::new();
    for w in 0..16usize {
        let (acked, stop, client, base) =
            (acked.clone(), stop.clone(), client.clone(), d.base.clone());
        workers.push(tokio::spawn(async move {
            let mut i = w;
            while !stop.load(Ordering::Relaxed) {
                let pkg = packages[i % packages.len()];
                i += 1;
                let resp = client
                    .get(format!("{base}/api/v1/evaluate"))
                    .query(&[("package", pkg)])
                    .header("X-LexAlign-Project", format!("load-{w}"))
                    .send()
                    .await;
                match resp {
                    // Acknowledged = a complete 200 answer with its verdict.
                    Ok(r) if r.status() == 200 => {
                        if let Ok(v) = r.json::<serde_json::Value>().await {
                            if v["verdict"].is_string() {
                                acked.fetch_add(1, Ordering::SeqCst);
                            }
                        }
                    }
                    Ok(r) => panic!("{pkg}: HTTP {}", r.status()),
                    // The daemon is gone: the kill happened.
                    Err(_) => break,
                }
            }
        }));
    }
    // Kill while requests are in flight, once a good number were answered.
    while acked.load(Ordering::SeqCst) < 400 {
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    d.kill9().await;
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        w.await.unwrap();
    }
    // Every answer counted was sent before the kill.
    let acknowledged = acked.load(Ordering::SeqCst);

    let db = dir.path().join("lexalign.sqlite");
    let run = lex(dir.path())
        .args(["audit", "verify", "--db"])
        .args([db.display().to_string()])
        .output()
        .await;
    run.expect_code(0);
    let rows = rows_checked(&run.stdout);
    assert!(
        rows >= acknowledged,
        "{rows} audit rows but {acknowledged} acknowledged decisions"
    );
}
