//! The approved-package registry: YAML (source of truth) and compiled JSON,
//! validation with package/field/line, lookup by canonical name.
//!
//! Both forms go through one typed validator whose messages are the original
//! server's (they are the wire `detail`), checked in the original order, with
//! a few added checks: duplicate names after PEP 503 normalisation, PEP 440
//! bounds with `min < max`, and license-list entries from a known vocabulary.

mod compose;
mod edit;
mod expiry;
pub(crate) mod tree;

use std::collections::BTreeMap;
use std::str::FromStr;

use pep440_rs::{Version, VersionSpecifiers};
use serde_json::{json, Map, Value};
use time::OffsetDateTime;

use tree::{Node, Val};

pub use compose::{registry_to_yaml, set_policies_in_yaml};
pub use edit::{remove_rule_in_yaml, upsert_rule_in_yaml};
pub use expiry::RuleLookup;

/// The starter registry laid down by `quickstart` and used as the built-in
/// default policy when no registry file is configured.
pub const STARTER_YAML: &str = include_str!("starter_registry.yml");

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Status {
    Preferred,
    Approved,
    Deprecated,
    VersionConstrained,
    Banned,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Preferred => "preferred",
            Status::Approved => "approved",
            Status::Deprecated => "deprecated",
            Status::VersionConstrained => "version-constrained",
            Status::Banned => "banned",
        }
    }

    /// Parse the wire/YAML spelling.
    pub fn parse(s: &str) -> Option<Status> {
        Some(match s {
            "preferred" => Status::Preferred,
            "approved" => Status::Approved,
            "deprecated" => Status::Deprecated,
            "version-constrained" => Status::VersionConstrained,
            "banned" => Status::Banned,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum UnknownLicensePolicy {
    #[default]
    Block,
    /// Allowed, flagged with a warning (the original denied here).
    Warn,
    Allow,
    /// Provisionally allowed and queued for human review.
    PendingApproval,
}

impl UnknownLicensePolicy {
    pub fn as_str(self) -> &'static str {
        unknown_policy_str(self)
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "block" => Self::Block,
            "warn" => Self::Warn,
            "allow" => Self::Allow,
            "pending_approval" => Self::PendingApproval,
            _ => return None,
        })
    }
}

/// The YAML/wire spelling of an unknown-license policy.
pub fn unknown_policy_str(p: UnknownLicensePolicy) -> &'static str {
    match p {
        UnknownLicensePolicy::Block => "block",
        UnknownLicensePolicy::Warn => "warn",
        UnknownLicensePolicy::Allow => "allow",
        UnknownLicensePolicy::PendingApproval => "pending_approval",
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct GlobalPolicies {
    pub auto_approve_licenses: Vec<String>,
    pub hard_ban_licenses: Vec<String>,
    pub require_human_review_licenses: Vec<String>,
    pub unknown_license_policy: UnknownLicensePolicy,
    /// Fraction of CVSS 10 (0.9 → deny at 9.0); compared in integer tenths.
    pub cve_threshold: f64,
}

impl Default for GlobalPolicies {
    /// The validator's defaults (empty lists, `block`, 0.9).
    fn default() -> Self {
        GlobalPolicies {
            auto_approve_licenses: Vec::new(),
            hard_ban_licenses: Vec::new(),
            require_human_review_licenses: Vec::new(),
            unknown_license_policy: UnknownLicensePolicy::Block,
            cve_threshold: 0.9,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    /// The key as written in the file (display form).
    pub name: String,
    pub status: Status,
    pub reason: Option<String>,
    pub replacement: Option<String>,
    /// Inclusive lower bound.
    pub min_version: Option<String>,
    /// Exclusive upper bound.
    pub max_version: Option<String>,
    /// 1-based line of the package key in the YAML source, when known.
    pub line: Option<usize>,
    /// The instant the rule lapses (`expires`; a date means the end of that
    /// day UTC). From then on the package is judged as if unlisted.
    pub expires: Option<OffsetDateTime>,
    /// Who answers for the rule (free text).
    pub owner: Option<String>,
}

impl Rule {
    /// `>=min` and/or `<max` joined by `,`, whatever the status (see
    /// [`version_constraint`] for the wire field, which is status-dependent).
    pub fn bounds_text(&self) -> Option<String> {
        let mut parts = Vec::new();
        if let Some(min) = self.min_version.as_deref().filter(|s| !s.is_empty()) {
            parts.push(format!(">={min}"));
        }
        if let Some(max) = self.max_version.as_deref().filter(|s| !s.is_empty()) {
            parts.push(format!("<{max}"));
        }
        (!parts.is_empty()).then(|| parts.join(","))
    }

    /// The bounds as PEP 440 specifiers (`None` when the rule has none).
    pub fn bounds(&self) -> Option<VersionSpecifiers> {
        VersionSpecifiers::from_str(&self.bounds_text()?).ok()
    }

    /// The rule's fields as the compiled/API JSON object (optional keys only
    /// when truthy).
    pub fn to_json(&self) -> Value {
        let mut m = Map::new();
        // Inserted in sorted key order so output is sorted whatever serde_json's map is.
        let expires = self.expires_text();
        for (k, v) in [
            ("expires", &expires),
            ("max_version", &self.max_version),
            ("min_version", &self.min_version),
            ("owner", &self.owner),
            ("reason", &self.reason),
            ("replacement", &self.replacement),
        ] {
            if let Some(v) = v.as_deref().filter(|s| !s.is_empty()) {
                m.insert(k.into(), Value::String(v.to_string()));
            }
        }
        m.insert("status".into(), Value::String(self.status.as_str().into()));
        sorted_object(m)
    }
}

/// The wire `version_constraint`: set only for `version-constrained` rules.
pub fn version_constraint(rule: &Rule) -> Option<String> {
    if rule.status == Status::VersionConstrained {
        rule.bounds_text()
    } else {
        None
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Registry {
    pub version: String,
    pub policies: GlobalPolicies,
    /// Keyed by PEP 503 canonical name.
    pub packages: BTreeMap<String, Rule>,
}

/// A validation or parse failure. `message` keeps the original server's
/// wording (it is the wire `detail`); `Display` adds the location.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", self.located())]
pub struct RegistryError {
    pub message: String,
    pub package: Option<String>,
    pub field: Option<String>,
    pub line: Option<usize>,
}

impl RegistryError {
    pub fn located(&self) -> String {
        match self.line {
            Some(line) => format!("{} (line {line})", self.message),
            None => self.message.clone(),
        }
    }

    fn new(message: impl Into<String>, line: Option<usize>) -> Self {
        RegistryError {
            message: message.into(),
            package: None,
            field: None,
            line,
        }
    }

    fn field(mut self, field: &str) -> Self {
        self.field = Some(field.to_string());
        self
    }

    fn package(mut self, package: &str) -> Self {
        self.package = Some(package.to_string());
        self
    }
}

impl Registry {
    /// Parse and validate `registry.yml` text.
    pub fn from_yaml(text: &str) -> Result<Registry, RegistryError> {
        validate_document(&tree::parse_yaml(text)?)
    }

    /// Parse and validate the compiled JSON form (or any JSON of the YAML shape).
    pub fn from_json(text: &str) -> Result<Registry, RegistryError> {
        validate_document(&tree::parse_json(text)?)
    }

    /// Either form: JSON when the text starts with `{`, YAML otherwise (a file
    /// at `REGISTRY_PATH` may be either, W6).
    pub fn from_text(text: &str) -> Result<Registry, RegistryError> {
        if text
            .trim_start_matches('\u{feff}')
            .trim_start()
            .starts_with('{')
        {
            Registry::from_json(text)
        } else {
            Registry::from_yaml(text)
        }
    }

    /// The starter registry: the policy in force when no file is configured,
    /// so the license and CVE gates always run (W12).
    pub fn builtin_default() -> Registry {
        Registry::from_yaml(STARTER_YAML).expect("the bundled starter registry is valid")
    }

    /// The rule for a package name in any spelling, lapsed or not (see
    /// [`Registry::rule_at`] for the rule in force at an instant).
    pub fn rule(&self, name: &str) -> Option<&Rule> {
        let canonical = crate::name::canonicalize(name);
        self.packages.get(&canonical)
    }

    fn policies_json(&self) -> Value {
        let p = &self.policies;
        let mut m = Map::new();
        m.insert(
            "auto_approve_licenses".into(),
            json!(p.auto_approve_licenses),
        );
        m.insert("cve_threshold".into(), json!(p.cve_threshold));
        m.insert("hard_ban_licenses".into(), json!(p.hard_ban_licenses));
        m.insert(
            "require_human_review_licenses".into(),
            json!(p.require_human_review_licenses),
        );
        m.insert(
            "unknown_license_policy".into(),
            json!(unknown_policy_str(p.unknown_license_policy)),
        );
        sorted_object(m)
    }

    /// The compiled form (registry.md §4): package keys as written, sorted;
    /// all five policy keys; optional rule keys only when truthy.
    pub fn to_compiled_json(&self) -> Value {
        let mut rules: Vec<&Rule> = self.packages.values().collect();
        rules.sort_by(|a, b| a.name.cmp(&b.name));
        let mut pkgs = Map::new();
        for r in rules {
            pkgs.insert(r.name.clone(), r.to_json());
        }
        self.wrap(pkgs)
    }

    /// The `GET /api/v1/registry` shape (http-api.md §6.1): keyed by
    /// canonical name, sorted.
    pub fn to_api_json(&self) -> Value {
        let mut pkgs = Map::new();
        for (k, r) in &self.packages {
            pkgs.insert(k.clone(), r.to_json());
        }
        self.wrap(pkgs)
    }

    fn wrap(&self, packages: Map<String, Value>) -> Value {
        let mut m = Map::new();
        m.insert("global_policies".into(), self.policies_json());
        m.insert("packages".into(), Value::Object(packages));
        m.insert("version".into(), Value::String(self.version.clone()));
        Value::Object(m)
    }
}

/// Rebuild an object so its keys iterate sorted even if serde_json was built
/// with `preserve_order` somewhere in the workspace.
fn sorted_object(m: Map<String, Value>) -> Value {
    let sorted: BTreeMap<String, Value> = m.into_iter().collect();
    Value::Object(sorted.into_iter().collect())
}

/// Validate one operator-proposed rule (`POST /registry/proposals`): the same
/// checks and messages as a rule inside `registry.yml`.
pub fn validate_rule(name: &str, fields: &Value) -> Result<Rule, RegistryError> {
    let key = Node {
        val: Val::Str(name.to_string()),
        line: None,
        index: None,
        raw: None,
    };
    validate_package_rule(&key, &tree::from_json_value(fields))
}

const POLICY_KEYS: [&str; 5] = [
    "auto_approve_licenses",
    "cve_threshold",
    "hard_ban_licenses",
    "require_human_review_licenses",
    "unknown_license_policy",
];
const RULE_KEYS: [&str; 7] = [
    "expires",
    "max_version",
    "min_version",
    "owner",
    "reason",
    "replacement",
    "status",
];
const LICENSE_LISTS: [&str; 3] = [
    "auto_approve_licenses",
    "hard_ban_licenses",
    "require_human_review_licenses",
];

fn py_list(items: &[String]) -> String {
    format!(
        "[{}]",
        items
            .iter()
            .map(|s| tree::py_str_repr(s))
            .collect::<Vec<_>>()
            .join(", ")
    )
}

fn unknown_keys(map: &[(Node, Node)], allowed: &[&str]) -> Option<(String, Option<usize>)> {
    let mut unknown: Vec<String> = Vec::new();
    let mut line = None;
    for (k, _) in map {
        let name = match &k.val {
            Val::Str(s) => s.clone(),
            _ => k.py_repr(),
        };
        if !allowed.contains(&name.as_str()) && !unknown.contains(&name) {
            line = line.or(k.line);
            unknown.push(name);
        }
    }
    unknown.sort();
    (!unknown.is_empty()).then(|| (py_list(&unknown), line))
}

/// A key written twice in one mapping (YAML allows it silently; we don't).
fn duplicate_key(map: &[(Node, Node)], context: &str) -> Result<(), RegistryError> {
    for (i, (k, _)) in map.iter().enumerate() {
        if let Some(name) = k.as_str() {
            if let Some((first, _)) = map[..i].iter().find(|(p, _)| p.as_str() == Some(name)) {
                let at = first
                    .line
                    .map(|l| format!(" (first at line {l})"))
                    .unwrap_or_default();
                return Err(RegistryError::new(
                    format!("{context} has duplicate key `{name}`{at}"),
                    k.line,
                ));
            }
        }
    }
    Ok(())
}

fn validate_document(doc: &Node) -> Result<Registry, RegistryError> {
    let top = doc
        .as_map()
        .ok_or_else(|| RegistryError::new("top-level YAML must be a mapping", doc.line))?;
    duplicate_key(top, "the top-level mapping")?;

    // version
    let version_node = doc
        .get("version")
        .filter(|v| v.val != Val::Null)
        .ok_or_else(|| {
            RegistryError::new("missing required field: version", None).field("version")
        })?;
    let version = match &version_node.val {
        Val::Str(s) => s.clone(),
        // The scalar as written: `1.10` stays "1.10" (the original gave "1.1").
        Val::Int(_) | Val::Float(_) | Val::Bool(_) => {
            version_node
                .raw
                .clone()
                .unwrap_or_else(|| match &version_node.val {
                    Val::Int(i) => i.to_string(),
                    Val::Float(f) => tree::py_float(*f),
                    Val::Bool(b) => {
                        if *b {
                            "True".into()
                        } else {
                            "False".into()
                        }
                    }
                    _ => unreachable!(),
                })
        }
        _ => {
            return Err(
                RegistryError::new("version must be a string or number", version_node.line)
                    .field("version"),
            )
        }
    };

    // global_policies
    let mut policies = GlobalPolicies::default();
    if let Some(gp) = doc.get("global_policies").filter(|n| n.truthy()) {
        let gmap = gp.as_map().ok_or_else(|| {
            RegistryError::new("global_policies must be a mapping", gp.line)
                .field("global_policies")
        })?;
        if let Some((list, line)) = unknown_keys(gmap, &POLICY_KEYS) {
            return Err(RegistryError::new(
                format!("global_policies has unknown fields: {list}"),
                line,
            )
            .field("global_policies"));
        }
        duplicate_key(gmap, "global_policies")?;
        for field in LICENSE_LISTS {
            let Some(node) = gp.get(field).filter(|n| n.val != Val::Null) else {
                continue;
            };
            let err = || {
                RegistryError::new(format!("{field} must be a list of strings"), node.line)
                    .field(&format!("global_policies.{field}"))
            };
            let Val::Seq(items) = &node.val else {
                return Err(err());
            };
            let mut out = Vec::with_capacity(items.len());
            for item in items {
                let s = item.as_str().ok_or_else(err)?;
                if let Err(why) = crate::spdx_expr::check_policy_token(s) {
                    return Err(RegistryError::new(
                        format!("global_policies.{field}: unknown license `{s}`: {why}"),
                        item.line.or(node.line),
                    )
                    .field(&format!("global_policies.{field}")));
                }
                out.push(s.to_string());
            }
            match field {
                "auto_approve_licenses" => policies.auto_approve_licenses = out,
                "hard_ban_licenses" => policies.hard_ban_licenses = out,
                _ => policies.require_human_review_licenses = out,
            }
        }
        if let Some(node) = gp
            .get("unknown_license_policy")
            .filter(|n| n.val != Val::Null)
        {
            policies.unknown_license_policy = node
                .as_str()
                .and_then(UnknownLicensePolicy::parse)
                .ok_or_else(|| {
                    RegistryError::new(
                        format!(
                            "unknown_license_policy must be one of ['allow', 'block', 'pending_approval', 'warn']; got {}",
                            node.py_repr()
                        ),
                        node.line,
                    )
                    .field("global_policies.unknown_license_policy")
                })?;
        }
        if let Some(node) = gp.get("cve_threshold") {
            let t = match node.val {
                Val::Int(i) => i as f64,
                Val::Float(f) => f,
                _ => {
                    return Err(RegistryError::new(
                        "cve_threshold must be a number between 0 and 1",
                        node.line,
                    )
                    .field("global_policies.cve_threshold"))
                }
            };
            if !(0.0..=1.0).contains(&t) {
                return Err(
                    RegistryError::new("cve_threshold must be between 0 and 1", node.line)
                        .field("global_policies.cve_threshold"),
                );
            }
            policies.cve_threshold = t;
        }
    }

    // packages
    let mut packages: BTreeMap<String, Rule> = BTreeMap::new();
    if let Some(pk) = doc.get("packages").filter(|n| n.truthy()) {
        let pmap = pk.as_map().ok_or_else(|| {
            RegistryError::new("packages must be a mapping keyed by package name", pk.line)
                .field("packages")
        })?;
        for (key, value) in pmap {
            let rule = validate_package_rule(key, value)?;
            let canonical = crate::name::canonicalize(&rule.name);
            if let Some(prev) = packages.get(&canonical) {
                let at = |l: Option<usize>| l.map(|l| format!(" (line {l})")).unwrap_or_default();
                return Err(RegistryError::new(
                    format!(
                        "packages `{}`{} and `{}`{} are the same package (`{canonical}`) after name normalisation; keep one",
                        prev.name,
                        at(prev.line),
                        rule.name,
                        at(rule.line)
                    ),
                    rule.line,
                )
                .package(&rule.name));
            }
            packages.insert(canonical, rule);
        }
    }

    Ok(Registry {
        version,
        policies,
        packages,
    })
}

fn validate_package_rule(key: &Node, value: &Node) -> Result<Rule, RegistryError> {
    let name = match key.as_str() {
        Some(s) if !s.trim().is_empty() => s.to_string(),
        _ => {
            return Err(RegistryError::new(
                format!(
                    "package key must be a non-empty string; got {}",
                    key.py_repr()
                ),
                key.line,
            ))
        }
    };
    let line = key.line;
    let err = |msg: String, at: Option<usize>, field: Option<&str>| {
        let mut e = RegistryError::new(msg, at.or(line)).package(&name);
        e.field = field.map(str::to_string);
        e
    };
    if let Err(why) = crate::name::validate(name.trim()) {
        return Err(err(
            format!("package `{name}` is not a valid package name: {why}"),
            line,
            None,
        ));
    }
    let map = value.as_map().ok_or_else(|| {
        err(
            format!("package `{name}` must be a mapping"),
            value.line,
            None,
        )
    })?;
    if let Some((list, at)) = unknown_keys(map, &RULE_KEYS) {
        return Err(err(
            format!("package `{name}` has unknown fields: {list}"),
            at,
            None,
        ));
    }
    duplicate_key(map, &format!("package `{name}`")).map_err(|e| e.package(&name))?;

    let status_node = value.get("status");
    let status = status_node.and_then(Node::as_str).and_then(Status::parse).ok_or_else(|| {
        let repr = status_node.map(Node::py_repr).unwrap_or_else(|| "None".into());
        err(
            format!(
                "package `{name}` has invalid status {repr}; must be one of ['approved', 'banned', 'deprecated', 'preferred', 'version-constrained']"
            ),
            status_node.and_then(|n| n.line),
            Some("status"),
        )
    })?;

    let truthy = |f: &str| value.get(f).is_some_and(Node::truthy);
    if status == Status::Deprecated && !truthy("replacement") {
        return Err(err(
            format!("package `{name}` is deprecated but has no `replacement`"),
            None,
            Some("replacement"),
        ));
    }
    if status == Status::VersionConstrained && !truthy("min_version") && !truthy("max_version") {
        return Err(err(
            format!("package `{name}` is version-constrained but has neither min_version nor max_version"),
            None,
            Some("min_version"),
        ));
    }

    let mut strings: BTreeMap<&str, Option<String>> = BTreeMap::new();
    for field in [
        "min_version",
        "max_version",
        "reason",
        "replacement",
        "owner",
        "expires",
    ] {
        let v = match value.get(field) {
            None => None,
            Some(n) => match &n.val {
                Val::Null => None,
                Val::Str(s) => Some(s.clone()),
                _ => {
                    return Err(err(
                        format!("package `{name}`.{field} must be a string"),
                        n.line,
                        Some(field),
                    ))
                }
            },
        };
        strings.insert(field, v);
    }

    // Added checks: bounds must be PEP 440 and ordered (W17, W22).
    let mut parsed = [None, None];
    for (i, field) in ["min_version", "max_version"].into_iter().enumerate() {
        if let Some(text) = strings[field].as_deref().filter(|s| !s.is_empty()) {
            let at = value.get(field).and_then(|n| n.line);
            parsed[i] = Some(Version::from_str(text.trim()).map_err(|e| {
                err(
                    format!(
                        "package `{name}`.{field} is not a valid PEP 440 version: {}: {e}",
                        tree::py_str_repr(text)
                    ),
                    at,
                    Some(field),
                )
            })?);
        }
    }
    if let [Some(min), Some(max)] = &parsed {
        if min >= max {
            return Err(err(
                format!(
                    "package `{name}` has min_version {} not below max_version {} (the range is empty)",
                    strings["min_version"].as_deref().unwrap_or_default(),
                    strings["max_version"].as_deref().unwrap_or_default()
                ),
                value.get("max_version").and_then(|n| n.line),
                Some("max_version"),
            ));
        }
    }

    let expires = match strings["expires"].as_deref().filter(|s| !s.is_empty()) {
        None => None,
        Some(text) => Some(expiry::parse_expires(text).map_err(|why| {
            err(
                format!(
                    "package `{name}`.expires {why}: {}",
                    tree::py_str_repr(text)
                ),
                value.get("expires").and_then(|n| n.line),
                Some("expires"),
            )
        })?),
    };

    let take = |f: &str| strings[f].clone().filter(|s| !s.is_empty());
    Ok(Rule {
        name,
        status,
        reason: take("reason"),
        replacement: take("replacement"),
        min_version: take("min_version").map(|s| s.trim().to_string()),
        max_version: take("max_version").map(|s| s.trim().to_string()),
        line,
        expires,
        owner: take("owner"),
    })
}

#[cfg(test)]
mod tests;
