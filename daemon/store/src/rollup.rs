//! Report counters (schema 5): partial aggregates of `audit_log`, so a
//! report reads a few thousand counter rows instead of scanning a million
//! audit rows.
//!
//! They are written by the same aggregate SQL the reports used to run on
//! the whole log, applied to the rows being filed (a `seq` range), in the
//! transaction that files them ([`crate::inbox::insert_rows`]: the writer
//! and crash recovery alike), so a counter is never ahead of or behind the
//! log. The migration to schema 5 runs the same statements over every row.
//! Reports combine partial aggregates (sums, maxima, the newest row by
//! `(ts, seq)`), which gives exactly the whole-log answer.
//!
//! Nullable keys (`agent_model`, `agent_version`) are stored as `''` for
//! NULL and `'=' || value` otherwise: a primary key cannot hold NULL as one
//! value, and the encoding keeps `Some("")` apart from `None`.

use rusqlite::{params, Connection};

use crate::StoreError;

pub(crate) const ROLLUP_SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS rollup_agent (
    project        TEXT NOT NULL,
    agent_model    TEXT NOT NULL,
    agent_version  TEXT NOT NULL,
    n              INTEGER NOT NULL,
    denied         INTEGER NOT NULL,
    provisional    INTEGER NOT NULL,
    last_ts        TEXT NOT NULL,
    license_rows   INTEGER NOT NULL,
    license_denied INTEGER NOT NULL,
    cve_rows       INTEGER NOT NULL,
    PRIMARY KEY (project, agent_model, agent_version)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS rollup_license (
    project     TEXT NOT NULL,
    license     TEXT NOT NULL,
    n           INTEGER NOT NULL,
    allowed     INTEGER NOT NULL,
    provisional INTEGER NOT NULL,
    denied      INTEGER NOT NULL,
    PRIMARY KEY (project, license)
) WITHOUT ROWID;
-- CVE denials (denial_category = 'cve') per package; `package` is the
-- spelling of the newest row (last_ts, last_seq).
CREATE TABLE IF NOT EXISTS rollup_cve_package (
    project   TEXT NOT NULL,
    canonical TEXT NOT NULL,
    n         INTEGER NOT NULL,
    max_cvss  REAL,
    last_ts   TEXT NOT NULL,
    last_seq  INTEGER NOT NULL,
    package   TEXT NOT NULL,
    critical  INTEGER NOT NULL,
    high      INTEGER NOT NULL,
    medium    INTEGER NOT NULL,
    low       INTEGER NOT NULL,
    unknown   INTEGER NOT NULL,
    PRIMARY KEY (project, canonical)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS rollup_cve_id (
    project   TEXT NOT NULL,
    canonical TEXT NOT NULL,
    cve_id    TEXT NOT NULL,
    n         INTEGER NOT NULL,
    max_cvss  REAL,
    last_ts   TEXT NOT NULL,
    PRIMARY KEY (project, canonical, cve_id)
) WITHOUT ROWID;
-- Every row per package and UTC day (`substr(ts, 1, 10)`): the pending
-- queue's 30-day window.
CREATE TABLE IF NOT EXISTS rollup_day (
    day         TEXT NOT NULL,
    canonical   TEXT NOT NULL,
    n           INTEGER NOT NULL,
    denied      INTEGER NOT NULL,
    provisional INTEGER NOT NULL,
    PRIMARY KEY (day, canonical)
) WITHOUT ROWID;
-- The newest row of each package in each project: distinct projects in a
-- window, and the pending queue's `latest_*` fields.
CREATE TABLE IF NOT EXISTS rollup_canonical (
    canonical TEXT NOT NULL,
    project   TEXT NOT NULL,
    last_ts   TEXT NOT NULL,
    last_seq  INTEGER NOT NULL,
    PRIMARY KEY (canonical, project)
) WITHOUT ROWID;
-- Verdicts per project and UTC day: the dashboards' timeline.
CREATE TABLE IF NOT EXISTS rollup_project_day (
    project     TEXT NOT NULL,
    day         TEXT NOT NULL,
    allowed     INTEGER NOT NULL,
    provisional INTEGER NOT NULL,
    denied      INTEGER NOT NULL,
    alerts      INTEGER NOT NULL,
    PRIMARY KEY (project, day)
) WITHOUT ROWID;
-- Rows that carry advisories: the security report's 30-day window over
-- registry packages reads these instead of every row of the month. The
-- query repeats this WHERE as a term so SQLite can use the index.
CREATE INDEX IF NOT EXISTS audit_log_advisory ON audit_log(canonical, ts)
    WHERE cve_ids IS NOT NULL OR denial_category = 'cve';
";

pub(crate) const ROLLUP_TABLES: [&str; 7] = [
    "rollup_agent",
    "rollup_license",
    "rollup_cve_package",
    "rollup_cve_id",
    "rollup_day",
    "rollup_canonical",
    "rollup_project_day",
];

/// `max()` of two nullable maxima, NULL only when both are (SQLite's
/// scalar `max` is NULL as soon as one argument is).
fn max_opt(col: &str) -> String {
    format!(
        "{col} = CASE WHEN {col} IS NULL THEN excluded.{col} \
         WHEN excluded.{col} IS NULL THEN {col} ELSE max({col}, excluded.{col}) END"
    )
}

/// Whether the incoming newest row is newer than the stored one.
const NEWER: &str = "(excluded.last_ts, excluded.last_seq) > (last_ts, last_seq)";

/// The statements, each over the rows `seq BETWEEN ?1 AND ?2`.
fn statements() -> [String; 7] {
    [
        "INSERT INTO rollup_agent (project, agent_model, agent_version, n, denied, provisional, \
           last_ts, license_rows, license_denied, cve_rows) \
         SELECT project, ifnull('=' || agent_model, ''), ifnull('=' || agent_version, ''), \
           COUNT(*), SUM(verdict = 'DENIED'), SUM(verdict = 'PROVISIONALLY_ALLOWED'), MAX(ts), \
           SUM(denial_category = 'license'), \
           SUM(denial_category = 'license' AND verdict = 'DENIED'), SUM(denial_category = 'cve') \
         FROM audit_log WHERE seq BETWEEN ?1 AND ?2 GROUP BY 1, 2, 3 \
         ON CONFLICT (project, agent_model, agent_version) DO UPDATE SET n = n + excluded.n, \
           denied = denied + excluded.denied, provisional = provisional + excluded.provisional, \
           last_ts = max(last_ts, excluded.last_ts), \
           license_rows = license_rows + excluded.license_rows, \
           license_denied = license_denied + excluded.license_denied, \
           cve_rows = cve_rows + excluded.cve_rows"
            .to_string(),
        "INSERT INTO rollup_license (project, license, n, allowed, provisional, denied) \
         SELECT project, license, COUNT(*), SUM(verdict = 'ALLOWED'), \
           SUM(verdict = 'PROVISIONALLY_ALLOWED'), SUM(verdict = 'DENIED') \
         FROM audit_log WHERE seq BETWEEN ?1 AND ?2 AND license IS NOT NULL AND license != '' \
         GROUP BY 1, 2 \
         ON CONFLICT (project, license) DO UPDATE SET n = n + excluded.n, \
           allowed = allowed + excluded.allowed, provisional = provisional + excluded.provisional, \
           denied = denied + excluded.denied"
            .to_string(),
        format!(
            "INSERT INTO rollup_cve_package (project, canonical, n, max_cvss, last_ts, last_seq, \
               package, critical, high, medium, low, unknown) \
             SELECT project, canonical, n, mx, ts, seq, package, c, h, m, l, u FROM ( \
               SELECT project, canonical, ts, seq, package, COUNT(*) OVER w AS n, \
                 MAX(max_cvss) OVER w AS mx, SUM(b = 0) OVER w AS c, SUM(b = 1) OVER w AS h, \
                 SUM(b = 2) OVER w AS m, SUM(b = 3) OVER w AS l, SUM(b = 4) OVER w AS u, \
                 ROW_NUMBER() OVER (PARTITION BY project, canonical ORDER BY ts DESC, seq DESC) AS rn \
               FROM (SELECT *, CASE WHEN max_cvss >= 9.0 THEN 0 WHEN max_cvss >= 7.0 THEN 1 \
                       WHEN max_cvss >= 4.0 THEN 2 WHEN max_cvss > 0 THEN 3 ELSE 4 END AS b \
                     FROM audit_log WHERE seq BETWEEN ?1 AND ?2 AND denial_category = 'cve') \
               WINDOW w AS (PARTITION BY project, canonical)) \
             WHERE rn = 1 \
             ON CONFLICT (project, canonical) DO UPDATE SET n = n + excluded.n, {}, \
               package = CASE WHEN {NEWER} THEN excluded.package ELSE package END, \
               last_seq = CASE WHEN {NEWER} THEN excluded.last_seq ELSE last_seq END, \
               last_ts = max(last_ts, excluded.last_ts), \
               critical = critical + excluded.critical, high = high + excluded.high, \
               medium = medium + excluded.medium, low = low + excluded.low, \
               unknown = unknown + excluded.unknown",
            max_opt("max_cvss")
        ),
        format!(
            "INSERT INTO rollup_cve_id (project, canonical, cve_id, n, max_cvss, last_ts) \
             SELECT a.project, a.canonical, j.value, COUNT(*), MAX(a.max_cvss), MAX(a.ts) \
             FROM audit_log a, json_each({}) j \
             WHERE a.seq BETWEEN ?1 AND ?2 AND a.denial_category = 'cve' AND j.type = 'text' \
             GROUP BY 1, 2, 3 \
             ON CONFLICT (project, canonical, cve_id) DO UPDATE SET n = n + excluded.n, {}, \
               last_ts = max(last_ts, excluded.last_ts)",
            crate::reports::CVE_JSON,
            max_opt("max_cvss")
        ),
        "INSERT INTO rollup_day (day, canonical, n, denied, provisional) \
         SELECT substr(ts, 1, 10), canonical, COUNT(*), SUM(verdict = 'DENIED'), \
           SUM(verdict = 'PROVISIONALLY_ALLOWED') \
         FROM audit_log WHERE seq BETWEEN ?1 AND ?2 GROUP BY 1, 2 \
         ON CONFLICT (day, canonical) DO UPDATE SET n = n + excluded.n, \
           denied = denied + excluded.denied, provisional = provisional + excluded.provisional"
            .to_string(),
        format!(
            "INSERT INTO rollup_canonical (canonical, project, last_ts, last_seq) \
             SELECT canonical, project, ts, seq FROM ( \
               SELECT canonical, project, ts, seq, ROW_NUMBER() OVER \
                 (PARTITION BY canonical, project ORDER BY ts DESC, seq DESC) AS rn \
               FROM audit_log WHERE seq BETWEEN ?1 AND ?2) \
             WHERE rn = 1 \
             ON CONFLICT (canonical, project) DO UPDATE SET \
               last_seq = CASE WHEN {NEWER} THEN excluded.last_seq ELSE last_seq END, \
               last_ts = max(last_ts, excluded.last_ts)"
        ),
        "INSERT INTO rollup_project_day (project, day, allowed, provisional, denied, alerts) \
         SELECT project, substr(ts, 1, 10), SUM(verdict = 'ALLOWED'), \
           SUM(verdict = 'PROVISIONALLY_ALLOWED'), SUM(verdict = 'DENIED'), \
           SUM(verdict = 'CVE_ALERT') \
         FROM audit_log WHERE seq BETWEEN ?1 AND ?2 GROUP BY 1, 2 \
         ON CONFLICT (project, day) DO UPDATE SET allowed = allowed + excluded.allowed, \
           provisional = provisional + excluded.provisional, denied = denied + excluded.denied, \
           alerts = alerts + excluded.alerts"
            .to_string(),
    ]
}

/// Adds the rows `first..=last` (just inserted, in the caller's
/// transaction) to the counters.
pub(crate) fn apply(tx: &Connection, first: i64, last: i64) -> Result<(), StoreError> {
    for sql in statements() {
        tx.prepare_cached(&sql)?.execute(params![first, last])?;
    }
    Ok(())
}

/// Recomputes every counter from the whole log (the migration; a repair).
pub(crate) fn rebuild(tx: &Connection) -> Result<(), StoreError> {
    for t in ROLLUP_TABLES {
        tx.execute_batch(&format!("DELETE FROM {t}"))?;
    }
    apply(tx, i64::MIN, i64::MAX)
}
