//! Audit export: the log streamed in `seq` order from one read transaction
//! (constant memory whatever its size), as JSONL (verifiable on its own),
//! CSV or Markdown; and the proof of a JSONL export
//! ([`verify_export`]). The format is described in `docs/audit-log.md`.
//!
//! A JSONL export is
//!
//! 1. a header line (`"lex_align_export": "header"`): format version,
//!    mode, filters, and the anchor — `seq` and `prev_hash` of the row just
//!    before the first exported one;
//! 2. one line per row: the row's canonical JSON (the exact bytes its
//!    chain hash covers, see `chain.rs`) followed by `prev_hash` and `hash`
//!    (and, in a filtered export, `export_prev_seq`);
//! 3. a checkpoint line (`"lex_align_export": "checkpoint"`): row count,
//!    first and last seq, head hash, a digest of every exported row hash,
//!    the header's SHA-256, the log's own head and the time, signed with
//!    the daemon's key. A hash chain alone cannot show that rows were cut
//!    off its end; the signed count and head can.
//!
//! An unfiltered export is the whole chain (`mode: "chain"`): every row is
//! proven against the one before it. With `--since`/`--until`/`--project`
//! the rows are not contiguous (`mode: "filtered"`): each row is proven
//! against its own `prev_hash`/`hash`, `export_prev_seq` names the row
//! before it in the export, and the signed digest covers the exported set.

use std::io::{BufRead, Write};

use rusqlite::Row;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use time::macros::format_description;
use time::{Date, Time};

use crate::chain::{row_hash, CanonicalRow, StoredRow, STORED_COLUMNS};
use crate::{util, Store, StoreError, GENESIS_HASH};

/// `format` of the header line.
pub const EXPORT_FORMAT: &str = "lex-align-audit-export";
/// `version` of the header line.
pub const EXPORT_VERSION: u32 = 1;
/// DSSE payload type a checkpoint signature is made for (its PAE binds it,
/// so a checkpoint signature can never pass as a verdict's or vice versa).
pub const CHECKPOINT_PAYLOAD_TYPE: &str = "application/vnd.lex-align.checkpoint+json";
/// Key of the header and checkpoint lines (rows never have it).
const MARKER: &str = "lex_align_export";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportFormat {
    Jsonl,
    Csv,
    Markdown,
}

/// Which rows to export. Bounds are in the store's timestamp format (see
/// [`parse_time_bound`]); `since` is inclusive, `until` exclusive.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExportFilter {
    pub since: Option<String>,
    pub until: Option<String>,
    pub project: Option<String>,
}

impl ExportFilter {
    pub fn is_empty(&self) -> bool {
        self.since.is_none() && self.until.is_none() && self.project.is_none()
    }

    fn admits(&self, project: &str, ts: &str) -> bool {
        self.project.as_deref().is_none_or(|p| p == project)
            && self.since.as_deref().is_none_or(|s| ts >= s)
            && self.until.as_deref().is_none_or(|u| ts < u)
    }
}

/// An RFC 3339 time, or a date (`2026-01-31`), in the store's timestamp
/// format. A date means the start of that day (UTC), or with `end_of_day`
/// the start of the next, so `--until 2026-01-31` includes that day.
pub fn parse_time_bound(s: &str, end_of_day: bool) -> Result<String, StoreError> {
    let s = s.trim();
    if let Some(t) = util::normalize_ts(s) {
        return Ok(t);
    }
    let date = Date::parse(s, format_description!("[year]-[month]-[day]"))
        .map_err(|_| StoreError::InvalidTimestamp(s.to_string()))?;
    let date = if end_of_day {
        date.next_day()
            .ok_or_else(|| StoreError::InvalidTimestamp(s.to_string()))?
    } else {
        date
    };
    Ok(util::format_ts(date.with_time(Time::MIDNIGHT).assume_utc()))
}

/// Signs checkpoints (the daemon's key; `signing.rs` of the daemon).
pub trait CheckpointSigner {
    fn key_id(&self) -> String;
    /// The base64 signature over the DSSE PAE of `payload_type` and `payload`.
    fn sign(&self, payload_type: &str, payload: &[u8]) -> String;
}

/// Checks a checkpoint signature against trusted keys.
pub trait CheckpointVerifier {
    /// `Err` says why (unknown key, bad signature).
    fn verify(
        &self,
        key_id: &str,
        payload_type: &str,
        payload: &[u8],
        signature: &str,
    ) -> Result<(), String>;
}

/// `seq` and `hash` of a row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChainPoint {
    pub seq: u64,
    pub hash: String,
}

/// What a checkpoint signs. Every value is a string, an integer or null, so
/// its compact JSON (the signed bytes) is the same wherever it is rebuilt.
/// Field order is the wire format: never reorder.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Checkpoint {
    /// `export` (closes an export) or `log` (the daemon's periodic one).
    pub scope: String,
    /// RFC 3339 UTC.
    pub created_at: String,
    pub key_id: String,
    /// Rows covered: exported, or in the whole log.
    pub rows: u64,
    pub first_seq: Option<u64>,
    pub last_seq: Option<u64>,
    /// `hash` of the last row covered ([`GENESIS_HASH`] when none).
    pub head_hash: String,
    /// Export: hex SHA-256 of the exported rows' `hash` values concatenated
    /// (hex ASCII, in file order).
    pub digest: Option<String>,
    /// Export: hex SHA-256 of the header line (without its newline).
    pub header_sha256: Option<String>,
    /// Export: the whole log's head when the export was taken.
    pub log_head: Option<ChainPoint>,
}

impl Checkpoint {
    /// The bytes the signature covers (inside the DSSE PAE).
    pub fn signed_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("strings and integers serialise")
    }
}

/// A signed checkpoint: the last line of an export (with the marker), a
/// line of `checkpoints.jsonl` (without).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignedCheckpoint {
    #[serde(
        rename = "lex_align_export",
        skip_serializing_if = "Option::is_none",
        default
    )]
    pub marker: Option<String>,
    pub checkpoint: Checkpoint,
    /// Base64 Ed25519 signature over `PAE(CHECKPOINT_PAYLOAD_TYPE, compact JSON of checkpoint)`.
    pub signature: String,
}

impl SignedCheckpoint {
    fn sign(checkpoint: Checkpoint, signer: &dyn CheckpointSigner, marker: bool) -> Self {
        let signature = signer.sign(CHECKPOINT_PAYLOAD_TYPE, &checkpoint.signed_bytes());
        SignedCheckpoint {
            marker: marker.then(|| "checkpoint".to_string()),
            checkpoint,
            signature,
        }
    }

    /// Checks the signature (not what it covers).
    pub fn verify(&self, verifier: &dyn CheckpointVerifier) -> Result<(), String> {
        verifier.verify(
            &self.checkpoint.key_id,
            CHECKPOINT_PAYLOAD_TYPE,
            &self.checkpoint.signed_bytes(),
            &self.signature,
        )
    }
}

/// The first line of a JSONL export.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExportHeader {
    #[serde(rename = "lex_align_export")]
    pub marker: String,
    pub format: String,
    pub version: u32,
    pub created_at: String,
    /// `chain` (unfiltered: contiguous from seq 1) or `filtered`.
    pub mode: String,
    pub filters: ExportFilter,
    /// `seq` and `prev_hash` of the first exported row (the row before it
    /// is where the export hangs on the chain); null when nothing matched.
    pub anchor: Option<ChainPoint>,
}

/// What an export wrote.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ExportSummary {
    pub rows: u64,
    pub first_seq: Option<u64>,
    pub last_seq: Option<u64>,
    pub head_hash: String,
    /// The log's head when the export was taken.
    pub log_head: ChainPoint,
}

const CSV_COLUMNS: [&str; 23] = [
    "seq",
    "id",
    "ts",
    "project",
    "requester",
    "package",
    "canonical",
    "version",
    "requirement",
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
    "source",
    "auth_method",
    "prev_hash",
    "hash",
];

/// A text column, borrowed from the row.
fn text<'r>(r: &'r Row<'_>, i: usize) -> rusqlite::Result<&'r str> {
    r.get_ref(i)?.as_str().map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(i, rusqlite::types::Type::Text, Box::new(e))
    })
}

/// A nullable text column, borrowed from the row.
fn opt_text<'r>(r: &'r Row<'_>, i: usize) -> rusqlite::Result<Option<&'r str>> {
    r.get_ref(i)?.as_str_or_null().map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(i, rusqlite::types::Type::Text, Box::new(e))
    })
}

/// A row read straight from SQLite, borrowing its text (no allocation),
/// with its `prev_hash` and `hash`.
fn canonical_of<'r>(r: &'r Row<'_>) -> rusqlite::Result<(CanonicalRow<'r>, &'r str, &'r str)> {
    let row = CanonicalRow {
        seq: r.get(0)?,
        id: text(r, 1)?,
        ts: text(r, 2)?,
        project: text(r, 3)?,
        requester: text(r, 4)?,
        package: text(r, 5)?,
        canonical: text(r, 6)?,
        version: opt_text(r, 7)?,
        requirement: opt_text(r, 8)?,
        resolved_version: opt_text(r, 9)?,
        verdict: text(r, 10)?,
        denial_category: text(r, 11)?,
        reason: opt_text(r, 12)?,
        license: opt_text(r, 13)?,
        cve_ids: opt_text(r, 14)?,
        max_cvss: r.get(15)?,
        registry_status: opt_text(r, 16)?,
        agent_model: opt_text(r, 17)?,
        agent_version: opt_text(r, 18)?,
        source: text(r, 19)?,
        auth_method: opt_text(r, 22)?,
    };
    Ok((row, text(r, 20)?, text(r, 21)?))
}

fn hex_sha256(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

fn io(e: std::io::Error) -> StoreError {
    StoreError::Write(format!("cannot write the export: {e}"))
}

fn csv_field(out: &mut Vec<u8>, v: Option<&str>) {
    let Some(v) = v else { return };
    if v.contains([',', '"', '\n', '\r']) {
        out.push(b'"');
        out.extend_from_slice(v.replace('"', "\"\"").as_bytes());
        out.push(b'"');
    } else {
        out.extend_from_slice(v.as_bytes());
    }
}

fn md_cell(v: Option<&str>) -> String {
    v.unwrap_or("")
        .replace('\\', "\\\\")
        .replace('|', "\\|")
        .replace(['\n', '\r'], " ")
}

fn float_text(f: Option<f64>) -> Option<String> {
    f.map(|f| serde_json::to_string(&f).unwrap_or_default())
}

impl Store {
    /// Streams the rows `filter` admits, in `seq` order, from one read
    /// snapshot, to `out`. JSONL needs a `signer` for its closing
    /// checkpoint. Every row's hash is recomputed on the way: a log whose
    /// chain does not hold is not exported (and nothing is signed).
    pub fn export(
        &self,
        format: ExportFormat,
        filter: &ExportFilter,
        out: &mut dyn Write,
        signer: Option<&dyn CheckpointSigner>,
    ) -> Result<ExportSummary, StoreError> {
        if format == ExportFormat::Jsonl && signer.is_none() {
            return Err(StoreError::Invalid(
                "a JSONL export needs the daemon's signing key for its checkpoint".into(),
            ));
        }
        self.flush()?;
        let mut conn = self.reader()?;
        let tx = conn.transaction()?;
        let log_head = tx
            .query_row(
                "SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1",
                [],
                |r| {
                    Ok(ChainPoint {
                        seq: r.get::<_, i64>(0)?.max(0) as u64,
                        hash: r.get(1)?,
                    })
                },
            )
            .unwrap_or(ChainPoint {
                seq: 0,
                hash: GENESIS_HASH.to_string(),
            });
        // NOT INDEXED: a rowid scan is already in seq order, so SQLite
        // streams rows instead of sorting the matches first.
        let mut stmt = tx.prepare(&format!(
            "SELECT {STORED_COLUMNS} FROM audit_log NOT INDEXED \
             WHERE (?1 IS NULL OR ts >= ?1) AND (?2 IS NULL OR ts < ?2) AND (?3 IS NULL OR project = ?3) \
             ORDER BY seq"
        ))?;
        let mut rows = stmt.query(rusqlite::params![
            filter.since,
            filter.until,
            filter.project
        ])?;

        let chain_mode = filter.is_empty();
        let created_at = util::now_ts();
        let mut w = ExportWriter {
            format,
            out,
            line: Vec::with_capacity(1024),
            digest: Sha256::new(),
            header_sha256: None,
            count: 0,
            first_seq: None,
            last: None,
        };
        let mut started = false;
        while let Some(r) = rows.next()? {
            let (row, prev_hash, hash) = canonical_of(r).map_err(|e| {
                StoreError::Invalid(format!(
                    "the audit log has a row that cannot be read (seq {}): {e}; run `lex-align audit verify`",
                    r.get::<_, i64>(0).unwrap_or(-1)
                ))
            })?;
            if !started {
                started = true;
                w.begin(filter, &created_at, chain_mode, Some((row.seq, prev_hash)))?;
            }
            w.row(&row, prev_hash, hash, chain_mode)?;
        }
        if !started {
            w.begin(filter, &created_at, chain_mode, None)?;
        }
        drop(rows);
        drop(stmt);
        tx.finish()?;

        let head_hash = w.head_hash();
        let summary = ExportSummary {
            rows: w.count,
            first_seq: w.first_seq,
            last_seq: w.last.as_ref().map(|l| l.0),
            head_hash: head_hash.clone(),
            log_head: log_head.clone(),
        };
        if let (ExportFormat::Jsonl, Some(signer)) = (format, signer) {
            let checkpoint = Checkpoint {
                scope: "export".into(),
                created_at: util::now_ts(),
                key_id: signer.key_id(),
                rows: w.count,
                first_seq: w.first_seq,
                last_seq: summary.last_seq,
                head_hash,
                digest: Some(hex::encode(std::mem::take(&mut w.digest).finalize())),
                header_sha256: w.header_sha256.take(),
                log_head: Some(log_head),
            };
            let line = SignedCheckpoint::sign(checkpoint, signer, true);
            let mut bytes = serde_json::to_vec(&line).expect("a checkpoint serialises");
            bytes.push(b'\n');
            w.out.write_all(&bytes).map_err(io)?;
        }
        w.out.flush().map_err(io)?;
        Ok(summary)
    }

    /// A signed checkpoint of the whole log as it is now (the daemon writes
    /// one on a cadence to `checkpoints.jsonl`). `None` before the first row.
    pub fn log_checkpoint(
        &self,
        signer: &dyn CheckpointSigner,
    ) -> Result<SignedCheckpoint, StoreError> {
        self.flush()?;
        let mut conn = self.reader()?;
        let tx = conn.transaction()?;
        let (rows, first, last, head): (i64, Option<i64>, Option<i64>, Option<String>) = tx
            .query_row(
                "SELECT COUNT(*), MIN(seq), MAX(seq), (SELECT hash FROM audit_log ORDER BY seq DESC LIMIT 1) FROM audit_log",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
            )?;
        tx.finish()?;
        let checkpoint = Checkpoint {
            scope: "log".into(),
            created_at: util::now_ts(),
            key_id: signer.key_id(),
            rows: rows.max(0) as u64,
            first_seq: first.map(|s| s.max(0) as u64),
            last_seq: last.map(|s| s.max(0) as u64),
            head_hash: head.unwrap_or_else(|| GENESIS_HASH.to_string()),
            digest: None,
            header_sha256: None,
            log_head: None,
        };
        Ok(SignedCheckpoint::sign(checkpoint, signer, false))
    }
}

struct ExportWriter<'a> {
    format: ExportFormat,
    out: &'a mut dyn Write,
    /// One line, reused for every row.
    line: Vec<u8>,
    digest: Sha256,
    header_sha256: Option<String>,
    count: u64,
    first_seq: Option<u64>,
    /// `seq` and `hash` of the last row written.
    last: Option<(u64, String)>,
}

impl ExportWriter<'_> {
    fn head_hash(&self) -> String {
        self.last
            .as_ref()
            .map(|l| l.1.clone())
            .unwrap_or_else(|| GENESIS_HASH.to_string())
    }

    /// The header: JSONL's header line, the CSV column row, Markdown's
    /// title, anchor and table head.
    fn begin(
        &mut self,
        filter: &ExportFilter,
        created_at: &str,
        chain_mode: bool,
        first: Option<(i64, &str)>,
    ) -> Result<(), StoreError> {
        let anchor = first.map(|(seq, prev)| ChainPoint {
            seq: (seq - 1).max(0) as u64,
            hash: prev.to_string(),
        });
        match self.format {
            ExportFormat::Jsonl => {
                let header = ExportHeader {
                    marker: "header".into(),
                    format: EXPORT_FORMAT.into(),
                    version: EXPORT_VERSION,
                    created_at: created_at.into(),
                    mode: if chain_mode { "chain" } else { "filtered" }.into(),
                    filters: filter.clone(),
                    anchor,
                };
                let bytes = serde_json::to_vec(&header).expect("a header serialises");
                self.header_sha256 = Some(hex_sha256(&bytes));
                self.out.write_all(&bytes).map_err(io)?;
                self.out.write_all(b"\n").map_err(io)?;
            }
            ExportFormat::Csv => {
                self.out
                    .write_all(CSV_COLUMNS.join(",").as_bytes())
                    .map_err(io)?;
                self.out.write_all(b"\r\n").map_err(io)?;
            }
            ExportFormat::Markdown => {
                let mut s = String::from("# lex-align audit log export\n\n");
                s.push_str(&format!("- created: {created_at}\n"));
                let f = |v: &Option<String>| v.clone().unwrap_or_else(|| "—".into());
                s.push_str(&format!(
                    "- filters: since {}, until {}, project {}\n",
                    f(&filter.since),
                    f(&filter.until),
                    f(&filter.project)
                ));
                match &anchor {
                    Some(a) => s.push_str(&format!(
                        "- anchor: `{}`, the first row's `prev_hash` (the hash of seq {}; 0 is the log's start)\n",
                        a.hash, a.seq
                    )),
                    None => s.push_str("- anchor: no rows matched\n"),
                }
                s.push_str(
                    "- not verifiable on its own: use `--format jsonl` and `lex-align audit verify-export`\n\n",
                );
                s.push_str("| seq | ts | project | requester | package | version | verdict | category | reason | hash |\n");
                s.push_str("|---:|---|---|---|---|---|---|---|---|---|\n");
                self.out.write_all(s.as_bytes()).map_err(io)?;
            }
        }
        Ok(())
    }

    fn row(
        &mut self,
        row: &CanonicalRow<'_>,
        prev_hash: &str,
        hash: &str,
        chain_mode: bool,
    ) -> Result<(), StoreError> {
        let seq = row.seq.max(0) as u64;
        let broken = |reason: &str| {
            StoreError::Invalid(format!(
                "the audit log's hash chain is broken at seq {seq} ({reason}); nothing was signed: \
                 run `lex-align audit verify`"
            ))
        };
        if chain_mode {
            let (expect_seq, expect_prev) = match &self.last {
                Some((s, h)) => (s + 1, h.as_str()),
                None => (1, GENESIS_HASH),
            };
            if seq != expect_seq {
                return Err(broken(&format!("expected seq {expect_seq}")));
            }
            if prev_hash != expect_prev {
                return Err(broken("prev_hash does not match the previous row's hash"));
            }
        }
        self.line.clear();
        serde_json::to_writer(&mut self.line, row).expect("a row serialises");
        if row_hash(prev_hash, row) != hash {
            return Err(broken("content does not match its hash"));
        }
        match self.format {
            ExportFormat::Jsonl => {
                // The canonical JSON, then the chain fields.
                self.line.pop();
                self.line.extend_from_slice(b",\"prev_hash\":");
                serde_json::to_writer(&mut self.line, prev_hash).expect("a string serialises");
                self.line.extend_from_slice(b",\"hash\":");
                serde_json::to_writer(&mut self.line, hash).expect("a string serialises");
                if !chain_mode {
                    self.line.extend_from_slice(b",\"export_prev_seq\":");
                    serde_json::to_writer(&mut self.line, &self.last.as_ref().map(|l| l.0))
                        .expect("an integer serialises");
                }
                self.line.extend_from_slice(b"}\n");
            }
            ExportFormat::Csv => {
                self.line.clear();
                let seq_text = row.seq.to_string();
                let cvss = float_text(row.max_cvss);
                let fields: [Option<&str>; 23] = [
                    Some(&seq_text),
                    Some(row.id),
                    Some(row.ts),
                    Some(row.project),
                    Some(row.requester),
                    Some(row.package),
                    Some(row.canonical),
                    row.version,
                    row.requirement,
                    row.resolved_version,
                    Some(row.verdict),
                    Some(row.denial_category),
                    row.reason,
                    row.license,
                    row.cve_ids,
                    cvss.as_deref(),
                    row.registry_status,
                    row.agent_model,
                    row.agent_version,
                    Some(row.source),
                    row.auth_method,
                    Some(prev_hash),
                    Some(hash),
                ];
                for (i, f) in fields.iter().enumerate() {
                    if i > 0 {
                        self.line.push(b',');
                    }
                    csv_field(&mut self.line, *f);
                }
                self.line.extend_from_slice(b"\r\n");
            }
            ExportFormat::Markdown => {
                self.line.clear();
                let cells = [
                    row.seq.to_string(),
                    md_cell(Some(row.ts)),
                    md_cell(Some(row.project)),
                    md_cell(Some(row.requester)),
                    md_cell(Some(row.package)),
                    md_cell(row.version.or(row.resolved_version)),
                    md_cell(Some(row.verdict)),
                    md_cell(Some(row.denial_category)),
                    md_cell(row.reason),
                    format!("`{}`", md_cell(Some(hash))),
                ];
                self.line.extend_from_slice(b"| ");
                self.line.extend_from_slice(cells.join(" | ").as_bytes());
                self.line.extend_from_slice(b" |\n");
            }
        }
        self.out.write_all(&self.line).map_err(io)?;
        self.digest.update(hash.as_bytes());
        self.count += 1;
        self.first_seq.get_or_insert(seq);
        self.last = Some((seq, hash.to_string()));
        Ok(())
    }
}

// ---------------------------------------------------------------- verify

/// A row line of a JSONL export: the stored row (whose field list and
/// canonical form live once, in `chain.rs`) plus `export_prev_seq`.
/// Unknown and repeated keys are refused: nothing may be added to a row
/// that its hash does not cover, nor may a key say two things.
#[derive(Debug)]
struct ExportRow {
    row: StoredRow,
    export_prev_seq: Option<u64>,
}

impl std::ops::Deref for ExportRow {
    type Target = StoredRow;
    fn deref(&self) -> &StoredRow {
        &self.row
    }
}

impl<'de> Deserialize<'de> for ExportRow {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Keys;
        impl<'de> serde::de::Visitor<'de> for Keys {
            type Value = ExportRow;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an audit row object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut m: A,
            ) -> Result<ExportRow, A::Error> {
                use serde::de::Error;
                let mut fields = serde_json::Map::new();
                let mut export_prev_seq = None;
                let mut seen_prev = false;
                while let Some(key) = m.next_key::<String>()? {
                    if key == "export_prev_seq" {
                        if std::mem::replace(&mut seen_prev, true) {
                            return Err(A::Error::custom("duplicate field `export_prev_seq`"));
                        }
                        export_prev_seq = m.next_value::<Option<u64>>()?;
                    } else {
                        let v = m.next_value::<serde_json::Value>()?;
                        if fields.contains_key(&key) {
                            return Err(A::Error::custom(format!("duplicate field `{key}`")));
                        }
                        fields.insert(key, v);
                    }
                }
                let row = StoredRow::deserialize(serde_json::Value::Object(fields))
                    .map_err(A::Error::custom)?;
                Ok(ExportRow {
                    row,
                    export_prev_seq,
                })
            }
        }
        d.deserialize_map(Keys)
    }
}

/// Where and why an export does not prove.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ExportProblem {
    /// 1-based line of the file.
    pub line: u64,
    /// The row's `seq`, when the problem is a row.
    pub seq: Option<u64>,
    pub id: Option<String>,
    pub reason: String,
}

/// Result of [`verify_export`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ExportReport {
    pub ok: bool,
    /// Row lines read and proven before the first problem (all, when ok).
    pub rows: u64,
    pub mode: Option<String>,
    pub filters: Option<ExportFilter>,
    pub first_seq: Option<u64>,
    pub last_seq: Option<u64>,
    pub head_hash: String,
    pub problem: Option<ExportProblem>,
    /// The closing checkpoint, when one was found and its signature holds.
    pub checkpoint: Option<Checkpoint>,
}

/// Proves a JSONL export on its own, streaming (constant memory): the
/// header, every row's hash, the chain (or in a filtered export each row
/// and its place), and the signed checkpoint that closes it. Names the first
/// line that does not prove.
pub fn verify_export(
    input: &mut dyn BufRead,
    verifier: &dyn CheckpointVerifier,
) -> std::io::Result<ExportReport> {
    let mut v = ExportVerify {
        report: ExportReport {
            ok: false,
            rows: 0,
            mode: None,
            filters: None,
            first_seq: None,
            last_seq: None,
            head_hash: GENESIS_HASH.to_string(),
            problem: None,
            checkpoint: None,
        },
        digest: Sha256::new(),
    };
    let mut buf = String::new();
    let mut line_no = 0u64;
    let mut header: Option<(ExportHeader, String)> = None;
    let mut last: Option<(u64, String)> = None;
    let mut closing: Option<(u64, SignedCheckpoint)> = None;

    loop {
        buf.clear();
        if input.read_line(&mut buf)? == 0 {
            break;
        }
        line_no += 1;
        let line = buf.trim_end_matches(['\n', '\r']);
        if let Some((at, _)) = &closing {
            if !line.trim().is_empty() {
                return Ok(v.fail(
                    line_no,
                    None,
                    format!("content after the checkpoint on line {at} (rows added after the export was signed)"),
                ));
            }
            continue;
        }
        let Some((h, _)) = &header else {
            match serde_json::from_str::<ExportHeader>(line) {
                Ok(h) if h.marker == "header" && h.format == EXPORT_FORMAT => {
                    if h.version != EXPORT_VERSION {
                        return Ok(v.fail(
                            line_no,
                            None,
                            format!(
                                "export format version {} is not supported (this lex-align reads version {EXPORT_VERSION})",
                                h.version
                            ),
                        ));
                    }
                    if h.mode != "chain" && h.mode != "filtered" {
                        return Ok(v.fail(
                            line_no,
                            None,
                            format!("unknown export mode {:?}", h.mode),
                        ));
                    }
                    v.report.mode = Some(h.mode.clone());
                    v.report.filters = Some(h.filters.clone());
                    if let Some(a) = &h.anchor {
                        v.report.head_hash = a.hash.clone();
                    }
                    header = Some((h, hex_sha256(line.as_bytes())));
                    continue;
                }
                Ok(_) => {
                    return Ok(v.fail(
                        line_no,
                        None,
                        "the first line is not a lex-align audit export header".into(),
                    ))
                }
                Err(e) => {
                    return Ok(v.fail(
                        line_no,
                        None,
                        format!("the first line is not a lex-align audit export header: {e}"),
                    ))
                }
            }
        };
        if line.trim_start().starts_with(&format!("{{\"{MARKER}\"")) {
            match serde_json::from_str::<SignedCheckpoint>(line) {
                Ok(cp) if cp.marker.as_deref() == Some("checkpoint") => {
                    closing = Some((line_no, cp));
                    continue;
                }
                Ok(_) => {
                    return Ok(v.fail(line_no, None, "a second header inside the export".into()))
                }
                Err(e) => {
                    return Ok(v.fail(
                        line_no,
                        None,
                        format!("the checkpoint line cannot be read: {e}"),
                    ))
                }
            }
        }
        if line.trim().is_empty() {
            return Ok(v.fail(line_no, None, "an empty line inside the export".into()));
        }
        let row: ExportRow = match serde_json::from_str(line) {
            Ok(r) => r,
            Err(e) => return Ok(v.fail(line_no, None, format!("not an audit row: {e}"))),
        };
        let seq = row.seq.max(0) as u64;
        let fail_row = |v: &mut ExportVerify, reason: String| {
            let id = Some(row.id.clone());
            v.fail_row(line_no, seq, id, reason)
        };
        if row_hash(&row.prev_hash, &row.canonical()) != row.hash {
            return Ok(fail_row(
                &mut v,
                "content does not match its hash (the row was edited)".into(),
            ));
        }
        if h.mode == "chain" {
            let (expect_seq, expect_prev) = match (&last, &h.anchor) {
                (Some((s, hash)), _) => (s + 1, hash.as_str()),
                (None, Some(a)) => (a.seq + 1, a.hash.as_str()),
                (None, None) => (1, GENESIS_HASH),
            };
            if last.is_none()
                && h.anchor
                    .as_ref()
                    .is_some_and(|a| a.seq == 0 && a.hash != GENESIS_HASH)
            {
                return Ok(v.fail(
                    1,
                    None,
                    "the header's anchor at seq 0 is not the genesis hash".into(),
                ));
            }
            if seq > expect_seq {
                return Ok(fail_row(
                    &mut v,
                    format!("row(s) missing before it: expected seq {expect_seq}, found seq {seq} (a row was dropped or moved)"),
                ));
            }
            if seq < expect_seq {
                return Ok(fail_row(
                    &mut v,
                    format!("out of order: expected seq {expect_seq}, found seq {seq} (rows were moved or repeated)"),
                ));
            }
            if row.prev_hash != expect_prev {
                return Ok(fail_row(
                    &mut v,
                    "prev_hash does not match the previous row's hash (a row before it was removed, inserted or altered)".into(),
                ));
            }
        } else {
            if let Some((prev_seq, prev_hash)) = &last {
                if seq <= *prev_seq {
                    return Ok(fail_row(
                        &mut v,
                        format!("out of order: seq {seq} after seq {prev_seq} (rows were moved or repeated)"),
                    ));
                }
                if seq == prev_seq + 1 && row.prev_hash != *prev_hash {
                    return Ok(fail_row(
                        &mut v,
                        "prev_hash does not match the previous row's hash (a row before it was altered)".into(),
                    ));
                }
            } else if let Some(a) = &h.anchor {
                if seq != a.seq + 1 {
                    return Ok(fail_row(
                        &mut v,
                        format!(
                            "row seq {} is missing before it: the export starts there (the header's anchor), the file at seq {seq} (a row was dropped or moved)",
                            a.seq + 1
                        ),
                    ));
                }
                if row.prev_hash != a.hash {
                    return Ok(fail_row(
                        &mut v,
                        "prev_hash is not the header's anchor (the row or the header was altered)"
                            .into(),
                    ));
                }
            }
            let file_prev = last.as_ref().map(|l| l.0);
            if row.export_prev_seq != file_prev {
                let missing = match row.export_prev_seq {
                    Some(p) => format!("row seq {p} is missing before it"),
                    None => "it was the first row exported".into(),
                };
                return Ok(fail_row(
                    &mut v,
                    format!(
                        "{missing}: the export wrote it after {}, the file has {} (a row was dropped or moved)",
                        row.export_prev_seq.map_or("nothing".into(), |p| format!("seq {p}")),
                        file_prev.map_or("nothing".into(), |p| format!("seq {p}")),
                    ),
                ));
            }
            if !h.filters.admits(&row.project, &row.ts) {
                return Ok(fail_row(
                    &mut v,
                    "outside the export's filters (a row was added)".into(),
                ));
            }
        }
        v.digest.update(row.hash.as_bytes());
        v.report.rows += 1;
        v.report.first_seq.get_or_insert(seq);
        v.report.last_seq = Some(seq);
        v.report.head_hash = row.hash.clone();
        last = Some((seq, row.row.hash));
    }

    let Some((_header, header_sha)) = header else {
        return Ok(v.fail(1, None, "the file is empty".into()));
    };
    let Some((cp_line, cp)) = closing else {
        return Ok(v.fail(
            line_no + 1,
            None,
            "no signed checkpoint at the end: the export was cut short, so rows may be missing from its end".into(),
        ));
    };
    if let Err(why) = cp.verify(verifier) {
        return Ok(v.fail(
            cp_line,
            None,
            format!("the checkpoint's signature does not hold: {why}"),
        ));
    }
    let c = &cp.checkpoint;
    let expected_digest = hex::encode(std::mem::take(&mut v.digest).finalize());
    let mismatch = if c.scope != "export" {
        Some(format!(
            "the checkpoint is a {:?} checkpoint, not an export's",
            c.scope
        ))
    } else if c.header_sha256.as_deref() != Some(header_sha.as_str()) {
        Some("the header was changed after the export was signed".into())
    } else if c.rows != v.report.rows {
        Some(format!(
            "the checkpoint signs {} rows but the file has {} (rows were dropped or added)",
            c.rows, v.report.rows
        ))
    } else if c.first_seq != v.report.first_seq || c.last_seq != v.report.last_seq {
        Some(format!(
            "the checkpoint signs seq {} to {}, the file has {} to {}",
            opt(c.first_seq),
            opt(c.last_seq),
            opt(v.report.first_seq),
            opt(v.report.last_seq)
        ))
    } else if c.head_hash != v.report.head_hash {
        Some("the last row's hash is not the head the checkpoint signs (rows were changed or cut off)".into())
    } else if c.digest.as_deref() != Some(expected_digest.as_str()) {
        Some("the rows are not the set the checkpoint signs (a row was replaced or rows were rewritten)".into())
    } else {
        None
    };
    if let Some(reason) = mismatch {
        return Ok(v.fail(cp_line, None, reason));
    }
    v.report.ok = true;
    v.report.checkpoint = Some(cp.checkpoint);
    Ok(v.report)
}

fn opt(v: Option<u64>) -> String {
    v.map_or("none".into(), |v| v.to_string())
}

struct ExportVerify {
    report: ExportReport,
    digest: Sha256,
}

impl ExportVerify {
    fn fail(&mut self, line: u64, seq: Option<u64>, reason: String) -> ExportReport {
        let mut r = self.report.clone();
        r.ok = false;
        r.problem = Some(ExportProblem {
            line,
            seq,
            id: None,
            reason,
        });
        r
    }

    fn fail_row(
        &mut self,
        line: u64,
        seq: u64,
        id: Option<String>,
        reason: String,
    ) -> ExportReport {
        let mut r = self.fail(line, Some(seq), reason);
        if let Some(p) = r.problem.as_mut() {
            p.id = id;
        }
        r
    }
}
