//! Upstream trouble never hangs or 500s an evaluation; auto approval
//! requests are records only.

mod common;

use std::time::Duration;

use common::{start_with, Options, REGISTRY_YAML};
use serde_json::{json, Value};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn index_down_is_reported_not_500() {
    let s = start_with(Options::default()).await;
    s.index.set_down(true);
    let (status, v) = s.evaluate("package=six").await;
    assert_eq!(status, 200, "{v}");
    assert!(v["upstream_error"].is_string(), "{v}");
    assert_ne!(v["verdict"], "ALLOWED", "{v}");
    // Registry-only verdicts need no upstream at all.
    let (status, v) = s.evaluate("package=PyQt5").await;
    assert_eq!(status, 200);
    assert_eq!(v["verdict"], "DENIED");
    assert_eq!(v["upstream_error"], Value::Null);
    assert_eq!(s.audit_rows(), 2);

    // Batch too.
    let (status, v) = s
        .post_json(
            "/api/v1/evaluate/batch",
            &json!({"requirements": ["six", "PyQt5"]}),
        )
        .await;
    assert_eq!(status, 200);
    assert!(v["results"][0]["upstream_error"].is_string(), "{v}");
    assert_eq!(v["results"][1]["verdict"], "DENIED");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fail_closed_denies_on_missing_facts() {
    let s = start_with(Options {
        fail_closed: true,
        ..Options::default()
    })
    .await;
    s.index.set_down(true);
    let (status, v) = s.evaluate("package=six").await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["verdict"], "DENIED");
    assert_eq!(v["denial_category"], "upstream");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_upstreams_are_cut_at_the_budget() {
    let s = start_with(Options {
        budget: Some(Duration::from_millis(300)),
        ..Options::default()
    })
    .await;
    s.index.set_latency(Duration::from_secs(10));
    s.osv.set_latency(Duration::from_secs(10));
    let (status, v) = s.evaluate("package=six").await;
    assert_eq!(status, 200, "{v}");
    let err = v["upstream_error"].as_str().unwrap_or_default();
    assert!(err.contains("timed out after 300 ms"), "{v}");

    let (status, v) = s
        .post_json(
            "/api/v1/evaluate/batch",
            &json!({"requirements": ["six", "click"]}),
        )
        .await;
    assert_eq!(status, 200);
    for r in v["results"].as_array().unwrap() {
        assert!(
            r["upstream_error"]
                .as_str()
                .unwrap_or_default()
                .contains("timed out"),
            "{r}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_request_approval_records_without_writing_the_registry() {
    let yaml: &'static str = Box::leak(
        REGISTRY_YAML
            .replace(
                "unknown_license_policy: block",
                "unknown_license_policy: pending_approval",
            )
            .into_boxed_str(),
    );
    let s = start_with(Options {
        registry: Some(yaml),
        ..Options::default()
    })
    .await;
    // A real project with no license information at all.
    let (status, v) = s.evaluate("package=acme-internal-tools").await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["verdict"], "PROVISIONALLY_ALLOWED", "{v}");
    assert_eq!(v["auto_request_approval"], true, "{v}");

    let report = s
        .handle
        .store()
        .approval_requests_report(Some("proj"), Some("PENDING_REVIEW"))
        .unwrap();
    let items = report["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{report}");
    assert_eq!(items[0]["package"], "acme-internal-tools");
    assert!(items[0]["last_audit_id"].is_string(), "{report}");
    assert_eq!(std::fs::read_to_string(&s.registry_path).unwrap(), yaml);
}
