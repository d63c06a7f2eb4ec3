//! The fake OSV server answers as the OSV API does, on the PyPA snapshot.

use std::time::Duration;

use lex_align_engine::advisory::{
    OsvAffected, OsvEvent, OsvPackage, OsvRange, OsvRecord, OsvSeverity,
};
use lex_align_fakes::{pypa_snapshot_dir, FakeOsv};
use serde_json::{json, Value};

fn client() -> reqwest::Client {
    reqwest::Client::new()
}

async fn post(osv: &FakeOsv, path: &str, body: Value) -> (u16, Value) {
    let resp = client()
        .post(format!("{}{path}", osv.url()))
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap())
}

fn ids(v: &Value) -> Vec<String> {
    let mut ids: Vec<String> = v["vulns"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|r| r["id"].as_str().unwrap().to_owned())
                .collect()
        })
        .unwrap_or_default();
    ids.sort();
    ids
}

/// The ids of the snapshot files of one package directory.
fn snapshot_ids(pkg: &str) -> Vec<String> {
    let mut ids: Vec<String> = std::fs::read_dir(pypa_snapshot_dir().join(pkg))
        .unwrap()
        .map(|e| {
            e.unwrap()
                .path()
                .file_stem()
                .unwrap()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    ids.sort();
    ids
}

#[tokio::test]
async fn query_without_version_returns_every_record_of_the_package() {
    let osv = FakeOsv::start(&pypa_snapshot_dir());
    assert!(osv.record_count() > 1000);
    let (status, body) = post(
        &osv,
        "/v1/query",
        json!({"package": {"name": "Jinja2", "ecosystem": "PyPI"}}),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(ids(&body), snapshot_ids("jinja2"));
    // Full records: fields outside OsvRecord (references) come through.
    let rec = &body["vulns"].as_array().unwrap()[0];
    assert!(rec["references"].as_array().is_some_and(|r| !r.is_empty()));
    assert!(rec["affected"][0]["ranges"].is_array());
    assert_eq!(osv.requests_to("/v1/query"), 1);
}

#[tokio::test]
async fn query_with_version_filters_with_osv_ranges() {
    let osv = FakeOsv::start(&pypa_snapshot_dir());
    // cryptography 41.0.5 is only in PYSEC-2023-254 (3.1 ≤ v < 41.0.6).
    let (_, body) = post(
        &osv,
        "/v1/query",
        json!({"package": {"name": "cryptography", "ecosystem": "PyPI"}, "version": "41.0.5"}),
    )
    .await;
    assert_eq!(ids(&body), vec!["PYSEC-2023-254"]);
    // Served as loaded from YAML: the CVSS vector is there.
    assert_eq!(
        body["vulns"][0]["severity"][0]["score"],
        "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:N/A:H"
    );
    // A clean version: `{}`, as the real service answers.
    let (status, body) = post(
        &osv,
        "/v1/query",
        json!({"package": {"name": "cryptography", "ecosystem": "PyPI"}, "version": "44.0.0"}),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(body, json!({}));
    // Another ecosystem or an unknown package: nothing.
    let (_, body) = post(
        &osv,
        "/v1/query",
        json!({"package": {"name": "cryptography", "ecosystem": "npm"}, "version": "1.0.0"}),
    )
    .await;
    assert_eq!(body, json!({}));
    // purl form.
    let (_, body) = post(
        &osv,
        "/v1/query",
        json!({"package": {"purl": "pkg:pypi/urllib3@2.0.5"}}),
    )
    .await;
    assert!(ids(&body).contains(&"PYSEC-2023-192".to_owned()));
}

#[tokio::test]
async fn querybatch_answers_ids_and_modified_per_query() {
    let osv = FakeOsv::start(&pypa_snapshot_dir());
    let (status, body) = post(
        &osv,
        "/v1/querybatch",
        json!({"queries": [
            {"package": {"name": "requests", "ecosystem": "PyPI"}, "version": "2.30.0"},
            {"package": {"name": "no-such-package-xyz", "ecosystem": "PyPI"}},
            {"package": {"name": "PyYAML", "ecosystem": "PyPI"}},
        ]}),
    )
    .await;
    assert_eq!(status, 200);
    let results = body["results"].as_array().unwrap();
    assert_eq!(results.len(), 3);
    assert_eq!(ids(&results[0]), vec!["PYSEC-2023-74"]);
    let first = &results[0]["vulns"][0];
    assert_eq!(first.as_object().unwrap().len(), 2, "only id and modified");
    assert!(first["modified"].as_str().unwrap().starts_with("20"));
    assert_eq!(results[1], json!({}));
    assert_eq!(ids(&results[2]), snapshot_ids("pyyaml"));

    let (status, body) = post(&osv, "/v1/querybatch", json!({"nope": []})).await;
    assert_eq!(status, 400);
    assert_eq!(body["code"], 3);
}

#[tokio::test]
async fn vulns_by_id_and_not_found() {
    let osv = FakeOsv::start(&pypa_snapshot_dir());
    let resp = client()
        .get(format!("{}/v1/vulns/PYSEC-2023-192", osv.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let rec: Value = resp.json().await.unwrap();
    assert_eq!(rec["id"], "PYSEC-2023-192");
    assert_eq!(rec["aliases"][0], "CVE-2023-43804");
    let resp = client()
        .get(format!("{}/v1/vulns/GHSA-0000-0000-0000", osv.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body, json!({"code": 5, "message": "Bug not found."}));
    assert_eq!(osv.requests(), 2);
}

#[tokio::test]
async fn outage_latency_and_counters() {
    let osv = FakeOsv::start(&pypa_snapshot_dir());
    osv.set_down(true);
    let resp = client()
        .post(osv.query_url())
        .json(&json!({"package": {"name": "django", "ecosystem": "PyPI"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 503);
    osv.set_down(false);
    osv.set_latency(Duration::from_millis(30));
    let started = std::time::Instant::now();
    let (status, _) = post(
        &osv,
        "/v1/query",
        json!({"package": {"name": "django", "ecosystem": "PyPI"}}),
    )
    .await;
    assert_eq!(status, 200);
    // The delay is really applied (a lower bound only: no timing upper bound).
    assert!(started.elapsed() >= Duration::from_millis(30));
    assert_eq!(osv.requests_to("/v1/query"), 2);
    osv.reset_counters();
    assert_eq!(osv.requests(), 0);
}

fn mal_record() -> OsvRecord {
    OsvRecord {
        id: "MAL-2024-4242".into(),
        modified: Some("2024-06-01T00:00:00Z".into()),
        summary: Some("Malicious code in reqeusts (PyPI)".into()),
        affected: vec![OsvAffected {
            package: Some(OsvPackage {
                ecosystem: "PyPI".into(),
                name: "reqeusts".into(),
            }),
            ranges: vec![OsvRange {
                kind: "ECOSYSTEM".into(),
                events: vec![OsvEvent {
                    introduced: Some("0".into()),
                    ..Default::default()
                }],
            }],
            ..Default::default()
        }],
        ..Default::default()
    }
}

#[test]
fn custom_records_from_sync_code() {
    let critical = OsvRecord {
        id: "GHSA-crit-test-0001".into(),
        severity: vec![OsvSeverity {
            kind: "CVSS_V3".into(),
            score: "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:C/C:H/I:H/A:H".into(),
        }],
        affected: vec![OsvAffected {
            package: Some(OsvPackage {
                ecosystem: "PyPI".into(),
                name: "Some_Lib".into(),
            }),
            ranges: vec![OsvRange {
                kind: "ECOSYSTEM".into(),
                events: vec![
                    OsvEvent {
                        introduced: Some("1.0".into()),
                        ..Default::default()
                    },
                    OsvEvent {
                        fixed: Some("1.4.2".into()),
                        ..Default::default()
                    },
                ],
            }],
            ..Default::default()
        }],
        ..Default::default()
    };
    let osv = FakeOsv::with_records(vec![mal_record(), critical]);
    // A plain runtime of the test's own: the fake has its own.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let (_, body) = post(
            &osv,
            "/v1/query",
            json!({"package": {"name": "reqeusts", "ecosystem": "PyPI"}, "version": "2.31.0"}),
        )
        .await;
        assert_eq!(ids(&body), vec!["MAL-2024-4242"]);
        for (v, hit) in [("1.4.1", true), ("1.4.2", false), ("0.9", false)] {
            let (_, body) = post(
                &osv,
                "/v1/query",
                json!({"package": {"name": "some.lib", "ecosystem": "PyPI"}, "version": v}),
            )
            .await;
            assert_eq!(ids(&body).len(), usize::from(hit), "some-lib {v}");
        }
    });
    osv.add_record(OsvRecord {
        id: "MAL-2024-4243".into(),
        ..mal_record()
    });
    assert_eq!(osv.records_for("Reqeusts").len(), 2);
    assert_eq!(osv.record_count(), 3);
}

#[test]
fn dropping_the_server_frees_its_port() {
    let osv = FakeOsv::with_records(vec![mal_record()]);
    let url = osv.url();
    let addr = url.trim_start_matches("http://").to_owned();
    drop(osv);
    // The port is closed: a fresh connection is refused.
    assert!(std::net::TcpStream::connect(addr).is_err());
}
