//! The team server's side of team mode: rows shipped by personal daemons
//! land in this log's chain exactly once, and every registry the team
//! serves gets a monotonic epoch its followers compare.
//!
//! Exactly once: `shipped_rows` remembers each personal row id. An ingest
//! (one at a time per process) first marks its new ids `pending`, then
//! appends the rows (durable in the inbox), then marks them `done`. A crash
//! between the two marks leaves `pending` ids; when such an id comes again
//! (the personal daemon retries: it only moves its cursor on a 2xx), the
//! log is searched for the relayed row (same time, requester, package and
//! relay identity): found, the id is a duplicate; not found, it is appended.

use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};
use serde::Serialize;

use crate::outbox::ShipRow;
use crate::util::{canonical_name, normalize_ts, now_ts};
use crate::{Store, StoreError};

const RELAY_SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS shipped_rows (
    row_id      TEXT PRIMARY KEY,
    state       TEXT NOT NULL,
    shipper     TEXT NOT NULL,
    ts          TEXT NOT NULL,
    requester   TEXT NOT NULL,
    canonical   TEXT NOT NULL,
    audit_id    TEXT,
    seq         INTEGER,
    received_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS registry_epochs (
    epoch   INTEGER PRIMARY KEY AUTOINCREMENT,
    hash    TEXT NOT NULL,
    version TEXT NOT NULL,
    at      TEXT NOT NULL
);
";

/// One ingest at a time per process (the classify-append-mark steps of two
/// batches carrying the same id must not interleave).
static INGEST: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// What an ingest did with each row id.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct IngestOutcome {
    /// Appended to the chain now.
    pub new: Vec<String>,
    /// Already in the chain (a retried batch).
    pub duplicate: Vec<String>,
}

fn init(c: &Connection) -> Result<(), StoreError> {
    Ok(c.execute_batch(RELAY_SCHEMA)?)
}

impl Store {
    /// Appends rows shipped by a personal daemon (`shipper`: its identity
    /// on this server) with their original requester and time, and
    /// `auth_method = relay:<shipper>`. Idempotent by `row_id`.
    pub async fn relay_ingest(
        &self,
        rows: Vec<ShipRow>,
        shipper: &str,
    ) -> Result<IngestOutcome, StoreError> {
        let _one = INGEST.lock().await;
        let method = format!("relay:{shipper}");
        let mut prepared = Vec::with_capacity(rows.len());
        let mut seen = std::collections::HashSet::new();
        for mut r in rows {
            if r.row_id.trim().is_empty() || r.row_id.len() > 100 {
                return Err(StoreError::Invalid(
                    "every row needs a row_id (at most 100 characters)".into(),
                ));
            }
            let ts =
                normalize_ts(&r.ts).ok_or_else(|| StoreError::InvalidTimestamp(r.ts.clone()))?;
            if !seen.insert(r.row_id.clone()) {
                continue;
            }
            if r.row.canonical.is_empty() {
                r.row.canonical = canonical_name(&r.row.package);
            }
            r.row.auth_method = Some(method.clone());
            r.ts = ts;
            prepared.push(r);
        }

        // 1. Classify; mark new ids pending.
        let keys: Vec<(String, String, String, String)> = prepared
            .iter()
            .map(|r| {
                (
                    r.row_id.clone(),
                    r.ts.clone(),
                    r.row.requester.clone(),
                    r.row.canonical.clone(),
                )
            })
            .collect();
        let (shipper_s, method_s) = (shipper.to_string(), method.clone());
        let fresh: Vec<bool> = self
            .exec(move |c| {
                init(c)?;
                let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
                let mut out = Vec::with_capacity(keys.len());
                for (id, ts, requester, canonical) in &keys {
                    // Cached statements: a batch runs these once per row.
                    let state: Option<String> = tx
                        .prepare_cached("SELECT state FROM shipped_rows WHERE row_id = ?1")?
                        .query_row([id], |r| r.get(0))
                        .optional()?;
                    let is_new = match state.as_deref() {
                        None => {
                            tx.prepare_cached(
                                "INSERT INTO shipped_rows (row_id, state, shipper, ts, requester, canonical, received_at) \
                                 VALUES (?1, 'pending', ?2, ?3, ?4, ?5, ?6)",
                            )?
                            .execute(params![id, shipper_s, ts, requester, canonical, now_ts()])?;
                            true
                        }
                        Some("pending") => {
                            // A crash after the append, before the mark?
                            let found: Option<(String, i64)> = tx
                                .query_row(
                                    // A row another id already owns is not this one
                                    // (two verdicts can share time, requester and package).
                                    "SELECT id, seq FROM audit_log WHERE ts = ?1 AND requester = ?2 \
                                     AND canonical = ?3 AND auth_method = ?4 \
                                     AND id NOT IN (SELECT audit_id FROM shipped_rows \
                                                    WHERE state = 'done' AND audit_id IS NOT NULL) \
                                     LIMIT 1",
                                    params![ts, requester, canonical, method_s],
                                    |r| Ok((r.get(0)?, r.get(1)?)),
                                )
                                .optional()?;
                            match found {
                                Some((audit_id, seq)) => {
                                    tx.execute(
                                        "UPDATE shipped_rows SET state = 'done', audit_id = ?2, seq = ?3 WHERE row_id = ?1",
                                        params![id, audit_id, seq],
                                    )?;
                                    false
                                }
                                None => true,
                            }
                        }
                        Some(_) => false,
                    };
                    out.push(is_new);
                }
                tx.commit()?;
                Ok(out)
            })
            .await?;

        let mut outcome = IngestOutcome::default();
        let mut to_append = Vec::new();
        for (r, is_new) in prepared.into_iter().zip(fresh) {
            if is_new {
                outcome.new.push(r.row_id.clone());
                to_append.push(r);
            } else {
                outcome.duplicate.push(r.row_id);
            }
        }
        if to_append.is_empty() {
            return Ok(outcome);
        }

        // 2. Append (durable before we answer).
        let ids: Vec<String> = to_append.iter().map(|r| r.row_id.clone()).collect();
        let appended =
            self.append_now(to_append.into_iter().map(|r| (r.row, Some(r.ts))).collect())?;
        if let Some(ticket) = appended.sync {
            let inbox = self.inbox()?.clone();
            tokio::task::spawn_blocking(move || inbox.sync(ticket))
                .await
                .map_err(|_| StoreError::WriterGone)??;
        }

        // 3. Mark done.
        let marks: Vec<(String, String, u64)> = ids
            .into_iter()
            .zip(appended.receipts)
            .map(|(id, r)| (id, r.id, r.seq))
            .collect();
        self.exec(move |c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            for (id, audit_id, seq) in &marks {
                tx.prepare_cached(
                    "UPDATE shipped_rows SET state = 'done', audit_id = ?2, seq = ?3 WHERE row_id = ?1",
                )?
                .execute(params![id, audit_id, *seq as i64])?;
            }
            tx.commit()?;
            Ok(())
        })
        .await?;
        Ok(outcome)
    }

    /// How many shipped rows this log holds (`state = done`).
    pub fn relayed_count(&self) -> Result<u64, StoreError> {
        self.flush()?;
        let conn = self.reader()?;
        let n: i64 = conn
            .query_row(
                "SELECT COUNT(*) FROM shipped_rows WHERE state = 'done'",
                [],
                |r| r.get(0),
            )
            .or_else(|e| match e {
                rusqlite::Error::SqliteFailure(_, Some(ref m)) if m.contains("no such table") => {
                    Ok(0)
                }
                e => Err(e),
            })?;
        Ok(n as u64)
    }

    /// The epoch of the registry served now: the last epoch when its hash
    /// is unchanged, else a new one (so it only ever grows, across
    /// restarts, even when a file goes back to an earlier content).
    pub async fn registry_epoch(&self, hash: &str, version: &str) -> Result<u64, StoreError> {
        let (hash, version) = (hash.to_string(), version.to_string());
        self.exec(move |c| {
            init(c)?;
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let last: Option<(i64, String)> = tx
                .query_row(
                    "SELECT epoch, hash FROM registry_epochs ORDER BY epoch DESC LIMIT 1",
                    [],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()?;
            let epoch = match last {
                Some((e, h)) if h == hash => e,
                _ => {
                    tx.execute(
                        "INSERT INTO registry_epochs (hash, version, at) VALUES (?1, ?2, ?3)",
                        params![hash, version, now_ts()],
                    )?;
                    tx.last_insert_rowid()
                }
            };
            tx.commit()?;
            Ok(u64::try_from(epoch).unwrap_or(0))
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::AuditRow;

    fn ship(id: &str, ts: &str) -> ShipRow {
        ShipRow {
            row_id: id.into(),
            ts: ts.into(),
            local_seq: None,
            row: AuditRow {
                project: "p".into(),
                requester: "alice".into(),
                package: "Six".into(),
                verdict: "ALLOWED".into(),
                source: "api".into(),
                auth_method: Some("anonymous".into()),
                ..Default::default()
            },
        }
    }

    #[tokio::test]
    async fn a_retried_batch_never_duplicates_and_the_chain_verifies() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path().join("db.sqlite")).unwrap();
        let batch = vec![
            ship("a", "2026-01-01T00:00:00.000001+00:00"),
            ship("b", "2026-01-01T00:00:01Z"),
            ship("a", "2026-01-01T00:00:00.000001+00:00"),
        ];
        let o = store.relay_ingest(batch.clone(), "key_1").await.unwrap();
        assert_eq!(o.new, vec!["a", "b"]);
        assert!(o.duplicate.is_empty());
        let o = store.relay_ingest(batch, "key_1").await.unwrap();
        assert!(o.new.is_empty());
        assert_eq!(o.duplicate, vec!["a", "b"]);
        assert_eq!(store.row_count().unwrap(), 2);
        assert_eq!(store.relayed_count().unwrap(), 2);
        assert!(store.verify().unwrap().ok);
    }

    #[tokio::test]
    async fn a_pending_id_is_resolved_against_the_log() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path().join("db.sqlite")).unwrap();
        // Simulate a crash after the append, before the `done` mark.
        store
            .relay_ingest(vec![ship("a", "2026-01-01T00:00:00Z")], "k")
            .await
            .unwrap();
        store
            .exec(|c| {
                c.execute("UPDATE shipped_rows SET state = 'pending'", [])?;
                Ok(())
            })
            .await
            .unwrap();
        let o = store
            .relay_ingest(
                vec![
                    ship("a", "2026-01-01T00:00:00Z"),
                    ship("c", "2026-01-01T00:00:02Z"),
                ],
                "k",
            )
            .await
            .unwrap();
        assert_eq!(o.duplicate, vec!["a"]);
        assert_eq!(o.new, vec!["c"]);
        assert_eq!(store.row_count().unwrap(), 2);
    }

    #[tokio::test]
    async fn a_pending_id_never_takes_a_row_another_id_owns() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path().join("db.sqlite")).unwrap();
        let ts = "2026-01-01T00:00:00Z";
        store.relay_ingest(vec![ship("a", ts)], "k").await.unwrap();
        // `b` (same time, requester and package as `a`) was marked pending,
        // then the server died before appending it.
        store
            .exec(move |c| {
                c.execute(
                    "INSERT INTO shipped_rows (row_id, state, shipper, ts, requester, canonical, received_at) \
                     SELECT 'b', 'pending', shipper, ts, requester, canonical, received_at \
                     FROM shipped_rows WHERE row_id = 'a'",
                    [],
                )?;
                Ok(())
            })
            .await
            .unwrap();
        let o = store.relay_ingest(vec![ship("b", ts)], "k").await.unwrap();
        assert_eq!(o.new, vec!["b"], "b was taken for a's row and lost");
        assert_eq!(store.row_count().unwrap(), 2);
        assert_eq!(store.relayed_count().unwrap(), 2);
    }

    #[tokio::test]
    async fn epochs_only_grow() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path().join("db.sqlite")).unwrap();
        assert_eq!(store.registry_epoch("h1", "1").await.unwrap(), 1);
        assert_eq!(store.registry_epoch("h1", "1").await.unwrap(), 1);
        assert_eq!(store.registry_epoch("h2", "2").await.unwrap(), 2);
        assert_eq!(store.registry_epoch("h1", "1").await.unwrap(), 3);
    }
}
