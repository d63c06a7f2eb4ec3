//! Report queries (reports.md §2–§4), aggregated in SQL over the whole scope.
//!
//! Shapes are the original's. Deliberate differences in *content*
//! (weaknesses.md W30): security rollups cover every row in scope, not the
//! 100 most recent; packages group on the canonical name; 30-day windows are
//! computed from real timestamps; ties are broken newest-first, then by name,
//! so output is deterministic.

use std::collections::{BTreeSet, HashMap, HashSet};

use rusqlite::{params_from_iter, Connection, Row};
use serde_json::{json, Map, Value};

use crate::util::{cve_list, echo, opt_f64, scope, ts_days_ago};
use crate::StoreError;

const WINDOW_DAYS: i64 = 30;
const RECENT_DENIALS: usize = 100;
const RECENT_AGENT_ROWS: usize = 50;
const TOP_LIMIT: usize = 20;

/// `cve_ids` text as a JSON array for `json_each`, tolerating legacy junk.
pub(crate) const CVE_JSON: &str = "CASE WHEN json_valid(a.cve_ids) THEN a.cve_ids ELSE '[]' END";

/// Optional `AND a.project = ?N` clause plus its argument.
struct Filter<'a> {
    args: Vec<String>,
    project: Option<&'a str>,
}

impl<'a> Filter<'a> {
    fn new(project: Option<&'a str>) -> Self {
        Filter {
            args: Vec::new(),
            project: scope(project),
        }
    }
    fn bind(&mut self, v: impl Into<String>) -> String {
        self.args.push(v.into());
        format!("?{}", self.args.len())
    }
    /// ` AND a.project = ?N`, or nothing without a project.
    fn project_clause(&mut self) -> String {
        match self.project {
            Some(p) => format!(" AND a.project = {}", self.bind(p)),
            None => String::new(),
        }
    }
}

fn query_values<T>(
    conn: &Connection,
    sql: &str,
    args: &[String],
    f: impl FnMut(&Row<'_>) -> rusqlite::Result<T>,
) -> Result<Vec<T>, StoreError> {
    let mut stmt = conn.prepare_cached(sql)?;
    let rows = stmt
        .query_map(params_from_iter(args.iter()), f)?
        .collect::<rusqlite::Result<Vec<T>>>()?;
    Ok(rows)
}

fn count(conn: &Connection, sql: &str, args: &[String]) -> Result<i64, StoreError> {
    let mut stmt = conn.prepare_cached(sql)?;
    Ok(stmt.query_row(params_from_iter(args.iter()), |r| r.get(0))?)
}

fn s(r: &Row<'_>, i: usize) -> rusqlite::Result<Value> {
    Ok(r.get::<_, Option<String>>(i)?
        .map(Value::from)
        .unwrap_or(Value::Null))
}

/// reports.md §2: `{category, project, total_denials, recent}`.
/// `counter` is the `rollup_agent` column counting the category's rows.
fn denial_base(
    conn: &Connection,
    category: &str,
    counter: &str,
    project: Option<&str>,
) -> Result<Map<String, Value>, StoreError> {
    let mut f = Filter::new(project);
    let pc = f.project_clause();
    let total = count(
        conn,
        &format!("SELECT ifnull(SUM(a.{counter}), 0) FROM rollup_agent a WHERE 1 = 1{pc}"),
        &f.args,
    )?;
    let mut f = Filter::new(project);
    let cat = f.bind(category);
    let pc = f.project_clause();
    let recent = query_values(
        conn,
        &format!(
            "SELECT id, ts, project, requester, package, version, reason, license, cve_ids, \
               max_cvss, registry_status, agent_model, agent_version \
             FROM audit_log a WHERE a.denial_category = {cat}{pc} \
             ORDER BY a.ts DESC, a.seq DESC LIMIT {RECENT_DENIALS}"
        ),
        &f.args,
        |r| {
            Ok(json!({
                "id": s(r, 0)?, "ts": s(r, 1)?, "project": s(r, 2)?, "requester": s(r, 3)?,
                "package": s(r, 4)?, "version": s(r, 5)?, "reason": s(r, 6)?, "license": s(r, 7)?,
                "cve_ids": cve_list(r.get::<_, Option<String>>(8)?.as_deref()),
                "max_cvss": opt_f64(r.get(9)?), "registry_status": s(r, 10)?,
                "agent_model": s(r, 11)?, "agent_version": s(r, 12)?,
            }))
        },
    )?;
    let mut m = Map::new();
    m.insert("category".into(), category.into());
    m.insert("project".into(), echo(project));
    m.insert("total_denials".into(), total.into());
    m.insert("recent".into(), recent.into());
    Ok(m)
}

pub(crate) fn legal(conn: &Connection, project: Option<&str>) -> Result<Value, StoreError> {
    let mut m = denial_base(conn, "license", "license_rows", project)?;
    let mut f = Filter::new(project);
    let pc = f.project_clause();
    let breakdown = query_values(
        conn,
        &format!(
            "SELECT a.license, SUM(a.n) AS total, SUM(a.allowed), SUM(a.provisional), \
               SUM(a.denied) \
             FROM rollup_license a WHERE 1 = 1{pc} \
             GROUP BY a.license ORDER BY total DESC, a.license"
        ),
        &f.args,
        |r| {
            Ok(json!({
                "license": r.get::<_, String>(0)?, "total": r.get::<_, i64>(1)?,
                "allowed": r.get::<_, i64>(2)?, "provisional": r.get::<_, i64>(3)?,
                "denied": r.get::<_, i64>(4)?,
            }))
        },
    )?;
    let unknown = breakdown
        .iter()
        .find(|b| b["license"].as_str().map(str::to_uppercase).as_deref() == Some("UNKNOWN"))
        .map(|b| {
            json!({"total": b["total"], "allowed": b["allowed"],
                   "provisional": b["provisional"], "denied": b["denied"]})
        })
        .unwrap_or_else(|| json!({"total": 0, "allowed": 0, "provisional": 0, "denied": 0}));
    let top_projects = query_values(
        conn,
        &format!(
            "SELECT a.project, SUM(a.license_denied) AS denials FROM rollup_agent a \
             WHERE 1 = 1{pc} GROUP BY a.project HAVING denials > 0 \
             ORDER BY denials DESC, a.project LIMIT 10"
        ),
        &f.args,
        |r| Ok(json!({"project": r.get::<_, String>(0)?, "denials": r.get::<_, i64>(1)?})),
    )?;
    m.insert("license_breakdown".into(), breakdown.into());
    m.insert("unknown_license".into(), unknown);
    m.insert("top_projects".into(), top_projects.into());
    Ok(Value::Object(m))
}

/// Sort key shared by the security rollups: highest score first (NULL as 0).
fn score(v: Option<f64>) -> f64 {
    v.unwrap_or(0.0)
}

pub(crate) fn security(
    conn: &Connection,
    project: Option<&str>,
    registry: &[(String, String)],
) -> Result<Value, StoreError> {
    let mut m = denial_base(conn, "cve", "cve_rows", project)?;
    let mut f = Filter::new(project);
    let pc = f.project_clause();
    // Over rollup_cve_package / rollup_cve_id: CVE denials only.
    let scope_cve = format!("1 = 1{pc}");

    // Severity buckets over every CVE denial in scope.
    let mut sev: Map<String, Value> = ["critical", "high", "medium", "low", "unknown"]
        .iter()
        .map(|k| ((*k).to_string(), Value::from(0)))
        .collect();
    for (bucket, n) in query_values(
        conn,
        &format!(
            "SELECT ifnull(SUM(a.critical), 0), ifnull(SUM(a.high), 0), ifnull(SUM(a.medium), 0), \
               ifnull(SUM(a.low), 0), ifnull(SUM(a.unknown), 0) \
             FROM rollup_cve_package a WHERE {scope_cve}"
        ),
        &f.args,
        |r| {
            Ok([
                ("critical", r.get::<_, i64>(0)?),
                ("high", r.get(1)?),
                ("medium", r.get(2)?),
                ("low", r.get(3)?),
                ("unknown", r.get(4)?),
            ])
        },
    )?
    .into_iter()
    .flatten()
    {
        sev.insert(bucket.to_string(), n.into());
    }

    // (cve, package) pairs: one pass feeds both top_packages' id lists and
    // top_cves' package lists.
    struct Pair {
        cve: String,
        canonical: String,
        n: i64,
        max: Option<f64>,
        latest: String,
    }
    let pairs = query_values(
        conn,
        &format!(
            "SELECT a.cve_id, a.canonical, SUM(a.n), MAX(a.max_cvss), MAX(a.last_ts) \
             FROM rollup_cve_id a WHERE {scope_cve} GROUP BY a.cve_id, a.canonical"
        ),
        &f.args,
        |r| {
            Ok(Pair {
                cve: r.get(0)?,
                canonical: r.get(1)?,
                n: r.get(2)?,
                max: r.get(3)?,
                latest: r.get(4)?,
            })
        },
    )?;
    let mut ids_by_pkg: HashMap<&str, BTreeSet<&str>> = HashMap::new();
    struct CveAgg<'p> {
        n: i64,
        max: Option<f64>,
        latest: &'p str,
        packages: BTreeSet<&'p str>,
    }
    let mut cves: HashMap<&str, CveAgg<'_>> = HashMap::new();
    for p in &pairs {
        ids_by_pkg.entry(&p.canonical).or_default().insert(&p.cve);
        let e = cves.entry(&p.cve).or_insert(CveAgg {
            n: 0,
            max: None,
            latest: "",
            packages: BTreeSet::new(),
        });
        e.n += p.n;
        e.max = match (e.max, p.max) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
        e.latest = e.latest.max(p.latest.as_str());
        e.packages.insert(&p.canonical);
    }
    let mut top_cves: Vec<(&str, CveAgg<'_>)> = cves.into_iter().collect();
    top_cves.sort_by(|(ia, a), (ib, b)| {
        score(b.max)
            .total_cmp(&score(a.max))
            .then(b.n.cmp(&a.n))
            .then(b.latest.cmp(a.latest))
            .then(ia.cmp(ib))
    });
    let top_cves: Vec<Value> = top_cves
        .into_iter()
        .take(TOP_LIMIT)
        .map(|(id, a)| {
            json!({"cve_id": id, "occurrences": a.n, "max_cvss": opt_f64(a.max),
                   "packages": a.packages.iter().take(5).collect::<Vec<_>>()})
        })
        .collect();

    let top_packages = query_values(
        conn,
        &format!(
            "WITH s AS (SELECT * FROM rollup_cve_package a WHERE {scope_cve}), \
                  g AS (SELECT canonical, SUM(n) AS denials, MAX(max_cvss) AS mx, \
                        MAX(last_ts) AS latest FROM s GROUP BY canonical), \
                  n AS (SELECT canonical, package, ROW_NUMBER() OVER \
                        (PARTITION BY canonical ORDER BY last_ts DESC, last_seq DESC) AS rn FROM s) \
             SELECT g.canonical, n.package, g.denials, g.mx FROM g \
             JOIN n ON n.canonical = g.canonical AND n.rn = 1 \
             ORDER BY COALESCE(g.mx, 0) DESC, g.denials DESC, g.latest DESC, g.canonical \
             LIMIT {TOP_LIMIT}"
        ),
        &f.args,
        |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, i64>(2)?,
                r.get::<_, Option<f64>>(3)?,
            ))
        },
    )?
    .into_iter()
    .map(|(canonical, package, denials, max)| {
        let ids: Vec<&str> = ids_by_pkg
            .get(canonical.as_str())
            .map(|s| s.iter().take(5).copied().collect())
            .unwrap_or_default();
        json!({"package": package, "denials": denials, "max_cvss": opt_f64(max), "cve_ids": ids})
    })
    .collect::<Vec<_>>();

    let hot = hot_registry_packages(conn, project, registry)?;

    let mut f = Filter::new(project);
    let pc = f.project_clause();
    let alerts = query_values(
        conn,
        &format!(
            "SELECT a.id, a.ts, a.package, a.cve_ids, a.max_cvss, a.reason, a.registry_status, \
             COALESCE(a.resolved_version, a.version) \
             FROM audit_log a WHERE a.denial_category = 'cve_alert'{pc} \
             ORDER BY a.ts DESC, a.seq DESC LIMIT {RECENT_DENIALS}"
        ),
        &f.args,
        |r| {
            Ok(json!({
                "id": s(r, 0)?, "ts": s(r, 1)?, "package": s(r, 2)?,
                "cve_ids": cve_list(r.get::<_, Option<String>>(3)?.as_deref()),
                "max_cvss": opt_f64(r.get(4)?), "reason": s(r, 5)?, "registry_status": s(r, 6)?,
                // Ours: an alert is about one version in use.
                "version": r.get::<_, Option<String>>(7)?,
            }))
        },
    )?;

    m.insert("severity_distribution".into(), Value::Object(sev));
    m.insert("top_packages".into(), top_packages.into());
    m.insert("top_cves".into(), top_cves.into());
    m.insert("hot_registry_packages".into(), hot.into());
    m.insert("cve_alerts".into(), alerts.into());
    Ok(Value::Object(m))
}

/// Registry packages an operator already allowed that drew CVE verdicts in
/// the last 30 days. Counts CVE denials, and provisional verdicts that came
/// with advisories (the original's filter made `provisional` always 0).
fn hot_registry_packages(
    conn: &Connection,
    project: Option<&str>,
    registry: &[(String, String)],
) -> Result<Vec<Value>, StoreError> {
    let statuses: HashMap<String, &str> = registry
        .iter()
        .filter(|(_, st)| {
            matches!(
                st.as_str(),
                "preferred" | "approved" | "version-constrained"
            )
        })
        .map(|(k, st)| (crate::util::canonical_name(k), st.as_str()))
        .collect();
    if statuses.is_empty() {
        return Ok(Vec::new());
    }
    let keys: Vec<&String> = statuses.keys().collect();
    let mut f = Filter::new(project);
    let since = f.bind(ts_days_ago(WINDOW_DAYS));
    let keys_arg = f.bind(serde_json::to_string(&keys).expect("strings"));
    // `+a.project`: with a project, SQLite would otherwise walk
    // audit_log_project_ts over the project's whole month; the advisory
    // rows are a small part of that (168 ms against 20 ms on 1M rows).
    let pc = f.project_clause().replace("a.project", "+a.project");
    // The first term is audit_log_advisory's WHERE, so SQLite can use it.
    let scope_hot = format!(
        "(a.cve_ids IS NOT NULL OR a.denial_category = 'cve') AND a.ts >= {since}{pc} AND a.canonical IN (SELECT value FROM json_each({keys_arg})) \
         AND ((a.denial_category = 'cve' AND a.verdict = 'DENIED') \
              OR (a.verdict = 'PROVISIONALLY_ALLOWED' AND (a.denial_category = 'cve' OR a.cve_ids IS NOT NULL)))"
    );
    let mut ids: HashMap<String, Vec<String>> = HashMap::new();
    for (canonical, id) in query_values(
        conn,
        &format!(
            "SELECT DISTINCT a.canonical, j.value FROM audit_log a INDEXED BY audit_log_advisory, \
             json_each({CVE_JSON}) j \
             WHERE {scope_hot} AND j.type = 'text' ORDER BY 1, 2"
        ),
        &f.args,
        |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)),
    )? {
        ids.entry(canonical).or_default().push(id);
    }
    let rows = query_values(
        conn,
        &format!(
            "WITH s AS (SELECT a.* FROM audit_log a INDEXED BY audit_log_advisory WHERE {scope_hot}), \
                  g AS (SELECT canonical, SUM(verdict = 'DENIED') AS den, \
                          SUM(verdict = 'PROVISIONALLY_ALLOWED') AS prov, MAX(max_cvss) AS mx, \
                          MAX(ts) AS latest FROM s GROUP BY canonical), \
                  n AS (SELECT canonical, package, ROW_NUMBER() OVER \
                          (PARTITION BY canonical ORDER BY ts DESC, seq DESC) AS rn FROM s) \
             SELECT g.canonical, n.package, g.den, g.prov, g.mx, g.latest FROM g \
             JOIN n ON n.canonical = g.canonical AND n.rn = 1 \
             ORDER BY COALESCE(g.mx, 0) DESC, g.den DESC, g.prov DESC, g.canonical"
        ),
        &f.args,
        |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, i64>(2)?,
                r.get::<_, i64>(3)?,
                r.get::<_, Option<f64>>(4)?,
                r.get::<_, String>(5)?,
            ))
        },
    )?;
    Ok(rows
        .into_iter()
        .map(|(canonical, package, den, prov, mx, latest)| {
            json!({
                "package": package,
                "normalized_name": canonical,
                "registry_status": statuses.get(&canonical).copied(),
                "denials": den, "provisional": prov, "max_cvss": opt_f64(mx),
                "cve_ids": ids.remove(&canonical).unwrap_or_default(),
                "latest_ts": latest,
            })
        })
        .collect())
}

pub(crate) fn projects(conn: &Connection) -> Result<Value, StoreError> {
    let evals = query_values(
        conn,
        "SELECT project, SUM(n), SUM(denied) FROM rollup_agent GROUP BY project ORDER BY project",
        &[],
        |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, i64>(2)?,
            ))
        },
    )?;
    let requests = query_values(
        conn,
        "SELECT project, COUNT(*) FROM approval_requests GROUP BY project ORDER BY project",
        &[],
        |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)),
    )?;
    let req_count: HashMap<&str, i64> = requests.iter().map(|(p, n)| (p.as_str(), *n)).collect();
    let seen: HashSet<&str> = evals.iter().map(|(p, _, _)| p.as_str()).collect();
    let mut out: Vec<Value> = evals
        .iter()
        .map(|(p, n, d)| {
            json!({"project": p, "evaluations": n, "denials": d,
                   "approval_requests": req_count.get(p.as_str()).copied().unwrap_or(0)})
        })
        .collect();
    out.extend(
        requests
            .iter()
            .filter(|(p, _)| !seen.contains(p.as_str()))
            .map(|(p, n)| {
                json!({"project": p, "evaluations": 0, "denials": 0, "approval_requests": n})
            }),
    );
    Ok(json!({ "projects": out }))
}

pub(crate) fn agents(conn: &Connection, project: Option<&str>) -> Result<Value, StoreError> {
    let mut f = Filter::new(project);
    let pc = f.project_clause();
    let agents = query_values(
        conn,
        &format!(
            "SELECT CASE WHEN a.agent_model = '' THEN NULL ELSE substr(a.agent_model, 2) END, \
               CASE WHEN a.agent_version = '' THEN NULL ELSE substr(a.agent_version, 2) END, \
               SUM(a.n) AS ev, SUM(a.denied), SUM(a.provisional), MAX(a.last_ts) AS last \
             FROM rollup_agent a WHERE 1 = 1{pc} GROUP BY a.agent_model, a.agent_version \
             ORDER BY ev DESC, last DESC, a.agent_model, a.agent_version"
        ),
        &f.args,
        |r| {
            Ok(json!({
                "agent_model": s(r, 0)?, "agent_version": s(r, 1)?,
                "evaluations": r.get::<_, i64>(2)?, "denials": r.get::<_, i64>(3)?,
                "provisional": r.get::<_, i64>(4)?, "last_seen": s(r, 5)?,
            }))
        },
    )?;
    let recent = query_values(
        conn,
        &format!(
            "SELECT id, ts, project, requester, package, version, verdict, denial_category, reason, \
               agent_model, agent_version FROM audit_log a WHERE 1 = 1{pc} \
             ORDER BY a.ts DESC, a.seq DESC LIMIT {RECENT_AGENT_ROWS}"
        ),
        &f.args,
        |r| {
            Ok(json!({
                "id": s(r, 0)?, "ts": s(r, 1)?, "project": s(r, 2)?, "requester": s(r, 3)?,
                "package": s(r, 4)?, "version": s(r, 5)?, "verdict": s(r, 6)?,
                "denial_category": s(r, 7)?, "reason": s(r, 8)?,
                "agent_model": s(r, 9)?, "agent_version": s(r, 10)?,
            }))
        },
    )?;
    Ok(json!({"project": echo(project), "agents": agents, "recent": recent}))
}

/// reports.md §4: `{explicit, implicit}`, both without registry packages.
pub(crate) fn pending(
    conn: &Connection,
    registry_keys: &HashSet<String>,
) -> Result<Value, StoreError> {
    let explicit: Vec<(String, Value)> = query_values(
        conn,
        "WITH n AS (SELECT *, ROW_NUMBER() OVER (PARTITION BY canonical ORDER BY ts DESC, id) AS rn, \
                    COUNT(*) OVER (PARTITION BY canonical) AS cnt \
                    FROM approval_requests WHERE status = 'PENDING_REVIEW') \
         SELECT canonical, package, rationale, ts, project, requester, cnt, proposal_status, proposal_url \
         FROM n WHERE rn = 1 ORDER BY ts DESC, canonical",
        &[],
        |r| {
            let canonical: String = r.get(0)?;
            let mut v = json!({
                "package": s(r, 1)?, "normalized_name": canonical,
                "latest_rationale": s(r, 2)?, "latest_ts": s(r, 3)?,
                "latest_project": s(r, 4)?, "latest_requester": s(r, 5)?,
                "request_count": r.get::<_, i64>(6)?,
            });
            // What a reviewing proposer did with the latest request; absent
            // (the original's shape) when none did.
            if let Some(status) = r.get::<_, Option<String>>(7)? {
                v["proposal_status"] = Value::String(status);
                v["proposal_url"] = r
                    .get::<_, Option<String>>(8)?
                    .map_or(Value::Null, Value::String);
            }
            Ok((canonical, v))
        },
    )?;
    let explicit: Vec<(String, Value)> = explicit
        .into_iter()
        .filter(|(k, _)| !registry_keys.contains(k))
        .collect();
    let explicit_keys: HashSet<&str> = explicit.iter().map(|(k, _)| k.as_str()).collect();

    struct Candidate {
        canonical: String,
        value: Value,
        rank: u8,
        evaluations: i64,
        latest: String,
    }
    // The window `ts >= since` is the days after since's day (counters)
    // plus the rows of since's own day at or after since (the `ts` index).
    // A row is in the window exactly when one of the two holds, whatever
    // its `ts` text (substr(ts, 1, 10) > day implies ts > since).
    let since = ts_days_ago(WINDOW_DAYS);
    let day: String = since.chars().take(10).collect();
    let day_end = match day.char_indices().last() {
        Some((i, c)) => format!("{}{}", &day[..i], char::from_u32(c as u32 + 1).unwrap_or(c)),
        None => day.clone(),
    };
    // Project count and latest row per candidate through the primary key
    // (canonical, project): a window over every recent pair sorted ~45k
    // rows on a 1M-row log.
    let mut implicit = query_values(
        conn,
        "WITH w AS (SELECT canonical, n, denied, provisional FROM rollup_day WHERE day > ?2 \
                    UNION ALL \
                    SELECT canonical, 1, verdict = 'DENIED', verdict = 'PROVISIONALLY_ALLOWED' \
                    FROM audit_log WHERE ts >= ?1 AND ts < ?3 AND substr(ts, 1, 10) = ?2), \
              g AS (SELECT canonical, SUM(n) AS ev, SUM(denied) AS den, SUM(provisional) AS prov \
                    FROM w WHERE canonical NOT IN (SELECT canonical FROM approval_requests) \
                    GROUP BY canonical), \
              p AS (SELECT g.*, \
                    (SELECT COUNT(*) FROM rollup_canonical r \
                     WHERE r.canonical = g.canonical AND r.last_ts >= ?1) AS pc, \
                    (SELECT r.last_seq FROM rollup_canonical r \
                     WHERE r.canonical = g.canonical AND r.last_ts >= ?1 \
                     ORDER BY r.last_ts DESC, r.last_seq DESC LIMIT 1) AS last_seq \
                    FROM g) \
         SELECT p.canonical, n.package, p.ev, p.den, p.prov, n.ts, n.project, n.agent_model, \
                n.agent_version, p.pc \
         FROM p JOIN audit_log n ON n.seq = p.last_seq",
        &[since, day, day_end],
        |r| {
            let canonical: String = r.get(0)?;
            let (ev, den, prov, pc): (i64, i64, i64, i64) =
                (r.get(2)?, r.get(3)?, r.get(4)?, r.get(9)?);
            let latest: String = r.get(5)?;
            let (rank, reason, detail) = if prov > 0 {
                (
                    0,
                    "provisional-no-rationale",
                    format!("{prov} provisional verdict(s); no `request-approval` follow-up."),
                )
            } else if den >= 3 {
                (
                    1,
                    "repeatedly-denied",
                    format!(
                        "{den} denials across {pc} project(s); an explicit registry rule would short-circuit future checks."
                    ),
                )
            } else {
                (
                    2,
                    "pre-screened",
                    format!("{ev} `check` call(s) across {pc} project(s); never proposed."),
                )
            };
            Ok(Candidate {
                value: json!({
                    "package": s(r, 1)?, "normalized_name": canonical, "evaluations": ev,
                    "denials": den, "provisional": prov, "latest_ts": latest,
                    "latest_project": s(r, 6)?, "latest_agent_model": s(r, 7)?,
                    "latest_agent_version": s(r, 8)?, "project_count": pc,
                    "reason": reason, "reason_detail": detail,
                }),
                canonical,
                rank,
                evaluations: ev,
                latest,
            })
        },
    )?;
    implicit.retain(|c| {
        !registry_keys.contains(&c.canonical) && !explicit_keys.contains(c.canonical.as_str())
    });
    implicit.sort_by(|a, b| {
        a.rank
            .cmp(&b.rank)
            .then(b.evaluations.cmp(&a.evaluations))
            .then(b.latest.cmp(&a.latest))
            .then(a.canonical.cmp(&b.canonical))
    });
    Ok(json!({
        "explicit": explicit.into_iter().map(|(_, v)| v).collect::<Vec<_>>(),
        "implicit": implicit.into_iter().map(|c| c.value).collect::<Vec<_>>(),
    }))
}
