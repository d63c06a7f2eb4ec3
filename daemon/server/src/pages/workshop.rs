//! The registry workshop: triage and decide pending approval requests
//! (through the configured proposer), add a rule, edit the global
//! policies, export the live registry as YAML.
//!
//! Every action is a form POST that needs the `operator` role, a CSRF
//! token and a same-origin browser; it answers with a redirect back to the
//! page (POST-redirect-GET) carrying a one-time flash with the outcome.

use std::collections::{BTreeMap, HashSet};

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use lex_align_engine::license::check_policy_token;
use lex_align_engine::registry::{
    registry_to_yaml, validate_rule, GlobalPolicies, Rule, Status as RuleStatus,
    UnknownLicensePolicy, STARTER_YAML,
};
use lex_align_store::{canonical_name, APPROVED, PENDING_REVIEW, REJECTED};
use serde_json::{Map, Value};

use super::dashboards::{flash_of, project_names, read};
use super::flash::{self, Flash};
use super::html::{fill, tpl, Html};
use super::view::{self, arr, n, opt_s, s, scope_line, table, text, when, wrap};
use super::{csrf, error_page, harden, render_page, Nav, PageCtx, Status};
use crate::auth::Identity;
use crate::http::Shared;
use crate::proposer::{ProposalContext, ProposalResult};

const PAGE: &str = include_str!("templates/registry.html");

const STATUSES: [&str; 5] = [
    "approved",
    "preferred",
    "version-constrained",
    "deprecated",
    "banned",
];

const UNKNOWN_POLICIES: [(&str, &str); 4] = [
    ("block", "block: deny the package"),
    ("warn", "warn: allow, with a warning"),
    (
        "pending_approval",
        "pending_approval: provisional, queued for review",
    ),
    ("allow", "allow"),
];

const FROM_PENDING: &str = "Classified from pending request via dashboard.";
const FROM_OPERATOR: &str = "Operator-driven registry change via dashboard.";

// ---- the page ---------------------------------------------------------------

/// One explicit pending group (one package, every requester).
struct Pending {
    package: String,
    canonical: String,
    rationale: String,
    ts: String,
    project: String,
    requester: String,
    count: u64,
    /// A reviewing proposer's outcome: status and pull request URL.
    proposal: Option<(String, Option<String>)>,
}

fn proposal_of(v: &Value) -> Option<(String, Option<String>)> {
    let status = v.get("proposal_status").and_then(Value::as_str)?;
    let url = v
        .get("proposal_url")
        .and_then(Value::as_str)
        // Only web links become links.
        .filter(|u| u.starts_with("https://") || u.starts_with("http://"))
        .map(str::to_string);
    Some((status.to_string(), url))
}

fn pending_from_report(v: &Value) -> Pending {
    Pending {
        package: s(v, "package").to_string(),
        canonical: s(v, "normalized_name").to_string(),
        rationale: s(v, "latest_rationale").to_string(),
        ts: s(v, "latest_ts").to_string(),
        project: s(v, "latest_project").to_string(),
        requester: s(v, "latest_requester").to_string(),
        count: n(v, "request_count"),
        proposal: proposal_of(v),
    }
}

/// A project's pending requests grouped like the queue (newest first).
fn pending_for_project(items: &[Value], registry: &HashSet<String>) -> Vec<Pending> {
    let mut groups: Vec<Pending> = Vec::new();
    for it in items {
        let canonical = s(it, "canonical").to_string();
        if registry.contains(&canonical) {
            continue;
        }
        match groups.iter_mut().find(|g| g.canonical == canonical) {
            Some(g) => g.count += 1,
            None => groups.push(Pending {
                package: s(it, "package").to_string(),
                canonical,
                rationale: s(it, "rationale").to_string(),
                ts: s(it, "ts").to_string(),
                project: s(it, "project").to_string(),
                requester: s(it, "requester").to_string(),
                count: 1,
                proposal: proposal_of(it),
            }),
        }
    }
    groups
}

fn options(values: &[&str], selected: &str) -> Html {
    values
        .iter()
        .map(|v| {
            if *v == selected {
                tpl("<option value=\"{}\" selected>{}</option>", &[v, v])
            } else {
                tpl("<option value=\"{}\">{}</option>", &[v, v])
            }
        })
        .collect()
}

fn hidden(name: &'static str, value: &str) -> Html {
    tpl(
        "<input type=\"hidden\" name=\"{}\" value=\"{}\">",
        &[&name, &value],
    )
}

/// Status, reason and the optional fields of a rule, with ids from `key`;
/// the version bounds and replacement folded away when `fold`.
fn rule_fields(key: &str, status: &str, reason: &str, fold: bool) -> Html {
    let extra = tpl(
        "<div class=\"fields\">\
         <div><label for=\"{}-min\">Minimum version <span class=\"hint\">(inclusive)</span></label>\
         <input type=\"text\" id=\"{}-min\" name=\"min_version\" maxlength=\"100\" spellcheck=\"false\"></div>\
         <div><label for=\"{}-max\">Maximum version <span class=\"hint\">(exclusive)</span></label>\
         <input type=\"text\" id=\"{}-max\" name=\"max_version\" maxlength=\"100\" spellcheck=\"false\"></div>\
         <div><label for=\"{}-repl\">Replacement <span class=\"hint\">(for deprecated)</span></label>\
         <input type=\"text\" id=\"{}-repl\" name=\"replacement\" maxlength=\"200\" spellcheck=\"false\"></div>\
         </div>",
        &[&key, &key, &key, &key, &key, &key],
    );
    let extra = if fold {
        tpl(
            "<details><summary>Version bounds and replacement</summary>{}</details>",
            &[&extra],
        )
    } else {
        extra
    };
    tpl(
        "<div class=\"fields\">\
         <div><label for=\"{}-status\">Status</label><select id=\"{}-status\" name=\"status\">{}</select></div>\
         <div class=\"wide\"><label for=\"{}-reason\">Reason <span class=\"hint\">(shown to agents)</span></label>\
         <input type=\"text\" id=\"{}-reason\" name=\"reason\" value=\"{}\" maxlength=\"2000\"></div>\
         </div>{}",
        &[
            &key,
            &key,
            &options(&STATUSES, status),
            &key,
            &key,
            &reason,
            &extra,
        ],
    )
}

fn pending_html(ctx: &PageCtx, items: &[Pending]) -> Html {
    if items.is_empty() {
        return Html::lit("<p class=\"empty\">No approval request is waiting for a decision.</p>");
    }
    let q = ctx.scope_query();
    let action = format!("/dashboard/registry/decide{q}");
    let token = ctx.csrf();
    let lis: Html = items
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let key = format!("req{i}");
            let forms = if ctx.can_operate() {
                tpl(
                    "<div class=\"decide\">\
                     <form method=\"post\" action=\"{}\" aria-labelledby=\"{}-approve-h\">{}{}{}\
                     <h4 id=\"{}-approve-h\">Approve: add a registry rule</h4>{}\
                     <div class=\"actions\"><button type=\"submit\" name=\"decision\" value=\"approve\" id=\"{}-approve\" data-package=\"{}\">Approve {}</button></div></form>\
                     <form method=\"post\" action=\"{}\" aria-labelledby=\"{}-reject-h\">{}{}{}\
                     <h4 id=\"{}-reject-h\">Reject</h4>\
                     <div class=\"fields\"><div class=\"wide\"><label for=\"{}-note\">Why not <span class=\"hint\">(recorded and shown to the requester)</span></label>\
                     <textarea id=\"{}-note\" name=\"note\" required maxlength=\"2000\"></textarea></div></div>\
                     <div class=\"actions\"><button type=\"submit\" class=\"danger\" name=\"decision\" value=\"reject\" id=\"{}-reject\" data-package=\"{}\">Reject {}</button></div></form>\
                     </div>",
                    &[
                        &action,
                        &key,
                        &hidden("csrf", &token),
                        &hidden("package", &p.package),
                        &hidden("request_project", &p.project),
                        &key,
                        &rule_fields(&key, "approved", FROM_PENDING, true),
                        &key,
                        &p.canonical,
                        &p.package,
                        &action,
                        &key,
                        &hidden("csrf", &token),
                        &hidden("package", &p.package),
                        &hidden("request_project", &p.project),
                        &key,
                        &key,
                        &key,
                        &key,
                        &p.canonical,
                        &p.package,
                    ],
                )
            } else {
                Html::new()
            };
            let count = if p.count == 1 {
                "1 request".to_string()
            } else {
                format!("{} requests", p.count)
            };
            let proposal = match &p.proposal {
                Some((status, Some(url))) => tpl(
                    "<p class=\"meta proposal\">Pull request ({}): <a href=\"{}\">{}</a></p>",
                    &[status, url, url],
                ),
                Some((status, None)) => {
                    tpl("<p class=\"meta proposal\">Proposal: {}</p>", &[status])
                }
                None => Html::new(),
            };
            tpl(
                "<li class=\"request\" id=\"pending-{}\"><h3>{} <span class=\"badge v-provisional\">{}</span></h3>\
                 <p class=\"meta\">Latest from <strong>{}</strong> in project <strong>{}</strong>, {}</p>{}\
                 <blockquote>{}</blockquote>{}</li>",
                &[
                    &p.canonical,
                    &p.package,
                    &count,
                    &p.requester,
                    &p.project,
                    &when(&p.ts),
                    &proposal,
                    &p.rationale,
                    &forms,
                ],
            )
        })
        .collect();
    tpl("<ul class=\"requests\">{}</ul>", &[&lis])
}

fn candidates_html(ctx: &PageCtx, implicit: &[Value]) -> Html {
    let rows = implicit
        .iter()
        .filter(|c| {
            ctx.project
                .as_deref()
                .is_none_or(|p| s(c, "latest_project") == p)
        })
        .map(|c| {
            let reason = s(c, "reason");
            let badge = match reason {
                "provisional-no-rationale" => "v-provisional",
                "repeatedly-denied" => "v-denied",
                _ => "sev-unknown",
            };
            let mut cells = vec![
                view::cell(tpl("<strong>{}</strong>", &[&s(c, "package")])),
                view::cell(tpl(
                    "<span class=\"badge {}\">{}</span><br><span class=\"muted\">{}</span>",
                    &[&badge, &reason, &s(c, "reason_detail")],
                )),
                text(&format!(
                    "{} evals · {} denied · {} provisional",
                    n(c, "evaluations"),
                    n(c, "denials"),
                    n(c, "provisional")
                )),
                when(s(c, "latest_ts")),
            ];
            if ctx.can_operate() {
                let mut query = vec![("name", s(c, "package").to_string())];
                if let Some(p) = &ctx.project {
                    query.push(("project", p.clone()));
                }
                let href = format!(
                    "/dashboard/registry?{}#add-rule",
                    serde_urlencoded::to_string(&query).unwrap_or_default()
                );
                cells.push(view::nowrap(tpl(
                    "<a href=\"{}\">Add a rule<span class=\"vh\"> for {}</span></a>",
                    &[&href, &s(c, "package")],
                )));
            }
            cells
        })
        .collect();
    let heads: &[&'static str] = if ctx.can_operate() {
        &[
            "Package",
            "Why it is listed",
            "Activity",
            "Last seen",
            "Action",
        ]
    } else {
        &["Package", "Why it is listed", "Activity", "Last seen"]
    };
    table(
        "Packages checked but never proposed (30 days)",
        heads,
        rows,
        "No candidates: every package seen lately is in the registry or was requested.",
    )
}

fn add_rule_html(ctx: &PageCtx) -> Html {
    if !ctx.can_operate() {
        return Html::lit("<p class=\"muted\">Adding a rule needs the operator role.</p>");
    }
    let name = ctx.param("name").unwrap_or("");
    tpl(
        "<form method=\"post\" action=\"/dashboard/registry/rules{}\">{}\
         <div class=\"fields\"><div class=\"wide\"><label for=\"rule-name\">Package name</label>\
         <input type=\"text\" id=\"rule-name\" name=\"name\" value=\"{}\" required maxlength=\"200\" autocomplete=\"off\" spellcheck=\"false\"></div></div>\
         {}<div class=\"actions\"><button type=\"submit\" id=\"rule-submit\">Propose rule</button></div></form>",
        &[
            &ctx.scope_query(),
            &hidden("csrf", &ctx.csrf()),
            &name,
            &rule_fields("rule", "approved", FROM_OPERATOR, false),
        ],
    )
}

fn policies_html(ctx: &PageCtx, p: &GlobalPolicies) -> Html {
    let join = |v: &[String]| v.join(", ");
    if !ctx.can_operate() {
        return tpl(
            "<dl class=\"policy\"><dt>CVE threshold</dt><dd>{} (deny at CVSS {} and above)</dd>\
             <dt>Unknown license policy</dt><dd>{}</dd><dt>Auto-approve licenses</dt><dd>{}</dd>\
             <dt>Hard-ban licenses</dt><dd>{}</dd><dt>Human-review licenses</dt><dd>{}</dd></dl>\
             <p class=\"muted\">Editing the policies needs the operator role.</p>",
            &[
                &p.cve_threshold.to_string(),
                &format!("{:.1}", p.cve_threshold * 10.0),
                &p.unknown_license_policy.as_str(),
                &join(&p.auto_approve_licenses),
                &join(&p.hard_ban_licenses),
                &join(&p.require_human_review_licenses),
            ],
        );
    }
    let unknown: Html = UNKNOWN_POLICIES
        .iter()
        .map(|(v, label)| {
            if *v == p.unknown_license_policy.as_str() {
                tpl("<option value=\"{}\" selected>{}</option>", &[v, label])
            } else {
                tpl("<option value=\"{}\">{}</option>", &[v, label])
            }
        })
        .collect();
    tpl(
        "<form method=\"post\" action=\"/dashboard/registry/policies{}\">{}<div class=\"fields\">\
         <div><label for=\"pol-cve\">CVE threshold <span class=\"hint\">(0–1; 0.9 denies CVSS 9.0+)</span></label>\
         <input type=\"number\" id=\"pol-cve\" name=\"cve_threshold\" min=\"0\" max=\"1\" step=\"0.05\" value=\"{}\" required></div>\
         <div><label for=\"pol-unknown\">Unknown license policy</label><select id=\"pol-unknown\" name=\"unknown_license_policy\">{}</select></div>\
         <div class=\"wide\"><label for=\"pol-auto\">Auto-approve licenses <span class=\"hint\">(comma-separated SPDX ids)</span></label>\
         <input type=\"text\" id=\"pol-auto\" name=\"auto_approve_licenses\" value=\"{}\" spellcheck=\"false\"></div>\
         <div class=\"wide\"><label for=\"pol-ban\">Hard-ban licenses</label>\
         <input type=\"text\" id=\"pol-ban\" name=\"hard_ban_licenses\" value=\"{}\" spellcheck=\"false\"></div>\
         <div class=\"wide\"><label for=\"pol-review\">Human-review licenses</label>\
         <input type=\"text\" id=\"pol-review\" name=\"require_human_review_licenses\" value=\"{}\" spellcheck=\"false\"></div>\
         </div><div class=\"actions\"><button type=\"submit\" id=\"policies-submit\">Save policies</button></div></form>",
        &[
            &ctx.scope_query(),
            &hidden("csrf", &ctx.csrf()),
            &p.cve_threshold.to_string(),
            &unknown,
            &join(&p.auto_approve_licenses),
            &join(&p.hard_ban_licenses),
            &join(&p.require_human_review_licenses),
        ],
    )
}

fn packages_html(ctx: &PageCtx, rules: &BTreeMap<String, Rule>) -> (Html, Html) {
    let needle = ctx.param("q").unwrap_or("").trim().to_ascii_lowercase();
    let wanted = ctx.param("status").unwrap_or("");
    let mut status_opts = vec![""];
    status_opts.extend(STATUSES);
    let status_options: Html = status_opts
        .iter()
        .map(|v| {
            let label = if v.is_empty() { "any status" } else { v };
            if *v == wanted {
                tpl("<option value=\"{}\" selected>{}</option>", &[v, &label])
            } else {
                tpl("<option value=\"{}\">{}</option>", &[v, &label])
            }
        })
        .collect();
    let project = ctx
        .project
        .as_ref()
        .map(|p| hidden("project", p))
        .unwrap_or_default();
    let filter = tpl(
        "<form class=\"filter\" method=\"get\" action=\"/dashboard/registry#packages\" role=\"search\">{}\
         <div><label for=\"pkg-q\">Name contains</label><input type=\"search\" id=\"pkg-q\" name=\"q\" value=\"{}\"></div>\
         <div><label for=\"pkg-status\">Status</label><select id=\"pkg-status\" name=\"status\">{}</select></div>\
         <button type=\"submit\" class=\"secondary\">Filter</button></form>",
        &[&project, &ctx.param("q").unwrap_or(""), &status_options],
    );
    let rows = rules
        .iter()
        .filter(|(k, r)| {
            (needle.is_empty()
                || k.contains(&needle)
                || r.name.to_ascii_lowercase().contains(&needle))
                && (wanted.is_empty() || r.status.as_str() == wanted)
        })
        .map(|(_, r)| {
            vec![
                view::cell(tpl("<strong>{}</strong>", &[&r.name])),
                view::nowrap(view::status(r.status.as_str())),
                view::dash_or(r.bounds_text().as_deref()),
                view::dash_or(r.replacement.as_deref()),
                wrap(r.reason.as_deref().unwrap_or("")),
                view::dash_or(r.owner.as_deref()),
                view::dash_or(r.expires_text().as_deref()),
            ]
        })
        .collect();
    let t = table(
        "Registry rules",
        &[
            "Package",
            "Status",
            "Versions",
            "Replacement",
            "Reason",
            "Owner",
            "Expires",
        ],
        rows,
        "No rule matches.",
    );
    (filter, t)
}

pub async fn page(
    State(app): State<Shared>,
    Extension(identity): Extension<Identity>,
    query: RawQuery,
) -> Response {
    let ctx = PageCtx::new(identity, query);
    let loaded_registry = app.registry.current();
    let keys: HashSet<String> = loaded_registry.registry.packages.keys().cloned().collect();
    let project = ctx.project.clone();
    let keys_for_read = keys.clone();
    let loaded = read(&app, move |st| {
        let scoped = match project.as_deref() {
            Some(p) => Some(st.approval_requests_report(Some(p), Some(PENDING_REVIEW))?),
            None => None,
        };
        Ok((st.pending(&keys_for_read)?, scoped, st.projects_report()?))
    })
    .await;
    let (pending, scoped, projects) = match loaded {
        Ok(v) => v,
        Err(resp) => return resp,
    };
    let explicit: Vec<Pending> = match &scoped {
        Some(report) => pending_for_project(arr(report, "items"), &keys),
        None => arr(&pending, "explicit")
            .iter()
            .map(pending_from_report)
            .collect(),
    };
    let proposer = app.proposer.name();
    let proposer_note = if app.proposer.writes_registry() {
        let path = app
            .registry
            .path()
            .map(|p| p.display().to_string())
            .unwrap_or_default();
        tpl(
            "<p class=\"note\">Decisions go through the <strong>{}</strong> proposer: it writes \
             <code>{}</code> in place and the daemon reloads it at once.</p>",
            &[&proposer, &path],
        )
    } else {
        tpl(
            "<p class=\"note\">Decisions go through the <strong>{}</strong> proposer: proposals are \
             logged and requests marked decided, but no registry file changes. Set \
             <code>REGISTRY_PATH</code> to a writable <code>registry.yml</code> to have them written.</p>",
            &[&proposer],
        )
    };
    let role_note = if ctx.can_operate() {
        Html::new()
    } else {
        tpl(
            "<p class=\"note\">You have the <strong>{}</strong> role: you can read the workshop; \
             deciding requests and editing the registry need the operator role.</p>",
            &[&ctx.identity.role.as_str()],
        )
    };
    let (filter, packages) = packages_html(&ctx, &loaded_registry.registry.packages);
    let export_href = format!("/dashboard/registry/export.yml{}", ctx.scope_query());
    let main = fill(
        PAGE,
        &[
            ("scope", &scope_line(ctx.project.as_deref())),
            ("proposer_note", &proposer_note),
            ("role_note", &role_note),
            ("pending_count", &(explicit.len() as u64)),
            ("pending", &pending_html(&ctx, &explicit)),
            (
                "candidates",
                &candidates_html(&ctx, arr(&pending, "implicit")),
            ),
            ("add_rule", &add_rule_html(&ctx)),
            (
                "policies",
                &policies_html(&ctx, &loaded_registry.registry.policies),
            ),
            ("packages_filter", &filter),
            ("packages", &packages),
            ("export_href", &export_href),
            ("version", &loaded_registry.registry.version),
        ],
    );
    let status = Status::of(&app, project_names(&projects));
    render_page(
        &ctx,
        Nav::Registry,
        "Registry workshop",
        &status,
        flash_of(&ctx),
        main,
    )
}

// ---- export -------------------------------------------------------------------

/// The live registry as YAML: the file itself when it is what is loaded
/// (comments kept), else a rendering of the loaded registry.
pub async fn export(State(app): State<Shared>) -> Response {
    let loaded = app.registry.current();
    let path = app.registry.path().map(|p| p.to_path_buf());
    let text = if !loaded.from_file {
        STARTER_YAML.to_string()
    } else {
        let on_disk = match path {
            Some(p) => tokio::task::spawn_blocking(move || std::fs::read(p).ok())
                .await
                .ok()
                .flatten(),
            None => None,
        };
        match on_disk {
            Some(bytes)
                if Some(crate::registry_state::content_hash(&bytes)) == loaded.hash
                    && !String::from_utf8_lossy(&bytes)
                        .trim_start()
                        .starts_with('{') =>
            {
                String::from_utf8_lossy(&bytes).into_owned()
            }
            _ => registry_to_yaml(&loaded.registry),
        }
    };
    let mut resp = (StatusCode::OK, text).into_response();
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/yaml; charset=utf-8"),
    );
    h.insert(
        header::CONTENT_DISPOSITION,
        HeaderValue::from_static("attachment; filename=\"registry.yml\""),
    );
    harden(&mut resp);
    resp
}

// ---- actions ------------------------------------------------------------------

/// A parsed form body.
struct Form(Vec<(String, String)>);

impl Form {
    fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Trimmed and non-empty.
    fn field(&self, key: &str) -> Option<&str> {
        self.get(key).map(str::trim).filter(|v| !v.is_empty())
    }
}

fn back_to(ctx: &PageCtx) -> String {
    format!("/dashboard/registry{}", ctx.scope_query())
}

/// Role, origin, body and CSRF token of a workshop POST.
fn guard(
    ctx: &PageCtx,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Form, Box<Response>> {
    let back = back_to(ctx);
    let refuse = |status: StatusCode, title: &str, detail: &str| {
        Box::new(error_page(status, title, detail, &back))
    };
    if !ctx.can_operate() {
        return Err(refuse(
            StatusCode::FORBIDDEN,
            "The operator role is needed",
            &format!(
                "Registry changes need the operator role; {} has the {} role.",
                ctx.identity.id, ctx.identity.role
            ),
        ));
    }
    if let Some(why) = csrf::cross_origin(headers) {
        return Err(refuse(
            StatusCode::FORBIDDEN,
            "Form refused",
            &format!("This form post was refused: {why}."),
        ));
    }
    let bytes = body.map_err(|e| {
        refuse(
            e.status(),
            "Form not readable",
            "The form could not be read (too large, or cut off).",
        )
    })?;
    let pairs: Vec<(String, String)> = serde_urlencoded::from_bytes(&bytes).map_err(|_| {
        refuse(
            StatusCode::BAD_REQUEST,
            "Form not readable",
            "The form body is not URL-encoded.",
        )
    })?;
    let form = Form(pairs);
    if !csrf::token_valid(&ctx.identity, form.get("csrf")) {
        return Err(refuse(
            StatusCode::FORBIDDEN,
            "Form expired or not yours",
            "The form's CSRF token does not match your session (the daemon may have restarted since the page loaded). Reload the page and try again.",
        ));
    }
    Ok(form)
}

/// 303 to the top of the workshop, where the one-time flash shows.
fn redirect(ctx: &PageCtx, flash: Flash) -> Response {
    let id = flash::put(&ctx.identity.id, flash);
    let mut query = Vec::new();
    if let Some(p) = &ctx.project {
        query.push(("project", p.as_str()));
    }
    query.push(("flash", id.as_str()));
    let location = format!(
        "/dashboard/registry?{}",
        serde_urlencoded::to_string(&query).unwrap_or_default()
    );
    let mut resp = StatusCode::SEE_OTHER.into_response();
    if let Ok(v) = HeaderValue::from_str(&location) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    harden(&mut resp);
    resp
}

/// The rule a form describes, validated like `POST /registry/proposals`.
fn rule_of(form: &Form, name: &str) -> Result<Rule, String> {
    let status = form.field("status").unwrap_or("approved");
    let mut fields = Map::new();
    fields.insert("status".into(), Value::String(status.to_string()));
    for key in ["reason", "replacement", "min_version", "max_version"] {
        if let Some(v) = form.field(key) {
            fields.insert(key.into(), Value::String(v.to_string()));
        }
    }
    validate_rule(name, &Value::Object(fields)).map_err(|e| e.message)
}

/// Runs the proposer, then reloads when it wrote the live file.
async fn propose(
    app: &Shared,
    rule: Rule,
    context: ProposalContext,
) -> Result<ProposalResult, String> {
    let proposer = app.proposer.clone();
    tokio::task::spawn_blocking(move || proposer.propose(&rule, &context))
        .await
        .map_err(|e| format!("the proposer crashed: {e}"))?
        .map_err(|e| e.0)
}

async fn reload_after(app: &Shared, result: &mut ProposalResult) {
    if app.proposer.writes_registry() {
        if let Err(e) = app.registry.reload("proposal").await {
            result.detail = format!("{} The reload failed: {e}", result.detail);
        }
    }
}

/// Ids of the pending requests for `canonical` (in `project` when given).
async fn pending_ids(
    app: &Shared,
    project: Option<String>,
    canonical: String,
) -> Result<Vec<String>, String> {
    let store = app.store.clone();
    let report = tokio::task::spawn_blocking(move || {
        store.approval_requests_report(project.as_deref(), Some(PENDING_REVIEW))
    })
    .await
    .map_err(|e| e.to_string())?
    .map_err(|e| e.to_string())?;
    Ok(arr(&report, "items")
        .iter()
        .filter(|it| s(it, "canonical") == canonical)
        .filter_map(|it| opt_s(it, "id").map(str::to_string))
        .collect())
}

/// Marks each request `status` with `note`; returns how many changed.
async fn mark(
    app: &Shared,
    ids: &[String],
    status: &str,
    actor: &str,
    note: &str,
) -> Result<usize, String> {
    let mut done = 0;
    for id in ids {
        app.store
            .set_request_status(id, status, actor, Some(note))
            .await
            .map_err(|e| e.to_string())?;
        done += 1;
    }
    Ok(done)
}

fn plural(n: usize, one: &str) -> String {
    if n == 1 {
        format!("1 {one}")
    } else {
        format!("{n} {one}s")
    }
}

pub async fn decide(
    State(app): State<Shared>,
    Extension(identity): Extension<Identity>,
    query: RawQuery,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let ctx = PageCtx::new(identity, query);
    let form = match guard(&ctx, &headers, body) {
        Ok(f) => f,
        Err(resp) => return *resp,
    };
    let Some(package) = form.field("package").map(str::to_string) else {
        return redirect(
            &ctx,
            Flash::err("No package named", "The form did not say which request."),
        );
    };
    let canonical = canonical_name(&package);
    let actor = ctx.identity.id.clone();
    let ids = match pending_ids(&app, ctx.project.clone(), canonical.clone()).await {
        Ok(ids) => ids,
        Err(e) => return redirect(&ctx, Flash::err("Audit database unavailable", e)),
    };
    if ids.is_empty() {
        return redirect(
            &ctx,
            Flash::err(
                format!("No pending request for {package}"),
                "It was decided already (or withdrawn); nothing changed.",
            ),
        );
    }
    match form.get("decision") {
        Some("reject") => {
            let Some(note) = form.field("note") else {
                return redirect(
                    &ctx,
                    Flash::err(
                        format!("{package} was not rejected"),
                        "A rejection needs a note saying why; nothing changed.",
                    ),
                );
            };
            match mark(&app, &ids, REJECTED, &actor, note).await {
                Ok(n) => redirect(
                    &ctx,
                    Flash::ok(
                        format!("Rejected {package}"),
                        format!("{} marked REJECTED.", plural(n, "request")),
                    ),
                ),
                Err(e) => redirect(&ctx, Flash::err("Could not record the decision", e)),
            }
        }
        Some("approve") => {
            let rule = match rule_of(&form, &package) {
                Ok(r) => r,
                Err(e) => {
                    return redirect(&ctx, Flash::err(format!("{package} was not approved"), e))
                }
            };
            let status = rule.status;
            let context = ProposalContext {
                source: "operator".into(),
                project: ctx
                    .project
                    .clone()
                    .or_else(|| form.field("request_project").map(str::to_string))
                    .unwrap_or_else(|| "dashboard".into()),
                requester: actor.clone(),
                rationale: Some(FROM_PENDING.into()),
                agent_model: None,
                agent_version: None,
            };
            let mut result = match propose(&app, rule, context).await {
                Ok(r) => r,
                Err(e) => {
                    return redirect(
                        &ctx,
                        Flash::err(format!("The proposer refused {package}"), e),
                    )
                }
            };
            // Banning or deprecating a requested package answers the
            // request with a no.
            let (to, verb) = match status {
                RuleStatus::Banned | RuleStatus::Deprecated => (REJECTED, "REJECTED"),
                _ => (APPROVED, "APPROVED"),
            };
            let note = format!(
                "{} as {} in the registry workshop ({} proposer: {})",
                if to == APPROVED {
                    "approved"
                } else {
                    "classified"
                },
                status.as_str(),
                result.backend,
                result.status
            );
            let marked = mark(&app, &ids, to, &actor, &note).await;
            if app.proposer.reviews() {
                // The decision goes out as a pull request: link it from the requests.
                for id in &ids {
                    let outcome = lex_align_store::ProposalOutcome {
                        backend: result.backend.clone(),
                        status: result.status.clone(),
                        url: result.url.clone(),
                        detail: result.detail.clone(),
                    };
                    if let Err(e) = app.store.set_proposal_outcome(id, outcome).await {
                        tracing::warn!(request = %id, "proposal outcome not recorded: {e}");
                    }
                }
            }
            reload_after(&app, &mut result).await;
            let mut flash = match marked {
                Ok(n) => Flash::ok(
                    format!("{package}: {} rule {}", status.as_str(), result.status),
                    format!("{} {} {verb}.", result.detail, plural(n, "request")),
                ),
                Err(e) => Flash::err(
                    format!(
                        "{package}: rule {}, but the requests were not marked",
                        result.status
                    ),
                    e,
                ),
            };
            flash.link = result.url.clone();
            redirect(&ctx, flash)
        }
        _ => redirect(&ctx, Flash::err("No decision", "Choose approve or reject.")),
    }
}

pub async fn add_rule(
    State(app): State<Shared>,
    Extension(identity): Extension<Identity>,
    query: RawQuery,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let ctx = PageCtx::new(identity, query);
    let form = match guard(&ctx, &headers, body) {
        Ok(f) => f,
        Err(resp) => return *resp,
    };
    let Some(name) = form.field("name").map(str::to_string) else {
        return redirect(
            &ctx,
            Flash::err("No rule added", "A package name is required."),
        );
    };
    let rule = match rule_of(&form, &name) {
        Ok(r) => r,
        Err(e) => return redirect(&ctx, Flash::err(format!("No rule for {name}"), e)),
    };
    let status = rule.status;
    let context = ProposalContext {
        source: "operator".into(),
        project: ctx.project.clone().unwrap_or_else(|| "dashboard".into()),
        requester: ctx.identity.id.clone(),
        rationale: Some(FROM_OPERATOR.into()),
        agent_model: None,
        agent_version: None,
    };
    match propose(&app, rule, context).await {
        Ok(mut result) => {
            reload_after(&app, &mut result).await;
            let mut flash = Flash::ok(
                format!("{name}: {} rule {}", status.as_str(), result.status),
                result.detail.clone(),
            );
            flash.link = result.url.clone();
            redirect(&ctx, flash)
        }
        Err(e) => redirect(&ctx, Flash::err(format!("The proposer refused {name}"), e)),
    }
}

/// `a, b\nc` → `[a, b, c]`, each checked against the license vocabulary.
fn license_list(form: &Form, key: &str) -> Result<Vec<String>, String> {
    let mut out: Vec<String> = Vec::new();
    for item in form
        .get(key)
        .unwrap_or("")
        .split([',', '\n', '\r'])
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        check_policy_token(item)
            .map_err(|why| format!("{key}: unknown license `{item}`: {why}"))?;
        if !out.iter().any(|o| o == item) {
            out.push(item.to_string());
        }
    }
    Ok(out)
}

fn policies_of(form: &Form) -> Result<GlobalPolicies, String> {
    let threshold = form
        .field("cve_threshold")
        .and_then(|t| t.parse::<f64>().ok())
        .filter(|t| t.is_finite() && (0.0..=1.0).contains(t))
        .ok_or("cve_threshold must be a number between 0 and 1")?;
    let unknown = form
        .field("unknown_license_policy")
        .and_then(UnknownLicensePolicy::parse)
        .ok_or("unknown_license_policy must be one of block, warn, pending_approval, allow")?;
    Ok(GlobalPolicies {
        auto_approve_licenses: license_list(form, "auto_approve_licenses")?,
        hard_ban_licenses: license_list(form, "hard_ban_licenses")?,
        require_human_review_licenses: license_list(form, "require_human_review_licenses")?,
        unknown_license_policy: unknown,
        cve_threshold: threshold,
    })
}

pub async fn policies(
    State(app): State<Shared>,
    Extension(identity): Extension<Identity>,
    query: RawQuery,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let ctx = PageCtx::new(identity, query);
    let form = match guard(&ctx, &headers, body) {
        Ok(f) => f,
        Err(resp) => return *resp,
    };
    let policies = match policies_of(&form) {
        Ok(p) => p,
        Err(e) => return redirect(&ctx, Flash::err("The policies were not changed", e)),
    };
    let context = ProposalContext {
        source: "operator".into(),
        project: ctx.project.clone().unwrap_or_else(|| "dashboard".into()),
        requester: ctx.identity.id.clone(),
        rationale: Some(FROM_OPERATOR.into()),
        agent_model: None,
        agent_version: None,
    };
    let proposer = app.proposer.clone();
    let outcome =
        tokio::task::spawn_blocking(move || proposer.propose_policies(&policies, &context))
            .await
            .map_err(|e| format!("the proposer crashed: {e}"))
            .and_then(|r| r.map_err(|e| e.0));
    match outcome {
        Ok(mut result) => {
            reload_after(&app, &mut result).await;
            let mut flash = Flash::ok(
                format!("Global policies {}", result.status),
                result.detail.clone(),
            );
            flash.link = result.url.clone();
            redirect(&ctx, flash)
        }
        Err(e) => redirect(&ctx, Flash::err("The proposer refused the policies", e)),
    }
}
