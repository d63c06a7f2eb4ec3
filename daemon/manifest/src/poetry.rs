//! Poetry's dependency tables and version constraints, turned into PEP 508.

use std::str::FromStr;

use pep440_rs::Version;
use toml_edit::{Item, TableLike, Value};

/// One Poetry declaration of a package (an array form declares several).
#[derive(Debug, Default)]
pub(crate) struct PoetrySpec {
    pub version: Option<String>,
    pub extras: Vec<String>,
    pub markers: Option<String>,
    pub python: Option<String>,
}

pub(crate) enum SpecError {
    /// path / git / url / file source: not an index package.
    Unsupported(&'static str),
    Invalid(String),
}

pub(crate) fn specs_of(item: &Item) -> Result<Vec<PoetrySpec>, SpecError> {
    match item {
        Item::Value(Value::String(s)) => Ok(vec![PoetrySpec {
            version: Some(s.value().clone()),
            ..Default::default()
        }]),
        Item::Value(Value::InlineTable(t)) => Ok(vec![spec_of_table(t)?]),
        Item::Table(t) => Ok(vec![spec_of_table(t)?]),
        Item::Value(Value::Array(a)) => a
            .iter()
            .map(|v| match v.as_inline_table() {
                Some(t) => spec_of_table(t),
                None => Err(SpecError::Invalid(
                    "an array of constraints must hold tables".into(),
                )),
            })
            .collect(),
        _ => Err(SpecError::Invalid(
            "expected a version string or a table".into(),
        )),
    }
}

fn spec_of_table(t: &dyn TableLike) -> Result<PoetrySpec, SpecError> {
    for (key, kind) in [
        ("git", "git"),
        ("path", "path"),
        ("url", "URL"),
        ("file", "file"),
    ] {
        if t.contains_key(key) {
            return Err(SpecError::Unsupported(kind));
        }
    }
    let string = |key: &str| -> Result<Option<String>, SpecError> {
        match t.get(key) {
            None => Ok(None),
            Some(i) => i
                .as_str()
                .map(|s| Some(s.to_string()))
                .ok_or_else(|| SpecError::Invalid(format!("`{key}` must be a string"))),
        }
    };
    let extras = match t.get("extras") {
        None => Vec::new(),
        Some(i) => i
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(str::to_string))
                    .collect()
            })
            .ok_or_else(|| SpecError::Invalid("`extras` must be an array of strings".into()))?,
    };
    Ok(PoetrySpec {
        version: string("version")?,
        extras,
        markers: string("markers")?,
        python: string("python")?,
    })
}

/// The PEP 508 requirement for a Poetry declaration, and a note when part of
/// it could not be expressed (a `||` union is checked as "any version").
pub(crate) fn to_pep508(name: &str, spec: &PoetrySpec) -> Result<(String, Option<String>), String> {
    let mut note = None;
    let specifier = match spec.version.as_deref() {
        Some(v) if v.contains("||") => {
            note = Some(format!(
                "the union `{v}` has no PEP 508 form; checked without a version constraint"
            ));
            None
        }
        Some(v) => poetry_constraint_to_pep440(v)?,
        None => None,
    };
    let mut out = name.to_string();
    if !spec.extras.is_empty() {
        out.push('[');
        out.push_str(&spec.extras.join(","));
        out.push(']');
    }
    if let Some(s) = specifier {
        out.push_str(&s);
    }
    let mut markers = Vec::new();
    if let Some(m) = spec.markers.as_deref().filter(|m| !m.trim().is_empty()) {
        markers.push(format!("({m})"));
    }
    if let Some(py) = spec.python.as_deref() {
        if let Some(m) = python_marker(py)? {
            markers.push(m);
        }
    }
    if !markers.is_empty() {
        out.push_str(" ; ");
        out.push_str(&markers.join(" and "));
    }
    Ok((out, note))
}

/// `python = "^3.8"` inside a dependency table → `python_version` clauses.
fn python_marker(constraint: &str) -> Result<Option<String>, String> {
    if constraint.contains("||") {
        return Ok(None);
    }
    let Some(spec) = poetry_constraint_to_pep440(constraint)? else {
        return Ok(None);
    };
    let clauses: Vec<String> = spec
        .split(',')
        .filter(|c| !c.contains('*'))
        .filter_map(|c| {
            let op_len = c.find(|ch: char| ch.is_ascii_digit()).unwrap_or(c.len());
            let (op, v) = c.split_at(op_len);
            (!v.is_empty()).then(|| format!("python_version {op} '{v}'"))
        })
        .collect();
    Ok((!clauses.is_empty()).then(|| clauses.join(" and ")))
}

/// Converts a Poetry version constraint (`^1.2`, `~1.2`, `1.2.*`, `>=1,<2`,
/// `1.4`, `*`) to PEP 440 specifiers; `Ok(None)` means any version.
pub fn poetry_constraint_to_pep440(constraint: &str) -> Result<Option<String>, String> {
    let mut clauses = Vec::new();
    for piece in constraint.split(',') {
        // Poetry also accepts `>=1.2 <2` (space means "and"); an operator may
        // be separated from its version by spaces.
        let mut pending_op = String::new();
        for token in piece.split_whitespace() {
            if token.chars().all(|c| "<>=!~^".contains(c)) {
                pending_op.push_str(token);
                continue;
            }
            let clause = format!("{pending_op}{token}");
            pending_op.clear();
            if let Some(c) = convert_clause(&clause)? {
                clauses.extend(c);
            }
        }
        if !pending_op.is_empty() {
            return Err(format!(
                "operator `{pending_op}` without a version in `{constraint}`"
            ));
        }
    }
    Ok((!clauses.is_empty()).then(|| clauses.join(",")))
}

fn convert_clause(clause: &str) -> Result<Option<Vec<String>>, String> {
    if clause == "*" {
        return Ok(None);
    }
    if let Some(v) = clause.strip_prefix('^') {
        let (lower, upper) = bounds(v, Bump::Caret)?;
        return Ok(Some(vec![format!(">={lower}"), format!("<{upper}")]));
    }
    if clause.starts_with("~=") {
        return Ok(Some(vec![clause.to_string()]));
    }
    if let Some(v) = clause.strip_prefix('~') {
        let (lower, upper) = bounds(v, Bump::Tilde)?;
        return Ok(Some(vec![format!(">={lower}"), format!("<{upper}")]));
    }
    for op in ["===", "==", "!=", ">=", "<=", ">", "<"] {
        if let Some(v) = clause.strip_prefix(op) {
            return Ok(Some(vec![format!("{op}{v}")]));
        }
    }
    if let Some(v) = clause.strip_prefix('=') {
        return Ok(Some(vec![format!("=={v}")]));
    }
    // A bare version (`1.4`, `1.2.*`) is an exact pin in Poetry.
    Ok(Some(vec![format!("=={clause}")]))
}

enum Bump {
    Caret,
    Tilde,
}

/// Lower and exclusive upper bound of `^v` / `~v`, padded to `v`'s length
/// the way Poetry writes them (`^1.2.3` → `<2.0.0`, `^0.2` → `<0.3`).
fn bounds(v: &str, bump: Bump) -> Result<(String, String), String> {
    let v = v.trim();
    let version =
        Version::from_str(v).map_err(|e| format!("invalid version `{v}` in constraint: {e}"))?;
    let release = version.release();
    let n = release.len();
    let idx = match bump {
        Bump::Caret => release
            .iter()
            .position(|&p| p != 0)
            .unwrap_or(n - 1)
            .min(n - 1),
        Bump::Tilde => usize::from(n >= 2),
    };
    let mut upper: Vec<u64> = release[..=idx].to_vec();
    upper[idx] += 1;
    upper.resize(n, 0);
    let upper = upper
        .iter()
        .map(u64::to_string)
        .collect::<Vec<_>>()
        .join(".");
    Ok((v.to_string(), upper))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conv(c: &str) -> Option<String> {
        poetry_constraint_to_pep440(c).unwrap()
    }

    #[test]
    fn caret_and_tilde_follow_poetry() {
        assert_eq!(conv("^1.2.3").as_deref(), Some(">=1.2.3,<2.0.0"));
        assert_eq!(conv("^1.2").as_deref(), Some(">=1.2,<2.0"));
        assert_eq!(conv("^0.2.3").as_deref(), Some(">=0.2.3,<0.3.0"));
        assert_eq!(conv("^0.0.3").as_deref(), Some(">=0.0.3,<0.0.4"));
        assert_eq!(conv("^0.0").as_deref(), Some(">=0.0,<0.1"));
        assert_eq!(conv("^0").as_deref(), Some(">=0,<1"));
        assert_eq!(conv("~1.2.3").as_deref(), Some(">=1.2.3,<1.3.0"));
        assert_eq!(conv("~1.2").as_deref(), Some(">=1.2,<1.3"));
        assert_eq!(conv("~1").as_deref(), Some(">=1,<2"));
    }

    #[test]
    fn other_forms() {
        assert_eq!(conv("1.2.*").as_deref(), Some("==1.2.*"));
        assert_eq!(conv("1.4").as_deref(), Some("==1.4"));
        assert_eq!(conv("*"), None);
        assert_eq!(conv(""), None);
        assert_eq!(conv(">=1, <2").as_deref(), Some(">=1,<2"));
        assert_eq!(conv(">= 1.2 < 1.5").as_deref(), Some(">=1.2,<1.5"));
        assert_eq!(conv("~=2.1").as_deref(), Some("~=2.1"));
        assert!(poetry_constraint_to_pep440("^banana").is_err());
        assert!(poetry_constraint_to_pep440(">=").is_err());
    }

    #[test]
    fn table_form_with_extras_markers_and_python() {
        let spec = PoetrySpec {
            version: Some("^2.31".into()),
            extras: vec!["socks".into()],
            markers: Some("sys_platform == 'linux'".into()),
            python: Some(">=3.9,<3.13".into()),
        };
        let (text, note) = to_pep508("requests", &spec).unwrap();
        assert_eq!(
            text,
            "requests[socks]>=2.31,<3.0 ; (sys_platform == 'linux') and python_version >= '3.9' and python_version < '3.13'"
        );
        assert!(note.is_none());
    }
}
