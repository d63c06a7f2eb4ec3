//! License: recorded for every package whose release metadata was read
//! ([`record`], decides nothing), judged only for packages outside the
//! registry ([`judge`], the last gate: it always decides).

use super::{base, deny, Ctx};
use crate::license::{self, LicenseAction, LicenseSource, ResolvedLicense};
use crate::verdict::{Decision, DenialCategory, Verdict};

/// Resolve the judged release's license; a listed release whose metadata
/// could not be fetched is a missing fact.
pub(crate) fn record(ctx: &mut Ctx) -> Option<Verdict> {
    ctx.license = match ctx.metadata {
        Some(meta) => Some(license::resolve(meta)),
        None if ctx.index_found && ctx.resolved.is_some() => {
            ctx.license_missing = true;
            ctx.errors.push(format!(
                "package index unavailable: metadata of {} {} could not be fetched",
                ctx.req.package,
                ctx.resolved.as_deref().unwrap_or_default()
            ));
            None
        }
        None if ctx.index_found => Some(ResolvedLicense {
            expression: None,
            source: LicenseSource::None,
        }),
        None => None,
    };
    None
}

/// The verdict for a package outside the registry.
pub(crate) fn judge(ctx: &mut Ctx) -> Verdict {
    let req = ctx.req;
    if ctx.index_down || ctx.license_missing {
        // Open fail policy (closed already denied): existence and license unknown.
        let mut v = base(
            req,
            Decision::ProvisionallyAllowed,
            format!(
                "Not yet in your approved registry. The package index could not be asked ({}), so the existence and \
                 license gates were skipped; provisionally allowed under the open fail policy. Check again when the \
                 index is reachable.",
                ctx.errors.join("; ")
            ),
        );
        ctx.fill(&mut v);
        return v;
    }
    let expression = ctx.license.as_ref().and_then(|l| l.expression.as_deref());
    let judgement = license::judge(expression, &ctx.registry.policies);
    let mut v = match judgement.action {
        LicenseAction::Block => deny(req, DenialCategory::License, judgement.reason),
        LicenseAction::Allow | LicenseAction::Review => {
            let mut reason = judgement.reason;
            if ctx.advisories_down {
                reason.push_str(" Advisories could not be checked (see upstream_error).");
            }
            let mut v = base(req, Decision::ProvisionallyAllowed, reason);
            v.is_requestable = true;
            v.auto_request_approval = judgement.action == LicenseAction::Review;
            v
        }
    };
    ctx.fill(&mut v);
    v
}
