//! The inbox: acknowledged rows that a crash left unfiled reach SQLite at
//! the next open; a torn last line is dropped; a line that does not prove
//! against the chain is kept aside, never filed; filed segments go away.
//!
//! A crash is a real one: the test binary re-runs itself as a child that
//! appends, prints each receipt, and aborts while another connection holds
//! SQLite's write lock, so its last rows exist only in the inbox.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use lex_align_store::Store;

const CHILD_ENV: &str = "LEXALIGN_STORE_INBOX_CHILD";

#[test]
#[ignore = "child process of the crash tests below"]
fn child_appends_then_aborts() {
    let Ok(path) = std::env::var(CHILD_ENV) else {
        return;
    };
    let store = Store::open(&path).unwrap();
    let mut blocker = None;
    for i in 0..200 {
        if i == 190 {
            // Hold SQLite's write lock from another connection: the rows
            // from here on cannot be filed before the abort, whatever the
            // timing, so they exist only in the inbox.
            let c = rusqlite::Connection::open(&path).unwrap();
            c.execute_batch("BEGIN IMMEDIATE").unwrap();
            blocker = Some(c);
        }
        let r = common::row("crash", &format!("pkg-{i}"), "ALLOWED", "");
        let rc = store.append_audit_blocking(r).unwrap();
        println!("ACK {} {} {}", rc.seq, rc.id, rc.hash);
    }
    assert!(blocker.is_some());
    // No destructors, no final filing: like SIGKILL.
    std::process::abort();
}

struct Ack {
    seq: u64,
    id: String,
    hash: String,
}

/// Runs the crashing child on `path`; returns its receipts.
fn crash(path: &Path) -> Vec<Ack> {
    let out = Command::new(std::env::current_exe().unwrap())
        .args([
            "--ignored",
            "--exact",
            "child_appends_then_aborts",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, path)
        .output()
        .unwrap();
    assert!(!out.status.success(), "the child must die by abort");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split("ACK ").nth(1))
        .map(|l| {
            let mut w = l.split_whitespace();
            Ack {
                seq: w.next().unwrap().parse().unwrap(),
                id: w.next().unwrap().into(),
                hash: w.next().unwrap().into(),
            }
        })
        .collect()
}

fn raw_count(path: &Path) -> u64 {
    let c = rusqlite::Connection::open(path).unwrap();
    c.query_row("SELECT COUNT(*) FROM audit_log", [], |r| r.get::<_, i64>(0))
        .unwrap() as u64
}

fn inbox_files(path: &Path, ext: &str) -> Vec<PathBuf> {
    let dir = path.with_file_name(format!(
        "{}.inbox",
        path.file_name().unwrap().to_string_lossy()
    ));
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == ext))
        .collect();
    v.sort();
    v
}

fn stored(path: &Path, seq: u64) -> (String, String) {
    let c = rusqlite::Connection::open(path).unwrap();
    c.query_row(
        "SELECT id, hash FROM audit_log WHERE seq = ?1",
        [seq as i64],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )
    .unwrap()
}

#[test]
fn rows_acknowledged_before_a_crash_are_filed_at_the_next_open() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.sqlite");
    let acks = crash(&path);
    assert_eq!(acks.len(), 200);
    let before = raw_count(&path);
    assert!(before <= 190, "the last rows were only in the inbox");
    assert!(!inbox_files(&path, "log").is_empty());

    let store = Store::open(&path).unwrap();
    assert_eq!(store.recovery().filed, 200 - before);
    assert!(!store.recovery().torn);
    assert!(store.recovery().damaged.is_empty());
    for a in &acks {
        assert_eq!(stored(&path, a.seq), (a.id.clone(), a.hash.clone()));
    }
    let v = store.verify().unwrap();
    assert!(v.ok && v.rows == 200, "{v:?}");
    // The chain goes on from the recovered head; only the new segment is left.
    let rc = store
        .append_audit_blocking(common::row("after", "x", "ALLOWED", ""))
        .unwrap();
    assert_eq!(rc.seq, 201);
    assert_eq!(inbox_files(&path, "log").len(), 1);
    assert!(store.verify().unwrap().ok);
}

#[test]
fn a_torn_last_line_is_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.sqlite");
    let acks = crash(&path);
    let last = inbox_files(&path, "log").pop().unwrap();
    let mut text = std::fs::read(&last).unwrap();
    text.extend_from_slice(b"0123456789abcdef {\"seq\":201,\"id\":\"half");
    std::fs::write(&last, text).unwrap();

    let store = Store::open(&path).unwrap();
    assert!(store.recovery().torn);
    let v = store.verify().unwrap();
    assert!(v.ok && v.rows == acks.len() as u64, "{v:?}");
}

#[test]
fn a_line_that_does_not_prove_is_kept_aside_and_not_filed() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.sqlite");
    let acks = crash(&path);
    let before = raw_count(&path);
    // Rewrite the verdict of the second unfiled row.
    let target = before + 2;
    let seg = inbox_files(&path, "log").pop().unwrap();
    let text = std::fs::read_to_string(&seg).unwrap();
    let needle = format!("{{\"seq\":{target},");
    let edited: String = text
        .lines()
        .map(|l| {
            if l.contains(&needle) {
                l.replace("\"verdict\":\"ALLOWED\"", "\"verdict\":\"DENIED\"")
            } else {
                l.to_string()
            }
        })
        .map(|l| l + "\n")
        .collect();
    assert_ne!(edited, text, "row {target} is in the last segment");
    std::fs::write(&seg, edited).unwrap();

    let store = Store::open(&path).unwrap();
    let rec = store.recovery().clone();
    assert_eq!(rec.filed, 1, "only the row before the edited one proves");
    assert_eq!(rec.damaged.len(), 1);
    assert!(rec.damaged[0].exists(), "kept for the operator");
    let v = store.verify().unwrap();
    assert!(v.ok && v.rows == before + 1, "{v:?}");
    assert!(acks.len() as u64 > before + 1);
    // New rows chain onto what was provable.
    let rc = store
        .append_audit_blocking(common::row("after", "x", "ALLOWED", ""))
        .unwrap();
    assert_eq!(rc.seq, before + 2);
    assert!(store.verify().unwrap().ok);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filed_segments_are_deleted() {
    let (dir, store) = common::temp_store();
    let path = dir.path().join("audit.sqlite");
    // ~40,000 rows of ~600 bytes: two or three 16 MiB segments.
    for b in 0..80 {
        let rows = (0..500)
            .map(|i| common::row("bulk", &format!("pkg-{b}-{i}"), "ALLOWED", ""))
            .collect();
        store.append_audit_batch(rows).await.unwrap();
    }
    let s = store.clone();
    tokio::task::spawn_blocking(move || s.flush())
        .await
        .unwrap()
        .unwrap();
    let logs = inbox_files(&path, "log");
    assert_eq!(logs.len(), 1, "closed segments are gone: {logs:?}");
    let name = logs[0].file_name().unwrap().to_string_lossy().to_string();
    assert!(
        !name.starts_with("00000000000000000001"),
        "the first segment was closed: {name}"
    );
    assert_eq!(store.row_count().unwrap(), 40_000);
}
