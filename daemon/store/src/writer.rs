//! The writer thread: sole owner of the write connection.
//!
//! Callers send jobs over a channel. The thread takes the first job, drains
//! whatever else is already queued (up to `max_batch` audit rows), writes all
//! queued appends and cache puts in ONE transaction, commits (with
//! `synchronous=FULL` that is one WAL fsync for the whole group) and only
//! then answers each caller. Under concurrency the cost of a commit is thus
//! shared by every row that arrived while the previous one was syncing.
//!
//! WAL checkpoints run on a second thread ([`run_checkpointer`]), never
//! inside a commit: SQLite's automatic checkpoint runs in the COMMIT of
//! whichever transaction crosses the threshold, and it fsyncs the WAL and
//! the database file (also with `synchronous=NORMAL`). On this kind of disk
//! that stalled one commit in ~100 by several milliseconds, and every caller
//! waiting on that group with it.

use std::path::PathBuf;
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};

use crate::chain::{insert_chained, CanonicalRow, GENESIS_HASH, STORED_COLUMNS};
use crate::util::{canonical_name, clean_f64, now_ts, unix_millis_now};
use crate::{AuditReceipt, AuditRow, StoreError};

/// How a caller waits for its answer.
pub(crate) enum Reply<T> {
    Async(tokio::sync::oneshot::Sender<Result<T, StoreError>>),
    Blocking(mpsc::SyncSender<Result<T, StoreError>>),
}

impl<T> Reply<T> {
    pub(crate) fn send(self, v: Result<T, StoreError>) {
        // A caller that gave up waiting is not an error of the store.
        match self {
            Reply::Async(tx) => {
                let _ = tx.send(v);
            }
            Reply::Blocking(tx) => {
                let _ = tx.send(v);
            }
        }
    }
}

pub(crate) type ExecFn = Box<dyn FnOnce(&mut Connection) + Send>;

pub(crate) enum Job {
    /// Rows with an optional caller-supplied timestamp each.
    Append {
        rows: Vec<(AuditRow, Option<String>)>,
        reply: Reply<Vec<AuditReceipt>>,
    },
    CachePut {
        key: String,
        value: Vec<u8>,
        expires_at: i64,
    },
    /// Any other write; the closure runs its own transaction and answers
    /// its caller itself.
    Exec(ExecFn),
}

const PURGE_EVERY: Duration = Duration::from_secs(600);

/// Page cache of the write connection, in KiB. Appends touch only the right
/// edge of the table and of each index (a few dozen pages), so 2 MB keeps
/// every hot page; a larger cache only fills with cold pages under load
/// (64 MB was most of the daemon's RSS; 8 MB still left it above 30 MB).
const WRITER_CACHE_KIB: i64 = 2 * 1024;

/// Held by the writer for each write transaction; the checkpointer takes it
/// only for the short pass that lets the WAL start over (see
/// [`run_checkpointer`]).
pub(crate) type Gate = Arc<Mutex<()>>;

fn hold(gate: &Gate) -> std::sync::MutexGuard<'_, ()> {
    // The guarded data is `()`: a poisoned gate is still a usable gate.
    gate.lock().unwrap_or_else(|p| p.into_inner())
}

pub(crate) fn run(mut conn: Connection, rx: mpsc::Receiver<Job>, max_batch: usize, gate: Gate) {
    // Checkpoints belong to the checkpointer thread.
    if let Err(e) = conn.execute_batch(&format!(
        "PRAGMA cache_size = -{WRITER_CACHE_KIB}; PRAGMA wal_autocheckpoint = 0"
    )) {
        tracing::warn!("setting the writer's pragmas failed: {e}");
    }
    let mut last_purge = Instant::now();
    while let Ok(first) = rx.recv() {
        let mut appends: AppendJobs = Vec::new();
        let mut puts: Vec<(String, Vec<u8>, i64)> = Vec::new();
        let mut queued_rows = 0usize;
        let mut next = Some(first);
        while let Some(job) = next.take() {
            match job {
                Job::Append { rows, reply } => {
                    queued_rows += rows.len();
                    appends.push((rows, reply));
                }
                Job::CachePut {
                    key,
                    value,
                    expires_at,
                } => puts.push((key, value, expires_at)),
                Job::Exec(f) => {
                    // Keep order: what was queued before this job commits first.
                    let _g = hold(&gate);
                    commit_group(
                        &mut conn,
                        std::mem::take(&mut appends),
                        std::mem::take(&mut puts),
                    );
                    queued_rows = 0;
                    f(&mut conn);
                }
            }
            if queued_rows < max_batch {
                next = rx.try_recv().ok();
            }
        }
        {
            let _g = hold(&gate);
            commit_group(&mut conn, appends, puts);
        }
        if last_purge.elapsed() >= PURGE_EVERY {
            last_purge = Instant::now();
            let _g = hold(&gate);
            if let Err(e) = purge_cache(&conn) {
                tracing::warn!("purging expired cache rows failed: {e}");
            }
        }
    }
}

/// How often the checkpointer looks at the WAL.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(100);

/// WAL frames (pages) after which the checkpointer makes the WAL start over.
/// A PASSIVE checkpoint copies pages while the writer goes on appending, so
/// under steady load the WAL is never fully copied at the moment the next
/// transaction begins, and SQLite only rewinds a fully copied WAL: it would
/// grow without bound. Past this size the checkpointer holds the writer
/// for one short pass (the few frames written during the unblocked pass plus
/// two fsyncs), after which the next commit rewinds the WAL. 16384 frames of
/// 4 KiB bound the WAL to about 64 MB plus one interval's appends; a smaller
/// bound holds the writer more often (at 1 connection, single-row commits
/// write ~30,000 frames a second).
const RESTART_FRAMES: i64 = 16384;

/// Unblocked catch-up passes before the held one, at most.
const CATCH_UP_PASSES: usize = 4;

/// Catching up stops once a pass leaves at most this many new frames.
const HELD_PASS_FRAMES: i64 = 1024;

/// Checkpoints the WAL off the commit path until `stop` is closed.
pub(crate) fn run_checkpointer(
    path: PathBuf,
    synchronous: &'static str,
    gate: Gate,
    stop: mpsc::Receiver<()>,
) {
    let conn = match Connection::open(&path).and_then(|c| {
        // The checkpoint's fsyncs follow this connection's setting.
        c.execute_batch(&format!("PRAGMA synchronous = {synchronous}"))?;
        Ok(c)
    }) {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(
                "cannot open the checkpoint connection ({e}); the WAL will be checkpointed only when the daemon stops"
            );
            return;
        }
    };
    let passive = || -> rusqlite::Result<(i64, i64)> {
        conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| {
            Ok((r.get(1)?, r.get(2)?))
        })
    };
    loop {
        match stop.recv_timeout(CHECKPOINT_EVERY) {
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            _ => return,
        }
        match passive() {
            Ok((mut log, _)) if log >= RESTART_FRAMES => {
                // Catch up without holding the writer: each pass copies what
                // was appended during the previous one, so the held pass
                // below copies little (its cost is then mostly two fsyncs).
                for _ in 0..CATCH_UP_PASSES {
                    match passive() {
                        Ok((now, _)) => {
                            let fresh = now - log;
                            log = now;
                            if fresh <= HELD_PASS_FRAMES {
                                break;
                            }
                        }
                        Err(e) => {
                            tracing::warn!("WAL checkpoint failed: {e}");
                            break;
                        }
                    }
                }
                let _g = hold(&gate);
                if let Err(e) = passive() {
                    tracing::warn!("WAL checkpoint failed: {e}");
                }
            }
            Ok(_) => {}
            Err(e) => tracing::warn!("WAL checkpoint failed: {e}"),
        }
    }
}

pub(crate) fn purge_cache(conn: &Connection) -> rusqlite::Result<usize> {
    conn.prepare_cached("DELETE FROM cache WHERE expires_at <= ?1")?
        .execute([unix_millis_now()])
}

type AppendJobs = Vec<(Vec<(AuditRow, Option<String>)>, Reply<Vec<AuditReceipt>>)>;

fn commit_group(conn: &mut Connection, appends: AppendJobs, puts: Vec<(String, Vec<u8>, i64)>) {
    if appends.is_empty() && puts.is_empty() {
        return;
    }
    let rows: Vec<&[(AuditRow, Option<String>)]> =
        appends.iter().map(|(r, _)| r.as_slice()).collect();
    match write_group(conn, &rows, &puts) {
        Ok(receipts) => {
            for ((_, reply), r) in appends.into_iter().zip(receipts) {
                reply.send(Ok(r));
            }
        }
        Err(e) => {
            tracing::error!("audit write failed: {e}");
            let msg = e.to_string();
            for (_, reply) in appends {
                reply.send(Err(StoreError::Write(msg.clone())));
            }
        }
    }
}

fn write_group(
    conn: &mut Connection,
    jobs: &[&[(AuditRow, Option<String>)]],
    puts: &[(String, Vec<u8>, i64)],
) -> Result<Vec<Vec<AuditReceipt>>, StoreError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let mut out = Vec::with_capacity(jobs.len());
    {
        // The head is read inside the write transaction, so the chain stays
        // right even if another process appended to the same file.
        let head: Option<(i64, String)> = tx
            .prepare_cached("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1")?
            .query_row([], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?;
        let (mut seq, mut prev) = head.unwrap_or((0, GENESIS_HASH.to_string()));
        let mut insert = tx.prepare_cached(&format!(
            "INSERT INTO audit_log ({STORED_COLUMNS}) VALUES ({})",
            (1..=22)
                .map(|i| format!("?{i}"))
                .collect::<Vec<_>>()
                .join(", ")
        ))?;
        let mut wrote = false;
        for job in jobs {
            let mut receipts = Vec::with_capacity(job.len());
            for (row, ts) in job.iter() {
                seq += 1;
                wrote = true;
                let id = uuid::Uuid::new_v4().to_string();
                let ts = ts.clone().unwrap_or_else(now_ts);
                let canonical = if row.canonical.is_empty() {
                    canonical_name(&row.package)
                } else {
                    row.canonical.clone()
                };
                let cve_ids = (!row.cve_ids.is_empty()).then(|| {
                    serde_json::to_string(&row.cve_ids).expect("a list of strings serialises")
                });
                let c = CanonicalRow {
                    seq,
                    id: &id,
                    ts: &ts,
                    project: &row.project,
                    requester: &row.requester,
                    package: &row.package,
                    canonical: &canonical,
                    version: row.version.as_deref(),
                    requirement: row.requirement.as_deref(),
                    resolved_version: row.resolved_version.as_deref(),
                    verdict: &row.verdict,
                    denial_category: &row.denial_category,
                    reason: row.reason.as_deref(),
                    license: row.license.as_deref(),
                    cve_ids: cve_ids.as_deref(),
                    max_cvss: row.max_cvss.and_then(clean_f64),
                    registry_status: row.registry_status.as_deref(),
                    agent_model: row.agent_model.as_deref(),
                    agent_version: row.agent_version.as_deref(),
                    source: &row.source,
                };
                let hash = insert_chained(&mut insert, &prev, &c)?;
                receipts.push(AuditReceipt {
                    id,
                    seq: seq as u64,
                    ts,
                    hash: hash.clone(),
                });
                prev = hash;
            }
            out.push(receipts);
        }
        if wrote {
            // Lets `verify` notice rows cut off the end of the log.
            tx.prepare_cached(
                "INSERT OR REPLACE INTO meta(key, value) VALUES ('chain_head_seq', ?1)",
            )?
            .execute([seq.to_string()])?;
        }
        let mut put = tx.prepare_cached(
            "INSERT OR REPLACE INTO cache(key, value, expires_at) VALUES (?1, ?2, ?3)",
        )?;
        for (k, v, exp) in puts {
            put.execute(params![k, v, exp])?;
        }
    }
    tx.commit()?;
    Ok(out)
}
