//! Durable state in one SQLite file (WAL): the hash-chained audit log, the
//! approval requests, the persistent upstream cache, and the report queries.
//!
//! An audit append is durable once its line is in the inbox (`inbox.rs`),
//! an append-only file next to the database; one writer thread owns the
//! write connection and files inboxed rows into SQLite in batches. Reads
//! use a small pool of read-only connections, which WAL lets run beside
//! the writer, and wait for the writer to file what was appended before
//! them, so a report always includes every acknowledged row.
//!
//! Writes are `async` with blocking twins for sync callers; reads are
//! plain blocking calls that take milliseconds (call them from
//! `spawn_blocking` for the larger reports).

mod access;
mod approvals;
mod chain;
mod cve_scan;
pub mod export;
pub mod forward;
mod inbox;
pub mod outbox;
pub mod relay;
mod reports;
mod rollup;
mod schema;
mod timeline;
mod util;
mod writer;

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::{mpsc, Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};
use serde::{Deserialize, Serialize};

pub use access::{
    key_hash, AccessDb, ApiKey, CreatedKey, OverrideRow, DELIVERY_RETENTION, KEY_PREFIX,
};
pub use approvals::{
    ApprovalRequest, HistoryEntry, NewApprovalRequest, ProposalOutcome, APPROVED, PENDING_REVIEW,
    REJECTED, STATUSES, WITHDRAWN,
};
pub use chain::{BrokenRow, VerifyReport, GENESIS_HASH};
pub use cve_scan::{AlertRecord, ScanTarget};
pub use export::{ExportFilter, ExportFormat};
pub use inbox::Recovery;
pub use schema::SCHEMA_VERSION;
pub use timeline::DayVerdicts;
pub use util::canonical_name;

use inbox::Inbox;
use writer::Job;

/// One evaluation, as recorded. Every column of the original `audit_log`
/// plus the canonical name, the requirement and the source of the check.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct AuditRow {
    pub project: String,
    pub requester: String,
    /// As the caller wrote it.
    pub package: String,
    /// PEP 503 canonical name (reports group on it).
    pub canonical: String,
    pub version: Option<String>,
    pub requirement: Option<String>,
    pub resolved_version: Option<String>,
    /// `ALLOWED` | `PROVISIONALLY_ALLOWED` | `DENIED` | `CVE_ALERT` | `PROPOSAL_FAILED`.
    pub verdict: String,
    /// `registry` | `license` | `cve` | `cve_alert` | `malicious` | `not-found` | `upstream` | `""`.
    pub denial_category: String,
    pub reason: Option<String>,
    pub license: Option<String>,
    pub cve_ids: Vec<String>,
    pub max_cvss: Option<f64>,
    pub registry_status: Option<String>,
    pub agent_model: Option<String>,
    pub agent_version: Option<String>,
    /// `api`, `batch`, `lsp`, `precommit`, `hook`, `scanner`, …
    pub source: String,
    /// How `requester` was authenticated: `anonymous`, `apikey:<key id>`,
    /// `header`, `webhook`, …; `None` for rows the daemon wrote itself.
    pub auth_method: Option<String>,
}

/// What an append returns once its row is committed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuditReceipt {
    pub id: String,
    /// Chain position (1-based, contiguous).
    pub seq: u64,
    pub ts: String,
    pub hash: String,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("cannot create the database directory {path}: {source}")]
    CreateDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "the database has schema version {found}, newer than this lex-align supports ({supported}); \
         upgrade lex-align or point DATABASE_PATH at another file"
    )]
    SchemaTooNew { found: i64, supported: i64 },
    #[error("writing to the database failed: {0}")]
    Write(String),
    #[error("the store's writer thread has stopped")]
    WriterGone,
    #[error(
        "the audit database {0} is in use by another lex-align process (one daemon writes a database; \
         stop it, or point DATABASE_PATH at another file)"
    )]
    InUse(PathBuf),
    #[error("this store was opened read-only")]
    ReadOnly,
    #[error("no approval request with id {0}")]
    NotFound(String),
    #[error(
        "invalid approval status {0:?} (expected PENDING_REVIEW, APPROVED, REJECTED or WITHDRAWN)"
    )]
    InvalidStatus(String),
    #[error("invalid timestamp {0:?} (expected RFC 3339, e.g. 2026-11-23T12:14:40.031333+00:00)")]
    InvalidTimestamp(String),
    #[error("{0}")]
    Invalid(String),
}

/// `PRAGMA synchronous` of the writer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Synchronous {
    /// WAL fsync at every commit: an acknowledged row survives power loss.
    Full,
    /// WAL fsync at checkpoints only: survives a process crash, not power loss.
    Normal,
}

#[derive(Debug, Clone)]
pub struct StoreOptions {
    pub synchronous: Synchronous,
    pub busy_timeout: Duration,
    /// Idle read connections kept open.
    pub read_pool: usize,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            synchronous: Synchronous::Full,
            busy_timeout: Duration::from_secs(5),
            read_pool: 4,
        }
    }
}

/// Handle to the database. Cheap to clone; all clones share the writer
/// thread and the read pool. The writer stops when the last clone drops.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    opts: StoreOptions,
    tx: Mutex<Option<mpsc::Sender<Job>>>,
    /// `None` when opened read-only.
    inbox: Option<Arc<Inbox>>,
    recovery: Recovery,
    writer: Mutex<Option<JoinHandle<()>>>,
    /// Dropping the sender stops the checkpointer.
    checkpoint_stop: Mutex<Option<mpsc::Sender<()>>>,
    checkpointer: Mutex<Option<JoinHandle<()>>>,
    readers: Mutex<Vec<Connection>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Closing the channel lets the writer finish what is queued and exit.
        self.tx.lock().map(|mut t| t.take()).ok();
        if let Some(h) = self.writer.lock().ok().and_then(|mut w| w.take()) {
            let _ = h.join();
        }
        self.checkpoint_stop.lock().map(|mut t| t.take()).ok();
        if let Some(h) = self.checkpointer.lock().ok().and_then(|mut w| w.take()) {
            let _ = h.join();
        }
    }
}

/// A pooled read connection, returned to the pool on drop.
struct ReadConn<'a> {
    conn: Option<Connection>,
    inner: &'a Inner,
}

impl std::ops::Deref for ReadConn<'_> {
    type Target = Connection;
    fn deref(&self) -> &Connection {
        self.conn.as_ref().expect("present until drop")
    }
}

impl std::ops::DerefMut for ReadConn<'_> {
    fn deref_mut(&mut self) -> &mut Connection {
        self.conn.as_mut().expect("present until drop")
    }
}

impl Drop for ReadConn<'_> {
    fn drop(&mut self) {
        if let (Some(c), Ok(mut pool)) = (self.conn.take(), self.inner.readers.lock()) {
            // A connection left inside a transaction (a panic mid-report)
            // is closed, never reused.
            if pool.len() < self.inner.opts.read_pool && c.is_autocommit() {
                pool.push(c);
            }
        }
    }
}

fn with_tx(
    conn: &mut Connection,
    f: impl FnOnce(&Connection) -> Result<(), StoreError>,
) -> Result<(), StoreError> {
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    f(&tx)?;
    tx.commit()?;
    Ok(())
}

fn pragmas(conn: &Connection, opts: &StoreOptions) -> rusqlite::Result<()> {
    conn.busy_timeout(opts.busy_timeout)?;
    Ok(())
}

impl Store {
    /// Opens (creating or migrating) the database at `path` with the
    /// default options: WAL, `synchronous=FULL`.
    pub fn open(path: impl AsRef<Path>) -> Result<Store, StoreError> {
        Store::open_with(path, StoreOptions::default())
    }

    pub fn open_with(path: impl AsRef<Path>, opts: StoreOptions) -> Result<Store, StoreError> {
        let path = path.as_ref().to_path_buf();
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| StoreError::CreateDir {
                path: dir.to_path_buf(),
                source,
            })?;
        }
        // One writing process per database: the chain head lives in the
        // inbox of the process that holds this lock.
        let lock = inbox::take_lock(&path)?;
        let mut conn = Connection::open(&path)?;
        pragmas(&conn, &opts)?;
        let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
        if !mode.eq_ignore_ascii_case("wal") {
            tracing::warn!(
                "SQLite refused WAL mode (got {mode}); concurrent reads will wait for writes"
            );
        }
        let synchronous = match opts.synchronous {
            Synchronous::Full => "FULL",
            Synchronous::Normal => "NORMAL",
        };
        conn.execute_batch(&format!("PRAGMA synchronous = {synchronous}"))?;
        conn.set_prepared_statement_cache_capacity(64);
        schema::migrate(&mut conn)?;
        // Counters first (a file from before `rollup_seq` is marked as
        // counted up to its head), then the inbox a crash left, then the
        // counters again over what that filed and what the last run had
        // not counted yet.
        with_tx(&mut conn, rollup::catch_up)?;
        let (inbox, recovery) = Inbox::open(&path, lock, opts.synchronous, &mut conn)?;
        with_tx(&mut conn, rollup::catch_up)?;
        let inbox = Arc::new(inbox);

        writer::prepare(&conn);
        let conn: writer::WriteConn = Arc::new(Mutex::new(conn));
        let (tx, rx) = mpsc::channel();
        let (writer_conn, writer_inbox) = (conn.clone(), inbox.clone());
        let handle = std::thread::Builder::new()
            .name("lex-align-store-writer".into())
            .spawn(move || writer::run(writer_conn, rx, writer_inbox))
            .map_err(|e| StoreError::Write(format!("cannot start the writer thread: {e}")))?;
        let (stop_tx, stop_rx) = mpsc::channel();
        let ckpt_path = path.clone();
        let checkpointer = std::thread::Builder::new()
            .name("lex-align-store-checkpoint".into())
            .spawn({
                let conn = conn.clone();
                move || writer::run_checkpointer(ckpt_path, synchronous, conn, stop_rx)
            })
            .map_err(|e| StoreError::Write(format!("cannot start the checkpoint thread: {e}")))?;
        Ok(Store {
            inner: Arc::new(Inner {
                path,
                opts,
                tx: Mutex::new(Some(tx)),
                inbox: Some(inbox),
                recovery,
                writer: Mutex::new(Some(handle)),
                checkpoint_stop: Mutex::new(Some(stop_tx)),
                checkpointer: Mutex::new(Some(checkpointer)),
                readers: Mutex::new(Vec::new()),
            }),
        })
    }

    /// Opens an existing database for reading only, beside the process
    /// that writes it (e.g. `lex-align audit verify` next to a running
    /// daemon). Rows that process acknowledged in the last few
    /// milliseconds may still be in its inbox, not yet in the tables.
    pub fn open_read_only(path: impl AsRef<Path>) -> Result<Store, StoreError> {
        let path = path.as_ref().to_path_buf();
        let opts = StoreOptions::default();
        // Fails early (and clearly) on a file that is not a lex-align log.
        let probe = Connection::open_with_flags(&path, OpenFlags::SQLITE_OPEN_READ_ONLY)?;
        schema::check_readable(&probe)?;
        drop(probe);
        Ok(Store {
            inner: Arc::new(Inner {
                path,
                opts,
                tx: Mutex::new(None),
                inbox: None,
                recovery: Recovery::default(),
                writer: Mutex::new(None),
                checkpoint_stop: Mutex::new(None),
                checkpointer: Mutex::new(None),
                readers: Mutex::new(Vec::new()),
            }),
        })
    }

    /// What opening filed from the inbox (rows a crash left there).
    pub fn recovery(&self) -> &Recovery {
        &self.inner.recovery
    }

    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    fn send(&self, job: Job) -> Result<(), StoreError> {
        let guard = self.inner.tx.lock().map_err(|_| StoreError::WriterGone)?;
        let Some(tx) = guard.as_ref() else {
            return Err(if self.inner.inbox.is_none() {
                StoreError::ReadOnly
            } else {
                StoreError::WriterGone
            });
        };
        tx.send(job).map_err(|_| StoreError::WriterGone)
    }

    fn inbox(&self) -> Result<&Arc<Inbox>, StoreError> {
        self.inner.inbox.as_ref().ok_or(StoreError::ReadOnly)
    }

    /// Writes rows to the inbox and wakes the writer if it was idle.
    fn append_now(
        &self,
        rows: Vec<(AuditRow, Option<String>)>,
    ) -> Result<inbox::Appended, StoreError> {
        let appended = self.inbox()?.append(rows)?;
        if appended.wake {
            self.send(Job::Wake)?;
        }
        Ok(appended)
    }

    fn reader(&self) -> Result<ReadConn<'_>, StoreError> {
        let pooled = self.inner.readers.lock().ok().and_then(|mut p| p.pop());
        let conn = match pooled {
            Some(c) => c,
            None => {
                let c = Connection::open_with_flags(
                    &self.inner.path,
                    OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
                )?;
                pragmas(&c, &self.inner.opts)?;
                // Reports must never write, whatever a query does.
                c.execute_batch("PRAGMA query_only = ON")?;
                c.set_prepared_statement_cache_capacity(64);
                c
            }
        };
        Ok(ReadConn {
            conn: Some(conn),
            inner: &self.inner,
        })
    }

    /// Runs `f` in one read transaction, so a multi-query report sees one
    /// consistent snapshot while the writer goes on appending.
    fn snapshot<T>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut conn = self.reader()?;
        if self.inner.inbox.is_none() {
            // Read-only: nobody in this process writes.
            let tx = conn.transaction()?;
            let out = f(&tx);
            tx.finish()?;
            return out;
        }
        // The writer files what is queued, writes the counters and opens
        // the read transaction before it commits anything newer.
        let reader = conn.conn.take().expect("present until drop");
        let (tx, rx) = mpsc::sync_channel(1);
        self.send(Job::Snapshot(reader, tx))?;
        conn.conn = Some(rx.recv().map_err(|_| StoreError::WriterGone)??);
        let out = f(&conn);
        conn.execute_batch("COMMIT")?;
        out
    }

    /// Runs `f` on the writer thread, after everything queued before it.
    async fn exec<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.send(Job::Exec(Box::new(move |c| {
            let _ = tx.send(f(c));
        })))?;
        rx.await.map_err(|_| StoreError::WriterGone)?
    }

    fn exec_blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let (tx, rx) = mpsc::sync_channel(1);
        self.send(Job::Exec(Box::new(move |c| {
            let _ = tx.send(f(c));
        })))?;
        rx.recv().map_err(|_| StoreError::WriterGone)?
    }

    // ---- audit log -------------------------------------------------------

    /// Appends one row; resolves after the transaction holding it committed.
    pub async fn append_audit(&self, row: AuditRow) -> Result<AuditReceipt, StoreError> {
        let mut v = self.append_audit_batch(vec![row]).await?;
        v.pop().ok_or(StoreError::WriterGone)
    }

    /// Appends rows (e.g. one batch evaluate) contiguously, in order.
    pub async fn append_audit_batch(
        &self,
        rows: Vec<AuditRow>,
    ) -> Result<Vec<AuditReceipt>, StoreError> {
        // A write of a few hundred bytes into the page cache: done on the
        // caller's thread, no hand-off to the writer.
        let appended = self.append_now(rows.into_iter().map(|r| (r, None)).collect())?;
        if let Some(ticket) = appended.sync {
            let inbox = self.inbox()?.clone();
            tokio::task::spawn_blocking(move || inbox.sync(ticket))
                .await
                .map_err(|_| StoreError::WriterGone)??;
        }
        Ok(appended.receipts)
    }

    /// [`Store::append_audit`] for sync callers (not from inside an async task).
    pub fn append_audit_blocking(&self, row: AuditRow) -> Result<AuditReceipt, StoreError> {
        self.append_blocking(row, None)
    }

    /// Appends a row with a given timestamp (imports, the scanner, tests).
    /// Any RFC 3339 time is accepted and stored in the store's UTC format.
    pub fn append_audit_at_blocking(
        &self,
        row: AuditRow,
        ts: &str,
    ) -> Result<AuditReceipt, StoreError> {
        let ts = util::normalize_ts(ts).ok_or_else(|| StoreError::InvalidTimestamp(ts.into()))?;
        self.append_blocking(row, Some(ts))
    }

    /// Appends rows with given timestamps contiguously, in order, in one
    /// inbox write (imports, seeding a benchmark): the fast path for many
    /// rows. Every timestamp is checked before anything is written.
    pub fn append_audit_batch_at_blocking(
        &self,
        rows: Vec<(AuditRow, String)>,
    ) -> Result<Vec<AuditReceipt>, StoreError> {
        let rows = rows
            .into_iter()
            .map(|(row, ts)| match util::normalize_ts(&ts) {
                Some(ts) => Ok((row, Some(ts))),
                None => Err(StoreError::InvalidTimestamp(ts)),
            })
            .collect::<Result<Vec<_>, _>>()?;
        let appended = self.append_now(rows)?;
        if let Some(ticket) = appended.sync {
            self.inbox()?.sync(ticket)?;
        }
        Ok(appended.receipts)
    }

    fn append_blocking(
        &self,
        row: AuditRow,
        ts: Option<String>,
    ) -> Result<AuditReceipt, StoreError> {
        let appended = self.append_now(vec![(row, ts)])?;
        if let Some(ticket) = appended.sync {
            self.inbox()?.sync(ticket)?;
        }
        appended
            .receipts
            .into_iter()
            .next()
            .ok_or(StoreError::WriterGone)
    }

    /// Recomputes the report counters (`rollup.rs`) from every audit row,
    /// in one transaction: a repair, and the recount the tests compare the
    /// counters kept at each filing with.
    pub fn rebuild_report_counters_blocking(&self) -> Result<(), StoreError> {
        self.flush()?;
        self.exec_blocking(|c| {
            let tx = c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            rollup::rebuild(&tx)?;
            tx.commit()?;
            Ok(())
        })
    }

    /// Proves the hash chain; names the first broken row.
    pub fn verify(&self) -> Result<VerifyReport, StoreError> {
        self.flush()?;
        chain::verify(&mut *self.reader()?)
    }

    pub fn row_count(&self) -> Result<u64, StoreError> {
        self.flush()?;
        let n: i64 = self
            .reader()?
            .query_row("SELECT COUNT(*) FROM audit_log", [], |r| r.get(0))?;
        Ok(n as u64)
    }

    /// Health probe: can a connection answer `SELECT 1`?
    pub fn ping(&self) -> bool {
        self.reader()
            .and_then(|c| Ok(c.query_row("SELECT 1", [], |r| r.get::<_, i64>(0))?))
            .map(|v| v == 1)
            .unwrap_or(false)
    }

    /// Waits until every row appended and every write queued before this
    /// call is committed to SQLite. A read-only store has nothing to flush.
    pub fn flush(&self) -> Result<(), StoreError> {
        if self.inner.inbox.is_none() {
            return Ok(());
        }
        let (tx, rx) = mpsc::sync_channel(1);
        self.send(Job::Flush(tx))?;
        rx.recv().map_err(|_| StoreError::WriterGone)?
    }

    // ---- approval requests ----------------------------------------------

    /// Creates or refreshes the request of `(project, canonical name,
    /// requester)` atomically. A decided request (APPROVED / REJECTED) keeps
    /// its status; a WITHDRAWN one is reopened.
    pub async fn upsert_approval_request(
        &self,
        req: NewApprovalRequest,
    ) -> Result<ApprovalRequest, StoreError> {
        self.exec(move |c| approvals::upsert(c, &req)).await
    }

    pub fn upsert_approval_request_blocking(
        &self,
        req: NewApprovalRequest,
    ) -> Result<ApprovalRequest, StoreError> {
        self.exec_blocking(move |c| approvals::upsert(c, &req))
    }

    /// Approves every PENDING_REVIEW request for these canonical names (a
    /// registry reload added them); returns how many flipped.
    pub async fn approve_pending_for(
        &self,
        canonicals: &[String],
        actor: &str,
    ) -> Result<usize, StoreError> {
        let (keys, actor) = (canonicals.to_vec(), actor.to_string());
        self.exec(move |c| approvals::approve_pending_for(c, &keys, &actor))
            .await
    }

    pub fn approve_pending_for_blocking(
        &self,
        canonicals: &[String],
        actor: &str,
    ) -> Result<usize, StoreError> {
        let (keys, actor) = (canonicals.to_vec(), actor.to_string());
        self.exec_blocking(move |c| approvals::approve_pending_for(c, &keys, &actor))
    }

    /// Operator decision: `APPROVED`, `REJECTED`, `WITHDRAWN`, or
    /// `PENDING_REVIEW` to reopen. Recorded in the request's history.
    pub async fn set_request_status(
        &self,
        id: &str,
        status: &str,
        actor: &str,
        note: Option<&str>,
    ) -> Result<ApprovalRequest, StoreError> {
        let (id, status, actor) = (id.to_string(), status.to_string(), actor.to_string());
        let note = note.map(str::to_string);
        self.exec(move |c| approvals::set_status(c, &id, &status, &actor, note.as_deref()))
            .await
    }

    pub fn set_request_status_blocking(
        &self,
        id: &str,
        status: &str,
        actor: &str,
        note: Option<&str>,
    ) -> Result<ApprovalRequest, StoreError> {
        let (id, status, actor) = (id.to_string(), status.to_string(), actor.to_string());
        let note = note.map(str::to_string);
        self.exec_blocking(move |c| approvals::set_status(c, &id, &status, &actor, note.as_deref()))
    }

    /// A reviewing proposer's outcome for request `id` (`queued` first,
    /// then what it answered), with a history entry.
    pub async fn set_proposal_outcome(
        &self,
        id: &str,
        outcome: ProposalOutcome,
    ) -> Result<ApprovalRequest, StoreError> {
        let id = id.to_string();
        self.exec(move |c| approvals::set_proposal(c, &id, &outcome))
            .await
    }

    /// Requests still `queued` for a reviewing proposer (sent again at start).
    pub fn queued_proposals(&self) -> Result<Vec<ApprovalRequest>, StoreError> {
        self.snapshot(approvals::queued_proposals)
    }

    pub fn approval_request(&self, id: &str) -> Result<Option<ApprovalRequest>, StoreError> {
        self.snapshot(|c| approvals::get(c, id))
    }

    /// Status changes of one request, oldest first.
    pub fn approval_history(&self, id: &str) -> Result<Vec<HistoryEntry>, StoreError> {
        self.snapshot(|c| approvals::history(c, id))
    }

    // ---- reports (reports.md shapes) -------------------------------------

    /// `GET /reports/approval-requests`. `None`/`""` = no filter, echoed as given.
    pub fn approval_requests_report(
        &self,
        project: Option<&str>,
        status: Option<&str>,
    ) -> Result<serde_json::Value, StoreError> {
        self.snapshot(|c| approvals::report(c, project, status))
    }

    /// `GET /reports/legal`.
    pub fn legal_report(&self, project: Option<&str>) -> Result<serde_json::Value, StoreError> {
        self.snapshot(|c| reports::legal(c, project))
    }

    /// `GET /reports/security`. `registry`: `(canonical name, status)` of
    /// every live registry entry (empty without a registry).
    pub fn security_report(
        &self,
        project: Option<&str>,
        registry: &[(String, String)],
    ) -> Result<serde_json::Value, StoreError> {
        self.snapshot(|c| reports::security(c, project, registry))
    }

    /// `GET /reports/projects`.
    pub fn projects_report(&self) -> Result<serde_json::Value, StoreError> {
        self.snapshot(reports::projects)
    }

    /// `GET /reports/agents`.
    pub fn agents_report(&self, project: Option<&str>) -> Result<serde_json::Value, StoreError> {
        self.snapshot(|c| reports::agents(c, project))
    }

    /// `GET /registry/pending`: `{explicit, implicit}`; `registry_keys` are
    /// the canonical names in the live registry.
    pub fn pending(
        &self,
        registry_keys: &HashSet<String>,
    ) -> Result<serde_json::Value, StoreError> {
        self.snapshot(|c| reports::pending(c, registry_keys))
    }

    /// Verdict counts per UTC day over the last `days` days, oldest first
    /// (the dashboards' timeline).
    pub fn verdicts_per_day(
        &self,
        project: Option<&str>,
        days: u32,
    ) -> Result<Vec<DayVerdicts>, StoreError> {
        self.snapshot(|c| timeline::verdicts_per_day(c, project, days))
    }

    // ---- background CVE re-scan --------------------------------------------

    /// Package versions allowed (or provisionally allowed) in the last
    /// `days` days: what the re-scan checks. A read snapshot, no write lock.
    pub fn cve_scan_targets(&self, days: i64) -> Result<Vec<ScanTarget>, StoreError> {
        self.snapshot(|c| cve_scan::targets(c, days))
    }

    /// Every `CVE_ALERT` row written so far, oldest first.
    pub fn cve_alert_records(&self) -> Result<Vec<AlertRecord>, StoreError> {
        self.snapshot(cve_scan::alerts)
    }

    // ---- persistent cache ------------------------------------------------

    /// The cached value, unless absent or expired.
    pub fn cache_get(&self, key: &str) -> Option<Vec<u8>> {
        let conn = self.reader().ok()?;
        let mut stmt = conn
            .prepare_cached("SELECT value FROM cache WHERE key = ?1 AND expires_at > ?2")
            .ok()?;
        stmt.query_row(rusqlite::params![key, util::unix_millis_now()], |r| {
            r.get(0)
        })
        .ok()
    }

    /// Queues a cache write and returns at once (it rides along with the
    /// writer's next commit; [`Store::flush`] waits for it). Best effort: a
    /// cache write that cannot be queued is only logged.
    pub fn cache_put(&self, key: &str, value: &[u8], ttl: Duration) {
        let ttl_ms = i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX / 2);
        let job = Job::CachePut {
            key: key.to_string(),
            value: value.to_vec(),
            expires_at: util::unix_millis_now().saturating_add(ttl_ms),
        };
        if let Err(e) = self.send(job) {
            tracing::warn!("cache write for {key} dropped: {e}");
        }
    }

    /// Deletes expired cache rows now (the writer also does it every ten
    /// minutes); returns how many.
    pub fn purge_expired_cache(&self) -> Result<usize, StoreError> {
        self.exec_blocking(|c| Ok(writer::purge_cache(c)?))
    }
}
