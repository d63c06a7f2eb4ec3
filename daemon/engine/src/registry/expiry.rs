//! Rule exceptions with an expiry: parsing `expires`, and the one lookup that
//! tells a rule in force from a lapsed one.
//!
//! `expires: 2027-01-31` means the rule applies through that whole day (UTC)
//! and lapses at 00:00 UTC the next day; an RFC 3339 time is the lapse
//! instant itself. `Rule::expires` always holds the lapse instant.

use time::format_description::well_known::Rfc3339;
use time::macros::format_description;
use time::{Date, Duration, OffsetDateTime, Time, UtcOffset};

use super::{Registry, Rule};

/// The rule for a package at an instant.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum RuleLookup<'a> {
    /// In force: judge by it.
    Active(&'a Rule),
    /// Past its `expires`: judge the package as unlisted, and say why.
    Lapsed(&'a Rule),
    Unlisted,
}

impl<'a> RuleLookup<'a> {
    /// The rule in force, if any (a lapsed rule is not).
    pub fn active(self) -> Option<&'a Rule> {
        match self {
            RuleLookup::Active(r) => Some(r),
            RuleLookup::Lapsed(_) | RuleLookup::Unlisted => None,
        }
    }
}

/// The lapse instant of an `expires` value, or why it is not one.
pub(super) fn parse_expires(text: &str) -> Result<OffsetDateTime, &'static str> {
    let text = text.trim();
    if let Ok(day) = Date::parse(text, format_description!("[year]-[month]-[day]")) {
        // Through the whole day: lapses when the next one starts.
        return day
            .next_day()
            .map(|d| d.midnight().assume_utc())
            .ok_or("is past the last supported date");
    }
    OffsetDateTime::parse(text, &Rfc3339)
        .map_err(|_| "is not a date (YYYY-MM-DD) or an RFC 3339 time")
}

/// `expires` as written back: a lapse at 00:00 UTC is the previous day's
/// date (the same meaning, and how people write it), else RFC 3339.
pub(crate) fn expires_text(lapse: OffsetDateTime) -> String {
    let utc = lapse.to_offset(UtcOffset::UTC);
    if utc.time() == Time::MIDNIGHT {
        if let Some(day) = utc.date().previous_day() {
            if let Ok(s) = day.format(format_description!("[year]-[month]-[day]")) {
                return s;
            }
        }
    }
    lapse.format(&Rfc3339).unwrap_or_else(|_| lapse.to_string())
}

impl Rule {
    /// Past its expiry at `at` (the lapse instant itself counts as past).
    pub fn is_lapsed_at(&self, at: OffsetDateTime) -> bool {
        self.expires.is_some_and(|lapse| at >= lapse)
    }

    /// `expires` as the registry writes it: `2027-01-31` or an RFC 3339 time.
    pub fn expires_text(&self) -> Option<String> {
        self.expires.map(expires_text)
    }
}

impl Registry {
    /// The rule for a package name in any spelling, as it stands at `at`.
    pub fn rule_at(&self, name: &str, at: OffsetDateTime) -> RuleLookup<'_> {
        match self.rule(name) {
            None => RuleLookup::Unlisted,
            Some(r) if r.is_lapsed_at(at) => RuleLookup::Lapsed(r),
            Some(r) => RuleLookup::Active(r),
        }
    }

    /// Rules still in force at `at` that lapse within `within`: expiry in
    /// `(at, at + within]`, soonest first (ties by canonical name).
    pub fn rules_lapsing_within(&self, at: OffsetDateTime, within: Duration) -> Vec<&Rule> {
        // An end past the representable range bounds nothing.
        let end = at.checked_add(within);
        let mut out: Vec<(OffsetDateTime, &Rule)> = self
            .packages
            .values()
            .filter_map(|r| r.expires.map(|lapse| (lapse, r)))
            .filter(|(lapse, _)| {
                *lapse > at
                    && match end {
                        Some(end) => *lapse <= end,
                        None => within.is_positive(),
                    }
            })
            .collect();
        // `packages` iterates by canonical name, so a stable sort keeps ties in that order.
        out.sort_by_key(|(lapse, _)| *lapse);
        out.into_iter().map(|(_, r)| r).collect()
    }
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;
    use crate::registry::{upsert_rule_in_yaml, RegistryError, Status};

    fn reg(fields: &str) -> Result<Registry, RegistryError> {
        Registry::from_yaml(&format!(
            "version: 1\npackages:\n  attrs:\n    status: approved\n{fields}"
        ))
    }

    #[test]
    fn a_date_applies_through_the_whole_day_utc() {
        let r = reg("    expires: 2027-01-31\n    owner: alice\n").unwrap();
        let rule = r.rule("attrs").unwrap();
        assert_eq!(rule.expires, Some(datetime!(2027-02-01 00:00 UTC)));
        assert_eq!(rule.owner.as_deref(), Some("alice"));
        let last = datetime!(2027-01-31 23:59:59.999_999_999 UTC);
        assert!(matches!(r.rule_at("Attrs", last), RuleLookup::Active(_)));
        assert!(matches!(
            r.rule_at("attrs", datetime!(2027-02-01 00:00 UTC)),
            RuleLookup::Lapsed(_)
        ));
        // A time zone east of UTC is already on Feb 1 before the lapse.
        assert!(!rule.is_lapsed_at(datetime!(2027-02-01 00:30 +01:00)));
        assert!(rule.is_lapsed_at(datetime!(2027-02-01 01:00 +01:00)));
        assert_eq!(r.rule_at("cattrs", last), RuleLookup::Unlisted);
    }

    #[test]
    fn an_rfc3339_time_is_the_lapse_instant() {
        let r = reg("    expires: \"2027-01-31T12:00:00+02:00\"\n").unwrap();
        let lapse = datetime!(2027-01-31 10:00 UTC);
        assert_eq!(r.rule("attrs").unwrap().expires, Some(lapse));
        assert!(r
            .rule_at("attrs", lapse - Duration::nanoseconds(1))
            .active()
            .is_some());
        assert!(matches!(r.rule_at("attrs", lapse), RuleLookup::Lapsed(_)));
        // Unquoted in YAML it is still a string.
        let r = reg("    expires: 2027-01-31T10:00:00Z\n").unwrap();
        assert_eq!(r.rule("attrs").unwrap().expires, Some(lapse));
    }

    #[test]
    fn no_expiry_never_lapses() {
        let r = reg("").unwrap();
        assert_eq!(r.rule("attrs").unwrap().expires, None);
        assert!(r
            .rule_at("attrs", datetime!(9999-12-31 23:59 UTC))
            .active()
            .is_some());
    }

    #[test]
    fn bad_expires_is_a_located_field_error() {
        for bad in [
            "2027-02-30",
            "31/01/2027",
            "2027-01-31T25:00:00Z",
            "soon",
            "9999-12-31",
        ] {
            let e = reg(&format!("    expires: \"{bad}\"\n")).unwrap_err();
            assert_eq!(e.field.as_deref(), Some("expires"), "{bad}");
            assert_eq!(e.package.as_deref(), Some("attrs"));
            assert_eq!(e.line, Some(5), "{bad}");
            assert!(
                e.message.starts_with("package `attrs`.expires "),
                "{}",
                e.message
            );
            assert!(e.message.contains(bad), "{}", e.message);
        }
        let e = reg("    expires: 20270131\n").unwrap_err();
        assert_eq!(e.message, "package `attrs`.expires must be a string");
        let e = reg("    owner: [alice]\n").unwrap_err();
        assert_eq!(e.message, "package `attrs`.owner must be a string");
        // The same check for JSON and proposed rules.
        let e = crate::registry::validate_rule(
            "attrs",
            &serde_json::json!({"status": "approved", "expires": "tomorrow"}),
        )
        .unwrap_err();
        assert_eq!(e.field.as_deref(), Some("expires"));
    }

    #[test]
    fn written_back_in_the_form_people_write() {
        let r = reg("    expires: 2027-01-31\n    owner: alice\n").unwrap();
        let json = r.to_api_json();
        assert_eq!(json["packages"]["attrs"]["expires"], "2027-01-31");
        assert_eq!(json["packages"]["attrs"]["owner"], "alice");
        let back = Registry::from_json(&json.to_string()).unwrap();
        let rule = r.rule("attrs").unwrap();
        assert_eq!(back.rule("attrs").unwrap().expires, rule.expires);
        assert_eq!(back.rule("attrs").unwrap().owner, rule.owner);
        let r = reg("    expires: 2027-01-31T12:30:00+02:00\n").unwrap();
        let json = r.to_compiled_json();
        assert_eq!(
            json["packages"]["attrs"]["expires"],
            "2027-01-31T12:30:00+02:00"
        );
        assert!(json["packages"]["attrs"].get("owner").is_none());
        let r = reg("").unwrap();
        assert!(r.to_api_json()["packages"]["attrs"]
            .get("expires")
            .is_none());
    }

    #[test]
    fn yaml_edits_keep_expiry_and_owner() {
        let mut rule = reg("").unwrap().rule("attrs").unwrap().clone();
        rule.status = Status::Banned;
        rule.owner = Some("Alice Example <alice@example.com>".into());
        rule.expires = Some(datetime!(2027-02-01 00:00 UTC));
        let out = upsert_rule_in_yaml(
            "version: 1\npackages:\n  attrs:\n    status: approved\n",
            &rule,
        )
        .unwrap();
        assert_eq!(
            out,
            "version: 1\npackages:\n  attrs:\n    status: banned\n    owner: Alice Example <alice@example.com>\n    expires: 2027-01-31\n"
        );
        rule.expires = Some(datetime!(2027-01-31 08:00 -05:00));
        let out = upsert_rule_in_yaml(&out, &rule).unwrap();
        assert!(
            out.contains("    expires: 2027-01-31T08:00:00-05:00\n"),
            "{out}"
        );
        assert_eq!(
            Registry::from_yaml(&out)
                .unwrap()
                .rule("attrs")
                .unwrap()
                .expires,
            rule.expires
        );
    }

    #[test]
    fn rules_lapsing_within_a_window() {
        let r = Registry::from_yaml(
            "version: 1\npackages:\n  a:\n    status: approved\n    expires: 2027-01-10\n  b:\n    status: banned\n    expires: 2027-01-03T00:00:00Z\n  c:\n    status: approved\n    expires: 2027-01-01\n  d:\n    status: approved\n  e:\n    status: approved\n    expires: 2027-01-02\n",
        )
        .unwrap();
        let at = datetime!(2027-01-02 00:00 UTC);
        let names = |rules: Vec<&Rule>| rules.iter().map(|r| r.name.clone()).collect::<Vec<_>>();
        // c lapsed exactly at `at` (excluded); b and e lapse at the same instant, at + 1 day (included).
        assert_eq!(
            names(r.rules_lapsing_within(at, Duration::days(1))),
            ["b", "e"]
        );
        assert_eq!(
            names(r.rules_lapsing_within(at, Duration::days(7))),
            ["b", "e"]
        );
        assert_eq!(
            names(r.rules_lapsing_within(at, Duration::days(9))),
            ["b", "e", "a"]
        );
        assert!(r.rules_lapsing_within(at, Duration::ZERO).is_empty());
        assert!(r.rules_lapsing_within(at, Duration::days(-3)).is_empty());
        assert_eq!(
            names(r.rules_lapsing_within(at, Duration::MAX)),
            ["b", "e", "a"]
        );
    }
}
