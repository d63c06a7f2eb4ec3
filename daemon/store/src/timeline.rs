//! Verdict counts per UTC day, for the dashboards' timeline chart.

use rusqlite::{params_from_iter, Connection};
use serde::Serialize;
use time::{Date, Duration, OffsetDateTime};

use crate::util::scope;
use crate::StoreError;

/// One day of evaluations (`day` is `YYYY-MM-DD`, UTC).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DayVerdicts {
    pub day: String,
    pub allowed: u64,
    pub provisional: u64,
    pub denied: u64,
    pub alerts: u64,
}

fn day_text(d: Date) -> String {
    format!("{:04}-{:02}-{:02}", d.year(), u8::from(d.month()), d.day())
}

/// The last `days` days up to today, oldest first, days without rows
/// included as zeros. Timestamps start with the date, so the window is a
/// string comparison.
pub(crate) fn verdicts_per_day(
    conn: &Connection,
    project: Option<&str>,
    days: u32,
) -> Result<Vec<DayVerdicts>, StoreError> {
    let days = days.clamp(1, 366);
    let today = OffsetDateTime::now_utc().date();
    let first = today - Duration::days(i64::from(days) - 1);
    let mut args = vec![day_text(first)];
    let mut sql = String::from(
        // Counters per project and day (rollup.rs): `ts >= first` holds
        // exactly when `substr(ts, 1, 10) >= first` for a 10-character day.
        "SELECT day, SUM(allowed), SUM(provisional), SUM(denied), SUM(alerts) \
           FROM rollup_project_day WHERE day >= ?1",
    );
    if let Some(p) = scope(project) {
        args.push(p.to_string());
        sql.push_str(" AND project = ?2");
    }
    sql.push_str(" GROUP BY day");
    let mut stmt = conn.prepare_cached(&sql)?;
    let found = stmt
        .query_map(params_from_iter(args.iter()), |r| {
            let n = |i: usize| {
                r.get::<_, Option<i64>>(i)
                    .map(|v| v.unwrap_or(0).max(0) as u64)
            };
            Ok(DayVerdicts {
                day: r.get(0)?,
                allowed: n(1)?,
                provisional: n(2)?,
                denied: n(3)?,
                alerts: n(4)?,
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let mut out = Vec::with_capacity(days as usize);
    let mut d = first;
    while d <= today {
        let key = day_text(d);
        out.push(
            found
                .iter()
                .find(|f| f.day == key)
                .cloned()
                .unwrap_or(DayVerdicts {
                    day: key,
                    allowed: 0,
                    provisional: 0,
                    denied: 0,
                    alerts: 0,
                }),
        );
        match d.next_day() {
            Some(n) => d = n,
            None => break,
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use crate::{AuditRow, Store};

    fn row(project: &str, verdict: &str) -> AuditRow {
        AuditRow {
            project: project.into(),
            requester: "t".into(),
            package: "p".into(),
            canonical: "p".into(),
            verdict: verdict.into(),
            source: "api".into(),
            ..AuditRow::default()
        }
    }

    #[test]
    fn days_are_counted_and_gaps_filled() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path().join("db.sqlite")).unwrap();
        let now = time::OffsetDateTime::now_utc();
        let at = |days: i64| {
            (now - time::Duration::days(days))
                .format(&time::format_description::well_known::Rfc3339)
                .unwrap()
        };
        store
            .append_audit_at_blocking(row("web", "ALLOWED"), &at(0))
            .unwrap();
        store
            .append_audit_at_blocking(row("web", "DENIED"), &at(0))
            .unwrap();
        store
            .append_audit_at_blocking(row("api", "DENIED"), &at(2))
            .unwrap();
        store
            .append_audit_at_blocking(row("lex-align-server", "CVE_ALERT"), &at(2))
            .unwrap();
        store
            .append_audit_at_blocking(row("web", "PROVISIONALLY_ALLOWED"), &at(40))
            .unwrap();
        let all = store.verdicts_per_day(None, 7).unwrap();
        assert_eq!(all.len(), 7);
        let last = all.last().unwrap();
        assert_eq!((last.allowed, last.denied), (1, 1));
        let two_ago = &all[4];
        assert_eq!((two_ago.denied, two_ago.alerts, two_ago.allowed), (1, 1, 0));
        assert_eq!(all.iter().map(|d| d.provisional).sum::<u64>(), 0);
        let web = store.verdicts_per_day(Some("web"), 7).unwrap();
        assert_eq!(web.iter().map(|d| d.denied).sum::<u64>(), 1);
        assert!(all.windows(2).all(|w| w[0].day < w[1].day));
    }
}
