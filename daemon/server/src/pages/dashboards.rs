//! The read-only dashboards: overview, legal, security, agents. Each reads
//! the same store reports the JSON API serves (their shapes untouched).

use std::collections::HashSet;

use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::Extension;
use lex_align_store::{Store, StoreError};
use serde_json::Value;

use super::charts::{stacked_bars, stacked_columns, Series};
use super::html::{fill, tpl, Html};
use super::view::{
    self, agent, arr, cve_list, cvss, f, kpis, n, numbers, opt_s, s, scope_line, strings, table,
    text, when, wrap, Cell, Kpi,
};
use super::{error_page, flash, render_page, Nav, PageCtx, Status};
use crate::auth::Identity;
use crate::http::Shared;

const OVERVIEW: &str = include_str!("templates/overview.html");
const LEGAL: &str = include_str!("templates/legal.html");
const SECURITY: &str = include_str!("templates/security.html");
const AGENTS: &str = include_str!("templates/agents.html");

/// Days on the overview's timeline.
pub const TIMELINE_DAYS: u32 = 14;

/// Runs store reads off the async workers; a failure is a 503 page.
pub(super) async fn read<T: Send + 'static>(
    app: &Shared,
    f: impl FnOnce(&Store) -> Result<T, StoreError> + Send + 'static,
) -> Result<T, Response> {
    let store = app.store.clone();
    let unavailable = |e: String| {
        error_page(
            StatusCode::SERVICE_UNAVAILABLE,
            "Audit database unavailable",
            &e,
            "/",
        )
    };
    match tokio::task::spawn_blocking(move || f(&store)).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(unavailable(e.to_string())),
        Err(e) => Err(unavailable(e.to_string())),
    }
}

/// Project names for the side panel's selector.
pub(super) fn project_names(report: &Value) -> Vec<String> {
    arr(report, "projects")
        .iter()
        .filter_map(|p| opt_s(p, "project").map(str::to_string))
        .collect()
}

/// The flash the page was redirected with, if it is the caller's.
pub(super) fn flash_of(ctx: &PageCtx) -> Html {
    ctx.param("flash")
        .and_then(|id| flash::take(&ctx.identity.id, id))
        .map(|f| f.html())
        .unwrap_or_default()
}

fn registry_pairs(app: &Shared) -> Vec<(String, String)> {
    app.registry
        .current()
        .registry
        .packages
        .iter()
        .map(|(k, r)| (k.clone(), r.status.as_str().to_string()))
        .collect()
}

const VERDICTS: [Series; 4] = [
    Series {
        name: "allowed",
        class: "s-allowed",
    },
    Series {
        name: "provisional",
        class: "s-provisional",
    },
    Series {
        name: "denied",
        class: "s-denied",
    },
    Series {
        name: "CVE alerts",
        class: "s-alert",
    },
];

const OUTCOMES: [Series; 3] = [
    Series {
        name: "allowed",
        class: "s-allowed",
    },
    Series {
        name: "provisional",
        class: "s-provisional",
    },
    Series {
        name: "denied",
        class: "s-denied",
    },
];

const SEVERITIES: [(&str, &str, Series); 5] = [
    (
        "critical",
        "CVSS 9.0 and above",
        Series {
            name: "critical",
            class: "s-critical",
        },
    ),
    (
        "high",
        "7.0 to 8.9",
        Series {
            name: "high",
            class: "s-high",
        },
    ),
    (
        "medium",
        "4.0 to 6.9",
        Series {
            name: "medium",
            class: "s-medium",
        },
    ),
    (
        "low",
        "0.1 to 3.9",
        Series {
            name: "low",
            class: "s-low",
        },
    ),
    (
        "unknown",
        "no score",
        Series {
            name: "unknown",
            class: "s-unknown",
        },
    ),
];

// ---- overview -----------------------------------------------------------------

pub async fn overview(
    State(app): State<Shared>,
    Extension(identity): Extension<Identity>,
    query: RawQuery,
) -> Response {
    let ctx = PageCtx::new(identity, query);
    let project = ctx.project.clone();
    let keys: HashSet<String> = app
        .registry
        .current()
        .registry
        .packages
        .keys()
        .cloned()
        .collect();
    let registry = registry_pairs(&app);
    let loaded = read(&app, move |st| {
        Ok((
            st.projects_report()?,
            st.verdicts_per_day(project.as_deref(), TIMELINE_DAYS)?,
            st.pending(&keys)?,
            st.security_report(project.as_deref(), &registry)?,
            st.approval_requests_report(project.as_deref(), Some("PENDING_REVIEW"))?,
        ))
    })
    .await;
    let (projects, days, pending, security, waiting) = match loaded {
        Ok(v) => v,
        Err(resp) => return resp,
    };
    let q = ctx.scope_query();
    let rows: Vec<&Value> = arr(&projects, "projects")
        .iter()
        .filter(|p| {
            ctx.project
                .as_deref()
                .is_none_or(|sel| s(p, "project") == sel)
        })
        .collect();
    let sum = |k: &str| rows.iter().map(|p| n(p, k)).sum::<u64>();
    let waiting_n = arr(&waiting, "items").len() as u64;
    let figures = kpis(&[
        Kpi {
            label: "evaluations",
            value: sum("evaluations"),
            tone: "t-info",
            href: Some(format!("/dashboard/agents{q}")),
        },
        Kpi {
            label: "denials",
            value: sum("denials"),
            tone: "t-denied",
            href: None,
        },
        Kpi {
            label: "requests awaiting review",
            value: waiting_n,
            tone: "t-provisional",
            href: Some(format!("/dashboard/registry{q}#pending")),
        },
        Kpi {
            label: "registry rules",
            value: app.registry.current().registry.packages.len() as u64,
            tone: "t-allowed",
            href: Some(format!("/dashboard/registry{q}#packages")),
        },
    ]);

    let labels: Vec<String> = days.iter().map(|d| d.day.clone()).collect();
    let values: Vec<Vec<u64>> = days
        .iter()
        .map(|d| vec![d.allowed, d.provisional, d.denied, d.alerts])
        .collect();
    let total: u64 = values.iter().flatten().sum();
    let timeline = stacked_columns(
        "timeline",
        "Verdicts per day",
        &format!(
            "Stacked columns of allowed, provisional, denied and CVE-alert verdicts for each of the last {TIMELINE_DAYS} days (UTC); {total} in all."
        ),
        &labels,
        &VERDICTS,
        &values,
    );
    let timeline_rows = days
        .iter()
        .rev()
        .map(|d| {
            vec![
                text(&d.day),
                view::num(d.allowed),
                view::num(d.provisional),
                view::num(d.denied),
                view::num(d.alerts),
            ]
        })
        .collect();
    let timeline_table = numbers(
        "The numbers per day",
        table(
            "Verdicts per day",
            &[
                "Day (UTC)",
                "Allowed",
                "Provisional",
                "Denied",
                "CVE alerts",
            ],
            timeline_rows,
            "No evaluations in this window.",
        ),
    );

    let project_rows = rows
        .iter()
        .map(|p| {
            let name = s(p, "project");
            let href = format!("/{}", super::scope_query(Some(name)));
            vec![
                view::cell(tpl("<a href=\"{}\">{}</a>", &[&href, &name])),
                view::num(n(p, "evaluations")),
                view::num(n(p, "denials")),
                view::num(n(p, "approval_requests")),
            ]
        })
        .collect();
    let projects_table = table(
        "Evaluations, denials and approval requests per project",
        &["Project", "Evaluations", "Denials", "Approval requests"],
        project_rows,
        "No project has asked the daemon anything yet.",
    );

    let implicit = arr(&pending, "implicit")
        .iter()
        .filter(|c| {
            ctx.project
                .as_deref()
                .is_none_or(|p| s(c, "latest_project") == p)
        })
        .count();
    let attention_items = [
        (
            waiting_n,
            "approval requests wait for a decision",
            format!("/dashboard/registry{q}#pending"),
        ),
        (
            implicit as u64,
            "packages were checked but never proposed",
            format!("/dashboard/registry{q}#candidates"),
        ),
        (
            arr(&security, "hot_registry_packages").len() as u64,
            "registry-approved packages drew CVE verdicts in 30 days",
            format!("/dashboard/security{q}#hot"),
        ),
        (
            arr(&security, "cve_alerts").len() as u64,
            "CVE alerts from the scanner",
            format!("/dashboard/security{q}#alerts"),
        ),
    ];
    let attention: Html = attention_items
        .iter()
        .map(|(count, what, href)| {
            tpl(
                "<li><a href=\"{}\"><strong>{}</strong><span>{}</span></a></li>",
                &[href, count, what],
            )
        })
        .collect();
    let attention = tpl("<ul class=\"attention\">{}</ul>", &[&attention]);

    let main = fill(
        OVERVIEW,
        &[
            ("scope", &scope_line(ctx.project.as_deref())),
            ("kpis", &figures),
            ("timeline", &timeline),
            ("timeline_table", &timeline_table),
            ("attention", &attention),
            ("projects", &projects_table),
        ],
    );
    let status = Status::of(&app, project_names(&projects));
    render_page(
        &ctx,
        Nav::Overview,
        "Overview",
        &status,
        flash_of(&ctx),
        main,
    )
}

// ---- legal --------------------------------------------------------------------

pub async fn legal(
    State(app): State<Shared>,
    Extension(identity): Extension<Identity>,
    query: RawQuery,
) -> Response {
    let ctx = PageCtx::new(identity, query);
    let project = ctx.project.clone();
    let loaded = read(&app, move |st| {
        Ok((st.legal_report(project.as_deref())?, st.projects_report()?))
    })
    .await;
    let (report, projects) = match loaded {
        Ok(v) => v,
        Err(resp) => return resp,
    };
    let breakdown = arr(&report, "license_breakdown");
    let unknown = report
        .get("unknown_license")
        .cloned()
        .unwrap_or(Value::Null);
    let figures = kpis(&[
        Kpi {
            label: "evaluations with a license",
            value: breakdown.iter().map(|b| n(b, "total")).sum(),
            tone: "t-info",
            href: None,
        },
        Kpi {
            label: "license-driven denials",
            value: n(&report, "total_denials"),
            tone: "t-denied",
            href: Some("#recent".into()),
        },
        Kpi {
            label: "unknown-license evaluations",
            value: n(&unknown, "total"),
            tone: "t-provisional",
            href: Some("#unknown".into()),
        },
        Kpi {
            label: "distinct licenses",
            value: breakdown.len() as u64,
            tone: "t-allowed",
            href: None,
        },
    ]);
    let chart_rows: Vec<(String, Vec<u64>)> = breakdown
        .iter()
        .take(12)
        .map(|b| {
            (
                s(b, "license").to_string(),
                vec![n(b, "allowed"), n(b, "provisional"), n(b, "denied")],
            )
        })
        .collect();
    let chart = stacked_bars(
        "licenses",
        "Evaluations by license",
        "Horizontal bars, one per license (the twelve most seen), split into allowed, provisional and denied verdicts.",
        &chart_rows,
        &OUTCOMES,
    );
    let breakdown_table = table(
        "License breakdown",
        &["License", "Evaluations", "Allowed", "Provisional", "Denied"],
        breakdown
            .iter()
            .map(|b| {
                vec![
                    view::cell(view::license(s(b, "license"))),
                    view::num(n(b, "total")),
                    view::num(n(b, "allowed")),
                    view::num(n(b, "provisional")),
                    view::num(n(b, "denied")),
                ]
            })
            .collect(),
        "No evaluation has recorded a license yet.",
    );
    let policy = app
        .registry
        .current()
        .registry
        .policies
        .unknown_license_policy;
    let unknown_panel = tpl(
        "<p>Policy for packages whose license cannot be determined: <strong>{}</strong> \
         (<code>unknown_license_policy</code>, edited in the registry workshop).</p>{}",
        &[
            &policy.as_str(),
            &kpis(&[
                Kpi {
                    label: "evaluations",
                    value: n(&unknown, "total"),
                    tone: "t-info",
                    href: None,
                },
                Kpi {
                    label: "allowed",
                    value: n(&unknown, "allowed"),
                    tone: "t-allowed",
                    href: None,
                },
                Kpi {
                    label: "provisional",
                    value: n(&unknown, "provisional"),
                    tone: "t-provisional",
                    href: None,
                },
                Kpi {
                    label: "denied",
                    value: n(&unknown, "denied"),
                    tone: "t-denied",
                    href: None,
                },
            ]),
        ],
    );
    let top_projects = table(
        "Projects with the most license denials",
        &["Project", "Denials"],
        arr(&report, "top_projects")
            .iter()
            .map(|p| vec![text(s(p, "project")), view::num(n(p, "denials"))])
            .collect(),
        "No license denials.",
    );
    let recent = table(
        "Recent license denials",
        &["When", "Project", "Package", "License", "Reason", "Agent"],
        arr(&report, "recent")
            .iter()
            .map(|r| {
                vec![
                    when(s(r, "ts")),
                    text(s(r, "project")),
                    package_cell(r),
                    view::cell(view::license(s(r, "license"))),
                    wrap(s(r, "reason")),
                    text(&agent(opt_s(r, "agent_model"), opt_s(r, "agent_version"))),
                ]
            })
            .collect(),
        "No license denials.",
    );
    let main = fill(
        LEGAL,
        &[
            ("scope", &scope_line(ctx.project.as_deref())),
            ("kpis", &figures),
            ("chart", &chart),
            ("breakdown", &breakdown_table),
            ("unknown", &unknown_panel),
            ("top_projects", &top_projects),
            ("recent", &recent),
        ],
    );
    let status = Status::of(&app, project_names(&projects));
    render_page(
        &ctx,
        Nav::Legal,
        "Legal compliance",
        &status,
        flash_of(&ctx),
        main,
    )
}

fn package_cell(r: &Value) -> Cell {
    match opt_s(r, "version") {
        Some(v) => view::cell(tpl(
            "<strong>{}</strong> <span class=\"muted\">{}</span>",
            &[&s(r, "package"), &v],
        )),
        None => view::cell(tpl("<strong>{}</strong>", &[&s(r, "package")])),
    }
}

// ---- security -----------------------------------------------------------------

pub async fn security(
    State(app): State<Shared>,
    Extension(identity): Extension<Identity>,
    query: RawQuery,
) -> Response {
    let ctx = PageCtx::new(identity, query);
    let project = ctx.project.clone();
    let registry = registry_pairs(&app);
    let loaded = read(&app, move |st| {
        Ok((
            st.security_report(project.as_deref(), &registry)?,
            st.projects_report()?,
        ))
    })
    .await;
    let (report, projects) = match loaded {
        Ok(v) => v,
        Err(resp) => return resp,
    };
    let sev = report
        .get("severity_distribution")
        .cloned()
        .unwrap_or(Value::Null);
    let figures = kpis(&[
        Kpi {
            label: "CVE-driven denials",
            value: n(&report, "total_denials"),
            tone: "t-denied",
            href: Some("#recent".into()),
        },
        Kpi {
            label: "critical (9.0+)",
            value: n(&sev, "critical"),
            tone: "t-critical",
            href: None,
        },
        Kpi {
            label: "high (7.0+)",
            value: n(&sev, "high"),
            tone: "t-denied",
            href: None,
        },
        Kpi {
            label: "medium (4.0+)",
            value: n(&sev, "medium"),
            tone: "t-medium",
            href: None,
        },
        Kpi {
            label: "low or unscored",
            value: n(&sev, "low") + n(&sev, "unknown"),
            tone: "t-provisional",
            href: None,
        },
    ]);
    let sev_series: Vec<Series> = SEVERITIES
        .iter()
        .map(|(_, _, ser)| Series {
            name: ser.name,
            class: ser.class,
        })
        .collect();
    let sev_rows: Vec<(String, Vec<u64>)> = SEVERITIES
        .iter()
        .enumerate()
        .map(|(i, (key, _, _))| {
            let mut v = vec![0; SEVERITIES.len()];
            v[i] = n(&sev, key);
            (key.to_string(), v)
        })
        .collect();
    let severity_chart = stacked_bars(
        "severity",
        "CVE denials by severity",
        "Horizontal bars: CVE-driven denials in each CVSS severity band.",
        &sev_rows,
        &sev_series,
    );
    let severity_table = table(
        "Severity distribution",
        &["Severity", "CVSS", "Denials"],
        SEVERITIES
            .iter()
            .map(|(key, range, _)| vec![text(key), text(range), view::num(n(&sev, key))])
            .collect(),
        "",
    );
    let hot = table(
        "Registry packages with new CVE activity (30 days)",
        &[
            "Package",
            "Registry status",
            "Max CVSS",
            "Denials",
            "Provisional",
            "CVE ids",
            "Last seen",
        ],
        arr(&report, "hot_registry_packages")
            .iter()
            .map(|h| {
                vec![
                    view::cell(tpl("<strong>{}</strong>", &[&s(h, "package")])),
                    view::cell(view::status(s(h, "registry_status"))),
                    view::nowrap(cvss(f(h, "max_cvss"))),
                    view::num(n(h, "denials")),
                    view::num(n(h, "provisional")),
                    view::cell(cve_list(&strings(h, "cve_ids"), 5)),
                    when(s(h, "latest_ts")),
                ]
            })
            .collect(),
        "No approved registry package drew a CVE verdict in the last 30 days.",
    );
    let alerts = table(
        "CVE alerts from the scanner",
        &[
            "When",
            "Package",
            "Max CVSS",
            "CVE ids",
            "Registry status",
            "Reason",
        ],
        arr(&report, "cve_alerts")
            .iter()
            .map(|a| {
                vec![
                    when(s(a, "ts")),
                    view::cell(tpl(
                        "<strong>{}</strong> {}",
                        &[&s(a, "package"), &opt_s(a, "version").unwrap_or_default()],
                    )),
                    view::nowrap(cvss(f(a, "max_cvss"))),
                    view::cell(cve_list(&strings(a, "cve_ids"), 5)),
                    match opt_s(a, "registry_status") {
                        Some(st) => view::cell(view::status(st)),
                        None => text("—"),
                    },
                    wrap(s(a, "reason")),
                ]
            })
            .collect(),
        "No CVE alerts.",
    );
    let alerts: Html = [
        scan_line(&app.cve_scan.status(), app.cve_scan.open_alerts().len()),
        alerts,
    ]
    .into_iter()
    .collect();
    let top_packages = table(
        "Packages with the most CVE denials",
        &["Package", "Denials", "Max CVSS", "CVE ids"],
        arr(&report, "top_packages")
            .iter()
            .map(|p| {
                vec![
                    view::cell(tpl("<strong>{}</strong>", &[&s(p, "package")])),
                    view::num(n(p, "denials")),
                    view::nowrap(cvss(f(p, "max_cvss"))),
                    view::cell(cve_list(&strings(p, "cve_ids"), 5)),
                ]
            })
            .collect(),
        "No CVE denials.",
    );
    let top_cves = table(
        "Most frequent CVE identifiers",
        &["CVE", "Occurrences", "Max CVSS", "Packages"],
        arr(&report, "top_cves")
            .iter()
            .map(|c| {
                vec![
                    view::cell(tpl("<code>{}</code>", &[&s(c, "cve_id")])),
                    view::num(n(c, "occurrences")),
                    view::nowrap(cvss(f(c, "max_cvss"))),
                    text(&strings(c, "packages").join(", ")),
                ]
            })
            .collect(),
        "No CVE identifiers yet.",
    );
    let recent = table(
        "Recent CVE denials",
        &[
            "When", "Project", "Package", "Max CVSS", "CVE ids", "Reason", "Agent",
        ],
        arr(&report, "recent")
            .iter()
            .map(|r| {
                vec![
                    when(s(r, "ts")),
                    text(s(r, "project")),
                    package_cell(r),
                    view::nowrap(cvss(f(r, "max_cvss"))),
                    view::cell(cve_list(&strings(r, "cve_ids"), 3)),
                    wrap(s(r, "reason")),
                    text(&agent(opt_s(r, "agent_model"), opt_s(r, "agent_version"))),
                ]
            })
            .collect(),
        "No CVE denials.",
    );
    let main = fill(
        SECURITY,
        &[
            ("scope", &scope_line(ctx.project.as_deref())),
            ("kpis", &figures),
            ("severity_chart", &severity_chart),
            ("severity_table", &severity_table),
            ("hot", &hot),
            ("alerts", &alerts),
            ("top_packages", &top_packages),
            ("top_cves", &top_cves),
            ("recent", &recent),
        ],
    );
    let status = Status::of(&app, project_names(&projects));
    render_page(
        &ctx,
        Nav::Security,
        "Security posture",
        &status,
        flash_of(&ctx),
        main,
    )
}

/// The background re-scan's last run, above its alerts.
fn scan_line(st: &crate::cve_scan::ScanStatus, open: usize) -> Html {
    if !st.enabled {
        return tpl(
            "<p class=\"empty\">The background CVE re-scan is off (LEXALIGN_CVE_SCAN_INTERVAL_HOURS=0).</p>",
            &[],
        );
    }
    let last = st.last_scan_at.clone().unwrap_or_else(|| "not yet".into());
    let line = tpl(
        "<p>Last re-scan: {}; {} packages, {} versions checked; {} open alerts.</p>",
        &[&last, &st.packages_scanned, &st.versions_scanned, &open],
    );
    match &st.last_error {
        Some(e) => [line, tpl("<p role=\"alert\">Re-scan error: {}</p>", &[e])]
            .into_iter()
            .collect(),
        None => line,
    }
}

// ---- agents -------------------------------------------------------------------

pub async fn agents(
    State(app): State<Shared>,
    Extension(identity): Extension<Identity>,
    query: RawQuery,
) -> Response {
    let ctx = PageCtx::new(identity, query);
    let project = ctx.project.clone();
    let loaded = read(&app, move |st| {
        Ok((st.agents_report(project.as_deref())?, st.projects_report()?))
    })
    .await;
    let (report, projects) = match loaded {
        Ok(v) => v,
        Err(resp) => return resp,
    };
    let list = arr(&report, "agents");
    let sum = |k: &str| list.iter().map(|a| n(a, k)).sum::<u64>();
    let figures = kpis(&[
        Kpi {
            label: "distinct agent identities",
            value: list.len() as u64,
            tone: "t-info",
            href: None,
        },
        Kpi {
            label: "evaluations",
            value: sum("evaluations"),
            tone: "t-allowed",
            href: None,
        },
        Kpi {
            label: "denials",
            value: sum("denials"),
            tone: "t-denied",
            href: None,
        },
        Kpi {
            label: "provisional",
            value: sum("provisional"),
            tone: "t-provisional",
            href: None,
        },
    ]);
    let chart_rows: Vec<(String, Vec<u64>)> = list
        .iter()
        .take(10)
        .map(|a| {
            let (ev, den, prov) = (n(a, "evaluations"), n(a, "denials"), n(a, "provisional"));
            (
                agent(opt_s(a, "agent_model"), opt_s(a, "agent_version")),
                vec![ev.saturating_sub(den + prov), prov, den],
            )
        })
        .collect();
    let chart = stacked_bars(
        "agents",
        "Top agents by evaluations",
        "Horizontal bars, one per agent identity (the ten busiest), split into allowed, provisional and denied verdicts.",
        &chart_rows,
        &OUTCOMES,
    );
    let agents_table = table(
        "Agent identities",
        &[
            "Agent",
            "Evaluations",
            "Denials",
            "Provisional",
            "Last seen",
        ],
        list.iter()
            .map(|a| {
                vec![
                    view::cell(tpl(
                        "<span class=\"badge sev-unknown\">{}</span>",
                        &[&agent(opt_s(a, "agent_model"), opt_s(a, "agent_version"))],
                    )),
                    view::num(n(a, "evaluations")),
                    view::num(n(a, "denials")),
                    view::num(n(a, "provisional")),
                    when(s(a, "last_seen")),
                ]
            })
            .collect(),
        "No agent has asked yet.",
    );
    let recent = table(
        "The 50 most recent evaluations",
        &["When", "Project", "Package", "Verdict", "Reason", "Agent"],
        arr(&report, "recent")
            .iter()
            .map(|r| {
                vec![
                    when(s(r, "ts")),
                    text(s(r, "project")),
                    package_cell(r),
                    view::nowrap(view::verdict(s(r, "verdict"))),
                    wrap(s(r, "reason")),
                    text(&agent(opt_s(r, "agent_model"), opt_s(r, "agent_version"))),
                ]
            })
            .collect(),
        "No evaluations yet.",
    );
    let main = fill(
        AGENTS,
        &[
            ("scope", &scope_line(ctx.project.as_deref())),
            ("kpis", &figures),
            ("chart", &chart),
            ("agents", &agents_table),
            ("recent", &recent),
        ],
    );
    let status = Status::of(&app, project_names(&projects));
    render_page(
        &ctx,
        Nav::Agents,
        "Agent activity",
        &status,
        flash_of(&ctx),
        main,
    )
}
