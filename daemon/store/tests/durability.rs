//! `kill -9` under load loses no acknowledged row.
//!
//! The parent test re-runs this test binary as a child (selecting the
//! ignored `child_appender` test) that appends from 32 concurrent tasks and
//! prints `ACK <id>` only after each append resolved. The parent kills it
//! with SIGKILL mid-load, reopens the file and checks every acknowledged id.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};

use lex_align_store::Store;

const CHILD_ENV: &str = "LEXALIGN_STORE_DURABILITY_CHILD";

#[test]
#[ignore = "child process of kill_9_loses_no_acknowledged_row"]
fn child_appender() {
    let Ok(path) = std::env::var(CHILD_ENV) else {
        return;
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let store = Store::open(&path).unwrap();
        let mut tasks = Vec::new();
        for t in 0..32 {
            let store = store.clone();
            tasks.push(tokio::spawn(async move {
                for i in 0.. {
                    let r = common::row(&format!("p{t}"), &format!("pkg-{i}"), "ALLOWED", "");
                    let rc = store.append_audit(r).await.unwrap();
                    let mut out = std::io::stdout().lock();
                    writeln!(out, "ACK {}", rc.id).unwrap();
                    out.flush().unwrap();
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
    });
}

/// The harness may print `test child_appender ... ` before the first ACK on
/// the same line.
fn ack(line: &str) -> Option<String> {
    line.split("ACK ").nth(1).map(|id| id.trim().to_string())
}

#[test]
fn kill_9_loses_no_acknowledged_row() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("durable.sqlite");
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--ignored",
            "--exact",
            "child_appender",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, &path)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut acked = Vec::new();
    while acked.len() < 2000 {
        let line = lines
            .next()
            .expect("child ended before acknowledging 2000 rows")
            .unwrap();
        if let Some(id) = ack(&line) {
            acked.push(id);
        }
    }
    child.kill().unwrap(); // SIGKILL
                           // Acknowledgements already in the pipe count too.
    for line in lines {
        if let Some(id) = ack(&line.unwrap()) {
            acked.push(id);
        }
    }
    child.wait().unwrap();

    let store = Store::open(&path).unwrap();
    let v = store.verify().unwrap();
    assert!(v.ok, "{v:?}");
    assert!(v.rows as usize >= acked.len());
    let conn = rusqlite::Connection::open(&path).unwrap();
    let mut stmt = conn
        .prepare("SELECT COUNT(*) FROM audit_log WHERE id = ?1")
        .unwrap();
    let missing: Vec<&String> = acked
        .iter()
        .filter(|id| {
            stmt.query_row([id.as_str()], |r| r.get::<_, i64>(0))
                .unwrap()
                != 1
        })
        .collect();
    assert!(
        missing.is_empty(),
        "{} acknowledged rows lost: {missing:?}",
        missing.len()
    );
}
