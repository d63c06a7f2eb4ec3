//! Many writers at once: appends from tokio tasks, racing approval requests.

mod common;

use std::collections::HashSet;

use common::{row, temp_store};
use lex_align_store::{NewApprovalRequest, PENDING_REVIEW};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn thousand_concurrent_appends_land_contiguously_and_chained() {
    let (_d, store) = temp_store();
    let mut tasks = Vec::new();
    for t in 0..50 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let mut out = Vec::new();
            for i in 0..20 {
                let r = row(&format!("p{t}"), &format!("pkg-{t}-{i}"), "ALLOWED", "");
                out.push(store.append_audit(r).await.expect("append"));
            }
            out
        }));
    }
    let mut receipts = Vec::new();
    for t in tasks {
        receipts.extend(t.await.unwrap());
    }
    assert_eq!(receipts.len(), 1000);
    let mut seqs: Vec<u64> = receipts.iter().map(|r| r.seq).collect();
    seqs.sort_unstable();
    assert_eq!(seqs, (1..=1000).collect::<Vec<u64>>());
    let ids: HashSet<&str> = receipts.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(ids.len(), 1000);
    assert_eq!(store.row_count().unwrap(), 1000);
    let v = store.verify().unwrap();
    assert!(v.ok, "{v:?}");
    assert_eq!(v.rows, 1000);
    let head = receipts.iter().max_by_key(|r| r.seq).unwrap();
    assert_eq!(v.head_hash, head.hash);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn batch_append_is_contiguous_in_order() {
    let (_d, store) = temp_store();
    let rows: Vec<_> = (0..40)
        .map(|i| row("p", &format!("pkg-{i}"), "ALLOWED", ""))
        .collect();
    let (a, b) = tokio::join!(
        store.append_audit_batch(rows.clone()),
        store.append_audit_batch(rows)
    );
    for batch in [a.unwrap(), b.unwrap()] {
        let seqs: Vec<u64> = batch.iter().map(|r| r.seq).collect();
        let first = seqs[0];
        assert_eq!(seqs, (first..first + 40).collect::<Vec<_>>());
    }
    assert!(store.verify().unwrap().ok);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_first_requests_make_one_row() {
    let (_d, store) = temp_store();
    let spellings = ["Foo-Bar", "foo_bar", "FOO.BAR", "foo-bar"];
    let mut tasks = Vec::new();
    for i in 0..64 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            store
                .upsert_approval_request(NewApprovalRequest {
                    project: "proj".into(),
                    requester: "alice".into(),
                    package: spellings[i % 4].into(),
                    rationale: format!("needed for feature {i}"),
                    ..Default::default()
                })
                .await
        }));
    }
    let mut ids = HashSet::new();
    for t in tasks {
        let r = t.await.unwrap().expect("no upsert fails under a race");
        assert_eq!(r.status, PENDING_REVIEW);
        assert_eq!(r.canonical, "foo-bar");
        ids.insert(r.id);
    }
    assert_eq!(ids.len(), 1, "all requests folded into one row");
    let report = store.approval_requests_report(Some("proj"), None).unwrap();
    assert_eq!(report["items"].as_array().unwrap().len(), 1);
    // One creation event, no flip-flopping.
    let h = store.approval_history(ids.iter().next().unwrap()).unwrap();
    assert_eq!(h.len(), 1);
    assert_eq!(h[0].from_status, None);
    assert_eq!(h[0].to_status, PENDING_REVIEW);
}

#[test]
fn a_second_writer_on_one_file_is_refused_and_a_reader_is_not() {
    // The chain head lives with the process that holds the inbox lock, so
    // a second writing store would fork the chain: it must be refused,
    // by name, while readers (`audit verify` beside a daemon) still work.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("shared.sqlite");
    let a = lex_align_store::Store::open(&path).unwrap();
    for _ in 0..5 {
        a.append_audit_blocking(row("p", "x", "ALLOWED", ""))
            .unwrap();
    }
    match lex_align_store::Store::open(&path) {
        Err(e @ lex_align_store::StoreError::InUse(_)) => {
            let msg = e.to_string();
            assert!(
                msg.contains("shared.sqlite") && msg.contains("in use"),
                "{msg}"
            );
        }
        Err(e) => panic!("expected InUse, got {e}"),
        Ok(_) => panic!("a second writer opened the same database"),
    }
    a.flush().unwrap();
    let r = lex_align_store::Store::open_read_only(&path).unwrap();
    let v = r.verify().unwrap();
    assert!(v.ok && v.rows == 5, "{v:?}");
    assert!(matches!(
        r.append_audit_blocking(row("p", "x", "ALLOWED", "")),
        Err(lex_align_store::StoreError::ReadOnly)
    ));
    // Once the writer is gone, the file can be opened for writing again
    // and the chain goes on.
    drop(a);
    let b = lex_align_store::Store::open(&path).unwrap();
    let rc = b
        .append_audit_blocking(row("p", "y", "ALLOWED", ""))
        .unwrap();
    assert_eq!(rc.seq, 6);
    assert!(b.verify().unwrap().ok);
}
