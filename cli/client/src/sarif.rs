//! Stable finding codes (shared with the editor diagnostics) and SARIF 2.1.0.

use std::collections::BTreeMap;

use lex_align_manifest::{Finding, FindingKind, SourceRef};
use serde_json::{json, Value};

use crate::project::Checked;
use crate::verdict::Verdict;

/// The stable code of a verdict that needs attention; `None` for a plain ALLOWED.
pub fn code(v: &Verdict) -> Option<&'static str> {
    if v.is_denied() {
        return Some(match v.denial_category.as_deref() {
            Some("license") => "license",
            Some("cve") => "vulnerable",
            Some("malicious") => "malicious",
            Some("not-found") => "not-found",
            Some("upstream") => "upstream-unavailable",
            _ => match v.registry_status.as_deref() {
                Some("banned") => "banned",
                Some("deprecated") => "deprecated",
                Some("version-constrained") => "version-constraint",
                _ if !v.cve_ids.is_empty() => "vulnerable",
                _ => "banned",
            },
        });
    }
    if v.is_provisional() {
        return Some("provisional");
    }
    v.needs_rationale.then_some("needs-rationale")
}

fn rule_text(code: &str) -> &'static str {
    match code {
        "banned" => "The registry bans this package.",
        "deprecated" => "The registry deprecates this package in favour of a replacement.",
        "version-constraint" => "The requirement admits versions the registry does not allow.",
        "vulnerable" => "Known vulnerabilities above the policy threshold affect this version.",
        "malicious" => "A malicious-package advisory names this package.",
        "license" => "The package's license is not allowed by policy.",
        "not-found" => "The package index has no such package.",
        "upstream-unavailable" => "The package index or advisory source could not be asked.",
        "provisional" => "Not yet reviewed by the registry: allowed provisionally.",
        "needs-rationale" => "Registry-approved, neutral: document why it is needed.",
        "invalid-requirement" => "The dependency declaration cannot be parsed.",
        _ => "A declaration lex-align cannot check.",
    }
}

fn level(code: &str) -> &'static str {
    match code {
        "provisional" | "upstream-unavailable" => "warning",
        "needs-rationale" | "unsupported" => "note",
        _ => "error",
    }
}

/// 1-based SARIF region of a span, columns in Unicode code points.
fn region(
    texts: &BTreeMap<String, String>,
    file: &str,
    start: usize,
    end: usize,
    line: u32,
    column: u32,
) -> Value {
    match texts.get(file) {
        Some(text)
            if end <= text.len() && text.is_char_boundary(start) && text.is_char_boundary(end) =>
        {
            let line_col = |at: usize| {
                let line = text[..at].matches('\n').count();
                let line_start = text[..at].rfind('\n').map_or(0, |i| i + 1);
                (line + 1, text[line_start..at].chars().count() + 1)
            };
            let (sl, sc) = line_col(start);
            let (el, ec) = line_col(end);
            json!({
                "startLine": sl, "startColumn": sc,
                "endLine": el, "endColumn": ec,
                "snippet": {"text": &text[start..end]}
            })
        }
        _ => json!({"startLine": line + 1, "startColumn": column + 1}),
    }
}

fn location(texts: &BTreeMap<String, String>, s: &SourceRef) -> Value {
    json!({"physicalLocation": {
        "artifactLocation": {"uri": s.file, "uriBaseId": "%SRCROOT%"},
        "region": region(texts, &s.file, s.span.start, s.span.end, s.line, s.column)
    }})
}

/// A SARIF 2.1.0 log of every verdict that needs attention and every manifest finding.
pub fn sarif(
    checked: &[Checked],
    findings: &[Finding],
    texts: &BTreeMap<String, String>,
    root_uri: &str,
) -> Value {
    let mut rules: Vec<&'static str> = Vec::new();
    let rule_index = |c: &'static str, rules: &mut Vec<&'static str>| {
        rules.iter().position(|r| *r == c).unwrap_or_else(|| {
            rules.push(c);
            rules.len() - 1
        })
    };
    let mut results = Vec::new();
    for c in checked {
        let d = &c.dependency;
        let (code, message, props) = match &c.verdict {
            Ok(v) => {
                let Some(code) = code(v) else { continue };
                let mut msg = format!("{} {}: {}", d.requirement, v.verdict, v.reason);
                if let Some(fix) = v.fix().filter(|_| v.is_denied()) {
                    msg.push_str(&format!(" Fix: {fix}."));
                }
                if !d.direct && !d.via.is_empty() {
                    msg.push_str(&format!(" (pulled in by {})", d.via.join(", ")));
                }
                (
                    code,
                    msg,
                    json!({
                        "verdict": v.verdict, "package": v.package, "scope": d.scope.label(),
                        "replacement": v.replacement, "suggested_requirement": v.suggested_requirement,
                        "cve_ids": v.cve_ids, "fixed_versions": v.fixed_versions, "via": d.via,
                    }),
                )
            }
            Err(e) => (
                "invalid-requirement",
                format!("{}: {e}", d.requirement),
                json!({"scope": d.scope.label()}),
            ),
        };
        let idx = rule_index(code, &mut rules);
        results.push(json!({
            "ruleId": code, "ruleIndex": idx, "level": level(code),
            "message": {"text": message},
            "locations": [location(texts, &d.source)],
            "partialFingerprints": {"lexAlign/v1": format!("{}:{}:{}", d.source.file, d.canonical, code)},
            "properties": props,
        }));
    }
    for f in findings {
        let code = match f.kind {
            FindingKind::Unsupported => "unsupported",
            _ => "invalid-requirement",
        };
        let idx = rule_index(code, &mut rules);
        results.push(json!({
            "ruleId": code, "ruleIndex": idx, "level": level(code),
            "message": {"text": f.message},
            "locations": [{"physicalLocation": {
                "artifactLocation": {"uri": f.file, "uriBaseId": "%SRCROOT%"},
                "region": region(texts, &f.file, f.span.start, f.span.end, f.line, f.column)
            }}],
        }));
    }
    let rules: Vec<Value> = rules
        .iter()
        .map(|r| {
            json!({"id": r, "name": r, "shortDescription": {"text": rule_text(r)},
                        "defaultConfiguration": {"level": level(r)}})
        })
        .collect();
    json!({
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [{
            "tool": {"driver": {"name": "lex-align", "version": env!("CARGO_PKG_VERSION"), "rules": rules}},
            "originalUriBaseIds": {"%SRCROOT%": {"uri": root_uri}},
            "columnKind": "unicodeCodePoints",
            "results": results,
        }]
    })
}
