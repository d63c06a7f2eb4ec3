//! The daemon's language-server side: an in-process [`PolicyBackend`] over
//! the live registry, the evaluator and the approval route, and the
//! `GET /api/v1/lsp` upgrade that serves one LSP session per connection.
//!
//! Every editor on the machine connects here (through `lex-align lsp`), so
//! they share one warm cache, one registry and one audit log.

use std::sync::Arc;

use async_trait::async_trait;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use hyper_util::rt::TokioIo;
use lex_align_engine::request::EvalRequest;
use lex_align_engine::verdict::Verdict;
use lex_align_lsp::{
    CveAlertInfo, EvalItem, LspOptions, PolicyBackend, PolicyEvent, RuleInfo, RuleProposal,
};
use serde_json::{json, Value};
use tokio::sync::broadcast;
use tower::ServiceExt;

use crate::auth::Identity;
use crate::http::{ApiError, Shared, MAX_HEADER};
use crate::service::CallContext;

/// The `Upgrade` protocol token of an LSP session.
pub const UPGRADE_PROTOCOL: &str = "lex-align-lsp";

/// Audit `source` of evaluations made for an editor.
pub const AUDIT_SOURCE: &str = "lsp";

/// Where the daemon serves the diagnostic code reference.
pub const DOCS_PATH: &str = "/docs/diagnostics";

/// The routes this module serves, mounted by the crate root through
/// [`crate::http::router_with`] behind the API's middleware.
pub fn routes() -> axum::Router<Shared> {
    axum::Router::new()
        .route("/api/v1/lsp", axum::routing::get(upgrade))
        .route(DOCS_PATH, axum::routing::get(diagnostics_docs))
}

/// `GET /docs/diagnostics`: the reference every diagnostic's
/// `codeDescription` links to (`#<code>` anchors).
pub async fn diagnostics_docs() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "max-age=3600"),
        ],
        lex_align_lsp::diagnostics_html(),
    )
        .into_response()
}

/// The docs link base for a session: the address the editor reached the
/// daemon by (its `Host` header), else the configured bind address.
fn docs_base_url(headers: &HeaderMap, bind_addr: &str) -> String {
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .and_then(|h| h.parse::<axum::http::uri::Authority>().ok())
        .map(|a| a.as_str().to_string());
    let authority = host.unwrap_or_else(|| {
        // A wildcard bind is not an address to browse to.
        bind_addr
            .replacen("0.0.0.0:", "127.0.0.1:", 1)
            .replacen("[::]:", "[::1]:", 1)
    });
    format!("http://{authority}{DOCS_PATH}")
}

/// One LSP session's view of the daemon.
pub struct DaemonBackend {
    app: Shared,
    /// Who opened the session: every evaluation and request is theirs.
    identity: Identity,
    /// The v1 API in-process: approval requests take exactly the HTTP path.
    api: axum::Router,
    events: broadcast::Sender<PolicyEvent>,
    forwarder: tokio::task::JoinHandle<()>,
}

impl DaemonBackend {
    /// Must run inside a Tokio runtime: it starts the task that turns
    /// registry generations into [`PolicyEvent::RegistryReloaded`].
    pub fn new(app: Shared, identity: Identity) -> DaemonBackend {
        let (events, _) = broadcast::channel(16);
        let mut generations = app.registry.subscribe();
        // Only swaps after this point matter: the session starts on the
        // current registry.
        generations.borrow_and_update();
        let tx = events.clone();
        let mut alerts = app.cve_scan.subscribe();
        let forwarder = tokio::spawn(async move {
            loop {
                // No receiver yet is fine: the session re-reads the registry
                // and the alerts on every check anyway.
                let event = tokio::select! {
                    changed = generations.changed() => match changed {
                        Ok(()) => PolicyEvent::RegistryReloaded,
                        Err(_) => return,
                    },
                    alert = alerts.recv() => match alert {
                        Ok(package) => PolicyEvent::CveAlert { package },
                        Err(broadcast::error::RecvError::Lagged(_)) => {
                            PolicyEvent::CveAlert { package: String::new() }
                        }
                        Err(broadcast::error::RecvError::Closed) => return,
                    },
                };
                let _ = tx.send(event);
            }
        });
        DaemonBackend {
            api: crate::http::router(app.clone()),
            app,
            identity,
            events,
            forwarder,
        }
    }
}

impl DaemonBackend {
    /// A JSON POST through the in-process v1 router, exactly as the HTTP
    /// route would take it; returns the status and the JSON body.
    async fn post(
        &self,
        path: &str,
        project: &str,
        body: Value,
    ) -> Result<(StatusCode, Value), String> {
        // From bytes: folder names need not be ASCII (the routes read UTF-8).
        let project = HeaderValue::from_bytes(project.as_bytes())
            .map_err(|_| format!("project name {project:?} cannot be sent as a header"))?;
        let mut req = Request::post(path)
            .header(header::CONTENT_TYPE, "application/json")
            .header("x-lexalign-project", project)
            .body(Body::from(body.to_string()))
            .map_err(|e| format!("invalid request to {path}: {e}"))?;
        // Already authenticated at the upgrade; the route's role check still applies.
        req.extensions_mut().insert(self.identity.clone());
        let resp = match self.api.clone().oneshot(req).await {
            Ok(r) => r,
            Err(never) => match never {},
        };
        let status = resp.status();
        let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20)
            .await
            .map_err(|e| format!("reading the answer of {path}: {e}"))?;
        Ok((
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        ))
    }
}

impl Drop for DaemonBackend {
    fn drop(&mut self) {
        self.forwarder.abort();
    }
}

/// The leading distribution name of a PEP 508 string, as written (audit rows
/// keep `PyQt5`, not `pyqt5`, like the HTTP routes).
fn written_name(requirement: &str) -> &str {
    let r = requirement.trim_start();
    let end = r
        .find(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
        .unwrap_or(r.len());
    &r[..end]
}

#[async_trait]
impl PolicyBackend for DaemonBackend {
    async fn evaluate(&self, items: Vec<EvalItem>, project: &str) -> Result<Vec<Verdict>, String> {
        if items.is_empty() {
            return Ok(Vec::new());
        }
        let reqs = items
            .iter()
            .map(|item| {
                EvalRequest::parse(
                    written_name(&item.requirement),
                    item.version.as_deref(),
                    Some(&item.requirement),
                )
                .map_err(|e| format!("`{}`: {}: {}", item.requirement, e.field, e.message))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let ctx = CallContext {
            project: project.chars().take(MAX_HEADER).collect(),
            requester: self.identity.id.clone(),
            auth_method: self.identity.method.clone(),
            agent_model: None,
            agent_version: None,
            source: AUDIT_SOURCE,
        };
        self.app
            .evaluator
            .evaluate_batch(&reqs, &ctx)
            .await
            .map_err(|e| e.to_string())
    }

    fn registry_rule(&self, canonical: &str) -> Option<RuleInfo> {
        let loaded = self.app.registry.current();
        // A lapsed rule no longer applies: the editor shows what evaluate judges.
        let now = time::OffsetDateTime::now_utc();
        loaded
            .registry
            .rule_at(canonical, now)
            .active()
            .map(|r| RuleInfo {
                status: r.status,
                reason: r.reason.clone(),
                replacement: r.replacement.clone(),
                min_version: r.min_version.clone(),
                max_version: r.max_version.clone(),
            })
    }

    fn cve_alerts(&self, canonical: &str) -> Vec<CveAlertInfo> {
        self.app
            .cve_scan
            .open_for(canonical)
            .into_iter()
            .map(|a| CveAlertInfo {
                version: a.version,
                advisories: a.advisories,
                max_cvss: a.max_cvss,
            })
            .collect()
    }

    async fn request_approval(
        &self,
        package: &str,
        rationale: &str,
        project: &str,
    ) -> Result<String, String> {
        let body = json!({ "package": package, "rationale": rationale });
        let (status, value) = self
            .post("/api/v1/approval-requests", project, body)
            .await?;
        if status == StatusCode::ACCEPTED {
            let id = value["request_id"].as_str().unwrap_or("?");
            let state = value["status"].as_str().unwrap_or("PENDING_REVIEW");
            Ok(format!(
                "Approval request for {package} recorded ({state}, id {id})."
            ))
        } else {
            Err(detail_text(&value["detail"])
                .unwrap_or_else(|| format!("the daemon answered {status}")))
        }
    }

    async fn propose_rule(&self, proposal: &RuleProposal, project: &str) -> Result<String, String> {
        let mut body = json!({ "name": proposal.name, "status": proposal.status.as_str() });
        for (key, value) in [
            ("reason", &proposal.reason),
            ("replacement", &proposal.replacement),
            ("rationale", &proposal.rationale),
        ] {
            if let Some(v) = value {
                body[key] = Value::String(v.clone());
            }
        }
        let (status, value) = self
            .post("/api/v1/registry/proposals", project, body)
            .await?;
        if status == StatusCode::OK {
            let outcome = value["status"].as_str().unwrap_or("?");
            let backend = value["backend"].as_str().unwrap_or("?");
            let mut message = format!(
                "Registry proposal {} → {}: {outcome} ({backend}).",
                proposal.name,
                proposal.status.as_str()
            );
            for key in ["detail", "url"] {
                if let Some(v) = value[key].as_str().filter(|v| !v.is_empty()) {
                    message.push(' ');
                    message.push_str(v);
                }
            }
            Ok(message)
        } else {
            Err(detail_text(&value["detail"])
                .unwrap_or_else(|| format!("the daemon answered {status}")))
        }
    }

    fn subscribe(&self) -> broadcast::Receiver<PolicyEvent> {
        self.events.subscribe()
    }
}

/// `{"detail": "…"}` or a pydantic-style list: the readable part.
fn detail_text(detail: &Value) -> Option<String> {
    match detail {
        Value::String(s) => Some(s.clone()),
        Value::Array(items) => {
            let parts: Vec<String> = items
                .iter()
                .filter_map(|i| i["msg"].as_str().map(str::to_string))
                .collect();
            (!parts.is_empty()).then(|| parts.join("; "))
        }
        _ => None,
    }
}

/// Whether the comma-separated header `name` holds `token` (case-insensitive).
fn header_has_token(headers: &HeaderMap, name: header::HeaderName, token: &str) -> bool {
    headers.get_all(name).iter().any(|v| {
        v.to_str().is_ok_and(|s| {
            s.split(',')
                .any(|part| part.trim().eq_ignore_ascii_case(token))
        })
    })
}

/// `GET /api/v1/lsp` with `Upgrade: lex-align-lsp`: answers 101 and serves
/// an LSP session (JSON-RPC with Content-Length framing) on the connection.
/// `X-LexAlign-Project` (optional) names the project for every evaluation.
pub async fn upgrade(State(app): State<Shared>, mut req: Request) -> Response {
    let headers = req.headers();
    if !header_has_token(headers, header::UPGRADE, UPGRADE_PROTOCOL)
        || !header_has_token(headers, header::CONNECTION, "upgrade")
    {
        let mut resp = ApiError::detail(
            StatusCode::UPGRADE_REQUIRED,
            format!(
                "This endpoint serves LSP sessions: send `Connection: Upgrade` and `Upgrade: {UPGRADE_PROTOCOL}` \
                 (editors use `lex-align lsp`, which does this)."
            ),
        )
        .into_response();
        resp.headers_mut()
            .insert(header::UPGRADE, HeaderValue::from_static(UPGRADE_PROTOCOL));
        return resp;
    }
    let project = headers
        .get("x-lexalign-project")
        .map(|v| String::from_utf8_lossy(v.as_bytes()).trim().to_string())
        .filter(|p| !p.is_empty());
    if let Some(p) = project.as_ref().filter(|p| p.chars().count() > MAX_HEADER) {
        return ApiError::detail(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!(
                "X-LexAlign-Project is {} characters; at most {MAX_HEADER} are allowed.",
                p.chars().count()
            ),
        )
        .into_response();
    }
    let docs_base_url = docs_base_url(headers, &app.config.bind_addr());
    let Some(identity) = req.extensions().get::<Identity>().cloned() else {
        // Only reachable without the access layer: refuse rather than guess.
        return crate::auth::unauthorized("No authenticated identity for this session.");
    };
    let Some(on_upgrade) = req.extensions_mut().remove::<hyper::upgrade::OnUpgrade>() else {
        // Only when the server does not support upgrades (HTTP/2, tests
        // calling the router directly).
        return ApiError::detail(
            StatusCode::HTTP_VERSION_NOT_SUPPORTED,
            "This connection cannot be upgraded; use HTTP/1.1.",
        )
        .into_response();
    };
    tokio::spawn(async move {
        let upgraded = match on_upgrade.await {
            Ok(u) => u,
            Err(e) => {
                tracing::warn!("LSP upgrade failed: {e}");
                return;
            }
        };
        let (read, write) = tokio::io::split(TokioIo::new(upgraded));
        let backend: Arc<dyn PolicyBackend> = Arc::new(DaemonBackend::new(app, identity));
        let options = LspOptions {
            project,
            docs_base_url,
            ..LspOptions::default()
        };
        tracing::debug!("LSP session started");
        lex_align_lsp::serve_lsp_with(read, write, backend, options).await;
        tracing::debug!("LSP session ended");
    });
    Response::builder()
        .status(StatusCode::SWITCHING_PROTOCOLS)
        .header(header::CONNECTION, "upgrade")
        .header(header::UPGRADE, UPGRADE_PROTOCOL)
        .body(Body::empty())
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn written_names_keep_their_spelling() {
        assert_eq!(written_name("PyQt5>=5.15"), "PyQt5");
        assert_eq!(
            written_name("  zope.interface[x] ; python_version>'3'"),
            "zope.interface"
        );
        assert_eq!(written_name("typing_extensions"), "typing_extensions");
    }

    #[test]
    fn docs_links_use_the_address_the_editor_reached() {
        let mut headers = HeaderMap::new();
        assert_eq!(
            docs_base_url(&headers, "0.0.0.0:8765"),
            "http://127.0.0.1:8765/docs/diagnostics"
        );
        assert_eq!(
            docs_base_url(&headers, "[::]:9000"),
            "http://[::1]:9000/docs/diagnostics"
        );
        headers.insert(
            header::HOST,
            HeaderValue::from_static("lexalign.internal:8080"),
        );
        assert_eq!(
            docs_base_url(&headers, "0.0.0.0:8765"),
            "http://lexalign.internal:8080/docs/diagnostics"
        );
        // Not an authority: the bind address instead of a broken link.
        headers.insert(header::HOST, HeaderValue::from_static("a b/c"));
        assert_eq!(
            docs_base_url(&headers, "127.0.0.1:8765"),
            "http://127.0.0.1:8765/docs/diagnostics"
        );
    }

    #[test]
    fn detail_text_reads_both_shapes() {
        assert_eq!(
            detail_text(&json!("pyqt5 is banned")).as_deref(),
            Some("pyqt5 is banned")
        );
        assert_eq!(
            detail_text(&json!([{"msg": "Field required"}, {"msg": "too long"}])).as_deref(),
            Some("Field required; too long")
        );
        assert_eq!(detail_text(&Value::Null), None);
    }
}
