#![allow(dead_code)]

use lex_align_store::{AuditRow, Store};

pub fn temp_store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Store::open(dir.path().join("audit.sqlite")).expect("open store");
    (dir, store)
}

/// A realistic evaluation row.
pub fn row(project: &str, package: &str, verdict: &str, category: &str) -> AuditRow {
    AuditRow {
        project: project.into(),
        requester: "anonymous".into(),
        package: package.into(),
        canonical: lex_align_store::canonical_name(package),
        version: Some("1.0.0".into()),
        requirement: None,
        resolved_version: Some("1.0.0".into()),
        verdict: verdict.into(),
        denial_category: category.into(),
        reason: Some(format!("{verdict} for {package}")),
        license: Some("MIT".into()),
        cve_ids: vec![],
        max_cvss: None,
        registry_status: None,
        agent_model: Some("claude".into()),
        agent_version: Some("4".into()),
        source: "api".into(),
        auth_method: None,
    }
}

pub fn cve_row(project: &str, package: &str, cves: &[&str], score: Option<f64>) -> AuditRow {
    AuditRow {
        cve_ids: cves.iter().map(|c| c.to_string()).collect(),
        max_cvss: score,
        reason: Some(format!("{package} has known vulnerabilities")),
        ..row(project, package, "DENIED", "cve")
    }
}

/// RFC 3339 time `days` days before now.
pub fn days_ago(days: i64) -> String {
    let t = time::OffsetDateTime::now_utc() - time::Duration::days(days);
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap()
}
