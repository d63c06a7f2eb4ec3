//! LSP served by the daemon over the real transport: a TCP connection to the
//! running app, the `Upgrade: lex-align-lsp` handshake, then JSON-RPC. Policy
//! comes from the live registry file, the fake index and the fake OSV server
//! fed with the PyPA snapshot; verdicts land in the real audit log.

mod common;
mod lsp_support;

use std::time::Duration;

use common::{start_with, Options, TestServer};
use lsp_support::{
    apply_edit, diag, file_uri, has_code, position_of, summary, upgrade, LspClient, ERROR,
};
use serde_json::{json, Value};

/// The shared registry as the LSP tests use it: stricter CVE threshold,
/// no `cryptography` rule, a preferred `click`.
static REGISTRY: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    lex_align_fakes::fixtures::registry()
        .version("1")
        .policy("auto_approve_licenses", "[MIT, Apache-2.0, BSD-3-Clause]")
        .policy("hard_ban_licenses", "[GPL-3.0, AGPL-3.0]")
        .policy("cve_threshold", "0.7")
        .without("cryptography")
        .package("click", "status: preferred\nreason: Our CLI toolkit.")
        .yaml()
});

const PYPROJECT: &str = lex_align_fakes::pyproject!("svc"; "pyqt5>=5.15", "requests>=2.28", "click>=8.1", "no-such-package-lexalign>=1.0");

async fn start() -> TestServer {
    start_with(Options {
        registry: Some(REGISTRY.as_str()),
        watch: true,
        // The watcher is the trigger under test; the poller is only a
        // safety net for file systems without change notification.
        poll: Some(Duration::from_secs(2)),
        ..Options::default()
    })
    .await
}

async fn session(server: &TestServer, project: Option<&str>) -> LspClient {
    session_with(server, project, json!({ "debounceMs": 50 })).await
}

async fn session_with(server: &TestServer, project: Option<&str>, init: Value) -> LspClient {
    let (stream, head) = upgrade(&server.base, project).await;
    assert!(
        head.starts_with("HTTP/1.1 101 "),
        "101 Switching Protocols expected: {head}"
    );
    let lower = head.to_ascii_lowercase();
    assert!(lower.contains("\r\nupgrade: lex-align-lsp\r\n"), "{head}");
    assert!(lower.contains("\r\nconnection: upgrade\r\n"), "{head}");
    let (read, write) = stream.into_split();
    let mut client = LspClient::new(read, write);
    let init = client.initialize_with(init).await;
    assert_eq!(init["capabilities"]["positionEncoding"], "utf-16");
    client
}

fn audit(server: &TestServer, sql: &str) -> Vec<Vec<String>> {
    // Rows reach the tables from the inbox a few milliseconds after the answer.
    server.handle.store().flush().unwrap();
    let db = rusqlite::Connection::open(&server.handle.state.config.database_path).unwrap();
    let mut stmt = db.prepare(sql).unwrap();
    let n = stmt.column_count();
    stmt.query_map([], |row| {
        (0..n)
            .map(|i| {
                row.get::<_, Option<String>>(i)
                    .map(Option::unwrap_or_default)
            })
            .collect::<Result<Vec<_>, _>>()
    })
    .unwrap()
    .map(Result::unwrap)
    .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn diagnostics_fix_and_registry_reload_over_the_daemon_transport() {
    let server = start().await;
    let mut client = session(&server, Some("lsp-proj")).await;
    let dir = tempfile::tempdir().unwrap();
    let uri = file_uri(&dir.path().join("pyproject.toml"));

    client
        .notify(
            "textDocument/didOpen",
            json!({"textDocument": {"uri": uri, "languageId": "toml", "version": 1, "text": PYPROJECT}}),
        )
        .await;
    // `not-found` needs the index: its arrival means the evaluation ran.
    let p = client
        .diagnostics_until(&uri, |p| has_code(p, "not-found"))
        .await
        .pop()
        .expect("a publish");
    assert_eq!(p["version"], 1);
    assert_eq!(
        summary(&p),
        vec![
            diag(PYPROJECT, "pyqt5>=5.15", "banned", ERROR),
            diag(PYPROJECT, "requests>=2.28", "deprecated", ERROR),
            diag(
                PYPROJECT,
                "no-such-package-lexalign>=1.0",
                "not-found",
                ERROR
            ),
        ],
        "{p}"
    );
    let banned = p["diagnostics"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["code"] == "banned")
        .unwrap();
    assert_eq!(banned["source"], "lex-align");
    // The code's documentation is served by the daemon itself, at the
    // address the editor reached it by.
    let href = banned["codeDescription"]["href"].as_str().unwrap();
    assert_eq!(href, format!("{}/docs/diagnostics#banned", server.base));
    let page = server
        .client
        .get(href.split('#').next().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(page.status().as_u16(), 200);
    assert_eq!(page.headers()["content-type"], "text/html; charset=utf-8");
    let html = page.text().await.unwrap();
    for code in lex_align_lsp::CODES {
        assert!(
            html.contains(&format!("<h2 id=\"{0}\">{0}</h2>", code.as_str())),
            "an anchor for {} in the page",
            code.as_str()
        );
    }
    assert!(
        html.contains("The registry bans the package (<code>status: banned</code>)."),
        "the section text, rendered"
    );
    assert!(
        banned["message"]
            .as_str()
            .unwrap()
            .contains("GPL-licensed; no commercial license held."),
        "{banned}"
    );

    // The session's evaluations are in the audit log, as source `lsp`, under
    // the project the connection named.
    let rows = audit(
        &server,
        "SELECT canonical, verdict, denial_category FROM audit_log \
         WHERE source = 'lsp' AND project = 'lsp-proj' ORDER BY canonical",
    );
    for (name, verdict) in [
        ("click", "ALLOWED"),
        ("no-such-package-lexalign", "DENIED"),
        ("pyqt5", "DENIED"),
        ("requests", "DENIED"),
    ] {
        assert!(
            rows.iter().any(|r| r[0] == name && r[1] == verdict),
            "{name} {verdict} in {rows:?}"
        );
    }

    // Hover on the allowed dependency: the daemon's verdict and license.
    let hover = client
        .request(
            "textDocument/hover",
            json!({"textDocument": {"uri": uri}, "position": position_of(PYPROJECT, "click")}),
        )
        .await;
    let md = hover["contents"]["value"].as_str().unwrap();
    assert!(md.contains("**ALLOWED**"), "{md}");
    assert!(md.contains("BSD\\-3\\-Clause"), "{md}");

    // The registry's replacement, applied as the editor would, clears the
    // deprecated diagnostic.
    let actions = client
        .request(
            "textDocument/codeAction",
            json!({
                "textDocument": {"uri": uri},
                "range": {"start": position_of(PYPROJECT, "requests"), "end": position_of(PYPROJECT, "requests")},
                "context": {"diagnostics": [], "only": ["quickfix"]}
            }),
        )
        .await;
    let replace = actions
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["title"].as_str().unwrap().starts_with("Replace requests"))
        .unwrap_or_else(|| panic!("a replacement action in {actions}"));
    let text2 = apply_edit(PYPROJECT, &replace["edit"], &uri);
    // The fake index's latest final httpx release is 0.28.1.
    assert_eq!(
        text2,
        PYPROJECT.replace("\"requests>=2.28\"", "\"httpx>=0.28.1\"")
    );
    client
        .notify(
            "textDocument/didChange",
            json!({"textDocument": {"uri": uri, "version": 2}, "contentChanges": [{"text": text2}]}),
        )
        .await;
    let p = client
        .diagnostics_until(&uri, |p| {
            p["version"] == 2 && !has_code(p, "deprecated") && has_code(p, "not-found")
        })
        .await
        .pop()
        .expect("a publish");
    assert_eq!(
        summary(&p),
        vec![
            diag(&text2, "pyqt5>=5.15", "banned", ERROR),
            diag(&text2, "no-such-package-lexalign>=1.0", "not-found", ERROR),
        ]
    );

    // An operator bans click in registry.yml: the daemon reloads it and the
    // open document is re-judged without being reopened.
    let banned_click = REGISTRY.replace(
        "  click:\n    status: preferred\n    reason: Our CLI toolkit.",
        "  click:\n    status: banned\n    reason: Replaced by typer across the org.",
    );
    assert_ne!(banned_click, *REGISTRY);
    std::fs::write(&server.registry_path, &banned_click).unwrap();
    let p = client
        .diagnostics_until(&uri, |p| has_code(p, "banned") && summary(p).len() == 3)
        .await
        .pop()
        .expect("a publish");
    assert_eq!(p["version"], 2, "the same document version, re-judged");
    assert_eq!(
        summary(&p),
        vec![
            diag(&text2, "pyqt5>=5.15", "banned", ERROR),
            diag(&text2, "click>=8.1", "banned", ERROR),
            diag(&text2, "no-such-package-lexalign>=1.0", "not-found", ERROR),
        ]
    );
    let click = p["diagnostics"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["message"].as_str().unwrap().contains("typer"));
    assert!(click.is_some(), "the new reason is shown: {p}");

    client.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approval_requests_take_the_api_path_and_its_refusals() {
    let server = start().await;
    let mut client = session(&server, Some("lsp-proj")).await;

    // Banned: refused with the 409's reason, nothing stored.
    let resp = client
        .request_raw(
            "workspace/executeCommand",
            json!({
                "command": "lexAlign.requestApproval",
                "arguments": [{"package": "pyqt5", "rationale": "Need Qt widgets", "project": "lsp-proj"}]
            }),
        )
        .await;
    let message = resp["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("GPL-licensed; no commercial license held."),
        "{resp}"
    );
    let shown = client.notification("window/showMessage").await;
    assert_eq!(shown["type"], 1, "shown as an error: {shown}");

    // A package the policy does not deny: recorded, and said so.
    let result = client
        .request(
            "workspace/executeCommand",
            json!({
                "command": "lexAlign.requestApproval",
                "arguments": [{"package": "six", "rationale": "py2 shims in a legacy module", "project": "lsp-proj"}]
            }),
        )
        .await;
    let text: &str = result.as_str().unwrap();
    assert!(
        text.starts_with("Approval request for six recorded"),
        "{text}"
    );
    let rows = audit(
        &server,
        "SELECT package, project, rationale FROM approval_requests ORDER BY package",
    );
    assert_eq!(
        rows,
        vec![vec![
            "six".to_string(),
            "lsp-proj".to_string(),
            "py2 shims in a legacy module".to_string()
        ]]
    );
    client.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_lsp_route_requires_the_upgrade() {
    let server = start().await;
    let r = server
        .client
        .get(server.url("/api/v1/lsp"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 426);
    assert_eq!(r.headers()["upgrade"], "lex-align-lsp");
    let body: Value = r.json().await.unwrap();
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("Upgrade: lex-align-lsp"),
        "{body}"
    );

    // A project name over the header limit is refused before any session.
    let long = "p".repeat(201);
    let (mut stream, _) = {
        use tokio::io::AsyncWriteExt;
        let authority = server.base.strip_prefix("http://").unwrap();
        let mut s = tokio::net::TcpStream::connect(authority).await.unwrap();
        s.write_all(
            format!(
                "GET /api/v1/lsp HTTP/1.1\r\nHost: {authority}\r\nConnection: Upgrade\r\n\
                 Upgrade: lex-align-lsp\r\nX-LexAlign-Project: {long}\r\n\r\n"
            )
            .as_bytes(),
        )
        .await
        .unwrap();
        (s, ())
    };
    let mut head = vec![0u8; 64];
    let n = {
        use tokio::io::AsyncReadExt;
        tokio::time::timeout(lsp_support::WAIT, stream.read(&mut head))
            .await
            .unwrap()
            .unwrap()
    };
    let head = String::from_utf8_lossy(&head[..n]);
    assert!(head.starts_with("HTTP/1.1 422 "), "{head}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operators_propose_rules_through_the_proposals_route() {
    let server = start().await;
    let mut client = session_with(
        &server,
        Some("lsp-proj"),
        json!({ "debounceMs": 50, "operator": true, "serverUrl": server.base }),
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let uri = file_uri(&dir.path().join("pyproject.toml"));
    client
        .notify(
            "textDocument/didOpen",
            json!({"textDocument": {"uri": uri, "languageId": "toml", "version": 1, "text": PYPROJECT}}),
        )
        .await;
    client
        .diagnostics_until(&uri, |p| has_code(p, "not-found"))
        .await
        .pop()
        .expect("a publish");

    // click is preferred and clean: it still gets the operator's proposals.
    let actions = client
        .request(
            "textDocument/codeAction",
            json!({
                "textDocument": {"uri": uri},
                "range": {"start": position_of(PYPROJECT, "click"), "end": position_of(PYPROJECT, "click")},
                "context": {"diagnostics": [], "only": ["refactor"]}
            }),
        )
        .await;
    let titles: Vec<&str> = actions
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["title"].as_str().unwrap())
        .collect();
    assert_eq!(
        titles,
        vec![
            "lex-align: propose registry rule for click (approved)",
            "lex-align: propose registry rule for click (banned)",
        ]
    );
    let command = &actions[1]["command"];
    let result = client
        .request(
            "workspace/executeCommand",
            json!({"command": command["command"], "arguments": command["arguments"]}),
        )
        .await;
    let text = result.as_str().unwrap();
    // The registry file is writable, so the local_file proposer applies it.
    assert!(
        text.starts_with("Registry proposal click → banned: applied (local_file)."),
        "{text}"
    );
    let shown = client.notification("window/showMessage").await;
    assert_eq!(shown["message"], text);

    let yaml = std::fs::read_to_string(&server.registry_path).unwrap();
    // The edit keeps the registry's comments (the shared fixture's first line).
    assert!(
        yaml.starts_with("# Team registry: edited by humans, comments matter.\n"),
        "{yaml}"
    );
    let (_, registry) = server.get_bare("/api/v1/registry").await;
    assert_eq!(
        registry["packages"]["click"]["status"], "banned",
        "{registry}"
    );
    assert_eq!(
        registry["packages"]["click"]["reason"],
        "Proposed from the editor (project lsp-proj)."
    );

    // The proposer's reload re-judges the open document.
    let p = client
        .diagnostics_until(&uri, |p| {
            summary(p).contains(&diag(PYPROJECT, "click>=8.1", "banned", ERROR))
        })
        .await
        .pop()
        .expect("a publish");
    assert_eq!(p["version"], 1);

    // The route's validation is the command's: a version-constrained rule
    // without bounds is refused, and the registry is unchanged.
    let resp = client
        .request_raw(
            "workspace/executeCommand",
            json!({"command": "lexAlign.proposeRule", "arguments": [{"name": "httpx", "status": "version-constrained", "project": "lsp-proj"}]}),
        )
        .await;
    let message = resp["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.starts_with("registry proposal for httpx (version-constrained) failed: "),
        "{resp}"
    );
    let shown = client.notification("window/showMessage").await;
    assert_eq!(shown["type"], 1, "shown as an error: {shown}");
    let (_, registry) = server.get_bare("/api/v1/registry").await;
    assert_eq!(registry["packages"]["httpx"]["status"], "preferred");
    client.shutdown().await;
}
