//! Team mode's decisions queue and its idempotency table.
//!
//! A personal daemon sends approval requests, operator proposals and
//! overrides to its team server. Each one is first written here (durable:
//! the writer commits with `synchronous=FULL`), then delivered with its id
//! as `Idempotency-Key`; while the team is away it waits, in order, and a
//! kill loses nothing. The team server keeps each answer it gave under
//! (caller, key) in `idempotent_answers`, so a delivery retried after a
//! lost answer gets the first answer back instead of acting twice.

use rusqlite::{params, Connection, OptionalExtension};
use serde::Serialize;

use crate::util::{now_ts, ts_days_ago};
use crate::{Store, StoreError};

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS team_forward (
    seq           INTEGER PRIMARY KEY AUTOINCREMENT,
    id            TEXT NOT NULL UNIQUE,
    method        TEXT NOT NULL,
    path          TEXT NOT NULL,
    project       TEXT,
    agent_model   TEXT,
    agent_version TEXT,
    body          TEXT NOT NULL,
    created_at    TEXT NOT NULL,
    state         TEXT NOT NULL,
    attempts      INTEGER NOT NULL DEFAULT 0,
    last_error    TEXT,
    answer_status INTEGER,
    answer        TEXT,
    settled_at    TEXT
);
CREATE INDEX IF NOT EXISTS team_forward_state ON team_forward (state, seq);
CREATE TABLE IF NOT EXISTS idempotent_answers (
    caller  TEXT NOT NULL,
    key     TEXT NOT NULL,
    status  INTEGER NOT NULL,
    body    BLOB NOT NULL,
    at      TEXT NOT NULL,
    PRIMARY KEY (caller, key)
);
";

/// Waiting for the team server.
pub const QUEUED: &str = "queued";
/// The team answered 2xx.
pub const DELIVERED: &str = "delivered";
/// The team answered 4xx (a role it lacks, a conflict, a bad request):
/// final, kept with the answer for `team status`.
pub const REFUSED: &str = "refused";

/// Answers kept this long for retried deliveries.
const ANSWER_RETENTION_DAYS: i64 = 30;

/// A request for the team server.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NewForward {
    /// `POST`, `DELETE`.
    pub method: String,
    /// The team route, e.g. `/api/v1/approval-requests`.
    pub path: String,
    /// `X-LexAlign-Project` and the agent headers to send along.
    pub project: Option<String>,
    pub agent_model: Option<String>,
    pub agent_version: Option<String>,
    /// The JSON body.
    pub body: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Forward {
    pub seq: i64,
    /// A UUID: the `Idempotency-Key`.
    pub id: String,
    pub method: String,
    pub path: String,
    pub project: Option<String>,
    pub agent_model: Option<String>,
    pub agent_version: Option<String>,
    pub body: String,
    pub created_at: String,
    pub state: String,
    pub attempts: i64,
    pub last_error: Option<String>,
}

/// The queue as health and `team status` show it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Default)]
pub struct ForwardStatus {
    pub queued: u64,
    pub delivered: u64,
    pub refused: u64,
    pub oldest_queued_at: Option<String>,
    /// The last refusal: path, status and the team's answer.
    pub last_refused: Option<serde_json::Value>,
}

fn init(c: &Connection) -> Result<(), StoreError> {
    Ok(c.execute_batch(SCHEMA)?)
}

fn missing_table(e: &rusqlite::Error) -> bool {
    matches!(e, rusqlite::Error::SqliteFailure(_, Some(m)) if m.contains("no such table"))
}

const COLUMNS: &str = "seq, id, method, path, project, agent_model, agent_version, body, \
    created_at, state, attempts, last_error";

fn from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Forward> {
    Ok(Forward {
        seq: r.get(0)?,
        id: r.get(1)?,
        method: r.get(2)?,
        path: r.get(3)?,
        project: r.get(4)?,
        agent_model: r.get(5)?,
        agent_version: r.get(6)?,
        body: r.get(7)?,
        created_at: r.get(8)?,
        state: r.get(9)?,
        attempts: r.get(10)?,
        last_error: r.get(11)?,
    })
}

impl Store {
    /// Queues a request for the team server; resolves once it is durable.
    pub async fn forward_enqueue(&self, new: NewForward) -> Result<Forward, StoreError> {
        let id = uuid::Uuid::new_v4().to_string();
        self.exec(move |c| {
            init(c)?;
            c.execute(
                "INSERT INTO team_forward (id, method, path, project, agent_model, agent_version, \
                 body, created_at, state) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                params![
                    id,
                    new.method,
                    new.path,
                    new.project,
                    new.agent_model,
                    new.agent_version,
                    new.body,
                    now_ts(),
                    QUEUED
                ],
            )?;
            let f = c.query_row(
                &format!("SELECT {COLUMNS} FROM team_forward WHERE id = ?1"),
                [&id],
                from_row,
            )?;
            Ok(f)
        })
        .await
    }

    /// Up to `limit` queued requests, oldest first.
    pub fn forward_queued(&self, limit: usize) -> Result<Vec<Forward>, StoreError> {
        let conn = self.reader()?;
        let stmt = conn.prepare_cached(&format!(
            "SELECT {COLUMNS} FROM team_forward WHERE state = ?1 ORDER BY seq LIMIT ?2"
        ));
        let mut stmt = match stmt {
            Ok(s) => s,
            Err(e) if missing_table(&e) => return Ok(Vec::new()),
            Err(e) => return Err(e.into()),
        };
        let rows = stmt
            .query_map(params![QUEUED, limit as i64], from_row)?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }

    /// The team answered: `DELIVERED` (2xx) or `REFUSED` (4xx), final.
    pub async fn forward_settle(
        &self,
        id: &str,
        state: &'static str,
        status: u16,
        answer: String,
    ) -> Result<(), StoreError> {
        let id = id.to_string();
        self.exec(move |c| {
            c.execute(
                "UPDATE team_forward SET state = ?2, answer_status = ?3, answer = ?4, \
                 settled_at = ?5, attempts = attempts + 1, last_error = NULL WHERE id = ?1",
                params![id, state, status, answer, now_ts()],
            )?;
            Ok(())
        })
        .await
    }

    /// A delivery that did not reach the team (it stays queued).
    pub async fn forward_attempt_failed(&self, id: &str, error: String) -> Result<(), StoreError> {
        let id = id.to_string();
        self.exec(move |c| {
            c.execute(
                "UPDATE team_forward SET attempts = attempts + 1, last_error = ?2 WHERE id = ?1",
                params![id, error],
            )?;
            Ok(())
        })
        .await
    }

    pub fn forward_status(&self) -> Result<ForwardStatus, StoreError> {
        let conn = self.reader()?;
        let counts = conn.query_row(
            "SELECT \
               COALESCE(SUM(state = 'queued'), 0), COALESCE(SUM(state = 'delivered'), 0), \
               COALESCE(SUM(state = 'refused'), 0), \
               MIN(CASE WHEN state = 'queued' THEN created_at END) \
             FROM team_forward",
            [],
            |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, i64>(2)?,
                    r.get::<_, Option<String>>(3)?,
                ))
            },
        );
        let (queued, delivered, refused, oldest) = match counts {
            Ok(c) => c,
            Err(e) if missing_table(&e) => return Ok(ForwardStatus::default()),
            Err(e) => return Err(e.into()),
        };
        let last_refused = conn
            .query_row(
                "SELECT path, answer_status, answer, settled_at FROM team_forward \
                 WHERE state = 'refused' ORDER BY seq DESC LIMIT 1",
                [],
                |r| {
                    let answer: Option<String> = r.get(2)?;
                    Ok(serde_json::json!({
                        "path": r.get::<_, String>(0)?,
                        "status": r.get::<_, Option<i64>>(1)?,
                        "answer": answer
                            .as_deref()
                            .and_then(|a| serde_json::from_str::<serde_json::Value>(a).ok())
                            .or(answer.map(serde_json::Value::String)),
                        "at": r.get::<_, Option<String>>(3)?,
                    }))
                },
            )
            .optional()?;
        Ok(ForwardStatus {
            queued: queued as u64,
            delivered: delivered as u64,
            refused: refused as u64,
            oldest_queued_at: oldest,
            last_refused,
        })
    }

    // ---- team server side ---------------------------------------------

    /// The answer given to `caller` for `key`, if any.
    pub async fn idempotent_answer(
        &self,
        caller: &str,
        key: &str,
    ) -> Result<Option<(u16, Vec<u8>)>, StoreError> {
        let (caller, key) = (caller.to_string(), key.to_string());
        self.exec(move |c| {
            init(c)?;
            let found = c
                .query_row(
                    "SELECT status, body FROM idempotent_answers WHERE caller = ?1 AND key = ?2",
                    params![caller, key],
                    |r| Ok((r.get::<_, i64>(0)?, r.get::<_, Vec<u8>>(1)?)),
                )
                .optional()?;
            Ok(found.map(|(s, b)| (u16::try_from(s).unwrap_or(500), b)))
        })
        .await
    }

    /// Keeps the answer (the first one wins) and forgets old ones.
    pub async fn keep_idempotent_answer(
        &self,
        caller: &str,
        key: &str,
        status: u16,
        body: Vec<u8>,
    ) -> Result<(), StoreError> {
        let (caller, key) = (caller.to_string(), key.to_string());
        self.exec(move |c| {
            init(c)?;
            c.execute(
                "INSERT OR IGNORE INTO idempotent_answers (caller, key, status, body, at) \
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                params![caller, key, status, body, now_ts()],
            )?;
            c.execute(
                "DELETE FROM idempotent_answers WHERE at < ?1",
                [ts_days_ago(ANSWER_RETENTION_DAYS)],
            )?;
            Ok(())
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn queued_requests_survive_a_reopen_in_order_and_settle() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db.sqlite");
        let store = Store::open(&path).unwrap();
        assert_eq!(store.forward_status().unwrap(), ForwardStatus::default());
        let mk = |p: &str| NewForward {
            method: "POST".into(),
            path: "/api/v1/approval-requests".into(),
            project: Some("web".into()),
            body: format!("{{\"package\":\"{p}\"}}"),
            ..Default::default()
        };
        let a = store.forward_enqueue(mk("six")).await.unwrap();
        let b = store.forward_enqueue(mk("attrs")).await.unwrap();
        assert_ne!(a.id, b.id);
        drop(store);
        let store = Store::open(&path).unwrap();
        let q = store.forward_queued(10).unwrap();
        assert_eq!(
            q.iter().map(|f| f.id.as_str()).collect::<Vec<_>>(),
            vec![a.id.as_str(), b.id.as_str()]
        );
        store
            .forward_attempt_failed(&a.id, "away".into())
            .await
            .unwrap();
        assert_eq!(store.forward_queued(1).unwrap()[0].attempts, 1);
        store
            .forward_settle(&a.id, DELIVERED, 202, "{}".into())
            .await
            .unwrap();
        store
            .forward_settle(&b.id, REFUSED, 403, "{\"detail\":\"no\"}".into())
            .await
            .unwrap();
        assert!(store.forward_queued(10).unwrap().is_empty());
        let s = store.forward_status().unwrap();
        assert_eq!((s.queued, s.delivered, s.refused), (0, 1, 1));
        assert_eq!(s.last_refused.unwrap()["answer"]["detail"], "no");
    }

    #[tokio::test]
    async fn an_answer_is_kept_per_caller_and_the_first_wins() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path().join("db.sqlite")).unwrap();
        assert!(store.idempotent_answer("k1", "x").await.unwrap().is_none());
        store
            .keep_idempotent_answer("k1", "x", 202, b"first".to_vec())
            .await
            .unwrap();
        store
            .keep_idempotent_answer("k1", "x", 409, b"second".to_vec())
            .await
            .unwrap();
        assert_eq!(
            store.idempotent_answer("k1", "x").await.unwrap(),
            Some((202, b"first".to_vec()))
        );
        // Another caller with the same key gets nothing of k1's.
        assert!(store.idempotent_answer("k2", "x").await.unwrap().is_none());
    }
}
