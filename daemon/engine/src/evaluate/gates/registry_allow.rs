//! Gate 7, registry allow: a rule in force that got this far (`preferred`,
//! `approved`, `version-constrained` within bounds) allows the package.

use super::{base, Ctx};
use crate::registry::{self, Status};
use crate::verdict::{Decision, Verdict};

pub(crate) fn run(ctx: &mut Ctx) -> Option<Verdict> {
    let rule = ctx.rule?;
    let reason = rule
        .reason
        .clone()
        .unwrap_or_else(|| format!("Allowed by local registry ({}).", rule.status.as_str()));
    let mut v = base(ctx.req, Decision::Allowed, reason);
    ctx.fill(&mut v);
    v.version_constraint = registry::version_constraint(rule);
    v.needs_rationale = rule.status == Status::Approved;
    Some(v)
}
