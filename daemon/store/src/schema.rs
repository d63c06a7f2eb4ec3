//! Schema, pragmas and migrations.
//!
//! The version lives in the file twice: `PRAGMA user_version` (checked first,
//! cheap) and `meta.schema_version` (readable by humans and tools).
//! Version 0 is the original Python server's schema (no version at all);
//! opening such a file rebuilds its tables in the current layout, keeps every
//! row and hash-chains the existing audit rows in `(ts, rowid)` order.

use std::collections::HashMap;

use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};

use crate::chain::{insert_chained, CanonicalRow, GENESIS_HASH};
use crate::util::{canonical_name, normalize_ts, now_ts, value_to_f64, value_to_string};
use crate::StoreError;

pub const SCHEMA_VERSION: i64 = 5;

/// Version 5 adds the report counters and the advisory index
/// (`rollup.rs`), filled from every row already in the log.
fn upgrade_to_v5(tx: &Connection) -> Result<(), StoreError> {
    tx.execute_batch(crate::rollup::ROLLUP_SCHEMA)?;
    crate::rollup::rebuild(tx)
}

/// Version 4 adds the proposal outcome of an approval request (what a
/// reviewing proposer such as `github` did with it: queued, opened,
/// amended, failed; its URL and detail).
fn upgrade_to_v4(tx: &Connection) -> Result<(), StoreError> {
    let present = columns(tx, "approval_requests")?;
    for col in PROPOSAL_COLUMNS {
        if !present.iter().any(|c| c == col) {
            tx.execute_batch(&format!(
                "ALTER TABLE approval_requests ADD COLUMN {col} TEXT"
            ))?;
        }
    }
    Ok(())
}

const PROPOSAL_COLUMNS: [&str; 5] = [
    "proposal_backend",
    "proposal_status",
    "proposal_url",
    "proposal_detail",
    "proposal_at",
];

/// Version 3 adds the access tables (`access.rs`) and the audit log's
/// `auth_method` column (how the requester was authenticated; hashed into
/// the chain only when set, so older rows keep their hashes).
fn upgrade_to_v3(tx: &Connection) -> Result<(), StoreError> {
    tx.execute_batch(crate::access::ACCESS_SCHEMA)?;
    if !columns(tx, "audit_log")?.iter().any(|c| c == "auth_method") {
        tx.execute_batch("ALTER TABLE audit_log ADD COLUMN auth_method TEXT")?;
    }
    Ok(())
}

/// Version 2 drops two indexes of version 1 that no report needs: each
/// index is one more page written to the WAL by every commit.
/// `(denial_category, verdict)`: the category queries use
/// `audit_log_category_ts`, which also orders by time. `(agent_model,
/// agent_version)`: the agents report groups every row, a full scan either
/// way. Measured with the warm bench: fewer WAL frames per commit and less
/// writer CPU per row.
const V2_DROPPED_INDEXES: [&str; 2] = ["audit_log_denial", "audit_log_agent"];

const SCHEMA_V1: &str = "
CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

-- seq is the rowid: the chain position, monotonic, never reused.
CREATE TABLE IF NOT EXISTS audit_log (
    seq              INTEGER PRIMARY KEY,
    id               TEXT NOT NULL,  -- UUID4, unique by construction
    ts               TEXT NOT NULL,
    project          TEXT NOT NULL,
    requester        TEXT NOT NULL,
    package          TEXT NOT NULL,
    canonical        TEXT NOT NULL,
    version          TEXT,
    requirement      TEXT,
    resolved_version TEXT,
    verdict          TEXT NOT NULL,
    denial_category  TEXT NOT NULL,
    reason           TEXT,
    license          TEXT,
    cve_ids          TEXT,
    max_cvss         REAL,
    registry_status  TEXT,
    agent_model      TEXT,
    agent_version    TEXT,
    source           TEXT NOT NULL,
    prev_hash        TEXT NOT NULL,
    hash             TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS audit_log_project_ts ON audit_log(project, ts);
-- Report queries: newest rows of a category, 30-day windows.
CREATE INDEX IF NOT EXISTS audit_log_category_ts ON audit_log(denial_category, ts);
CREATE INDEX IF NOT EXISTS audit_log_ts ON audit_log(ts);
-- Deliberately absent: indexes on `id` (random UUID4), `package` and
-- `canonical`. Every commit writes each index leaf page it touches to
-- the WAL; random keys touch one page per row, which measured at ~60% more
-- WAL bytes per row for the id index alone and halved append throughput at
-- 64-way concurrency (benches/append.rs). No report looks rows up by them.

CREATE TABLE IF NOT EXISTS approval_requests (
    id            TEXT PRIMARY KEY,
    ts            TEXT NOT NULL,
    project       TEXT NOT NULL,
    requester     TEXT NOT NULL,
    package       TEXT NOT NULL,
    rationale     TEXT NOT NULL,
    status        TEXT NOT NULL,
    last_audit_id TEXT,
    agent_model   TEXT,
    agent_version TEXT,
    canonical     TEXT NOT NULL,
    created_at    TEXT NOT NULL,
    decided_by    TEXT,
    decided_at    TEXT,
    decision_note TEXT
);
CREATE INDEX IF NOT EXISTS approval_requests_project ON approval_requests(project);
CREATE INDEX IF NOT EXISTS approval_requests_status ON approval_requests(status);
CREATE INDEX IF NOT EXISTS approval_requests_canonical ON approval_requests(canonical);
CREATE UNIQUE INDEX IF NOT EXISTS approval_requests_dedupe
    ON approval_requests(project, canonical, requester);

CREATE TABLE IF NOT EXISTS approval_history (
    seq         INTEGER PRIMARY KEY,
    request_id  TEXT NOT NULL,
    ts          TEXT NOT NULL,
    actor       TEXT NOT NULL,
    from_status TEXT,
    to_status   TEXT NOT NULL,
    note        TEXT
);
CREATE INDEX IF NOT EXISTS approval_history_request ON approval_history(request_id, seq);

-- Persistent upstream cache; expires_at is unix time in milliseconds.
CREATE TABLE IF NOT EXISTS cache (
    key        TEXT PRIMARY KEY,
    value      BLOB NOT NULL,
    expires_at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS cache_expires ON cache(expires_at);
";

/// A read-only open needs the current schema: it cannot migrate.
pub(crate) fn check_readable(conn: &Connection) -> Result<(), StoreError> {
    let found: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if found > SCHEMA_VERSION {
        return Err(StoreError::SchemaTooNew {
            found,
            supported: SCHEMA_VERSION,
        });
    }
    if found < SCHEMA_VERSION {
        return Err(StoreError::Invalid(format!(
            "the database has schema version {found}; open it once with a writing lex-align \
             (no daemon running on it) to migrate it to version {SCHEMA_VERSION}"
        )));
    }
    Ok(())
}

/// Brings the file to [`SCHEMA_VERSION`]. Runs in one IMMEDIATE transaction,
/// so a crash mid-migration leaves the old file untouched.
pub(crate) fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    let found: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if found > SCHEMA_VERSION {
        return Err(StoreError::SchemaTooNew {
            found,
            supported: SCHEMA_VERSION,
        });
    }
    if found == SCHEMA_VERSION {
        return Ok(());
    }
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    // Re-read under the write lock: another process may have migrated.
    let found: i64 = tx.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if found == SCHEMA_VERSION {
        return Ok(());
    }
    if (1..=4).contains(&found) {
        // Same rows (the chain is untouched): indexes go, tables and
        // nullable columns are added.
        for ix in V2_DROPPED_INDEXES {
            tx.execute_batch(&format!("DROP INDEX IF EXISTS {ix}"))?;
        }
        upgrade_to_v3(&tx)?;
        upgrade_to_v4(&tx)?;
        upgrade_to_v5(&tx)?;
        let mut set = tx.prepare("INSERT OR REPLACE INTO meta(key, value) VALUES (?1, ?2)")?;
        set.execute(params!["schema_version", SCHEMA_VERSION.to_string()])?;
        set.execute(params!["migrated_from_version", found.to_string()])?;
        set.execute(params!["migrated_at", now_ts()])?;
        drop(set);
        tx.execute_batch(&format!("PRAGMA user_version = {SCHEMA_VERSION}"))?;
        tx.commit()?;
        return Ok(());
    }
    let legacy_audit = table_exists(&tx, "audit_log")?;
    let legacy_requests = table_exists(&tx, "approval_requests")?;
    if legacy_audit {
        // Index names of the original collide with ours; they go with the table.
        for ix in [
            "audit_log_project_ts",
            "audit_log_package",
            "audit_log_denial",
            "audit_log_agent",
        ] {
            tx.execute_batch(&format!("DROP INDEX IF EXISTS {ix}"))?;
        }
        tx.execute_batch("ALTER TABLE audit_log RENAME TO audit_log_v0")?;
    }
    if legacy_requests {
        for ix in [
            "approval_requests_project",
            "approval_requests_status",
            "approval_requests_dedupe",
        ] {
            tx.execute_batch(&format!("DROP INDEX IF EXISTS {ix}"))?;
        }
        tx.execute_batch("ALTER TABLE approval_requests RENAME TO approval_requests_v0")?;
    }
    tx.execute_batch(SCHEMA_V1)?;
    upgrade_to_v3(&tx)?;
    upgrade_to_v4(&tx)?;
    let mut migrated_rows = 0u64;
    if legacy_audit {
        migrated_rows += copy_legacy_audit(&tx)?;
        tx.execute_batch("DROP TABLE audit_log_v0")?;
    }
    if legacy_requests {
        migrated_rows += copy_legacy_requests(&tx)?;
        tx.execute_batch("DROP TABLE approval_requests_v0")?;
    }
    // After the copy: the counters start from every migrated row.
    upgrade_to_v5(&tx)?;
    let now = now_ts();
    let mut set = tx.prepare("INSERT OR REPLACE INTO meta(key, value) VALUES (?1, ?2)")?;
    set.execute(params!["schema_version", SCHEMA_VERSION.to_string()])?;
    if found == 0 && !legacy_audit && !legacy_requests {
        set.execute(params!["created_at", now])?;
    } else {
        set.execute(params!["migrated_from_version", found.to_string()])?;
        set.execute(params!["migrated_at", now])?;
        set.execute(params!["migrated_rows", migrated_rows.to_string()])?;
    }
    let head: Option<i64> = tx
        .query_row("SELECT MAX(seq) FROM audit_log", [], |r| r.get(0))
        .optional()?
        .flatten();
    set.execute(params!["chain_head_seq", head.unwrap_or(0).to_string()])?;
    drop(set);
    tx.execute_batch(&format!("PRAGMA user_version = {SCHEMA_VERSION}"))?;
    tx.commit()?;
    if found == 0 && (legacy_audit || legacy_requests) {
        tracing::info!(
            rows = migrated_rows,
            "migrated the original server's database to schema version {SCHEMA_VERSION}"
        );
    }
    Ok(())
}

fn table_exists(conn: &Connection, name: &str) -> rusqlite::Result<bool> {
    conn.query_row(
        "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = ?1",
        [name],
        |r| r.get::<_, i64>(0),
    )
    .map(|n| n > 0)
}

fn columns(conn: &Connection, table: &str) -> rusqlite::Result<Vec<String>> {
    let mut stmt = conn.prepare(&format!("PRAGMA table_info({table})"))?;
    let cols = stmt
        .query_map([], |r| r.get::<_, String>(1))?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(cols)
}

/// `SELECT` list over a legacy table: missing columns (the original added
/// the agent columns by migration) read as NULL.
fn select_list(present: &[String], wanted: &[&str]) -> String {
    wanted
        .iter()
        .map(|c| {
            if present.iter().any(|p| p == c) {
                (*c).to_string()
            } else {
                format!("NULL AS {c}")
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn copy_legacy_audit(conn: &Connection) -> Result<u64, StoreError> {
    const WANTED: [&str; 16] = [
        "id",
        "ts",
        "project",
        "requester",
        "package",
        "version",
        "resolved_version",
        "verdict",
        "denial_category",
        "reason",
        "license",
        "cve_ids",
        "max_cvss",
        "registry_status",
        "agent_model",
        "agent_version",
    ];
    let present = columns(conn, "audit_log_v0")?;
    let mut read = conn.prepare(&format!(
        "SELECT {} FROM audit_log_v0 ORDER BY ts, rowid",
        select_list(&present, &WANTED)
    ))?;
    let mut insert = conn.prepare(crate::chain::INSERT_ROW)?;
    let mut rows = read.query([])?;
    let mut prev = GENESIS_HASH.to_string();
    let mut seq = 0i64;
    while let Some(r) = rows.next()? {
        let s = |i: usize| r.get_ref(i).ok().and_then(value_to_string);
        seq += 1;
        let id = s(0).unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
        let raw_ts = s(1).unwrap_or_default();
        let ts = normalize_ts(&raw_ts).unwrap_or(raw_ts);
        let package = s(4).unwrap_or_default();
        let canonical = canonical_name(&package);
        let (project, requester) = (s(2).unwrap_or_default(), s(3).unwrap_or_default());
        let (version, resolved) = (s(5), s(6));
        let (verdict, category) = (s(7).unwrap_or_default(), s(8).unwrap_or_default());
        let (reason, license, cve_ids) = (s(9), s(10), s(11));
        let max_cvss = r.get_ref(12).ok().and_then(value_to_f64);
        let (status, model, agent_version) = (s(13), s(14), s(15));
        let c = CanonicalRow {
            seq,
            id: &id,
            ts: &ts,
            project: &project,
            requester: &requester,
            package: &package,
            canonical: &canonical,
            version: version.as_deref(),
            requirement: None,
            resolved_version: resolved.as_deref(),
            verdict: &verdict,
            denial_category: &category,
            reason: reason.as_deref(),
            license: license.as_deref(),
            cve_ids: cve_ids.as_deref(),
            max_cvss,
            registry_status: status.as_deref(),
            agent_model: model.as_deref(),
            agent_version: agent_version.as_deref(),
            source: "legacy",
            auth_method: None,
        };
        let hash = insert_chained(&mut insert, &prev, &c)?;
        prev = hash;
    }
    Ok(seq as u64)
}

/// The original keyed requests on the verbatim spelling; the canonical key
/// can fold several into one. The newest survives, the others are recorded
/// in its history.
fn copy_legacy_requests(conn: &Connection) -> Result<u64, StoreError> {
    const WANTED: [&str; 10] = [
        "id",
        "ts",
        "project",
        "requester",
        "package",
        "rationale",
        "status",
        "last_audit_id",
        "agent_model",
        "agent_version",
    ];
    let present = columns(conn, "approval_requests_v0")?;
    let mut read = conn.prepare(&format!(
        "SELECT {} FROM approval_requests_v0 ORDER BY ts DESC, rowid DESC",
        select_list(&present, &WANTED)
    ))?;
    let mut insert = conn.prepare(
        "INSERT INTO approval_requests (id, ts, project, requester, package, rationale, status, \
         last_audit_id, agent_model, agent_version, canonical, created_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?2)",
    )?;
    let mut history = conn.prepare(
        "INSERT INTO approval_history (request_id, ts, actor, from_status, to_status, note) \
         VALUES (?1, ?2, 'migration', ?3, ?4, ?5)",
    )?;
    let mut kept: HashMap<(String, String, String), String> = HashMap::new();
    let mut rows = read.query([])?;
    let mut n = 0u64;
    let now = now_ts();
    while let Some(r) = rows.next()? {
        let s = |i: usize| r.get_ref(i).ok().and_then(value_to_string);
        n += 1;
        let id = s(0).unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
        let raw_ts = s(1).unwrap_or_default();
        let ts = normalize_ts(&raw_ts).unwrap_or(raw_ts);
        let project = s(2).unwrap_or_default();
        let requester = s(3).unwrap_or_default();
        let package = s(4).unwrap_or_default();
        let canonical = canonical_name(&package);
        let status = s(6).unwrap_or_else(|| crate::PENDING_REVIEW.to_string());
        let key = (project.clone(), canonical.clone(), requester.clone());
        if let Some(survivor) = kept.get(&key) {
            history.execute(params![
                survivor,
                now,
                status,
                status,
                format!("merged older request {id} for {package:?} (same canonical name) during schema migration"),
            ])?;
            continue;
        }
        insert.execute(params![
            id,
            ts,
            project,
            requester,
            package,
            s(5).unwrap_or_default(),
            status,
            s(7),
            s(8),
            s(9),
            canonical,
        ])?;
        kept.insert(key, id);
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn index_names(conn: &Connection) -> Vec<String> {
        let mut stmt = conn
            .prepare("SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'audit_log' ORDER BY name")
            .unwrap();
        let names = stmt
            .query_map([], |r| r.get::<_, String>(0))
            .unwrap()
            .collect::<rusqlite::Result<Vec<_>>>()
            .unwrap();
        names
    }

    /// A version-1 file (as version 1 laid it down, with a chained row)
    /// becomes version 2: the two indexes go, rows and hashes stay.
    #[test]
    fn version_1_file_migrates_to_version_2_keeping_rows() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v1.sqlite");
        let mut conn = Connection::open(&path).unwrap();
        conn.execute_batch(SCHEMA_V1).unwrap();
        conn.execute_batch(
            "CREATE INDEX audit_log_denial ON audit_log(denial_category, verdict);
             CREATE INDEX audit_log_agent ON audit_log(agent_model, agent_version);
             INSERT INTO meta(key, value) VALUES ('schema_version', '1'), ('chain_head_seq', '1');
             INSERT INTO audit_log (seq, id, ts, project, requester, package, canonical, verdict,
                 denial_category, source, prev_hash, hash)
             VALUES (1, 'a', '2026-11-23T12:00:00.000000+00:00', 'p', 'r', 'Flask', 'flask',
                 'ALLOWED', '', 'api', 'g', 'h');
             PRAGMA user_version = 1;",
        )
        .unwrap();
        assert!(index_names(&conn).contains(&"audit_log_denial".to_string()));

        migrate(&mut conn).unwrap();

        let version: i64 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(version, SCHEMA_VERSION);
        let meta: String = conn
            .query_row(
                "SELECT value FROM meta WHERE key = 'schema_version'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(meta, SCHEMA_VERSION.to_string());
        let names = index_names(&conn);
        for gone in V2_DROPPED_INDEXES {
            assert!(
                !names.iter().any(|n| n == gone),
                "{gone} still in {names:?}"
            );
        }
        for kept in [
            "audit_log_project_ts",
            "audit_log_category_ts",
            "audit_log_ts",
        ] {
            assert!(
                names.iter().any(|n| n == kept),
                "{kept} missing from {names:?}"
            );
        }
        let (id, hash): (String, String) = conn
            .query_row("SELECT id, hash FROM audit_log WHERE seq = 1", [], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .unwrap();
        assert_eq!((id.as_str(), hash.as_str()), ("a", "h"));
        // Schema 5: the counters start from the rows already there.
        let counted: (String, i64, String) = conn
            .query_row(
                "SELECT project, n, last_ts FROM rollup_agent WHERE agent_model = ''",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .unwrap();
        assert_eq!(
            counted,
            ("p".into(), 1, "2026-11-23T12:00:00.000000+00:00".into())
        );
        // A second open is a no-op.
        migrate(&mut conn).unwrap();
    }
}
