//! Append throughput: sequential (one caller waits for each append) and
//! concurrent (8 and 64 callers), then the writer's filing rate, for `synchronous=FULL` (an fsync of the
//! inbox per group) and `NORMAL`. An append returns once its line is in the
//! audit inbox; the timed `verify` at the end first files every row into
//! SQLite. Run: `cargo bench -p lex-align-store --bench append`.
//! `LEXALIGN_BENCH_ROWS` sets the rows per run (default 20000).

use std::time::Instant;

use lex_align_store::{AuditRow, Store, StoreOptions, Synchronous};

fn row(i: usize) -> AuditRow {
    let pkg = format!("package-{}", i % 500);
    // Every tenth row a license denial, every thirteenth with an advisory.
    let denied = i % 10 < 1;
    let vulnerable = i % 13 < 1;
    AuditRow {
        project: format!("project-{}", i % 7),
        requester: "bench".into(),
        canonical: pkg.clone(),
        package: pkg,
        version: Some("1.2.3".into()),
        resolved_version: Some("1.2.3".into()),
        verdict: if denied { "DENIED" } else { "ALLOWED" }.into(),
        denial_category: if denied { "license" } else { "" }.into(),
        reason: Some("Package is on the preferred list.".into()),
        license: Some("MIT".into()),
        cve_ids: if vulnerable {
            vec!["CVE-2024-0001".into()]
        } else {
            vec![]
        },
        max_cvss: vulnerable.then_some(7.5),
        registry_status: Some("approved".into()),
        agent_model: Some("bench-model".into()),
        agent_version: Some("1".into()),
        source: "api".into(),
        auth_method: None,
        ..Default::default()
    }
}

fn main() {
    let rows: usize = std::env::var("LEXALIGN_BENCH_ROWS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    // LEXALIGN_BENCH_SYNC=full|normal runs one mode only.
    let modes: Vec<Synchronous> = match std::env::var("LEXALIGN_BENCH_SYNC").as_deref() {
        Ok("full") => vec![Synchronous::Full],
        Ok("normal") => vec![Synchronous::Normal],
        _ => vec![Synchronous::Full, Synchronous::Normal],
    };
    for sync in modes {
        let dir = tempfile::tempdir().expect("temp dir");
        let opts = StoreOptions {
            synchronous: sync,
            ..StoreOptions::default()
        };
        let store = Store::open_with(dir.path().join("bench.sqlite"), opts).expect("open");

        // Sequential: every append waits for its own write (and fsync).
        let seq_rows = (rows / 10).max(200);
        let t = Instant::now();
        for i in 0..seq_rows {
            store.append_audit_blocking(row(i)).expect("append");
        }
        let el = t.elapsed();
        println!(
            "synchronous={sync:?} sequential: {seq_rows} rows in {:.3}s = {:.0} rows/s ({:.1} µs/row)",
            el.as_secs_f64(),
            seq_rows as f64 / el.as_secs_f64(),
            el.as_micros() as f64 / seq_rows as f64
        );

        for conc in [8usize, 64] {
            let t = Instant::now();
            rt.block_on(async {
                let per = rows / conc;
                let mut tasks = Vec::new();
                for c in 0..conc {
                    let store = store.clone();
                    tasks.push(tokio::spawn(async move {
                        for i in 0..per {
                            store.append_audit(row(c * per + i)).await.expect("append");
                        }
                    }));
                }
                for t in tasks {
                    t.await.expect("task");
                }
            });
            let el = t.elapsed();
            let n = rows / conc * conc;
            println!(
                "synchronous={sync:?} concurrency {conc}: {n} rows in {:.3}s = {:.0} rows/s",
                el.as_secs_f64(),
                n as f64 / el.as_secs_f64()
            );
        }
        // Filing: rows handed over in batches of 1,000 (one inbox write
        // each), timed until the writer has committed them all to SQLite.
        // The appends take a few per cent of this; the rest is the writer.
        store.flush().expect("flush");
        let t = Instant::now();
        for b in 0..rows / 1000 {
            let batch: Vec<_> = (0..1000).map(|i| row(b * 1000 + i)).collect();
            rt.block_on(store.append_audit_batch(batch))
                .expect("append");
        }
        store.flush().expect("flush");
        let el = t.elapsed();
        let n = rows / 1000 * 1000;
        println!(
            "synchronous={sync:?} filing: {n} rows appended in batches and committed in {:.3}s = {:.0} rows/s",
            el.as_secs_f64(),
            n as f64 / el.as_secs_f64()
        );
        let t = Instant::now();
        let report = store.verify().expect("verify");
        assert!(report.ok, "{report:?}");
        println!(
            "verify of {} rows: {:.3}s",
            report.rows,
            t.elapsed().as_secs_f64()
        );
    }
}
