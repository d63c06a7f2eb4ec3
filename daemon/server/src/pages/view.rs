//! Building blocks shared by the pages: tables, figures, badges, times,
//! and lenient readers for the report JSON.

use serde_json::Value;

use super::html::{tpl, Dec1, Html, Render};

// ---- report JSON ------------------------------------------------------------

pub fn s<'a>(v: &'a Value, key: &str) -> &'a str {
    v.get(key).and_then(Value::as_str).unwrap_or("")
}

pub fn opt_s<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str).filter(|x| !x.is_empty())
}

pub fn n(v: &Value, key: &str) -> u64 {
    v.get(key)
        .and_then(|x| x.as_u64().or_else(|| x.as_f64().map(|f| f.max(0.0) as u64)))
        .unwrap_or(0)
}

pub fn f(v: &Value, key: &str) -> Option<f64> {
    v.get(key).and_then(Value::as_f64)
}

pub fn arr<'a>(v: &'a Value, key: &str) -> &'a [Value] {
    v.get(key)
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[])
}

pub fn strings(v: &Value, key: &str) -> Vec<String> {
    arr(v, key)
        .iter()
        .filter_map(|x| x.as_str().map(str::to_string))
        .collect()
}

// ---- cells ---------------------------------------------------------------

/// A table cell's content and its class.
pub struct Cell {
    pub html: Html,
    pub class: &'static str,
}

pub fn text(s: &str) -> Cell {
    Cell {
        html: Html::text(s),
        class: "",
    }
}

pub fn wrap(s: &str) -> Cell {
    Cell {
        html: Html::text(s),
        class: "wrap",
    }
}

pub fn cell(html: Html) -> Cell {
    Cell { html, class: "" }
}

pub fn num(v: u64) -> Cell {
    Cell {
        html: tpl("{}", &[&v]),
        class: "num",
    }
}

pub fn nowrap(html: Html) -> Cell {
    Cell {
        html,
        class: "nowrap",
    }
}

/// `YYYY-MM-DD HH:MM UTC` in a `<time>` carrying the stored timestamp.
pub fn when(ts: &str) -> Cell {
    if ts.is_empty() {
        return text("—");
    }
    let shown = match (ts.get(..10), ts.get(11..16)) {
        (Some(d), Some(t)) => format!("{d} {t} UTC"),
        _ => ts.to_string(),
    };
    nowrap(tpl("<time datetime=\"{}\">{}</time>", &[&ts, &shown]))
}

pub fn dash_or(s: Option<&str>) -> Cell {
    text(s.unwrap_or("—"))
}

// ---- badges -----------------------------------------------------------------

pub fn verdict(v: &str) -> Html {
    let class = match v {
        "ALLOWED" => "v-allowed",
        "PROVISIONALLY_ALLOWED" => "v-provisional",
        "DENIED" => "v-denied",
        "CVE_ALERT" => "v-alert",
        _ => "v-other",
    };
    let label = match v {
        "PROVISIONALLY_ALLOWED" => "PROVISIONAL",
        other => other,
    };
    tpl("<span class=\"badge {}\">{}</span>", &[&class, &label])
}

pub fn status(st: &str) -> Html {
    let class = match st {
        "preferred" => "st-preferred",
        "approved" => "st-approved",
        "deprecated" => "st-deprecated",
        "version-constrained" => "st-version-constrained",
        "banned" => "st-banned",
        _ => "sev-unknown",
    };
    tpl("<span class=\"badge {}\">{}</span>", &[&class, &st])
}

pub fn severity_of(score: Option<f64>) -> &'static str {
    match score {
        Some(s) if s >= 9.0 => "critical",
        Some(s) if s >= 7.0 => "high",
        Some(s) if s >= 4.0 => "medium",
        Some(s) if s > 0.0 => "low",
        _ => "unknown",
    }
}

pub fn cvss(score: Option<f64>) -> Html {
    let sev = severity_of(score);
    match score {
        Some(sc) => tpl(
            "<span class=\"badge sev-{}\">{} <span class=\"vh\">CVSS, </span>{}</span>",
            &[&sev, &Dec1(sc), &sev],
        ),
        None => tpl("<span class=\"badge sev-unknown\">no score</span>", &[]),
    }
}

/// License family tag, as the original dashboard coloured them.
pub fn license(l: &str) -> Html {
    let up = l.to_ascii_uppercase();
    let family = if up == "UNKNOWN" || up.is_empty() {
        "unknown"
    } else if up.contains("GPL") {
        "copyleft"
    } else if [
        "MIT",
        "BSD",
        "APACHE",
        "ISC",
        "0BSD",
        "ZLIB",
        "PSF",
        "UNLICENSE",
        "CC0",
    ]
    .iter()
    .any(|p| up.starts_with(p))
    {
        "permissive"
    } else {
        "other"
    };
    let shown = if l.is_empty() { "UNKNOWN" } else { l };
    tpl(
        "<span class=\"badge lf-{}\">{}</span> <span class=\"vh\">({})</span>",
        &[&family, &shown, &family],
    )
}

pub fn agent(model: Option<&str>, version: Option<&str>) -> String {
    match (model, version) {
        (Some(m), Some(v)) => format!("{m} {v}"),
        (Some(m), None) => m.to_string(),
        (None, Some(v)) => format!("unknown {v}"),
        (None, None) => "unknown".into(),
    }
}

pub fn cve_list(ids: &[String], max: usize) -> Html {
    if ids.is_empty() {
        return Html::lit("—");
    }
    let mut out: Html = ids
        .iter()
        .take(max)
        .enumerate()
        .map(|(i, id)| {
            let sep = if i == 0 { "" } else { ", " };
            tpl("{}<code>{}</code>", &[&sep, id])
        })
        .collect();
    if ids.len() > max {
        out.push(tpl(" +{} more", &[&(ids.len() - max)]));
    }
    out
}

// ---- blocks -----------------------------------------------------------------

/// A captioned table in a keyboard-scrollable region; `empty` when no rows.
pub fn table(caption: &str, heads: &[&'static str], rows: Vec<Vec<Cell>>, empty: &str) -> Html {
    if rows.is_empty() {
        return tpl("<p class=\"empty\">{}</p>", &[&empty]);
    }
    let numeric: Vec<bool> = (0..heads.len())
        .map(|i| {
            rows.iter()
                .all(|r| r.get(i).is_some_and(|c| c.class == "num"))
        })
        .collect();
    let head: Html = heads
        .iter()
        .enumerate()
        .map(|(i, h)| {
            if numeric[i] {
                tpl("<th scope=\"col\" class=\"num\">{}</th>", &[h])
            } else {
                tpl("<th scope=\"col\">{}</th>", &[h])
            }
        })
        .collect();
    let body: Html = rows
        .into_iter()
        .map(|r| {
            let cells: Html = r
                .into_iter()
                .map(|c| {
                    if c.class.is_empty() {
                        tpl("<td>{}</td>", &[&c.html])
                    } else {
                        tpl("<td class=\"{}\">{}</td>", &[&c.class, &c.html])
                    }
                })
                .collect();
            tpl("<tr>{}</tr>", &[&cells])
        })
        .collect();
    tpl(
        "<div class=\"table-wrap\" role=\"region\" aria-label=\"{}\" tabindex=\"0\"><table>\
         <caption>{}</caption><thead><tr>{}</tr></thead><tbody>{}</tbody></table></div>",
        &[&caption, &caption, &head, &body],
    )
}

/// One key figure: label, value, tone (`t-*` class), optional link.
pub struct Kpi<'a> {
    pub label: &'a str,
    pub value: u64,
    pub tone: &'static str,
    pub href: Option<String>,
}

pub fn kpis(items: &[Kpi<'_>]) -> Html {
    let lis: Html = items
        .iter()
        .map(|k| {
            let inner = tpl(
                "<span class=\"v\">{}</span><span class=\"l\">{}</span>",
                &[&k.value, &k.label],
            );
            match &k.href {
                Some(h) => tpl(
                    "<li class=\"kpi {}\"><a href=\"{}\">{}</a></li>",
                    &[&k.tone, h, &inner],
                ),
                None => tpl("<li class=\"kpi {}\">{}</li>", &[&k.tone, &inner]),
            }
        })
        .collect();
    tpl(
        "<ul class=\"kpis\" aria-label=\"Key figures\">{}</ul>",
        &[&lis],
    )
}

/// "Showing project X" / "All projects".
pub fn scope_line(project: Option<&str>) -> Html {
    match project {
        Some(p) => tpl("Project <strong>{}</strong>", &[&p]),
        None => Html::lit("All projects"),
    }
}

/// A `<details>` holding a chart's numbers.
pub fn numbers(summary: &str, table: Html) -> Html {
    tpl(
        "<details><summary>{}</summary>{}</details>",
        &[&summary, &table],
    )
}

impl Render for Cell {
    fn render_into(&self, out: &mut String) {
        self.html.render_into(out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_and_badges() {
        let c = when("2026-05-03T10:11:12.000000+00:00");
        assert_eq!(
            c.html.as_str(),
            "<time datetime=\"2026-05-03T10:11:12.000000+00:00\">2026-05-03 10:11 UTC</time>"
        );
        assert!(verdict("PROVISIONALLY_ALLOWED")
            .as_str()
            .contains("v-provisional"));
        assert!(cvss(Some(9.8)).as_str().contains("sev-critical"));
        assert!(license("GPL-3.0-only").as_str().contains("lf-copyleft"));
        assert!(license("MIT").as_str().contains("lf-permissive"));
        assert_eq!(agent(None, None), "unknown");
        assert!(cve_list(&["A".into(), "B".into(), "C".into()], 2)
            .as_str()
            .ends_with(" +1 more"));
    }

    #[test]
    fn tables_mark_numeric_columns() {
        let t = table(
            "Cap",
            &["Name", "Count"],
            vec![vec![text("<x>"), num(3)]],
            "none",
        );
        let s = t.as_str();
        assert!(s.contains("<th scope=\"col\" class=\"num\">Count</th>"));
        assert!(s.contains("<td>&lt;x&gt;</td>"));
        assert_eq!(
            table("Cap", &["A"], vec![], "none yet").as_str(),
            "<p class=\"empty\">none yet</p>"
        );
    }
}
