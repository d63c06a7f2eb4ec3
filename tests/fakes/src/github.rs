//! A fake of the GitHub REST API parts the `github` proposer uses: list open
//! pull requests by head, open one, comment on one. It checks the bearer
//! token like the real service (401 `Bad credentials`), records every
//! request (method, path, query, the headers that matter, JSON body) and
//! answers with the real service's field names. `fail_next` makes the next
//! call answer an error the way GitHub does (`message`, `errors`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};

use crate::server::Running;

/// One request as the fake saw it.
#[derive(Debug, Clone)]
pub struct RecordedRequest {
    pub method: String,
    pub path: String,
    pub query: HashMap<String, String>,
    /// Lower-case names: authorization, accept, x-github-api-version, user-agent.
    pub headers: HashMap<String, String>,
    pub body: Value,
}

#[derive(Debug, Clone)]
pub struct FakePull {
    pub number: u64,
    pub title: String,
    pub head: String,
    pub base: String,
    pub body: String,
    pub state: String,
    pub comments: Vec<String>,
}

struct Inner {
    token: String,
    base: String,
    requests: Vec<RecordedRequest>,
    pulls: Vec<FakePull>,
    next_number: u64,
    /// (method, status, body) of the next call of that method to fail.
    fail_next: Option<(String, u16, Value)>,
}

type Shared = Arc<Mutex<Inner>>;

pub struct FakeGithub {
    inner: Shared,
    server: Running,
}

impl FakeGithub {
    /// Accepts `Authorization: Bearer <token>` only.
    pub fn start(token: &str) -> FakeGithub {
        let inner = Arc::new(Mutex::new(Inner {
            token: token.to_string(),
            base: String::new(),
            requests: Vec::new(),
            pulls: Vec::new(),
            next_number: 1,
            fail_next: None,
        }));
        let state = inner.clone();
        let server = Running::start("github", move |base| {
            state.lock().unwrap().base = base;
            Router::new()
                .route(
                    "/repos/{owner}/{repo}/pulls",
                    get(list_pulls).post(create_pull),
                )
                .route(
                    "/repos/{owner}/{repo}/issues/{number}/comments",
                    post(create_comment),
                )
                .with_state(state)
        });
        FakeGithub { inner, server }
    }

    /// The REST base (GITHUB_API_BASE).
    pub fn url(&self) -> String {
        format!("http://{}", self.server.addr())
    }

    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.inner.lock().unwrap().requests.clone()
    }

    pub fn pulls(&self) -> Vec<FakePull> {
        self.inner.lock().unwrap().pulls.clone()
    }

    /// The next `method` call answers `status` with GitHub's error shape.
    pub fn fail_next(&self, method: &str, status: u16, message: &str, errors: Value) {
        let mut body = json!({
            "message": message,
            "documentation_url": "https://docs.github.com/rest/pulls/pulls#create-a-pull-request",
            "status": status.to_string(),
        });
        if !errors.is_null() {
            body["errors"] = errors;
        }
        self.inner.lock().unwrap().fail_next = Some((method.to_string(), status, body));
    }

    /// A pull request closed outside the daemon (no longer "open").
    pub fn close_pull(&self, number: u64) {
        let mut g = self.inner.lock().unwrap();
        if let Some(p) = g.pulls.iter_mut().find(|p| p.number == number) {
            p.state = "closed".into();
        }
    }
}

fn record(
    state: &Shared,
    method: Method,
    path: String,
    query: Option<String>,
    headers: &HeaderMap,
    body: &Bytes,
) -> Option<Response> {
    // `Some`: answered here (bad token, an injected failure).
    let mut g = state.lock().unwrap();
    let query: HashMap<String, String> = query
        .map(|q| serde_urlencoded::from_str(&q).unwrap_or_default())
        .unwrap_or_default();
    let mut hs = HashMap::new();
    for name in [
        "authorization",
        "accept",
        "x-github-api-version",
        "user-agent",
        "content-type",
    ] {
        if let Some(v) = headers.get(name).and_then(|v| v.to_str().ok()) {
            hs.insert(name.to_string(), v.to_string());
        }
    }
    let auth_ok = hs.get("authorization") == Some(&format!("Bearer {}", g.token));
    g.requests.push(RecordedRequest {
        method: method.to_string(),
        path,
        query,
        headers: hs,
        body: serde_json::from_slice(body).unwrap_or(Value::Null),
    });
    if !auth_ok {
        return Some((
            StatusCode::UNAUTHORIZED,
            Json(json!({"message": "Bad credentials", "documentation_url": "https://docs.github.com/rest", "status": "401"})),
        )
            .into_response());
    }
    if g.fail_next
        .as_ref()
        .is_some_and(|(m, _, _)| *m == method.as_str())
    {
        let (_, status, body) = g.fail_next.take().expect("checked");
        return Some(
            (
                StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST),
                Json(body),
            )
                .into_response(),
        );
    }
    None
}

fn pull_json(base: &str, owner: &str, repo: &str, p: &FakePull) -> Value {
    json!({
        "url": format!("{base}/repos/{owner}/{repo}/pulls/{}", p.number),
        "id": 1_000_000 + p.number,
        "node_id": format!("PR_kwDO{}", p.number),
        "html_url": format!("https://github.example/{owner}/{repo}/pull/{}", p.number),
        "number": p.number,
        "state": p.state,
        "locked": false,
        "title": p.title,
        "body": p.body,
        "user": {"login": "lex-align-bot", "id": 42, "type": "Bot"},
        "created_at": "2026-01-01T00:00:00Z",
        "updated_at": "2026-01-01T00:00:00Z",
        "draft": false,
        "head": {"label": format!("{owner}:{}", p.head), "ref": p.head, "sha": "0000000000000000000000000000000000000000"},
        "base": {"label": format!("{owner}:{}", p.base), "ref": p.base, "sha": "1111111111111111111111111111111111111111"},
        "maintainer_can_modify": true,
    })
}

async fn list_pulls(
    State(state): State<Shared>,
    Path((owner, repo)): Path<(String, String)>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    let path = format!("/repos/{owner}/{repo}/pulls");
    if let Some(r) = record(
        &state,
        Method::GET,
        path,
        query.clone(),
        &headers,
        &Bytes::new(),
    ) {
        return r;
    }
    let q: HashMap<String, String> = query
        .map(|q| serde_urlencoded::from_str(&q).unwrap_or_default())
        .unwrap_or_default();
    let g = state.lock().unwrap();
    let want_state = q.get("state").map(String::as_str).unwrap_or("open");
    let per_page: usize = q.get("per_page").and_then(|n| n.parse().ok()).unwrap_or(30);
    let items: Vec<Value> = g
        .pulls
        .iter()
        .filter(|p| want_state == "all" || p.state == want_state)
        .filter(|p| {
            q.get("head")
                .is_none_or(|h| *h == format!("{owner}:{}", p.head))
        })
        .take(per_page)
        .map(|p| pull_json(&g.base, &owner, &repo, p))
        .collect();
    Json(Value::Array(items)).into_response()
}

async fn create_pull(
    State(state): State<Shared>,
    Path((owner, repo)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = format!("/repos/{owner}/{repo}/pulls");
    if let Some(r) = record(&state, Method::POST, path, None, &headers, &body) {
        return r;
    }
    let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let field = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_string);
    let (Some(title), Some(head), Some(base)) = (field("title"), field("head"), field("base"))
    else {
        return (
            StatusCode::UNPROCESSABLE_ENTITY,
            Json(json!({"message": "Validation Failed", "errors": [{"resource": "PullRequest", "code": "missing_field"}], "status": "422"})),
        )
            .into_response();
    };
    let mut g = state.lock().unwrap();
    if g.pulls.iter().any(|p| p.head == head && p.state == "open") {
        return (
            StatusCode::UNPROCESSABLE_ENTITY,
            Json(json!({"message": "Validation Failed", "errors": [{"resource": "PullRequest", "code": "custom", "message": format!("A pull request already exists for {owner}:{head}.")}], "status": "422"})),
        )
            .into_response();
    }
    let number = g.next_number;
    g.next_number += 1;
    let pull = FakePull {
        number,
        title,
        head,
        base,
        body: field("body").unwrap_or_default(),
        state: "open".into(),
        comments: Vec::new(),
    };
    let out = pull_json(&g.base, &owner, &repo, &pull);
    g.pulls.push(pull);
    (StatusCode::CREATED, Json(out)).into_response()
}

async fn create_comment(
    State(state): State<Shared>,
    Path((owner, repo, number)): Path<(String, String, u64)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = format!("/repos/{owner}/{repo}/issues/{number}/comments");
    if let Some(r) = record(&state, Method::POST, path, None, &headers, &body) {
        return r;
    }
    let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let Some(text) = v.get("body").and_then(Value::as_str).map(str::to_string) else {
        return (
            StatusCode::UNPROCESSABLE_ENTITY,
            Json(json!({"message": "Validation Failed", "errors": [{"resource": "IssueComment", "field": "body", "code": "missing_field"}], "status": "422"})),
        )
            .into_response();
    };
    let mut g = state.lock().unwrap();
    let count: u64 = g.pulls.iter().map(|p| p.comments.len() as u64).sum();
    let Some(pull) = g.pulls.iter_mut().find(|p| p.number == number) else {
        return (
            StatusCode::NOT_FOUND,
            Json(json!({"message": "Not Found", "status": "404"})),
        )
            .into_response();
    };
    pull.comments.push(text.clone());
    let id = 5_000_000 + count;
    (
        StatusCode::CREATED,
        Json(json!({
            "id": id,
            "node_id": format!("IC_kwDO{id}"),
            "html_url": format!("https://github.example/{owner}/{repo}/pull/{number}#issuecomment-{id}"),
            "issue_url": format!("https://github.example/{owner}/{repo}/issues/{number}"),
            "body": text,
            "user": {"login": "lex-align-bot", "id": 42, "type": "Bot"},
            "created_at": "2026-01-01T00:00:00Z",
            "updated_at": "2026-01-01T00:00:00Z",
            "author_association": "NONE",
        })),
    )
        .into_response()
}
