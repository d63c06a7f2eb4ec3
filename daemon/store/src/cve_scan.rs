//! What the background CVE re-scan reads from the audit log: the versions
//! in use (allowed recently) and the alerts already written, so an alert is
//! written once per (package, version, advisory), across restarts too.

use rusqlite::Connection;

use crate::util::ts_days_ago;
use crate::StoreError;

/// One package version the log shows allowed (or provisionally allowed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScanTarget {
    pub canonical: String,
    /// The newest spelling a caller used.
    pub package: String,
    pub version: String,
    /// Advisory ids the allowing verdicts already named: known when the
    /// version was let in, so not news.
    pub known_ids: Vec<String>,
}

/// One `CVE_ALERT` row.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertRecord {
    pub ts: String,
    pub canonical: String,
    pub package: String,
    pub version: Option<String>,
    pub cve_ids: Vec<String>,
    pub max_cvss: Option<f64>,
}

fn ids(text: Option<&str>) -> Vec<String> {
    text.and_then(|t| serde_json::from_str::<Vec<String>>(t).ok())
        .unwrap_or_default()
}

/// Distinct (package, version) allowed in the last `days` days. The `ts`
/// index bounds the read to the window.
pub(crate) fn targets(conn: &Connection, days: i64) -> Result<Vec<ScanTarget>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT canonical, package, COALESCE(resolved_version, version) AS v, cve_ids \
         FROM audit_log \
         WHERE ts >= ?1 AND verdict IN ('ALLOWED', 'PROVISIONALLY_ALLOWED') \
           AND COALESCE(resolved_version, version) IS NOT NULL \
         ORDER BY seq",
    )?;
    let mut out: Vec<ScanTarget> = Vec::new();
    let mut at: std::collections::HashMap<(String, String), usize> = Default::default();
    let mut rows = stmt.query([ts_days_ago(days)])?;
    while let Some(r) = rows.next()? {
        let canonical: String = r.get(0)?;
        let package: String = r.get(1)?;
        let version: String = r.get(2)?;
        let known = ids(r.get::<_, Option<String>>(3)?.as_deref());
        let key = (canonical.clone(), version.clone());
        match at.get(&key) {
            Some(&i) => {
                let t = &mut out[i];
                t.package = package;
                for id in known {
                    if !t.known_ids.contains(&id) {
                        t.known_ids.push(id);
                    }
                }
            }
            None => {
                at.insert(key, out.len());
                out.push(ScanTarget {
                    canonical,
                    package,
                    version,
                    known_ids: known,
                });
            }
        }
    }
    Ok(out)
}

/// Every `CVE_ALERT` row, oldest first (the `denial_category` index).
pub(crate) fn alerts(conn: &Connection) -> Result<Vec<AlertRecord>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT ts, canonical, package, COALESCE(resolved_version, version), cve_ids, max_cvss \
         FROM audit_log WHERE denial_category = 'cve_alert' AND verdict = 'CVE_ALERT' \
         ORDER BY ts, seq",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok(AlertRecord {
            ts: r.get(0)?,
            canonical: r.get(1)?,
            package: r.get(2)?,
            version: r.get(3)?,
            cve_ids: ids(r.get::<_, Option<String>>(4)?.as_deref()),
            max_cvss: r.get(5)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}
