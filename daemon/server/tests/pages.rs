//! The dashboards against the real app on 127.0.0.1 with seeded audit rows
//! and approval requests: over HTTP (headers, escaping, roles, CSRF, every
//! workshop action) and in a real headless Chromium (each page renders its
//! data with no console error and no request off 127.0.0.1, keyboard
//! reachability, and the workshop deciding requests end to end).
//! Screenshots land in `target/test-artifacts/pages/`.

mod browser;
mod common;

use std::collections::HashMap;
use std::io::Write as _;
use std::path::PathBuf;

use common::{start_with, Options, TestServer};
use lex_align_daemon::auth::AuthSettings;
use lex_align_daemon::Config;
use lex_align_store::{AuditRow, NewApprovalRequest};
use serde_json::Value;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

const XSS_PACKAGE: &str = "<img src=x onerror=alert(1)>";
const XSS_RATIONALE: &str = "<script>alert(\"rationale\")</script> we need it";

const PAGES: [(&str, &str); 5] = [
    ("/", "overview"),
    ("/dashboard/registry", "registry"),
    ("/dashboard/legal", "legal"),
    ("/dashboard/security", "security"),
    ("/dashboard/agents", "agents"),
];

// ---- seeding ----------------------------------------------------------------

fn ago(days: i64, hours: i64) -> String {
    (OffsetDateTime::now_utc() - time::Duration::days(days) - time::Duration::hours(hours))
        .format(&Rfc3339)
        .unwrap()
}

struct Row {
    project: &'static str,
    package: &'static str,
    version: Option<&'static str>,
    verdict: &'static str,
    category: &'static str,
    reason: &'static str,
    license: Option<&'static str>,
    cves: &'static [&'static str],
    cvss: Option<f64>,
    registry: Option<&'static str>,
    agent: Option<(&'static str, &'static str)>,
}

const CLAUDE: Option<(&str, &str)> = Some(("claude-code", "1.0.3"));
const CODEX: Option<(&str, &str)> = Some(("codex", "0.9"));

fn r(
    project: &'static str,
    package: &'static str,
    verdict: &'static str,
    category: &'static str,
    reason: &'static str,
    agent: Option<(&'static str, &'static str)>,
) -> Row {
    Row {
        project,
        package,
        version: None,
        verdict,
        category,
        reason,
        license: None,
        cves: &[],
        cvss: None,
        registry: None,
        agent,
    }
}

fn seed_rows() -> Vec<(Row, i64)> {
    let mut rows = Vec::new();
    for d in 0..9 {
        let mut a = r("web", "httpx", "ALLOWED", "", "Preferred.", CLAUDE);
        a.license = Some("BSD-3-Clause");
        a.registry = Some("preferred");
        rows.push((a, d));
    }
    for d in [0, 2, 5] {
        let mut a = r(
            "api",
            "numpy",
            "ALLOWED",
            "",
            "License BSD-3-Clause is auto-approved.",
            CODEX,
        );
        a.license = Some("BSD-3-Clause");
        rows.push((a, d));
    }
    for d in [1, 3] {
        let mut a = r(
            "web",
            "pyqt5",
            "DENIED",
            "license",
            "License GPL-3.0 is hard-banned.",
            CLAUDE,
        );
        a.license = Some("GPL-3.0");
        rows.push((a, d));
    }
    let mut a = r(
        "web",
        "mystery-pkg",
        "DENIED",
        "license",
        "License UNKNOWN: policy block.",
        CLAUDE,
    );
    a.license = Some("UNKNOWN");
    rows.push((a, 2));
    let mut a = r(
        "web",
        XSS_PACKAGE,
        "DENIED",
        "license",
        "<script>alert('reason')</script>",
        CLAUDE,
    );
    a.license = Some("AGPL-3.0");
    rows.push((a, 1));
    for d in [0, 4] {
        let mut a = r(
            "web",
            "click",
            "PROVISIONALLY_ALLOWED",
            "",
            "Not in the registry; MIT.",
            CLAUDE,
        );
        a.license = Some("MIT");
        rows.push((a, d));
    }
    let mut a = r(
        "api",
        "polars",
        "PROVISIONALLY_ALLOWED",
        "",
        "Not in the registry; MIT.",
        CODEX,
    );
    a.license = Some("MIT");
    rows.push((a, 1));
    let mut a = r(
        "web",
        "pyyaml",
        "DENIED",
        "cve",
        "CVE-2020-14343 scores 9.8.",
        CLAUDE,
    );
    a.version = Some("5.3.1");
    a.cves = &["CVE-2020-14343"];
    a.cvss = Some(9.8);
    a.license = Some("MIT");
    rows.push((a, 0));
    let mut a = r(
        "web",
        "cryptography",
        "DENIED",
        "cve",
        "CVE-2023-50782 scores 7.5.",
        CLAUDE,
    );
    a.version = Some("41.0.0");
    a.cves = &["CVE-2023-50782"];
    a.cvss = Some(7.5);
    a.registry = Some("version-constrained");
    rows.push((a, 3));
    let mut a = r(
        "api",
        "django",
        "DENIED",
        "cve",
        "CVE-2024-27351 scores 5.3.",
        CODEX,
    );
    a.version = Some("4.2.0");
    a.cves = &["CVE-2024-27351"];
    a.cvss = Some(5.3);
    rows.push((a, 6));
    rows.push((
        r(
            "web",
            "requests",
            "DENIED",
            "registry",
            "requests is deprecated; use httpx.",
            CLAUDE,
        ),
        2,
    ));
    let mut a = r(
        "lex-align-server",
        "httpx",
        "CVE_ALERT",
        "cve_alert",
        "New advisory for an approved package.",
        None,
    );
    a.cves = &["GHSA-fake-0001"];
    a.cvss = Some(8.1);
    a.registry = Some("preferred");
    rows.push((a, 0));
    rows
}

fn seed(server: &TestServer) {
    let store = server.handle.store();
    for (row, days) in seed_rows() {
        let audit = AuditRow {
            project: row.project.into(),
            requester: "agent".into(),
            package: row.package.into(),
            canonical: lex_align_store::canonical_name(row.package),
            version: row.version.map(str::to_string),
            verdict: row.verdict.into(),
            denial_category: row.category.into(),
            reason: Some(row.reason.into()),
            license: row.license.map(str::to_string),
            cve_ids: row.cves.iter().map(|s| s.to_string()).collect(),
            max_cvss: row.cvss,
            registry_status: row.registry.map(str::to_string),
            agent_model: row.agent.map(|a| a.0.to_string()),
            agent_version: row.agent.map(|a| a.1.to_string()),
            source: "api".into(),
            ..AuditRow::default()
        };
        store
            .append_audit_at_blocking(audit, &ago(days, 1))
            .unwrap();
    }
    for (project, requester, package, rationale) in [
        (
            "api",
            "agent-a",
            "polars",
            "Need fast DataFrames for the reporting job.",
        ),
        ("web", "agent-b", "Polars", "Same, for the web exports."),
        ("web", "agent-b", "leftpad", XSS_RATIONALE),
    ] {
        store
            .upsert_approval_request_blocking(NewApprovalRequest {
                project: project.into(),
                requester: requester.into(),
                package: package.into(),
                rationale: rationale.into(),
                agent_model: Some("claude-code".into()),
                agent_version: Some("1.0.3".into()),
                last_audit_id: None,
            })
            .unwrap();
    }
}

async fn seeded(options: Options) -> TestServer {
    let server = start_with(options).await;
    seed(&server);
    server
}

// ---- HTTP helpers -------------------------------------------------------------

fn no_redirects() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

struct Page {
    status: u16,
    headers: reqwest::header::HeaderMap,
    body: String,
}

async fn get_page(client: &reqwest::Client, url: &str, headers: &[(&str, &str)]) -> Page {
    let mut req = client.get(url);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = req.send().await.unwrap();
    Page {
        status: resp.status().as_u16(),
        headers: resp.headers().clone(),
        body: resp.text().await.unwrap(),
    }
}

fn csrf_of(html: &str) -> String {
    let at = html
        .find("name=\"csrf\" value=\"")
        .expect("the page has a CSRF field")
        + "name=\"csrf\" value=\"".len();
    html[at..at + 64].to_string()
}

async fn post_form(
    client: &reqwest::Client,
    server: &TestServer,
    path: &str,
    form: &[(&str, &str)],
    headers: &[(&str, &str)],
) -> (u16, Option<String>, String) {
    let mut req = client.post(server.url(path)).form(form);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let location = resp
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    (status, location, resp.text().await.unwrap())
}

fn origin(server: &TestServer) -> String {
    server.base.clone()
}

/// Follows a workshop redirect and returns the flash text of the page.
async fn flash_after(client: &reqwest::Client, server: &TestServer, location: &str) -> String {
    let page = get_page(client, &server.url(location), &[]).await;
    assert_eq!(page.status, 200);
    let start = page
        .body
        .find("<div class=\"flash")
        .expect("the redirect target shows a flash");
    let end = page.body[start..].find("</div>").unwrap() + start;
    page.body[start..end].to_string()
}

// ---- over HTTP --------------------------------------------------------------------

#[tokio::test]
async fn every_page_renders_seeded_data_with_hardened_headers() {
    let server = seeded(Options::default()).await;
    let client = reqwest::Client::new();
    let expect: HashMap<&str, &[&str]> = HashMap::from([
        (
            "overview",
            &[
                "Verdicts per day",
                "<a href=\"/?project=web\">web</a>",
                "Needs attention",
            ][..],
        ),
        (
            "registry",
            &[
                "polars",
                "2 requests",
                "leftpad",
                "mystery-pkg",
                "Export YAML",
                "cryptography",
            ][..],
        ),
        (
            "legal",
            &[
                "GPL-3.0",
                "Unknown licenses",
                "pyqt5",
                "lf-copyleft",
                "Evaluations by license",
            ][..],
        ),
        (
            "security",
            &[
                "CVE-2020-14343",
                "sev-critical",
                "cryptography",
                "GHSA-fake-0001",
                "CVE denials by severity",
            ][..],
        ),
        (
            "agents",
            &[
                "claude-code 1.0.3",
                "codex 0.9",
                "Top agents by evaluations",
                "PROVISIONAL",
            ][..],
        ),
    ]);
    for (path, name) in PAGES {
        let page = get_page(&client, &server.url(path), &[]).await;
        assert_eq!(page.status, 200, "{path}: {}", page.body);
        let h = |k: &str| {
            page.headers
                .get(k)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_string()
        };
        assert_eq!(h("content-type"), "text/html; charset=utf-8");
        assert_eq!(
            h("content-security-policy"),
            "default-src 'none'; style-src 'unsafe-inline'; img-src data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
        );
        assert_eq!(h("x-content-type-options"), "nosniff");
        assert_eq!(h("referrer-policy"), "same-origin");
        assert_eq!(h("cache-control"), "no-store");
        for want in expect[name] {
            assert!(page.body.contains(want), "{path} lacks {want:?}");
        }
        // Shared side panel with the identity and every page linked.
        assert!(
            page.body.contains("class=\"who-name\">anonymous<"),
            "{path}"
        );
        for (p, _) in PAGES {
            assert!(
                page.body.contains(&format!("href=\"{p}\"")),
                "{path} links {p}"
            );
        }
        // No script, no outside asset of any kind.
        assert!(!page.body.contains("<script"), "{path}");
        for outside in ["http://", "https://", "//cdn", "src=\""] {
            assert!(!page.body.contains(outside), "{path} contains {outside:?}");
        }
        assert!(
            page.body.contains("<svg") || name == "registry",
            "{path} has a chart"
        );
    }
}

#[tokio::test]
async fn untrusted_text_is_escaped_everywhere() {
    let server = seeded(Options::default()).await;
    let client = reqwest::Client::new();
    for (path, _) in PAGES {
        let body = get_page(&client, &server.url(path), &[]).await.body;
        assert!(!body.contains("<img src=x"), "{path}");
        assert!(!body.contains("<script>"), "{path}");
    }
    let registry = get_page(&client, &server.url("/dashboard/registry"), &[])
        .await
        .body;
    assert!(
        registry.contains("&lt;script&gt;alert(&quot;rationale&quot;)&lt;/script&gt; we need it")
    );
    let legal = get_page(&client, &server.url("/dashboard/legal"), &[])
        .await
        .body;
    assert!(legal.contains("&lt;img src=x onerror=alert(1)&gt;"));
    assert!(legal.contains("&lt;script&gt;alert(&#39;reason&#39;)&lt;/script&gt;"));
    // A hostile project name in the query is escaped too, and links stay encoded.
    let page = get_page(
        &client,
        &server.url("/dashboard/agents?project=%22%3E%3Cscript%3Ex%3C%2Fscript%3E"),
        &[],
    )
    .await;
    assert_eq!(page.status, 200);
    assert!(!page.body.contains("<script>x"));
    assert!(page
        .body
        .contains("&quot;&gt;&lt;script&gt;x&lt;/script&gt;"));
    assert!(page
        .body
        .contains("href=\"/dashboard/legal?project=%22%3E%3Cscript%3Ex%3C%2Fscript%3E\""));
}

#[tokio::test]
async fn the_project_scope_applies_to_every_page() {
    let server = seeded(Options::default()).await;
    let client = reqwest::Client::new();
    let agents = get_page(&client, &server.url("/dashboard/agents?project=api"), &[])
        .await
        .body;
    assert!(agents.contains("codex 0.9") && !agents.contains("claude-code 1.0.3"));
    assert!(agents.contains("Project <strong>api</strong>"));
    assert!(agents.contains("<option value=\"api\" selected>api</option>"));
    assert!(agents.contains("href=\"/dashboard/registry?project=api\""));
    let legal = get_page(&client, &server.url("/dashboard/legal?project=api"), &[])
        .await
        .body;
    assert!(!legal.contains("pyqt5"));
    let security = get_page(&client, &server.url("/dashboard/security?project=api"), &[])
        .await
        .body;
    assert!(security.contains("django") && !security.contains("pyyaml"));
    // The workshop lists only the project's requests.
    let registry = get_page(&client, &server.url("/dashboard/registry?project=api"), &[])
        .await
        .body;
    assert!(registry.contains("polars") && !registry.contains("leftpad"));
    assert!(registry.contains("1 request<"));
    assert!(registry.contains("action=\"/dashboard/registry/decide?project=api\""));
}

/// Header authentication with `operator=platform,agent=bots`.
fn header_auth(c: &mut Config) {
    let vars: HashMap<&str, &str> = HashMap::from([
        ("AUTH_ENABLED", "true"),
        ("AUTH_BACKEND", "header"),
        ("LEXALIGN_ROLE_GROUPS", "operator=platform,agent=bots"),
    ]);
    c.auth = AuthSettings::from_lookup(&|k: &str| vars.get(k).map(|v| v.to_string()), |s| {
        Some(s == "true")
    })
    .unwrap();
}

const OPERATOR: [(&str, &str); 2] = [
    ("X-Forwarded-User", "olivia"),
    ("X-Forwarded-Groups", "platform"),
];
const DEVELOPER: [(&str, &str); 1] = [("X-Forwarded-User", "dave")];
const AGENT: [(&str, &str); 2] = [("X-Forwarded-User", "bot"), ("X-Forwarded-Groups", "bots")];

#[tokio::test]
async fn roles_csrf_and_origin_guard_the_workshop() {
    let server = seeded(Options {
        tweak: Some(Box::new(header_auth)),
        ..Options::default()
    })
    .await;
    let client = no_redirects();
    // Pages need a credential, then the developer role.
    assert_eq!(get_page(&client, &server.url("/"), &[]).await.status, 401);
    assert_eq!(
        get_page(&client, &server.url("/dashboard/legal"), &AGENT)
            .await
            .status,
        403
    );
    let dev = get_page(&client, &server.url("/dashboard/registry"), &DEVELOPER).await;
    assert_eq!(dev.status, 200);
    assert!(dev.body.contains("class=\"who-name\">dave<"));
    assert!(dev.body.contains("role-developer"));
    assert!(dev.body.contains("need the operator role"));
    assert!(
        !dev.body.contains("<form method=\"post\""),
        "no operator controls for a developer"
    );
    assert!(!dev.body.contains("name=\"csrf\""));
    let op = get_page(&client, &server.url("/dashboard/registry"), &OPERATOR).await;
    assert!(op.body.contains("class=\"who-name\">olivia<") && op.body.contains("role-operator"));
    let token = csrf_of(&op.body);
    let o = origin(&server);
    let with = |extra: &[(&'static str, &str)]| {
        let mut h: Vec<(&str, String)> =
            OPERATOR.iter().map(|(k, v)| (*k, v.to_string())).collect();
        h.extend(extra.iter().map(|(k, v)| (*k, v.to_string())));
        h
    };
    let reject = |t: &str| {
        vec![
            ("csrf", t.to_string()),
            ("package", "leftpad".to_string()),
            ("decision", "reject".to_string()),
            ("note", "Not needed: use str.rjust.".to_string()),
        ]
    };
    async fn send(
        client: &reqwest::Client,
        server: &TestServer,
        form: &[(&str, String)],
        headers: &[(&str, String)],
    ) -> (u16, Option<String>, String) {
        let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let headers: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        post_form(
            client,
            server,
            "/dashboard/registry/decide",
            &form,
            &headers,
        )
        .await
    }
    // A developer: refused by the access layer before any handler.
    let dev_headers: Vec<(&str, String)> =
        vec![("X-Forwarded-User", "dave".into()), ("Origin", o.clone())];
    let (status, _, body) = send(&client, &server, &reject(&token), &dev_headers).await;
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("needs the operator role"), "{body}");
    // No token, a wrong token, another identity's token.
    for bad in ["", "00", &"0".repeat(64)] {
        let (status, _, body) =
            send(&client, &server, &reject(bad), &with(&[("Origin", &o)])).await;
        assert_eq!(status, 403, "{bad:?}");
        assert!(body.contains("CSRF token"), "{body}");
    }
    let devs_token = csrf_of(
        &get_page(
            &client,
            &server.url("/dashboard/registry"),
            &[
                ("X-Forwarded-User", "dave"),
                ("X-Forwarded-Groups", "platform"),
            ],
        )
        .await
        .body,
    );
    assert_ne!(devs_token, token);
    let (status, _, _) = send(
        &client,
        &server,
        &reject(&devs_token),
        &with(&[("Origin", &o)]),
    )
    .await;
    assert_eq!(status, 403);
    // The right token from the wrong place.
    for h in [
        with(&[("Origin", "http://evil.example")]),
        with(&[]),
        with(&[("Origin", "null")]),
        with(&[("Origin", &o), ("Sec-Fetch-Site", "cross-site")]),
        with(&[("Referer", "http://127.0.0.2:1/dashboard/registry")]),
    ] {
        let (status, _, body) = send(&client, &server, &reject(&token), &h).await;
        assert_eq!(status, 403, "{h:?}");
        assert!(body.contains("Form refused"), "{body}");
    }
    let still = get_page(&client, &server.url("/dashboard/registry"), &OPERATOR)
        .await
        .body;
    assert!(
        still.contains("id=\"pending-leftpad\""),
        "nothing was decided"
    );
    // Right token, right origin: decided, 303 back with a flash.
    let referer = format!("{o}/dashboard/registry");
    let (status, location, _) = send(
        &client,
        &server,
        &reject(&token),
        &with(&[("Referer", &referer)]),
    )
    .await;
    assert_eq!(status, 303);
    let location = location.unwrap();
    assert!(
        location.starts_with("/dashboard/registry?flash="),
        "{location}"
    );
    // The flash is olivia's alone.
    let as_dave = get_page(&client, &server.url(&location), &DEVELOPER)
        .await
        .body;
    assert!(!as_dave.contains("Rejected leftpad"));
    let flash = {
        let page = get_page(&client, &server.url(&location), &OPERATOR).await;
        page.body
    };
    assert!(flash.contains("Rejected leftpad"), "{flash}");
    assert!(!flash.contains("id=\"pending-leftpad\""));
    let report = server
        .handle
        .store()
        .approval_requests_report(Some("web"), Some("REJECTED"))
        .unwrap();
    let item = &report["items"][0];
    assert_eq!(item["package"], "leftpad");
    assert_eq!(item["decided_by"], "olivia");
    assert_eq!(item["decision_note"], "Not needed: use str.rjust.");
}

#[tokio::test]
async fn the_workshop_approves_adds_rules_edits_policies_and_exports() {
    let server = seeded(Options::default()).await;
    let client = no_redirects();
    let o = origin(&server);
    let page = get_page(&client, &server.url("/dashboard/registry"), &[])
        .await
        .body;
    let token = csrf_of(&page);
    let hdr = [("Origin", o.as_str())];

    // Approve polars (two requests, two projects) through the proposer.
    let (status, location, _) = post_form(
        &client,
        &server,
        "/dashboard/registry/decide",
        &[
            ("csrf", &token),
            ("package", "polars"),
            ("decision", "approve"),
            ("status", "approved"),
            ("reason", "Fast DataFrames."),
            ("request_project", "api"),
        ],
        &hdr,
    )
    .await;
    assert_eq!(status, 303);
    let flash = flash_after(&client, &server, &location.unwrap()).await;
    assert!(flash.contains("polars: approved rule applied"), "{flash}");
    assert!(flash.contains("2 requests APPROVED"), "{flash}");
    let yaml = std::fs::read_to_string(&server.registry_path).unwrap();
    assert!(
        yaml.contains("  polars:\n    status: approved\n    reason: Fast DataFrames.\n"),
        "{yaml}"
    );
    assert!(yaml.starts_with("# Team registry: edited by humans, comments matter."));
    let (_, reg) = server.get_bare("/api/v1/registry").await;
    assert_eq!(reg["packages"]["polars"]["status"], "approved");
    let approved = server
        .handle
        .store()
        .approval_requests_report(None, Some("APPROVED"))
        .unwrap();
    assert_eq!(approved["items"].as_array().unwrap().len(), 2);
    assert!(approved["items"]
        .as_array()
        .unwrap()
        .iter()
        .all(|i| i["decided_by"] == "anonymous"));

    // An invalid rule is refused with the validator's message; nothing written.
    let (status, location, _) = post_form(
        &client,
        &server,
        "/dashboard/registry/rules",
        &[
            ("csrf", &token),
            ("name", "oldlib"),
            ("status", "deprecated"),
        ],
        &hdr,
    )
    .await;
    assert_eq!(status, 303);
    let flash = flash_after(&client, &server, &location.unwrap()).await;
    assert!(
        flash.contains("deprecated but has no `replacement`"),
        "{flash}"
    );
    assert!(!std::fs::read_to_string(&server.registry_path)
        .unwrap()
        .contains("oldlib"));

    // Add a rule.
    let (_, location, _) = post_form(
        &client,
        &server,
        "/dashboard/registry/rules",
        &[
            ("csrf", &token),
            ("name", "Django"),
            ("status", "version-constrained"),
            ("min_version", "4.2.11"),
            ("reason", "CVE-2024-27351 before 4.2.11."),
        ],
        &hdr,
    )
    .await;
    let flash = flash_after(&client, &server, &location.unwrap()).await;
    assert!(
        flash.contains("Django: version-constrained rule applied"),
        "{flash}"
    );
    let (_, reg) = server.get_bare("/api/v1/registry").await;
    assert_eq!(reg["packages"]["django"]["min_version"], "4.2.11");

    // Edit the global policies (a bad license first).
    let policy = |auto: &'static str| {
        vec![
            ("csrf", token.clone()),
            ("cve_threshold", "0.7".to_string()),
            ("unknown_license_policy", "pending_approval".to_string()),
            ("auto_approve_licenses", auto.to_string()),
            ("hard_ban_licenses", "AGPL-3.0, GPL-3.0".to_string()),
            ("require_human_review_licenses", "MPL-2.0".to_string()),
        ]
    };
    let send_policy = |form: Vec<(&'static str, String)>| {
        let client = client.clone();
        let url = server.url("/dashboard/registry/policies");
        let o = o.clone();
        async move {
            let r = client
                .post(url)
                .form(&form)
                .header("Origin", o)
                .send()
                .await
                .unwrap();
            r.headers()
                .get("location")
                .unwrap()
                .to_str()
                .unwrap()
                .to_string()
        }
    };
    let flash = flash_after(
        &client,
        &server,
        &send_policy(policy("MIT, Not-A-License")).await,
    )
    .await;
    assert!(flash.contains("unknown license `Not-A-License`"), "{flash}");
    let flash = flash_after(
        &client,
        &server,
        &send_policy(policy("MIT, Apache-2.0\nISC")).await,
    )
    .await;
    assert!(flash.contains("Global policies applied"), "{flash}");
    let (_, reg) = server.get_bare("/api/v1/registry").await;
    let gp = &reg["global_policies"];
    assert_eq!(gp["cve_threshold"], 0.7);
    assert_eq!(gp["unknown_license_policy"], "pending_approval");
    assert_eq!(
        gp["auto_approve_licenses"],
        serde_json::json!(["MIT", "Apache-2.0", "ISC"])
    );
    assert_eq!(
        gp["require_human_review_licenses"],
        serde_json::json!(["MPL-2.0"])
    );
    let yaml = std::fs::read_to_string(&server.registry_path).unwrap();
    assert!(
        yaml.contains("  # The async client everyone should use.\n"),
        "comments kept"
    );

    // Export: the live file, verbatim, as a download.
    let resp = client
        .get(server.url("/dashboard/registry/export.yml"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.headers()["content-type"],
        "application/yaml; charset=utf-8"
    );
    assert_eq!(
        resp.headers()["content-disposition"],
        "attachment; filename=\"registry.yml\""
    );
    assert_eq!(resp.text().await.unwrap(), yaml);
    // Edited on disk but not reloaded: the export is the loaded registry.
    std::fs::write(&server.registry_path, "version: \"9\"\n").unwrap();
    let text = client
        .get(server.url("/dashboard/registry/export.yml"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let back = lex_align_engine::registry::Registry::from_yaml(&text).unwrap();
    assert_eq!(back.version, "1.2");
    assert!(back.rule("polars").is_some() && back.rule("django").is_some());
}

#[tokio::test]
async fn log_only_decisions_are_recorded_without_a_registry_write() {
    let server = seeded(Options {
        tweak: Some(Box::new(|c: &mut Config| {
            c.proposer = lex_align_daemon::ProposerChoice::LogOnly;
        })),
        ..Options::default()
    })
    .await;
    let client = no_redirects();
    let page = get_page(&client, &server.url("/dashboard/registry"), &[])
        .await
        .body;
    assert!(page.contains("<strong>log_only</strong> proposer"));
    let token = csrf_of(&page);
    let before = std::fs::read_to_string(&server.registry_path).unwrap();
    let (_, location, _) = post_form(
        &client,
        &server,
        "/dashboard/registry/decide",
        &[
            ("csrf", &token),
            ("package", "leftpad"),
            ("decision", "approve"),
            ("status", "banned"),
            ("reason", "Trivial; write it."),
        ],
        &[("Origin", &origin(&server))],
    )
    .await;
    let flash = flash_after(&client, &server, &location.unwrap()).await;
    assert!(flash.contains("leftpad: banned rule logged"), "{flash}");
    assert!(flash.contains("1 request REJECTED"), "{flash}");
    assert_eq!(
        std::fs::read_to_string(&server.registry_path).unwrap(),
        before
    );
}

// ---- in Chromium --------------------------------------------------------------------

fn artifacts() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target"));
    target.join("test-artifacts/pages")
}

fn chromium_or_skip() -> Option<PathBuf> {
    match browser::chromium() {
        Some(p) => Some(p),
        None => {
            let in_ci = std::env::var("CI").is_ok_and(|v| v == "true" || v == "1");
            assert!(
                !in_ci,
                "CI=true but no Chromium at /usr/bin/chromium (or LEXALIGN_CHROMIUM): run `bash .ci/run`, which installs Debian's chromium"
            );
            let _ = writeln!(
                std::io::stderr(),
                "\n######## SKIPPED: dashboards in headless Chromium ########\n\
                 No /usr/bin/chromium. Run `bash .ci/run`, or: apt-get install chromium\n\
                 (or point LEXALIGN_CHROMIUM at a Chromium binary).\n\
                 ###########################################################\n"
            );
            None
        }
    }
}

/// What a page must satisfy in the browser, checked in the page itself.
const PAGE_CHECKS: &str = r#"(() => {
  const unlabelled = [];
  for (const el of document.querySelectorAll('input:not([type=hidden]), select, textarea')) {
    if (!(el.labels && el.labels.length) && !el.getAttribute('aria-label')) unlabelled.push(el.outerHTML.slice(0, 120));
  }
  const nameless = [];
  for (const el of document.querySelectorAll('button, a[href], summary')) {
    if (!el.textContent.trim() && !el.getAttribute('aria-label')) nameless.push(el.outerHTML.slice(0, 120));
  }
  const ids = [...document.querySelectorAll('[id]')].map(e => e.id);
  const charts = [...document.querySelectorAll('svg')];
  return {
    lang: document.documentElement.lang,
    title: document.title,
    h1: document.querySelectorAll('h1').length,
    main: !!document.querySelector('main#main'),
    nav: !!document.querySelector('nav[aria-label]'),
    current: (document.querySelector('nav a[aria-current=page]') || {}).textContent || '',
    scripts: document.scripts.length,
    unlabelled, nameless,
    duplicateIds: ids.filter((x, i) => ids.indexOf(x) !== i),
    chartsLabelled: charts.every(s => s.getAttribute('role') === 'img' && s.querySelector('title') && s.getAttribute('aria-labelledby')),
    charts: charts.length,
    scrollWidth: document.documentElement.scrollWidth,
    tooWide: [...document.querySelectorAll('main *, aside *')]
      .filter(e => e.getBoundingClientRect().right > WIDTH + 1 && (getComputedStyle(e).position === 'absolute' || !(e.parentElement && e.parentElement.closest('.table-wrap'))))
      .slice(0, 5).map(e => e.tagName + '.' + e.className + ' ' + Math.round(e.getBoundingClientRect().right)),
    text: document.body.innerText,
  };
})()"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_renders_every_page_and_decides_requests() {
    let Some(exe) = chromium_or_skip() else {
        return;
    };
    let server = seeded(Options::default()).await;
    let base = server.base.clone();
    let out = artifacts();
    let checked = tokio::task::spawn_blocking(move || browse(&exe, &base, &out))
        .await
        .expect("the browser session panicked");
    assert!(checked >= 10, "{checked} page views checked");
    // The decisions the browser made are in the store and the registry.
    let (_, reg) = server.get_bare("/api/v1/registry").await;
    assert_eq!(reg["packages"]["polars"]["status"], "approved");
    let yaml = std::fs::read_to_string(&server.registry_path).unwrap();
    assert!(yaml.contains("  Polars:\n    status: approved\n"), "{yaml}");
    let approved = server
        .handle
        .store()
        .approval_requests_report(None, Some("APPROVED"))
        .unwrap();
    assert_eq!(approved["items"].as_array().unwrap().len(), 2);
    let rejected = server
        .handle
        .store()
        .approval_requests_report(None, Some("REJECTED"))
        .unwrap();
    assert_eq!(rejected["items"][0]["package"], "leftpad");
    assert_eq!(
        rejected["items"][0]["decision_note"],
        "Trivial: use str.rjust instead."
    );
}

/// Drives the browser; returns how many page views passed the checks.
fn browse(exe: &std::path::Path, base: &str, out: &std::path::Path) -> usize {
    let mut b = browser::Browser::launch(exe).expect("chromium starts");
    let expect: HashMap<&str, &[&str]> = HashMap::from([
        (
            "overview",
            &["Overview", "Verdicts, last 14 days", "web", "api"][..],
        ),
        (
            "registry",
            &[
                "Registry workshop",
                "Polars",
                "leftpad",
                "Global policies",
                "httpx",
            ][..],
        ),
        (
            "legal",
            &[
                "Legal compliance",
                "GPL-3.0",
                "pyqt5",
                "mystery-pkg",
                "<img src=x onerror=alert(1)>",
            ][..],
        ),
        (
            "security",
            &[
                "Security posture",
                "CVE-2020-14343",
                "pyyaml",
                "GHSA-fake-0001",
            ][..],
        ),
        (
            "agents",
            &["Agent activity", "claude-code 1.0.3", "codex 0.9"][..],
        ),
    ]);
    let mut checked = 0;
    for (width, height, mobile, device) in [(1366, 768, false, "laptop"), (390, 844, true, "phone")]
    {
        b.viewport(width, height, mobile).unwrap();
        for (path, name) in PAGES {
            let since = b.events.len();
            let url = format!("{base}{path}");
            b.navigate(&url).unwrap();
            let v: Value = b
                .eval(&PAGE_CHECKS.replace("WIDTH", &width.to_string()))
                .unwrap();
            let text = v["text"].as_str().unwrap_or("");
            for want in expect[name] {
                assert!(
                    text.contains(want),
                    "{device} {path}: no {want:?} in the rendered text"
                );
            }
            assert_eq!(v["lang"], "en", "{path}");
            assert!(
                v["title"].as_str().unwrap().ends_with(" · lex-align"),
                "{path}"
            );
            assert_eq!(v["h1"], 1, "{path}");
            assert_eq!(v["main"], true, "{path}");
            assert_eq!(v["nav"], true, "{path}");
            assert!(
                !v["current"].as_str().unwrap().is_empty(),
                "{path}: current page marked"
            );
            assert_eq!(
                v["scripts"], 0,
                "{path}: no script runs (and the XSS payloads did not become elements)"
            );
            assert_eq!(
                v["unlabelled"],
                serde_json::json!([]),
                "{path}: every control has a label"
            );
            assert_eq!(
                v["nameless"],
                serde_json::json!([]),
                "{path}: every button and link has a name"
            );
            assert_eq!(v["duplicateIds"], serde_json::json!([]), "{path}");
            assert_eq!(v["chartsLabelled"], true, "{path}");
            if name != "registry" {
                assert!(v["charts"].as_u64().unwrap() >= 1, "{path}: a chart");
            }
            // Readable at this width: nothing makes the page scroll sideways
            // (wide tables scroll inside their own region).
            let scroll_width = v["scrollWidth"].as_u64().unwrap();
            assert!(
                scroll_width <= u64::from(width),
                "{device} {path}: the page is {scroll_width}px wide on a {width}px screen: {}",
                v["tooWide"]
            );
            b.screenshot(&out.join(format!("{name}-{device}.png")))
                .unwrap();
            // Keyboard: the first Tab lands on the skip link.
            b.press("Tab").unwrap();
            assert_eq!(
                b.eval("document.activeElement.className").unwrap(),
                "skip",
                "{path}"
            );
            let errors = b.errors_since(since);
            assert!(
                errors.is_empty(),
                "{device} {path}: console errors: {errors:#?}"
            );
            for req in b.requests_since(since) {
                assert!(
                    req.starts_with("http://127.0.0.1:") || req.starts_with("data:"),
                    "{device} {path}: a request left 127.0.0.1: {req}"
                );
            }
            checked += 1;
        }
    }

    // The workshop, by keyboard alone: approve polars...
    b.viewport(1366, 768, false).unwrap();
    let since = b.events.len();
    b.navigate(&format!("{base}/dashboard/registry")).unwrap();
    let presses = b
        .tab_to(
            "el.tagName === 'BUTTON' && el.value === 'approve' && el.dataset.package === 'polars'",
            400,
        )
        .unwrap();
    assert!(presses > 1);
    let load = b.events.len();
    b.press("Enter").unwrap();
    b.wait_event("Page.loadEventFired", load).unwrap();
    let after = b
        .eval("document.querySelector('.flash') && document.querySelector('.flash').innerText")
        .unwrap();
    let after = after.as_str().unwrap_or("");
    assert!(
        after
            .to_lowercase()
            .contains("polars: approved rule applied"),
        "{after}"
    );
    assert!(after.contains("2 requests APPROVED"), "{after}");
    let url = b
        .eval("location.pathname + location.search + location.hash")
        .unwrap();
    assert!(
        url.as_str()
            .unwrap()
            .starts_with("/dashboard/registry?flash="),
        "{url}"
    );
    b.screenshot(&out.join("registry-approved-laptop.png"))
        .unwrap();
    let rules = b
        .eval("document.querySelector('#packages').innerText")
        .unwrap();
    assert!(
        rules.as_str().unwrap().contains("Polars"),
        "the registry table shows the new rule, as the agents spelled it"
    );

    // ...then reject leftpad with a typed note.
    b.tab_to(
        "el.tagName === 'TEXTAREA' && el.form.package.value === 'leftpad'",
        400,
    )
    .unwrap();
    b.type_text("Trivial: use str.rjust instead.").unwrap();
    b.tab_to("el.tagName === 'BUTTON' && el.value === 'reject'", 5)
        .unwrap();
    let load = b.events.len();
    b.press("Enter").unwrap();
    b.wait_event("Page.loadEventFired", load).unwrap();
    let after = b
        .eval("document.querySelector('.flash').innerText")
        .unwrap();
    assert!(
        after.as_str().unwrap().contains("Rejected leftpad"),
        "{after}"
    );
    let left = b
        .eval("document.querySelector('#pending').innerText")
        .unwrap();
    assert!(
        left.as_str()
            .unwrap()
            .contains("No approval request is waiting"),
        "{left}"
    );
    b.viewport(390, 844, true).unwrap();
    b.screenshot(&out.join("registry-decided-phone.png"))
        .unwrap();

    let errors = b.errors_since(since);
    assert!(errors.is_empty(), "workshop: console errors: {errors:#?}");
    for req in b.requests_since(since) {
        assert!(
            req.starts_with("http://127.0.0.1:"),
            "workshop: a request left 127.0.0.1: {req}"
        );
    }
    checked
}
