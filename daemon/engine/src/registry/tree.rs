//! A small document tree with source lines, built from YAML events (so
//! validation errors can name the line) or from JSON (same validator).
//!
//! Hostile input is bounded: aliases are refused (no expansion, so no
//! "billion laughs"), node count and nesting depth are capped.

use std::fmt::Write as _;

use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::{Marker, TScalarStyle};

use super::RegistryError;

/// Upper bound on nodes in one registry document (a registry with 10,000
/// packages of 6 fields each stays well below it).
pub(crate) const MAX_NODES: usize = 200_000;
/// Upper bound on nesting depth (a registry needs 4).
pub(crate) const MAX_DEPTH: usize = 64;

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Val {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Seq(Vec<Node>),
    Map(Vec<(Node, Node)>),
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Node {
    pub val: Val,
    /// 1-based source line (YAML only).
    pub line: Option<usize>,
    /// Char index of the node's first character in the source (YAML only).
    pub index: Option<usize>,
    /// The scalar exactly as written, for plain scalars (keeps `1.10`).
    pub raw: Option<String>,
}

impl Node {
    fn plain(val: Val) -> Node {
        Node {
            val,
            line: None,
            index: None,
            raw: None,
        }
    }

    /// Python truthiness, which the original validator's `x or {}` relied on.
    pub fn truthy(&self) -> bool {
        match &self.val {
            Val::Null => false,
            Val::Bool(b) => *b,
            Val::Int(i) => *i != 0,
            Val::Float(f) => *f != 0.0,
            Val::Str(s) => !s.is_empty(),
            Val::Seq(v) => !v.is_empty(),
            Val::Map(m) => !m.is_empty(),
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match &self.val {
            Val::Str(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_map(&self) -> Option<&[(Node, Node)]> {
        match &self.val {
            Val::Map(m) => Some(m),
            _ => None,
        }
    }

    /// The value of `key` in a mapping (the last one if repeated).
    pub fn get(&self, key: &str) -> Option<&Node> {
        self.as_map()?
            .iter()
            .rev()
            .find(|(k, _)| k.as_str() == Some(key))
            .map(|(_, v)| v)
    }

    /// Python `repr()` of the value, as the original's messages print it.
    pub fn py_repr(&self) -> String {
        match &self.val {
            Val::Null => "None".into(),
            Val::Bool(true) => "True".into(),
            Val::Bool(false) => "False".into(),
            Val::Int(i) => i.to_string(),
            Val::Float(f) => py_float(*f),
            Val::Str(s) => py_str_repr(s),
            Val::Seq(items) => format!(
                "[{}]",
                items
                    .iter()
                    .map(Node::py_repr)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            Val::Map(pairs) => format!(
                "{{{}}}",
                pairs
                    .iter()
                    .map(|(k, v)| format!("{}: {}", k.py_repr(), v.py_repr()))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        }
    }
}

pub(crate) fn py_float(f: f64) -> String {
    if f.is_nan() {
        "nan".into()
    } else if f.is_infinite() {
        if f > 0.0 {
            "inf".into()
        } else {
            "-inf".into()
        }
    } else if f.fract() == 0.0 && f.abs() < 1e16 {
        format!("{f:.1}")
    } else {
        format!("{f}")
    }
}

/// Python's `repr(str)`: single quotes unless the text has one and no double.
pub(crate) fn py_str_repr(s: &str) -> String {
    let quote = if s.contains('\'') && !s.contains('"') {
        '"'
    } else {
        '\''
    };
    let mut out = String::with_capacity(s.len() + 2);
    out.push(quote);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push(quote);
    out
}

/// Resolve a plain YAML scalar with the YAML 1.2 core schema.
fn resolve_plain(text: &str) -> Val {
    match text {
        "" | "~" | "null" | "Null" | "NULL" => return Val::Null,
        "true" | "True" | "TRUE" => return Val::Bool(true),
        "false" | "False" | "FALSE" => return Val::Bool(false),
        ".inf" | ".Inf" | ".INF" | "+.inf" | "+.Inf" | "+.INF" => return Val::Float(f64::INFINITY),
        "-.inf" | "-.Inf" | "-.INF" => return Val::Float(f64::NEG_INFINITY),
        ".nan" | ".NaN" | ".NAN" => return Val::Float(f64::NAN),
        _ => {}
    }
    if let Some(hex) = text.strip_prefix("0x") {
        if let Ok(i) = i64::from_str_radix(hex, 16) {
            return Val::Int(i);
        }
    }
    if let Some(oct) = text.strip_prefix("0o") {
        if let Ok(i) = i64::from_str_radix(oct, 8) {
            return Val::Int(i);
        }
    }
    let digits = text.strip_prefix(['-', '+']).unwrap_or(text);
    if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
        if let Ok(i) = text.parse::<i64>() {
            return Val::Int(i);
        }
    }
    if is_core_float(digits) {
        if let Ok(f) = text.parse::<f64>() {
            return Val::Float(f);
        }
    }
    Val::Str(text.to_string())
}

/// `(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?` without the sign.
fn is_core_float(s: &str) -> bool {
    let (mantissa, exp) = match s.find(['e', 'E']) {
        Some(i) => (&s[..i], Some(&s[i + 1..])),
        None => (s, None),
    };
    let mant_ok = match mantissa.split_once('.') {
        Some((int, frac)) => {
            (!int.is_empty() || !frac.is_empty())
                && int.bytes().all(|b| b.is_ascii_digit())
                && frac.bytes().all(|b| b.is_ascii_digit())
                && !(int.is_empty() && frac.is_empty())
        }
        None => !mantissa.is_empty() && mantissa.bytes().all(|b| b.is_ascii_digit()),
    };
    let exp_ok = match exp {
        None => true,
        Some(e) => {
            let e = e.strip_prefix(['-', '+']).unwrap_or(e);
            !e.is_empty() && e.bytes().all(|b| b.is_ascii_digit())
        }
    };
    mant_ok && exp_ok
}

enum Frame {
    Seq(Node, Vec<Node>),
    Map(Node, Vec<(Node, Node)>, Option<Node>),
}

#[derive(Default)]
struct Builder {
    stack: Vec<Frame>,
    root: Option<Node>,
    documents: usize,
    nodes: usize,
    error: Option<RegistryError>,
}

fn located(message: String, mark: Marker) -> RegistryError {
    RegistryError {
        message,
        package: None,
        field: None,
        line: Some(mark.line()),
    }
}

impl Builder {
    fn fail(&mut self, err: RegistryError) {
        if self.error.is_none() {
            self.error = Some(err);
        }
    }

    fn push_done(&mut self, node: Node) {
        match self.stack.last_mut() {
            None => self.root = Some(node),
            Some(Frame::Seq(_, items)) => items.push(node),
            Some(Frame::Map(_, pairs, pending)) => match pending.take() {
                None => *pending = Some(node),
                Some(key) => pairs.push((key, node)),
            },
        }
    }

    fn count(&mut self, mark: Marker) -> bool {
        self.nodes += 1;
        if self.nodes > MAX_NODES {
            self.fail(located(
                format!("registry document is too large (more than {MAX_NODES} YAML nodes)"),
                mark,
            ));
            return false;
        }
        true
    }
}

impl MarkedEventReceiver for Builder {
    fn on_event(&mut self, ev: Event, mark: Marker) {
        if self.error.is_some() {
            return;
        }
        let start = |val| Node {
            val,
            line: Some(mark.line()),
            index: Some(mark.index()),
            raw: None,
        };
        match ev {
            Event::DocumentStart => {
                self.documents += 1;
                if self.documents > 1 {
                    self.fail(located(
                        "the registry must be a single YAML document (found a second `---` document)".into(),
                        mark,
                    ));
                }
            }
            Event::Alias(_) => self.fail(located(
                "YAML aliases (`*name`) are not supported in the registry; write the value out"
                    .into(),
                mark,
            )),
            Event::Scalar(text, style, _anchor, tag) => {
                if !self.count(mark) {
                    return;
                }
                let is_str_tag = tag.as_ref().is_some_and(|t| t.suffix == "str");
                let val = if style == TScalarStyle::Plain && !is_str_tag {
                    resolve_plain(&text)
                } else {
                    Val::Str(text.clone())
                };
                let mut node = start(val);
                if style == TScalarStyle::Plain {
                    node.raw = Some(text);
                }
                self.push_done(node);
            }
            Event::SequenceStart(..) | Event::MappingStart(..) => {
                if !self.count(mark) {
                    return;
                }
                if self.stack.len() >= MAX_DEPTH {
                    self.fail(located(
                        format!("registry document is nested too deeply (over {MAX_DEPTH} levels)"),
                        mark,
                    ));
                    return;
                }
                if matches!(ev, Event::SequenceStart(..)) {
                    self.stack.push(Frame::Seq(start(Val::Null), Vec::new()));
                } else {
                    self.stack
                        .push(Frame::Map(start(Val::Null), Vec::new(), None));
                }
            }
            Event::SequenceEnd | Event::MappingEnd => {
                let node = match self.stack.pop() {
                    Some(Frame::Seq(mut head, items)) => {
                        head.val = Val::Seq(items);
                        head
                    }
                    Some(Frame::Map(mut head, pairs, _)) => {
                        head.val = Val::Map(pairs);
                        head
                    }
                    None => return,
                };
                self.push_done(node);
            }
            Event::Nothing | Event::StreamStart | Event::StreamEnd | Event::DocumentEnd => {}
        }
    }
}

/// Parse YAML text into a tree. An empty document (or only comments) is `{}`.
pub(crate) fn parse_yaml(text: &str) -> Result<Node, RegistryError> {
    check_printable(text)?;
    let mut builder = Builder::default();
    let mut parser = Parser::new_from_str(text);
    if let Err(e) = parser.load(&mut builder, true) {
        return Err(RegistryError {
            message: format!("invalid YAML: {}", e.info()),
            package: None,
            field: None,
            line: Some(e.marker().line()),
        });
    }
    if let Some(err) = builder.error {
        return Err(err);
    }
    Ok(match builder.root {
        Some(node) if node.val != Val::Null => node,
        // An empty document or an explicit null document behaves like `{}`.
        _ => Node::plain(Val::Map(Vec::new())),
    })
}

/// YAML allows only printable characters (YAML 1.2 §5.1). The parser stops
/// at a NUL as if the stream ended, so a NUL in a comment would hide every
/// line after it from the loader but not from an editor: refuse instead.
fn check_printable(text: &str) -> Result<(), RegistryError> {
    let printable = |c: char| {
        matches!(c, '\t' | '\n' | '\r' | '\u{85}')
            || (' '..='~').contains(&c)
            || (c >= '\u{a0}' && !matches!(c, '\u{fffe}' | '\u{ffff}'))
    };
    let Some((at, c)) = text.char_indices().find(|&(_, c)| !printable(c)) else {
        return Ok(());
    };
    Err(RegistryError {
        message: format!(
            "invalid YAML: control character U+{:04X} is not allowed in a YAML file",
            c as u32
        ),
        package: None,
        field: None,
        line: Some(text[..at].matches('\n').count() + 1),
    })
}

/// Parse JSON text into the same tree (key order and duplicates kept so the
/// validator sees what was written).
pub(crate) fn parse_json(text: &str) -> Result<Node, RegistryError> {
    let mut de = serde_json::Deserializer::from_str(text);
    let node = <JsonNode as serde::Deserialize>::deserialize(&mut de)
        .and_then(|n| de.end().map(|_| n))
        .map_err(|e| RegistryError {
            message: format!("invalid JSON: {e}"),
            package: None,
            field: None,
            line: Some(e.line()).filter(|l| *l > 0),
        })?;
    Ok(node.0)
}

/// Convert an already-parsed JSON value (operator proposals).
pub(crate) fn from_json_value(v: &serde_json::Value) -> Node {
    Node::plain(match v {
        serde_json::Value::Null => Val::Null,
        serde_json::Value::Bool(b) => Val::Bool(*b),
        serde_json::Value::Number(n) => match n.as_i64() {
            Some(i) => Val::Int(i),
            None => Val::Float(n.as_f64().unwrap_or(f64::NAN)),
        },
        serde_json::Value::String(s) => Val::Str(s.clone()),
        serde_json::Value::Array(a) => Val::Seq(a.iter().map(from_json_value).collect()),
        serde_json::Value::Object(o) => Val::Map(
            o.iter()
                .map(|(k, v)| (Node::plain(Val::Str(k.clone())), from_json_value(v)))
                .collect(),
        ),
    })
}

struct JsonNode(Node);

impl<'de> serde::Deserialize<'de> for JsonNode {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(JsonVisitor)
    }
}

struct JsonVisitor;

impl<'de> serde::de::Visitor<'de> for JsonVisitor {
    type Value = JsonNode;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_unit<E>(self) -> Result<JsonNode, E> {
        Ok(JsonNode(Node::plain(Val::Null)))
    }
    fn visit_none<E>(self) -> Result<JsonNode, E> {
        Ok(JsonNode(Node::plain(Val::Null)))
    }
    fn visit_bool<E>(self, v: bool) -> Result<JsonNode, E> {
        Ok(JsonNode(Node::plain(Val::Bool(v))))
    }
    fn visit_i64<E>(self, v: i64) -> Result<JsonNode, E> {
        Ok(JsonNode(Node::plain(Val::Int(v))))
    }
    fn visit_u64<E>(self, v: u64) -> Result<JsonNode, E> {
        Ok(JsonNode(Node::plain(match i64::try_from(v) {
            Ok(i) => Val::Int(i),
            Err(_) => Val::Float(v as f64),
        })))
    }
    fn visit_f64<E>(self, v: f64) -> Result<JsonNode, E> {
        Ok(JsonNode(Node::plain(Val::Float(v))))
    }
    fn visit_str<E>(self, v: &str) -> Result<JsonNode, E> {
        Ok(JsonNode(Node::plain(Val::Str(v.to_string()))))
    }
    fn visit_string<E>(self, v: String) -> Result<JsonNode, E> {
        Ok(JsonNode(Node::plain(Val::Str(v))))
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<JsonNode, A::Error> {
        let mut items = Vec::new();
        while let Some(JsonNode(n)) = seq.next_element()? {
            items.push(n);
        }
        Ok(JsonNode(Node::plain(Val::Seq(items))))
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<JsonNode, A::Error> {
        let mut pairs = Vec::new();
        while let Some(k) = map.next_key::<String>()? {
            let JsonNode(v) = map.next_value()?;
            pairs.push((Node::plain(Val::Str(k)), v));
        }
        Ok(JsonNode(Node::plain(Val::Map(pairs))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_scalars_resolve_like_yaml_core_schema() {
        assert_eq!(resolve_plain("1.10"), Val::Float(1.1));
        assert_eq!(resolve_plain("42"), Val::Int(42));
        assert_eq!(resolve_plain("42.0.0"), Val::Str("42.0.0".into()));
        assert_eq!(resolve_plain("~"), Val::Null);
        assert_eq!(resolve_plain("True"), Val::Bool(true));
        assert_eq!(resolve_plain("yes"), Val::Str("yes".into()));
        assert_eq!(resolve_plain("1e3"), Val::Float(1000.0));
        assert_eq!(resolve_plain("."), Val::Str(".".into()));
    }

    #[test]
    fn lines_are_recorded_and_raw_text_kept() {
        let n = parse_yaml("# c\nversion: 1.10\npackages:\n  a:\n    status: x\n").unwrap();
        let v = n.get("version").unwrap();
        assert_eq!(v.line, Some(2));
        assert_eq!(v.raw.as_deref(), Some("1.10"));
        let a = n.get("packages").unwrap().get("a").unwrap();
        assert_eq!(a.get("status").unwrap().line, Some(5));
    }

    #[test]
    fn aliases_and_multiple_documents_are_refused() {
        let e = parse_yaml("a: &x [1, 2]\nb: *x\n").unwrap_err();
        assert!(e.message.contains("aliases"), "{e}");
        assert_eq!(e.line, Some(2));
        let e = parse_yaml("a: 1\n---\nb: 2\n").unwrap_err();
        assert!(e.message.contains("single YAML document"), "{e}");
    }

    #[test]
    fn depth_is_capped() {
        let deep = "[".repeat(MAX_DEPTH + 5) + &"]".repeat(MAX_DEPTH + 5);
        let e = parse_yaml(&deep).unwrap_err();
        assert!(e.message.contains("nested too deeply"), "{e}");
    }

    #[test]
    fn python_reprs() {
        assert_eq!(py_str_repr("it's"), "\"it's\"");
        assert_eq!(py_str_repr("a"), "'a'");
        assert_eq!(py_float(2.0), "2.0");
        assert_eq!(py_float(0.9), "0.9");
    }
}
