use super::*;

fn err_of(yaml: &str) -> RegistryError {
    Registry::from_yaml(yaml).expect_err("expected a validation error")
}

#[test]
fn starter_registry_loads() {
    let r = Registry::builtin_default();
    assert_eq!(r.version, "1.2");
    assert_eq!(r.packages.len(), 4);
    let c = r.rule("Cryptography").unwrap();
    assert_eq!(c.status, Status::VersionConstrained);
    assert_eq!(c.min_version.as_deref(), Some("42.0.0"));
    assert_eq!(c.line, Some(22));
    assert_eq!(version_constraint(c).as_deref(), Some(">=42.0.0"));
    assert_eq!(version_constraint(r.rule("httpx").unwrap()), None);
    assert_eq!(
        r.policies.require_human_review_licenses,
        vec!["MPL-2.0".to_string()]
    );
    assert_eq!(
        r.policies.unknown_license_policy,
        UnknownLicensePolicy::Block
    );
}

#[test]
fn lookup_is_pep503() {
    let r = Registry::from_yaml("version: 1\npackages:\n  Zope.Interface:\n    status: approved\n")
        .unwrap();
    assert!(r.rule("zope-interface").is_some());
    assert!(r.rule("ZOPE__interface").is_some());
    assert_eq!(r.rule("zope_interface").unwrap().name, "Zope.Interface");
    assert!(r.rule("zopeinterface").is_none());
}

#[test]
fn original_messages_in_order() {
    assert_eq!(
        err_of("- a\n- b\n").message,
        "top-level YAML must be a mapping"
    );
    assert_eq!(err_of("").message, "missing required field: version");
    assert_eq!(
        err_of("# only a comment\n").message,
        "missing required field: version"
    );
    assert_eq!(
        err_of("version: ~\n").message,
        "missing required field: version"
    );
    let e = err_of("version: [1]\n");
    assert_eq!(e.message, "version must be a string or number");
    assert_eq!(e.line, Some(1));
    assert_eq!(
        err_of("version: 1\nglobal_policies: [a]\n").message,
        "global_policies must be a mapping"
    );
    let e = err_of("version: 1\nglobal_policies:\n  zeta: 1\n  alpha: 2\n");
    assert_eq!(
        e.message,
        "global_policies has unknown fields: ['alpha', 'zeta']"
    );
    assert_eq!(e.line, Some(3));
    assert_eq!(
        err_of("version: 1\nglobal_policies:\n  hard_ban_licenses: MIT\n").message,
        "hard_ban_licenses must be a list of strings"
    );
    assert_eq!(
        err_of("version: 1\nglobal_policies:\n  auto_approve_licenses: [1]\n").message,
        "auto_approve_licenses must be a list of strings"
    );
    let e = err_of("version: 1\nglobal_policies:\n  unknown_license_policy: deny\n");
    assert_eq!(
        e.message,
        "unknown_license_policy must be one of ['allow', 'block', 'pending_approval', 'warn']; got 'deny'"
    );
    assert_eq!(
        e.field.as_deref(),
        Some("global_policies.unknown_license_policy")
    );
    assert_eq!(e.line, Some(3));
    assert_eq!(
        err_of("version: 1\nglobal_policies:\n  cve_threshold: true\n").message,
        "cve_threshold must be a number between 0 and 1"
    );
    assert_eq!(
        err_of("version: 1\nglobal_policies:\n  cve_threshold: '0.5'\n").message,
        "cve_threshold must be a number between 0 and 1"
    );
    assert_eq!(
        err_of("version: 1\nglobal_policies:\n  cve_threshold: 9\n").message,
        "cve_threshold must be between 0 and 1"
    );
    assert_eq!(
        err_of("version: 1\npackages: [a]\n").message,
        "packages must be a mapping keyed by package name"
    );
}

#[test]
fn falsy_sections_are_empty() {
    let r = Registry::from_yaml("version: 2\nglobal_policies:\npackages:\n").unwrap();
    assert!(r.packages.is_empty());
    assert_eq!(r.policies, GlobalPolicies::default());
}

#[test]
fn package_rule_messages() {
    let cases: &[(&str, &str, Option<usize>)] = &[
        ("  123:\n    status: approved\n", "package key must be a non-empty string; got 123", Some(3)),
        ("  foo: approved\n", "package `foo` must be a mapping", Some(3)),
        ("  foo:\n    status: approved\n    colour: red\n", "package `foo` has unknown fields: ['colour']", Some(5)),
        (
            "  foo:\n    status: fine\n",
            "package `foo` has invalid status 'fine'; must be one of ['approved', 'banned', 'deprecated', 'preferred', 'version-constrained']",
            Some(4),
        ),
        (
            "  foo:\n    reason: x\n",
            "package `foo` has invalid status None; must be one of ['approved', 'banned', 'deprecated', 'preferred', 'version-constrained']",
            Some(3),
        ),
        ("  foo:\n    status: deprecated\n", "package `foo` is deprecated but has no `replacement`", Some(3)),
        (
            "  foo:\n    status: version-constrained\n",
            "package `foo` is version-constrained but has neither min_version nor max_version",
            Some(3),
        ),
        (
            "  foo:\n    status: version-constrained\n    min_version: 2.0\n",
            "package `foo`.min_version must be a string",
            Some(5),
        ),
        ("  foo:\n    status: banned\n    reason: [x]\n", "package `foo`.reason must be a string", Some(5)),
    ];
    for (body, msg, line) in cases {
        let e = err_of(&format!("version: 1\npackages:\n{body}"));
        assert_eq!(&e.message, msg, "{body}");
        assert_eq!(e.line, *line, "{body}");
    }
    let e = err_of("version: 1\npackages:\n  foo:\n    status: deprecated\n");
    assert_eq!(e.package.as_deref(), Some("foo"));
    assert_eq!(e.field.as_deref(), Some("replacement"));
    assert_eq!(
        e.to_string(),
        "package `foo` is deprecated but has no `replacement` (line 3)"
    );
}

#[test]
fn improvements_over_the_original() {
    // `version: 1.10` keeps its text.
    assert_eq!(
        Registry::from_yaml("version: 1.10\n").unwrap().version,
        "1.10"
    );
    assert_eq!(Registry::from_yaml("version: 3\n").unwrap().version, "3");
    // pending_approval is accepted.
    let r = Registry::from_yaml(
        "version: 1\nglobal_policies:\n  unknown_license_policy: pending_approval\n",
    )
    .unwrap();
    assert_eq!(
        r.policies.unknown_license_policy,
        UnknownLicensePolicy::PendingApproval
    );
    // Duplicates after normalisation name both spellings and lines.
    let e = err_of(
        "version: 1\npackages:\n  Foo-Bar:\n    status: approved\n  foo_bar:\n    status: banned\n",
    );
    assert!(
        e.message
            .contains("`Foo-Bar` (line 3) and `foo_bar` (line 5)"),
        "{}",
        e.message
    );
    assert!(e.message.contains("`foo-bar`"), "{}", e.message);
    assert_eq!(e.line, Some(5));
    // Bounds are PEP 440 and ordered.
    let e = err_of(
        "version: 1\npackages:\n  foo:\n    status: version-constrained\n    min_version: 'abc'\n",
    );
    assert!(
        e.message
            .starts_with("package `foo`.min_version is not a valid PEP 440 version: 'abc'"),
        "{}",
        e.message
    );
    assert_eq!(e.line, Some(5));
    let e = err_of(
        "version: 1\npackages:\n  foo:\n    status: version-constrained\n    min_version: '5.0'\n    max_version: '5.0.0'\n",
    );
    assert!(
        e.message
            .contains("min_version 5.0 not below max_version 5.0.0"),
        "{}",
        e.message
    );
    assert_eq!(e.line, Some(6));
    // Invalid package names are refused.
    let e = err_of("version: 1\npackages:\n  'foo bar':\n    status: approved\n");
    assert!(
        e.message
            .starts_with("package `foo bar` is not a valid package name"),
        "{}",
        e.message
    );
    // Duplicate keys inside a rule.
    let e = err_of("version: 1\npackages:\n  foo:\n    status: approved\n    status: banned\n");
    assert!(
        e.message
            .contains("duplicate key `status` (first at line 4)"),
        "{}",
        e.message
    );
    assert_eq!(e.line, Some(5));
}

#[test]
fn license_list_vocabulary() {
    let ok = "version: 1\nglobal_policies:\n  auto_approve_licenses: [MIT, BSD, Proprietary, 'MIT OR Apache-2.0', LicenseRef-Internal, UNKNOWN, gpl-3.0-or-later, Zlib, CC0-1.0]\n";
    Registry::from_yaml(ok).unwrap();
    let e = err_of(
        "version: 1\nglobal_policies:\n  hard_ban_licenses:\n    - GPL-3.0\n    - GLP-3.0\n",
    );
    assert!(
        e.message
            .starts_with("global_policies.hard_ban_licenses: unknown license `GLP-3.0`"),
        "{}",
        e.message
    );
    assert_eq!(
        e.field.as_deref(),
        Some("global_policies.hard_ban_licenses")
    );
    assert_eq!(e.line, Some(5));
    let e = err_of("version: 1\nglobal_policies:\n  auto_approve_licenses: ['Apache 2.0']\n");
    assert!(
        e.message.contains("unknown license `Apache 2.0`"),
        "{}",
        e.message
    );
}

#[test]
fn yaml_syntax_errors_carry_lines() {
    let e = err_of("version: 1\npackages:\n  foo:\n    status: [approved\n");
    assert!(e.message.starts_with("invalid YAML"), "{}", e.message);
    assert!(e.line.is_some());
    let e = err_of("version: 1\nglobal_policies: *anchor\n");
    assert!(
        e.message.contains("aliases") || e.message.starts_with("invalid YAML"),
        "{}",
        e.message
    );
}

#[test]
fn billion_laughs_is_refused_without_expansion() {
    let mut doc =
        String::from("version: 1\nl0: &l0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n");
    for i in 1..10 {
        let prev = format!("*l{}", i - 1);
        doc.push_str(&format!(
            "l{i}: &l{i} [{}]\n",
            [prev.as_str(); 9].join(", ")
        ));
    }
    let e = err_of(&doc);
    assert!(e.message.contains("aliases"), "{}", e.message);
    assert_eq!(e.line, Some(3));
}

#[test]
fn json_form_goes_through_the_same_validator() {
    let compiled = Registry::builtin_default().to_compiled_json();
    let text = serde_json::to_string_pretty(&compiled).unwrap();
    let back = Registry::from_json(&text).unwrap();
    let mut expected = Registry::builtin_default();
    for r in expected.packages.values_mut() {
        r.line = None;
    }
    assert_eq!(back, expected);
    assert_eq!(Registry::from_text(&text).unwrap(), back);

    let e =
        Registry::from_json(r#"{"version": "1", "packages": {"foo": {"status": "deprecated"}}}"#)
            .unwrap_err();
    assert_eq!(
        e.message,
        "package `foo` is deprecated but has no `replacement`"
    );
    assert_eq!(e.line, None);
    let e = Registry::from_json(
        r#"{"version": "1", "packages": {"a": {"status": "approved"}, "A": {"status": "banned"}}}"#,
    )
    .unwrap_err();
    assert!(e.message.contains("`a` and `A`"), "{}", e.message);
    let e = Registry::from_json("{\n\"version\": 1,\n}").unwrap_err();
    assert!(e.message.starts_with("invalid JSON"));
    assert_eq!(e.line, Some(3));
    assert_eq!(
        Registry::from_json(r#"{"version": 1.5}"#).unwrap().version,
        "1.5"
    );
}

#[test]
fn compiled_and_api_shapes() {
    let r = Registry::from_yaml(
        "version: '7'\nglobal_policies:\n  cve_threshold: 1\npackages:\n  Zed_Pkg:\n    status: approved\n    reason: ''\n  alpha:\n    status: deprecated\n    replacement: beta\n",
    )
    .unwrap();
    let compiled = serde_json::to_string(&r.to_compiled_json()).unwrap();
    assert_eq!(
        compiled,
        r#"{"global_policies":{"auto_approve_licenses":[],"cve_threshold":1.0,"hard_ban_licenses":[],"require_human_review_licenses":[],"unknown_license_policy":"block"},"packages":{"Zed_Pkg":{"status":"approved"},"alpha":{"replacement":"beta","status":"deprecated"}},"version":"7"}"#
    );
    let api = r.to_api_json();
    let keys: Vec<&String> = api["packages"].as_object().unwrap().keys().collect();
    assert_eq!(keys, ["alpha", "zed-pkg"]);
    assert_eq!(
        unknown_policy_str(UnknownLicensePolicy::PendingApproval),
        "pending_approval"
    );
}

#[test]
fn operator_rules_are_validated_alike() {
    let rule = validate_rule(
        "Django",
        &serde_json::json!({"status": "version-constrained", "max_version": "5.99.0"}),
    )
    .unwrap();
    assert_eq!(rule.name, "Django");
    assert_eq!(version_constraint(&rule).as_deref(), Some("<5.99.0"));
    let e = validate_rule("x", &serde_json::json!({"status": "deprecated"})).unwrap_err();
    assert_eq!(
        e.message,
        "package `x` is deprecated but has no `replacement`"
    );
    let e = validate_rule(
        "x",
        &serde_json::json!({"status": "approved", "min_version": 4}),
    )
    .unwrap_err();
    assert_eq!(e.message, "package `x`.min_version must be a string");
    let e = validate_rule("", &serde_json::json!({"status": "approved"})).unwrap_err();
    assert_eq!(e.message, "package key must be a non-empty string; got ''");
    assert!(validate_rule("x", &serde_json::json!("approved")).is_err());
}

// ---------------------------------------------------------------- YAML edits

const COMMENTED: &str = "# Team registry — edit with care.\nversion: \"1.2\"   # bump on release\nglobal_policies:\n  auto_approve_licenses: [MIT]\n\npackages:\n    # HTTP\n    httpx:\n        status: preferred\n        reason: Standard async HTTP client.\n\n    # legacy: do not use\n    Requests:\n        status: deprecated\n        replacement: httpx   # async\n        reason: Migrating.\n    pyqt5:\n        status: banned\n# trailing comment\n";

fn rule(name: &str, status: Status) -> Rule {
    Rule {
        name: name.into(),
        status,
        reason: None,
        replacement: None,
        min_version: None,
        max_version: None,
        line: None,
        expires: None,
        owner: None,
    }
}

#[test]
fn upsert_replaces_a_block_and_keeps_every_other_line() {
    let mut r = rule("requests", Status::Banned);
    r.reason = Some("Use httpx: it is async.".into());
    let out = upsert_rule_in_yaml(COMMENTED, &r).unwrap();
    let expected = COMMENTED.replace(
        "    Requests:\n        status: deprecated\n        replacement: httpx   # async\n        reason: Migrating.\n",
        "    Requests:\n        status: banned\n        reason: \"Use httpx: it is async.\"\n",
    );
    assert_eq!(out, expected);
    let reg = Registry::from_yaml(&out).unwrap();
    assert_eq!(
        reg.rule("requests").unwrap().reason.as_deref(),
        Some("Use httpx: it is async.")
    );
}

#[test]
fn upsert_appends_with_the_files_indentation() {
    let mut r = rule("Django", Status::VersionConstrained);
    r.min_version = Some("4.2".into());
    r.max_version = Some("6.0".into());
    let out = upsert_rule_in_yaml(COMMENTED, &r).unwrap();
    let expected = COMMENTED.replace(
        "    pyqt5:\n        status: banned\n",
        "    pyqt5:\n        status: banned\n    Django:\n        status: version-constrained\n        min_version: \"4.2\"\n        max_version: \"6.0\"\n",
    );
    assert_eq!(out, expected);
    let reg = Registry::from_yaml(&out).unwrap();
    assert_eq!(
        reg.rule("django").unwrap().max_version.as_deref(),
        Some("6.0")
    );
}

#[test]
fn upsert_creates_packages_when_missing_or_empty() {
    let base = "version: '1'\n# no packages yet\n";
    let out = upsert_rule_in_yaml(base, &rule("attrs", Status::Approved)).unwrap();
    assert_eq!(
        out,
        format!("{base}packages:\n  attrs:\n    status: approved\n")
    );

    let out = upsert_rule_in_yaml(
        "version: '1'\npackages: {}\n# end\n",
        &rule("attrs", Status::Approved),
    )
    .unwrap();
    assert_eq!(
        out,
        "version: '1'\npackages:\n  attrs:\n    status: approved\n# end\n"
    );

    let out = upsert_rule_in_yaml(
        "version: '1'\npackages:  # none\nx: 1\n",
        &rule("attrs", Status::Approved),
    )
    .unwrap();
    assert_eq!(
        out,
        "version: '1'\npackages:  # none\n  attrs:\n    status: approved\nx: 1\n"
    );

    let crlf = "version: '1'\r\npackages:\r\n  a:\r\n    status: approved\r\n";
    let out = upsert_rule_in_yaml(crlf, &rule("b", Status::Approved)).unwrap();
    assert_eq!(out, format!("{crlf}  b:\r\n    status: approved\r\n"));
}

#[test]
fn upsert_refuses_what_would_not_validate() {
    let r = rule("requests", Status::Deprecated); // no replacement
    let e = upsert_rule_in_yaml(COMMENTED, &r).unwrap_err();
    assert!(e.message.contains("nothing written"), "{}", e.message);
    assert!(
        e.message.contains("deprecated but has no `replacement`"),
        "{}",
        e.message
    );
    let e = upsert_rule_in_yaml("{version: '1', packages: {}}", &rule("a", Status::Approved))
        .unwrap_err();
    assert!(e.message.contains("flow mapping"), "{}", e.message);
    assert!(upsert_rule_in_yaml("version: [", &rule("a", Status::Approved)).is_err());
}

#[test]
fn upsert_quotes_awkward_text() {
    let mut r = rule("weird", Status::Banned);
    r.reason = Some("yes".into());
    let out = upsert_rule_in_yaml("version: '1'\n", &r).unwrap();
    assert!(out.contains("reason: yes\n"), "{out}");
    r.reason = Some("true".into());
    let out = upsert_rule_in_yaml("version: '1'\n", &r).unwrap();
    assert!(out.contains("reason: \"true\"\n"), "{out}");
    r.reason = Some("# not a comment \"quoted\"\nline two".into());
    let out = upsert_rule_in_yaml("version: '1'\n", &r).unwrap();
    let reg = Registry::from_yaml(&out).unwrap();
    assert_eq!(reg.rule("weird").unwrap().reason, r.reason);
}

#[test]
fn remove_deletes_only_the_block() {
    let out = remove_rule_in_yaml(COMMENTED, "REQUESTS").unwrap();
    let expected = COMMENTED.replace(
        "    Requests:\n        status: deprecated\n        replacement: httpx   # async\n        reason: Migrating.\n",
        "",
    );
    assert_eq!(out, expected);
    assert!(Registry::from_yaml(&out)
        .unwrap()
        .rule("requests")
        .is_none());
    let e = remove_rule_in_yaml(COMMENTED, "numpy").unwrap_err();
    assert_eq!(e.message, "package `numpy` is not in the registry");
}
