//! The background CVE re-scan against a real daemon: real SQLite file, the
//! fake index and a fake OSV server that learns of an advisory after the
//! version was allowed. The cadence is a fractional-hour interval (the
//! documented test hook); waits are bounded polls on the scan counter in
//! health, never a timed assertion.

mod common;
mod lsp_support;

use std::time::Duration;

use common::{start_with, Options, TestServer};
use lex_align_daemon::Config;
use lex_align_engine::advisory::{
    OsvAffected, OsvEvent, OsvPackage, OsvRange, OsvRecord, OsvSeverity,
};
use lex_align_fakes::{pypa_snapshot_dir, FakeOsv};
use lsp_support::{diag, file_uri, has_code, summary, upgrade, LspClient, WARNING};
use serde_json::{json, Value};

/// 0.0002 h = 0.72 s between scans.
const FAST: f64 = 0.0002;
const ADVISORY: &str = "GHSA-cvsc-an00-0001";
const CRITICAL: &str = "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H";
const MEDIUM: &str = "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:L/I:N/A:N";

/// An advisory on httpx before 0.29.0.
fn advisory(id: &str, vector: &str) -> OsvRecord {
    OsvRecord {
        id: id.into(),
        modified: Some("2026-12-01T00:00:00Z".into()),
        summary: Some("Request smuggling in the connection pool".into()),
        severity: vec![OsvSeverity {
            kind: "CVSS_V3".into(),
            score: vector.into(),
        }],
        affected: vec![OsvAffected {
            package: Some(OsvPackage {
                ecosystem: "PyPI".into(),
                name: "httpx".into(),
            }),
            ranges: vec![OsvRange {
                kind: "ECOSYSTEM".into(),
                events: vec![
                    OsvEvent {
                        introduced: Some("0".into()),
                        ..Default::default()
                    },
                    OsvEvent {
                        fixed: Some("0.29.0".into()),
                        ..Default::default()
                    },
                ],
            }],
            ..Default::default()
        }],
        ..Default::default()
    }
}

/// A daemon on `data` scanning every `hours`, its advisories from `osv`.
async fn daemon(data: &std::path::Path, osv: &FakeOsv, hours: f64) -> TestServer {
    let data = data.to_path_buf();
    let osv_url = osv.url();
    start_with(Options {
        tweak: Some(Box::new(move |c: &mut Config| {
            c.database_path = data.join("lexalign.sqlite");
            c.data_dir = data;
            c.osv_url = Some(osv_url);
            c.cve_scan_interval_hours = hours;
        })),
        ..Options::default()
    })
    .await
}

/// A daemon with the scan cadence off (the test drives the scans) that has
/// allowed httpx 0.28.1 once, so the scanner has a version in use.
async fn httpx_allowed_without_cadence() -> (tempfile::TempDir, FakeOsv, TestServer) {
    let root = tempfile::tempdir().unwrap();
    let osv = FakeOsv::start(&pypa_snapshot_dir());
    let s = daemon(&root.path().join("data"), &osv, 0.0).await;
    let (_, v) = s.evaluate("package=httpx&version=0.28.1").await;
    assert_eq!(v["verdict"], "ALLOWED", "{v}");
    (root, osv, s)
}

async fn scan_status(s: &TestServer) -> Value {
    let (status, h) = s.get("/api/v1/health").await;
    assert_eq!(status, 200, "{h}");
    h["cve_scan"].clone()
}

/// Waits (bounded) until `n` more scans than now have finished, so at least
/// one whole scan started after the call.
async fn next_scans(s: &TestServer, n: u64) -> Value {
    let start = scan_status(s).await["scans"].as_u64().unwrap();
    for _ in 0..400 {
        let st = scan_status(s).await;
        if st["scans"].as_u64().unwrap() >= start + n {
            return st;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the scanner did not finish {n} scans");
}

/// Alert rows straight from the SQLite file.
fn alert_rows(s: &TestServer) -> Vec<(String, String, String, String, Option<f64>, String)> {
    s.handle.store().flush().unwrap();
    let db = rusqlite::Connection::open(&s.handle.state.config.database_path).unwrap();
    let mut stmt = db
        .prepare(
            "SELECT project, package, version, cve_ids, max_cvss, source FROM audit_log \
             WHERE verdict = 'CVE_ALERT' AND denial_category = 'cve_alert' ORDER BY seq",
        )
        .unwrap();
    stmt.query_map([], |r| {
        Ok((
            r.get(0)?,
            r.get(1)?,
            r.get(2)?,
            r.get(3)?,
            r.get(4)?,
            r.get(5)?,
        ))
    })
    .unwrap()
    .map(Result::unwrap)
    .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_advisory_published_after_allowing_alerts_once_across_scans_and_restarts() {
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("data");
    let osv = FakeOsv::start(&pypa_snapshot_dir());
    let s = daemon(&data, &osv, FAST).await;

    let (_, v) = s.evaluate("package=httpx&version=0.28.1").await;
    assert_eq!(v["verdict"], "ALLOWED", "{v}");
    let st = next_scans(&s, 2).await;
    assert_eq!(st["enabled"], true);
    assert_eq!(st["last_error"], Value::Null, "{st}");
    // httpx is both in the registry and allowed: counted once; the other
    // live registry packages are asked about too (pyqt5 is banned: not).
    assert_eq!(st["packages_scanned"], 3, "{st}");
    assert_eq!(st["versions_scanned"], 1, "{st}");
    assert_eq!(st["open_alerts"], 0, "{st}");
    assert!(alert_rows(&s).is_empty());

    // Published after the verdict.
    osv.add_record(advisory(ADVISORY, CRITICAL));
    let st = next_scans(&s, 2).await;
    let rows = alert_rows(&s);
    assert_eq!(
        rows,
        vec![(
            "lex-align-server".to_string(),
            "httpx".to_string(),
            "0.28.1".to_string(),
            format!("[\"{ADVISORY}\"]"),
            Some(9.8),
            "scanner".to_string()
        )]
    );
    assert_eq!(st["open_alerts"], 1, "{st}");
    assert_eq!(
        st["alerts"],
        json!([{"package": "httpx", "version": "0.28.1", "advisories": [ADVISORY],
                "max_cvss": 9.8, "since": st["alerts"][0]["since"]}])
    );
    assert!(st["last_scan_at"].is_string(), "{st}");

    // The re-scan refreshed the evaluator's cache: the same version is now
    // denied on request, without waiting for the cache to expire.
    let (_, v) = s.evaluate("package=httpx&version=0.28.1").await;
    assert_eq!(v["verdict"], "DENIED", "{v}");
    assert_eq!(v["denial_category"], "cve", "{v}");

    // More scans: no second row.
    let st = next_scans(&s, 2).await;
    assert_eq!(st["new_alerts"], 0, "{st}");
    assert_eq!(alert_rows(&s).len(), 1);

    // A restart on the same database: the log is the memory.
    let config = s.handle.state.config.clone();
    drop(s);
    let mut app = None;
    for _ in 0..200 {
        match lex_align_daemon::build_app(config.clone()).await {
            Ok(a) => {
                app = Some(a);
                break;
            }
            Err(e) if format!("{e:#}").contains("in use") => {
                tokio::time::sleep(Duration::from_millis(50)).await
            }
            Err(e) => panic!("{e:#}"),
        }
    }
    let (_router, handle) = app.expect("the first daemon released the database");
    // Open from the log before any scan ran.
    assert_eq!(handle.cve_scan().open_for("httpx").len(), 1);
    let st = handle.cve_scan().scan_now().await;
    assert_eq!(st.new_alerts, 0, "{st:?}");
    assert_eq!(st.last_error, None);
    handle.store().flush().unwrap();
    let report = handle.store().security_report(None, &[]).unwrap();
    assert_eq!(
        report["cve_alerts"].as_array().unwrap().len(),
        1,
        "{report}"
    );
    // Alerts are not denials: the CVE denial above is the only one.
    assert_eq!(report["total_denials"], 1, "{report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_advisory_source_that_is_down_writes_nothing_and_says_so() {
    // Disabled cadence: this test drives the scans itself.
    let (_root, osv, s) = httpx_allowed_without_cadence().await;
    osv.add_record(advisory(ADVISORY, CRITICAL));
    osv.set_down(true);
    let st = s.handle.cve_scan().scan_now().await;
    assert_eq!(st.new_alerts, 0);
    let error = st.last_error.clone().expect("the failure is reported");
    assert!(error.contains("could not be checked"), "{error}");
    assert!(alert_rows(&s).is_empty());
    let h = scan_status(&s).await;
    assert_eq!(h["last_error"], error.as_str(), "{h}");
    assert_eq!(h["open_alerts"], 0);

    // Back up: the next scan finds it.
    osv.set_down(false);
    let st = s.handle.cve_scan().scan_now().await;
    assert_eq!(st.last_error, None, "{st:?}");
    assert_eq!(st.new_alerts, 1);
    assert_eq!(alert_rows(&s).len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zero_disables_the_scan() {
    let (_root, osv, s) = httpx_allowed_without_cadence().await;
    osv.add_record(advisory(ADVISORY, CRITICAL));
    osv.reset_counters();
    // Requests that would have let a running scanner go round.
    for _ in 0..5 {
        let st = scan_status(&s).await;
        assert_eq!(st["enabled"], false, "{st}");
        assert_eq!(st["scans"], 0, "{st}");
        assert_eq!(st["last_scan_at"], Value::Null, "{st}");
    }
    assert!(alert_rows(&s).is_empty());
    assert_eq!(osv.requests_to("/v1/querybatch"), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_security_report_lists_alerts_as_computed_by_hand() {
    let root = tempfile::tempdir().unwrap();
    let osv = FakeOsv::start(&pypa_snapshot_dir());
    let s = daemon(&root.path().join("data"), &osv, 0.0).await;
    for v in ["0.27.2", "0.28.1"] {
        let (_, r) = s.evaluate(&format!("package=httpx&version={v}")).await;
        assert_eq!(r["verdict"], "ALLOWED", "{r}");
    }
    // Medium (5.3): below the registry's 9.0 threshold, alert-worthy all the same.
    osv.add_record(advisory("GHSA-cvsc-an00-0002", MEDIUM));
    let st = s.handle.cve_scan().scan_now().await;
    assert_eq!(st.new_alerts, 2, "{st:?}");
    assert_eq!(st.versions_scanned, 2);

    let (status, r) = s.get_bare("/api/v1/reports/security").await;
    assert_eq!(status, 200, "{r}");
    let alerts = r["cve_alerts"].as_array().unwrap();
    // Newest first: 0.28.1 was the second allowed, so its row came second.
    let got: Vec<Value> = alerts
        .iter()
        .map(|a| {
            json!([
                a["package"],
                a["version"],
                a["cve_ids"],
                a["max_cvss"],
                a["registry_status"]
            ])
        })
        .collect();
    assert_eq!(
        got,
        vec![
            json!(["httpx", "0.28.1", ["GHSA-cvsc-an00-0002"], 5.3, "preferred"]),
            json!(["httpx", "0.27.2", ["GHSA-cvsc-an00-0002"], 5.3, "preferred"]),
        ]
    );
    let reason = alerts[0]["reason"].as_str().unwrap();
    assert_eq!(
        reason,
        "New advisory for httpx 0.28.1, allowed in the last 30 days: \
         GHSA-cvsc-an00-0002 (CVSS 5.3, fixed in 0.29.0)."
    );
    assert_eq!(r["total_denials"], 0, "alerts are not denials: {r}");
    // Project-scoped: the scanner's rows are the daemon's, not the project's.
    let (_, p) = s.get_bare("/api/v1/reports/security?project=proj").await;
    assert_eq!(p["cve_alerts"], json!([]), "{p}");

    // Health lists both versions under one advisory.
    let h = scan_status(&s).await;
    assert_eq!(h["open_alerts"], 2, "{h}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_editor_gets_a_warning_naming_the_advisory() {
    let (_root, osv, s) = httpx_allowed_without_cadence().await;
    // Below the threshold, so the verdict stays ALLOWED and only the alert speaks.
    osv.add_record(advisory("GHSA-cvsc-an00-0003", MEDIUM));

    let (stream, head) = upgrade(&s.base, Some("svc")).await;
    assert!(head.starts_with("HTTP/1.1 101 "), "{head}");
    let (read, write) = stream.into_split();
    let mut client = LspClient::new(read, write);
    client.initialize_with(json!({ "debounceMs": 50 })).await;
    let text = lex_align_fakes::pyproject!("svc"; "httpx==0.28.1", "sniffio>=1.3");
    let dir = tempfile::tempdir().unwrap();
    let uri = file_uri(&dir.path().join("pyproject.toml"));
    client
        .notify(
            "textDocument/didOpen",
            json!({"textDocument": {"uri": uri, "languageId": "toml", "version": 1, "text": text}}),
        )
        .await;
    // Before the scan: nothing on httpx.
    let p = client
        .diagnostics_until(&uri, |p| p["diagnostics"].is_array())
        .await
        .pop()
        .unwrap();
    assert!(!has_code(&p, "cve-alert"), "{p}");

    // The scan's alert re-judges the open document.
    let st = s.handle.cve_scan().scan_now().await;
    assert_eq!(st.new_alerts, 1, "{st:?}");
    let p = client
        .diagnostics_until(&uri, |p| has_code(p, "cve-alert"))
        .await
        .pop()
        .unwrap();
    let alerts: Vec<_> = summary(&p)
        .into_iter()
        .filter(|d| d.0 == "cve-alert")
        .collect();
    assert_eq!(
        alerts,
        vec![diag(text, "httpx==0.28.1", "cve-alert", WARNING)],
        "{p}"
    );
    let d = p["diagnostics"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["code"] == "cve-alert")
        .unwrap();
    let message = d["message"].as_str().unwrap();
    assert!(message.contains("GHSA-cvsc-an00-0003"), "{message}");
    assert!(message.contains("0.28.1"), "{message}");
    // The package without an alert gets none.
    assert!(!message.contains("sniffio"));
}
