//! Inputs the fuzz targets (tests/fuzz) found; each must be refused with a
//! field error (a 422), never a panic.

use lex_align_engine::request::EvalRequest;

#[test]
fn fuzz_pep508_request_requirement() {
    for requirement in [
        "apyq.\0as0",
        "cryptography.=41",
        "requests- >=2",
        "httpx_[http2]",
        "requests[osck-]==2.31",
        "httpx[http2_ ,cli]",
    ] {
        let e = EvalRequest::parse("", None, Some(requirement)).unwrap_err();
        assert_eq!(e.field, "requirement", "{requirement:?}");
    }
}

#[test]
fn fuzz_pep508_marker_multibyte_request() {
    let r = "pywin32>=306 ; platform_release != 'Vi'''sta\u{2122} \u{1f40d}'";
    let e = EvalRequest::parse("", None, Some(r)).unwrap_err();
    assert_eq!(e.field, "requirement");
}

/// `package` is capped at MAX_NAME_LEN characters (names go into URLs,
/// cache keys and the audit log); a name taken from `requirement` is not.
#[test]
fn fuzz_request_name_length_via_requirement() {
    let long = "a".repeat(lex_align_engine::name::MAX_NAME_LEN + 100);
    assert!(EvalRequest::parse(&long, None, None).is_err());
    let e = EvalRequest::parse("", None, Some(&format!("{long}>=1"))).unwrap_err();
    assert_eq!(e.field, "requirement");
}

/// The proposer's in-place edits on a registry.yml with bare CR line
/// breaks (old Mac style, or stray CRs): an error or an edit, no panic
/// (edit.rs `Lines::indent` indexes past the last `\n`-split line).
#[test]
fn fuzz_registry_edit_bare_cr() {
    use lex_align_engine::registry::{
        remove_rule_in_yaml, upsert_rule_in_yaml, validate_rule, Registry,
    };
    for text in [
        "version: '1'\n\r\rpackages:\n  httpx:\n    status: approved\n",
        "version: '1'\rpackages:\r  httpx:\r    status: approved\r",
    ] {
        let reg = Registry::from_yaml(text).unwrap();
        let rule = reg.rule("httpx").unwrap().clone();
        let _ = upsert_rule_in_yaml(text, &rule);
        let fresh = validate_rule("fuzz-new", &serde_json::json!({"status": "approved"})).unwrap();
        let _ = upsert_rule_in_yaml(text, &fresh);
        let _ = remove_rule_in_yaml(text, "httpx");
    }
}

/// Two spellings of one package: removing it must not leave the other
/// behind (registry_yaml fuzz target).
#[test]
fn fuzz_registry_remove_duplicate_spellings() {
    use lex_align_engine::registry::{remove_rule_in_yaml, Registry};
    let text =
        "version: '1'\npackages:\n  httpx:\n    status: approved\n  HTTPX:\n    status: banned\n";
    if Registry::from_yaml(text).is_ok() {
        match remove_rule_in_yaml(text, "httpx") {
            Ok(out) => assert!(
                Registry::from_yaml(&out).is_ok_and(|r| r.rule("httpx").is_none()),
                "{out}"
            ),
            Err(e) => assert!(e.message.contains("more than once"), "{}", e.message),
        }
    }
}

/// A registry whose `packages` declares the same key twice, the first block
/// ending in a comment with NUL bytes: the YAML parser stopped at the NUL
/// and saw one `httpx`, so a removal left the second listed (found by the
/// registry_yaml fuzz target). Control characters are refused, by the
/// loader and by the edits alike.
#[test]
fn fuzz_registry_control_characters_are_refused() {
    use lex_align_engine::registry::{remove_rule_in_yaml, Registry};
    let text =
        std::str::from_utf8(include_bytes!("data/registry-remove-duplicate-key.yml")).unwrap();
    let e = Registry::from_text(text).unwrap_err();
    assert!(e.message.contains("control character U+0002"), "{e:?}");
    assert_eq!(e.line, Some(10), "{e:?}");
    assert!(remove_rule_in_yaml(text, "httpx").is_err());
    // Tabs and CRLF are printable for YAML and still load.
    let ok = "version: \"1\"\r\npackages:\r\n  httpx: {status: approved}  #\tnote\r\n";
    assert!(Registry::from_text(ok).is_ok());
}
