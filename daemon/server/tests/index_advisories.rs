//! The daemon with only a package index: the index's own per-release
//! `vulnerabilities` are its advisories, for single and batch evaluations
//! (the LSP and `/evaluate/batch` path), and health names the source.

mod common;

use common::{start_with, Options};
use lex_align_fakes::{FakeProject, FakeRelease, FakeVulnerability};
use serde_json::json;

fn no_osv() -> Options {
    Options {
        tweak: Some(Box::new(|c| c.osv_url = None)),
        ..Options::default()
    }
}

fn vulnerable() -> FakeProject {
    FakeProject::new("fastjsonx")
        .release(
            FakeRelease::new("1.2.0")
                .license_expression("MIT")
                .vulnerability(
                    FakeVulnerability::new("PYSEC-2024-301")
                        .alias("CVE-2024-30101")
                        .fixed_in("1.3.0"),
                ),
        )
        .release(FakeRelease::new("1.3.0").license_expression("MIT"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_index_is_the_advisory_source_for_single_and_batch_evaluations() {
    let s = start_with(no_osv()).await;
    s.index.add_project(vulnerable());

    let (status, v) = s.evaluate("package=fastjsonx&version=1.2.0").await;
    assert_eq!(status, 200);
    assert_eq!(v["verdict"], "DENIED", "{v}");
    assert_eq!(v["denial_category"], "cve", "{v}");
    assert!(
        v["reason"].as_str().unwrap().contains("unknown severity"),
        "{v}"
    );

    let (status, v) = s
        .post_json(
            "/api/v1/evaluate/batch",
            &json!({"packages": [
                {"package": "fastjsonx", "version": "1.2.0"},
                {"package": "fastjsonx"},
                {"requirement": "fastjsonx<1.3"},
                {"package": "httpx"},
            ]}),
        )
        .await;
    assert_eq!(status, 200, "{v}");
    let r = v["results"].as_array().unwrap();
    assert_eq!(r[0]["denial_category"], "cve", "{}", r[0]);
    assert_eq!(r[1]["resolved_version"], "1.3.0", "{}", r[1]);
    assert_eq!(r[1]["verdict"], "PROVISIONALLY_ALLOWED", "{}", r[1]);
    assert!(r[1]["upstream_error"].is_null(), "{}", r[1]);
    // The requirement resolves to 1.2.0, and its advisories are that release's.
    assert_eq!(r[2]["resolved_version"], "1.2.0", "{}", r[2]);
    assert_eq!(r[2]["denial_category"], "cve", "{}", r[2]);
    assert_eq!(r[3]["verdict"], "ALLOWED", "{}", r[3]);
    // No OSV request at all.
    assert_eq!(s.osv.requests(), 0);

    let (_, h) = s.get("/api/v1/health").await;
    let adv = &h["upstreams"]["advisories"];
    assert_eq!(adv["source"], "package-index", "{h}");
    assert_eq!(adv["unscored"], "deny", "{h}");
    assert!(adv["url"].is_null(), "{h}");
}
