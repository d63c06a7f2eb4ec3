//! The proposer through its Rust API (several configurations in one
//! process), against a fake GitLab on 127.0.0.1.

use lex_align_fakes::FakeGitLab;
use lex_align_plugin_gitlab::GitLabProposer;
use lex_align_plugin_sdk::{ProposalContext, ProposeRequest, ProposedRule, ProposerPlugin};
use serde_json::json;

const TOKEN: &str = "glpat-another-SECRET-99aa77";

fn request(name: &str, status: &str) -> ProposeRequest {
    ProposeRequest {
        rule: ProposedRule {
            name: name.into(),
            status: status.into(),
            reason: Some("why not".into()),
            replacement: None,
            min_version: None,
            max_version: None,
            expires: Some("2030-01-31".into()),
            owner: Some("team-data".into()),
        },
        context: ProposalContext {
            source: "operator".into(),
            project: "p".into(),
            requester: "bob".into(),
            rationale: None,
            agent_model: None,
            agent_version: None,
        },
    }
}

#[test]
fn a_missing_registry_file_is_created_on_the_branch() {
    // Numeric project id, a file in a subdirectory, another default branch,
    // the token from a named environment variable.
    let gl = FakeGitLab::start(TOKEN, "g/sub/proj", "trunk", &[("README.md", "hi")]);
    let p = GitLabProposer::from_config(
        &json!({"api_url": gl.api_url(), "project": 42, "token_env": "POLICY_BOT_TOKEN",
                "file_path": "policy/registry.yml", "default_branch": "trunk"}),
        |var| (var == "POLICY_BOT_TOKEN").then(|| TOKEN.to_string()),
    )
    .unwrap();
    let r = p.propose(&request("Pandas", "approved")).unwrap();
    assert_eq!(r.status, "opened", "{r:?}");
    let text = gl
        .file("lex-align/approval/pandas", "policy/registry.yml")
        .unwrap();
    let reg = lex_align_engine::registry::Registry::from_yaml(&text).unwrap();
    let rule = reg.rule("pandas").unwrap();
    assert_eq!(rule.owner.as_deref(), Some("team-data"));
    assert_eq!(rule.expires_text().as_deref(), Some("2030-01-31"));
    assert_eq!(gl.merge_requests()[0].target_branch, "trunk");
    // Without author settings, GitLab's token user is the author.
    assert_eq!(gl.commits()[0].author_name, None);
}

#[test]
fn a_wrong_token_is_a_502_naming_the_401_without_the_token() {
    let gl = FakeGitLab::start(TOKEN, "g/p", "main", &[]);
    let wrong = "glpat-WRONG-token-123456";
    let p = GitLabProposer::from_config(
        &json!({"api_url": gl.api_url(), "project": "g/p", "token": wrong}),
        |_| None,
    )
    .unwrap();
    gl.set_echo_errors(true);
    let e = p.propose(&request("six", "approved")).unwrap_err();
    assert_eq!(e.status, 502);
    assert!(e.detail.contains("HTTP 401"), "{}", e.detail);
    assert!(!e.detail.contains(wrong), "{}", e.detail);
    assert!(gl.branches() == vec!["main".to_string()]);
}

#[test]
fn an_unknown_project_and_an_unreachable_server_are_502() {
    let gl = FakeGitLab::start(TOKEN, "g/p", "main", &[]);
    let p = GitLabProposer::from_config(
        &json!({"api_url": gl.api_url(), "project": "g/other", "token": TOKEN}),
        |_| None,
    )
    .unwrap();
    let e = p.propose(&request("six", "approved")).unwrap_err();
    assert_eq!(e.status, 502);
    assert!(e.detail.contains("404 Project Not Found"), "{}", e.detail);

    // A port nothing listens on.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let p = GitLabProposer::from_config(
        &json!({"api_url": format!("http://127.0.0.1:{port}/api/v4"), "project": 1, "token": TOKEN}),
        |_| None,
    )
    .unwrap();
    let e = p.propose(&request("six", "approved")).unwrap_err();
    assert_eq!(e.status, 502);
    assert!(e.detail.contains("cannot reach GitLab"), "{}", e.detail);
    assert!(!e.detail.contains(TOKEN));
}

#[test]
fn configure_refuses_a_missing_token_host_or_project() {
    for (config, expect) in [
        (json!({"project": 1, "token": TOKEN}), "api_url"),
        (
            json!({"api_url": "https://gitlab.example/api/v4", "token": TOKEN}),
            "project",
        ),
        (
            json!({"api_url": "https://gitlab.example/api/v4", "project": 1}),
            "GITLAB_TOKEN",
        ),
        (
            json!({"api_url": "http://gitlab.example/api/v4", "project": 1, "token": TOKEN}),
            "https",
        ),
    ] {
        let e = GitLabProposer::from_config(&config, |_| None)
            .err()
            .unwrap();
        assert!(e.contains(expect), "{config}: {e}");
        assert!(!e.contains(TOKEN));
    }
}
