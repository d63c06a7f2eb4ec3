//! License resolution (PEP 639 expression → legacy field → classifiers) and
//! policy judgement over SPDX expressions.
//!
//! Expressions are parsed with the `spdx` crate (identifiers matched
//! case-insensitively, deprecated GNU ids accepted and rewritten to their
//! `-only` form). Registry lists keep the original's vocabulary working:
//! `GPL-3.0` covers `GPL-3.0-only` and `GPL-3.0-or-later`, `BSD` the whole BSD
//! family, `Proprietary` means `LicenseRef-Proprietary`.

use spdx::expression::Operator;

use crate::registry::{GlobalPolicies, UnknownLicensePolicy};
use crate::spdx_expr::{lookup_id, parse, render_license, render_req, render_tree, to_tree, Tree};
// Re-exported: callers have always found these under `license`.
use crate::spdx_expr::FAMILIES;
pub use crate::spdx_expr::{check_policy_token, normalize_expression};

/// License-bearing core metadata of one release.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LicenseMetadata {
    /// PEP 639 `License-Expression` / JSON `license_expression`.
    pub license_expression: Option<String>,
    /// Legacy `License` field (identifier or full text).
    pub license: Option<String>,
    /// All `Classifier` values (only `License ::` ones are read).
    pub classifiers: Vec<String>,
}

/// Where the resolved license came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LicenseSource {
    /// PEP 639 `License-Expression`.
    Expression,
    /// Legacy `License` field holding an identifier or a common name.
    LicenseField,
    /// Legacy `License` field holding license text, recognised by its wording.
    LicenseText,
    /// `License ::` trove classifiers.
    Classifier,
    None,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedLicense {
    /// Normalised SPDX expression; `None` when nothing resolves (`UNKNOWN`).
    pub expression: Option<String>,
    pub source: LicenseSource,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LicenseAction {
    Allow,
    Block,
    /// Provisionally allowed, an approval request is filed for human review.
    Review,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LicenseJudgement {
    pub action: LicenseAction,
    /// For `Block` the denial reason; for `Allow`/`Review` the full
    /// PROVISIONALLY_ALLOWED reason of an unknown package.
    pub reason: String,
}

// ---------------------------------------------------------------- resolution

/// Common spellings of the legacy `License` field, lower-cased.
fn common_name(raw: &str) -> Option<&'static str> {
    let mut key = raw
        .trim()
        .trim_matches(|c| matches!(c, '"' | '\'' | '.'))
        .to_ascii_lowercase();
    key = key.split_whitespace().collect::<Vec<_>>().join(" ");
    if let Some(hit) = common_name_exact(&key) {
        return Some(hit);
    }
    for suffix in [" license", " licence", " license agreement"] {
        if let Some(stripped) = key.strip_suffix(suffix) {
            if let Some(hit) = common_name_exact(stripped) {
                return Some(hit);
            }
        }
    }
    key.strip_prefix("the ").and_then(common_name_exact)
}

fn common_name_exact(key: &str) -> Option<&'static str> {
    Some(match key {
        "mit" | "the mit license (mit)" | "expat" | "mit/expat" => "MIT",
        "apache"
        | "apache 2"
        | "apache 2.0"
        | "apache-2"
        | "apache2"
        | "apache2.0"
        | "apache v2"
        | "apache v2.0"
        | "apache license, version 2.0"
        | "apache license version 2.0"
        | "apache license 2.0"
        | "apache license 2"
        | "apache software"
        | "apache software license 2.0"
        | "apache software license, version 2.0"
        | "apache license (2.0)"
        | "asl 2.0"
        | "asl2"
        | "asl 2"
        | "apache-2.0 license"
        | "apache 2.0 license" => "Apache-2.0",
        "apache 1.1" | "apache license 1.1" | "apache software license 1.1" => "Apache-1.1",
        "bsd" | "bsd-style" | "bsd style" | "bsd-like" => "LicenseRef-BSD",
        "new bsd" | "modified bsd" | "revised bsd" | "bsd 3-clause" | "bsd-3" | "bsd3"
        | "bsd 3" | "3-clause bsd" | "bsd 3 clause" | "bsd-3 clause" | "bsd (3-clause)"
        | "bsd-3-clause" => "BSD-3-Clause",
        "simplified bsd" | "freebsd" | "bsd 2-clause" | "bsd-2" | "bsd2" | "bsd 2"
        | "2-clause bsd" | "bsd 2 clause" | "bsd (2-clause)" => "BSD-2-Clause",
        "isc" | "iscl" | "isc (iscl)" => "ISC",
        "gpl" | "gnu gpl" | "gnu general public" | "gnu general public license (gpl)" => {
            "LicenseRef-GPL"
        }
        "gplv2"
        | "gpl v2"
        | "gpl-2"
        | "gpl2"
        | "gpl 2"
        | "gnu gpl v2"
        | "gnu gplv2"
        | "gnu general public license v2"
        | "gnu general public license version 2"
        | "gnu general public license v2 (gplv2)" => "GPL-2.0-only",
        "gplv2+"
        | "gpl v2+"
        | "gplv2 or later"
        | "gnu general public license v2 or later (gplv2+)" => "GPL-2.0-or-later",
        "gplv3"
        | "gpl v3"
        | "gpl-3"
        | "gpl3"
        | "gpl 3"
        | "gnu gpl v3"
        | "gnu gplv3"
        | "gnu general public license v3"
        | "gnu general public license version 3"
        | "gnu general public license v3 (gplv3)" => "GPL-3.0-only",
        "gplv3+"
        | "gpl v3+"
        | "gplv3 or later"
        | "gnu general public license v3 or later (gplv3+)" => "GPL-3.0-or-later",
        "lgpl"
        | "gnu lgpl"
        | "gnu lesser general public"
        | "gnu library or lesser general public license (lgpl)" => "LicenseRef-LGPL",
        "lgplv2" | "lgpl v2" | "lgpl-2" | "lgpl2" => "LGPL-2.0-only",
        "lgplv2+" | "lgpl v2+" => "LGPL-2.0-or-later",
        "lgplv2.1" | "lgpl v2.1" | "lgpl 2.1" | "lgpl-2.1" | "lgpl2.1" => "LGPL-2.1-only",
        "lgplv2.1+" | "lgpl v2.1+" => "LGPL-2.1-or-later",
        "lgplv3" | "lgpl v3" | "lgpl-3" | "lgpl3" | "lgpl 3" | "gnu lgpl v3" | "gnu lgplv3" => {
            "LGPL-3.0-only"
        }
        "lgplv3+" | "lgpl v3+" => "LGPL-3.0-or-later",
        "agpl"
        | "agplv3"
        | "agpl v3"
        | "agpl-3"
        | "agpl3"
        | "gnu agpl v3"
        | "gnu agplv3"
        | "gnu affero general public license v3" => "AGPL-3.0-only",
        "agplv3+" | "agpl v3+" | "gnu affero general public license v3 or later (agplv3+)" => {
            "AGPL-3.0-or-later"
        }
        "mpl"
        | "mpl2"
        | "mpl 2"
        | "mpl 2.0"
        | "mpl-2"
        | "mpl v2"
        | "mpl v2.0"
        | "mozilla public license 2.0"
        | "mozilla public license, version 2.0"
        | "mozilla public license version 2.0" => "MPL-2.0",
        "psf"
        | "psfl"
        | "psf-2"
        | "python software foundation"
        | "python software foundation license"
        | "python" => "PSF-2.0",
        "unlicense" | "the unlicense (unlicense)" => "Unlicense",
        "cc0"
        | "cc0 1.0"
        | "cc0 1.0 universal"
        | "cc0 1.0 universal (cc0 1.0) public domain dedication" => "CC0-1.0",
        "public domain" | "public-domain" => "LicenseRef-Public-Domain",
        "proprietary" | "commercial" | "other/proprietary" | "all rights reserved" => {
            "LicenseRef-Proprietary"
        }
        "zlib" | "zlib/libpng" => "Zlib",
        _ => return None,
    })
}

/// Identifier or common name, including simple `A or B` / `A/B` lists of
/// common names (`Apache 2.0 or MIT`).
fn from_license_field(raw: &str) -> Option<String> {
    let t = raw.trim();
    if let Some(e) = normalize_expression(t) {
        return Some(e);
    }
    if let Some(n) = common_name(t) {
        return Some(n.to_string());
    }
    let lower = t.to_ascii_lowercase();
    let parts: Vec<&str> = lower.split(" or ").flat_map(|p| p.split(" / ")).collect();
    if parts.len() > 1 {
        let mapped: Option<Vec<String>> = parts
            .iter()
            .map(|p| normalize_expression(p).or_else(|| common_name(p).map(str::to_string)))
            .collect();
        return mapped.and_then(|m| normalize_expression(&m.join(" OR ")));
    }
    None
}

/// Recognise full license text by its title and characteristic wording.
fn from_license_text(text: &str) -> Option<String> {
    let head: String = text
        .chars()
        .take(3000)
        .collect::<String>()
        .to_ascii_lowercase();
    let head = head.split_whitespace().collect::<Vec<_>>().join(" ");
    let title: String = head.chars().take(600).collect();
    // A title line such as "BSD 3-Clause License" or "MIT License".
    if let Some(first) = text.lines().map(str::trim).find(|l| !l.is_empty()) {
        if first.len() <= 60 && !first.to_ascii_lowercase().starts_with("copyright") {
            if let Some(hit) = common_name(first).filter(|h| !h.starts_with("LicenseRef-")) {
                return Some(hit.to_string());
            }
        }
    }
    let or_later = head.contains("or (at your option) any later version");
    let gnu = |base: &str| {
        let suffix = if or_later { "-or-later" } else { "-only" };
        Some(format!("{base}{suffix}"))
    };
    if title.contains("gnu affero general public license") {
        return gnu("AGPL-3.0");
    }
    if title.contains("gnu lesser general public license")
        || title.contains("gnu library general public license")
    {
        if title.contains("version 3") {
            return gnu("LGPL-3.0");
        }
        if title.contains("version 2.1") {
            return gnu("LGPL-2.1");
        }
        if title.contains("version 2") {
            return gnu("LGPL-2.0");
        }
        return Some("LicenseRef-LGPL".into());
    }
    if title.contains("gnu general public license") {
        if title.contains("version 3") {
            return gnu("GPL-3.0");
        }
        if title.contains("version 2") {
            return gnu("GPL-2.0");
        }
        return Some("LicenseRef-GPL".into());
    }
    if head.contains("permission is hereby granted, free of charge") {
        return Some("MIT".into());
    }
    if title.contains("apache license") && head.contains("version 2.0") {
        return Some("Apache-2.0".into());
    }
    if title.contains("mozilla public license") && head.contains("2.0") {
        return Some("MPL-2.0".into());
    }
    if head.contains("redistribution and use in source and binary forms") {
        if head.contains("advertising materials") {
            return Some("BSD-4-Clause".into());
        }
        if head.contains("neither the name") || head.contains("may be used to endorse or promote") {
            return Some("BSD-3-Clause".into());
        }
        return Some("BSD-2-Clause".into());
    }
    if head.contains(
        "permission to use, copy, modify, and/or distribute this software for any purpose",
    ) {
        if head.contains("provided that the above copyright notice") {
            return Some("ISC".into());
        }
        return Some("0BSD".into());
    }
    if head.contains("python software foundation license") || head.contains("psf license agreement")
    {
        return Some("PSF-2.0".into());
    }
    if head.contains("this is free and unencumbered software released into the public domain") {
        return Some("Unlicense".into());
    }
    None
}

/// Trove classifier (`License :: …`) → SPDX.
pub fn classifier_to_spdx(classifier: &str) -> Option<String> {
    let parts: Vec<&str> = classifier.split("::").map(str::trim).collect();
    if parts.first() != Some(&"License") || parts.len() < 2 {
        return None;
    }
    let leaf = *parts.last()?;
    let mapped = match leaf {
        "MIT License" => "MIT",
        "Apache Software License" => "Apache-2.0",
        "BSD License" => "LicenseRef-BSD",
        "ISC License (ISCL)" => "ISC",
        "GNU General Public License (GPL)" => "LicenseRef-GPL",
        "GNU General Public License v2 (GPLv2)" => "GPL-2.0-only",
        "GNU General Public License v2 or later (GPLv2+)" => "GPL-2.0-or-later",
        "GNU General Public License v3 (GPLv3)" => "GPL-3.0-only",
        "GNU General Public License v3 or later (GPLv3+)" => "GPL-3.0-or-later",
        "GNU Lesser General Public License v2 (LGPLv2)" => "LGPL-2.0-only",
        "GNU Lesser General Public License v2 or later (LGPLv2+)" => "LGPL-2.0-or-later",
        "GNU Lesser General Public License v3 (LGPLv3)" => "LGPL-3.0-only",
        "GNU Lesser General Public License v3 or later (LGPLv3+)" => "LGPL-3.0-or-later",
        "GNU Library or Lesser General Public License (LGPL)" => "LicenseRef-LGPL",
        "GNU Affero General Public License v3" => "AGPL-3.0-only",
        "GNU Affero General Public License v3 or later (AGPLv3+)" => "AGPL-3.0-or-later",
        "GNU Free Documentation License (FDL)" => "LicenseRef-GFDL",
        "Mozilla Public License 1.0 (MPL)" => "MPL-1.0",
        "Mozilla Public License 1.1 (MPL 1.1)" => "MPL-1.1",
        "Mozilla Public License 2.0 (MPL 2.0)" => "MPL-2.0",
        "Python Software Foundation License" => "PSF-2.0",
        "Python License (CNRI Python License)" => "CNRI-Python",
        "Historical Permission Notice and Disclaimer (HPND)" => "HPND",
        "The Unlicense (Unlicense)" => "Unlicense",
        "zlib/libpng License" => "Zlib",
        "Universal Permissive License (UPL)" => "UPL-1.0",
        "European Union Public Licence 1.0 (EUPL 1.0)" => "EUPL-1.0",
        "European Union Public Licence 1.1 (EUPL 1.1)" => "EUPL-1.1",
        "European Union Public Licence 1.2 (EUPL 1.2)" => "EUPL-1.2",
        "Eclipse Public License 1.0 (EPL-1.0)" => "EPL-1.0",
        "Eclipse Public License 2.0 (EPL-2.0)" => "EPL-2.0",
        "Boost Software License 1.0 (BSL-1.0)" => "BSL-1.0",
        "PostgreSQL License" => "PostgreSQL",
        "CC0 1.0 Universal (CC0 1.0) Public Domain Dedication" => "CC0-1.0",
        "Public Domain" => "LicenseRef-Public-Domain",
        "Other/Proprietary License" => "LicenseRef-Proprietary",
        // Carry no license: "OSI Approved", "Freely Distributable", "Freeware", …
        _ => {
            // Many newer classifiers end in the SPDX id: "… (MIT-0)", "… (BlueOak-1.0.0)".
            let inner = leaf
                .rsplit_once('(')
                .and_then(|(_, r)| r.strip_suffix(')'))?;
            return lookup_id(inner.trim()).map(str::to_string);
        }
    };
    Some(mapped.to_string())
}

/// Resolve the license of one release: PEP 639 expression, then the legacy
/// field (identifier, common name or recognised text), then every
/// `License ::` classifier (several → joined with OR).
pub fn resolve(meta: &LicenseMetadata) -> ResolvedLicense {
    let found = |expression: String, source| ResolvedLicense {
        expression: Some(expression),
        source,
    };
    if let Some(e) = meta
        .license_expression
        .as_deref()
        .and_then(normalize_expression)
    {
        return found(e, LicenseSource::Expression);
    }
    if let Some(raw) = meta
        .license
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        let placeholder = matches!(
            raw.to_ascii_lowercase().as_str(),
            "unknown" | "none" | "n/a" | "na" | "-" | "other"
        );
        if !placeholder {
            let short = raw.lines().count() <= 1 && raw.len() <= 120;
            if short {
                if let Some(e) = from_license_field(raw) {
                    return found(e, LicenseSource::LicenseField);
                }
            }
            if let Some(e) = from_license_text(raw) {
                return found(e, LicenseSource::LicenseText);
            }
        }
    }
    let mut ids: Vec<String> = Vec::new();
    for c in &meta.classifiers {
        if let Some(id) = classifier_to_spdx(c) {
            if !ids.contains(&id) {
                ids.push(id);
            }
        }
    }
    if !ids.is_empty() {
        let joined = ids.join(" OR ");
        return found(
            normalize_expression(&joined).unwrap_or(joined),
            LicenseSource::Classifier,
        );
    }
    ResolvedLicense {
        expression: None,
        source: LicenseSource::None,
    }
}

// ---------------------------------------------------------------- judgement

/// Outcome of one leaf or subexpression, ordered worst → best.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Rank {
    Banned,
    NotListed,
    Review,
    Approved,
}

fn family_of(id: &str) -> Option<&'static str> {
    let up = id.to_ascii_uppercase();
    let up = up.strip_prefix("LICENSEREF-").unwrap_or(&up);
    if up == "BSD" || up.starts_with("BSD-") || up == "0BSD" {
        return Some("BSD");
    }
    for fam in ["LGPL", "AGPL", "GPL", "MPL"] {
        if up == fam || up.starts_with(&format!("{fam}-")) {
            return Some(fam);
        }
    }
    None
}

fn is_generic_family(leaf: &str) -> bool {
    leaf.strip_prefix("LicenseRef-")
        .is_some_and(|f| FAMILIES.iter().any(|x| x.eq_ignore_ascii_case(f)))
}

fn strip_gnu_suffix(id: &str) -> &str {
    let id = id.trim_end_matches('+');
    id.strip_suffix("-only")
        .or_else(|| id.strip_suffix("-or-later"))
        .unwrap_or(id)
}

fn is_gnu_token(t: &str) -> bool {
    lookup_id(t)
        .and_then(spdx::license_id)
        .is_some_and(|id| id.is_gnu())
}

/// Does the registry-list entry `token` cover the license `leaf` (`full` is
/// the leaf with its `WITH` exception, which an entry may also name)?
fn covers(token: &str, leaf: &str, full: &str) -> bool {
    let t = token.trim();
    if t.eq_ignore_ascii_case(leaf) || t.eq_ignore_ascii_case(full) {
        return true;
    }
    // `Proprietary` ↔ `LicenseRef-Proprietary`.
    if leaf
        .strip_prefix("LicenseRef-")
        .is_some_and(|r| r.eq_ignore_ascii_case(t.strip_prefix("LicenseRef-").unwrap_or(t)))
    {
        return true;
    }
    // `BSD` covers the BSD family; a versionless family name in package
    // metadata (`BSD License`) is covered by any entry of its family.
    if t.eq_ignore_ascii_case("BSD") && family_of(leaf) == Some("BSD") {
        return true;
    }
    if is_generic_family(leaf) && family_of(leaf).is_some() && family_of(leaf) == family_of(t) {
        return true;
    }
    // GNU: a bare entry (`GPL-3.0`) covers -only and -or-later; an `-only`
    // entry also covers the deprecated bare id (same meaning).
    let bare = strip_gnu_suffix(t);
    if is_gnu_token(bare) {
        let lower = t.to_ascii_lowercase();
        if lower.ends_with("-only") {
            return leaf.eq_ignore_ascii_case(bare);
        }
        if bare.len() == t.len() {
            return strip_gnu_suffix(leaf).eq_ignore_ascii_case(bare);
        }
    }
    false
}

fn listed(list: &[String], leaf: &str, full: &str) -> bool {
    list.iter().any(|t| covers(t, leaf, full))
}

fn rank_leaf(leaf: &str, full: &str, p: &GlobalPolicies) -> Rank {
    if listed(&p.hard_ban_licenses, leaf, full) {
        Rank::Banned
    } else if listed(&p.require_human_review_licenses, leaf, full) {
        Rank::Review
    } else if listed(&p.auto_approve_licenses, leaf, full) {
        Rank::Approved
    } else {
        Rank::NotListed
    }
}

/// Rank of a subexpression and the text that decided it (for the reason).
fn rank_tree(t: &Tree, p: &GlobalPolicies) -> (Rank, String) {
    match t {
        Tree::Leaf(req) => {
            let leaf = render_license(&req.license);
            (rank_leaf(&leaf, &render_req(req), p), render_req(req))
        }
        Tree::Op(Operator::And, a, b) => {
            let (ra, ta) = rank_tree(a, p);
            let (rb, tb) = rank_tree(b, p);
            if rb < ra {
                (rb, tb)
            } else {
                (ra, ta)
            }
        }
        Tree::Op(Operator::Or, a, b) => {
            let (ra, ta) = rank_tree(a, p);
            let (rb, tb) = rank_tree(b, p);
            let best = ra.max(rb);
            if best == Rank::Approved || ra != rb {
                if ra >= rb {
                    (ra, ta)
                } else {
                    (rb, tb)
                }
            } else {
                // Every alternative failed the same way: name them all.
                (best, render_tree(t))
            }
        }
    }
}

const PROVISIONAL_PREFIX: &str = "Not yet in your approved registry.";

fn approved_reason(l: &str) -> String {
    format!(
        "{PROVISIONAL_PREFIX} License {l} is on the auto-approve list and no critical CVEs are reported. \
         Run `lex-align-client request-approval` to formalize."
    )
}

fn banned_reason(t: &str) -> String {
    format!("License {t} is hard-banned by the enterprise policy.")
}

fn review_reason(l: &str) -> String {
    format!(
        "{PROVISIONAL_PREFIX} License {l} requires human review (require_human_review_licenses); \
         provisionally allowed pending human review. An approval request will be automatically submitted."
    )
}

/// Judge a resolved expression (`None` = UNKNOWN) against the policy:
/// hard_ban, then require_human_review, then auto_approve, then the unknown
/// policy. `OR` passes if any branch passes, `AND` needs all.
pub fn judge(expression: Option<&str>, policies: &GlobalPolicies) -> LicenseJudgement {
    let judgement = |action, reason| LicenseJudgement { action, reason };
    let Some(text) = expression
        .map(str::trim)
        .filter(|s| !s.is_empty() && *s != "UNKNOWN")
    else {
        return judge_unknown(policies);
    };
    let (rank, culprit) = match parse(text).as_ref().and_then(to_tree) {
        Some(tree) => rank_tree(&tree, policies),
        // Not SPDX (cannot come from `resolve`): judge the text as one token.
        None => (rank_leaf(text, text, policies), text.to_string()),
    };
    match rank {
        Rank::Banned => judgement(LicenseAction::Block, banned_reason(&culprit)),
        Rank::Review => judgement(LicenseAction::Review, review_reason(text)),
        Rank::Approved => judgement(LicenseAction::Allow, approved_reason(text)),
        Rank::NotListed => judgement(
            LicenseAction::Block,
            format!(
                "License {culprit} is not on the auto-approve list; add it to \
                 global_policies.auto_approve_licenses if it should be permitted."
            ),
        ),
    }
}

fn judge_unknown(p: &GlobalPolicies) -> LicenseJudgement {
    let has = |list: &[String]| {
        list.iter()
            .any(|t| t.trim().eq_ignore_ascii_case("UNKNOWN"))
    };
    let (action, reason) = if has(&p.hard_ban_licenses) {
        (LicenseAction::Block, banned_reason("UNKNOWN"))
    } else if has(&p.require_human_review_licenses) {
        (LicenseAction::Review, review_reason("UNKNOWN"))
    } else if has(&p.auto_approve_licenses) {
        (LicenseAction::Allow, approved_reason("UNKNOWN"))
    } else {
        match p.unknown_license_policy {
            UnknownLicensePolicy::Allow => (
                LicenseAction::Allow,
                format!(
                    "{PROVISIONAL_PREFIX} License could not be determined; unknown_license_policy=allow permits it \
                     and no critical CVEs are reported. Run `lex-align-client request-approval` to formalize."
                ),
            ),
            UnknownLicensePolicy::Warn => (
                LicenseAction::Allow,
                format!(
                    "{PROVISIONAL_PREFIX} Warning: license could not be determined (unknown_license_policy=warn); \
                     provisionally allowed, check the license before relying on it. \
                     Run `lex-align-client request-approval` to formalize."
                ),
            ),
            UnknownLicensePolicy::PendingApproval => (
                LicenseAction::Review,
                format!(
                    "{PROVISIONAL_PREFIX} License could not be determined; provisionally allowed pending human \
                     review. An approval request will be automatically submitted."
                ),
            ),
            UnknownLicensePolicy::Block => (
                LicenseAction::Block,
                "License could not be determined from PyPI; unknown_license_policy=block.".to_string(),
            ),
        }
    };
    LicenseJudgement { action, reason }
}

#[cfg(test)]
mod tests;
