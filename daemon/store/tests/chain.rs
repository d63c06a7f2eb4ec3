//! The hash chain over a real SQLite file, tampered with through a second
//! connection as an attacker with file access would.

mod common;

use common::{row, temp_store};
use lex_align_store::{Store, GENESIS_HASH};
use rusqlite::Connection;

fn seeded(n: usize) -> (tempfile::TempDir, Store, Vec<String>) {
    let (dir, store) = temp_store();
    let ids = (0..n)
        .map(|i| {
            let mut r = row("proj", &format!("pkg-{i}"), "ALLOWED", "");
            r.cve_ids = if i % 3 == 0 {
                vec![format!("CVE-2024-{i:04}")]
            } else {
                vec![]
            };
            r.max_cvss = (i % 3 == 0).then_some(7.5 + i as f64 / 10.0);
            store.append_audit_blocking(r).unwrap().id
        })
        .collect();
    // Rows are filed from the inbox a few milliseconds after the append;
    // the attacker below edits the tables.
    store.flush().unwrap();
    (dir, store, ids)
}

/// A second connection on the file, once every appended row is filed.
fn raw(store: &Store) -> Connection {
    store.flush().unwrap();
    let c = Connection::open(store.path()).unwrap();
    c.busy_timeout(std::time::Duration::from_secs(5)).unwrap();
    c
}

#[test]
fn empty_log_verifies_with_genesis_head() {
    let (_d, store) = temp_store();
    let r = store.verify().unwrap();
    assert!(r.ok);
    assert_eq!(r.rows, 0);
    assert_eq!(r.head_hash, GENESIS_HASH);
}

#[test]
fn appended_rows_chain_and_verify() {
    let (_d, store, ids) = seeded(10);
    let r = store.verify().unwrap();
    assert!(r.ok, "{r:?}");
    assert_eq!(r.rows, 10);
    let c = raw(&store);
    let (first_prev, last_hash, last_id): (String, String, String) = c
        .query_row(
            "SELECT (SELECT prev_hash FROM audit_log WHERE seq = 1), hash, id FROM audit_log WHERE seq = 10",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();
    assert_eq!(first_prev, GENESIS_HASH);
    assert_eq!(r.head_hash, last_hash);
    assert_eq!(&last_id, ids.last().unwrap());
    // Every row links to its predecessor.
    let broken_links: i64 = c
        .query_row(
            "SELECT COUNT(*) FROM audit_log a JOIN audit_log b ON b.seq = a.seq + 1 WHERE b.prev_hash != a.hash",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(broken_links, 0);
}

#[test]
fn edited_reason_is_detected_at_that_row() {
    let (_d, store, ids) = seeded(10);
    raw(&store)
        .execute(
            "UPDATE audit_log SET reason = 'nothing to see' WHERE seq = 4",
            [],
        )
        .unwrap();
    let r = store.verify().unwrap();
    assert!(!r.ok);
    let b = r.first_broken.unwrap();
    assert_eq!(b.seq, 4);
    assert_eq!(b.id.as_deref(), Some(ids[3].as_str()));
    assert!(b.reason.contains("edited"), "{}", b.reason);
}

#[test]
fn edited_score_is_detected() {
    let (_d, store, ids) = seeded(10);
    raw(&store)
        .execute("UPDATE audit_log SET max_cvss = 1.0 WHERE seq = 7", [])
        .unwrap();
    let b = store.verify().unwrap().first_broken.unwrap();
    assert_eq!((b.seq, b.id.as_deref()), (7, Some(ids[6].as_str())));
}

#[test]
fn deleted_row_is_detected_at_the_next_row() {
    let (_d, store, ids) = seeded(10);
    raw(&store)
        .execute("DELETE FROM audit_log WHERE seq = 5", [])
        .unwrap();
    let r = store.verify().unwrap();
    assert_eq!(r.rows, 9);
    let b = r.first_broken.unwrap();
    assert_eq!(b.seq, 6);
    assert_eq!(b.id.as_deref(), Some(ids[5].as_str()));
    assert!(b.reason.contains("expected seq 5"), "{}", b.reason);
}

#[test]
fn deleted_and_renumbered_row_is_detected_by_prev_hash() {
    let (_d, store, ids) = seeded(6);
    let c = raw(&store);
    c.execute("DELETE FROM audit_log WHERE seq = 3", [])
        .unwrap();
    c.execute("UPDATE audit_log SET seq = seq - 1 WHERE seq > 3", [])
        .unwrap();
    let b = store.verify().unwrap().first_broken.unwrap();
    assert_eq!(b.seq, 3);
    assert_eq!(b.id.as_deref(), Some(ids[3].as_str()));
    assert!(b.reason.contains("prev_hash"), "{}", b.reason);
}

#[test]
fn swapped_rows_are_detected() {
    let (_d, store, ids) = seeded(8);
    let c = raw(&store);
    c.execute_batch(
        "UPDATE audit_log SET seq = -1 WHERE seq = 3;
         UPDATE audit_log SET seq = 3 WHERE seq = 4;
         UPDATE audit_log SET seq = 4 WHERE seq = -1;",
    )
    .unwrap();
    let b = store.verify().unwrap().first_broken.unwrap();
    assert_eq!(b.seq, 3);
    assert_eq!(b.id.as_deref(), Some(ids[3].as_str()));
}

#[test]
fn truncated_tail_is_detected() {
    let (_d, store, _ids) = seeded(5);
    raw(&store)
        .execute("DELETE FROM audit_log WHERE seq = 5", [])
        .unwrap();
    let r = store.verify().unwrap();
    let b = r.first_broken.unwrap();
    assert_eq!(b.seq, 5);
    assert_eq!(b.id, None);
    assert!(b.reason.contains("at the end"), "{}", b.reason);
}

#[test]
fn chain_continues_across_reopen() {
    let (dir, store, _) = seeded(3);
    let path = store.path().to_path_buf();
    drop(store);
    let store = Store::open(&path).unwrap();
    let rc = store
        .append_audit_blocking(row("p", "after-reopen", "DENIED", "registry"))
        .unwrap();
    assert_eq!(rc.seq, 4);
    let r = store.verify().unwrap();
    assert!(r.ok, "{r:?}");
    assert_eq!(r.head_hash, rc.hash);
    drop(dir);
}

#[test]
fn stored_columns_match_the_row() {
    let (_d, store) = temp_store();
    let mut r = common::cve_row("proj", "Foo_Bar", &["CVE-1", "GHSA-x"], Some(9.8));
    r.canonical = String::new(); // the store fills it in
    r.requirement = Some("foo-bar>=1,<2".into());
    let rc = store.append_audit_blocking(r).unwrap();
    assert_eq!(rc.ts.len(), "2026-11-23T12:14:40.031333+00:00".len());
    assert!(rc.ts.ends_with("+00:00"));
    assert_eq!(uuid::Uuid::parse_str(&rc.id).unwrap().get_version_num(), 4);
    let (canonical, cves, score, requirement, source): (String, String, f64, String, String) = raw(
        &store,
    )
    .query_row(
        "SELECT canonical, cve_ids, max_cvss, requirement, source FROM audit_log WHERE id = ?1",
        [&rc.id],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
    )
    .unwrap();
    assert_eq!(canonical, "foo-bar");
    assert_eq!(cves, r#"["CVE-1","GHSA-x"]"#);
    assert_eq!(score, 9.8);
    assert_eq!(requirement, "foo-bar>=1,<2");
    assert_eq!(source, "api");
    let empty = store
        .append_audit_blocking(row("proj", "x", "ALLOWED", ""))
        .unwrap();
    let null: Option<String> = raw(&store)
        .query_row(
            "SELECT cve_ids FROM audit_log WHERE id = ?1",
            [&empty.id],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(null, None, "empty CVE list is stored as NULL");
}

#[test]
fn the_authentication_method_is_chained() {
    let (_d, store) = temp_store();
    // A row without the column set (as written before schema 3) and rows with it.
    store
        .append_audit_blocking(row("proj", "a", "ALLOWED", ""))
        .unwrap();
    for (i, method) in ["apikey:key_1", "header"].iter().enumerate() {
        let mut r = row("proj", &format!("b{i}"), "ALLOWED", "");
        r.requester = "alice".into();
        r.auth_method = Some(method.to_string());
        store.append_audit_blocking(r).unwrap();
    }
    assert!(store.verify().unwrap().ok);
    let c = raw(&store);
    let stored: Option<String> = c
        .query_row("SELECT auth_method FROM audit_log WHERE seq = 2", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(stored.as_deref(), Some("apikey:key_1"));
    // Claiming a stronger method after the fact breaks the chain there.
    c.execute(
        "UPDATE audit_log SET auth_method = 'apikey:key_2' WHERE seq = 3",
        [],
    )
    .unwrap();
    let r = store.verify().unwrap();
    assert_eq!(r.first_broken.unwrap().seq, 3);
    // And so does adding one to a row that had none.
    c.execute(
        "UPDATE audit_log SET auth_method = 'header' WHERE seq = 3",
        [],
    )
    .unwrap();
    c.execute(
        "UPDATE audit_log SET auth_method = 'header' WHERE seq = 1",
        [],
    )
    .unwrap();
    assert_eq!(store.verify().unwrap().first_broken.unwrap().seq, 1);
}
