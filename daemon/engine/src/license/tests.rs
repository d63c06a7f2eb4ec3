use super::*;

fn meta(expr: Option<&str>, license: Option<&str>, classifiers: &[&str]) -> LicenseMetadata {
    LicenseMetadata {
        license_expression: expr.map(str::to_string),
        license: license.map(str::to_string),
        classifiers: classifiers.iter().map(|s| s.to_string()).collect(),
    }
}

fn resolved(m: &LicenseMetadata) -> (Option<String>, LicenseSource) {
    let r = resolve(m);
    (r.expression, r.source)
}

fn starter() -> GlobalPolicies {
    crate::registry::Registry::builtin_default().policies
}

#[test]
fn expressions_are_normalised() {
    assert_eq!(
        normalize_expression("mit or apache-2.0").as_deref(),
        Some("MIT OR Apache-2.0")
    );
    assert_eq!(
        normalize_expression("GPL-3.0+").as_deref(),
        Some("GPL-3.0-or-later")
    );
    assert_eq!(
        normalize_expression("GPL-2.0").as_deref(),
        Some("GPL-2.0-only")
    );
    assert_eq!(
        normalize_expression("MIT/Apache-2.0").as_deref(),
        Some("MIT OR Apache-2.0")
    );
    assert_eq!(
        normalize_expression("(MIT OR Apache-2.0) AND BSD-3-Clause").as_deref(),
        Some("(MIT OR Apache-2.0) AND BSD-3-Clause")
    );
    assert_eq!(
        normalize_expression("gpl-2.0-only with classpath-exception-2.0").as_deref(),
        Some("GPL-2.0-only WITH Classpath-exception-2.0")
    );
    assert_eq!(
        normalize_expression("LicenseRef-Acme").as_deref(),
        Some("LicenseRef-Acme")
    );
    assert_eq!(normalize_expression("Apache 2.0"), None);
    assert_eq!(normalize_expression("MIT License"), None);
}

#[test]
fn pep639_expression_comes_first() {
    let m = meta(
        Some("Apache-2.0 OR MIT"),
        Some("BSD"),
        &["License :: OSI Approved :: BSD License"],
    );
    assert_eq!(
        resolved(&m),
        (Some("Apache-2.0 OR MIT".into()), LicenseSource::Expression)
    );
}

#[test]
fn legacy_field_identifiers_and_common_names() {
    let cases = [
        ("MIT License", "MIT"),
        ("MIT", "MIT"),
        ("Apache 2.0", "Apache-2.0"),
        ("Apache License, Version 2.0", "Apache-2.0"),
        ("Apache Software License", "Apache-2.0"),
        ("Apache 1.1", "Apache-1.1"),
        ("BSD-3-Clause OR GPL-2.0", "BSD-3-Clause OR GPL-2.0-only"),
        ("GPL-3.0-or-later", "GPL-3.0-or-later"),
        ("LGPL-2.0-or-later", "LGPL-2.0-or-later"),
        ("Expat", "MIT"),
        ("PSF-2.0", "PSF-2.0"),
        ("HPND", "HPND"),
        ("0BSD", "0BSD"),
        ("Zlib", "Zlib"),
        ("EPL-2.0", "EPL-2.0"),
        ("SSPL-1.0", "SSPL-1.0"),
        ("BUSL-1.1", "BUSL-1.1"),
        ("Public Domain", "LicenseRef-Public-Domain"),
        ("LicenseRef-Proprietary", "LicenseRef-Proprietary"),
        ("BSD License", "LicenseRef-BSD"),
        ("new BSD license", "BSD-3-Clause"),
        (
            "GNU Library or Lesser General Public License (LGPL)",
            "LicenseRef-LGPL",
        ),
        ("GNU General Public License (GPL)", "LicenseRef-GPL"),
        ("Apache 2.0 or MIT", "Apache-2.0 OR MIT"),
        ("Dual License", ""),
    ];
    for (raw, want) in cases {
        let got = resolve(&meta(None, Some(raw), &[]));
        if want.is_empty() {
            assert_eq!(got.expression, None, "{raw}");
            assert_eq!(got.source, LicenseSource::None, "{raw}");
        } else {
            assert_eq!(got.expression.as_deref(), Some(want), "{raw}");
            assert_eq!(got.source, LicenseSource::LicenseField, "{raw}");
        }
    }
    // setuptools' placeholder is not a license.
    assert_eq!(
        resolved(&meta(None, Some("UNKNOWN"), &[])),
        (None, LicenseSource::None)
    );
}

const MIT_TEXT: &str = "Copyright (c) 2014 Example Authors\n\nPermission is hereby granted, free of charge, to any person obtaining a copy\nof this software and associated documentation files (the \"Software\"), to deal\nin the Software without restriction...\n";
const BSD3_TEXT: &str = "Copyright (c) 2010, Example\nAll rights reserved.\n\nRedistribution and use in source and binary forms, with or without\nmodification, are permitted provided that the following conditions are met:\n\n* Redistributions of source code must retain the above copyright notice.\n* Neither the name of the copyright holder nor the names of its\n  contributors may be used to endorse or promote products derived from\n  this software without specific prior written permission.\n";
const BSD2_TEXT: &str = "Copyright (c) 2010, Example\n\nRedistribution and use in source and binary forms, with or without\nmodification, are permitted provided that the following conditions are met:\n\n1. Redistributions of source code must retain the above copyright notice.\n2. Redistributions in binary form must reproduce the above copyright notice.\n";
const GPL3_NOTICE: &str = "This program is free software: you can redistribute it and/or modify\nit under the terms of the GNU General Public License as published by\nthe Free Software Foundation, either version 3 of the License, or\n(at your option) any later version.\n";
const APACHE_TEXT: &str = "\n                                 Apache License\n                           Version 2.0, January 2004\n                        http://www.apache.org/licenses/\n\n   TERMS AND CONDITIONS FOR USE, REPRODUCTION, AND DISTRIBUTION\n";
const ISC_TEXT: &str = "ISC License\n\nCopyright (c) 2004-2010 by Internet Systems Consortium\n\nPermission to use, copy, modify, and/or distribute this software for any\npurpose with or without fee is hereby granted, provided that the above\ncopyright notice and this permission notice appear in all copies.\n";
const LGPL21_TEXT: &str = "GNU LESSER GENERAL PUBLIC LICENSE\n                       Version 2.1, February 1999\n\n Copyright (C) 1991, 1999 Free Software Foundation, Inc.\n";

#[test]
fn license_text_is_recognised_by_its_wording() {
    let cases = [
        (MIT_TEXT, "MIT"),
        (BSD3_TEXT, "BSD-3-Clause"),
        (BSD2_TEXT, "BSD-2-Clause"),
        (GPL3_NOTICE, "GPL-3.0-or-later"),
        (APACHE_TEXT, "Apache-2.0"),
        (ISC_TEXT, "ISC"),
        (LGPL21_TEXT, "LGPL-2.1-only"),
        (
            "MIT License\n\nCopyright (c) 2020 Someone\n\nPermission is hereby granted",
            "MIT",
        ),
    ];
    for (text, want) in cases {
        let got = resolve(&meta(None, Some(text), &[]));
        assert_eq!(got.expression.as_deref(), Some(want), "{text}");
        assert_eq!(got.source, LicenseSource::LicenseText);
    }
    let got = resolve(&meta(
        None,
        Some("Some bespoke terms.\nSee the website for details.\n"),
        &[],
    ));
    assert_eq!(got.expression, None);
}

#[test]
fn classifiers_all_count_and_join_with_or() {
    let m = meta(
        None,
        None,
        &[
            "Programming Language :: Python",
            "License :: OSI Approved :: MIT License",
            "License :: OSI Approved :: Apache Software License",
            "License :: OSI Approved :: MIT License",
        ],
    );
    assert_eq!(
        resolved(&m),
        (Some("MIT OR Apache-2.0".into()), LicenseSource::Classifier)
    );
    let m = meta(None, Some(""), &["License :: OSI Approved :: BSD License"]);
    assert_eq!(resolved(&m).0.as_deref(), Some("LicenseRef-BSD"));
    let m = meta(
        None,
        None,
        &["License :: OSI Approved :: MIT No Attribution License (MIT-0)"],
    );
    assert_eq!(resolved(&m).0.as_deref(), Some("MIT-0"));
    let m = meta(
        None,
        None,
        &["License :: OSI Approved :: GNU General Public License v3 or later (GPLv3+)"],
    );
    assert_eq!(resolved(&m).0.as_deref(), Some("GPL-3.0-or-later"));
    let m = meta(
        None,
        None,
        &["License :: OSI Approved", "License :: Freely Distributable"],
    );
    assert_eq!(resolved(&m), (None, LicenseSource::None));
}

fn action(expr: Option<&str>, p: &GlobalPolicies) -> LicenseAction {
    judge(expr, p).action
}

#[test]
fn or_passes_if_any_branch_passes_and_needs_all() {
    let p = starter();
    assert_eq!(
        action(Some("MIT OR GPL-3.0-only"), &p),
        LicenseAction::Allow
    );
    assert_eq!(
        action(Some("BSD-3-Clause OR GPL-2.0-only"), &p),
        LicenseAction::Allow
    );
    assert_eq!(
        action(Some("MIT AND GPL-3.0-only"), &p),
        LicenseAction::Block
    );
    assert_eq!(action(Some("MIT AND Apache-2.0"), &p), LicenseAction::Allow);
    assert_eq!(
        action(Some("(MIT OR GPL-3.0-only) AND ISC"), &p),
        LicenseAction::Allow
    );
    assert_eq!(action(Some("MIT AND MPL-2.0"), &p), LicenseAction::Review);
    assert_eq!(
        action(Some("MPL-2.0 OR EPL-2.0"), &p),
        LicenseAction::Review
    );
    let j = judge(Some("MIT AND EPL-2.0"), &p);
    assert_eq!(j.action, LicenseAction::Block);
    assert_eq!(
        j.reason,
        "License EPL-2.0 is not on the auto-approve list; add it to global_policies.auto_approve_licenses if it should be permitted."
    );
    let j = judge(Some("EPL-2.0 OR SSPL-1.0"), &p);
    assert!(
        j.reason
            .starts_with("License EPL-2.0 OR SSPL-1.0 is not on"),
        "{}",
        j.reason
    );
}

#[test]
fn original_tokens_cover_modern_ids() {
    let p = starter();
    for banned in [
        "GPL-3.0-only",
        "GPL-3.0-or-later",
        "AGPL-3.0-or-later",
        "LGPL-2.1-only",
        "LGPL-2.1-or-later",
        "GPL-2.0-or-later",
    ] {
        let j = judge(Some(banned), &p);
        assert_eq!(j.action, LicenseAction::Block, "{banned}");
        assert_eq!(
            j.reason,
            format!("License {banned} is hard-banned by the enterprise policy.")
        );
    }
    // LGPL-2.0 is not in the starter lists: not listed rather than banned.
    assert!(judge(Some("LGPL-2.0-only"), &p)
        .reason
        .contains("not on the auto-approve list"));
    // `Apache-2.0` only Apache-2.0.
    assert_eq!(action(Some("Apache-1.1"), &p), LicenseAction::Block);
    // WITH keeps the exception but judges the license.
    assert_eq!(
        action(Some("GPL-2.0-only WITH Classpath-exception-2.0"), &p),
        LicenseAction::Block
    );
    assert_eq!(
        action(Some("Apache-2.0 WITH LLVM-exception"), &p),
        LicenseAction::Allow
    );
    // Case-insensitive.
    let mut q = p.clone();
    q.auto_approve_licenses = vec!["mit".into(), "bsd".into(), "Proprietary".into()];
    assert_eq!(action(Some("MIT"), &q), LicenseAction::Allow);
    for bsd in [
        "0BSD",
        "BSD-3-Clause",
        "BSD-2-Clause",
        "BSD-4-Clause",
        "LicenseRef-BSD",
    ] {
        assert_eq!(action(Some(bsd), &q), LicenseAction::Allow, "{bsd}");
    }
    assert_eq!(
        action(Some("LicenseRef-Proprietary"), &q),
        LicenseAction::Allow
    );
    // `GPL-3.0-only` in a list does not cover -or-later, but covers the bare id.
    q.hard_ban_licenses = vec!["GPL-3.0-only".into()];
    assert_eq!(action(Some("GPL-3.0-or-later"), &q), LicenseAction::Block);
    assert!(judge(Some("GPL-3.0-or-later"), &q)
        .reason
        .contains("not on the auto-approve list"));
    assert!(judge(Some("GPL-3.0"), &q).reason.contains("hard-banned"));
}

#[test]
fn versionless_family_names_meet_their_family() {
    let p = starter();
    // "BSD License" classifier: the starter approves BSD-3/BSD-2, so it passes (the original denied it).
    assert_eq!(action(Some("LicenseRef-BSD"), &p), LicenseAction::Allow);
    // A bare "GPL" classifier is banned by the GPL entries.
    assert_eq!(action(Some("LicenseRef-GPL"), &p), LicenseAction::Block);
    assert_eq!(action(Some("LicenseRef-LGPL"), &p), LicenseAction::Block);
}

#[test]
fn precedence_ban_then_review_then_approve() {
    let mut p = starter();
    p.auto_approve_licenses.push("GPL-3.0".into());
    assert_eq!(action(Some("GPL-3.0-only"), &p), LicenseAction::Block);
    p.auto_approve_licenses.push("MPL-2.0".into());
    assert_eq!(action(Some("MPL-2.0"), &p), LicenseAction::Review);
    let j = judge(Some("MPL-2.0"), &p);
    assert!(j.reason.contains("requires human review"), "{}", j.reason);
    assert!(j
        .reason
        .contains("An approval request will be automatically submitted."));
}

#[test]
fn unknown_license_follows_the_policy() {
    let mut p = starter();
    let j = judge(None, &p);
    assert_eq!(j.action, LicenseAction::Block);
    assert_eq!(
        j.reason,
        "License could not be determined from PyPI; unknown_license_policy=block."
    );
    p.unknown_license_policy = UnknownLicensePolicy::PendingApproval;
    let j = judge(None, &p);
    assert_eq!(j.action, LicenseAction::Review);
    assert_eq!(
        j.reason,
        "Not yet in your approved registry. License could not be determined; provisionally allowed pending human review. An approval request will be automatically submitted."
    );
    p.unknown_license_policy = UnknownLicensePolicy::Warn;
    let j = judge(None, &p);
    assert_eq!(j.action, LicenseAction::Allow);
    assert!(
        j.reason
            .contains("Warning: license could not be determined"),
        "{}",
        j.reason
    );
    p.unknown_license_policy = UnknownLicensePolicy::Allow;
    let j = judge(Some("UNKNOWN"), &p);
    assert_eq!(j.action, LicenseAction::Allow);
    assert!(!j.reason.contains("auto-approve list"), "{}", j.reason);
    // UNKNOWN named in a list wins over the policy.
    p.hard_ban_licenses.push("UNKNOWN".into());
    assert_eq!(
        judge(None, &p).reason,
        "License UNKNOWN is hard-banned by the enterprise policy."
    );
}

#[test]
fn approved_reason_is_the_originals() {
    let j = judge(Some("MIT"), &starter());
    assert_eq!(
        j.reason,
        "Not yet in your approved registry. License MIT is on the auto-approve list and no critical CVEs are reported. Run `lex-align-client request-approval` to formalize."
    );
}

#[test]
fn policy_tokens() {
    for ok in [
        "GPL-3.0",
        "BSD",
        "Proprietary",
        "proprietary",
        "UNKNOWN",
        "LicenseRef-X",
        "MIT OR Apache-2.0",
        "EPL-2.0",
        "gpl-3.0-only",
    ] {
        assert_eq!(check_policy_token(ok), Ok(()), "{ok}");
    }
    for bad in ["GLP-3.0", "Apache 2.0", "", "MIT License", "MIT OR"] {
        assert!(check_policy_token(bad).is_err(), "{bad}");
    }
}
