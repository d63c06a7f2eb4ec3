//! The dashboards (docs/dashboards.md): server-rendered HTML from templates
//! compiled into the binary, charts as inline SVG, no script and no
//! outside asset. `/` and `/dashboard/{registry,legal,security,agents}`
//! need the `developer` role (the access layer's default); the registry
//! workshop's POST actions need `operator` and a CSRF token.

mod charts;
mod csrf;
mod dashboards;
mod flash;
mod html;
mod view;
mod workshop;

use axum::extract::RawQuery;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;

use crate::auth::{Identity, Role};
use crate::http::Shared;
use html::{fill, tpl, Html};

/// The pages' routes, merged into the API router (behind the same access
/// middleware).
pub fn routes() -> Router<Shared> {
    Router::new()
        .route("/", get(dashboards::overview))
        .route("/dashboard/legal", get(dashboards::legal))
        .route("/dashboard/security", get(dashboards::security))
        .route("/dashboard/agents", get(dashboards::agents))
        .route("/dashboard/registry", get(workshop::page))
        .route("/dashboard/registry/export.yml", get(workshop::export))
        .route("/dashboard/registry/decide", post(workshop::decide))
        .route("/dashboard/registry/rules", post(workshop::add_rule))
        .route("/dashboard/registry/policies", post(workshop::policies))
}

/// Sent with every page.
pub const CSP: &str = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; \
                       form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

const STYLE: &str = include_str!("templates/style.css");
const LAYOUT: &str = include_str!("templates/layout.html");

/// Which page a request renders (the side panel marks it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Nav {
    Overview,
    Registry,
    Legal,
    Security,
    Agents,
}

const NAV: [(Nav, &str, &str); 5] = [
    (Nav::Overview, "/", "Overview"),
    (Nav::Registry, "/dashboard/registry", "Registry workshop"),
    (Nav::Legal, "/dashboard/legal", "Legal compliance"),
    (Nav::Security, "/dashboard/security", "Security posture"),
    (Nav::Agents, "/dashboard/agents", "Agent activity"),
];

impl Nav {
    fn path(self) -> &'static str {
        NAV.iter()
            .find(|(n, _, _)| *n == self)
            .map(|(_, p, _)| *p)
            .unwrap_or("/")
    }
}

/// Who asks, for which project, and the query they sent.
pub(crate) struct PageCtx {
    pub identity: Identity,
    /// The project the page is scoped to (`?project=`); `None` = all.
    pub project: Option<String>,
    pub query: Vec<(String, String)>,
}

impl PageCtx {
    pub fn new(identity: Identity, query: RawQuery) -> PageCtx {
        let query: Vec<(String, String)> = query
            .0
            .as_deref()
            .and_then(|q| serde_urlencoded::from_str(q).ok())
            .unwrap_or_default();
        let asked = query
            .iter()
            .rev()
            .find(|(k, _)| k == "project")
            .map(|(_, v)| v.trim().to_string())
            .filter(|v| !v.is_empty());
        // A project-scoped credential sees its project only (the access
        // layer already refused any other).
        let project = identity.project.clone().or(asked);
        PageCtx {
            identity,
            project,
            query,
        }
    }

    pub fn param(&self, key: &str) -> Option<&str> {
        self.query
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    pub fn can_operate(&self) -> bool {
        self.identity.role >= Role::Operator
    }

    /// `?project=…` (or empty) for links and form actions.
    pub fn scope_query(&self) -> String {
        scope_query(self.project.as_deref())
    }

    pub fn csrf(&self) -> String {
        csrf::token(&self.identity)
    }
}

pub(crate) fn scope_query(project: Option<&str>) -> String {
    match project {
        Some(p) => format!(
            "?{}",
            serde_urlencoded::to_string([("project", p)]).unwrap_or_default()
        ),
        None => String::new(),
    }
}

/// What the side panel says about the daemon.
pub(crate) struct Status {
    pub registry_version: String,
    pub rules: usize,
    pub from_file: bool,
    pub proposer: &'static str,
    pub projects: Vec<String>,
    pub auth_enabled: bool,
}

impl Status {
    pub fn of(app: &Shared, projects: Vec<String>) -> Status {
        let loaded = app.registry.current();
        Status {
            registry_version: loaded.registry.version.clone(),
            rules: loaded.registry.packages.len(),
            from_file: loaded.from_file,
            proposer: app.proposer.name(),
            projects,
            auth_enabled: app.access.enabled,
        }
    }
}

fn nav_html(ctx: &PageCtx, current: Nav) -> Html {
    let q = ctx.scope_query();
    NAV.iter()
        .map(|(nav, path, label)| {
            let href = format!("{path}{q}");
            if *nav == current {
                tpl(
                    "<li><a href=\"{}\" aria-current=\"page\">{}</a></li>",
                    &[&href, label],
                )
            } else {
                tpl("<li><a href=\"{}\">{}</a></li>", &[&href, label])
            }
        })
        .collect()
}

fn project_form(ctx: &PageCtx, current: Nav, status: &Status) -> Html {
    let mut options = Html::new();
    let mut names = status.projects.clone();
    if let Some(p) = &ctx.project {
        if !names.contains(p) {
            names.insert(0, p.clone());
        }
    }
    if ctx.identity.project.is_none() {
        options.push(if ctx.project.is_none() {
            Html::lit("<option value=\"\" selected>All projects</option>")
        } else {
            Html::lit("<option value=\"\">All projects</option>")
        });
    }
    for name in &names {
        if ctx.identity.project.as_ref().is_some_and(|s| s != name) {
            continue;
        }
        let selected = if ctx.project.as_deref() == Some(name.as_str()) {
            Html::lit(" selected")
        } else {
            Html::new()
        };
        options.push(tpl(
            "<option value=\"{}\"{}>{}</option>",
            &[name, &selected, name],
        ));
    }
    tpl(
        "<form class=\"scope-form\" method=\"get\" action=\"{}\">\
         <label for=\"project\">Project</label>\
         <div class=\"row\"><select id=\"project\" name=\"project\">{}</select>\
         <button type=\"submit\">Show</button></div></form>",
        &[&current.path(), &options],
    )
}

fn identity_html(ctx: &PageCtx, status: &Status) -> Html {
    let id = &ctx.identity;
    let how = if !status.auth_enabled {
        "local user, authentication off".to_string()
    } else {
        format!("signed in via {}", id.method)
    };
    let scope = id
        .project
        .as_ref()
        .map(|p| tpl("<p class=\"muted\">Key scoped to project {}</p>", &[p]))
        .unwrap_or_default();
    tpl(
        "<p class=\"who-name\">{}</p><p><span class=\"badge role-{}\">{}</span> <span class=\"muted\">{}</span></p>{}",
        &[&id.id, &id.role.as_str(), &id.role.as_str(), &how, &scope],
    )
}

fn status_html(status: &Status) -> Html {
    let source = if status.from_file {
        "registry file"
    } else {
        "built-in default policy"
    };
    tpl(
        "<dl class=\"facts\"><dt>Registry</dt><dd>version {} · {} rules</dd>\
         <dt>Source</dt><dd>{}</dd><dt>Proposals</dt><dd>{}</dd></dl>",
        &[
            &status.registry_version,
            &status.rules,
            &source,
            &status.proposer,
        ],
    )
}

/// A whole page: the shared shell around `main`.
pub(crate) fn render_page(
    ctx: &PageCtx,
    current: Nav,
    title: &str,
    status: &Status,
    flash: Html,
    main: Html,
) -> Response {
    let page = fill(
        LAYOUT,
        &[
            ("title", &title),
            ("style", &Html::lit(STYLE)),
            ("nav", &nav_html(ctx, current)),
            ("project_form", &project_form(ctx, current, status)),
            ("identity", &identity_html(ctx, status)),
            ("status", &status_html(status)),
            ("flash", &flash),
            ("main", &main),
        ],
    );
    html_response(StatusCode::OK, page)
}

/// The security headers every page and page error carries.
pub(crate) fn harden(resp: &mut Response) {
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    // `same-origin`, not `no-referrer`: with no-referrer a browser sends
    // `Origin: null` on form posts, and the CSRF origin check needs the
    // real origin. Nothing is sent to other origins either way.
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
}

pub(crate) fn html_response(status: StatusCode, page: Html) -> Response {
    let mut resp = (status, page.into_string()).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    harden(&mut resp);
    resp
}

/// A small standalone error page (CSRF failures, missing role).
pub(crate) fn error_page(status: StatusCode, title: &str, detail: &str, back: &str) -> Response {
    let body = tpl(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{} · lex-align</title><link rel=\"icon\" href=\"data:,\"><style>{}</style></head>\
         <body><main id=\"main\" class=\"error-page\"><h1>{}</h1><p>{}</p>\
         <p><a href=\"{}\">Back to the dashboard</a></p></main></body></html>",
        &[&title, &Html::lit(STYLE), &title, &detail, &back],
    );
    html_response(status, body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scope_queries_are_encoded() {
        assert_eq!(scope_query(None), "");
        assert_eq!(scope_query(Some("web app&x")), "?project=web+app%26x");
    }

    #[test]
    fn the_layout_has_every_hole_filled() {
        let ctx = PageCtx::new(
            Identity::single_user(),
            RawQuery(Some("project=a<b".into())),
        );
        let status = Status {
            registry_version: "1".into(),
            rules: 0,
            from_file: false,
            proposer: "log_only",
            projects: vec!["web".into()],
            auth_enabled: false,
        };
        let resp = render_page(
            &ctx,
            Nav::Legal,
            "T",
            &status,
            Html::new(),
            Html::lit("<p>x</p>"),
        );
        assert_eq!(resp.headers()[header::CONTENT_SECURITY_POLICY], CSP);
        assert_eq!(resp.headers()[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
    }
}
