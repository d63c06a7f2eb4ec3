//! Gate 3, unpinned bounds: an unpinned install of a `version-constrained`
//! package gets the latest release, so that release must satisfy the rule (W19).

use std::str::FromStr;

use pep440_rs::{Version, VersionSpecifiers};

use super::{registry_denial, Ctx};
use crate::evaluate::versions::{admits, best_release, requirement_with};
use crate::registry::Status;
use crate::verdict::Verdict;

pub(crate) fn run(ctx: &mut Ctx) -> Option<Verdict> {
    let (req, releases) = (ctx.req, ctx.releases);
    let (Some(rule), None, None) = (ctx.rule, &ctx.pinned, req.specifiers()) else {
        return None;
    };
    let (Status::VersionConstrained, Some(bounds)) = (rule.status, rule.bounds()) else {
        return None;
    };
    let latest = best_release(releases, |_| true)
        .filter(|l| Version::from_str(l).is_ok_and(|v| !admits(&bounds, &v)))?;
    let compliant = best_release(releases, |v| admits(&bounds, v));
    let suggested = match &compliant {
        Some(c) => requirement_with(
            req,
            VersionSpecifiers::from_str(&format!("=={c}")).unwrap_or(bounds.clone()),
        ),
        None => requirement_with(req, bounds.clone()),
    };
    let constraint = rule.bounds_text().unwrap_or_default();
    let mut v = registry_denial(
        req,
        rule,
        Some(format!(
            "The latest release {latest} is outside the allowed range {constraint}; pin a version within it."
        )),
        Some(suggested),
    );
    v.resolved_version = Some(latest);
    Some(v)
}
