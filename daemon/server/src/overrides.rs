//! Operator overrides in memory: the active rows of the `overrides` table,
//! refreshed when the access generation moves. The engine's override gate
//! (`lex_align_engine::evaluate::apply_override`) checks each one's expiry
//! against the request time, so a lapsed override stops at once, before
//! any refresh.

use std::collections::HashMap;
use std::sync::Arc;

use arc_swap::ArcSwap;
use lex_align_engine::evaluate::Override;
use lex_align_store::{AccessDb, OverrideRow, StoreError};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

#[derive(Default)]
struct Snapshot {
    generation: i64,
    /// By canonical package name.
    by_package: HashMap<String, Vec<Override>>,
    rows: Vec<OverrideRow>,
}

#[derive(Default)]
pub struct OverrideBook {
    snapshot: ArcSwap<Snapshot>,
}

pub fn to_engine(r: &OverrideRow) -> Option<Override> {
    Some(Override {
        id: r.id.clone(),
        package: r.package.clone(),
        project: r.project.clone(),
        version: r.version.clone(),
        approver: r.approver.clone(),
        justification: r.justification.clone(),
        expires_at: OffsetDateTime::parse(&r.expires_at, &Rfc3339).ok()?,
    })
}

impl OverrideBook {
    /// Reloads when the access generation moved (or `force`).
    pub fn refresh(&self, db: &AccessDb, force: bool) -> Result<bool, StoreError> {
        let generation = db.generation()?;
        if !force && generation == self.snapshot.load().generation && generation != 0 {
            return Ok(false);
        }
        let rows = db.active_overrides()?;
        let mut by_package: HashMap<String, Vec<Override>> = HashMap::new();
        for r in &rows {
            if let Some(o) = to_engine(r) {
                by_package.entry(o.package.clone()).or_default().push(o);
            }
        }
        self.snapshot.store(Arc::new(Snapshot {
            generation,
            by_package,
            rows,
        }));
        Ok(true)
    }

    /// Overrides of one package (any project; the gate matches the project).
    pub fn for_package(&self, canonical: &str) -> Option<Vec<Override>> {
        self.snapshot.load().by_package.get(canonical).cloned()
    }

    /// Whether any override names this package (the cheap hot-path test).
    pub fn has(&self, canonical: &str) -> bool {
        self.snapshot.load().by_package.contains_key(canonical)
    }

    /// Active overrides lapsing within `within` of now, soonest first.
    pub fn lapsing_within(&self, within: time::Duration) -> Vec<OverrideRow> {
        let now = OffsetDateTime::now_utc();
        self.snapshot
            .load()
            .rows
            .iter()
            .filter(|r| {
                OffsetDateTime::parse(&r.expires_at, &Rfc3339)
                    .is_ok_and(|t| t > now && t <= now + within)
            })
            .cloned()
            .collect()
    }
}
