//! Small helpers: timestamps, canonical names, JSON conversions.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rusqlite::types::ValueRef;
use serde_json::Value;
use time::format_description::well_known::Rfc3339;
use time::macros::format_description;
use time::{OffsetDateTime, UtcOffset};

/// The one timestamp format of the store: ISO-8601 UTC with microseconds and
/// `+00:00` (what the original wrote, e.g. `2026-11-23T12:14:40.031333+00:00`).
/// Fixed width, so lexical order is time order and SQL can compare strings.
const TS_FORMAT: &[time::format_description::BorrowedFormatItem<'static>] =
    format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:6]+00:00");

pub(crate) fn format_ts(t: OffsetDateTime) -> String {
    let t = t.to_offset(UtcOffset::UTC);
    if !(0..=9999).contains(&t.year()) {
        return t
            .format(TS_FORMAT)
            .expect("formatting a UTC timestamp with a static format cannot fail");
    }
    // Every audit row takes one: written digit by digit, it costs a tenth
    // of the general formatter (the test below holds the two equal).
    let mut b = *b"0000-00-00T00:00:00.000000+00:00";
    let mut put = |at: usize, width: usize, mut v: u32| {
        for i in (at..at + width).rev() {
            b[i] = b'0' + (v % 10) as u8;
            v /= 10;
        }
    };
    put(0, 4, t.year() as u32);
    put(5, 2, u8::from(t.month()) as u32);
    put(8, 2, t.day() as u32);
    put(11, 2, t.hour() as u32);
    put(14, 2, t.minute() as u32);
    put(17, 2, t.second() as u32);
    put(20, 6, t.microsecond());
    String::from_utf8(b.to_vec()).expect("ASCII digits")
}

pub(crate) fn now_ts() -> String {
    format_ts(OffsetDateTime::now_utc())
}

/// `now - days`, in the store's format: the lower bound of a time window.
pub(crate) fn ts_days_ago(days: i64) -> String {
    format_ts(OffsetDateTime::now_utc() - time::Duration::days(days))
}

/// Parses any RFC 3339 timestamp (the original sometimes omitted the
/// microseconds) and returns it in the store's format.
pub(crate) fn normalize_ts(ts: &str) -> Option<String> {
    OffsetDateTime::parse(ts, &Rfc3339).ok().map(format_ts)
}

pub(crate) fn unix_millis_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_millis() as i64
}

/// PEP 503 normal form: lowercase, every run of `-`, `_`, `.` becomes one `-`.
/// Same rule as the engine's `name::canonicalize`; duplicated so the store
/// has no dependency on the engine.
pub fn canonical_name(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut in_sep = false;
    for c in name.trim().chars() {
        if matches!(c, '-' | '_' | '.') {
            if !in_sep {
                out.push('-');
            }
            in_sep = true;
        } else {
            out.extend(c.to_lowercase());
            in_sep = false;
        }
    }
    out
}

/// `cve_ids` column text → list; NULL or invalid JSON → `[]` (as the original).
pub(crate) fn cve_list(text: Option<&str>) -> Value {
    let ids: Vec<String> = text
        .and_then(|t| serde_json::from_str::<Vec<Value>>(t).ok())
        .map(|v| {
            v.into_iter()
                .filter_map(|x| x.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    Value::from(ids)
}

pub(crate) fn opt_f64(v: Option<f64>) -> Value {
    v.map(Value::from).unwrap_or(Value::Null)
}

/// Lenient conversions for rows written by the original server, whose column
/// affinities were not enforced.
pub(crate) fn value_to_string(v: ValueRef<'_>) -> Option<String> {
    match v {
        ValueRef::Null => None,
        ValueRef::Integer(i) => Some(i.to_string()),
        ValueRef::Real(f) => Some(f.to_string()),
        ValueRef::Text(t) | ValueRef::Blob(t) => Some(String::from_utf8_lossy(t).into_owned()),
    }
}

pub(crate) fn value_to_f64(v: ValueRef<'_>) -> Option<f64> {
    match v {
        ValueRef::Integer(i) => Some(i as f64),
        ValueRef::Real(f) => Some(f),
        ValueRef::Text(t) => std::str::from_utf8(t).ok()?.trim().parse().ok(),
        _ => None,
    }
    .and_then(clean_f64)
}

/// Scores are hashed as JSON numbers, so only finite values are stored and
/// `-0.0` becomes `0.0` (SQLite may hand it back as `0`).
pub(crate) fn clean_f64(f: f64) -> Option<f64> {
    f.is_finite().then_some(f + 0.0)
}

/// `None` and `""` mean "no project filter".
pub(crate) fn scope(project: Option<&str>) -> Option<&str> {
    project.filter(|p| !p.is_empty())
}

/// The `project` echo: `null` when absent, the string as given otherwise.
pub(crate) fn echo(v: Option<&str>) -> Value {
    v.map(Value::from).unwrap_or(Value::Null)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fast_timestamps_equal_the_general_formatter() {
        let general = |t: OffsetDateTime| t.format(TS_FORMAT).unwrap();
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..20_000 {
            // xorshift over the years 0..=9999, with micro- and nanoseconds
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let secs = (x % 315_537_897_600) as i64 - 62_167_219_200;
            let nanos = (x >> 40) as i64 % 1_000_000_000;
            let t = OffsetDateTime::from_unix_timestamp_nanos(
                i128::from(secs) * 1_000_000_000 + i128::from(nanos),
            )
            .unwrap();
            assert_eq!(format_ts(t), general(t), "{t}");
        }
        for t in [
            time::macros::datetime!(0000-01-01 00:00:00 UTC),
            time::macros::datetime!(9999-12-31 23:59:59.999999999 UTC),
            time::macros::datetime!(2026-12-07 12:00:00 +05:30),
            time::macros::datetime!(-0001-06-01 00:00:00 UTC),
        ] {
            assert_eq!(format_ts(t), general(t.to_offset(UtcOffset::UTC)), "{t}");
        }
    }

    #[test]
    fn canonical_names() {
        assert_eq!(canonical_name("Foo__Bar.baz"), "foo-bar-baz");
        assert_eq!(canonical_name(" PyYAML "), "pyyaml");
    }

    #[test]
    fn timestamps_round_trip() {
        let t = now_ts();
        assert_eq!(t.len(), 32, "{t}");
        assert!(t.ends_with("+00:00"));
        assert_eq!(normalize_ts(&t).as_deref(), Some(t.as_str()));
        assert_eq!(
            normalize_ts("2026-11-23T12:14:40+00:00").as_deref(),
            Some("2026-11-23T12:14:40.000000+00:00")
        );
        assert_eq!(
            normalize_ts("2026-11-23T14:14:40.5+02:00").as_deref(),
            Some("2026-11-23T12:14:40.500000+00:00")
        );
    }
}
