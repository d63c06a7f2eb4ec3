//! Fake GitLab REST API v4 for one project: repository files per branch,
//! commits made through `POST /repository/commits`, merge requests and their
//! notes, all in memory. JSON shapes follow GitLab's API documentation (the
//! fields a client reads, plus enough of the rest to look real).
//!
//! Routes (under `/api/v4`; `:id` is the numeric id or the URL-encoded path):
//! `GET /projects/:id/repository/branches/:branch`,
//! `GET /projects/:id/repository/files/:file_path/raw?ref=`,
//! `POST /projects/:id/repository/commits`,
//! `GET|POST /projects/:id/merge_requests`,
//! `POST /projects/:id/merge_requests/:iid/notes`.
//! Every route wants the `PRIVATE-TOKEN` header (401 otherwise). For leak
//! tests, [`FakeGitLab::set_echo_errors`] makes every error body quote the
//! whole request, headers included.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use axum::body::{to_bytes, Body};
use axum::extract::{Path, Query, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::server::{gate, Control, Running};

const TIME: &str = "2024-05-01T12:00:00.000Z";

/// A commit made through the API.
#[derive(Debug, Clone)]
pub struct FakeCommit {
    pub id: String,
    pub branch: String,
    pub message: String,
    pub author_name: Option<String>,
    pub author_email: Option<String>,
    pub parent_id: String,
    /// Paths this commit created or updated.
    pub paths: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct FakeMergeRequest {
    pub id: u64,
    pub iid: u64,
    pub source_branch: String,
    pub target_branch: String,
    pub title: String,
    pub description: String,
    /// `opened`, `closed` or `merged`.
    pub state: String,
    pub remove_source_branch: bool,
    pub notes: Vec<String>,
}

#[derive(Clone)]
struct Branch {
    head: String,
    files: BTreeMap<String, String>,
}

struct Repo {
    default_branch: String,
    branches: BTreeMap<String, Branch>,
    commits: Vec<FakeCommit>,
    mrs: Vec<FakeMergeRequest>,
    next_id: u64,
}

struct GlState {
    host: String,
    token: String,
    project_id: u64,
    project_path: String,
    repo: Mutex<Repo>,
    echo_errors: AtomicBool,
    /// The token was revoked: every route answers 401 as for a wrong one.
    revoked: AtomicBool,
    /// (method, path fragment) → status answered instead of the real thing.
    failures: Mutex<Vec<(String, String, u16)>>,
    counter: AtomicU64,
}

/// Fake GitLab on 127.0.0.1; stops on drop.
pub struct FakeGitLab {
    state: Arc<GlState>,
    ctl: Arc<Control>,
    server: Running,
}

impl FakeGitLab {
    /// Project `project_path` (numeric id 42) whose `default_branch` holds
    /// `files`; requests must carry `PRIVATE-TOKEN: <token>`.
    pub fn start(
        token: &str,
        project_path: &str,
        default_branch: &str,
        files: &[(&str, &str)],
    ) -> FakeGitLab {
        let ctl = Control::new((
            "application/json",
            r#"{"message":"503 Service Unavailable"}"#,
        ));
        let mut slot = None;
        let gate_ctl = ctl.clone();
        let server = Running::start("gitlab", |base| {
            let head = sha_of(&format!("initial {default_branch}"));
            let branch = Branch {
                head,
                files: files
                    .iter()
                    .map(|(p, c)| (p.to_string(), c.to_string()))
                    .collect(),
            };
            let st = Arc::new(GlState {
                host: base,
                token: token.to_string(),
                project_id: 42,
                project_path: project_path.to_string(),
                repo: Mutex::new(Repo {
                    default_branch: default_branch.to_string(),
                    branches: BTreeMap::from([(default_branch.to_string(), branch)]),
                    commits: Vec::new(),
                    mrs: Vec::new(),
                    next_id: 1000,
                }),
                echo_errors: AtomicBool::new(false),
                revoked: AtomicBool::new(false),
                failures: Mutex::new(Vec::new()),
                counter: AtomicU64::new(0),
            });
            slot = Some(st.clone());
            let api = Router::new()
                .route(
                    "/projects/{id}/repository/branches/{branch}",
                    get(get_branch),
                )
                .route("/projects/{id}/repository/files/{path}/raw", get(get_raw))
                .route("/projects/{id}/repository/commits", post(create_commit))
                .route(
                    "/projects/{id}/merge_requests",
                    get(list_mrs).post(create_mr),
                )
                .route(
                    "/projects/{id}/merge_requests/{iid}/notes",
                    post(create_note),
                )
                .fallback(|| async { gl_error(StatusCode::NOT_FOUND, "404 Not Found") });
            Router::new()
                .nest("/api/v4", api)
                .layer(axum::middleware::from_fn_with_state(
                    st.clone(),
                    errors_layer,
                ))
                .layer(axum::middleware::from_fn_with_state(gate_ctl, gate))
                .with_state(st)
        });
        FakeGitLab {
            state: slot.expect("router was built"),
            ctl,
            server,
        }
    }

    /// The API base, e.g. `http://127.0.0.1:41234/api/v4`.
    pub fn api_url(&self) -> String {
        format!("http://{}/api/v4", self.server.addr())
    }

    /// A file's content on a branch, if both exist.
    pub fn file(&self, branch: &str, path: &str) -> Option<String> {
        let repo = self.state.repo.lock().unwrap();
        repo.branches.get(branch)?.files.get(path).cloned()
    }

    pub fn branches(&self) -> Vec<String> {
        self.state
            .repo
            .lock()
            .unwrap()
            .branches
            .keys()
            .cloned()
            .collect()
    }

    pub fn commits(&self) -> Vec<FakeCommit> {
        self.state.repo.lock().unwrap().commits.clone()
    }

    pub fn merge_requests(&self) -> Vec<FakeMergeRequest> {
        self.state.repo.lock().unwrap().mrs.clone()
    }

    /// Close a merge request (as a reviewer would).
    pub fn close_merge_request(&self, iid: u64) {
        let mut repo = self.state.repo.lock().unwrap();
        if let Some(mr) = repo.mrs.iter_mut().find(|m| m.iid == iid) {
            mr.state = "closed".into();
        }
    }

    /// Every error body quotes the request, headers included (a proxy or
    /// server that echoes what it was sent).
    pub fn set_echo_errors(&self, on: bool) {
        self.state.echo_errors.store(on, Ordering::SeqCst);
    }

    /// Answer `status` to every `method` request whose path contains
    /// `path_fragment`, until [`FakeGitLab::clear_failures`].
    pub fn fail(&self, method: &str, path_fragment: &str, status: u16) {
        self.state.failures.lock().unwrap().push((
            method.to_ascii_uppercase(),
            path_fragment.to_string(),
            status,
        ));
    }

    pub fn clear_failures(&self) {
        self.state.failures.lock().unwrap().clear();
    }

    /// Revoke the token (or restore it): GitLab then refuses it like any
    /// unknown token.
    pub fn set_revoked(&self, revoked: bool) {
        self.state.revoked.store(revoked, Ordering::SeqCst);
    }

    /// Answer 503 to everything while `down`.
    pub fn set_down(&self, down: bool) {
        self.ctl.set_down(down);
    }

    /// Requests received, all paths together.
    pub fn requests(&self) -> u64 {
        self.ctl.total()
    }
}

fn sha_of(s: &str) -> String {
    hex::encode(Sha256::digest(s.as_bytes()))[..40].to_string()
}

fn gl_error(status: StatusCode, message: &str) -> Response {
    (status, Json(json!({ "message": message }))).into_response()
}

/// Injected failures, and the echo of the whole request into error bodies.
async fn errors_layer(State(st): State<Arc<GlState>>, req: Request, next: Next) -> Response {
    let method = req.method().to_string();
    let uri = req.uri().to_string();
    let injected = st
        .failures
        .lock()
        .unwrap()
        .iter()
        .find(|(m, frag, _)| *m == method && uri.contains(frag.as_str()))
        .map(|(_, _, s)| *s);
    let headers: BTreeMap<String, String> = req
        .headers()
        .iter()
        .map(|(k, v)| {
            (
                k.to_string(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let (parts, body) = req.into_parts();
    let bytes = to_bytes(body, 4 << 20).await.unwrap_or_default();
    let body_text = String::from_utf8_lossy(&bytes).into_owned();
    let resp = match injected {
        Some(code) => {
            let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            gl_error(
                status,
                &format!("{code} {}", status.canonical_reason().unwrap_or("Error")),
            )
        }
        None => {
            next.run(Request::from_parts(parts, Body::from(bytes)))
                .await
        }
    };
    if resp.status().as_u16() < 400 || !st.echo_errors.load(Ordering::SeqCst) {
        return resp;
    }
    let status = resp.status();
    let original = to_bytes(resp.into_body(), 4 << 20)
        .await
        .unwrap_or_default();
    let message = serde_json::from_slice::<Value>(&original)
        .ok()
        .and_then(|v| v.get("message").cloned())
        .unwrap_or(Value::Null);
    let echoed = json!({
        "message": format!("{} (request: {method} {uri} headers {headers:?} body {body_text})",
            message.as_str().map(str::to_string).unwrap_or_else(|| message.to_string())),
        "request": { "method": method, "uri": uri, "headers": headers, "body": body_text },
    });
    (status, Json(echoed)).into_response()
}

/// Token check and project lookup shared by every route: the error to
/// answer, if any.
fn refuse(st: &GlState, headers: &HeaderMap, id: &str) -> Option<Response> {
    let token = headers
        .get("private-token")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if token != st.token || st.revoked.load(Ordering::SeqCst) {
        return Some(gl_error(StatusCode::UNAUTHORIZED, "401 Unauthorized"));
    }
    if id != st.project_id.to_string() && id != st.project_path {
        return Some(gl_error(StatusCode::NOT_FOUND, "404 Project Not Found"));
    }
    None
}

fn project_web(st: &GlState) -> String {
    format!("{}/{}", st.host, st.project_path)
}

fn commit_json(st: &GlState, c: &FakeCommit) -> Value {
    let title = c.message.lines().next().unwrap_or("").to_string();
    json!({
        "id": c.id,
        "short_id": &c.id[..8],
        "created_at": TIME,
        "parent_ids": [c.parent_id],
        "title": title,
        "message": c.message,
        "author_name": c.author_name.clone().unwrap_or_else(|| "Token User".into()),
        "author_email": c.author_email.clone().unwrap_or_else(|| "token-user@gitlab.test".into()),
        "authored_date": TIME,
        "committer_name": c.author_name.clone().unwrap_or_else(|| "Token User".into()),
        "committer_email": c.author_email.clone().unwrap_or_else(|| "token-user@gitlab.test".into()),
        "committed_date": TIME,
        "trailers": {},
        "web_url": format!("{}/-/commit/{}", project_web(st), c.id),
        "stats": {"additions": 1, "deletions": 0, "total": 1},
        "status": null,
        "project_id": st.project_id,
        "last_pipeline": null,
    })
}

fn mr_json(st: &GlState, mr: &FakeMergeRequest) -> Value {
    json!({
        "id": mr.id,
        "iid": mr.iid,
        "project_id": st.project_id,
        "title": mr.title,
        "description": mr.description,
        "state": mr.state,
        "created_at": TIME,
        "updated_at": TIME,
        "merged_by": null,
        "merged_at": null,
        "closed_by": null,
        "closed_at": null,
        "target_branch": mr.target_branch,
        "source_branch": mr.source_branch,
        "user_notes_count": mr.notes.len(),
        "upvotes": 0,
        "downvotes": 0,
        "author": {"id": 7, "username": "token-user", "name": "Token User", "state": "active"},
        "assignees": [],
        "reviewers": [],
        "source_project_id": st.project_id,
        "target_project_id": st.project_id,
        "labels": [],
        "draft": false,
        "work_in_progress": false,
        "merge_when_pipeline_succeeds": false,
        "merge_status": "can_be_merged",
        "detailed_merge_status": "mergeable",
        "sha": null,
        "force_remove_source_branch": mr.remove_source_branch,
        "references": {"short": format!("!{}", mr.iid), "full": format!("{}!{}", st.project_path, mr.iid)},
        "web_url": format!("{}/-/merge_requests/{}", project_web(st), mr.iid),
    })
}

async fn get_branch(
    State(st): State<Arc<GlState>>,
    headers: HeaderMap,
    Path((id, branch)): Path<(String, String)>,
) -> Response {
    if let Some(r) = refuse(&st, &headers, &id) {
        return r;
    }
    let repo = st.repo.lock().unwrap();
    let Some(b) = repo.branches.get(&branch) else {
        return gl_error(StatusCode::NOT_FOUND, "404 Branch Not Found");
    };
    Json(json!({
        "name": branch,
        "merged": false,
        "protected": branch == repo.default_branch,
        "default": branch == repo.default_branch,
        "developers_can_push": false,
        "developers_can_merge": false,
        "can_push": true,
        "web_url": format!("{}/-/tree/{}", project_web(&st), branch),
        "commit": {"id": b.head, "short_id": &b.head[..8], "created_at": TIME, "title": "head", "message": "head"},
    }))
    .into_response()
}

async fn get_raw(
    State(st): State<Arc<GlState>>,
    headers: HeaderMap,
    Path((id, path)): Path<(String, String)>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    if let Some(r) = refuse(&st, &headers, &id) {
        return r;
    }
    let repo = st.repo.lock().unwrap();
    let reference = q
        .get("ref")
        .cloned()
        .unwrap_or_else(|| repo.default_branch.clone());
    let Some(b) = repo.branches.get(&reference) else {
        return gl_error(StatusCode::NOT_FOUND, "404 Commit Not Found");
    };
    match b.files.get(&path) {
        Some(content) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            content.clone(),
        )
            .into_response(),
        None => gl_error(StatusCode::NOT_FOUND, "404 File Not Found"),
    }
}

async fn create_commit(
    State(st): State<Arc<GlState>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Json(body): Json<Value>,
) -> Response {
    if let Some(r) = refuse(&st, &headers, &id) {
        return r;
    }
    let s = |k: &str| body.get(k).and_then(Value::as_str).map(str::to_string);
    let (Some(branch), Some(message)) = (s("branch"), s("commit_message")) else {
        return gl_error(
            StatusCode::BAD_REQUEST,
            "branch, commit_message are missing",
        );
    };
    let Some(actions) = body.get("actions").and_then(Value::as_array) else {
        return gl_error(StatusCode::BAD_REQUEST, "actions is missing");
    };
    let mut repo = st.repo.lock().unwrap();
    let mut working = match (repo.branches.get(&branch), s("start_branch")) {
        (Some(_), Some(start)) if start != branch => {
            return gl_error(
                StatusCode::BAD_REQUEST,
                &format!("A branch called '{branch}' already exists. Switch to that branch in order to make changes"),
            )
        }
        (Some(b), _) => b.clone(),
        (None, Some(start)) => match repo.branches.get(&start) {
            Some(b) => b.clone(),
            None => return gl_error(StatusCode::BAD_REQUEST, "You can only create or edit files when you are on a branch"),
        },
        (None, None) => {
            return gl_error(StatusCode::BAD_REQUEST, "You can only create or edit files when you are on a branch")
        }
    };
    let mut paths = Vec::new();
    for a in actions {
        let g = |k: &str| a.get(k).and_then(Value::as_str).map(str::to_string);
        let (Some(action), Some(path)) = (g("action"), g("file_path")) else {
            return gl_error(
                StatusCode::BAD_REQUEST,
                "actions[action], actions[file_path] are missing",
            );
        };
        let content = g("content").unwrap_or_default();
        match action.as_str() {
            "create" if working.files.contains_key(&path) => {
                return gl_error(
                    StatusCode::BAD_REQUEST,
                    "A file with this name already exists",
                )
            }
            "update" if !working.files.contains_key(&path) => {
                return gl_error(
                    StatusCode::BAD_REQUEST,
                    "A file with this name doesn't exist",
                )
            }
            "create" | "update" => {
                working.files.insert(path.clone(), content);
            }
            _ => {
                return gl_error(
                    StatusCode::BAD_REQUEST,
                    "actions[action] does not have a valid value",
                )
            }
        }
        paths.push(path);
    }
    let n = st.counter.fetch_add(1, Ordering::SeqCst);
    let commit = FakeCommit {
        id: sha_of(&format!("{}\n{message}\n{n}", working.head)),
        branch: branch.clone(),
        message,
        author_name: s("author_name"),
        author_email: s("author_email"),
        parent_id: working.head.clone(),
        paths,
    };
    working.head = commit.id.clone();
    repo.branches.insert(branch, working);
    repo.commits.push(commit.clone());
    (StatusCode::CREATED, Json(commit_json(&st, &commit))).into_response()
}

async fn list_mrs(
    State(st): State<Arc<GlState>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    if let Some(r) = refuse(&st, &headers, &id) {
        return r;
    }
    let repo = st.repo.lock().unwrap();
    let state = q.get("state").map(String::as_str).unwrap_or("all");
    let list: Vec<Value> = repo
        .mrs
        .iter()
        .rev()
        .filter(|m| state == "all" || m.state == state)
        .filter(|m| q.get("source_branch").is_none_or(|b| *b == m.source_branch))
        .filter(|m| q.get("target_branch").is_none_or(|b| *b == m.target_branch))
        .map(|m| mr_json(&st, m))
        .collect();
    Json(Value::Array(list)).into_response()
}

async fn create_mr(
    State(st): State<Arc<GlState>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Json(body): Json<Value>,
) -> Response {
    if let Some(r) = refuse(&st, &headers, &id) {
        return r;
    }
    let s = |k: &str| body.get(k).and_then(Value::as_str).map(str::to_string);
    let (Some(source), Some(target), Some(title)) =
        (s("source_branch"), s("target_branch"), s("title"))
    else {
        return gl_error(
            StatusCode::BAD_REQUEST,
            "source_branch, target_branch, title are missing",
        );
    };
    let mut repo = st.repo.lock().unwrap();
    if !repo.branches.contains_key(&source) || !repo.branches.contains_key(&target) {
        return gl_error(StatusCode::NOT_FOUND, "404 Branch Not Found");
    }
    if let Some(open) = repo
        .mrs
        .iter()
        .find(|m| m.state == "opened" && m.source_branch == source && m.target_branch == target)
    {
        return (
            StatusCode::CONFLICT,
            Json(json!({"message": [format!("Another open merge request already exists for this source branch: !{}", open.iid)]})),
        )
            .into_response();
    }
    repo.next_id += 1;
    let mr = FakeMergeRequest {
        id: repo.next_id,
        iid: repo.mrs.len() as u64 + 1,
        source_branch: source,
        target_branch: target,
        title,
        description: s("description").unwrap_or_default(),
        state: "opened".into(),
        remove_source_branch: body
            .get("remove_source_branch")
            .and_then(Value::as_bool)
            .unwrap_or(false),
        notes: Vec::new(),
    };
    repo.mrs.push(mr.clone());
    (StatusCode::CREATED, Json(mr_json(&st, &mr))).into_response()
}

async fn create_note(
    State(st): State<Arc<GlState>>,
    headers: HeaderMap,
    Path((id, iid)): Path<(String, u64)>,
    Json(body): Json<Value>,
) -> Response {
    if let Some(r) = refuse(&st, &headers, &id) {
        return r;
    }
    let Some(text) = body.get("body").and_then(Value::as_str).map(str::to_string) else {
        return gl_error(StatusCode::BAD_REQUEST, "body is missing");
    };
    let mut repo = st.repo.lock().unwrap();
    repo.next_id += 1;
    let note_id = repo.next_id;
    let Some(mr) = repo.mrs.iter_mut().find(|m| m.iid == iid) else {
        return gl_error(StatusCode::NOT_FOUND, "404 Not found");
    };
    mr.notes.push(text.clone());
    let mr_id = mr.id;
    (
        StatusCode::CREATED,
        Json(json!({
            "id": note_id,
            "type": null,
            "body": text,
            "attachment": null,
            "author": {"id": 7, "username": "token-user", "name": "Token User", "state": "active"},
            "created_at": TIME,
            "updated_at": TIME,
            "system": false,
            "noteable_id": mr_id,
            "noteable_type": "MergeRequest",
            "noteable_iid": iid,
            "resolvable": false,
            "confidential": false,
            "internal": false,
        })),
    )
        .into_response()
}
