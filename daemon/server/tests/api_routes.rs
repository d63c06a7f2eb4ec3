//! Evaluate, batch, approval requests, reports, audit verify, metrics,
//! OpenAPI and error shapes, against the real app.

mod common;

use common::start;
use serde_json::{json, Value};

const ORIGINAL_KEYS: [&str; 14] = [
    "verdict",
    "reason",
    "package",
    "version",
    "resolved_version",
    "registry_status",
    "replacement",
    "version_constraint",
    "license",
    "cve_ids",
    "max_cvss",
    "is_requestable",
    "needs_rationale",
    "auto_request_approval",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn project_header_and_validation_come_before_any_work() {
    let s = start().await;
    let before = s.index.requests() + s.osv.requests();

    // No header: 400 even with no params (header precedes validation).
    let (status, v) = s.get_bare("/api/v1/evaluate").await;
    assert_eq!(status, 400);
    assert_eq!(
        v,
        json!({"detail": "X-LexAlign-Project header is required."})
    );
    let r = s
        .client
        .get(s.url("/api/v1/evaluate?package=httpx"))
        .header("X-LexAlign-Project", "   ")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);

    let (status, v) = s.evaluate("").await;
    assert_eq!(status, 422);
    assert_eq!(
        v["detail"][0],
        json!({"type": "missing", "loc": ["query", "package"], "msg": "Field required", "input": null})
    );
    let (status, v) = s.evaluate("package=").await;
    assert_eq!(status, 422);
    assert_eq!(v["detail"][0]["type"], "string_too_short");

    let (status, v) = s.evaluate("package=..%2F..%2Fadmin").await;
    assert_eq!(status, 422);
    assert_eq!(v["detail"][0]["loc"], json!(["query", "package"]));
    assert_eq!(v["detail"][0]["input"], "../../admin");

    let long = "a".repeat(201);
    let (status, v) = s.evaluate(&format!("package={long}")).await;
    assert_eq!(status, 422);
    assert_eq!(v["detail"][0]["type"], "string_too_long");
    assert_eq!(v["detail"][0]["ctx"]["max_length"], 200);

    let (status, v) = s.evaluate("package=httpx&version=not%20a%20version").await;
    assert_eq!(status, 422);
    assert_eq!(v["detail"][0]["loc"], json!(["query", "version"]));
    let (status, v) = s
        .evaluate(&format!("package=httpx&version={}", "1".repeat(101)))
        .await;
    assert_eq!(status, 422);
    assert_eq!(v["detail"][0]["loc"], json!(["query", "version"]));

    let (status, v) = s
        .evaluate("package=httpx&requirement=requests%3E%3D2")
        .await;
    assert_eq!(status, 422);
    assert_eq!(v["detail"][0]["loc"], json!(["query", "requirement"]));

    let long_project = "p".repeat(201);
    let r = s
        .client
        .get(s.url("/api/v1/evaluate?package=httpx"))
        .header("X-LexAlign-Project", long_project)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 422);

    // None of that reached an upstream or the audit log.
    assert_eq!(s.index.requests() + s.osv.requests(), before);
    assert_eq!(s.audit_rows(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn evaluate_verdicts_and_audit_rows() {
    let s = start().await;

    let (status, v) = s.evaluate("package=PyQt5").await;
    assert_eq!(status, 200, "{v}");
    for k in ORIGINAL_KEYS {
        assert!(v.get(k).is_some(), "missing key {k}: {v}");
    }
    assert_eq!(v["verdict"], "DENIED");
    assert_eq!(v["denial_category"], "registry");
    assert_eq!(v["registry_status"], "banned");
    assert_eq!(v["package"], "PyQt5");
    assert_eq!(v["version"], Value::Null);

    let (status, v) = s.evaluate("package=requests").await;
    assert_eq!(status, 200);
    assert_eq!(v["verdict"], "DENIED");
    assert_eq!(v["replacement"], "httpx");

    let (status, v) = s.evaluate("package=httpx").await;
    assert_eq!(status, 200);
    assert_eq!(v["verdict"], "ALLOWED", "{v}");
    assert_eq!(v["registry_status"], "preferred");
    assert!(v["resolved_version"].is_string(), "{v}");

    // Requirement-aware: a range admitting versions below min_version.
    let (status, v) = s
        .evaluate("package=cryptography&requirement=cryptography%3E%3D41")
        .await;
    assert_eq!(status, 200);
    assert_eq!(v["verdict"], "DENIED", "{v}");
    assert_eq!(v["version_constraint"], ">=42.0.0");
    assert_eq!(v["requirement"], "cryptography>=41");

    // A name the index does not have.
    let (status, v) = s.evaluate("package=surely-not-a-real-package-xyz").await;
    assert_eq!(status, 200);
    assert_eq!(v["verdict"], "DENIED", "{v}");
    assert_eq!(v["denial_category"], "not-found");

    // One durable row per call, agent headers recorded.
    let r = s
        .client
        .get(s.url("/api/v1/evaluate?package=six"))
        .header("X-LexAlign-Project", "proj")
        .header("X-LexAlign-Agent-Model", "  claude-x ")
        .header("X-LexAlign-Agent-Version", "")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(s.audit_rows(), 6);
    let agents = s.handle.store().agents_report(Some("proj")).unwrap();
    assert!(agents.to_string().contains("claude-x"), "{agents}");

    let (status, v) = s.get_bare("/api/v1/audit/verify").await;
    assert_eq!(status, 200);
    assert_eq!(v["ok"], true);
    assert_eq!(v["rows"], 6);
    assert_eq!(v["first_broken"], Value::Null);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approval_requests_are_records_and_refuse_denied_packages() {
    let s = start().await;
    let registry_before = std::fs::read_to_string(&s.registry_path).unwrap();

    // Banned and deprecated: 409 with the reason, nothing stored.
    for pkg in ["PyQt5", "requests"] {
        let (status, v) = s
            .post_json(
                "/api/v1/approval-requests",
                &json!({"package": pkg, "rationale": "need it"}),
            )
            .await;
        assert_eq!(status, 409, "{pkg}: {v}");
        assert!(v["detail"].is_string());
    }
    // Nonexistent package: refused too.
    let (status, _) = s
        .post_json(
            "/api/v1/approval-requests",
            &json!({"package": "surely-not-a-real-package-xyz", "rationale": "need it"}),
        )
        .await;
    assert_eq!(status, 409);
    let items = s
        .handle
        .store()
        .approval_requests_report(None, None)
        .unwrap();
    assert_eq!(items["items"], json!([]));

    // An unknown but acceptable package: 202, recorded, registry untouched.
    let (status, v) = s
        .post_json(
            "/api/v1/approval-requests",
            &json!({"package": "six", "rationale": "py2 shims", "extra": 1}),
        )
        .await;
    assert_eq!(status, 202, "{v}");
    assert_eq!(v["status"], "PENDING_REVIEW");
    assert_eq!(v["package"], "six");
    assert_eq!(v["project"], "proj");
    assert_eq!(v["agent_model"], Value::Null);
    assert_eq!(
        v["proposal"],
        json!({"backend": "LocalFileProposer", "status": "recorded"})
    );
    assert_eq!(v["request_id"].as_str().unwrap().len(), 36);
    assert_eq!(
        std::fs::read_to_string(&s.registry_path).unwrap(),
        registry_before
    );

    let (status, v) = s
        .get_bare("/api/v1/reports/approval-requests?project=proj&status=PENDING_REVIEW")
        .await;
    assert_eq!(status, 200);
    assert_eq!(v["items"].as_array().unwrap().len(), 1);
    let (status, v) = s.get_bare("/api/v1/registry/pending").await;
    assert_eq!(status, 200);
    assert_eq!(v["explicit"][0]["normalized_name"], "six");

    // Body validation.
    let (status, v) = s
        .post_json("/api/v1/approval-requests", &json!({"package": "six"}))
        .await;
    assert_eq!(status, 422);
    assert_eq!(v["detail"][0]["loc"], json!(["body", "rationale"]));
    let (status, v) = s
        .post_json(
            "/api/v1/approval-requests",
            &json!({"package": "six", "rationale": ""}),
        )
        .await;
    assert_eq!(status, 422);
    assert_eq!(
        v["detail"][0],
        json!({"type": "string_too_short", "loc": ["body", "rationale"],
               "msg": "String should have at least 1 character", "input": "", "ctx": {"min_length": 1}})
    );
    let (status, v) = s.post_raw("/api/v1/approval-requests", "{not json").await;
    assert_eq!(status, 422);
    assert_eq!(v["detail"][0]["type"], "json_invalid");
    let (status, _) = s.post_raw("/api/v1/approval-requests", "[1, 2]").await;
    assert_eq!(status, 422);
    let big = Box::leak(
        format!(
            "{{\"package\": \"six\", \"rationale\": \"{}\"}}",
            "x".repeat(1_100_000)
        )
        .into_boxed_str(),
    );
    let (status, _) = s.post_raw("/api/v1/approval-requests", big).await;
    assert_eq!(status, 413);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch_keeps_input_order_and_isolates_bad_items() {
    let s = start().await;
    let (status, v) = s
        .post_json(
            "/api/v1/evaluate/batch",
            &json!({"requirements": ["httpx", "PyQt5", "not a name!!", "cryptography>=41,<44", "httpx"]}),
        )
        .await;
    assert_eq!(status, 200, "{v}");
    let results = v["results"].as_array().unwrap();
    assert_eq!(results.len(), 5);
    assert_eq!(results[0]["package"], "httpx");
    assert_eq!(results[0]["verdict"], "ALLOWED");
    assert_eq!(results[1]["package"], "PyQt5");
    assert_eq!(results[1]["verdict"], "DENIED");
    assert!(results[2]["error"].is_object(), "{}", results[2]);
    assert!(results[2].get("verdict").is_none());
    assert_eq!(results[3]["package"], "cryptography");
    assert_eq!(results[4]["package"], "httpx");
    // Four valid items, four rows.
    assert_eq!(s.audit_rows(), 4);

    let (status, v) = s
        .post_json(
            "/api/v1/evaluate/batch",
            &json!({"packages": [{"package": "six", "version": "1.16.0"}, {"requirement": "PyQt5"}, {"package": 3}]}),
        )
        .await;
    assert_eq!(status, 200, "{v}");
    let results = v["results"].as_array().unwrap();
    assert_eq!(results[0]["version"], "1.16.0");
    assert_eq!(results[1]["verdict"], "DENIED");
    assert!(results[2]["error"].is_object());

    let many: Vec<String> = (0..501).map(|i| format!("pkg{i}")).collect();
    let (status, v) = s
        .post_json("/api/v1/evaluate/batch", &json!({"requirements": many}))
        .await;
    assert_eq!(status, 422);
    assert_eq!(v["detail"][0]["type"], "too_long");
    let (status, _) = s.post_json("/api/v1/evaluate/batch", &json!({})).await;
    assert_eq!(status, 422);
    let (status, _) = s
        .post_json("/api/v1/evaluate/batch", &json!({"requirements": "httpx"}))
        .await;
    assert_eq!(status, 422);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reports_metrics_openapi_and_not_found() {
    let s = start().await;
    s.evaluate("package=PyQt5").await;

    for (path, key) in [
        ("/api/v1/reports/legal?project=", "license_breakdown"),
        ("/api/v1/reports/security", "severity_distribution"),
        (
            "/api/v1/reports/security?project=proj",
            "hot_registry_packages",
        ),
        ("/api/v1/reports/projects", "projects"),
        ("/api/v1/reports/agents?project=proj", "agents"),
        ("/api/v1/reports/approval-requests", "items"),
    ] {
        let (status, v) = s.get_bare(path).await;
        assert_eq!(status, 200, "{path}: {v}");
        assert!(v.get(key).is_some(), "{path}: {v}");
    }

    let r = s.client.get(s.url("/metrics")).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert!(r.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain"));
    let text = r.text().await.unwrap();
    assert!(
        text.contains("lexalign_evaluations_total{verdict=\"DENIED\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("lexalign_denials_total{category=\"registry\"} 1"),
        "{text}"
    );
    assert!(text.contains("lexalign_audit_rows_total 1"), "{text}");
    assert!(
        text.contains("lexalign_http_request_duration_seconds_count{route=\"evaluate\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("lexalign_upstream_requests_total{upstream=\"index\"}"),
        "{text}"
    );

    let (status, doc) = s.get_bare("/openapi.json").await;
    assert_eq!(status, 200);
    assert_eq!(doc["info"]["title"], "lex-align server");
    for path in [
        "/api/v1/evaluate",
        "/api/v1/evaluate/batch",
        "/api/v1/approval-requests",
        "/api/v1/health",
        "/api/v1/registry",
        "/api/v1/registry/pending",
        "/api/v1/registry/proposals",
        "/api/v1/registry/parse-yaml",
        "/api/v1/registry/reload",
        "/api/v1/registry/webhook",
        "/api/v1/reports/legal",
        "/api/v1/reports/security",
        "/api/v1/reports/approval-requests",
        "/api/v1/reports/projects",
        "/api/v1/reports/agents",
        "/api/v1/audit/verify",
        "/metrics",
    ] {
        assert!(doc["paths"].get(path).is_some(), "{path} undocumented");
    }

    let (status, v) = s.get_bare("/api/v1/registry/packages").await;
    assert_eq!(status, 404);
    assert_eq!(v["detail"], "Not Found");
    let r = s
        .client
        .get(s.url("/api/v1/registry/reload"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 405);

    // No 5xx anywhere in this run.
    assert!(
        text.contains("lexalign_http_responses_errors_total{class=\"5xx\"} 0"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_verify_names_a_tampered_row() {
    let s = start().await;
    s.evaluate("package=PyQt5").await;
    s.evaluate("package=requests").await;
    let db = s.handle.store().path().to_path_buf();
    s.handle.store().flush().unwrap();
    tamper(&db);
    let (status, v) = s.get_bare("/api/v1/audit/verify").await;
    assert_eq!(status, 409, "{v}");
    assert_eq!(v["ok"], false);
    assert_eq!(v["first_broken"]["seq"], 1);
}

/// Rewrites the first row's verdict behind the store's back.
fn tamper(db: &std::path::Path) {
    let c = rusqlite::Connection::open(db).unwrap();
    c.busy_timeout(std::time::Duration::from_secs(5)).unwrap();
    let n = c
        .execute("UPDATE audit_log SET verdict = 'ALLOWED' WHERE seq = 1", [])
        .unwrap();
    assert_eq!(n, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_packages_get_did_you_mean_from_the_registry_and_the_index() {
    let s = start().await;

    // `htpx` is one edit from the registry's preferred `httpx`.
    let (status, v) = s.evaluate("package=htpx").await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["verdict"], "DENIED", "{v}");
    assert_eq!(v["denial_category"], "not-found", "{v}");
    assert_eq!(v["suggestions"], json!(["httpx"]), "{v}");
    assert!(
        v["reason"]
            .as_str()
            .unwrap()
            .ends_with("Did you mean `httpx`?"),
        "{v}"
    );

    // `nunpy`: not in the registry; suggested once the index has answered
    // for `numpy`.
    let (_, v) = s.evaluate("package=nunpy").await;
    assert_eq!(v["suggestions"], json!([]), "{v}");
    let (_, v) = s.evaluate("package=numpy").await;
    assert_ne!(v["denial_category"], "not-found", "{v}");
    let (_, v) = s.evaluate("package=nunpy&version=2.0.0").await;
    assert_eq!(v["denial_category"], "not-found", "{v}");
    assert_eq!(v["suggestions"], json!(["numpy"]), "{v}");

    // A banned package is never offered; nothing close gives nothing.
    let (_, v) = s.evaluate("package=pyqt6").await;
    assert_eq!(v["denial_category"], "not-found", "{v}");
    assert_eq!(v["suggestions"], json!([]), "{v}");
    // A known package carries no suggestions.
    let (_, v) = s.evaluate("package=httpx").await;
    assert_eq!(v["suggestions"], json!([]), "{v}");
}

/// `(method, path)` of every `.route(...)` in the given sources (relative to
/// this crate), read from the code so a new route cannot go undocumented.
fn routes_in(files: &[&str]) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for f in files {
        let src = std::fs::read_to_string(format!("{}/{f}", env!("CARGO_MANIFEST_DIR"))).unwrap();
        for piece in src.split(".route(").skip(1) {
            let Some(rest) = piece.trim_start().strip_prefix('"') else {
                continue;
            };
            let path = rest.split('"').next().unwrap().to_string();
            // The handlers of this route: up to the next route or merge.
            let handlers = rest.split(".merge(").next().unwrap();
            let mut methods = 0;
            for m in ["get", "post", "put", "delete", "patch"] {
                let called = handlers.match_indices(&format!("{m}(")).any(|(i, _)| {
                    i == 0
                        || !handlers.as_bytes()[i - 1].is_ascii_alphanumeric()
                            && handlers.as_bytes()[i - 1] != b'_'
                });
                if called {
                    out.push((m.to_string(), path.clone()));
                    methods += 1;
                }
            }
            assert!(methods > 0, "no method found for {path} in {f}");
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_api_and_team_route_is_in_openapi() {
    let s = start().await;
    let (status, doc) = s.get_bare("/openapi.json").await;
    assert_eq!(status, 200);
    let routes = routes_in(&["src/http/mod.rs", "src/team/mod.rs", "src/team/upstream.rs"]);
    let team: Vec<_> = routes
        .iter()
        .filter(|(_, p)| p.contains("/team/") || p.contains("/upstream/") || p.ends_with("/events"))
        .collect();
    assert!(team.len() >= 7, "team routes not found: {routes:?}");
    assert!(routes
        .iter()
        .any(|(m, p)| m == "post" && p == "/api/v1/audit/ingest"));
    for (method, path) in &routes {
        let op = &doc["paths"][path.as_str()][method.as_str()];
        assert!(
            op.is_object(),
            "{} {path} is not in /openapi.json",
            method.to_uppercase()
        );
        assert!(op["summary"].is_string(), "{method} {path}: no summary");
        assert!(
            op["responses"]["200"].is_object()
                || op["responses"]["201"].is_object()
                || op["responses"]["202"].is_object(),
            "{method} {path}: no success response"
        );
        // Each `{param}` of the path is described.
        for param in path
            .split('/')
            .filter_map(|s| s.strip_prefix('{')?.strip_suffix('}'))
        {
            let described = op["parameters"]
                .as_array()
                .is_some_and(|ps| ps.iter().any(|p| p["name"] == param && p["in"] == "path"));
            assert!(
                described,
                "{method} {path}: path parameter {param} undocumented"
            );
        }
    }
}
