//! SPDX expressions as lex-align reads them: case-insensitive parsing,
//! normalised rendering and the vocabulary allowed in registry license
//! lists.
//!
//! Kept apart from [`crate::license`] because both the registry (checking
//! its lists at load) and license resolution/judgement (which applies the
//! registry's policies) need it: with it here, `registry` and `license`
//! depend on this module and `license` on `registry`, never back.

use spdx::expression::{ExprNode, Operator};
use spdx::{Expression, LicenseItem, LicenseReq, ParseMode};

/// Accept deprecated ids (`GPL-3.0`), `+` on GNU ids and `/` as OR, but not
/// the crate's guessed "imprecise" names (`bsd` → BSD-2-Clause is a guess).
const MODE: ParseMode = ParseMode {
    allow_slash_as_or_operator: true,
    allow_imprecise_license_names: false,
    allow_postfix_plus_on_gpl: true,
    allow_deprecated: true,
    allow_unknown: false,
};

/// Generic family names that carry no version (`BSD License`, `GPL`): kept
/// as `LicenseRef-<family>` and matched by any list entry of that family.
pub(crate) const FAMILIES: [&str; 5] = ["BSD", "GPL", "LGPL", "AGPL", "MPL"];

/// The vocabulary of the original server, kept valid in registry lists.
const ORIGINAL_TOKENS: [&str; 15] = [
    "GPL-3.0",
    "GPL-2.0",
    "LGPL-3.0",
    "LGPL-2.1",
    "AGPL-3.0",
    "MPL-2.0",
    "Apache-2.0",
    "BSD",
    "BSD-3-Clause",
    "BSD-2-Clause",
    "MIT",
    "ISC",
    "Unlicense",
    "CC0-1.0",
    "Proprietary",
];

pub(crate) fn lookup_id(word: &str) -> Option<&'static str> {
    if let Some(id) = spdx::license_id(word) {
        return Some(id.name);
    }
    spdx::identifiers::LICENSES
        .iter()
        .find(|l| l.name.eq_ignore_ascii_case(word))
        .map(|l| l.name)
}

fn lookup_exception(word: &str) -> Option<&'static str> {
    spdx::identifiers::EXCEPTIONS
        .iter()
        .find(|e| e.name.eq_ignore_ascii_case(word))
        .map(|e| e.name)
}

/// Fix the case of identifiers and operators so the strict lexer accepts
/// `mit or apache-2.0` (PEP 639 matching is case-insensitive).
fn fix_case(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut word = String::new();
    let flush = |word: &mut String, out: &mut String| {
        if word.is_empty() {
            return;
        }
        let upper = word.to_ascii_uppercase();
        if matches!(upper.as_str(), "AND" | "OR" | "WITH") {
            out.push_str(&upper);
        } else if upper.starts_with("LICENSEREF-") {
            out.push_str("LicenseRef-");
            out.push_str(&word["LicenseRef-".len()..]);
        } else if upper.starts_with("DOCUMENTREF-") || upper.starts_with("ADDITIONREF-") {
            out.push_str(word);
        } else {
            let plus = word.ends_with('+');
            let bare = word.trim_end_matches('+');
            match lookup_id(bare).or_else(|| lookup_exception(bare)) {
                Some(name) => {
                    out.push_str(name);
                    if plus {
                        out.push('+');
                    }
                }
                None => out.push_str(word),
            }
        }
        word.clear();
    };
    for c in text.chars() {
        if c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '+' | ':') {
            word.push(c);
        } else {
            flush(&mut word, &mut out);
            out.push(c);
        }
    }
    flush(&mut word, &mut out);
    out
}

pub(crate) fn parse(text: &str) -> Option<Expression> {
    let text = text.trim();
    if text.is_empty() || text.len() > 1000 {
        return None;
    }
    Expression::parse_mode(&fix_case(text), MODE).ok()
}

/// The license part of a requirement, GNU ids in their explicit form.
pub(crate) fn render_license(item: &LicenseItem) -> String {
    match item {
        LicenseItem::Spdx { id, or_later } => {
            let name = id.name;
            if id.is_gnu() && !name.ends_with("-only") && !name.ends_with("-or-later") {
                // Deprecated bare GNU id: `GPL-3.0` means `GPL-3.0-only`.
                if let Some(explicit) = spdx::gnu_license_id(name, *or_later) {
                    return explicit.name.to_string();
                }
            }
            if *or_later && !id.is_gnu() {
                format!("{name}+")
            } else {
                name.to_string()
            }
        }
        LicenseItem::Other(r) => r.to_string(),
    }
}

pub(crate) fn render_req(req: &LicenseReq) -> String {
    match &req.addition {
        Some(add) => format!("{} WITH {add}", render_license(&req.license)),
        None => render_license(&req.license),
    }
}

/// Expression tree built from the crate's postfix form.
pub(crate) enum Tree {
    Leaf(LicenseReq),
    Op(Operator, Box<Tree>, Box<Tree>),
}

pub(crate) fn to_tree(expr: &Expression) -> Option<Tree> {
    let mut stack: Vec<Tree> = Vec::new();
    for node in expr.iter() {
        match node {
            ExprNode::Req(r) => stack.push(Tree::Leaf(r.req.clone())),
            ExprNode::Op(op) => {
                let b = stack.pop()?;
                let a = stack.pop()?;
                stack.push(Tree::Op(*op, Box::new(a), Box::new(b)));
            }
        }
    }
    let root = stack.pop()?;
    stack.is_empty().then_some(root)
}

pub(crate) fn render_tree(t: &Tree) -> String {
    match t {
        Tree::Leaf(r) => render_req(r),
        Tree::Op(Operator::Or, a, b) => format!("{} OR {}", render_tree(a), render_tree(b)),
        Tree::Op(Operator::And, a, b) => {
            let side = |x: &Tree| match x {
                Tree::Op(Operator::Or, ..) => format!("({})", render_tree(x)),
                _ => render_tree(x),
            };
            format!("{} AND {}", side(a), side(b))
        }
    }
}

/// Parse an SPDX expression (case-insensitive, deprecated ids allowed) and
/// return its normalised text, e.g. `mit or gpl-3.0+` → `MIT OR GPL-3.0-or-later`.
pub fn normalize_expression(text: &str) -> Option<String> {
    let expr = parse(text)?;
    Some(render_tree(&to_tree(&expr)?))
}

/// Is `token` acceptable in a registry license list? (W15: typos are errors.)
pub fn check_policy_token(token: &str) -> Result<(), String> {
    let t = token.trim();
    if t.is_empty() {
        return Err("an empty entry".into());
    }
    if ORIGINAL_TOKENS.iter().any(|o| o.eq_ignore_ascii_case(t))
        || t.eq_ignore_ascii_case("UNKNOWN")
        || FAMILIES.iter().any(|f| f.eq_ignore_ascii_case(t))
        || parse(t).is_some()
    {
        return Ok(());
    }
    Err("not an SPDX license identifier or expression; use an SPDX id (e.g. `MIT`, `GPL-3.0-only`), \
         an SPDX expression, `LicenseRef-…` or `UNKNOWN`"
        .into())
}
