//! The outbox of a personal daemon: every audit row it writes, waiting to
//! be shipped to its team server (team mode, docs/team.md).
//!
//! The outbox is the audit log itself plus a cursor. A verdict is
//! acknowledged only once its row is durable in the log (the inbox), so a
//! row is in the outbox the moment it exists: there is no second write on
//! the evaluate path and no window in which a crash could leave a verdict
//! given but never queued. `outbox_cursor` holds the highest local `seq`
//! the team server confirmed; the shipper reads rows after it in chain
//! order, sends them (the team dedupes by row id), then moves the cursor.
//! A crash between the team's answer and the cursor update resends a batch
//! the team already has, which its `shipped_rows` table turns into a no-op.

use rusqlite::{params, Connection, OptionalExtension};
use serde::{Deserialize, Serialize};

#[cfg(test)]
use crate::chain::{StoredRow, STORED_COLUMNS};
use crate::util::now_ts;
use crate::{AuditRow, Store, StoreError};

/// The most rows one ingest request carries.
pub const SHIP_BATCH_MAX: usize = 500;

const OUTBOX_SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS outbox_cursor (
    id               INTEGER PRIMARY KEY CHECK (id = 1),
    shipped_seq      INTEGER NOT NULL,
    last_delivery_at TEXT
);
INSERT OR IGNORE INTO outbox_cursor (id, shipped_seq, last_delivery_at)
    VALUES (1, (SELECT COALESCE(MAX(seq), 0) FROM audit_log), NULL);
";

/// One audit row on the wire between a personal daemon and its team
/// server: the row id the personal daemon gave it, its time, and every
/// audit column.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShipRow {
    /// The personal daemon's audit row id (a UUID): the idempotency key.
    pub row_id: String,
    /// When the personal daemon decided (RFC 3339).
    pub ts: String,
    /// Position in the personal daemon's chain (informational).
    #[serde(default)]
    pub local_seq: Option<u64>,
    #[serde(flatten)]
    pub row: AuditRow,
}

/// [`ShipRow`] borrowed from a result row: same fields, same order, so the
/// same JSON.
#[derive(Serialize)]
struct ShipRowRef<'a> {
    row_id: &'a str,
    ts: &'a str,
    local_seq: Option<u64>,
    project: &'a str,
    requester: &'a str,
    package: &'a str,
    canonical: &'a str,
    version: Option<&'a str>,
    requirement: Option<&'a str>,
    resolved_version: Option<&'a str>,
    verdict: &'a str,
    denial_category: &'a str,
    reason: Option<&'a str>,
    license: Option<&'a str>,
    cve_ids: Vec<String>,
    max_cvss: Option<f64>,
    registry_status: Option<&'a str>,
    agent_model: Option<&'a str>,
    agent_version: Option<&'a str>,
    source: &'a str,
    auth_method: Option<&'a str>,
}

#[cfg(test)]
impl ShipRow {
    fn from_stored(s: StoredRow) -> ShipRow {
        let cve_ids = s
            .cve_ids
            .as_deref()
            .and_then(|j| serde_json::from_str::<Vec<String>>(j).ok())
            .unwrap_or_default();
        ShipRow {
            row_id: s.id,
            ts: s.ts,
            local_seq: u64::try_from(s.seq).ok(),
            row: AuditRow {
                project: s.project,
                requester: s.requester,
                package: s.package,
                canonical: s.canonical,
                version: s.version,
                requirement: s.requirement,
                resolved_version: s.resolved_version,
                verdict: s.verdict,
                denial_category: s.denial_category,
                reason: s.reason,
                license: s.license,
                cve_ids,
                max_cvss: s.max_cvss,
                registry_status: s.registry_status,
                agent_model: s.agent_model,
                agent_version: s.agent_version,
                source: s.source,
                auth_method: s.auth_method,
            },
        }
    }
}

/// The queue as health and `lex-align team status` show it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OutboxStatus {
    /// Rows written locally and not yet confirmed by the team server.
    pub depth: u64,
    /// Highest local seq the team server confirmed.
    pub shipped_seq: u64,
    /// Highest local seq filed into SQLite.
    pub head_seq: u64,
    /// When the team server last confirmed a batch (RFC 3339).
    pub last_delivery_at: Option<String>,
}

/// A batch to send: rows in chain order and the seq to confirm afterwards
/// (the owned form of [`Store::outbox_body`], which the tests compare it with).
#[cfg(test)]
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct OutboxBatch {
    pub rows: Vec<ShipRow>,
    pub upto_seq: u64,
}

fn cursor(c: &Connection) -> Result<(u64, Option<String>), StoreError> {
    let found: Option<(i64, Option<String>)> = c
        .query_row(
            "SELECT shipped_seq, last_delivery_at FROM outbox_cursor WHERE id = 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()
        .or_else(|e| match e {
            // Not created yet (read before `outbox_init`): nothing shipped.
            rusqlite::Error::SqliteFailure(_, Some(ref m)) if m.contains("no such table") => {
                Ok(None)
            }
            e => Err(e),
        })?;
    Ok(found
        .map(|(s, at)| (u64::try_from(s).unwrap_or(0), at))
        .unwrap_or((0, None)))
}

fn head_seq(c: &Connection) -> Result<u64, StoreError> {
    let n: Option<i64> = c.query_row("SELECT MAX(seq) FROM audit_log", [], |r| r.get(0))?;
    Ok(n.and_then(|n| u64::try_from(n).ok()).unwrap_or(0))
}

impl Store {
    /// Creates the outbox cursor (idempotent). The first time, it starts at
    /// the log's head: rows written before team mode stay local; every row
    /// after it is queued.
    pub async fn outbox_init(&self) -> Result<(), StoreError> {
        self.exec(|c| Ok(c.execute_batch(OUTBOX_SCHEMA)?)).await
    }

    /// Up to `limit` rows after the cursor, oldest first (rows appended in
    /// the last few milliseconds may still be in the inbox: the next call
    /// gets them).
    #[cfg(test)]
    pub(crate) fn outbox_batch(&self, limit: usize) -> Result<OutboxBatch, StoreError> {
        let conn = self.reader()?;
        let (shipped, _) = cursor(&conn)?;
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT {STORED_COLUMNS} FROM audit_log WHERE seq > ?1 ORDER BY seq LIMIT ?2"
        ))?;
        let rows = stmt
            .query_map(
                params![shipped as i64, limit.min(SHIP_BATCH_MAX) as i64],
                StoredRow::from_row,
            )?
            .collect::<Result<Vec<_>, _>>()?;
        let upto_seq = rows
            .last()
            .map(|r| u64::try_from(r.seq).unwrap_or(shipped))
            .unwrap_or(shipped);
        Ok(OutboxBatch {
            rows: rows.into_iter().map(ShipRow::from_stored).collect(),
            upto_seq,
        })
    }

    /// Up to `limit` rows after the cursor, oldest first, as the ingest
    /// body itself, `{"rows":[…]}`,
    /// written straight from the SQLite rows: the same bytes as serialising
    /// the batch's [`ShipRow`]s, without copying every column into owned
    /// rows first (shipping runs on the laptop's cores for every verdict).
    /// Returns the body, its row count and the seq to confirm.
    pub fn outbox_body(&self, limit: usize) -> Result<(Vec<u8>, usize, u64), StoreError> {
        let conn = self.reader()?;
        let (shipped, _) = cursor(&conn)?;
        let mut stmt = conn.prepare_cached(
            "SELECT seq, id, ts, project, requester, package, canonical, version, requirement, \
             resolved_version, verdict, denial_category, reason, license, cve_ids, max_cvss, \
             registry_status, agent_model, agent_version, source, auth_method \
             FROM audit_log WHERE seq > ?1 ORDER BY seq LIMIT ?2",
        )?;
        let mut rows = stmt.query(params![shipped as i64, limit.min(SHIP_BATCH_MAX) as i64])?;
        let mut body = Vec::with_capacity(64 * 1024);
        body.extend_from_slice(b"{\"rows\":[");
        let (mut n, mut upto_seq) = (0usize, shipped);
        while let Some(r) = rows.next()? {
            let seq: i64 = r.get(0)?;
            let text = |i: usize| -> rusqlite::Result<&str> { Ok(r.get_ref(i)?.as_str()?) };
            let opt = |i: usize| -> rusqlite::Result<Option<&str>> {
                Ok(r.get_ref(i)?.as_str_or_null()?)
            };
            let cve_ids: Vec<String> = opt(14)?
                .and_then(|j| serde_json::from_str(j).ok())
                .unwrap_or_default();
            let row = ShipRowRef {
                row_id: text(1)?,
                ts: text(2)?,
                local_seq: u64::try_from(seq).ok(),
                project: text(3)?,
                requester: text(4)?,
                package: text(5)?,
                canonical: text(6)?,
                version: opt(7)?,
                requirement: opt(8)?,
                resolved_version: opt(9)?,
                verdict: text(10)?,
                denial_category: text(11)?,
                reason: opt(12)?,
                license: opt(13)?,
                cve_ids,
                max_cvss: r.get(15)?,
                registry_status: opt(16)?,
                agent_model: opt(17)?,
                agent_version: opt(18)?,
                source: text(19)?,
                auth_method: opt(20)?,
            };
            if n > 0 {
                body.push(b',');
            }
            serde_json::to_writer(&mut body, &row)
                .map_err(|e| StoreError::Invalid(format!("cannot serialise a shipped row: {e}")))?;
            n += 1;
            upto_seq = u64::try_from(seq).unwrap_or(shipped);
        }
        body.extend_from_slice(b"]}");
        Ok((body, n, upto_seq))
    }

    /// The team server confirmed every row up to `upto_seq`. Never moves
    /// the cursor back.
    pub async fn outbox_ack(&self, upto_seq: u64) -> Result<(), StoreError> {
        self.exec(move |c| {
            c.execute_batch(OUTBOX_SCHEMA)?;
            c.execute(
                "UPDATE outbox_cursor SET shipped_seq = MAX(shipped_seq, ?1), last_delivery_at = ?2 \
                 WHERE id = 1",
                params![upto_seq as i64, now_ts()],
            )?;
            Ok(())
        })
        .await
    }

    pub fn outbox_status(&self) -> Result<OutboxStatus, StoreError> {
        let conn = self.reader()?;
        let (shipped_seq, last_delivery_at) = cursor(&conn)?;
        let head_seq = head_seq(&conn)?;
        Ok(OutboxStatus {
            depth: head_seq.saturating_sub(shipped_seq),
            shipped_seq,
            head_seq,
            last_delivery_at,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(i: usize) -> AuditRow {
        AuditRow {
            project: "p".into(),
            requester: format!("dev{i}"),
            package: "six".into(),
            verdict: "ALLOWED".into(),
            source: "api".into(),
            cve_ids: vec!["CVE-1".into()],
            ..Default::default()
        }
    }

    /// The body written from the SQLite rows is byte for byte the
    /// serialised batch, over every column kind (NULLs, scores, lists,
    /// escapes, an unparsable list).
    #[tokio::test]
    async fn the_ingest_body_is_the_serialised_batch() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db.sqlite");
        let store = Store::open(&path).unwrap();
        store.outbox_init().await.unwrap();
        for i in 0..7 {
            let mut r = row(i);
            if i % 2 == 0 {
                r.version = Some("1.0".into());
                r.reason = Some("quote \" backslash \\ tab \t é ✓".into());
                r.max_cvss = Some([9.8, 0.1, 7.0][i % 3]);
                r.agent_model = Some("model".into());
                r.auth_method = Some("apikey:k1".into());
                r.cve_ids = vec!["CVE-1".into(), "GHSA-\"x".into()];
            } else {
                r.cve_ids = vec![];
            }
            store.append_audit(r).await.unwrap();
        }
        store.flush().unwrap();
        // A list column some other tool wrote, not JSON: both give [].
        rusqlite::Connection::open(&path)
            .unwrap()
            .execute(
                "UPDATE audit_log SET cve_ids = 'not json' WHERE seq = 3",
                [],
            )
            .unwrap();
        #[derive(Serialize)]
        struct Body<'a> {
            rows: &'a [ShipRow],
        }
        for limit in [3, 500] {
            let batch = store.outbox_batch(limit).unwrap();
            let (body, n, upto) = store.outbox_body(limit).unwrap();
            let want = serde_json::to_vec(&Body { rows: &batch.rows }).unwrap();
            assert_eq!(
                String::from_utf8(body).unwrap(),
                String::from_utf8(want).unwrap()
            );
            assert_eq!((n, upto), (batch.rows.len(), batch.upto_seq));
        }
        store.outbox_ack(7).await.unwrap();
        assert_eq!(
            store.outbox_body(500).unwrap(),
            (b"{\"rows\":[]}".to_vec(), 0, 7)
        );
    }

    #[tokio::test]
    async fn the_log_is_the_queue_and_the_cursor_only_moves_forward() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path().join("db.sqlite")).unwrap();
        store.outbox_init().await.unwrap();
        for i in 0..5 {
            store.append_audit(row(i)).await.unwrap();
        }
        store.flush().unwrap();
        assert_eq!(store.outbox_status().unwrap().depth, 5);
        let b = store.outbox_batch(3).unwrap();
        assert_eq!(b.rows.len(), 3);
        assert_eq!(b.upto_seq, 3);
        assert_eq!(b.rows[0].row.requester, "dev0");
        assert_eq!(b.rows[0].row.cve_ids, vec!["CVE-1".to_string()]);
        store.outbox_ack(3).await.unwrap();
        store.outbox_ack(1).await.unwrap();
        let s = store.outbox_status().unwrap();
        assert_eq!((s.depth, s.shipped_seq), (2, 3));
        assert!(s.last_delivery_at.is_some());
        let b = store.outbox_batch(500).unwrap();
        assert_eq!(b.rows.len(), 2);
        assert_eq!(b.rows[0].row.requester, "dev3");
        // The wire form round-trips.
        let json = serde_json::to_string(&b.rows[0]).unwrap();
        let back: ShipRow = serde_json::from_str(&json).unwrap();
        assert_eq!(back, b.rows[0]);
    }
}
