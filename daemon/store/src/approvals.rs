//! Approval requests: one row per `(project, canonical name, requester)`,
//! an explicit state machine and a history of every status change.
//!
//! States: `PENDING_REVIEW` → `APPROVED` | `REJECTED` | `WITHDRAWN`, and an
//! operator may reopen any decided request. A repeated request from the
//! agent refreshes `ts`, rationale, agent and audit link, and reopens only a
//! `WITHDRAWN` request: `APPROVED` and `REJECTED` are operator decisions an
//! agent cannot undo by asking again.

use rusqlite::{params, Connection, OptionalExtension, Row, TransactionBehavior};
use serde::Serialize;
use serde_json::{json, Value};

use crate::util::{canonical_name, echo, now_ts, scope};
use crate::StoreError;

pub const PENDING_REVIEW: &str = "PENDING_REVIEW";
pub const APPROVED: &str = "APPROVED";
pub const REJECTED: &str = "REJECTED";
pub const WITHDRAWN: &str = "WITHDRAWN";
pub const STATUSES: [&str; 4] = [PENDING_REVIEW, APPROVED, REJECTED, WITHDRAWN];

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NewApprovalRequest {
    pub project: String,
    pub requester: String,
    /// As the agent wrote it.
    pub package: String,
    pub rationale: String,
    pub agent_model: Option<String>,
    pub agent_version: Option<String>,
    /// The audit row of the evaluation that led to the request, if known.
    pub last_audit_id: Option<String>,
}

/// A stored request. Serialises with the original's column names first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ApprovalRequest {
    pub id: String,
    /// Last time the agent asked.
    pub ts: String,
    pub project: String,
    pub requester: String,
    /// Spelling of the latest request.
    pub package: String,
    pub rationale: String,
    pub status: String,
    pub last_audit_id: Option<String>,
    pub agent_model: Option<String>,
    pub agent_version: Option<String>,
    pub canonical: String,
    pub created_at: String,
    pub decided_by: Option<String>,
    pub decided_at: Option<String>,
    pub decision_note: Option<String>,
    /// What a reviewing proposer (`github`, a plugin) did with the request:
    /// its backend, `queued | opened | amended | applied | logged | failed`,
    /// the pull request (or other) URL, a detail and when. `None` when the
    /// request never went to one (records only).
    pub proposal_backend: Option<String>,
    pub proposal_status: Option<String>,
    pub proposal_url: Option<String>,
    pub proposal_detail: Option<String>,
    pub proposal_at: Option<String>,
}

/// A proposer's outcome for one approval request.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ProposalOutcome {
    pub backend: String,
    /// `queued` before the proposer answered, then its result status.
    pub status: String,
    pub url: Option<String>,
    pub detail: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HistoryEntry {
    pub request_id: String,
    pub ts: String,
    pub actor: String,
    /// `None` when the request was created.
    pub from_status: Option<String>,
    pub to_status: String,
    pub note: Option<String>,
}

const COLUMNS: &str = "id, ts, project, requester, package, rationale, status, last_audit_id, \
    agent_model, agent_version, canonical, created_at, decided_by, decided_at, decision_note, \
    proposal_backend, proposal_status, proposal_url, proposal_detail, proposal_at";

fn from_row(r: &Row<'_>) -> rusqlite::Result<ApprovalRequest> {
    Ok(ApprovalRequest {
        id: r.get(0)?,
        ts: r.get(1)?,
        project: r.get(2)?,
        requester: r.get(3)?,
        package: r.get(4)?,
        rationale: r.get(5)?,
        status: r.get(6)?,
        last_audit_id: r.get(7)?,
        agent_model: r.get(8)?,
        agent_version: r.get(9)?,
        canonical: r.get(10)?,
        created_at: r.get(11)?,
        decided_by: r.get(12)?,
        decided_at: r.get(13)?,
        decision_note: r.get(14)?,
        proposal_backend: r.get(15)?,
        proposal_status: r.get(16)?,
        proposal_url: r.get(17)?,
        proposal_detail: r.get(18)?,
        proposal_at: r.get(19)?,
    })
}

fn record(
    conn: &Connection,
    request_id: &str,
    ts: &str,
    actor: &str,
    from: Option<&str>,
    to: &str,
    note: Option<&str>,
) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT INTO approval_history (request_id, ts, actor, from_status, to_status, note) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?
    .execute(params![request_id, ts, actor, from, to, note])?;
    Ok(())
}

pub(crate) fn upsert(
    conn: &mut Connection,
    req: &NewApprovalRequest,
) -> Result<ApprovalRequest, StoreError> {
    let canonical = canonical_name(&req.package);
    if canonical.is_empty() {
        return Err(StoreError::Invalid("package name is empty".into()));
    }
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let before: Option<String> = tx
        .prepare_cached(
            "SELECT status FROM approval_requests WHERE project = ?1 AND canonical = ?2 AND requester = ?3",
        )?
        .query_row(params![req.project, canonical, req.requester], |r| r.get(0))
        .optional()?;
    let now = now_ts();
    let id = uuid::Uuid::new_v4().to_string();
    // Atomic even against another process on the same file: the UNIQUE
    // index decides, never a read-then-write race.
    let row = tx
        .prepare_cached(&format!(
            "INSERT INTO approval_requests (id, ts, project, requester, package, rationale, status, \
               last_audit_id, agent_model, agent_version, canonical, created_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'PENDING_REVIEW', ?7, ?8, ?9, ?10, ?2) \
             ON CONFLICT (project, canonical, requester) DO UPDATE SET \
               ts = excluded.ts, package = excluded.package, rationale = excluded.rationale, \
               last_audit_id = COALESCE(excluded.last_audit_id, approval_requests.last_audit_id), \
               agent_model = excluded.agent_model, agent_version = excluded.agent_version, \
               status = CASE approval_requests.status WHEN 'WITHDRAWN' THEN 'PENDING_REVIEW' \
                        ELSE approval_requests.status END \
             RETURNING {COLUMNS}"
        ))?
        .query_row(
            params![
                id,
                now,
                req.project,
                req.requester,
                req.package,
                req.rationale,
                req.last_audit_id,
                req.agent_model,
                req.agent_version,
                canonical,
            ],
            from_row,
        )?;
    if before.as_deref() != Some(row.status.as_str()) {
        let note = if before.is_some() {
            "reopened by a new request"
        } else {
            "requested"
        };
        record(
            &tx,
            &row.id,
            &now,
            &req.requester,
            before.as_deref(),
            &row.status,
            Some(note),
        )?;
    }
    tx.commit()?;
    Ok(row)
}

pub(crate) fn approve_pending_for(
    conn: &mut Connection,
    canonicals: &[String],
    actor: &str,
) -> Result<usize, StoreError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let now = now_ts();
    let keys: Vec<String> = canonicals.iter().map(|c| canonical_name(c)).collect();
    let ids: Vec<String> = tx
        .prepare_cached(
            "UPDATE approval_requests SET status = 'APPROVED', decided_by = ?2, decided_at = ?3, \
               decision_note = 'added to the registry' \
             WHERE status = 'PENDING_REVIEW' AND canonical IN (SELECT value FROM json_each(?1)) \
             RETURNING id",
        )?
        .query_map(
            params![serde_json::to_string(&keys).expect("strings"), actor, now],
            |r| r.get(0),
        )?
        .collect::<rusqlite::Result<_>>()?;
    for id in &ids {
        record(
            &tx,
            id,
            &now,
            actor,
            Some(PENDING_REVIEW),
            APPROVED,
            Some("added to the registry"),
        )?;
    }
    tx.commit()?;
    Ok(ids.len())
}

pub(crate) fn set_status(
    conn: &mut Connection,
    id: &str,
    status: &str,
    actor: &str,
    note: Option<&str>,
) -> Result<ApprovalRequest, StoreError> {
    if !STATUSES.contains(&status) {
        return Err(StoreError::InvalidStatus(status.to_string()));
    }
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let current = get_on(&tx, id)?.ok_or_else(|| StoreError::NotFound(id.to_string()))?;
    if current.status == status {
        return Ok(current);
    }
    let now = now_ts();
    let reopened = status == PENDING_REVIEW;
    let row = tx
        .prepare_cached(&format!(
            "UPDATE approval_requests SET status = ?2, decided_by = ?3, decided_at = ?4, \
               decision_note = ?5 WHERE id = ?1 RETURNING {COLUMNS}"
        ))?
        .query_row(
            params![
                id,
                status,
                (!reopened).then_some(actor),
                (!reopened).then_some(now.as_str()),
                if reopened { None } else { note }
            ],
            from_row,
        )?;
    record(&tx, id, &now, actor, Some(&current.status), status, note)?;
    tx.commit()?;
    Ok(row)
}

/// Records a proposer's outcome on the request and in its history (the
/// request's status is unchanged: a pull request is not a decision).
pub(crate) fn set_proposal(
    conn: &mut Connection,
    id: &str,
    outcome: &ProposalOutcome,
) -> Result<ApprovalRequest, StoreError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let now = now_ts();
    let row = tx
        .prepare_cached(&format!(
            "UPDATE approval_requests SET proposal_backend = ?2, proposal_status = ?3, \
               proposal_url = ?4, proposal_detail = ?5, proposal_at = ?6 \
             WHERE id = ?1 RETURNING {COLUMNS}"
        ))?
        .query_row(
            params![
                id,
                outcome.backend,
                outcome.status,
                outcome.url,
                outcome.detail,
                now
            ],
            from_row,
        )
        .optional()?
        .ok_or_else(|| StoreError::NotFound(id.to_string()))?;
    let note = match &outcome.url {
        Some(url) => format!("proposal {}: {url}", outcome.status),
        None => format!("proposal {}: {}", outcome.status, outcome.detail),
    };
    record(
        &tx,
        id,
        &now,
        &format!("proposer:{}", outcome.backend),
        Some(&row.status),
        &row.status,
        Some(&note),
    )?;
    tx.commit()?;
    Ok(row)
}

/// Requests a reviewing proposer has not answered yet (the daemon stopped
/// while they were queued), oldest first.
pub(crate) fn queued_proposals(conn: &Connection) -> Result<Vec<ApprovalRequest>, StoreError> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM approval_requests WHERE proposal_status = 'queued' \
         AND status = 'PENDING_REVIEW' ORDER BY ts"
    ))?;
    let rows = stmt
        .query_map([], from_row)?
        .collect::<rusqlite::Result<_>>()?;
    Ok(rows)
}

fn get_on(conn: &Connection, id: &str) -> rusqlite::Result<Option<ApprovalRequest>> {
    conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM approval_requests WHERE id = ?1"
    ))?
    .query_row([id], from_row)
    .optional()
}

pub(crate) fn get(conn: &Connection, id: &str) -> Result<Option<ApprovalRequest>, StoreError> {
    Ok(get_on(conn, id)?)
}

pub(crate) fn history(conn: &Connection, id: &str) -> Result<Vec<HistoryEntry>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT request_id, ts, actor, from_status, to_status, note FROM approval_history \
         WHERE request_id = ?1 ORDER BY seq",
    )?;
    let rows = stmt
        .query_map([id], |r| {
            Ok(HistoryEntry {
                request_id: r.get(0)?,
                ts: r.get(1)?,
                actor: r.get(2)?,
                from_status: r.get(3)?,
                to_status: r.get(4)?,
                note: r.get(5)?,
            })
        })?
        .collect::<rusqlite::Result<_>>()?;
    Ok(rows)
}

/// reports.md §3.3: `{project, status, items}`, newest first, unlimited.
pub(crate) fn report(
    conn: &Connection,
    project: Option<&str>,
    status: Option<&str>,
) -> Result<Value, StoreError> {
    let mut sql = format!("SELECT {COLUMNS} FROM approval_requests WHERE 1 = 1");
    let mut args: Vec<&str> = Vec::new();
    if let Some(p) = scope(project) {
        args.push(p);
        sql.push_str(&format!(" AND project = ?{}", args.len()));
    }
    if let Some(s) = scope(status) {
        args.push(s);
        sql.push_str(&format!(" AND status = ?{}", args.len()));
    }
    sql.push_str(" ORDER BY ts DESC, id");
    let mut stmt = conn.prepare_cached(&sql)?;
    let items = stmt
        .query_map(rusqlite::params_from_iter(args), from_row)?
        .map(|r| r.map(|a| serde_json::to_value(a).expect("plain struct")))
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(json!({"project": echo(project), "status": echo(status), "items": items}))
}
