//! Markup that cannot forget to escape.
//!
//! [`Html`] is trusted markup: it is built only from `&'static str`
//! literals (the templates compiled into the binary) and from values that
//! went through [`Render`], which HTML-escapes every string. Snippets are
//! filled positionally with [`tpl`] (`{}` marks a hole) and the template
//! files by name with [`fill`] (`{{name}}`). There is no way to put a
//! runtime `String` into an `Html` unescaped.

/// Escapes text for element content and for double- or single-quoted
/// attribute values.
pub fn esc_into(out: &mut String, s: &str) {
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
}

/// Trusted markup.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Html(String);

impl Html {
    pub fn new() -> Html {
        Html(String::new())
    }

    /// A literal fragment of markup, written in the source.
    pub fn lit(s: &'static str) -> Html {
        Html(s.to_string())
    }

    /// Escaped text.
    pub fn text(s: &str) -> Html {
        let mut out = String::with_capacity(s.len());
        esc_into(&mut out, s);
        Html(out)
    }

    pub fn push(&mut self, h: Html) {
        self.0.push_str(&h.0);
    }

    #[cfg(test)]
    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

impl FromIterator<Html> for Html {
    fn from_iter<I: IntoIterator<Item = Html>>(iter: I) -> Html {
        let mut out = Html::new();
        for h in iter {
            out.push(h);
        }
        out
    }
}

/// A value that can stand in a hole: strings are escaped, numbers written
/// as they are, [`Html`] copied.
pub trait Render {
    fn render_into(&self, out: &mut String);
}

impl Render for Html {
    fn render_into(&self, out: &mut String) {
        out.push_str(&self.0);
    }
}

impl Render for str {
    fn render_into(&self, out: &mut String) {
        esc_into(out, self);
    }
}

impl Render for String {
    fn render_into(&self, out: &mut String) {
        esc_into(out, self);
    }
}

impl<T: Render + ?Sized> Render for &T {
    fn render_into(&self, out: &mut String) {
        (**self).render_into(out);
    }
}

macro_rules! render_display {
    ($($t:ty),*) => {$(
        impl Render for $t {
            fn render_into(&self, out: &mut String) {
                use std::fmt::Write as _;
                let _ = write!(out, "{}", self);
            }
        }
    )*};
}
render_display!(u8, u16, u32, u64, usize, i32, i64);

/// A number with one decimal (CVSS scores, chart coordinates).
pub struct Dec1(pub f64);

impl Render for Dec1 {
    fn render_into(&self, out: &mut String) {
        use std::fmt::Write as _;
        let v = if self.0.is_finite() { self.0 } else { 0.0 };
        let _ = write!(out, "{v:.1}");
    }
}

/// Fills each `{}` of `template` with the next argument. The count must
/// match (checked in debug builds and by the pages' tests).
pub fn tpl(template: &'static str, args: &[&dyn Render]) -> Html {
    let mut out = String::with_capacity(template.len() + 32 * args.len());
    let mut parts = template.split("{}");
    if let Some(first) = parts.next() {
        out.push_str(first);
    }
    let mut used = 0;
    for part in parts {
        if let Some(a) = args.get(used) {
            a.render_into(&mut out);
        }
        used += 1;
        out.push_str(part);
    }
    debug_assert_eq!(used, args.len(), "holes vs arguments in {template:?}");
    Html(out)
}

/// Fills each `{{name}}` of a template file with the named value. Every
/// hole must be named exactly once (checked in debug builds and by tests).
pub fn fill(template: &'static str, slots: &[(&str, &dyn Render)]) -> Html {
    let mut out = String::with_capacity(template.len() * 2);
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else {
            out.push_str(&rest[start..]);
            rest = "";
            break;
        };
        let name = &after[..end];
        match slots.iter().find(|(n, _)| *n == name) {
            Some((_, v)) => v.render_into(&mut out),
            None => debug_assert!(false, "template hole {{{{{name}}}}} not filled"),
        }
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    debug_assert!(
        slots
            .iter()
            .all(|(n, _)| template.contains(&format!("{{{{{n}}}}}"))),
        "a slot names no hole of the template"
    );
    Html(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_string_is_escaped() {
        let evil = "<script>alert('x')</script>&\"";
        let h = tpl("<td title=\"{}\">{}</td>", &[&evil, &evil.to_string()]);
        assert!(!h.as_str().contains("<script"));
        assert_eq!(
            h.as_str(),
            "<td title=\"&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;&amp;&quot;\">\
             &lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;&amp;&quot;</td>"
        );
        let inner = Html::lit("<b>ok</b>");
        assert_eq!(tpl("<p>{}</p>", &[&inner]).as_str(), "<p><b>ok</b></p>");
        assert_eq!(tpl("{} items", &[&3usize]).as_str(), "3 items");
        assert_eq!(tpl("{}", &[&Dec1(9.75)]).as_str(), "9.8");
    }

    #[test]
    fn named_holes_are_filled() {
        let h = fill(
            "<h1>{{title}}</h1>{{body}}",
            &[("title", &"a<b"), ("body", &Html::lit("<p>x</p>"))],
        );
        assert_eq!(h.as_str(), "<h1>a&lt;b</h1><p>x</p>");
    }
}
