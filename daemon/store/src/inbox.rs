//! The inbox: where an audit row becomes durable before it is filed into
//! the SQLite tables.
//!
//! Why it exists: committing a row to SQLite writes whole pages to the WAL
//! (the table leaf, each index leaf, the chain-head row: 6–8 pages of 4 KiB
//! for a row of ~700 bytes), and on a virtual disk that write path, not the
//! evaluation, made the daemon's latency tail. An append now writes one
//! line to an append-only file and answers; the writer thread files the
//! rows into SQLite in batches a few milliseconds later, where one
//! transaction of a hundred rows costs about what one row used to.
//!
//! Layout: `<database>.inbox/` holds `lock` (held exclusively while a
//! store writes: one writing process per database, since the chain head
//! lives here) and numbered segments `<n>.log`. A line is
//!
//! ```text
//! <hash hex> <canonical JSON>\n
//! ```
//!
//! the row's chain hash and exactly the bytes it hashes (see `chain.rs`),
//! so recovery re-proves every row before filing it. A segment is deleted
//! once every row in it is committed to SQLite.
//!
//! Durability: the line is written (and with `synchronous=FULL` fsynced)
//! before the append returns. A crash leaves rows here; the next open files
//! them before anything else. A torn last line (the process died inside the
//! write) was never acknowledged and is dropped.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use rusqlite::{Connection, OptionalExtension, TransactionBehavior};

use crate::chain::{hash_canonical, insert_row, StoredRow, GENESIS_HASH, INSERT_ROW};
use crate::util::{canonical_name, clean_f64, now_ts};
use crate::{AuditReceipt, AuditRow, StoreError, Synchronous};

/// A segment is closed (and later deleted) past this size: about 25,000
/// rows, a second or two of full load.
const SEGMENT_BYTES: u64 = 16 * 1024 * 1024;

/// Hex SHA-256.
const HASH_LEN: usize = 64;

pub(crate) struct Inbox {
    dir: PathBuf,
    sync: Synchronous,
    /// Held (locked) for the inbox's lifetime.
    _lock: File,
    tail: Mutex<Tail>,
    /// FULL only: `(segment, length)` known to be on disk.
    synced: Mutex<(u64, u64)>,
}

struct Tail {
    file: Arc<File>,
    segment: u64,
    len: u64,
    /// Chain head: the last appended row.
    seq: i64,
    hash: String,
    /// Appended, not yet committed to SQLite, in chain order.
    pending: Vec<StoredRow>,
    /// Closed segments and the last seq each holds.
    closed: Vec<(u64, i64)>,
    /// Reused line buffer.
    buf: Vec<u8>,
}

/// What an append leaves to do outside the lock.
pub(crate) struct Appended {
    pub receipts: Vec<AuditReceipt>,
    /// The writer has nothing queued: wake it.
    pub wake: bool,
    /// FULL: the write to make durable before answering.
    pub sync: Option<SyncTicket>,
}

pub(crate) struct SyncTicket {
    file: Arc<File>,
    upto: (u64, u64),
}

/// Rows taken by the writer, with the segments it may delete once they
/// are committed.
pub(crate) struct Batch {
    pub rows: Vec<StoredRow>,
    closed: Vec<(u64, i64)>,
}

/// What recovery found at open.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Recovery {
    /// Rows filed from the inbox (acknowledged before a crash).
    pub filed: u64,
    /// A torn last line was dropped (never acknowledged).
    pub torn: bool,
    /// Segments kept aside (renamed `*.damaged`) because a line did not
    /// prove against the chain.
    pub damaged: Vec<PathBuf>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every update of the tail leaves it consistent before it can panic.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Takes the database's write lock (`<database>.inbox/lock`), held until
/// the returned file is dropped.
pub(crate) fn take_lock(db: &Path) -> Result<File, StoreError> {
    let dir = inbox_dir(db);
    std::fs::create_dir_all(&dir).map_err(|source| StoreError::CreateDir {
        path: dir.clone(),
        source,
    })?;
    let lock_path = dir.join("lock");
    let lock_file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(|e| StoreError::Write(format!("cannot open {}: {e}", lock_path.display())))?;
    match lock_file.try_lock() {
        Ok(()) => Ok(lock_file),
        Err(std::fs::TryLockError::WouldBlock) => Err(StoreError::InUse(db.to_path_buf())),
        Err(std::fs::TryLockError::Error(e)) => Err(StoreError::Write(format!(
            "cannot lock {}: {e}",
            lock_path.display()
        ))),
    }
}

pub(crate) fn inbox_dir(db: &Path) -> PathBuf {
    let mut name = db.file_name().unwrap_or_default().to_os_string();
    name.push(".inbox");
    db.with_file_name(name)
}

fn segment_path(dir: &Path, n: u64) -> PathBuf {
    dir.join(format!("{n:020}.log"))
}

/// Segment numbers present in `dir` (damaged ones included, so a new
/// segment never reuses their number), sorted.
fn segments(dir: &Path) -> std::io::Result<(Vec<u64>, u64)> {
    let mut live = Vec::new();
    let mut max = 0;
    for e in std::fs::read_dir(dir)? {
        let name = e?.file_name();
        let name = name.to_string_lossy();
        let Some((num, ext)) = name.split_once('.') else {
            continue;
        };
        let Ok(n) = num.parse::<u64>() else { continue };
        max = max.max(n);
        if ext == "log" {
            live.push(n);
        }
    }
    live.sort_unstable();
    Ok((live, max))
}

fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

fn open_segment(dir: &Path, n: u64, sync: Synchronous) -> Result<File, StoreError> {
    let path = segment_path(dir, n);
    let f = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .map_err(|e| StoreError::Write(format!("cannot create {}: {e}", path.display())))?;
    if sync == Synchronous::Full {
        sync_dir(dir).map_err(|e| StoreError::Write(format!("fsync {}: {e}", dir.display())))?;
    }
    Ok(f)
}

impl Inbox {
    /// Files whatever a crash left in the inbox into `conn` and starts a
    /// fresh segment. `lock` comes from [`take_lock`].
    pub(crate) fn open(
        db: &Path,
        lock_file: File,
        sync: Synchronous,
        conn: &mut Connection,
    ) -> Result<(Inbox, Recovery), StoreError> {
        let dir = inbox_dir(db);
        let recovery = recover(&dir, conn)?;
        let (seq, hash) = head(conn)?;
        let (_, max) =
            segments(&dir).map_err(|e| StoreError::Write(format!("{}: {e}", dir.display())))?;
        let segment = max + 1;
        let file = open_segment(&dir, segment, sync)?;
        Ok((
            Inbox {
                dir,
                sync,
                _lock: lock_file,
                tail: Mutex::new(Tail {
                    file: Arc::new(file),
                    segment,
                    len: 0,
                    seq,
                    hash,
                    pending: Vec::new(),
                    closed: Vec::new(),
                    buf: Vec::with_capacity(4096),
                }),
                synced: Mutex::new((0, 0)),
            },
            recovery,
        ))
    }

    /// Chains `rows` onto the head and writes them in one `write`. The
    /// rows are durable against a process crash when this returns; with
    /// FULL, after [`Inbox::sync`] of the ticket.
    pub(crate) fn append(
        &self,
        rows: Vec<(AuditRow, Option<String>)>,
    ) -> Result<Appended, StoreError> {
        // Everything that does not depend on the chain's position is done
        // before the lock: request threads queue on it.
        let rows: Vec<StoredRow> = rows
            .into_iter()
            .map(|(row, ts)| stored_row(row, ts))
            .collect();
        let mut t = lock(&self.tail);
        let t = &mut *t;
        t.buf.clear();
        let mut seq = t.seq;
        let mut prev = t.hash.clone();
        let mut stored = Vec::with_capacity(rows.len());
        let mut receipts = Vec::with_capacity(rows.len());
        for mut s in rows {
            seq += 1;
            s.seq = seq;
            // Stamped under the lock: rows appended now are in time order.
            if s.ts.is_empty() {
                s.ts = now_ts();
            }
            let start = t.buf.len();
            t.buf.extend_from_slice(&[b'0'; HASH_LEN]);
            t.buf.push(b' ');
            serde_json::to_writer(&mut t.buf, &s.canonical())
                .expect("a row of strings and numbers serialises");
            let hash = hash_canonical(&prev, &t.buf[start + HASH_LEN + 1..]);
            t.buf[start..start + HASH_LEN].copy_from_slice(hash.as_bytes());
            t.buf.push(b'\n');
            receipts.push(AuditReceipt {
                id: s.id.clone(),
                seq: seq as u64,
                ts: s.ts.clone(),
                hash: hash.clone(),
            });
            s.prev_hash = std::mem::replace(&mut prev, hash.clone());
            s.hash = hash;
            stored.push(s);
        }
        if let Err(e) = (&*t.file).write_all(&t.buf) {
            // Nothing of a failed write may stay: a later line would
            // follow a half one. The head was not moved yet.
            let cut = t.file.set_len(t.len);
            return Err(StoreError::Write(match cut {
                Ok(()) => format!("appending to the audit inbox failed: {e}"),
                Err(c) => format!(
                    "appending to the audit inbox failed ({e}), and cutting the partial line failed too ({c})"
                ),
            }));
        }
        t.len += t.buf.len() as u64;
        t.seq = seq;
        t.hash = prev;
        let wake = t.pending.is_empty();
        t.pending.append(&mut stored);
        let mut sync = (self.sync == Synchronous::Full).then(|| SyncTicket {
            file: t.file.clone(),
            upto: (t.segment, t.len),
        });
        if t.len >= SEGMENT_BYTES {
            match self.rotate(t) {
                // The closed segment was synced whole.
                Ok(()) => sync = None,
                Err(e) => tracing::warn!("starting a new audit inbox segment failed: {e}"),
            }
        }
        Ok(Appended {
            receipts,
            wake,
            sync,
        })
    }

    fn rotate(&self, t: &mut Tail) -> Result<(), StoreError> {
        if self.sync == Synchronous::Full {
            t.file
                .sync_data()
                .map_err(|e| StoreError::Write(format!("fsync of the audit inbox failed: {e}")))?;
            let mut s = lock(&self.synced);
            *s = (*s).max((t.segment, t.len));
        }
        let next = t.segment + 1;
        let file = open_segment(&self.dir, next, self.sync)?;
        t.closed.push((t.segment, t.seq));
        t.file = Arc::new(file);
        t.segment = next;
        t.len = 0;
        Ok(())
    }

    /// Makes a FULL append durable. Callers that arrive while another one
    /// syncs wait, then usually find their write already covered: one
    /// fsync for the group.
    pub(crate) fn sync(&self, ticket: SyncTicket) -> Result<(), StoreError> {
        let mut s = lock(&self.synced);
        if *s >= ticket.upto {
            return Ok(());
        }
        ticket
            .file
            .sync_data()
            .map_err(|e| StoreError::Write(format!("fsync of the audit inbox failed: {e}")))?;
        *s = (*s).max(ticket.upto);
        Ok(())
    }

    /// Every queued row, for the writer to commit, with the closed
    /// segments (all their rows are among these or already filed).
    pub(crate) fn take(&self) -> Batch {
        let mut t = lock(&self.tail);
        Batch {
            rows: std::mem::take(&mut t.pending),
            closed: std::mem::take(&mut t.closed),
        }
    }

    /// A batch whose commit failed goes back in front of newer rows.
    pub(crate) fn give_back(&self, mut batch: Batch) {
        let mut t = lock(&self.tail);
        batch.rows.append(&mut t.pending);
        t.pending = batch.rows;
        batch.closed.append(&mut t.closed);
        t.closed = batch.closed;
    }

    /// After `batch` committed: its closed segments hold nothing unfiled.
    pub(crate) fn filed(&self, batch: Batch) {
        for (n, _) in batch.closed {
            let path = segment_path(&self.dir, n);
            if let Err(e) = std::fs::remove_file(&path) {
                tracing::warn!(
                    "cannot delete the filed inbox segment {}: {e}",
                    path.display()
                );
            }
        }
    }
}

/// The row as stored, before the append gives it its place (`seq`, the
/// hashes) and, for a row appended now (`ts` empty), its time.
fn stored_row(row: AuditRow, ts: Option<String>) -> StoredRow {
    let canonical = if row.canonical.is_empty() {
        canonical_name(&row.package)
    } else {
        row.canonical
    };
    let cve_ids = (!row.cve_ids.is_empty())
        .then(|| serde_json::to_string(&row.cve_ids).expect("a list of strings serialises"));
    StoredRow {
        seq: 0,
        id: uuid::Uuid::new_v4().to_string(),
        ts: ts.unwrap_or_default(),
        project: row.project,
        requester: row.requester,
        package: row.package,
        canonical,
        version: row.version,
        requirement: row.requirement,
        resolved_version: row.resolved_version,
        verdict: row.verdict,
        denial_category: row.denial_category,
        reason: row.reason,
        license: row.license,
        cve_ids,
        max_cvss: row.max_cvss.and_then(clean_f64),
        registry_status: row.registry_status,
        agent_model: row.agent_model,
        agent_version: row.agent_version,
        source: row.source,
        auth_method: row.auth_method,
        prev_hash: String::new(),
        hash: String::new(),
    }
}

/// `(seq, hash)` of the last committed row.
fn head(conn: &Connection) -> Result<(i64, String), StoreError> {
    Ok(conn
        .prepare_cached("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1")?
        .query_row([], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?
        .unwrap_or((0, GENESIS_HASH.to_string())))
}

/// Commits `rows` (consecutive, chained) after the head, with the
/// chain-head marker, in the caller's transaction.
pub(crate) fn insert_rows(tx: &Connection, rows: &[StoredRow]) -> Result<(), StoreError> {
    let Some(first) = rows.first() else {
        return Ok(());
    };
    let (seq, hash) = head(tx)?;
    if first.seq != seq + 1 || first.prev_hash != hash {
        // Someone wrote to the table behind the lock's back (a tool on the
        // file). Filing on top would fork the chain; keep the rows.
        return Err(StoreError::Write(format!(
            "the audit log's head moved outside lex-align (head seq {seq}, next queued row {}); \
             queued rows stay in the inbox",
            first.seq
        )));
    }
    let mut insert = tx.prepare_cached(INSERT_ROW)?;
    for r in rows {
        insert_row(&mut insert, &r.canonical(), &r.prev_hash, &r.hash)?;
    }
    let last = rows.last().map(|r| r.seq).unwrap_or(seq);
    // The report counters follow separately (`rollup.rs`): the writer's
    // deltas, or the catch-up at open.
    tx.prepare_cached("INSERT OR REPLACE INTO meta(key, value) VALUES ('chain_head_seq', ?1)")?
        .execute([last.to_string()])?;
    Ok(())
}

/// Files every provable row a previous process left in the inbox, then
/// deletes the segments. Damaged segments are renamed, never deleted.
fn recover(dir: &Path, conn: &mut Connection) -> Result<Recovery, StoreError> {
    let mut out = Recovery::default();
    let (live, _) =
        segments(dir).map_err(|e| StoreError::Write(format!("{}: {e}", dir.display())))?;
    if live.is_empty() {
        return Ok(out);
    }
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let (mut seq, mut prev) = head(&tx)?;
    let mut rows = Vec::new();
    let mut done = Vec::new();
    for &n in &live {
        let path = segment_path(dir, n);
        let file = File::open(&path)
            .map_err(|e| StoreError::Write(format!("cannot read {}: {e}", path.display())))?;
        let mut reader = BufReader::new(file);
        let mut line = Vec::new();
        let mut damage = None;
        loop {
            line.clear();
            let read = reader
                .read_until(b'\n', &mut line)
                .map_err(|e| StoreError::Write(format!("cannot read {}: {e}", path.display())))?;
            if read == 0 {
                break;
            }
            if line.last() != Some(&b'\n') {
                out.torn = true;
                break;
            }
            match prove(&line[..line.len() - 1], seq, &prev) {
                Proof::Filed => continue,
                Proof::Next(row) => {
                    seq = row.seq;
                    prev = row.hash.clone();
                    rows.push(*row);
                }
                Proof::Broken(why) => {
                    damage = Some(why);
                    break;
                }
            }
        }
        match damage {
            None => done.push(path),
            Some(why) => {
                let aside = path.with_extension("damaged");
                tracing::error!(
                    "audit inbox segment {} does not prove against the chain ({why}); \
                     kept as {} and not filed",
                    path.display(),
                    aside.display()
                );
                std::fs::rename(&path, &aside).map_err(|e| {
                    StoreError::Write(format!("cannot rename {}: {e}", path.display()))
                })?;
                out.damaged.push(aside);
                // Later segments continue a chain that is now cut.
                for &m in live.iter().filter(|&&m| m > n) {
                    let p = segment_path(dir, m);
                    let a = p.with_extension("damaged");
                    if std::fs::rename(&p, &a).is_ok() {
                        out.damaged.push(a);
                    }
                }
                break;
            }
        }
    }
    insert_rows(&tx, &rows)?;
    tx.commit()?;
    out.filed = rows.len() as u64;
    for p in done {
        std::fs::remove_file(&p)
            .map_err(|e| StoreError::Write(format!("cannot delete {}: {e}", p.display())))?;
    }
    if out.filed > 0 || out.torn || !out.damaged.is_empty() {
        tracing::warn!(
            "audit inbox recovery: {} acknowledged rows filed{}{}",
            out.filed,
            if out.torn {
                ", one torn (unacknowledged) line dropped"
            } else {
                ""
            },
            if out.damaged.is_empty() {
                ""
            } else {
                ", damaged segments kept aside"
            }
        );
    }
    Ok(out)
}

enum Proof {
    /// Already in SQLite (filed before the crash).
    Filed,
    /// The next row of the chain.
    Next(Box<StoredRow>),
    Broken(String),
}

fn prove(line: &[u8], head_seq: i64, head_hash: &str) -> Proof {
    if line.len() < HASH_LEN + 2 || line[HASH_LEN] != b' ' {
        return Proof::Broken("a line without a hash".into());
    }
    let (hash, json) = (&line[..HASH_LEN], &line[HASH_LEN + 1..]);
    let mut row: StoredRow = match serde_json::from_slice(json) {
        Ok(r) => r,
        Err(e) => return Proof::Broken(format!("unreadable row: {e}")),
    };
    if row.seq <= head_seq {
        return Proof::Filed;
    }
    if row.seq != head_seq + 1 {
        return Proof::Broken(format!("row {} follows row {head_seq}", row.seq));
    }
    let computed = hash_canonical(head_hash, json);
    if computed.as_bytes() != hash {
        return Proof::Broken(format!("row {} does not match its hash", row.seq));
    }
    row.prev_hash = head_hash.to_string();
    row.hash = computed;
    Proof::Next(Box::new(row))
}
