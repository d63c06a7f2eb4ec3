//! LSP end to end: a protocol-level client over a real byte stream, the
//! real server, and a policy backend running the real engine on PyPA
//! advisory data.

mod support;

use std::path::Path;

use serde_json::{json, Value};
use support::backend::{EngineBackend, REGISTRY};
use support::client::{apply_edit, position, summary, TestClient};

const ERROR: u64 = 1;
const WARNING: u64 = 2;
const HINT: u64 = 4;

const PYPROJECT: &str = lex_align_fakes::pyproject!("demo"; "pyqt5>=5.15", "requests[socks]>=2.28 ; python_version >= '3.9'", "gitpython==3.1.29", "httpx>=0.27");

fn file_uri(path: &Path) -> String {
    format!("file://{}", path.display())
}

/// (start line, start col, end line, end col) of `needle` in `text`, UTF-16.
fn span_of(text: &str, needle: &str) -> (u64, u64, u64, u64) {
    let start = text
        .find(needle)
        .unwrap_or_else(|| panic!("{needle} in text"));
    let s = position(text, start, false);
    let e = position(text, start + needle.len(), false);
    (
        s["line"].as_u64().unwrap(),
        s["character"].as_u64().unwrap(),
        e["line"].as_u64().unwrap(),
        e["character"].as_u64().unwrap(),
    )
}

fn diag(
    code: &str,
    severity: u64,
    span: (u64, u64, u64, u64),
) -> (String, u64, u64, u64, u64, u64) {
    (code.to_string(), severity, span.0, span.1, span.2, span.3)
}

fn has_code(p: &Value, code: &str) -> bool {
    p["diagnostics"]
        .as_array()
        .unwrap()
        .iter()
        .any(|d| d["code"] == code)
}

async fn open(client: &mut TestClient, uri: &str, text: &str, version: i64) {
    client
        .notify("textDocument/didOpen", json!({"textDocument": {"uri": uri, "languageId": "toml", "version": version, "text": text}}))
        .await;
}

async fn change_full(client: &mut TestClient, uri: &str, version: i64, text: &str) {
    client
        .notify("textDocument/didChange", json!({"textDocument": {"uri": uri, "version": version}, "contentChanges": [{"text": text}]}))
        .await;
}

/// The quick fixes offered at the start of `span`.
async fn quickfixes(client: &mut TestClient, uri: &str, span: (u64, u64, u64, u64)) -> Value {
    let at = json!({"line": span.0, "character": span.1});
    client
        .request(
            "textDocument/codeAction",
            json!({
                "textDocument": {"uri": uri},
                "range": {"start": at, "end": at},
                "context": {"diagnostics": [], "only": ["quickfix"]}
            }),
        )
        .await
}

/// The first action whose title starts with `prefix`.
fn action_starting<'a>(actions: &'a Value, prefix: &str) -> &'a Value {
    actions
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["title"].as_str().unwrap().starts_with(prefix))
        .unwrap_or_else(|| panic!("an action titled {prefix:?}… in {actions}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn diagnostics_hover_and_fixes_on_a_pyproject() {
    let dir = tempfile::tempdir().unwrap();
    let uri = file_uri(&dir.path().join("pyproject.toml"));
    let backend = EngineBackend::new();
    let (mut client, init) = TestClient::start(backend.clone(), false).await;
    assert_eq!(init["capabilities"]["positionEncoding"], "utf-16");
    assert_eq!(
        init["capabilities"]["textDocumentSync"], 2,
        "incremental sync"
    );

    open(&mut client, &uri, PYPROJECT, 1).await;
    let publishes = client
        .diagnostics_until(&uri, |p| has_code(p, "vulnerable"))
        .await;

    // Registry-only diagnostics come first, before any evaluation.
    let first = &publishes[0];
    assert_eq!(first["version"], 1);
    assert_eq!(
        summary(first),
        vec![
            diag("banned", ERROR, span_of(PYPROJECT, "pyqt5>=5.15")),
            diag(
                "deprecated",
                ERROR,
                span_of(PYPROJECT, "requests[socks]>=2.28 ; python_version >= '3.9'")
            ),
        ]
    );
    let last = publishes.last().unwrap();
    assert_eq!(last["version"], 1);
    assert_eq!(
        summary(last),
        vec![
            diag("banned", ERROR, span_of(PYPROJECT, "pyqt5>=5.15")),
            diag(
                "deprecated",
                ERROR,
                span_of(PYPROJECT, "requests[socks]>=2.28 ; python_version >= '3.9'")
            ),
            diag("vulnerable", ERROR, span_of(PYPROJECT, "gitpython==3.1.29")),
        ]
    );
    let banned = last["diagnostics"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["code"] == "banned")
        .unwrap();
    assert_eq!(banned["source"], "lex-align");
    assert_eq!(
        banned["codeDescription"]["href"],
        "file:///docs/diagnostics.md#banned"
    );
    assert!(
        banned["message"]
            .as_str()
            .unwrap()
            .contains("GPL-licensed; no commercial license held."),
        "{banned}"
    );

    // Hover: verdict, advisories with ids, scores and fixed versions, escaped.
    let g = PYPROJECT.find("gitpython").unwrap() + 3;
    let hover = client
        .request(
            "textDocument/hover",
            json!({"textDocument": {"uri": uri}, "position": position(PYPROJECT, g, false)}),
        )
        .await;
    let md = hover["contents"]["value"].as_str().unwrap();
    assert_eq!(hover["contents"]["kind"], "markdown");
    assert!(md.contains("**DENIED**"), "{md}");
    assert!(
        md.contains("PYSEC\\-2024\\-4"),
        "advisory id, escaped: {md}"
    );
    assert!(md.contains("CVE\\-2024\\-22190"), "alias: {md}");
    assert!(md.contains("7\\.8"), "score: {md}");
    assert!(md.contains("first safe version: 3\\.1\\.41"), "{md}");
    assert!(md.contains("license: BSD\\-3\\-Clause"), "{md}");

    // Quick fix on the deprecated dependency: the table already declares
    // the registry's replacement, so its line goes and the declared httpx
    // keeps the stricter specifier (the replacement's version, in the
    // replaced line's style).
    let actions = quickfixes(&mut client, &uri, span_of(PYPROJECT, "requests[socks]")).await;
    let replace = action_starting(&actions, "Replace requests");
    assert_eq!(
        replace["title"],
        "Replace requests with httpx>=0.28.1 (merged with the declared httpx>=0.27)"
    );
    let text2 = apply_edit(PYPROJECT, &replace["edit"], &uri, false);
    assert_eq!(
        text2,
        PYPROJECT
            .replace(
                "    \"requests[socks]>=2.28 ; python_version >= '3.9'\",\n",
                ""
            )
            .replace("\"httpx>=0.27\"", "\"httpx>=0.28.1\"")
    );
    change_full(&mut client, &uri, 2, &text2).await;
    let publishes = client
        .diagnostics_until(&uri, |p| {
            p["version"] == 2 && !has_code(p, "deprecated") && has_code(p, "vulnerable")
        })
        .await;
    assert!(publishes.iter().all(|p| p["version"] == 2));
    assert_eq!(
        summary(publishes.last().unwrap()),
        vec![
            diag("banned", ERROR, span_of(&text2, "pyqt5>=5.15")),
            diag("vulnerable", ERROR, span_of(&text2, "gitpython==3.1.29"))
        ]
    );

    // fixAll moves the vulnerable pin to the first safe version.
    let actions = client
        .request(
            "textDocument/codeAction",
            json!({
                "textDocument": {"uri": uri},
                "range": {"start": {"line": 0, "character": 0}, "end": {"line": 0, "character": 0}},
                "context": {"diagnostics": [], "only": ["source.fixAll"]}
            }),
        )
        .await;
    let fix_all = &actions[0];
    assert_eq!(fix_all["kind"], "source.fixAll.lexAlign");
    let text3 = apply_edit(&text2, &fix_all["edit"], &uri, false);
    assert_eq!(
        text3,
        text2.replace("gitpython==3.1.29", "gitpython==3.1.41")
    );
    change_full(&mut client, &uri, 3, &text3).await;
    let publishes = client
        .diagnostics_until(&uri, |p| p["version"] == 3 && !has_code(p, "vulnerable"))
        .await;
    assert_eq!(
        summary(publishes.last().unwrap()),
        vec![diag("banned", ERROR, span_of(&text3, "pyqt5>=5.15"))]
    );

    client
        .notify(
            "textDocument/didClose",
            json!({"textDocument": {"uri": uri}}),
        )
        .await;
    let closed = client.notification("textDocument/publishDiagnostics").await;
    assert_eq!(closed["diagnostics"], json!([]));
    client.shutdown().await;
}

/// The "Replace" quick fix on `package` in `text`: (title, resulting text).
async fn replace_action(
    client: &mut TestClient,
    uri: &str,
    text: &str,
    package: &str,
) -> (String, String) {
    let actions = quickfixes(client, uri, span_of(text, package)).await;
    let action = action_starting(&actions, "Replace ");
    (
        action["title"].as_str().unwrap().to_string(),
        apply_edit(text, &action["edit"], uri, false),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replacement_the_table_declares_leaves_one_entry() {
    let dir = tempfile::tempdir().unwrap();
    let (mut client, _) = TestClient::start(EngineBackend::new(), false).await;

    // Poetry: `^2.31` is a lower bound, so the suggestion is >=0.28.1,
    // which `^0.27` excludes; the registry's version wins, extras stay.
    let uri = file_uri(&dir.path().join("pyproject.toml"));
    let poetry = "[tool.poetry.dependencies]\npython = \"^3.11\"\nrequests = \"^2.31\"  # legacy\nhttpx = { version = \"^0.27\", extras = [\"http2\"] }\n";
    open(&mut client, &uri, poetry, 1).await;
    client
        .diagnostics_until(&uri, |p| has_code(p, "deprecated"))
        .await;
    let (title, text) = replace_action(&mut client, &uri, poetry, "requests").await;
    assert_eq!(
        title,
        "Replace requests with httpx[http2]>=0.28.1 (the declared httpx[http2]>=0.27,<0.28 conflicts with the registry's version; the registry's wins)"
    );
    assert_eq!(
        text,
        "[tool.poetry.dependencies]\npython = \"^3.11\"\nhttpx = { version = \">=0.28.1\", extras = [\"http2\"] }\n"
    );

    // requirements.txt: the declared pin is the suggestion already.
    let uri = file_uri(&dir.path().join("requirements.txt"));
    let reqs = "requests==2.31.0  # legacy\nHTTPX==0.28.1\nrich\n";
    open(&mut client, &uri, reqs, 1).await;
    client
        .diagnostics_until(&uri, |p| has_code(p, "deprecated"))
        .await;
    let (title, text) = replace_action(&mut client, &uri, reqs, "requests").await;
    assert_eq!(
        title,
        "Replace requests with HTTPX==0.28.1 (already declared; one entry kept)"
    );
    assert_eq!(text, "HTTPX==0.28.1\nrich\n");
    client.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn incremental_changes_are_applied_in_order_with_utf8_positions() {
    let dir = tempfile::tempdir().unwrap();
    let uri = file_uri(&dir.path().join("pyproject.toml"));
    let text = "[project]\nname = \"démo\"\ndependencies = [\"rich>=13\", \"pyqt5; platform_release == 'ünï'\"]\n";
    let (mut client, init) = TestClient::start(EngineBackend::new(), true).await;
    assert_eq!(init["capabilities"]["positionEncoding"], "utf-8");
    open(&mut client, &uri, text, 1).await;
    let publishes = client
        .diagnostics_until(&uri, |p| has_code(p, "needs-rationale"))
        .await;
    let req = "pyqt5; platform_release == 'ünï'";
    let start = text.find(req).unwrap();
    let (s, e) = (
        position(text, start, true),
        position(text, start + req.len(), true),
    );
    let rich = text.find("rich>=13").unwrap();
    let (rs, re) = (position(text, rich, true), position(text, rich + 8, true));
    let col = |v: &Value| v["character"].as_u64().unwrap();
    assert_eq!(
        summary(publishes.last().unwrap()),
        vec![
            diag("banned", ERROR, (2, col(&s), 2, col(&e))),
            diag("needs-rationale", HINT, (2, col(&rs), 2, col(&re)))
        ]
    );
    // UTF-8 columns: the marker's two non-ASCII letters count two bytes each.
    assert_eq!(col(&e) - col(&s), req.len() as u64);

    // Two incremental edits in a row, the second relative to the first:
    // insert a dependency, then change its specifier. Only the final text counts.
    let insert_at = position(text, text.find("\"rich").unwrap(), true);
    let edits = [
        (
            2,
            json!({"range": {"start": insert_at, "end": insert_at}, "text": "\"cryptography>=41\", "}),
        ),
        (
            3,
            json!({"range": {"start": {"line": 2, "character": col(&insert_at) + 15}, "end": {"line": 2, "character": col(&insert_at) + 17}}, "text": "40"}),
        ),
    ];
    for (version, change) in &edits {
        client
            .notify("textDocument/didChange", json!({"textDocument": {"uri": uri, "version": version}, "contentChanges": [change]}))
            .await;
    }
    let mut expected = text.to_string();
    let at = text.find("\"rich").unwrap();
    expected.insert_str(at, "\"cryptography>=40\", ");
    let publishes = client
        .diagnostics_until(&uri, |p| {
            p["version"] == 3 && has_code(p, "version-constraint") && has_code(p, "needs-rationale")
        })
        .await;
    let last = publishes.last().unwrap();
    let c = expected.find("cryptography>=40").unwrap();
    let (cs, ce) = (
        position(&expected, c, true),
        position(&expected, c + 16, true),
    );
    let vc = last["diagnostics"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["code"] == "version-constraint")
        .unwrap();
    assert_eq!(vc["range"], json!({"start": cs, "end": ce}));
    assert_eq!(vc["severity"], ERROR);

    // Tighten to the suggested requirement; the diagnostic clears.
    let actions = client
        .request(
            "textDocument/codeAction",
            json!({"textDocument": {"uri": uri}, "range": {"start": cs, "end": cs}, "context": {"diagnostics": [vc], "only": ["quickfix"]}}),
        )
        .await;
    let tighten = action_starting(&actions, "Change cryptography to");
    assert_eq!(tighten["diagnostics"][0]["code"], "version-constraint");
    let fixed = apply_edit(&expected, &tighten["edit"], &uri, true);
    assert!(!fixed.contains("cryptography>=40\""), "{fixed}");
    change_full(&mut client, &uri, 4, &fixed).await;
    let publishes = client
        .diagnostics_until(&uri, |p| {
            p["version"] == 4 && has_code(p, "needs-rationale")
        })
        .await;
    assert!(
        !has_code(publishes.last().unwrap(), "version-constraint"),
        "{publishes:?}"
    );
    client.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_answer_for_an_old_version_is_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let uri = file_uri(&dir.path().join("requirements.txt"));
    let backend = EngineBackend::new();
    backend.slow.lock().unwrap().insert("slowpkg".to_string());
    let (mut client, _) = TestClient::start(backend.clone(), false).await;

    open(&mut client, &uri, "rich>=13\n", 1).await;
    client
        .diagnostics_until(&uri, |p| has_code(p, "needs-rationale"))
        .await;

    // Version 2 asks about a package whose evaluation blocks.
    change_full(&mut client, &uri, 2, "rich>=13\nslowpkg\n").await;
    client.diagnostics_until(&uri, |p| p["version"] == 2).await;
    while !backend
        .calls
        .lock()
        .unwrap()
        .iter()
        .any(|c| c.iter().any(|i| i.requirement == "slowpkg"))
    {
        tokio::task::yield_now().await;
    }
    // Version 3 replaces it before the answer arrives.
    change_full(&mut client, &uri, 3, "pyqt5\nrich>=13\n").await;
    let v3 = client
        .diagnostics_until(&uri, |p| {
            p["version"] == 3 && has_code(p, "needs-rationale") && has_code(p, "banned")
        })
        .await;
    assert!(v3.iter().all(|p| p["version"] == 3));

    // Now the stale answer lands; a later edit proves the server moved on
    // without publishing it.
    backend.gate.add_permits(1);
    change_full(&mut client, &uri, 4, "pyqt5\nrich>=13\nleftpad\n").await;
    let rest = client
        .diagnostics_until(&uri, |p| p["version"] == 4 && has_code(p, "provisional"))
        .await;
    assert!(
        rest.iter().all(|p| p["version"] == 4),
        "a publish for an old version arrived: {rest:?}"
    );
    let last = rest.last().unwrap();
    assert_eq!(
        summary(last),
        vec![
            diag("banned", ERROR, (0, 0, 0, 5)),
            diag("needs-rationale", HINT, (1, 0, 1, 8)),
            diag("provisional", WARNING, (2, 0, 2, 7))
        ]
    );
    client.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_registry_reload_republishes_open_documents() {
    let dir = tempfile::tempdir().unwrap();
    let uri = file_uri(&dir.path().join("pyproject.toml"));
    let backend = EngineBackend::new();
    let (mut client, _) = TestClient::start(backend.clone(), false).await;
    let text = "[project]\ndependencies = [\"httpx>=0.27\", \"rich\"]\n";
    open(&mut client, &uri, text, 7).await;
    let publishes = client
        .diagnostics_until(&uri, |p| has_code(p, "needs-rationale"))
        .await;
    assert_eq!(
        summary(publishes.last().unwrap()),
        vec![diag("needs-rationale", HINT, span_of(text, "rich"))]
    );

    backend.reload(&REGISTRY.replace(
        "httpx:\n    status: preferred\n    reason: Standard async HTTP client.",
        "httpx:\n    status: banned\n    reason: Withdrawn after review.",
    ));
    let publishes = client
        .diagnostics_until(&uri, |p| {
            has_code(p, "banned") && has_code(p, "needs-rationale")
        })
        .await;
    let last = publishes.last().unwrap();
    assert_eq!(last["version"], 7, "same document version, no reopen");
    assert_eq!(
        summary(last),
        vec![
            diag("banned", ERROR, span_of(text, "httpx>=0.27")),
            diag("needs-rationale", HINT, span_of(text, "rich"))
        ]
    );
    assert!(last["diagnostics"][0]["message"]
        .as_str()
        .unwrap()
        .contains("Withdrawn after review."));
    client.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_toml_gives_one_diagnostic_and_invalid_pep508_keeps_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let uri = file_uri(&dir.path().join("pyproject.toml"));
    let (mut client, _) = TestClient::start(EngineBackend::new(), false).await;
    open(
        &mut client,
        &uri,
        "[project\ndependencies = [\"pyqt5\"]\n",
        1,
    )
    .await;
    let p = client.notification("textDocument/publishDiagnostics").await;
    let diags = p["diagnostics"].as_array().unwrap();
    assert_eq!(diags.len(), 1, "{p}");
    assert_eq!(diags[0]["code"], "invalid-requirement");
    assert_eq!(diags[0]["severity"], ERROR);

    let text = "[project]\ndependencies = [\"requests >=\", \"pyqt5\"]\n";
    change_full(&mut client, &uri, 2, text).await;
    let publishes = client
        .diagnostics_until(&uri, |p| p["version"] == 2 && has_code(p, "banned"))
        .await;
    let last = publishes.last().unwrap();
    let codes: Vec<String> = summary(last).into_iter().map(|d| d.0).collect();
    assert_eq!(codes, vec!["banned", "invalid-requirement"]);
    let invalid = last["diagnostics"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["code"] == "invalid-requirement")
        .unwrap();
    assert_eq!(invalid["range"]["start"]["line"], 1);
    client.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transitive_lock_findings_land_on_the_direct_dependency() {
    let dir = tempfile::tempdir().unwrap();
    let text =
        "[project]\nname = \"demo\"\nversion = \"0.1.0\"\ndependencies = [\"httpx>=0.27\"]\n";
    std::fs::write(dir.path().join("pyproject.toml"), text).unwrap();
    std::fs::write(
        dir.path().join("uv.lock"),
        r#"version = 1
requires-python = ">=3.11"

[[package]]
name = "certifi"
version = "2024.7.4"
source = { registry = "http://127.0.0.1:9/simple" }

[[package]]
name = "demo"
version = "0.1.0"
source = { editable = "." }
dependencies = [
    { name = "httpx" },
]

[[package]]
name = "httpx"
version = "0.28.1"
source = { registry = "http://127.0.0.1:9/simple" }
dependencies = [
    { name = "certifi" },
    { name = "idna" },
]

[[package]]
name = "idna"
version = "3.6"
source = { registry = "http://127.0.0.1:9/simple" }
"#,
    )
    .unwrap();
    let uri = file_uri(&dir.path().join("pyproject.toml"));
    let (mut client, _) = TestClient::start(EngineBackend::new(), false).await;
    open(&mut client, &uri, text, 1).await;
    let publishes = client
        .diagnostics_until(&uri, |p| has_code(p, "vulnerable"))
        .await;
    let last = publishes.last().unwrap();
    let httpx = span_of(text, "httpx>=0.27");
    // certifi is MPL-2.0, which this registry does not approve.
    assert_eq!(
        summary(last),
        vec![
            diag("license", ERROR, httpx),
            diag("vulnerable", ERROR, httpx)
        ]
    );
    let message = |code: &str| {
        last["diagnostics"]
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["code"] == code)
            .unwrap()["message"]
            .as_str()
            .unwrap()
            .to_string()
    };
    assert!(
        message("vulnerable").starts_with("pulls in idna 3.6 (locked)"),
        "{}",
        message("vulnerable")
    );
    assert!(
        message("vulnerable").contains("First safe version: 3.7."),
        "{}",
        message("vulnerable")
    );
    assert!(
        message("license").starts_with("pulls in certifi 2024.7.4 (locked)"),
        "{}",
        message("license")
    );

    let at = position(text, text.find("httpx").unwrap(), false);
    let hover = client
        .request(
            "textDocument/hover",
            json!({"textDocument": {"uri": uri}, "position": at}),
        )
        .await;
    let md = hover["contents"]["value"].as_str().unwrap();
    assert!(md.contains("locked version: 0\\.28\\.1"), "{md}");
    assert!(md.contains("pulls in idna 3\\.6: DENIED"), "{md}");
    client.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_approval_runs_through_execute_command_and_progress_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let uri = file_uri(&dir.path().join("requirements-dev.txt"));
    let backend = EngineBackend::new();
    let (mut client, _) = TestClient::start(backend.clone(), false).await;
    let text = "leftpad==0.1.0\nrich\nhttpx\nidna==3.7\n";
    open(&mut client, &uri, text, 1).await;
    let publishes = client
        .diagnostics_until(&uri, |p| has_code(p, "provisional"))
        .await;
    assert_eq!(
        summary(publishes.last().unwrap()),
        vec![
            diag("needs-rationale", HINT, (1, 0, 1, 4)),
            diag("provisional", WARNING, (0, 0, 0, 14)),
            diag("provisional", WARNING, (3, 0, 3, 9)),
        ]
    );
    // Four dependencies ≥ the threshold of 3 set in initializationOptions.
    let kinds: Vec<&str> = client
        .seen
        .iter()
        .filter_map(|m| m["params"]["value"]["kind"].as_str())
        .collect();
    assert_eq!(kinds.first(), Some(&"begin"), "{:?}", client.seen);
    assert_eq!(kinds.last(), Some(&"end"));

    let actions = client
        .request(
            "textDocument/codeAction",
            json!({"textDocument": {"uri": uri}, "range": {"start": {"line": 0, "character": 2}, "end": {"line": 0, "character": 2}}, "context": {"diagnostics": []}}),
        )
        .await;
    let request = action_starting(&actions, "Request approval for leftpad");
    assert_eq!(request["title"], "Request approval for leftpad");
    let command = &request["command"];
    assert_eq!(command["command"], "lexAlign.requestApproval");
    let result = client
        .request(
            "workspace/executeCommand",
            json!({"command": command["command"], "arguments": command["arguments"]}),
        )
        .await;
    assert_eq!(
        result,
        "Approval request for leftpad recorded (pending review)."
    );
    let shown = client.notification("window/showMessage").await;
    assert_eq!(shown["message"], result);
    let approvals = backend.approvals.lock().unwrap().clone();
    assert_eq!(approvals.len(), 1);
    assert_eq!(approvals[0].0, "leftpad");
    assert!(approvals[0].1.contains("leftpad==0.1.0"));
    drop(approvals);
    client.shutdown().await;
}

fn titles(actions: &Value) -> Vec<String> {
    actions
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["title"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operators_propose_registry_rules_from_any_dependency() {
    let dir = tempfile::tempdir().unwrap();
    let uri = file_uri(&dir.path().join("requirements.txt"));
    let text = "leftpad==0.1.0\npyqt5\n";
    let at = |needle: &str| {
        let p = position(text, text.find(needle).unwrap(), false);
        json!({"textDocument": {"uri": uri}, "range": {"start": p, "end": p}, "context": {"diagnostics": []}})
    };

    // Without operator mode: no proposals offered, and the command refuses.
    let backend = EngineBackend::new();
    let (mut client, init) = TestClient::start(backend.clone(), false).await;
    assert!(init["capabilities"]["executeCommandProvider"]["commands"]
        .as_array()
        .unwrap()
        .contains(&json!("lexAlign.proposeRule")));
    open(&mut client, &uri, text, 1).await;
    client
        .diagnostics_until(&uri, |p| has_code(p, "provisional"))
        .await;
    let actions = client
        .request("textDocument/codeAction", at("leftpad"))
        .await;
    assert!(
        !titles(&actions).iter().any(|t| t.contains("propose")),
        "{actions}"
    );
    let refused = client
        .request_raw(
            "workspace/executeCommand",
            json!({"command": "lexAlign.proposeRule", "arguments": [{"name": "leftpad", "status": "banned"}]}),
        )
        .await;
    assert!(
        refused["error"]["message"]
            .as_str()
            .unwrap()
            .contains("lexAlign.operator"),
        "{refused}"
    );
    assert!(backend.proposals.lock().unwrap().is_empty());
    client.shutdown().await;

    // Operator mode: every dependency gets proposals for the statuses it
    // does not have yet, not only denied ones.
    let backend = EngineBackend::new();
    let (mut client, _) = TestClient::start_with(
        backend.clone(),
        false,
        json!({"operator": true, "project": "svc"}),
    )
    .await;
    open(&mut client, &uri, text, 1).await;
    client
        .diagnostics_until(&uri, |p| {
            has_code(p, "provisional") && has_code(p, "banned")
        })
        .await;
    let actions = client
        .request("textDocument/codeAction", at("leftpad"))
        .await;
    let proposals: Vec<String> = titles(&actions)
        .into_iter()
        .filter(|t| t.starts_with("lex-align: propose registry rule"))
        .collect();
    assert_eq!(
        proposals,
        vec![
            "lex-align: propose registry rule for leftpad (preferred)",
            "lex-align: propose registry rule for leftpad (approved)",
            "lex-align: propose registry rule for leftpad (banned)",
        ]
    );
    let banned_pyqt5 = client.request("textDocument/codeAction", at("pyqt5")).await;
    let pyqt5: Vec<String> = titles(&banned_pyqt5)
        .into_iter()
        .filter(|t| t.contains("propose"))
        .collect();
    assert_eq!(
        pyqt5,
        vec![
            "lex-align: propose registry rule for pyqt5 (preferred)",
            "lex-align: propose registry rule for pyqt5 (approved)",
        ],
        "the current status is not offered"
    );
    // Only asked for quick fixes: no proposals.
    let mut quickfix_only = at("leftpad");
    quickfix_only["context"]["only"] = json!(["quickfix"]);
    let quick = client
        .request("textDocument/codeAction", quickfix_only)
        .await;
    assert!(
        !titles(&quick).iter().any(|t| t.contains("propose")),
        "{quick}"
    );

    let ban = actions
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["title"] == "lex-align: propose registry rule for leftpad (banned)")
        .unwrap();
    assert_eq!(ban["kind"], "refactor.lexAlign.proposeRule");
    let command = &ban["command"];
    assert_eq!(command["command"], "lexAlign.proposeRule");
    assert_eq!(command["arguments"][0]["name"], "leftpad");
    assert_eq!(command["arguments"][0]["status"], "banned");
    let result = client
        .request(
            "workspace/executeCommand",
            json!({"command": command["command"], "arguments": command["arguments"]}),
        )
        .await;
    assert_eq!(result, "Proposal applied: leftpad is now banned.");
    let shown = client.notification("window/showMessage").await;
    assert_eq!(shown["message"], result);
    assert_eq!(shown["type"], 3, "info");
    {
        let proposals = backend.proposals.lock().unwrap();
        assert_eq!(proposals.len(), 1);
        let (p, project) = &proposals[0];
        assert_eq!(p.name, "leftpad");
        assert_eq!(p.status.as_str(), "banned");
        assert_eq!(project, "svc");
        assert!(p.reason.as_deref().unwrap().contains("svc"), "{p:?}");
    }
    // The applied rule reaches the open document without a reopen.
    let publishes = client
        .diagnostics_until(&uri, |p| {
            summary(p).iter().filter(|d| d.0 == "banned").count() == 2
        })
        .await;
    assert_eq!(
        summary(publishes.last().unwrap()),
        vec![
            diag("banned", ERROR, (0, 0, 0, 14)),
            diag("banned", ERROR, (1, 0, 1, 5)),
        ]
    );

    // A rule the registry would reject is refused with its reason.
    let bad = client
        .request_raw(
            "workspace/executeCommand",
            json!({"command": "lexAlign.proposeRule", "arguments": [{"name": "leftpad", "status": "deprecated-ish"}]}),
        )
        .await;
    assert!(
        bad["error"]["message"]
            .as_str()
            .unwrap()
            .contains("\"deprecated-ish\" is not one of"),
        "{bad}"
    );
    assert_eq!(backend.proposals.lock().unwrap().len(), 1);
    client.shutdown().await;
}

const SCOPED: &str = r#"[build-system]
requires = ["pyqt5"]

[project]
name = "demo"
dependencies = ["requests>=2.28"]

[dependency-groups]
dev = ["leftpad==0.1.0"]
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scopes_limit_the_diagnostics_and_server_url_is_accepted_quietly() {
    let dir = tempfile::tempdir().unwrap();
    let uri = file_uri(&dir.path().join("pyproject.toml"));
    let backend = EngineBackend::new();
    // `serverUrl` is the bridge's setting; `colour` and a bad scope are
    // mistakes the user should hear about.
    let (mut client, _) = TestClient::start_with(
        backend.clone(),
        false,
        json!({"colour": "blue", "serverUrl": "http://127.0.0.1:1", "scopes": ["runtime", "group", "dev"]}),
    )
    .await;
    let first = client.notification("window/logMessage").await;
    let second = client.notification("window/logMessage").await;
    assert_eq!(first["type"], 2, "a warning: {first}");
    let messages = [
        first["message"].as_str().unwrap(),
        second["message"].as_str().unwrap(),
    ];
    assert!(
        messages.iter().any(|m| m.contains("lexAlign.colour")),
        "{messages:?}"
    );
    assert!(
        messages
            .iter()
            .any(|m| m.contains("\"dev\" is not a scope")),
        "{messages:?}"
    );
    assert!(
        !messages.iter().any(|m| m.contains("serverUrl")),
        "{messages:?}"
    );

    open(&mut client, &uri, SCOPED, 1).await;
    let publishes = client
        .diagnostics_until(&uri, |p| has_code(p, "provisional"))
        .await;
    // Build requirements are out of scope: pyqt5 is neither shown nor judged.
    assert_eq!(
        summary(publishes.last().unwrap()),
        vec![
            diag("deprecated", ERROR, span_of(SCOPED, "requests>=2.28")),
            diag("provisional", WARNING, span_of(SCOPED, "leftpad==0.1.0")),
        ]
    );
    assert!(
        !backend
            .calls
            .lock()
            .unwrap()
            .iter()
            .flatten()
            .any(|i| i.requirement.starts_with("pyqt5")),
        "out-of-scope dependencies are not evaluated"
    );

    // Only runtime now, then every scope again (an empty list): each
    // settings change re-publishes the open document.
    client
        .notify(
            "workspace/didChangeConfiguration",
            json!({"settings": {"lexAlign": {"scopes": ["runtime"]}}}),
        )
        .await;
    let publishes = client
        .diagnostics_until(&uri, |p| !has_code(p, "provisional"))
        .await;
    assert_eq!(
        summary(publishes.last().unwrap()),
        vec![diag("deprecated", ERROR, span_of(SCOPED, "requests>=2.28"))]
    );
    client
        .notify(
            "workspace/didChangeConfiguration",
            json!({"settings": {"lexAlign": {"scopes": []}}}),
        )
        .await;
    let publishes = client
        .diagnostics_until(&uri, |p| {
            has_code(p, "banned") && has_code(p, "provisional")
        })
        .await;
    assert_eq!(
        summary(publishes.last().unwrap()),
        vec![
            diag("banned", ERROR, span_of(SCOPED, "pyqt5")),
            diag("deprecated", ERROR, span_of(SCOPED, "requests>=2.28")),
            diag("provisional", WARNING, span_of(SCOPED, "leftpad==0.1.0")),
        ]
    );
    client.shutdown().await;
}

#[test]
fn markdown_from_upstream_is_escaped() {
    assert_eq!(
        lex_align_lsp::escape_markdown("[x](javascript:1) *y* `z`"),
        "\\[x\\]\\(javascript:1\\) \\*y\\* \\`z\\`"
    );
}

#[test]
fn every_code_is_documented() {
    let doc = include_str!("../../docs/diagnostics.md");
    for code in lex_align_lsp::CODES {
        assert!(
            doc.contains(&format!("\n## {}\n", code.as_str())),
            "{} has no section in docs/diagnostics.md",
            code.as_str()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_name_gets_a_did_you_mean_rename() {
    let text = "[project]\nname = \"demo\"\nversion = \"0.1.0\"\ndependencies = [\n    \"gitpyhton[doc]>=3.1.41 ; python_version >= '3.9'\",\n]\n";
    let dir = tempfile::tempdir().unwrap();
    let uri = file_uri(&dir.path().join("pyproject.toml"));
    let (mut client, _) = TestClient::start(EngineBackend::new(), false).await;
    open(&mut client, &uri, text, 1).await;
    let publishes = client
        .diagnostics_until(&uri, |p| has_code(p, "not-found"))
        .await;
    let last = publishes.last().unwrap();
    let d = &last["diagnostics"][0];
    assert!(
        d["message"]
            .as_str()
            .unwrap()
            .contains("Did you mean `gitpython`?"),
        "{d}"
    );

    let actions = quickfixes(&mut client, &uri, span_of(text, "gitpyhton")).await;
    let rename = action_starting(&actions, "Did you mean");
    assert_eq!(
        rename["title"],
        "Did you mean gitpython? Rename gitpyhton to gitpython"
    );
    // Extras, specifier and marker stay as written.
    assert_eq!(
        apply_edit(text, &rename["edit"], &uri, false),
        text.replace("gitpyhton[doc]", "gitpython[doc]")
    );
}
