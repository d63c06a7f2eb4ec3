//! Report shapes (reports.md §2–§4) against seeded rows, numbers computed by
//! hand from the seeds.

mod common;

use std::collections::HashSet;

use common::{cve_row, days_ago, row, temp_store};
use lex_align_store::{AuditRow, NewApprovalRequest, Store};
use serde_json::{json, Value};

fn at(store: &Store, r: AuditRow, days: i64) -> lex_align_store::AuditReceipt {
    store.append_audit_at_blocking(r, &days_ago(days)).unwrap()
}

fn keys(v: &Value) -> Vec<&str> {
    let mut k: Vec<&str> = v.as_object().unwrap().keys().map(|s| s.as_str()).collect();
    k.sort_unstable();
    k
}

fn lic(mut r: AuditRow, license: Option<&str>) -> AuditRow {
    r.license = license.map(str::to_string);
    r
}

fn seed_legal(store: &Store) -> Vec<String> {
    vec![
        at(
            store,
            lic(
                row("alpha", "gplpkg", "DENIED", "license"),
                Some("GPL-3.0-only"),
            ),
            6,
        )
        .id,
        at(
            store,
            lic(
                row("alpha", "gplpkg2", "DENIED", "license"),
                Some("GPL-3.0-only"),
            ),
            5,
        )
        .id,
        at(
            store,
            lic(row("alpha", "fine", "ALLOWED", ""), Some("MIT")),
            4,
        )
        .id,
        at(
            store,
            lic(
                row("alpha", "mystery", "PROVISIONALLY_ALLOWED", ""),
                Some("UNKNOWN"),
            ),
            3,
        )
        .id,
        at(
            store,
            lic(row("alpha", "banned", "DENIED", "registry"), None),
            2,
        )
        .id,
        at(
            store,
            lic(row("beta", "agpl", "DENIED", "license"), Some("AGPL-3.0")),
            1,
        )
        .id,
        at(
            store,
            lic(row("beta", "fine2", "ALLOWED", ""), Some("MIT")),
            1,
        )
        .id,
        at(store, lic(row("beta", "blank", "ALLOWED", ""), Some("")), 1).id,
    ]
}

#[test]
fn legal_report_shape_and_numbers() {
    let (_d, store) = temp_store();
    let ids = seed_legal(&store);
    let r = store.legal_report(None).unwrap();
    assert_eq!(
        keys(&r),
        [
            "category",
            "license_breakdown",
            "project",
            "recent",
            "top_projects",
            "total_denials",
            "unknown_license"
        ]
    );
    assert_eq!(r["category"], "license");
    assert_eq!(r["project"], Value::Null);
    assert_eq!(r["total_denials"], 3);
    let recent = r["recent"].as_array().unwrap();
    let recent_ids: Vec<&str> = recent.iter().map(|x| x["id"].as_str().unwrap()).collect();
    assert_eq!(
        recent_ids,
        [ids[5].as_str(), ids[1].as_str(), ids[0].as_str()]
    );
    assert_eq!(
        keys(&recent[0]),
        [
            "agent_model",
            "agent_version",
            "cve_ids",
            "id",
            "license",
            "max_cvss",
            "package",
            "project",
            "reason",
            "registry_status",
            "requester",
            "ts",
            "version"
        ]
    );
    assert_eq!(recent[0]["cve_ids"], json!([]));
    assert_eq!(
        r["license_breakdown"],
        json!([
            {"license": "GPL-3.0-only", "total": 2, "allowed": 0, "provisional": 0, "denied": 2},
            {"license": "MIT", "total": 2, "allowed": 2, "provisional": 0, "denied": 0},
            {"license": "AGPL-3.0", "total": 1, "allowed": 0, "provisional": 0, "denied": 1},
            {"license": "UNKNOWN", "total": 1, "allowed": 0, "provisional": 1, "denied": 0},
        ])
    );
    assert_eq!(
        r["unknown_license"],
        json!({"total": 1, "allowed": 0, "provisional": 1, "denied": 0})
    );
    assert_eq!(
        r["top_projects"],
        json!([{"project": "alpha", "denials": 2}, {"project": "beta", "denials": 1}])
    );

    let beta = store.legal_report(Some("beta")).unwrap();
    assert_eq!(beta["project"], "beta");
    assert_eq!(beta["total_denials"], 1);
    assert_eq!(
        beta["unknown_license"],
        json!({"total": 0, "allowed": 0, "provisional": 0, "denied": 0})
    );
    assert_eq!(beta["license_breakdown"].as_array().unwrap().len(), 2);
    assert_eq!(
        beta["top_projects"],
        json!([{"project": "beta", "denials": 1}])
    );

    // "" means no filter and is echoed as "".
    let all = store.legal_report(Some("")).unwrap();
    assert_eq!(all["project"], "");
    assert_eq!(all["total_denials"], 3);
}

/// A report taken while rows keep coming reads its totals (counters) and
/// its lists (rows) at one moment: here every row is a licence denial, so
/// the newest-rows list, below its cap of 100, is exactly the total.
#[test]
fn a_report_under_appends_reads_counters_and_rows_of_one_moment() {
    let (_d, store) = temp_store();
    let store = std::sync::Arc::new(store);
    let writer = {
        let store = store.clone();
        std::thread::spawn(move || {
            for i in 0..99 {
                store
                    .append_audit_blocking(lic(
                        row("p", &format!("g{i}"), "DENIED", "license"),
                        Some("GPL-3.0"),
                    ))
                    .unwrap();
                std::thread::sleep(std::time::Duration::from_micros(300));
            }
        })
    };
    let mut reports = 0;
    while !writer.is_finished() || reports == 0 {
        let r = store.legal_report(None).unwrap();
        let total = r["total_denials"].as_u64().unwrap();
        let listed = r["recent"].as_array().unwrap().len() as u64;
        assert_eq!(
            listed, total,
            "report {reports}: {listed} rows listed, {total} counted"
        );
        reports += 1;
    }
    writer.join().unwrap();
    assert_eq!(store.legal_report(None).unwrap()["total_denials"], 99);
    assert!(reports > 5, "only {reports} reports ran beside the appends");
}

#[test]
fn legal_recent_is_capped_at_100_but_total_counts_all() {
    let (_d, store) = temp_store();
    for i in 0..120 {
        store
            .append_audit_blocking(lic(
                row("p", &format!("g{i}"), "DENIED", "license"),
                Some("GPL-3.0"),
            ))
            .unwrap();
    }
    let r = store.legal_report(None).unwrap();
    assert_eq!(r["total_denials"], 120);
    assert_eq!(r["recent"].as_array().unwrap().len(), 100);
    assert_eq!(r["recent"][0]["package"], "g119");
}

fn seed_security(store: &Store) -> Vec<lex_align_store::AuditReceipt> {
    let mut prov = row("alpha", "requests", "PROVISIONALLY_ALLOWED", "");
    prov.cve_ids = vec!["CVE-C".into()];
    prov.max_cvss = Some(5.0);
    let mut alert = cve_row("lex-align-server", "django", &["CVE-A"], Some(9.8));
    alert.verdict = "CVE_ALERT".into();
    alert.denial_category = "cve_alert".into();
    alert.agent_model = None;
    alert.agent_version = None;
    alert.registry_status = Some("approved".into());
    vec![
        at(
            store,
            cve_row("alpha", "Django", &["CVE-A", "CVE-B"], Some(9.8)),
            5,
        ),
        at(store, cve_row("alpha", "django", &["CVE-B"], Some(7.5)), 3),
        at(
            store,
            cve_row("alpha", "requests", &["CVE-C"], Some(5.0)),
            1,
        ),
        at(
            store,
            cve_row("beta", "urllib3", &["CVE-C", "CVE-D"], None),
            2,
        ),
        at(
            store,
            cve_row("alpha", "leftpad", &["CVE-E"], Some(2.0)),
            40,
        ),
        at(store, prov, 2),
        at(store, alert, 0),
    ]
}

/// The registry packages with CVE activity in [`seed_security`]'s rows.
fn seeded_hot(rc: &[lex_align_store::AuditReceipt]) -> Value {
    json!([
        {"package": "django", "normalized_name": "django", "registry_status": "approved",
         "denials": 2, "provisional": 0, "max_cvss": 9.8, "cve_ids": ["CVE-A", "CVE-B"],
         "latest_ts": rc[1].ts},
        {"package": "requests", "normalized_name": "requests", "registry_status": "preferred",
         "denials": 1, "provisional": 1, "max_cvss": 5.0, "cve_ids": ["CVE-C"],
         "latest_ts": rc[2].ts},
    ])
}

fn registry() -> Vec<(String, String)> {
    [
        ("django", "approved"),
        ("requests", "preferred"),
        ("urllib3", "banned"),
        ("leftpad", "approved"),
    ]
    .iter()
    .map(|(a, b)| (a.to_string(), b.to_string()))
    .collect()
}

#[test]
fn security_report_shape_and_numbers() {
    let (_d, store) = temp_store();
    let rc = seed_security(&store);
    let r = store.security_report(None, &registry()).unwrap();
    assert_eq!(
        keys(&r),
        [
            "category",
            "cve_alerts",
            "hot_registry_packages",
            "project",
            "recent",
            "severity_distribution",
            "top_cves",
            "top_packages",
            "total_denials"
        ]
    );
    assert_eq!(r["category"], "cve");
    assert_eq!(r["total_denials"], 5);
    assert_eq!(r["recent"].as_array().unwrap().len(), 5);
    assert_eq!(r["recent"][0]["id"], rc[2].id);
    assert_eq!(r["recent"][0]["cve_ids"], json!(["CVE-C"]));
    assert_eq!(r["recent"][0]["max_cvss"], 5.0);
    assert_eq!(
        r["severity_distribution"],
        json!({"critical": 1, "high": 1, "medium": 1, "low": 1, "unknown": 1})
    );
    assert_eq!(
        r["top_packages"],
        json!([
            {"package": "django", "denials": 2, "max_cvss": 9.8, "cve_ids": ["CVE-A", "CVE-B"]},
            {"package": "requests", "denials": 1, "max_cvss": 5.0, "cve_ids": ["CVE-C"]},
            {"package": "leftpad", "denials": 1, "max_cvss": 2.0, "cve_ids": ["CVE-E"]},
            {"package": "urllib3", "denials": 1, "max_cvss": null, "cve_ids": ["CVE-C", "CVE-D"]},
        ])
    );
    assert_eq!(
        r["top_cves"],
        json!([
            {"cve_id": "CVE-B", "occurrences": 2, "max_cvss": 9.8, "packages": ["django"]},
            {"cve_id": "CVE-A", "occurrences": 1, "max_cvss": 9.8, "packages": ["django"]},
            {"cve_id": "CVE-C", "occurrences": 2, "max_cvss": 5.0, "packages": ["requests", "urllib3"]},
            {"cve_id": "CVE-E", "occurrences": 1, "max_cvss": 2.0, "packages": ["leftpad"]},
            {"cve_id": "CVE-D", "occurrences": 1, "max_cvss": null, "packages": ["urllib3"]},
        ])
    );
    assert_eq!(r["hot_registry_packages"], seeded_hot(&rc));
    assert_eq!(
        r["cve_alerts"],
        json!([{"id": rc[6].id, "ts": rc[6].ts, "package": "django", "cve_ids": ["CVE-A"],
                "max_cvss": 9.8, "reason": "django has known vulnerabilities",
                "registry_status": "approved", "version": "1.0.0"}])
    );

    let alpha = store.security_report(Some("alpha"), &[]).unwrap();
    assert_eq!(alpha["project"], "alpha");
    assert_eq!(alpha["total_denials"], 4);
    assert_eq!(alpha["severity_distribution"]["unknown"], 0);
    assert_eq!(alpha["hot_registry_packages"], json!([]));
    assert_eq!(alpha["cve_alerts"], json!([]));
    assert_eq!(alpha["top_cves"].as_array().unwrap().len(), 4);
}

#[test]
fn hot_registry_packages_of_one_project() {
    let (_d, store) = temp_store();
    let rc = seed_security(&store);
    // Another project's denial of the same package, and a row of alpha
    // without advisories: neither may count for alpha.
    let other = at(&store, cve_row("beta", "django", &["CVE-Z"], Some(9.9)), 1);
    at(&store, row("alpha", "django", "ALLOWED", ""), 1);
    let alpha = store.security_report(Some("alpha"), &registry()).unwrap();
    assert_eq!(alpha["hot_registry_packages"], seeded_hot(&rc));
    let beta = store.security_report(Some("beta"), &registry()).unwrap();
    assert_eq!(
        beta["hot_registry_packages"],
        json!([{"package": "django", "normalized_name": "django", "registry_status": "approved",
                "denials": 1, "provisional": 0, "max_cvss": 9.9, "cve_ids": ["CVE-Z"],
                "latest_ts": other.ts}])
    );
    let nobody = store.security_report(Some("gamma"), &registry()).unwrap();
    assert_eq!(nobody["hot_registry_packages"], json!([]));
}

#[test]
fn security_rollups_cover_more_than_the_recent_hundred() {
    let (_d, store) = temp_store();
    // 30 old critical denials, then 100 newer medium ones: the rollups must
    // still see the critical ones (the original looked at 100 rows only).
    for i in 0..30 {
        at(
            &store,
            cve_row("p", &format!("crit{}", i % 3), &["CVE-OLD"], Some(9.5)),
            20,
        );
    }
    for i in 0..100 {
        at(
            &store,
            cve_row("p", &format!("med{}", i % 5), &["CVE-NEW"], Some(5.0)),
            1,
        );
    }
    let r = store.security_report(None, &[]).unwrap();
    assert_eq!(r["total_denials"], 130);
    assert_eq!(r["recent"].as_array().unwrap().len(), 100);
    assert_eq!(r["severity_distribution"]["critical"], 30);
    assert_eq!(r["severity_distribution"]["medium"], 100);
    assert_eq!(
        r["top_cves"][0],
        json!({"cve_id": "CVE-OLD", "occurrences": 30, "max_cvss": 9.5,
        "packages": ["crit0", "crit1", "crit2"]})
    );
    assert_eq!(r["top_packages"][0]["denials"], 10);
    assert_eq!(r["top_packages"].as_array().unwrap().len(), 8);
}

#[test]
fn projects_and_agents_reports() {
    let (_d, store) = temp_store();
    seed_security(&store);
    let mut gpt = row("beta", "x", "PROVISIONALLY_ALLOWED", "");
    gpt.agent_model = Some("gpt".into());
    gpt.agent_version = Some("5".into());
    let gpt_rc = at(&store, gpt, 0);
    for (project, package) in [("alpha", "a"), ("alpha", "b"), ("gamma", "c")] {
        store
            .upsert_approval_request_blocking(NewApprovalRequest {
                project: project.into(),
                requester: "alice".into(),
                package: package.into(),
                rationale: "needed".into(),
                ..Default::default()
            })
            .unwrap();
    }
    let p = store.projects_report().unwrap();
    assert_eq!(
        p,
        json!({"projects": [
            {"project": "alpha", "evaluations": 5, "denials": 4, "approval_requests": 2},
            {"project": "beta", "evaluations": 2, "denials": 1, "approval_requests": 0},
            {"project": "lex-align-server", "evaluations": 1, "denials": 0, "approval_requests": 0},
            {"project": "gamma", "evaluations": 0, "denials": 0, "approval_requests": 1},
        ]})
    );

    let a = store.agents_report(None).unwrap();
    assert_eq!(keys(&a), ["agents", "project", "recent"]);
    let agents = a["agents"].as_array().unwrap();
    assert_eq!(agents.len(), 3);
    assert_eq!(agents[0]["agent_model"], "claude");
    assert_eq!(agents[0]["evaluations"], 6);
    assert_eq!(agents[0]["denials"], 5);
    assert_eq!(agents[0]["provisional"], 1);
    // gpt and the scanner's null bucket both have one row; newest first.
    assert_eq!(agents[1]["agent_model"], "gpt");
    assert_eq!(agents[1]["last_seen"], gpt_rc.ts);
    assert_eq!(agents[2]["agent_model"], Value::Null);
    assert_eq!(agents[2]["agent_version"], Value::Null);
    let recent = a["recent"].as_array().unwrap();
    assert_eq!(recent.len(), 8);
    assert_eq!(recent[0]["id"], gpt_rc.id);
    assert_eq!(
        keys(&recent[0]),
        [
            "agent_model",
            "agent_version",
            "denial_category",
            "id",
            "package",
            "project",
            "reason",
            "requester",
            "ts",
            "verdict",
            "version"
        ]
    );
    let beta = store.agents_report(Some("beta")).unwrap();
    assert_eq!(beta["project"], "beta");
    assert_eq!(beta["recent"].as_array().unwrap().len(), 2);
}

#[test]
fn pending_explicit_and_implicit() {
    let (_d, store) = temp_store();
    let req = |project: &str, requester: &str, package: &str, rationale: &str| {
        store
            .upsert_approval_request_blocking(NewApprovalRequest {
                project: project.into(),
                requester: requester.into(),
                package: package.into(),
                rationale: rationale.into(),
                ..Default::default()
            })
            .unwrap()
    };
    req("alpha", "alice", "Flask", "web ui");
    let newest_flask = req("beta", "bob", "flask", "api server");
    req("alpha", "alice", "numpy", "math");
    let rejected = req("alpha", "alice", "rejectedpkg", "please");
    store
        .set_request_status_blocking(&rejected.id, "REJECTED", "operator", Some("no"))
        .unwrap();

    for _ in 0..2 {
        at(
            &store,
            row("alpha", "Toolz", "PROVISIONALLY_ALLOWED", ""),
            2,
        );
    }
    let toolz_last = at(&store, row("beta", "toolz", "ALLOWED", ""), 1);
    for _ in 0..3 {
        at(&store, row("alpha", "evil", "DENIED", "license"), 3);
    }
    at(&store, row("beta", "evil", "DENIED", "license"), 3);
    for _ in 0..2 {
        at(&store, row("alpha", "meh", "DENIED", "license"), 4);
    }
    at(&store, row("alpha", "edge", "ALLOWED", ""), 29);
    at(&store, row("alpha", "old", "DENIED", "license"), 31);
    at(
        &store,
        row("alpha", "flask", "PROVISIONALLY_ALLOWED", ""),
        1,
    );
    at(
        &store,
        row("alpha", "rejectedpkg", "PROVISIONALLY_ALLOWED", ""),
        1,
    );
    at(
        &store,
        row("alpha", "numpy", "PROVISIONALLY_ALLOWED", ""),
        1,
    );
    at(
        &store,
        row("alpha", "regpkg", "PROVISIONALLY_ALLOWED", ""),
        1,
    );

    let registry: HashSet<String> = ["numpy", "regpkg"].iter().map(|s| s.to_string()).collect();
    let p = store.pending(&registry).unwrap();
    assert_eq!(keys(&p), ["explicit", "implicit"]);
    assert_eq!(
        p["explicit"],
        json!([{"package": "flask", "normalized_name": "flask", "latest_rationale": "api server",
                "latest_ts": newest_flask.ts, "latest_project": "beta", "latest_requester": "bob",
                "request_count": 2}])
    );
    let implicit = p["implicit"].as_array().unwrap();
    let names: Vec<&str> = implicit
        .iter()
        .map(|c| c["normalized_name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["toolz", "evil", "meh", "edge"]);
    assert_eq!(
        implicit[0],
        json!({"package": "toolz", "normalized_name": "toolz", "evaluations": 3, "denials": 0,
               "provisional": 2, "latest_ts": toolz_last.ts, "latest_project": "beta",
               "latest_agent_model": "claude", "latest_agent_version": "4", "project_count": 2,
               "reason": "provisional-no-rationale",
               "reason_detail": "2 provisional verdict(s); no `request-approval` follow-up."})
    );
    assert_eq!(implicit[1]["reason"], "repeatedly-denied");
    assert_eq!(
        implicit[1]["reason_detail"],
        "4 denials across 2 project(s); an explicit registry rule would short-circuit future checks."
    );
    assert_eq!(implicit[2]["reason"], "pre-screened");
    assert_eq!(
        implicit[2]["reason_detail"],
        "2 `check` call(s) across 1 project(s); never proposed."
    );
    assert_eq!(implicit[3]["evaluations"], 1);

    // Once the registry holds flask, it leaves the explicit list.
    let registry: HashSet<String> = ["flask".to_string(), "numpy".to_string()].into();
    assert_eq!(store.pending(&registry).unwrap()["explicit"], json!([]));
}
