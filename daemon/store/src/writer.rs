//! The writer thread: the only writer of the database.
//!
//! Audit rows reach SQLite through the inbox (`inbox.rs`): an append is
//! durable once its line is written there, and wakes this thread when the
//! inbox had nothing queued. The thread then lingers [`LINGER`] so that a
//! burst becomes one transaction, and files every queued row plus any
//! queued cache puts in ONE commit (a commit's fixed cost, mostly writing
//! WAL frames, is about that of 40 rows). Other writes (`Exec`) run after
//! the rows queued before them are filed, which is also what `flush`
//! waits on.
//!
//! WAL checkpoints run on a second thread ([`run_checkpointer`]), never
//! inside a commit: SQLite's automatic checkpoint runs in the COMMIT of
//! whichever transaction crosses the threshold, and it fsyncs the WAL and
//! the database file (also with `synchronous=NORMAL`).

use std::path::PathBuf;
use std::sync::{mpsc, Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use rusqlite::{params, Connection, TransactionBehavior};

use crate::inbox::{insert_rows, Inbox};
use crate::rollup::{Deltas, DELTAS_EVERY};
use crate::util::unix_millis_now;
use crate::StoreError;

pub(crate) type ExecFn = Box<dyn FnOnce(&mut Connection) + Send>;

pub(crate) enum Job {
    /// The inbox went from empty to holding rows.
    Wake,
    CachePut {
        key: String,
        value: Vec<u8>,
        expires_at: i64,
    },
    /// Any other write; the closure runs its own transaction and answers
    /// its caller itself.
    Exec(ExecFn),
    /// Answers once everything queued before it is committed.
    Flush(mpsc::SyncSender<Result<(), StoreError>>),
    /// A flush that also opens a read transaction on the given reader
    /// connection before anything newer is committed, and hands it back:
    /// a report then reads counters and rows of the same moment.
    Snapshot(Connection, mpsc::SyncSender<Result<Connection, StoreError>>),
}

/// After a failed commit, the queued rows are tried again this often.
const RETRY: Duration = Duration::from_secs(1);

/// How long the writer gathers rows after a wake before it commits. Rows
/// are already durable in the inbox, so this only sets how many share a
/// commit and how long each burst of filing takes a core. Measured at c=8
/// on two cores (tests/bench/RESULTS.md): 10 ms (~300-row bursts of ~2.5 ms)
/// gave p99 3.2–3.5 ms, 1 ms (~30 rows, ~0.5 ms) 1.9–2.2 ms in 4 of 6 runs
/// (two noisy runs: 3.9 and 4.0 ms). The commit's
/// fixed cost is paid more often, but short bursts leave the request
/// threads a core far more often.
const LINGER: Duration = Duration::from_millis(1);

const PURGE_EVERY: Duration = Duration::from_secs(600);

/// Page cache of the write connection, in KiB. Appends touch only the right
/// edge of the table and of each index (a few dozen pages), so 2 MB keeps
/// every hot page; a larger cache only fills with cold pages under load.
const WRITER_CACHE_KIB: i64 = 2 * 1024;

/// The write connection. Whoever writes holds it for the transaction; the
/// checkpointer takes it only for the short pass that lets the WAL start
/// over (see [`run_checkpointer`]).
pub(crate) type WriteConn = Arc<Mutex<Connection>>;

pub(crate) fn hold(conn: &WriteConn) -> MutexGuard<'_, Connection> {
    // A panic inside a transaction rolled it back when the guard's
    // Transaction dropped: the connection is still usable.
    conn.lock().unwrap_or_else(|p| p.into_inner())
}

pub(crate) fn prepare(conn: &Connection) {
    // Checkpoints belong to the checkpointer thread.
    if let Err(e) = conn.execute_batch(&format!(
        "PRAGMA cache_size = -{WRITER_CACHE_KIB}; PRAGMA wal_autocheckpoint = 0"
    )) {
        tracing::warn!("setting the writer's pragmas failed: {e}");
    }
}

pub(crate) fn run(conn: WriteConn, rx: mpsc::Receiver<Job>, inbox: Arc<Inbox>) {
    let mut last_purge = Instant::now();
    let mut puts: Vec<(String, Vec<u8>, i64)> = Vec::new();
    let mut deltas = Deltas::default();
    let mut failing = false;
    loop {
        // Waiting deltas are written within about DELTAS_EVERY even when
        // the rows stop.
        let wait = if failing {
            Some(RETRY)
        } else if !deltas.is_empty() {
            Some(DELTAS_EVERY)
        } else {
            None
        };
        let first = match wait {
            Some(wait) => match rx.recv_timeout(wait) {
                Ok(job) => job,
                Err(mpsc::RecvTimeoutError::Timeout) => Job::Wake,
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            },
            None => match rx.recv() {
                Ok(job) => job,
                Err(_) => break,
            },
        };
        let mut execs: Vec<ExecFn> = Vec::new();
        let mut flushes = Vec::new();
        let mut snapshots = Vec::new();
        let linger = matches!(first, Job::Wake) && !failing;
        let mut take = |job: Job, execs: &mut Vec<ExecFn>| match job {
            Job::Wake => {}
            Job::CachePut {
                key,
                value,
                expires_at,
            } => puts.push((key, value, expires_at)),
            Job::Exec(f) => execs.push(f),
            Job::Flush(tx) => {
                flushes.push(tx);
                // A no-op closure makes the linger below stop at once.
                execs.push(Box::new(|_| {}));
            }
            Job::Snapshot(conn, tx) => {
                snapshots.push((conn, tx));
                execs.push(Box::new(|_| {}));
            }
        };
        take(first, &mut execs);
        if linger {
            // Gather the burst; a waiting `Exec` (a flush, an approval)
            // cuts the wait short.
            let deadline = Instant::now() + LINGER;
            while execs.is_empty() {
                let left = deadline.saturating_duration_since(Instant::now());
                match rx.recv_timeout(left) {
                    Ok(job) => take(job, &mut execs),
                    Err(_) => break,
                }
            }
        }
        while let Ok(job) = rx.try_recv() {
            take(job, &mut execs);
        }
        {
            let mut c = hold(&conn);
            let filed = file(&mut c, &inbox, &mut puts, &mut deltas);
            failing = filed.is_err();
            // A flush (every report) sees counters that hold every row.
            if !flushes.is_empty() || !snapshots.is_empty() || deltas.due() {
                write_deltas(&mut c, &mut deltas);
            }
            for (reader, tx) in snapshots {
                let _ = tx.send(match filed.clone() {
                    Ok(()) => begin_read(reader),
                    Err(e) => Err(StoreError::Write(e)),
                });
            }
            for tx in flushes {
                let _ = tx.send(filed.clone().map_err(StoreError::Write));
            }
            for f in execs {
                f(&mut c);
            }
        }
        if last_purge.elapsed() >= PURGE_EVERY {
            last_purge = Instant::now();
            if let Err(e) = purge_cache(&hold(&conn)) {
                tracing::warn!("purging expired cache rows failed: {e}");
            }
        }
    }
    // The store is closing: file what is left (what fails stays in the
    // inbox for the next open).
    let mut c = hold(&conn);
    let _ = file(&mut c, &inbox, &mut puts, &mut deltas);
    write_deltas(&mut c, &mut deltas);
}

/// Opens a read transaction on `reader` (the first read fixes its view).
fn begin_read(reader: Connection) -> Result<Connection, StoreError> {
    reader.execute_batch("BEGIN DEFERRED")?;
    if let Err(e) = reader.query_row("SELECT COUNT(*) FROM meta", [], |_| Ok(())) {
        let _ = reader.execute_batch("ROLLBACK");
        return Err(e.into());
    }
    Ok(reader)
}

/// Writes the report-counter deltas in a transaction of their own. On
/// failure they are kept and tried again later; a crash loses only them,
/// and the next open's catch-up recounts their rows from the log.
fn write_deltas(conn: &mut Connection, deltas: &mut Deltas) {
    if deltas.is_empty() {
        return;
    }
    let result = (|| -> Result<(), StoreError> {
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        deltas.write(&tx)?;
        tx.commit()?;
        Ok(())
    })();
    match result {
        Ok(()) => deltas.clear(),
        Err(e) => tracing::warn!("updating the report counters failed (tried again later): {e}"),
    }
}

/// Commits every queued row and the queued cache puts in one
/// transaction. On failure the rows stay queued (they are durable in the
/// inbox) and are tried again; the cache puts are dropped (best effort).
fn file(
    conn: &mut Connection,
    inbox: &Inbox,
    puts: &mut Vec<(String, Vec<u8>, i64)>,
    deltas: &mut Deltas,
) -> Result<(), String> {
    let batch = inbox.take();
    if batch.rows.is_empty() && puts.is_empty() {
        inbox.filed(batch);
        return Ok(());
    }
    let result = (|| -> Result<(), StoreError> {
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        insert_rows(&tx, &batch.rows)?;
        {
            let mut put = tx.prepare_cached(
                "INSERT OR REPLACE INTO cache(key, value, expires_at) VALUES (?1, ?2, ?3)",
            )?;
            for (k, v, exp) in puts.iter() {
                put.execute(params![k, v, exp])?;
            }
        }
        tx.commit()?;
        Ok(())
    })();
    puts.clear();
    match result {
        Ok(()) => {
            for r in &batch.rows {
                deltas.add(r);
            }
            inbox.filed(batch);
            Ok(())
        }
        Err(e) => {
            let msg = format!(
                "filing {} audit rows into SQLite failed (they stay in the inbox and are retried): {e}",
                batch.rows.len()
            );
            tracing::error!("{msg}");
            inbox.give_back(batch);
            Err(msg)
        }
    }
}

/// How often the checkpointer looks at the WAL while it grows. Each pass
/// copies what was committed since the last one, so the interval sets the
/// length of the checkpointer's bursts of work: at c=8 on two cores, every
/// 100 ms (bursts of a few ms) gave p99 2.1–2.5 ms, every 20 ms 1.3–1.6 ms
/// (tests/bench/RESULTS.md).
const CHECKPOINT_EVERY: Duration = Duration::from_millis(20);

/// While the WAL does not change, the interval doubles up to this, so an
/// idle daemon wakes about once a second.
const CHECKPOINT_IDLE: Duration = Duration::from_secs(1);

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
    writer: WriteConn,
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
    let mut wait = CHECKPOINT_EVERY;
    let mut last = (-1, -1);
    loop {
        match stop.recv_timeout(wait) {
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            _ => return,
        }
        let pass = passive();
        wait = match &pass {
            Ok(now) if *now == last => (wait * 2).min(CHECKPOINT_IDLE),
            _ => CHECKPOINT_EVERY,
        };
        if let Ok(now) = &pass {
            last = *now;
        }
        match pass {
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
                let _g = hold(&writer);
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
