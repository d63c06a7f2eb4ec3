//! The merge-request flow through the plugin's real C entry points, against
//! a fake GitLab on 127.0.0.1 (one plugin instance per process: one test).

use lex_align_engine::registry::{Registry, STARTER_YAML};
use lex_align_fakes::FakeGitLab;
use lex_align_plugin_gitlab::__lex_align_call as call;
use serde_json::{json, Value};

const TOKEN: &str = "glpat-TEST-SECRET-4f9c2a7e1b";

fn propose(rule: Value, rationale: &str) -> Value {
    let answer = call(
        &json!({"op": "propose", "rule": rule, "context": {
            "source": "agent", "project": "payments-api", "requester": "alice@example.test",
            "rationale": rationale, "agent_model": "claude", "agent_version": "4.5",
        }})
        .to_string(),
    );
    assert!(
        !answer.contains(TOKEN),
        "the answer leaks the token: {answer}"
    );
    serde_json::from_str(&answer).unwrap()
}

fn rule(name: &str, status: &str) -> Value {
    json!({"name": name, "status": status, "reason": null, "replacement": null,
           "min_version": null, "max_version": null, "expires": null, "owner": null})
}

fn status_on(gl: &FakeGitLab, branch: &str, name: &str) -> Option<String> {
    let text = gl.file(branch, "registry.yml")?;
    let reg = Registry::from_yaml(&text).expect("the committed registry is valid");
    reg.rule(name).map(|r| r.status.as_str().to_string())
}

#[test]
fn merge_requests_through_the_c_abi() {
    let gl = FakeGitLab::start(
        TOKEN,
        "platform/policy",
        "main",
        &[("registry.yml", STARTER_YAML)],
    );
    let v: Value = serde_json::from_str(&call(
        &json!({"op": "configure", "config": {
            "api_url": gl.api_url(), "project": "platform/policy", "token": TOKEN,
            "author_name": "lex-align bot", "author_email": "lex-align@example.test",
        }})
        .to_string(),
    ))
    .unwrap();
    assert_eq!(v, json!({"ok": true}));

    // 1. A new package: branch, commit, merge request.
    let v = propose(rule("Flask_Login", "approved"), "needed for the admin UI");
    let r = &v["result"];
    assert_eq!(r["status"], "opened", "{v}");
    assert_eq!(r["branch"], "lex-align/approval/flask-login");
    assert!(
        r["url"]
            .as_str()
            .unwrap()
            .ends_with("/platform/policy/-/merge_requests/1"),
        "{v}"
    );
    let commits = gl.commits();
    assert_eq!(commits.len(), 1);
    assert_eq!(r["commit_sha"], commits[0].id.as_str());
    assert_eq!(commits[0].branch, "lex-align/approval/flask-login");
    assert_eq!(
        commits[0].message.lines().next().unwrap(),
        "lex-align: classify Flask_Login as approved (via agent)"
    );
    assert!(commits[0]
        .message
        .contains("\nProject: payments-api\nRequester: alice@example.test\nAgent: claude 4.5\n"));
    assert!(commits[0]
        .message
        .ends_with("Rationale:\nneeded for the admin UI\n"));
    assert_eq!(commits[0].author_name.as_deref(), Some("lex-align bot"));
    assert_eq!(
        status_on(&gl, "lex-align/approval/flask-login", "flask-login").as_deref(),
        Some("approved")
    );
    // The default branch is untouched, and the rest of the file kept as written.
    assert_eq!(
        gl.file("main", "registry.yml").as_deref(),
        Some(STARTER_YAML)
    );
    let branch_text = gl
        .file("lex-align/approval/flask-login", "registry.yml")
        .unwrap();
    assert!(branch_text.starts_with(STARTER_YAML.lines().next().unwrap()));
    assert!(branch_text.contains("  requests:\n    status: deprecated\n"));
    let mrs = gl.merge_requests();
    assert_eq!(mrs.len(), 1);
    assert_eq!(mrs[0].target_branch, "main");
    assert_eq!(
        mrs[0].title,
        "lex-align: classify `Flask_Login` as approved"
    );
    assert!(mrs[0]
        .description
        .contains("```text\nneeded for the admin UI\n```"));
    assert!(mrs[0].remove_source_branch);

    // 2. A second package: its own branch and merge request.
    let v = propose(rule("numpy", "preferred"), "");
    assert_eq!(v["result"]["status"], "opened", "{v}");
    assert_eq!(v["result"]["branch"], "lex-align/approval/numpy");
    assert_eq!(gl.merge_requests().len(), 2);
    assert_eq!(
        status_on(&gl, "lex-align/approval/numpy", "flask-login"),
        None
    );

    // 3. The first package again, another status: a commit on its branch and
    //    a comment on its open merge request. Requester text cannot ping.
    let mut changed = rule("flask-login", "deprecated");
    changed["replacement"] = json!("flask-security");
    let v = propose(changed.clone(), "@all please look ``` at !2");
    let r = &v["result"];
    assert_eq!(r["status"], "amended", "{v}");
    assert!(r["url"].as_str().unwrap().ends_with("/-/merge_requests/1"));
    assert!(
        r["detail"]
            .as_str()
            .unwrap()
            .contains("commented on merge request !1"),
        "{v}"
    );
    assert_eq!(gl.commits().len(), 3);
    assert_eq!(r["commit_sha"], gl.commits()[2].id.as_str());
    assert_eq!(
        status_on(&gl, "lex-align/approval/flask-login", "flask-login").as_deref(),
        Some("deprecated")
    );
    let mr1 = &gl.merge_requests()[0];
    assert_eq!(mr1.notes.len(), 1);
    assert!(
        mr1.notes[0].contains("````text\n@all please look ``` at !2\n````"),
        "{}",
        mr1.notes[0]
    );
    assert_eq!(gl.merge_requests().len(), 2);

    // 4. The same request once more: nothing to commit, said so.
    let v = propose(changed.clone(), "again");
    let r = &v["result"];
    assert_eq!(r["status"], "amended", "{v}");
    assert!(r["commit_sha"].is_null());
    assert!(
        r["detail"].as_str().unwrap().contains("no change pushed"),
        "{v}"
    );
    assert_eq!(gl.commits().len(), 3);
    assert_eq!(gl.merge_requests()[0].notes.len(), 1);

    // 5. Its merge request closed by a reviewer, the branch still there:
    //    a new merge request for the same branch.
    gl.close_merge_request(1);
    let v = propose(changed, "reopen please");
    assert_eq!(v["result"]["status"], "opened", "{v}");
    assert!(v["result"]["url"]
        .as_str()
        .unwrap()
        .ends_with("/-/merge_requests/3"));
    assert_eq!(gl.commits().len(), 3);

    // 6. A rule the default branch already has: nothing to propose.
    let mut same = rule("httpx", "preferred");
    same["reason"] = json!("Standard async HTTP client.");
    let before = gl.requests();
    let v = propose(same, "");
    assert_eq!(v["result"]["status"], "applied", "{v}");
    assert!(!gl
        .branches()
        .contains(&"lex-align/approval/httpx".to_string()));
    assert_eq!(
        gl.requests() - before,
        2,
        "branch lookup and file read only"
    );

    // 7. An invalid rule never reaches GitLab.
    let before = gl.requests();
    let v = propose(rule("bad name!", "approved"), "");
    assert_eq!(v["error"]["status"], 422, "{v}");
    let v = propose(rule("six", "blessed"), "");
    assert_eq!(v["error"]["status"], 422, "{v}");
    assert_eq!(gl.requests(), before);

    // 8. GitLab errors, with a server that echoes the request (token header
    //    included) into every error: 502 with a useful detail, no token.
    gl.set_echo_errors(true);
    for (method, route, status, expect) in [
        ("GET", "/repository/branches/", 401, "refused the token"),
        ("GET", "/raw", 500, "HTTP 500"),
        ("POST", "/repository/commits", 400, "HTTP 400"),
        ("GET", "/merge_requests", 503, "HTTP 503"),
        ("POST", "/merge_requests", 403, "forbade"),
    ] {
        gl.clear_failures();
        gl.fail(method, route, status);
        let v = propose(rule("pandas", "approved"), "x");
        assert_eq!(v["error"]["status"], 502, "{method} {route}: {v}");
        let detail = v["error"]["detail"].as_str().unwrap();
        assert!(detail.contains(expect), "{method} {route}: {detail}");
        assert!(
            detail.contains("[redacted]") || !detail.contains("private-token"),
            "{detail}"
        );
    }
    gl.clear_failures();
    // A note that fails after the commit: still a 502, still no token.
    gl.fail("POST", "/notes", 500);
    let mut again = rule("numpy", "approved");
    again["min_version"] = json!("1.26");
    let v = propose(again, "x");
    assert_eq!(v["error"]["status"], 502, "{v}");
    gl.clear_failures();
    gl.set_echo_errors(false);

    // 9. Healthy again afterwards.
    let v = propose(rule("pandas", "approved"), "");
    assert_eq!(v["result"]["status"], "opened", "{v}");
}
