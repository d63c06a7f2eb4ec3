//! The audit-log reads of the background CVE re-scan, on a real SQLite file.

mod common;

use common::{days_ago, row, temp_store};
use lex_align_store::ScanTarget;

#[test]
fn targets_are_the_versions_allowed_in_the_window_with_the_ids_they_named() {
    let (_d, store) = temp_store();
    let mut old = row("a", "Old-Pkg", "ALLOWED", "");
    old.resolved_version = Some("1.0".into());
    store.append_audit_at_blocking(old, &days_ago(31)).unwrap();
    let mut denied = row("a", "denied", "DENIED", "cve");
    denied.resolved_version = Some("2.0".into());
    store
        .append_audit_at_blocking(denied, &days_ago(1))
        .unwrap();
    let mut first = row("a", "Six", "ALLOWED", "");
    first.resolved_version = Some("1.16.0".into());
    first.cve_ids = vec!["PYSEC-1".into()];
    store.append_audit_at_blocking(first, &days_ago(3)).unwrap();
    let mut again = row("b", "six", "PROVISIONALLY_ALLOWED", "");
    again.resolved_version = Some("1.16.0".into());
    again.cve_ids = vec!["GHSA-2".into(), "PYSEC-1".into()];
    store.append_audit_at_blocking(again, &days_ago(2)).unwrap();
    let mut unresolved = row("b", "bare", "ALLOWED", "");
    unresolved.version = None;
    unresolved.resolved_version = None;
    store
        .append_audit_at_blocking(unresolved, &days_ago(2))
        .unwrap();
    let mut other = row("b", "six", "ALLOWED", "");
    other.resolved_version = Some("1.17.0".into());
    store.append_audit_at_blocking(other, &days_ago(1)).unwrap();
    let mut alert = row("lex-align-server", "six", "CVE_ALERT", "cve_alert");
    alert.resolved_version = Some("1.16.0".into());
    store.append_audit_at_blocking(alert, &days_ago(0)).unwrap();

    assert_eq!(
        store.cve_scan_targets(30).unwrap(),
        vec![
            ScanTarget {
                canonical: "six".into(),
                package: "six".into(),
                version: "1.16.0".into(),
                known_ids: vec!["PYSEC-1".into(), "GHSA-2".into()],
            },
            ScanTarget {
                canonical: "six".into(),
                package: "six".into(),
                version: "1.17.0".into(),
                known_ids: vec![],
            },
        ]
    );
    // 31 days back takes the old one in too.
    assert_eq!(store.cve_scan_targets(32).unwrap().len(), 3);
}

#[test]
fn alert_records_are_the_cve_alert_rows_only() {
    let (_d, store) = temp_store();
    store
        .append_audit_blocking(row("a", "six", "DENIED", "cve"))
        .unwrap();
    let mut alert = row("lex-align-server", "Six", "CVE_ALERT", "cve_alert");
    alert.cve_ids = vec!["GHSA-1".into(), "GHSA-2".into()];
    alert.max_cvss = Some(7.5);
    store.append_audit_blocking(alert).unwrap();
    let got = store.cve_alert_records().unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].canonical, "six");
    assert_eq!(got[0].package, "Six");
    assert_eq!(got[0].version.as_deref(), Some("1.0.0"));
    assert_eq!(got[0].cve_ids, vec!["GHSA-1", "GHSA-2"]);
    assert_eq!(got[0].max_cvss, Some(7.5));
}
