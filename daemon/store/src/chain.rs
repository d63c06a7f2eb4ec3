//! The audit log's hash chain.
//!
//! Every row stores `prev_hash` (the previous row's `hash`, or
//! [`GENESIS_HASH`] for the first row) and
//!
//! ```text
//! hash = hex(sha256(prev_hash_hex_ascii || canonical_content))
//! ```
//!
//! where `canonical_content` is the compact JSON object (no whitespace) of
//! the row's stored column values in this fixed key order:
//!
//! `seq, id, ts, project, requester, package, canonical, version,
//! requirement, resolved_version, verdict, denial_category, reason, license,
//! cve_ids, max_cvss, registry_status, agent_model, agent_version, source,
//! auth_method`
//!
//! `auth_method` (schema 3) is left out of the object when NULL, so rows
//! written before it existed hash as they always did.
//!
//! Strings are JSON strings, NULL is `null`, `seq` an integer, `max_cvss` a
//! JSON number as printed by `serde_json` (shortest round-trip form, always
//! with a fraction, e.g. `9.8`, `7.0`) and `cve_ids` the column's *text*
//! (itself a JSON array, or `null`). Because `seq` is hashed, moving a row to
//! another position breaks the chain just like editing it; a deleted row
//! leaves a `seq` gap and a `prev_hash` that no longer matches.
//!
//! The chain proves internal consistency. Someone able to rewrite the file
//! can recompute every hash after an edit; anchoring `head_hash` elsewhere
//! (a log, a ticket) closes that gap.

use rusqlite::{Connection, Row};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::StoreError;

/// `prev_hash` of the first row.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Column values of one row, in hashing order. Field order is the wire
/// format of the chain: never reorder.
#[derive(Debug, Serialize)]
pub(crate) struct CanonicalRow<'a> {
    pub seq: i64,
    pub id: &'a str,
    pub ts: &'a str,
    pub project: &'a str,
    pub requester: &'a str,
    pub package: &'a str,
    pub canonical: &'a str,
    pub version: Option<&'a str>,
    pub requirement: Option<&'a str>,
    pub resolved_version: Option<&'a str>,
    pub verdict: &'a str,
    pub denial_category: &'a str,
    pub reason: Option<&'a str>,
    pub license: Option<&'a str>,
    pub cve_ids: Option<&'a str>,
    pub max_cvss: Option<f64>,
    pub registry_status: Option<&'a str>,
    pub agent_model: Option<&'a str>,
    pub agent_version: Option<&'a str>,
    pub source: &'a str,
    /// Added in schema 3; absent from the hashed JSON when NULL, so rows
    /// written before it keep their hashes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auth_method: Option<&'a str>,
}

pub(crate) fn row_hash(prev_hash: &str, row: &CanonicalRow<'_>) -> String {
    thread_local! {
        // One buffer per thread (the writer's, a verify's), reused: the
        // row's JSON is built without an allocation and hashed in one go.
        static BUF: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
    }
    BUF.with(|buf| {
        let mut buf = buf.borrow_mut();
        buf.clear();
        serde_json::to_writer(&mut *buf, row).expect("a row of strings and numbers serialises");
        hash_canonical(prev_hash, &buf)
    })
}

/// The chain hash over a row's canonical JSON bytes (as [`row_hash`]
/// serialises them; the inbox keeps exactly these bytes).
pub(crate) fn hash_canonical(prev_hash: &str, canonical_json: &[u8]) -> String {
    let mut h = Sha256::new();
    h.update(prev_hash.as_bytes());
    h.update(canonical_json);
    hex::encode(h.finalize())
}

/// Hashes `row` onto `prev_hash` and inserts it with `insert` (a statement
/// taking the row's columns in [`CanonicalRow`] order, then `prev_hash` and
/// `hash`); returns the new hash.
pub(crate) fn insert_chained(
    insert: &mut rusqlite::Statement<'_>,
    prev_hash: &str,
    row: &CanonicalRow<'_>,
) -> rusqlite::Result<String> {
    let hash = row_hash(prev_hash, row);
    insert_row(insert, row, prev_hash, &hash)?;
    Ok(hash)
}

/// The one place a chained row is written: its columns, `prev_hash` and
/// `hash` (already computed, e.g. for rows filed from the inbox).
pub(crate) fn insert_row(
    insert: &mut rusqlite::Statement<'_>,
    row: &CanonicalRow<'_>,
    prev_hash: &str,
    hash: &str,
) -> rusqlite::Result<()> {
    insert.execute(rusqlite::params![
        row.seq,
        row.id,
        row.ts,
        row.project,
        row.requester,
        row.package,
        row.canonical,
        row.version,
        row.requirement,
        row.resolved_version,
        row.verdict,
        row.denial_category,
        row.reason,
        row.license,
        row.cve_ids,
        row.max_cvss,
        row.registry_status,
        row.agent_model,
        row.agent_version,
        row.source,
        prev_hash,
        hash,
        row.auth_method,
    ])?;
    Ok(())
}

/// Result of [`crate::Store::verify`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VerifyReport {
    /// Rows in the audit log.
    pub rows: u64,
    pub ok: bool,
    /// The first row (in `seq` order) where the chain does not hold.
    pub first_broken: Option<BrokenRow>,
    /// `hash` of the last row ([`GENESIS_HASH`] when the log is empty).
    pub head_hash: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BrokenRow {
    /// Chain position where the break was found (for rows missing at the
    /// end: the first missing position).
    pub seq: u64,
    /// `id` of the row at that position; `None` when the row is missing.
    pub id: Option<String>,
    pub reason: String,
}

/// Owned copy of a row: read back for verification, or appended to the
/// inbox and waiting to be filed. Deserialises from the canonical JSON
/// (which has neither `prev_hash` nor `hash`: the inbox fills them in).
/// Unknown keys are refused: the hash covers only these.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct StoredRow {
    pub seq: i64,
    pub id: String,
    pub ts: String,
    pub project: String,
    pub requester: String,
    pub package: String,
    pub canonical: String,
    pub version: Option<String>,
    pub requirement: Option<String>,
    pub resolved_version: Option<String>,
    pub verdict: String,
    pub denial_category: String,
    pub reason: Option<String>,
    pub license: Option<String>,
    pub cve_ids: Option<String>,
    pub max_cvss: Option<f64>,
    pub registry_status: Option<String>,
    pub agent_model: Option<String>,
    pub agent_version: Option<String>,
    pub source: String,
    #[serde(default)]
    pub auth_method: Option<String>,
    #[serde(default)]
    pub prev_hash: String,
    #[serde(default)]
    pub hash: String,
}

pub(crate) const STORED_COLUMNS: &str = "seq, id, ts, project, requester, package, canonical, \
    version, requirement, resolved_version, verdict, denial_category, reason, license, cve_ids, \
    max_cvss, registry_status, agent_model, agent_version, source, prev_hash, hash, auth_method";

/// The statement [`insert_row`] and [`insert_chained`] expect: every stored
/// column, in [`STORED_COLUMNS`] order.
pub(crate) const INSERT_ROW: &str = "INSERT INTO audit_log (seq, id, ts, project, requester, \
    package, canonical, version, requirement, resolved_version, verdict, denial_category, reason, \
    license, cve_ids, max_cvss, registry_status, agent_model, agent_version, source, prev_hash, \
    hash, auth_method) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, \
    ?16, ?17, ?18, ?19, ?20, ?21, ?22, ?23)";

impl StoredRow {
    /// A row read with [`STORED_COLUMNS`].
    pub(crate) fn from_row(r: &Row<'_>) -> rusqlite::Result<StoredRow> {
        Ok(StoredRow {
            seq: r.get(0)?,
            id: r.get(1)?,
            ts: r.get(2)?,
            project: r.get(3)?,
            requester: r.get(4)?,
            package: r.get(5)?,
            canonical: r.get(6)?,
            version: r.get(7)?,
            requirement: r.get(8)?,
            resolved_version: r.get(9)?,
            verdict: r.get(10)?,
            denial_category: r.get(11)?,
            reason: r.get(12)?,
            license: r.get(13)?,
            cve_ids: r.get(14)?,
            max_cvss: r.get(15)?,
            registry_status: r.get(16)?,
            agent_model: r.get(17)?,
            agent_version: r.get(18)?,
            source: r.get(19)?,
            prev_hash: r.get(20)?,
            hash: r.get(21)?,
            auth_method: r.get(22)?,
        })
    }

    pub(crate) fn canonical(&self) -> CanonicalRow<'_> {
        CanonicalRow {
            seq: self.seq,
            id: &self.id,
            ts: &self.ts,
            project: &self.project,
            requester: &self.requester,
            package: &self.package,
            canonical: &self.canonical,
            version: self.version.as_deref(),
            requirement: self.requirement.as_deref(),
            resolved_version: self.resolved_version.as_deref(),
            verdict: &self.verdict,
            denial_category: &self.denial_category,
            reason: self.reason.as_deref(),
            license: self.license.as_deref(),
            cve_ids: self.cve_ids.as_deref(),
            max_cvss: self.max_cvss,
            registry_status: self.registry_status.as_deref(),
            agent_model: self.agent_model.as_deref(),
            agent_version: self.agent_version.as_deref(),
            source: &self.source,
            auth_method: self.auth_method.as_deref(),
        }
    }
}

/// Walks the whole log in `seq` order inside one read transaction (a
/// consistent snapshot while the writer keeps appending).
pub(crate) fn verify(conn: &mut Connection) -> Result<VerifyReport, StoreError> {
    let tx = conn.transaction()?;
    let recorded_head: Option<i64> = tx
        .query_row(
            "SELECT value FROM meta WHERE key = 'chain_head_seq'",
            [],
            |r| r.get::<_, String>(0),
        )
        .ok()
        .and_then(|v| v.parse().ok());

    let mut rows = 0u64;
    let mut first_broken: Option<BrokenRow> = None;
    let mut prev = GENESIS_HASH.to_string();
    let mut expected_seq: i64 = 1;
    {
        let mut stmt = tx.prepare(&format!(
            "SELECT {STORED_COLUMNS} FROM audit_log ORDER BY seq"
        ))?;
        let mut it = stmt.query([])?;
        while let Some(r) = it.next()? {
            rows += 1;
            if first_broken.is_some() {
                continue;
            }
            let row = match StoredRow::from_row(r) {
                Ok(row) => row,
                Err(e) => {
                    let seq: i64 = r.get(0).unwrap_or(expected_seq);
                    first_broken = Some(BrokenRow {
                        seq: seq as u64,
                        id: r.get::<_, String>(1).ok(),
                        reason: format!("row cannot be read as an audit row: {e}"),
                    });
                    continue;
                }
            };
            let broken = |reason: String| BrokenRow {
                seq: row.seq.max(0) as u64,
                id: Some(row.id.clone()),
                reason,
            };
            if row.seq != expected_seq {
                first_broken = Some(if row.seq > expected_seq {
                    broken(format!(
                        "row(s) missing before it: expected seq {expected_seq}, found seq {}",
                        row.seq
                    ))
                } else {
                    broken(format!(
                        "unexpected seq {} (expected {expected_seq})",
                        row.seq
                    ))
                });
                continue;
            }
            if row.prev_hash != prev {
                first_broken = Some(broken(
                    "prev_hash does not match the previous row's hash (a row before it was removed, inserted or altered)".into(),
                ));
                continue;
            }
            if row_hash(&row.prev_hash, &row.canonical()) != row.hash {
                first_broken = Some(broken(
                    "content does not match its hash (the row was edited or moved)".into(),
                ));
                continue;
            }
            prev = row.hash;
            expected_seq += 1;
        }
    }
    let last_seq = expected_seq - 1;
    if first_broken.is_none() {
        if let Some(head) = recorded_head.filter(|h| *h > last_seq) {
            first_broken = Some(BrokenRow {
                seq: (last_seq + 1) as u64,
                id: None,
                reason: format!(
                    "row(s) missing at the end: the log ends at seq {last_seq} but seq {head} was committed"
                ),
            });
        }
    }
    let head_hash = tx
        .query_row(
            "SELECT hash FROM audit_log ORDER BY seq DESC LIMIT 1",
            [],
            |r| r.get::<_, String>(0),
        )
        .unwrap_or_else(|_| GENESIS_HASH.to_string());
    tx.finish()?;
    Ok(VerifyReport {
        rows,
        ok: first_broken.is_none(),
        first_broken,
        head_hash,
    })
}
