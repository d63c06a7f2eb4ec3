//! Gate 6, missing facts: with an upstream down, `closed` denies; `open`
//! lets the later gates judge on what is known (`upstream_error` says what
//! is missing, and an unknown package is never ALLOWED on that alone).

use super::{deny, Ctx};
use crate::evaluate::FailPolicy;
use crate::verdict::{DenialCategory, Verdict};

pub(crate) fn run(ctx: &mut Ctx) -> Option<Verdict> {
    let facts_missing = ctx.index_down || ctx.license_missing || ctx.advisories_down;
    if !facts_missing || ctx.fail != FailPolicy::Closed {
        return None;
    }
    let mut v = deny(
        ctx.req,
        DenialCategory::Upstream,
        format!(
            "Could not be judged: {}. The fail policy is closed, so the package is denied until the upstream answers.",
            ctx.errors.join("; ")
        ),
    );
    ctx.fill(&mut v);
    Some(v)
}
