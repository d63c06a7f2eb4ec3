//! `docs/diagnostics.md` as an HTML page, so the daemon can serve the target of
//! every diagnostic's `codeDescription` link. The markdown is compiled into
//! the binary; the renderer covers what that file uses (headings,
//! paragraphs, lists, fenced and inline code, emphasis-free text) and
//! escapes everything else.

use std::sync::OnceLock;

/// The diagnostic code reference, as written.
pub const DIAGNOSTICS_MD: &str = include_str!("../../docs/diagnostics.md");

/// The reference as a complete HTML page; each `## <code>` section has the
/// id `<code>`, so `…/docs/diagnostics#banned` lands on it.
pub fn diagnostics_html() -> &'static str {
    static PAGE: OnceLock<String> = OnceLock::new();
    PAGE.get_or_init(|| render_page(DIAGNOSTICS_MD))
}

fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

/// Escaped text with `` `code` `` spans as `<code>`.
fn inline(s: &str) -> String {
    let mut out = String::new();
    let mut parts = s.split('`');
    let mut in_code = false;
    let mut pending = parts.next().map(str::to_string);
    for part in parts {
        let text = pending.take().unwrap_or_default();
        if in_code {
            out.push_str(&format!("<code>{}</code>", escape(&text)));
        } else {
            out.push_str(&escape(&text));
        }
        in_code = !in_code;
        pending = Some(part.to_string());
    }
    let last = pending.unwrap_or_default();
    if in_code {
        // An unmatched backtick is text.
        out.push('`');
    }
    out.push_str(&escape(&last));
    out
}

/// An anchor id: lowercase letters, digits and `-`.
fn slug(heading: &str) -> String {
    let mut out = String::new();
    for c in heading.trim().chars() {
        if c.is_ascii_alphanumeric() || c == '-' {
            out.push(c.to_ascii_lowercase());
        } else if c.is_whitespace() && !out.ends_with('-') {
            out.push('-');
        }
    }
    out.trim_matches('-').to_string()
}

/// Renders the subset of markdown the reference uses.
pub fn render(md: &str) -> String {
    let mut html = String::new();
    let mut paragraph: Vec<&str> = Vec::new();
    let mut list: Vec<String> = Vec::new();
    let mut code: Option<Vec<&str>> = None;

    fn flush(html: &mut String, paragraph: &mut Vec<&str>, list: &mut Vec<String>) {
        if !paragraph.is_empty() {
            html.push_str(&format!("<p>{}</p>\n", inline(&paragraph.join(" "))));
            paragraph.clear();
        }
        if !list.is_empty() {
            html.push_str("<ul>\n");
            for item in list.drain(..) {
                html.push_str(&format!("<li>{}</li>\n", inline(&item)));
            }
            html.push_str("</ul>\n");
        }
    }

    for line in md.lines() {
        if let Some(block) = code.as_mut() {
            if line.trim_start().starts_with("```") {
                html.push_str(&format!(
                    "<pre><code>{}</code></pre>\n",
                    escape(&block.join("\n"))
                ));
                code = None;
            } else {
                block.push(line);
            }
            continue;
        }
        let trimmed = line.trim();
        if trimmed.starts_with("```") {
            flush(&mut html, &mut paragraph, &mut list);
            code = Some(Vec::new());
        } else if trimmed.is_empty() {
            flush(&mut html, &mut paragraph, &mut list);
        } else if let Some((level, text)) = heading(trimmed) {
            flush(&mut html, &mut paragraph, &mut list);
            html.push_str(&format!(
                "<h{level} id=\"{}\">{}</h{level}>\n",
                escape(&slug(text)),
                inline(text)
            ));
        } else if let Some(item) = trimmed.strip_prefix("- ").or(trimmed.strip_prefix("* ")) {
            if !paragraph.is_empty() {
                flush(&mut html, &mut paragraph, &mut list);
            }
            list.push(item.to_string());
        } else if !list.is_empty() && line.starts_with(' ') {
            // A list item's continuation line.
            if let Some(last) = list.last_mut() {
                last.push(' ');
                last.push_str(trimmed);
            }
        } else {
            if !list.is_empty() {
                flush(&mut html, &mut paragraph, &mut list);
            }
            paragraph.push(trimmed);
        }
    }
    if let Some(block) = code {
        html.push_str(&format!(
            "<pre><code>{}</code></pre>\n",
            escape(&block.join("\n"))
        ));
    }
    flush(&mut html, &mut paragraph, &mut list);
    html
}

fn heading(line: &str) -> Option<(usize, &str)> {
    let level = line.chars().take_while(|&c| c == '#').count();
    if (1..=6).contains(&level) {
        line[level..]
            .strip_prefix(' ')
            .map(|text| (level, text.trim()))
    } else {
        None
    }
}

fn render_page(md: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <title>lex-align diagnostic codes</title>\n\
         <style>body{{font-family:sans-serif;max-width:48rem;margin:2rem auto;padding:0 1rem;line-height:1.5}}\
         code{{background:#f2f2f2;padding:0 .2em}}h2{{border-top:1px solid #ddd;padding-top:1rem}}\
         :target{{background:#fff6d5}}</style>\n</head>\n<body>\n{}</body>\n</html>\n",
        render(md)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_headings_paragraphs_lists_and_code_escaped() {
        let html = render(
            "# Title <x>\n\nSome `a<b>` text\ncontinued & done.\n\n## not-found\n\n- one `1`\n  more\n- two\n\n```\n<raw> & \"q\"\n```\n",
        );
        assert_eq!(
            html,
            "<h1 id=\"title-x\">Title &lt;x&gt;</h1>\n\
             <p>Some <code>a&lt;b&gt;</code> text continued &amp; done.</p>\n\
             <h2 id=\"not-found\">not-found</h2>\n\
             <ul>\n<li>one <code>1</code> more</li>\n<li>two</li>\n</ul>\n\
             <pre><code>&lt;raw&gt; &amp; &quot;q&quot;</code></pre>\n"
        );
    }

    #[test]
    fn an_unmatched_backtick_stays_text() {
        assert_eq!(inline("a ` b <"), "a ` b &lt;");
    }

    #[test]
    fn every_code_has_an_anchor_on_the_page() {
        let page = diagnostics_html();
        assert!(page.starts_with("<!DOCTYPE html>"));
        for code in crate::CODES {
            assert!(
                page.contains(&format!("<h2 id=\"{0}\">{0}</h2>", code.as_str())),
                "{}",
                code.as_str()
            );
        }
    }
}
