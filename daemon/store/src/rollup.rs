//! Report counters (schema 5): partial aggregates of `audit_log`, so a
//! report reads a few thousand counter rows instead of scanning a million
//! audit rows.
//!
//! Two ways keep them, with one definition of each counter (the columns
//! and the `ON CONFLICT` rule that adds a partial aggregate to a stored
//! one):
//! - [`catch_up`]: the aggregate SQL the reports used to run on the whole
//!   log, over a `seq` range. The migration, a repair and every open use
//!   it (after a crash it adds the rows filed since the last flush).
//! - [`Deltas`]: the writer adds each row it filed to in-memory partial
//!   aggregates and writes them about once a second, and before any flush
//!   (every report flushes first). Doing it per commit instead, with the
//!   SQL above, was half of the writer's time under load: seven
//!   aggregate statements and their upserts for every ~30 rows.
//!
//! `meta.rollup_seq` says how far the counters go: they hold exactly the
//! rows with `seq <= rollup_seq`, and it is written in the transaction that
//! moves them. Reports combine partial aggregates (sums, maxima, the
//! newest row by `(ts, seq)`), which gives exactly the whole-log answer.
//!
//! Nullable keys (`agent_model`, `agent_version`) are stored as `''` for
//! NULL and `'=' || value` otherwise: a primary key cannot hold NULL as one
//! value, and the encoding keeps `Some("")` apart from `None`.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use rusqlite::{params, Connection, OptionalExtension};

use crate::chain::StoredRow;

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

/// One counter table: its columns and how a partial aggregate is added.
struct Counter {
    table: &'static str,
    columns: &'static str,
    /// `ON CONFLICT ... DO UPDATE ...`
    merge: String,
}

impl Counter {
    fn insert_select(&self, select: &str) -> String {
        format!(
            "INSERT INTO {} ({}) {select} {}",
            self.table, self.columns, self.merge
        )
    }

    fn upsert_values(&self) -> String {
        let n = self.columns.split(',').count();
        let marks: Vec<String> = (1..=n).map(|i| format!("?{i}")).collect();
        format!(
            "INSERT INTO {} ({}) VALUES ({}) {}",
            self.table,
            self.columns,
            marks.join(", "),
            self.merge
        )
    }
}

fn agent() -> Counter {
    Counter {
        table: "rollup_agent",
        columns: "project, agent_model, agent_version, n, denied, provisional, last_ts, \
                  license_rows, license_denied, cve_rows",
        merge: "ON CONFLICT (project, agent_model, agent_version) DO UPDATE SET n = n + excluded.n, \
                denied = denied + excluded.denied, provisional = provisional + excluded.provisional, \
                last_ts = max(last_ts, excluded.last_ts), \
                license_rows = license_rows + excluded.license_rows, \
                license_denied = license_denied + excluded.license_denied, \
                cve_rows = cve_rows + excluded.cve_rows"
            .to_string(),
    }
}

fn license() -> Counter {
    Counter {
        table: "rollup_license",
        columns: "project, license, n, allowed, provisional, denied",
        merge: "ON CONFLICT (project, license) DO UPDATE SET n = n + excluded.n, \
                allowed = allowed + excluded.allowed, provisional = provisional + excluded.provisional, \
                denied = denied + excluded.denied"
            .to_string(),
    }
}

fn cve_package() -> Counter {
    Counter {
        table: "rollup_cve_package",
        columns: "project, canonical, n, max_cvss, last_ts, last_seq, package, critical, high, \
                  medium, low, unknown",
        merge: format!(
            "ON CONFLICT (project, canonical) DO UPDATE SET n = n + excluded.n, {}, \
               package = CASE WHEN {NEWER} THEN excluded.package ELSE package END, \
               last_seq = CASE WHEN {NEWER} THEN excluded.last_seq ELSE last_seq END, \
               last_ts = max(last_ts, excluded.last_ts), \
               critical = critical + excluded.critical, high = high + excluded.high, \
               medium = medium + excluded.medium, low = low + excluded.low, \
               unknown = unknown + excluded.unknown",
            max_opt("max_cvss")
        ),
    }
}

fn cve_id() -> Counter {
    Counter {
        table: "rollup_cve_id",
        columns: "project, canonical, cve_id, n, max_cvss, last_ts",
        merge: format!(
            "ON CONFLICT (project, canonical, cve_id) DO UPDATE SET n = n + excluded.n, {}, \
               last_ts = max(last_ts, excluded.last_ts)",
            max_opt("max_cvss")
        ),
    }
}

fn day() -> Counter {
    Counter {
        table: "rollup_day",
        columns: "day, canonical, n, denied, provisional",
        merge:
            "ON CONFLICT (day, canonical) DO UPDATE SET n = n + excluded.n, \
                denied = denied + excluded.denied, provisional = provisional + excluded.provisional"
                .to_string(),
    }
}

fn canonical() -> Counter {
    Counter {
        table: "rollup_canonical",
        columns: "canonical, project, last_ts, last_seq",
        merge: format!(
            "ON CONFLICT (canonical, project) DO UPDATE SET \
               last_seq = CASE WHEN {NEWER} THEN excluded.last_seq ELSE last_seq END, \
               last_ts = max(last_ts, excluded.last_ts)"
        ),
    }
}

fn project_day() -> Counter {
    Counter {
        table: "rollup_project_day",
        columns: "project, day, allowed, provisional, denied, alerts",
        merge: "ON CONFLICT (project, day) DO UPDATE SET allowed = allowed + excluded.allowed, \
                provisional = provisional + excluded.provisional, denied = denied + excluded.denied, \
                alerts = alerts + excluded.alerts"
            .to_string(),
    }
}

/// The aggregate statements, each over the rows `seq BETWEEN ?1 AND ?2`.
fn statements() -> [String; 7] {
    [
        agent().insert_select(
            "SELECT project, ifnull('=' || agent_model, ''), ifnull('=' || agent_version, ''), \
               COUNT(*), SUM(verdict = 'DENIED'), SUM(verdict = 'PROVISIONALLY_ALLOWED'), MAX(ts), \
               SUM(denial_category = 'license'), \
               SUM(denial_category = 'license' AND verdict = 'DENIED'), SUM(denial_category = 'cve') \
             FROM audit_log WHERE seq BETWEEN ?1 AND ?2 GROUP BY 1, 2, 3",
        ),
        license().insert_select(
            "SELECT project, license, COUNT(*), SUM(verdict = 'ALLOWED'), \
               SUM(verdict = 'PROVISIONALLY_ALLOWED'), SUM(verdict = 'DENIED') \
             FROM audit_log WHERE seq BETWEEN ?1 AND ?2 AND license IS NOT NULL AND license != '' \
             GROUP BY 1, 2",
        ),
        cve_package().insert_select(
            "SELECT project, canonical, n, mx, ts, seq, package, c, h, m, l, u FROM ( \
               SELECT project, canonical, ts, seq, package, COUNT(*) OVER w AS n, \
                 MAX(max_cvss) OVER w AS mx, SUM(b = 0) OVER w AS c, SUM(b = 1) OVER w AS h, \
                 SUM(b = 2) OVER w AS m, SUM(b = 3) OVER w AS l, SUM(b = 4) OVER w AS u, \
                 ROW_NUMBER() OVER (PARTITION BY project, canonical ORDER BY ts DESC, seq DESC) AS rn \
               FROM (SELECT *, CASE WHEN max_cvss >= 9.0 THEN 0 WHEN max_cvss >= 7.0 THEN 1 \
                       WHEN max_cvss >= 4.0 THEN 2 WHEN max_cvss > 0 THEN 3 ELSE 4 END AS b \
                     FROM audit_log WHERE seq BETWEEN ?1 AND ?2 AND denial_category = 'cve') \
               WINDOW w AS (PARTITION BY project, canonical)) \
             WHERE rn = 1",
        ),
        cve_id().insert_select(&format!(
            "SELECT a.project, a.canonical, j.value, COUNT(*), MAX(a.max_cvss), MAX(a.ts) \
             FROM audit_log a, json_each({}) j \
             WHERE a.seq BETWEEN ?1 AND ?2 AND a.denial_category = 'cve' AND j.type = 'text' \
             GROUP BY 1, 2, 3",
            crate::reports::CVE_JSON
        )),
        day().insert_select(
            "SELECT substr(ts, 1, 10), canonical, COUNT(*), SUM(verdict = 'DENIED'), \
               SUM(verdict = 'PROVISIONALLY_ALLOWED') \
             FROM audit_log WHERE seq BETWEEN ?1 AND ?2 GROUP BY 1, 2",
        ),
        canonical().insert_select(
            "SELECT canonical, project, ts, seq FROM ( \
               SELECT canonical, project, ts, seq, ROW_NUMBER() OVER \
                 (PARTITION BY canonical, project ORDER BY ts DESC, seq DESC) AS rn \
               FROM audit_log WHERE seq BETWEEN ?1 AND ?2) \
             WHERE rn = 1",
        ),
        project_day().insert_select(
            "SELECT project, substr(ts, 1, 10), SUM(verdict = 'ALLOWED'), \
               SUM(verdict = 'PROVISIONALLY_ALLOWED'), SUM(verdict = 'DENIED'), \
               SUM(verdict = 'CVE_ALERT') \
             FROM audit_log WHERE seq BETWEEN ?1 AND ?2 GROUP BY 1, 2",
        ),
    ]
}

/// Adds the rows `first..=last` to the counters with the aggregate SQL.
fn apply(tx: &Connection, first: i64, last: i64) -> Result<(), StoreError> {
    for sql in statements() {
        tx.prepare_cached(&sql)?.execute(params![first, last])?;
    }
    Ok(())
}

fn head_seq(tx: &Connection) -> Result<i64, StoreError> {
    Ok(
        tx.query_row("SELECT COALESCE(MAX(seq), 0) FROM audit_log", [], |r| {
            r.get(0)
        })?,
    )
}

fn rollup_seq(tx: &Connection) -> Result<Option<i64>, StoreError> {
    Ok(tx
        .query_row("SELECT value FROM meta WHERE key = 'rollup_seq'", [], |r| {
            r.get::<_, String>(0)
        })
        .optional()?
        .and_then(|v| v.parse().ok()))
}

fn set_rollup_seq(tx: &Connection, seq: i64) -> Result<(), StoreError> {
    tx.prepare_cached("INSERT OR REPLACE INTO meta(key, value) VALUES ('rollup_seq', ?1)")?
        .execute([seq.to_string()])?;
    Ok(())
}

/// Recomputes every counter from the whole log (the migration; a repair).
pub(crate) fn rebuild(tx: &Connection) -> Result<(), StoreError> {
    for t in ROLLUP_TABLES {
        tx.execute_batch(&format!("DELETE FROM {t}"))?;
    }
    apply(tx, i64::MIN, i64::MAX)?;
    set_rollup_seq(tx, head_seq(tx)?)
}

/// Adds every row after `rollup_seq` to the counters, in the caller's
/// transaction.
pub(crate) fn catch_up(tx: &Connection) -> Result<(), StoreError> {
    let head = head_seq(tx)?;
    match rollup_seq(tx)? {
        Some(done) if done >= head => Ok(()),
        Some(done) => {
            apply(tx, done + 1, head)?;
            set_rollup_seq(tx, head)
        }
        // A schema-5 file from before `rollup_seq`: its counters were kept
        // in the filing transaction, so they hold every filed row. Called
        // at open before the inbox is filed, so nothing else was added.
        None => set_rollup_seq(tx, head),
    }
}

/// The writer writes its deltas at least this often while rows come in.
pub(crate) const DELTAS_EVERY: Duration = Duration::from_secs(1);

/// ... or once this many rows wait.
const DELTAS_ROWS: usize = 20_000;

/// Partial aggregates of the rows the writer filed since it last wrote
/// them: the same counters as the SQL above, computed in memory. Keys are
/// length-prefixed joins of their parts (injective whatever the parts
/// hold); each value keeps its key's parts for the upsert.
#[derive(Default)]
pub(crate) struct Deltas {
    /// `seq` of the first and last row added.
    range: Option<(i64, i64)>,
    rows: usize,
    since: Option<Instant>,
    key: String,
    agent: HashMap<String, AgentAgg>,
    license: HashMap<String, VerdictAgg>,
    cve_package: HashMap<String, CvePackageAgg>,
    cve_id: HashMap<String, CveIdAgg>,
    day: HashMap<String, VerdictAgg>,
    canonical: HashMap<String, NewestAgg>,
    project_day: HashMap<String, VerdictAgg>,
}

/// The newest row of a group, by `(ts, seq)`.
#[derive(Clone)]
struct Newest {
    ts: String,
    seq: i64,
}

impl Newest {
    fn of(r: &StoredRow) -> Newest {
        Newest {
            ts: r.ts.clone(),
            seq: r.seq,
        }
    }

    fn offer(&mut self, r: &StoredRow) -> bool {
        let newer = (r.ts.as_str(), r.seq) > (self.ts.as_str(), self.seq);
        if newer {
            self.ts.clone_from(&r.ts);
            self.seq = r.seq;
        }
        newer
    }
}

struct AgentAgg {
    parts: [String; 3],
    n: i64,
    denied: i64,
    provisional: i64,
    last_ts: String,
    license_rows: i64,
    license_denied: i64,
    cve_rows: i64,
}

/// Counts by verdict under a two-part key (license, day, project-day).
struct VerdictAgg {
    parts: [String; 2],
    n: i64,
    allowed: i64,
    provisional: i64,
    denied: i64,
    alerts: i64,
}

struct CvePackageAgg {
    parts: [String; 2],
    n: i64,
    max_cvss: Option<f64>,
    newest: Newest,
    package: String,
    /// critical, high, medium, low, unknown
    bands: [i64; 5],
}

struct CveIdAgg {
    parts: [String; 3],
    n: i64,
    max_cvss: Option<f64>,
    last_ts: String,
}

struct NewestAgg {
    parts: [String; 2],
    newest: Newest,
}

fn max_f64(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(x), Some(y)) => Some(x.max(y)),
        (x, None) => x,
        (None, y) => y,
    }
}

/// `ifnull('=' || v, '')`
fn encode_opt(v: &Option<String>) -> String {
    v.as_ref().map(|v| format!("={v}")).unwrap_or_default()
}

/// `encode_opt` as two parts: a marker (`=` when set) and the value.
fn opt_parts(v: &Option<String>) -> (&'static str, &str) {
    match v {
        Some(s) => ("=", s),
        None => ("", ""),
    }
}

/// `substr(ts, 1, 10)`: the first ten characters.
fn day_of(ts: &str) -> &str {
    match ts.char_indices().nth(10) {
        Some((i, _)) => &ts[..i],
        None => ts,
    }
}

/// The CVE band of `CASE WHEN max_cvss >= 9.0 THEN 0 ...`.
fn band(max_cvss: Option<f64>) -> usize {
    match max_cvss {
        Some(x) if x >= 9.0 => 0,
        Some(x) if x >= 7.0 => 1,
        Some(x) if x >= 4.0 => 2,
        Some(x) if x > 0.0 => 3,
        _ => 4,
    }
}

/// The text values `json_each(CVE_JSON)` yields for a `cve_ids` cell.
fn cve_texts(cell: Option<&str>) -> Vec<String> {
    use serde_json::Value;
    let Some(v) = cell.and_then(|c| serde_json::from_str::<Value>(c).ok()) else {
        return Vec::new();
    };
    let text = |v: Value| match v {
        Value::String(s) => Some(s),
        _ => None,
    };
    match v {
        Value::Array(items) => items.into_iter().filter_map(text).collect(),
        Value::Object(m) => m.into_iter().filter_map(|(_, v)| text(v)).collect(),
        other => text(other).into_iter().collect(),
    }
}

/// The entry of `map` under the parts joined into `key`, made by `init`
/// on first use.
fn slot<'m, V>(
    map: &'m mut HashMap<String, V>,
    key: &mut String,
    parts: &[&str],
    init: impl FnOnce() -> V,
) -> &'m mut V {
    key.clear();
    for p in parts {
        key.push_str(&p.len().to_string());
        key.push(':');
        key.push_str(p);
    }
    if !map.contains_key(key.as_str()) {
        map.insert(key.clone(), init());
    }
    map.get_mut(key.as_str()).expect("inserted above")
}

impl Deltas {
    pub(crate) fn is_empty(&self) -> bool {
        self.range.is_none()
    }

    /// Time to write them: enough rows, or the oldest waited long enough.
    pub(crate) fn due(&self) -> bool {
        self.rows >= DELTAS_ROWS || self.since.is_some_and(|t| t.elapsed() >= DELTAS_EVERY)
    }

    /// Adds a row just committed (rows come in `seq` order).
    pub(crate) fn add(&mut self, r: &StoredRow) {
        self.range = Some(match self.range {
            Some((first, _)) => (first, r.seq),
            None => (r.seq, r.seq),
        });
        self.rows += 1;
        self.since.get_or_insert_with(Instant::now);
        let denied = i64::from(r.verdict == "DENIED");
        let provisional = i64::from(r.verdict == "PROVISIONALLY_ALLOWED");
        let allowed = i64::from(r.verdict == "ALLOWED");
        let alert = i64::from(r.verdict == "CVE_ALERT");
        let is_cve = r.denial_category == "cve";
        let is_license = r.denial_category == "license";
        let day = day_of(&r.ts);
        let key = &mut self.key;

        // The key holds `encode_opt`'s parts without building it per row.
        let (mt, mv) = opt_parts(&r.agent_model);
        let (vt, vv) = opt_parts(&r.agent_version);
        let a = slot(&mut self.agent, key, &[&r.project, mt, mv, vt, vv], || {
            AgentAgg {
                parts: [
                    r.project.clone(),
                    encode_opt(&r.agent_model),
                    encode_opt(&r.agent_version),
                ],
                n: 0,
                denied: 0,
                provisional: 0,
                last_ts: r.ts.clone(),
                license_rows: 0,
                license_denied: 0,
                cve_rows: 0,
            }
        });
        a.n += 1;
        a.denied += denied;
        a.provisional += provisional;
        if r.ts > a.last_ts {
            a.last_ts.clone_from(&r.ts);
        }
        a.license_rows += i64::from(is_license);
        a.license_denied += i64::from(is_license) * denied;
        a.cve_rows += i64::from(is_cve);

        let verdicts = |parts: [String; 2]| VerdictAgg {
            parts,
            n: 0,
            allowed: 0,
            provisional: 0,
            denied: 0,
            alerts: 0,
        };
        let count = |v: &mut VerdictAgg| {
            v.n += 1;
            v.allowed += allowed;
            v.provisional += provisional;
            v.denied += denied;
            v.alerts += alert;
        };
        if let Some(lic) = r.license.as_deref().filter(|l| !l.is_empty()) {
            count(slot(&mut self.license, key, &[&r.project, lic], || {
                verdicts([r.project.clone(), lic.to_string()])
            }));
        }
        count(slot(&mut self.day, key, &[day, &r.canonical], || {
            verdicts([day.to_string(), r.canonical.clone()])
        }));
        count(slot(&mut self.project_day, key, &[&r.project, day], || {
            verdicts([r.project.clone(), day.to_string()])
        }));
        let c = slot(
            &mut self.canonical,
            key,
            &[&r.canonical, &r.project],
            || NewestAgg {
                parts: [r.canonical.clone(), r.project.clone()],
                newest: Newest::of(r),
            },
        );
        c.newest.offer(r);

        if is_cve {
            let p = slot(
                &mut self.cve_package,
                key,
                &[&r.project, &r.canonical],
                || CvePackageAgg {
                    parts: [r.project.clone(), r.canonical.clone()],
                    n: 0,
                    max_cvss: None,
                    newest: Newest::of(r),
                    package: r.package.clone(),
                    bands: [0; 5],
                },
            );
            p.n += 1;
            p.max_cvss = max_f64(p.max_cvss, r.max_cvss);
            if p.newest.offer(r) {
                p.package.clone_from(&r.package);
            }
            p.bands[band(r.max_cvss)] += 1;
            for id in cve_texts(r.cve_ids.as_deref()) {
                let e = slot(
                    &mut self.cve_id,
                    key,
                    &[&r.project, &r.canonical, &id],
                    || CveIdAgg {
                        parts: [r.project.clone(), r.canonical.clone(), id.clone()],
                        n: 0,
                        max_cvss: None,
                        last_ts: r.ts.clone(),
                    },
                );
                e.n += 1;
                e.max_cvss = max_f64(e.max_cvss, r.max_cvss);
                if r.ts > e.last_ts {
                    e.last_ts.clone_from(&r.ts);
                }
            }
        }
    }

    /// Writes the deltas in the caller's transaction and empties them. If
    /// the stored counters do not end right before the first delta row
    /// (a repair ran, or this is a retry of a write that did land), the
    /// deltas are dropped and the SQL catch-up adds whatever is missing.
    pub(crate) fn write(&mut self, tx: &Connection) -> Result<(), StoreError> {
        let Some((first, last)) = self.range else {
            return Ok(());
        };
        match rollup_seq(tx)? {
            Some(done) if done >= last => {}
            Some(done) if done == first - 1 => {
                self.upsert(tx)?;
                set_rollup_seq(tx, last)?;
            }
            _ => catch_up(tx)?,
        }
        Ok(())
    }

    /// After [`Deltas::write`] committed.
    pub(crate) fn clear(&mut self) {
        *self = Deltas {
            key: std::mem::take(&mut self.key),
            ..Deltas::default()
        };
    }

    fn upsert(&self, tx: &Connection) -> Result<(), StoreError> {
        let mut st = tx.prepare_cached(&agent().upsert_values())?;
        for a in self.agent.values() {
            let [p, m, v] = &a.parts;
            st.execute(params![
                p,
                m,
                v,
                a.n,
                a.denied,
                a.provisional,
                a.last_ts,
                a.license_rows,
                a.license_denied,
                a.cve_rows
            ])?;
        }
        let mut st = tx.prepare_cached(&license().upsert_values())?;
        for l in self.license.values() {
            let [p, lic] = &l.parts;
            st.execute(params![p, lic, l.n, l.allowed, l.provisional, l.denied])?;
        }
        let mut st = tx.prepare_cached(&cve_package().upsert_values())?;
        for c in self.cve_package.values() {
            let [p, k] = &c.parts;
            let [cr, h, m, lo, u] = c.bands;
            st.execute(params![
                p,
                k,
                c.n,
                c.max_cvss,
                c.newest.ts,
                c.newest.seq,
                c.package,
                cr,
                h,
                m,
                lo,
                u
            ])?;
        }
        let mut st = tx.prepare_cached(&cve_id().upsert_values())?;
        for c in self.cve_id.values() {
            let [p, k, id] = &c.parts;
            st.execute(params![p, k, id, c.n, c.max_cvss, c.last_ts])?;
        }
        let mut st = tx.prepare_cached(&day().upsert_values())?;
        for d in self.day.values() {
            let [day, k] = &d.parts;
            st.execute(params![day, k, d.n, d.denied, d.provisional])?;
        }
        let mut st = tx.prepare_cached(&canonical().upsert_values())?;
        for c in self.canonical.values() {
            let [k, p] = &c.parts;
            st.execute(params![k, p, c.newest.ts, c.newest.seq])?;
        }
        let mut st = tx.prepare_cached(&project_day().upsert_values())?;
        for d in self.project_day.values() {
            let [p, day] = &d.parts;
            st.execute(params![
                p,
                day,
                d.allowed,
                d.provisional,
                d.denied,
                d.alerts
            ])?;
        }
        Ok(())
    }
}
