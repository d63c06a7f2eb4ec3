//! Gate 1, registry block: `banned`, `deprecated`, and a `version-constrained`
//! rule the pin or requirement violates. Registry only, so [`super::super::plan`]
//! settles it before any upstream call.

use std::str::FromStr;

use pep440_rs::Version;

use super::registry_denial;
use crate::evaluate::versions::{admits, intersect_specifiers, requirement_with, within};
use crate::evaluate::{Needs, Plan};
use crate::registry::{Rule, Status};
use crate::request::EvalRequest;
use crate::verdict::Verdict;

/// The plan for `rule`, the rule in force (`None` for unlisted or lapsed).
pub(crate) fn plan(req: &EvalRequest, rule: Option<&Rule>) -> Plan {
    match rule {
        Some(rule) if matches!(rule.status, Status::Banned | Status::Deprecated) => {
            Plan::Decided(registry_denial(req, rule, None, None))
        }
        Some(rule) => match version_violation(req, rule) {
            Some(v) => Plan::Decided(v),
            // A pinned registry-known package needs no index call: its
            // license is not judged and its version is given.
            None => Plan::Fetch(Needs {
                index: req.pinned_version().is_none(),
                advisories: true,
            }),
        },
        None => Plan::Fetch(Needs {
            index: true,
            advisories: true,
        }),
    }
}

/// The registry-only version check of a `version-constrained` rule: a pin
/// outside the bounds, or a requirement admitting versions outside them.
fn version_violation(req: &EvalRequest, rule: &Rule) -> Option<Verdict> {
    if rule.status != Status::VersionConstrained {
        return None;
    }
    let bounds = rule.bounds()?;
    let constraint = rule.bounds_text().unwrap_or_default();
    if let Some(pin) = req.pinned_version() {
        let v = Version::from_str(&pin).ok()?;
        if admits(&bounds, &v) {
            return None;
        }
        let suggested = requirement_with(req, intersect_specifiers(None, &bounds));
        return Some(registry_denial(
            req,
            rule,
            Some(format!(
                "Version {pin} is outside the allowed range {constraint}."
            )),
            Some(suggested),
        ));
    }
    let specs = req.specifiers()?;
    if within(&specs, &bounds) {
        return None;
    }
    let suggested = requirement_with(req, intersect_specifiers(Some(&specs), &bounds));
    Some(registry_denial(
        req,
        rule,
        Some(format!(
            "The requirement `{}` admits versions outside the allowed range {constraint}.",
            req.requirement.as_deref().unwrap_or(&req.package)
        )),
        Some(suggested),
    ))
}
