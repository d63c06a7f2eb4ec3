//! Audit export and export verification at scale: seeds
//! `LEXALIGN_BENCH_ROWS` rows (default 1,000,000) into a real SQLite file,
//! then, each in a fresh child process so its peak RSS (VmHWM) is its own:
//! a full JSONL export, a filtered one (1 project of 7), a CSV export, and
//! `verify_export` of the full file. Prints rows/s and VmHWM before (after
//! opening the store) and after the work: flat memory means the two barely
//! differ whatever the row count.
//!
//! The checkpoint is signed by a keyed-SHA-256 stand-in (the Ed25519 key
//! lives in the daemon crate; one signature per export is noise here).
//!
//! Run: `cargo bench -p lex-align-store --bench export`.

use std::io::{BufReader, BufWriter};
use std::path::Path;
use std::time::Instant;

use lex_align_store::export::{verify_export, CheckpointSigner, CheckpointVerifier};
use lex_align_store::{AuditRow, ExportFilter, ExportFormat, Store, StoreOptions, Synchronous};
use sha2::{Digest, Sha256};

struct BenchKey;

fn mac(t: &str, payload: &[u8]) -> String {
    let mut h = Sha256::new();
    h.update(b"bench");
    h.update(t.as_bytes());
    h.update(payload);
    hex::encode(h.finalize())
}

impl CheckpointSigner for BenchKey {
    fn key_id(&self) -> String {
        "bench".into()
    }
    fn sign(&self, t: &str, payload: &[u8]) -> String {
        mac(t, payload)
    }
}

impl CheckpointVerifier for BenchKey {
    fn verify(&self, _: &str, t: &str, payload: &[u8], sig: &str) -> Result<(), String> {
        (mac(t, payload) == sig)
            .then_some(())
            .ok_or_else(|| "bad signature".into())
    }
}

/// Rows like the daemon writes (the append bench's mix).
fn row(i: usize) -> AuditRow {
    let pkg = format!("package-{}", i % 500);
    let denied = i % 10 < 1;
    let vulnerable = i % 13 < 1;
    AuditRow {
        project: format!("project-{}", i % 7),
        requester: "ci-bot".into(),
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
        auth_method: Some("apikey:key_0123456789ab".into()),
        ..Default::default()
    }
}

/// Peak resident set size of this process so far, in KiB.
fn vm_hwm_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

fn child(task: &str, db: &Path, out: &Path) {
    let base = vm_hwm_kib();
    let t = Instant::now();
    let (rows, what) = match task {
        "verify" => {
            let f = std::fs::File::open(out).expect("export file");
            let mut input = BufReader::with_capacity(1 << 16, f);
            let r = verify_export(&mut input, &BenchKey).expect("read");
            assert!(r.ok, "{:?}", r.problem);
            (r.rows, "verify-export jsonl".to_string())
        }
        _ => {
            let store = Store::open_read_only(db).expect("open");
            let (format, filter, what) = match task {
                "jsonl" => (
                    ExportFormat::Jsonl,
                    ExportFilter::default(),
                    "export jsonl (whole log)",
                ),
                "jsonl-project" => (
                    ExportFormat::Jsonl,
                    ExportFilter {
                        project: Some("project-3".into()),
                        ..Default::default()
                    },
                    "export jsonl --project (1 of 7)",
                ),
                "csv" => (
                    ExportFormat::Csv,
                    ExportFilter::default(),
                    "export csv (whole log)",
                ),
                other => panic!("unknown task {other}"),
            };
            let f = std::fs::File::create(out).expect("out");
            let mut w = BufWriter::with_capacity(1 << 16, f);
            let s = store
                .export(format, &filter, &mut w, Some(&BenchKey))
                .expect("export");
            drop(w);
            (s.rows, what.to_string())
        }
    };
    let el = t.elapsed().as_secs_f64();
    let size = std::fs::metadata(out).map(|m| m.len()).unwrap_or(0);
    println!(
        "{what}: {rows} rows in {el:.2}s = {:.0} rows/s; file {:.0} MiB; VmHWM {:.1} MiB at start, {:.1} MiB at end",
        rows as f64 / el,
        size as f64 / 1048576.0,
        base as f64 / 1024.0,
        vm_hwm_kib() as f64 / 1024.0
    );
}

fn main() {
    // Child mode: one task, its own peak RSS.
    if let Ok(task) = std::env::var("LEXALIGN_BENCH_EXPORT_TASK") {
        let db = std::env::var("LEXALIGN_BENCH_EXPORT_DB").expect("db");
        let out = std::env::var("LEXALIGN_BENCH_EXPORT_OUT").expect("out");
        child(&task, Path::new(&db), Path::new(&out));
        return;
    }
    let rows: usize = std::env::var("LEXALIGN_BENCH_ROWS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let dir = tempfile::tempdir().expect("temp dir");
    let db = dir.path().join("bench.sqlite");
    {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        let store = Store::open_with(
            &db,
            StoreOptions {
                synchronous: Synchronous::Normal,
                ..StoreOptions::default()
            },
        )
        .expect("open");
        let t = Instant::now();
        rt.block_on(async {
            let mut i = 0;
            while i < rows {
                let n = 500.min(rows - i);
                store
                    .append_audit_batch((i..i + n).map(row).collect())
                    .await
                    .expect("append");
                i += n;
            }
        });
        store.flush().expect("flush");
        println!(
            "seeded {rows} rows in {:.1}s ({:.0} MiB database)",
            t.elapsed().as_secs_f64(),
            std::fs::metadata(&db).map(|m| m.len()).unwrap_or(0) as f64 / 1048576.0
        );
    }
    let exe = std::env::current_exe().expect("own path");
    let jsonl = dir.path().join("export.jsonl");
    for (task, out) in [
        ("jsonl", jsonl.clone()),
        ("jsonl-project", dir.path().join("project.jsonl")),
        ("csv", dir.path().join("export.csv")),
        ("verify", jsonl.clone()),
    ] {
        let status = std::process::Command::new(&exe)
            .env("LEXALIGN_BENCH_EXPORT_TASK", task)
            .env("LEXALIGN_BENCH_EXPORT_DB", &db)
            .env("LEXALIGN_BENCH_EXPORT_OUT", &out)
            .status()
            .expect("child");
        assert!(status.success(), "{task} failed");
    }
}
