//! Commit message, merge request title/description and comment. Free text
//! from a requester (rationale, project, names) is put in code spans and
//! blocks, so it cannot ping `@all`, link `!1`/`#1` or inject markdown.

use lex_align_plugin_sdk::{ProposalContext, ProposedRule};

/// The GitHub proposer's message (server-ops.md §3.1).
pub fn commit_message(rule: &ProposedRule, ctx: &ProposalContext) -> String {
    let mut m = format!(
        "lex-align: classify {} as {} (via {})\n\nProject: {}\nRequester: {}\n",
        one_line(&rule.name),
        one_line(&rule.status),
        one_line(&ctx.source),
        one_line(&ctx.project),
        one_line(&ctx.requester)
    );
    if let Some(agent) = agent(ctx) {
        m.push_str(&format!("Agent: {agent}\n"));
    }
    if let Some(r) = &rule.replacement {
        m.push_str(&format!("Replacement: {}\n", one_line(r)));
    }
    if rule.min_version.is_some() || rule.max_version.is_some() {
        m.push_str(&format!(
            "Version constraint: {}..{}\n",
            one_line(rule.min_version.as_deref().unwrap_or("")),
            one_line(rule.max_version.as_deref().unwrap_or(""))
        ));
    }
    if let Some(r) = rationale(ctx) {
        m.push_str(&format!("\nRationale:\n{r}\n"));
    }
    m
}

pub fn title(rule: &ProposedRule) -> String {
    format!(
        "lex-align: classify {} as {}",
        code(&rule.name),
        one_line(&rule.status)
    )
}

pub fn description(rule: &ProposedRule, ctx: &ProposalContext) -> String {
    let mut d = String::from("lex-align proposes a registry change.\n\n");
    d.push_str(&format!("- **Package:** {}\n", code(&rule.name)));
    d.push_str(&format!("- **Proposed status:** {}\n", code(&rule.status)));
    d.push_str(&format!("- **Source:** {}\n", code(&ctx.source)));
    d.push_str(&format!("- **Project:** {}\n", code(&ctx.project)));
    d.push_str(&format!("- **Requester:** {}\n", code(&ctx.requester)));
    if let Some(agent) = agent(ctx) {
        d.push_str(&format!("- **Agent:** {}\n", code(&agent)));
    }
    for (label, value) in [
        ("Replacement", &rule.replacement),
        ("Minimum version", &rule.min_version),
        ("Maximum version (exclusive)", &rule.max_version),
        ("Expires", &rule.expires),
        ("Owner", &rule.owner),
        ("Reason", &rule.reason),
    ] {
        if let Some(v) = value {
            d.push_str(&format!("- **{label}:** {}\n", code(v)));
        }
    }
    d.push_str("\n### Rationale\n\n");
    match rationale(ctx) {
        Some(r) => d.push_str(&block(&r)),
        None => d.push_str("_None given._\n"),
    }
    d.push_str(
        "\nThe proposed status may be edited on this branch before merging; the registry takes \
         effect once merged.\n",
    );
    d
}

pub fn note(rule: &ProposedRule, ctx: &ProposalContext) -> String {
    let mut n = format!(
        "Another request for {} → {} (via {}), project {}, requester {}; the branch has a new commit.\n",
        code(&rule.name),
        code(&rule.status),
        code(&ctx.source),
        code(&ctx.project),
        code(&ctx.requester)
    );
    if let Some(r) = rationale(ctx) {
        n.push_str("\nRationale:\n\n");
        n.push_str(&block(&r));
    }
    n
}

fn agent(ctx: &ProposalContext) -> Option<String> {
    let model = ctx
        .agent_model
        .as_deref()
        .filter(|s| !s.trim().is_empty())?;
    Some(one_line(&format!(
        "{model} {}",
        ctx.agent_version.as_deref().unwrap_or("")
    )))
}

fn rationale(ctx: &ProposalContext) -> Option<String> {
    ctx.rationale
        .as_deref()
        .map(str::trim)
        .filter(|r| !r.is_empty())
        .map(str::to_string)
}

/// Line breaks would forge extra trailer lines in a commit message.
fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn longest_backtick_run(s: &str) -> usize {
    s.split(|c| c != '`').map(str::len).max().unwrap_or(0)
}

/// An inline code span that holds `s` whatever backticks it has.
pub fn code(s: &str) -> String {
    let s = one_line(s);
    let fence = "`".repeat(longest_backtick_run(&s) + 1);
    // A span starting or ending with a backtick needs a space to keep it apart.
    let pad = if s.starts_with('`') || s.ends_with('`') {
        " "
    } else {
        ""
    };
    format!("{fence}{pad}{s}{pad}{fence}")
}

/// A fenced block longer than any backtick run inside.
pub fn block(s: &str) -> String {
    let fence = "`".repeat((longest_backtick_run(s) + 1).max(3));
    format!("{fence}text\n{s}\n{fence}\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn free_text_stays_inside_code() {
        assert_eq!(code("requests"), "`requests`");
        assert_eq!(code("a`b"), "``a`b``");
        assert_eq!(code("`x"), "`` `x ``");
        assert_eq!(code("two\nlines"), "`two lines`");
        let b = block("```\n@all !1 #2\n```");
        assert!(b.starts_with("````text\n"));
        assert!(b.ends_with("\n````\n"));
    }

    #[test]
    fn the_commit_message_follows_the_github_proposer() {
        let rule = ProposedRule {
            name: "Requests".into(),
            status: "approved".into(),
            reason: None,
            replacement: Some("httpx".into()),
            min_version: Some("2.0".into()),
            max_version: None,
            expires: None,
            owner: None,
        };
        let ctx = ProposalContext {
            source: "agent".into(),
            project: "svc".into(),
            requester: "alice\nSigned-off-by: mallory".into(),
            rationale: Some("needed for HTTP".into()),
            agent_model: Some("claude".into()),
            agent_version: Some("4".into()),
        };
        assert_eq!(
            commit_message(&rule, &ctx),
            "lex-align: classify Requests as approved (via agent)\n\nProject: svc\n\
             Requester: alice Signed-off-by: mallory\nAgent: claude 4\nReplacement: httpx\n\
             Version constraint: 2.0..\n\nRationale:\nneeded for HTTP\n"
        );
    }
}
