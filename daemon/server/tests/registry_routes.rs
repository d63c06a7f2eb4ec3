//! Registry view, parse-yaml, reload (API, watcher, poller), proposals and the
//! webhook, against the real app.

mod common;

use std::time::Duration;

use common::{start, start_with, Options, REGISTRY_YAML, SECRET};
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;

fn sign(body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registry_view_is_the_loaded_yaml() {
    let s = start().await;
    let (status, v) = s.get_bare("/api/v1/registry").await;
    assert_eq!(status, 200);
    assert_eq!(v["version"], "1.2");
    assert_eq!(v["packages"]["pyqt5"]["status"], "banned");
    assert_eq!(v["packages"]["requests"]["replacement"], "httpx");
    assert_eq!(v["global_policies"]["unknown_license_policy"], "block");
    // Optional keys only when set.
    assert!(v["packages"]["httpx"].get("replacement").is_none());

    let (status, h) = s.get_bare("/api/v1/health").await;
    assert_eq!(status, 200);
    assert_eq!(h["registry_loaded"], true);
    assert_eq!(h["registry_version"], "1.2");
    assert_eq!(h["db"], "ok");
    assert_eq!(h["redis"], "down");
    assert_eq!(h["auth_enabled"], false);
    assert_eq!(h["last_reload"]["ok"], true);
    assert_eq!(h["proposer"], "local_file");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compiled_json_registry_loads_too() {
    // The compiled JSON form at REGISTRY_PATH boots (the original's YAML/JSON
    // split crashed one way or the other).
    let compiled = lex_align_engine::registry::Registry::from_yaml(REGISTRY_YAML)
        .unwrap()
        .to_compiled_json();
    let text: &'static str = Box::leak(
        serde_json::to_string_pretty(&compiled)
            .unwrap()
            .into_boxed_str(),
    );
    let s = start_with(Options {
        registry: Some(text),
        ..Options::default()
    })
    .await;
    // Same file name as YAML (.yml) but JSON content: detected by content.
    let (_, v) = s.get_bare("/api/v1/registry").await;
    assert_eq!(v["packages"]["pyqt5"]["status"], "banned");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_registry_file_runs_the_builtin_policy() {
    let s = start_with(Options {
        registry: None,
        ..Options::default()
    })
    .await;
    let (_, h) = s.get_bare("/api/v1/health").await;
    assert_eq!(h["registry_loaded"], false);
    assert_eq!(h["registry_version"], Value::Null);
    let (status, v) = s.get_bare("/api/v1/registry").await;
    assert_eq!(status, 200);
    assert!(v["global_policies"].is_object());
    let (status, v) = s.post_json("/api/v1/registry/reload", &json!({})).await;
    assert_eq!(status, 409);
    assert_eq!(
        v["detail"],
        format!(
            "REGISTRY_PATH {} does not exist.",
            s.registry_path.display()
        )
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parse_yaml_compiles_or_names_the_problem() {
    let s = start().await;
    let (status, v) = s
        .post_json(
            "/api/v1/registry/parse-yaml",
            &json!({"yaml_text": REGISTRY_YAML}),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(v["packages"]["pyqt5"]["status"], "banned");
    assert_eq!(v["global_policies"]["cve_threshold"], 0.9);

    let (status, v) = s
        .post_json(
            "/api/v1/registry/parse-yaml",
            &json!({"yaml_text": "version: 1\npackages:\n  foo:\n    status: wat\n"}),
        )
        .await;
    assert_eq!(status, 400);
    let d = v["detail"].as_str().unwrap();
    assert!(d.contains("package `foo` has invalid status 'wat'"), "{d}");

    let (status, v) = s
        .post_json(
            "/api/v1/registry/parse-yaml",
            &json!({"yaml_text": "packages: {}\n"}),
        )
        .await;
    assert_eq!(status, 400);
    assert!(v["detail"]
        .as_str()
        .unwrap()
        .contains("missing required field: version"));

    let (status, v) = s
        .post_json(
            "/api/v1/registry/parse-yaml",
            &json!({"yaml_text": "version: [1\n"}),
        )
        .await;
    assert_eq!(status, 400);
    assert!(
        v["detail"]
            .as_str()
            .unwrap()
            .starts_with("YAML parse error: "),
        "{v}"
    );

    let (status, v) = s
        .post_json("/api/v1/registry/parse-yaml", &json!({"yaml_text": ""}))
        .await;
    assert_eq!(status, 422);
    assert_eq!(v["detail"][0]["type"], "string_too_short");
    assert_eq!(v["detail"][0]["loc"], json!(["body", "yaml_text"]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_funnel_keeps_good_registry_and_approves_added() {
    let s = start().await;
    // Unchanged content: a 200 no-op.
    let (status, v) = s.post_json("/api/v1/registry/reload", &json!(null)).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["ok"], true);
    assert_eq!(v["changed"], false);
    assert_eq!(v["added_packages"], 0);

    // A pending request for a package the registry does not know yet.
    let store = s.handle.store().clone();
    store
        .upsert_approval_request(lex_align_store::NewApprovalRequest {
            project: "proj".into(),
            requester: "anonymous".into(),
            package: "Six".into(),
            rationale: "needed for py2 compat shims".into(),
            ..Default::default()
        })
        .await
        .unwrap();

    // Broken file: 409, previous registry stays live.
    std::fs::write(
        &s.registry_path,
        "version: 1\npackages:\n  foo:\n    status: wat\n",
    )
    .unwrap();
    let (status, v) = s.post_json("/api/v1/registry/reload", &json!(null)).await;
    assert_eq!(status, 409);
    let d = v["detail"].as_str().unwrap();
    assert!(
        d.starts_with("Validation failed; keeping previous registry: "),
        "{d}"
    );
    let (_, reg) = s.get_bare("/api/v1/registry").await;
    assert_eq!(reg["packages"]["pyqt5"]["status"], "banned");
    let (_, h) = s.get_bare("/api/v1/health").await;
    assert_eq!(h["last_reload"]["ok"], false);
    assert_eq!(h["last_reload"]["detail"], d);

    // YAML syntax error: reported as a read failure.
    std::fs::write(&s.registry_path, "version: [1\n").unwrap();
    let (status, v) = s.post_json("/api/v1/registry/reload", &json!(null)).await;
    assert_eq!(status, 409);
    assert!(
        v["detail"].as_str().unwrap().starts_with("Failed reading "),
        "{v}"
    );

    // Good file adding `six`: swapped, the pending request approved.
    let added = format!("{REGISTRY_YAML}  six:\n    status: approved\n");
    std::fs::write(&s.registry_path, added).unwrap();
    let (status, v) = s.post_json("/api/v1/registry/reload", &json!(null)).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["previous_version"], "1.2");
    assert_eq!(v["new_version"], "1.2");
    assert_eq!(v["package_count"], 5);
    assert_eq!(v["added_packages"], 1);
    assert_eq!(v["approved_requests"], 1);
    assert_eq!(v["changed"], true);
    let report = store
        .approval_requests_report(Some("proj"), Some("APPROVED"))
        .unwrap();
    assert_eq!(report["items"].as_array().unwrap().len(), 1);

    // Missing file: 409 naming it; registry unchanged.
    std::fs::remove_file(&s.registry_path).unwrap();
    let (status, v) = s.post_json("/api/v1/registry/reload", &json!(null)).await;
    assert_eq!(status, 409);
    assert_eq!(
        v["detail"],
        format!(
            "REGISTRY_PATH {} does not exist.",
            s.registry_path.display()
        )
    );
    let (_, reg) = s.get_bare("/api/v1/registry").await;
    assert_eq!(reg["packages"]["six"]["status"], "approved");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_watcher_picks_up_changes_and_ignores_broken_files() {
    let s = start_with(Options {
        watch: true,
        ..Options::default()
    })
    .await;
    let updated = format!("{REGISTRY_YAML}  flask:\n    status: preferred\n");
    std::fs::write(&s.registry_path, updated).unwrap();
    s.wait_for_registry(|v| v["packages"]["flask"]["status"] == "preferred")
        .await;

    // A broken save never replaces the good registry; health says why.
    std::fs::write(&s.registry_path, "version: 1\npackages: [oops\n").unwrap();
    let mut seen_failure = false;
    for _ in 0..200 {
        let (_, h) = s.get_bare("/api/v1/health").await;
        if h["last_reload"]["ok"] == false {
            assert_eq!(h["last_reload"]["trigger"], "watch");
            seen_failure = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(seen_failure, "the watcher never reported the broken file");
    let (_, reg) = s.get_bare("/api/v1/registry").await;
    assert_eq!(reg["packages"]["flask"]["status"], "preferred");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poller_reloads_on_content_change() {
    let s = start_with(Options {
        watch: false,
        poll: Some(Duration::from_millis(100)),
        ..Options::default()
    })
    .await;
    let updated = REGISTRY_YAML.replace("version: \"1.2\"", "version: \"1.3\"");
    std::fs::write(&s.registry_path, updated).unwrap();
    let v = s.wait_for_registry(|v| v["version"] == "1.3").await;
    assert_eq!(v["packages"]["pyqt5"]["status"], "banned");
    let (_, h) = s.get_bare("/api/v1/health").await;
    assert_eq!(h["last_reload"]["trigger"], "poll");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_file_proposal_keeps_comments_and_is_live_at_once() {
    let s = start().await;
    let (status, v) = s
        .post_json(
            "/api/v1/registry/proposals",
            &json!({"name": "Flask", "status": "deprecated", "replacement": "quart",
                    "reason": "", "rationale": "async everywhere"}),
        )
        .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["backend"], "local_file");
    assert_eq!(v["status"], "applied");
    assert_eq!(v["url"], format!("file://{}", s.registry_path.display()));
    assert_eq!(v["branch"], Value::Null);

    let text = std::fs::read_to_string(&s.registry_path).unwrap();
    assert!(
        text.contains("# Team registry: edited by humans, comments matter."),
        "{text}"
    );
    assert!(
        text.contains("# The async client everyone should use."),
        "{text}"
    );
    assert!(text.contains("quart"), "{text}");
    // No reload call needed: the proposer reloads (W24).
    let (_, reg) = s.get_bare("/api/v1/registry").await;
    assert_eq!(reg["packages"]["flask"]["status"], "deprecated");
    assert_eq!(reg["packages"]["flask"]["replacement"], "quart");
    // Empty optional fields are dropped (the original keeps only truthy ones).
    assert!(reg["packages"]["flask"].get("reason").is_none());

    // Invalid rules: 400 with the validator's message; file untouched.
    let before = std::fs::read_to_string(&s.registry_path).unwrap();
    let (status, v) = s
        .post_json(
            "/api/v1/registry/proposals",
            &json!({"name": "x", "status": "wat"}),
        )
        .await;
    assert_eq!(status, 400);
    assert!(
        v["detail"]
            .as_str()
            .unwrap()
            .contains("invalid status 'wat'"),
        "{v}"
    );
    let (status, v) = s
        .post_json(
            "/api/v1/registry/proposals",
            &json!({"name": "x", "status": "deprecated"}),
        )
        .await;
    assert_eq!(status, 400);
    assert!(v["detail"].as_str().unwrap().contains("replacement"), "{v}");
    assert_eq!(std::fs::read_to_string(&s.registry_path).unwrap(), before);

    // Validation before anything else: 422 for a missing field.
    let (status, v) = s
        .post_json("/api/v1/registry/proposals", &json!({"name": "x"}))
        .await;
    assert_eq!(status, 422);
    assert_eq!(v["detail"][0]["loc"], json!(["body", "status"]));
    assert_eq!(v["detail"][0]["type"], "missing");

    // Project header required.
    let r = s
        .client
        .post(s.url("/api/v1/registry/proposals"))
        .json(&json!({"name": "x", "status": "approved"}))
        .send()
        .await
        .unwrap();
    let (status, v) = common::split(r).await;
    assert_eq!(status, 400);
    assert_eq!(v["detail"], "X-LexAlign-Project header is required.");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_signature_events_and_merged_pr() {
    let s = start().await;
    let deliveries = std::sync::atomic::AtomicUsize::new(0);
    let post = |event: Option<&'static str>, sig: Option<String>, body: Vec<u8>| {
        let n = deliveries.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut r = s
            .client
            .post(s.url("/api/v1/registry/webhook"))
            .header("X-GitHub-Delivery", format!("delivery-{n}"))
            .body(body);
        if let Some(e) = event {
            r = r.header("X-GitHub-Event", e);
        }
        if let Some(sig) = sig {
            r = r.header("X-Hub-Signature-256", sig);
        }
        async move { common::split(r.send().await.unwrap()).await }
    };

    let body = br#"{"zen":"hi"}"#.to_vec();
    // Missing, malformed, uppercase and wrong signatures: 401.
    for sig in [
        None,
        Some("deadbeef".to_string()),
        Some("sha256=zz".to_string()),
        Some(sign(&body).to_uppercase().replace("SHA256=", "sha256=")),
        Some(sign(b"other body")),
    ] {
        let (status, v) = post(Some("ping"), sig.clone(), body.clone()).await;
        assert_eq!(status, 401, "{sig:?}");
        assert_eq!(v["detail"], "Invalid webhook signature.");
    }

    let (status, v) = post(Some("ping"), Some(sign(&body)), body.clone()).await;
    assert_eq!(status, 200);
    assert_eq!(v, json!({"ok": true, "event": "ping"}));

    let (status, v) = post(Some("push"), Some(sign(&body)), body.clone()).await;
    assert_eq!(status, 200);
    assert_eq!(v, json!({"ok": true, "event": "push", "ignored": true}));
    let (_, v) = post(None, Some(sign(&body)), body.clone()).await;
    assert_eq!(v, json!({"ok": true, "event": null, "ignored": true}));

    let bad = b"not json".to_vec();
    let (status, v) = post(Some("pull_request"), Some(sign(&bad)), bad).await;
    assert_eq!(status, 400);
    assert!(v["detail"]
        .as_str()
        .unwrap()
        .starts_with("Webhook body is not JSON: "));
    let arr = b"[1,2]".to_vec();
    let (status, _) = post(Some("pull_request"), Some(sign(&arr)), arr).await;
    assert_eq!(status, 400);

    let opened =
        serde_json::to_vec(&json!({"action": "opened", "pull_request": {"merged": false}}))
            .unwrap();
    let (status, v) = post(Some("pull_request"), Some(sign(&opened)), opened).await;
    assert_eq!(status, 200);
    assert_eq!(
        v,
        json!({"ok": true, "event": "pull_request", "action": "opened", "ignored": true})
    );

    // Merged into another branch: ignored.
    let other = serde_json::to_vec(
        &json!({"action": "closed", "pull_request": {"merged": true, "base": {"ref": "release-1"}}}),
    )
    .unwrap();
    std::fs::write(
        &s.registry_path,
        format!("{REGISTRY_YAML}  six:\n    status: approved\n"),
    )
    .unwrap();
    let (status, v) = post(Some("pull_request"), Some(sign(&other)), other).await;
    assert_eq!(status, 200);
    assert_eq!(v["ignored"], true);
    let (_, reg) = s.get_bare("/api/v1/registry").await;
    assert!(reg["packages"].get("six").is_none());

    // Merged into main: reloads.
    let merged = serde_json::to_vec(
        &json!({"action": "closed", "pull_request": {"merged": true, "base": {"ref": "main"}}}),
    )
    .unwrap();
    let (status, v) = post(Some("pull_request"), Some(sign(&merged)), merged.clone()).await;
    assert_eq!(status, 200);
    assert_eq!(v["ok"], true);
    assert_eq!(v["event"], "pull_request.merged");
    assert_eq!(v["added_packages"], 1);
    assert_eq!(v["package_count"], 5);
    let (_, reg) = s.get_bare("/api/v1/registry").await;
    assert_eq!(reg["packages"]["six"]["status"], "approved");

    // A failing reload is ok:false with 200, not 409.
    std::fs::write(
        &s.registry_path,
        "version: 1\npackages:\n  foo:\n    status: wat\n",
    )
    .unwrap();
    let (status, v) = post(Some("pull_request"), Some(sign(&merged)), merged).await;
    assert_eq!(status, 200);
    assert_eq!(v["ok"], false);
    assert!(v["detail"]
        .as_str()
        .unwrap()
        .starts_with("Validation failed"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replayed_webhook_delivery_is_409_and_changes_nothing() {
    let s = start().await;
    let merged = serde_json::to_vec(
        &json!({"action": "closed", "pull_request": {"merged": true, "base": {"ref": "main"}}}),
    )
    .unwrap();
    let send = |delivery: Option<&'static str>| {
        let mut r = s
            .client
            .post(s.url("/api/v1/registry/webhook"))
            .header("X-GitHub-Event", "pull_request")
            .header("X-Hub-Signature-256", sign(&merged))
            .body(merged.clone());
        if let Some(d) = delivery {
            r = r.header("X-GitHub-Delivery", d);
        }
        async move { common::split(r.send().await.unwrap()).await }
    };
    std::fs::write(
        &s.registry_path,
        format!("{REGISTRY_YAML}  six:\n    status: approved\n"),
    )
    .unwrap();
    let (status, v) = send(Some("d-1")).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["added_packages"], 1);

    // The attacker captured that delivery; the file has changed since.
    std::fs::write(
        &s.registry_path,
        format!("{REGISTRY_YAML}  six:\n    status: banned\n"),
    )
    .unwrap();
    let (status, v) = send(Some("d-1")).await;
    assert_eq!(status, 409, "{v}");
    assert!(v["detail"].as_str().unwrap().contains("already received"));
    let (_, reg) = s.get_bare("/api/v1/registry").await;
    assert_eq!(reg["packages"]["six"]["status"], "approved", "no reload");

    // Without a delivery id there is nothing to dedupe on: refused.
    let (status, v) = send(None).await;
    assert_eq!(status, 400, "{v}");
    // Remembered in SQLite: the row is there.
    let c = rusqlite::Connection::open(&s.handle.state.config.database_path).unwrap();
    let n: i64 = c
        .query_row(
            "SELECT COUNT(*) FROM webhook_deliveries WHERE id = 'd-1'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(n, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_without_secret_is_503() {
    let s = start_with(Options {
        webhook_secret: None,
        ..Options::default()
    })
    .await;
    let r = s
        .client
        .post(s.url("/api/v1/registry/webhook"))
        .header("X-GitHub-Event", "ping")
        .body("{}")
        .send()
        .await
        .unwrap();
    let (status, v) = common::split(r).await;
    assert_eq!(status, 503);
    assert!(v["detail"]
        .as_str()
        .unwrap()
        .contains("REGISTRY_WEBHOOK_SECRET"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broken_registry_at_boot_is_a_clear_startup_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("registry.yml");
    std::fs::write(&path, "version: 1\npackages:\n  foo:\n    status: wat\n").unwrap();
    let mut config = lex_align_daemon::Config::new(dir.path().join("data"));
    config.registry_path = Some(path.clone());
    let e = lex_align_daemon::build_app(config)
        .await
        .err()
        .expect("startup fails")
        .to_string();
    assert!(e.contains("REGISTRY_PATH"), "{e}");
    assert!(e.contains("invalid status 'wat'"), "{e}");
    assert!(e.contains("line 4"), "{e}");
}
