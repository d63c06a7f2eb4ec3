//! Opening a file written by the original Python server (schema version 0),
//! and refusing a file from a newer lex-align.

mod common;

use lex_align_store::{NewApprovalRequest, Store, StoreError, APPROVED, SCHEMA_VERSION};
use rusqlite::Connection;
use serde_json::json;

/// The original's statements (reports.md §1): tables, then the agent
/// columns added by its `ALTER TABLE` migration, then the indexes.
const ORIGINAL_TABLES: &str = "
CREATE TABLE IF NOT EXISTS audit_log (
    id TEXT PRIMARY KEY,
    ts TEXT NOT NULL,
    project TEXT NOT NULL,
    requester TEXT NOT NULL,
    package TEXT NOT NULL,
    version TEXT,
    resolved_version TEXT,
    verdict TEXT NOT NULL,
    denial_category TEXT NOT NULL,
    reason TEXT,
    license TEXT,
    cve_ids TEXT,
    max_cvss REAL,
    registry_status TEXT
);
CREATE INDEX IF NOT EXISTS audit_log_project_ts ON audit_log(project, ts);
CREATE INDEX IF NOT EXISTS audit_log_package ON audit_log(package);
CREATE INDEX IF NOT EXISTS audit_log_denial ON audit_log(denial_category, verdict);
CREATE TABLE IF NOT EXISTS approval_requests (
    id TEXT PRIMARY KEY,
    ts TEXT NOT NULL,
    project TEXT NOT NULL,
    requester TEXT NOT NULL,
    package TEXT NOT NULL,
    rationale TEXT NOT NULL,
    status TEXT NOT NULL,
    last_audit_id TEXT
);
CREATE INDEX IF NOT EXISTS approval_requests_project ON approval_requests(project);
CREATE INDEX IF NOT EXISTS approval_requests_status ON approval_requests(status);
CREATE UNIQUE INDEX IF NOT EXISTS approval_requests_dedupe
    ON approval_requests(project, package, requester);
";

const ORIGINAL_AGENT_MIGRATION: &str = "
ALTER TABLE audit_log ADD COLUMN agent_model TEXT;
ALTER TABLE audit_log ADD COLUMN agent_version TEXT;
ALTER TABLE approval_requests ADD COLUMN agent_model TEXT;
ALTER TABLE approval_requests ADD COLUMN agent_version TEXT;
CREATE INDEX IF NOT EXISTS audit_log_agent ON audit_log(agent_model, agent_version);
";

fn legacy_file(with_agent_columns: bool) -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("lexalign.sqlite");
    let c = Connection::open(&path).unwrap();
    c.execute_batch(ORIGINAL_TABLES).unwrap();
    if with_agent_columns {
        c.execute_batch(ORIGINAL_AGENT_MIGRATION).unwrap();
    }
    let audit = |id: &str,
                 ts: &str,
                 package: &str,
                 verdict: &str,
                 cat: &str,
                 cves: Option<&str>,
                 score: Option<f64>| {
        c.execute(
            "INSERT INTO audit_log (id, ts, project, requester, package, version, resolved_version, \
             verdict, denial_category, reason, license, cve_ids, max_cvss, registry_status) \
             VALUES (?1, ?2, 'legacy-proj', 'anonymous', ?3, NULL, '2.0', ?4, ?5, 'because', 'MIT', ?6, ?7, NULL)",
            rusqlite::params![id, ts, package, verdict, cat, cves, score],
        )
        .unwrap();
    };
    // Inserted out of time order: the chain follows ts.
    audit(
        "33333333-0000-4000-8000-000000000003",
        "2026-11-20T10:00:00.500000+00:00",
        "Django",
        "DENIED",
        "cve",
        Some(r#"["CVE-2024-1"]"#),
        Some(9.8),
    );
    audit(
        "11111111-0000-4000-8000-000000000001",
        "2026-11-20T09:00:00+00:00",
        "requests",
        "ALLOWED",
        "",
        None,
        None,
    );
    audit(
        "22222222-0000-4000-8000-000000000002",
        "2026-11-20T09:30:00.123456+00:00",
        "Foo_Bar",
        "PROVISIONALLY_ALLOWED",
        "",
        Some("not json"),
        None,
    );
    let req = |id: &str, ts: &str, package: &str, status: &str| {
        c.execute(
            "INSERT INTO approval_requests (id, ts, project, requester, package, rationale, status, last_audit_id) \
             VALUES (?1, ?2, 'legacy-proj', 'anonymous', ?3, ?4, ?5, NULL)",
            rusqlite::params![id, ts, package, format!("need {package}"), status],
        )
        .unwrap();
    };
    req(
        "aaaaaaaa-0000-4000-8000-00000000000a",
        "2026-11-20T09:00:00+00:00",
        "Foo-Bar",
        "PENDING_REVIEW",
    );
    req(
        "bbbbbbbb-0000-4000-8000-00000000000b",
        "2026-11-21T09:00:00+00:00",
        "foo_bar",
        "PENDING_REVIEW",
    );
    req(
        "cccccccc-0000-4000-8000-00000000000c",
        "2026-11-21T10:00:00+00:00",
        "Django",
        "APPROVED",
    );
    drop(c);
    (dir, path)
}

fn check_migrated(path: &std::path::Path) {
    let store = Store::open(path).unwrap();
    let v = store.verify().unwrap();
    assert!(v.ok, "{v:?}");
    assert_eq!(v.rows, 3);

    let c = Connection::open(path).unwrap();
    let version: i64 = c
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(version, SCHEMA_VERSION);
    let meta: String = c
        .query_row(
            "SELECT value FROM meta WHERE key = 'schema_version'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(meta, SCHEMA_VERSION.to_string());
    let rows: Vec<(i64, String, String, String, String)> = c
        .prepare("SELECT seq, id, ts, canonical, source FROM audit_log ORDER BY seq")
        .unwrap()
        .query_map([], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
        })
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(
        rows,
        vec![
            (
                1,
                "11111111-0000-4000-8000-000000000001".into(),
                "2026-11-20T09:00:00.000000+00:00".into(),
                "requests".into(),
                "legacy".into()
            ),
            (
                2,
                "22222222-0000-4000-8000-000000000002".into(),
                "2026-11-20T09:30:00.123456+00:00".into(),
                "foo-bar".into(),
                "legacy".into()
            ),
            (
                3,
                "33333333-0000-4000-8000-000000000003".into(),
                "2026-11-20T10:00:00.500000+00:00".into(),
                "django".into(),
                "legacy".into()
            ),
        ]
    );

    // Reports read the migrated rows, junk cve_ids included.
    let sec = store.security_report(None, &[]).unwrap();
    assert_eq!(sec["total_denials"], 1);
    assert_eq!(sec["recent"][0]["cve_ids"], json!(["CVE-2024-1"]));
    assert_eq!(sec["recent"][0]["max_cvss"], 9.8);
    let agents = store.agents_report(None).unwrap();
    assert_eq!(agents["recent"][2]["package"], "requests");

    // Foo-Bar and foo_bar fold into one request; the newest survives.
    let items = store
        .approval_requests_report(Some("legacy-proj"), Some("PENDING_REVIEW"))
        .unwrap()["items"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["id"], "bbbbbbbb-0000-4000-8000-00000000000b");
    assert_eq!(items[0]["canonical"], "foo-bar");
    let history = store
        .approval_history("bbbbbbbb-0000-4000-8000-00000000000b")
        .unwrap();
    assert_eq!(history.len(), 1);
    assert!(history[0].note.as_deref().unwrap().contains("aaaaaaaa"));

    // The store keeps working on the migrated file: chain continues, the
    // approved request stays approved when asked again.
    let rc = store
        .append_audit_blocking(common::row("legacy-proj", "new", "ALLOWED", ""))
        .unwrap();
    assert_eq!(rc.seq, 4);
    assert!(store.verify().unwrap().ok);
    let again = store
        .upsert_approval_request_blocking(NewApprovalRequest {
            project: "legacy-proj".into(),
            requester: "anonymous".into(),
            package: "DJANGO".into(),
            rationale: "again".into(),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(again.id, "cccccccc-0000-4000-8000-00000000000c");
    assert_eq!(again.status, APPROVED);
    drop(store);

    // Reopening a current file is a no-op.
    let store = Store::open(path).unwrap();
    assert_eq!(store.row_count().unwrap(), 4);
    assert!(store.verify().unwrap().ok);
}

#[test]
fn migrates_original_schema_with_agent_columns() {
    let (_d, path) = legacy_file(true);
    check_migrated(&path);
}

#[test]
fn migrates_original_schema_before_its_agent_migration() {
    let (_d, path) = legacy_file(false);
    check_migrated(&path);
}

#[test]
fn newer_schema_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("future.sqlite");
    drop(Store::open(&path).unwrap());
    Connection::open(&path)
        .unwrap()
        .execute_batch(&format!("PRAGMA user_version = {}", SCHEMA_VERSION + 1))
        .unwrap();
    match Store::open(&path) {
        Err(e @ StoreError::SchemaTooNew { found, supported }) => {
            assert_eq!((found, supported), (SCHEMA_VERSION + 1, SCHEMA_VERSION));
            assert!(
                e.to_string().contains("newer than this lex-align supports"),
                "{e}"
            );
        }
        Err(e) => panic!("unexpected error {e}"),
        Ok(_) => panic!("a newer schema must not open"),
    }
}

#[test]
fn creates_missing_parent_directories() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("var/lib/lexalign/lexalign.sqlite");
    let store = Store::open(&path).unwrap();
    assert!(store.ping());
    assert!(path.exists());
}

#[test]
fn version_3_gains_the_proposal_columns_and_keeps_its_requests() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v3.sqlite");
    let store = Store::open(&path).unwrap();
    let r = store
        .upsert_approval_request_blocking(NewApprovalRequest {
            project: "p".into(),
            requester: "r".into(),
            package: "six".into(),
            rationale: "shims".into(),
            ..Default::default()
        })
        .unwrap();
    drop(store);
    // Back to the version-3 layout.
    let conn = Connection::open(&path).unwrap();
    for col in [
        "proposal_backend",
        "proposal_status",
        "proposal_url",
        "proposal_detail",
        "proposal_at",
    ] {
        conn.execute_batch(&format!("ALTER TABLE approval_requests DROP COLUMN {col}"))
            .unwrap();
    }
    conn.execute_batch("PRAGMA user_version = 3").unwrap();
    drop(conn);
    assert!(
        Store::open_read_only(&path).is_err(),
        "a read-only open cannot migrate"
    );
    let store = Store::open(&path).unwrap();
    let back = store.approval_request(&r.id).unwrap().unwrap();
    assert_eq!((back.package.as_str(), back.proposal_status), ("six", None));
    let version: i64 = Connection::open(&path)
        .unwrap()
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(version, SCHEMA_VERSION);
}
