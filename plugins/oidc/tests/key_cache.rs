//! The key cache through the Rust API (several instances in one process):
//! file sources, withdrawal by age, outages, concurrent unknown kids.

mod support;

use std::sync::Arc;

use lex_align_fakes::FakeJwks;
use lex_align_plugin_oidc::OidcAuth;
use serde_json::json;
use support::*;

fn config(jwks_src: &str, extra: serde_json::Value) -> serde_json::Value {
    let mut c = json!({"issuer": ISSUER, "audience": AUDIENCE, "jwks": jwks_src});
    for (k, v) in extra.as_object().unwrap() {
        c[k] = v.clone();
    }
    c
}

#[test]
fn a_jwks_file_is_reread_on_an_unknown_kid() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("jwks.json");
    let (a, b) = (rsa(1, "a"), ec("b"));
    std::fs::write(&file, jwks(&[&a]).to_string()).unwrap();
    let auth = OidcAuth::from_config(&config(file.to_str().unwrap(), json!({}))).unwrap();
    assert_eq!(
        auth.verify_bearer(Some(&sign(&a, &claims("u"))))
            .unwrap()
            .id,
        "u"
    );
    std::fs::write(&file, jwks(&[&a, &b]).to_string()).unwrap();
    assert_eq!(
        auth.verify_bearer(Some(&sign(&b, &claims("v"))))
            .unwrap()
            .id,
        "v"
    );
    assert_eq!(auth.jwks_fetches(), 2);
}

#[test]
fn an_unreadable_or_empty_key_file_fails_configure() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("none.json");
    let e = OidcAuth::from_config(&config(missing.to_str().unwrap(), json!({})))
        .err()
        .unwrap();
    assert!(e.contains("cannot read"), "{e}");
    let only_hmac = dir.path().join("oct.json");
    std::fs::write(
        &only_hmac,
        r#"{"keys":[{"kty":"oct","kid":"h","k":"c2VjcmV0"}]}"#,
    )
    .unwrap();
    let e = OidcAuth::from_config(&config(only_hmac.to_str().unwrap(), json!({})))
        .err()
        .unwrap();
    assert!(e.contains("no usable"), "{e}");
}

#[test]
fn a_key_withdrawn_from_the_set_stops_verifying_once_the_set_is_old() {
    let (a, b) = (rsa(1, "a"), rsa(2, "b"));
    let idp = FakeJwks::start(jwks(&[&a, &b]));
    // Max age 0: every check finds the set old and fetches it again
    // (refresh interval 0 lets it).
    let auth = OidcAuth::from_config(&config(
        &idp.url(),
        json!({"jwks_max_age_s": 0, "jwks_refresh_min_s": 0}),
    ))
    .unwrap();
    assert!(auth.verify_bearer(Some(&sign(&a, &claims("u")))).is_ok());
    idp.set_jwks(jwks(&[&b]));
    let e = auth
        .verify_bearer(Some(&sign(&a, &claims("u"))))
        .unwrap_err();
    assert!(e.contains("not in the identity provider's key set"), "{e}");
    assert!(auth.verify_bearer(Some(&sign(&b, &claims("u")))).is_ok());
}

#[test]
fn an_idp_outage_keeps_the_keys_already_known() {
    let (a, b) = (rsa(1, "a"), ec("b"));
    let idp = FakeJwks::start(jwks(&[&a]));
    let auth = OidcAuth::from_config(&config(
        &idp.url(),
        json!({"jwks_max_age_s": 0, "jwks_refresh_min_s": 0}),
    ))
    .unwrap();
    idp.set_down(true);
    assert_eq!(
        auth.verify_bearer(Some(&sign(&a, &claims("u"))))
            .unwrap()
            .id,
        "u"
    );
    let e = auth
        .verify_bearer(Some(&sign(&b, &claims("u"))))
        .unwrap_err();
    assert!(e.contains("not in the identity provider's key set"), "{e}");
    // Back up, the new key is found.
    idp.set_down(false);
    idp.set_jwks(jwks(&[&a, &b]));
    assert!(auth.verify_bearer(Some(&sign(&b, &claims("u")))).is_ok());
}

#[test]
fn an_unreachable_jwks_url_fails_configure() {
    let idp = FakeJwks::start(jwks(&[&rsa(1, "a")]));
    idp.set_down(true);
    let e = OidcAuth::from_config(&config(&idp.url(), json!({})))
        .err()
        .unwrap();
    assert!(e.contains("503"), "{e}");
}

#[test]
fn concurrent_unknown_kids_fetch_the_set_at_most_once() {
    let a = rsa(1, "a");
    let idp = FakeJwks::start(jwks(&[&a]));
    let auth = Arc::new(OidcAuth::from_config(&config(&idp.url(), json!({}))).unwrap());
    let tokens: Vec<String> = (0..64)
        .map(|i| sign_as(&a, &format!("made-up-{i}"), &claims("m")))
        .collect();
    std::thread::scope(|s| {
        for chunk in tokens.chunks(8) {
            let auth = auth.clone();
            s.spawn(move || {
                for t in chunk {
                    assert!(auth.verify_bearer(Some(t)).is_err());
                }
            });
        }
    });
    assert_eq!(
        idp.fetches(),
        2,
        "one configure fetch, one refresh for all the unknown kids"
    );
    assert!(auth.verify_bearer(Some(&sign(&a, &claims("u")))).is_ok());
}

#[test]
fn identity_claims_are_configurable_and_bounded() {
    let a = ec("a");
    let idp = FakeJwks::start(jwks(&[&a]));
    let auth = OidcAuth::from_config(&config(
        &idp.url(),
        json!({"groups_claim": "https://lex-align.test/groups", "email_claim": "mail", "id_claim": "oid"}),
    ))
    .unwrap();
    let mut c = claims("sub-is-not-used");
    c["oid"] = json!("00000000-aaaa");
    c["mail"] = json!("o@example.test");
    c["https://lex-align.test/groups"] = json!(["x", "x", " y ", 3, ""]);
    let id = auth.verify_bearer(Some(&sign(&a, &c))).unwrap();
    assert_eq!(id.id, "00000000-aaaa");
    assert_eq!(id.email.as_deref(), Some("o@example.test"));
    assert_eq!(id.groups, vec!["x".to_string(), "y".to_string()]);
    // One group as a string; the id claim as a number is refused.
    c["https://lex-align.test/groups"] = json!("solo");
    assert_eq!(
        auth.verify_bearer(Some(&sign(&a, &c))).unwrap().groups,
        vec!["solo"]
    );
    c["oid"] = json!(12);
    assert!(auth
        .verify_bearer(Some(&sign(&a, &c)))
        .unwrap_err()
        .contains("`oid`"));
    // Too many groups.
    c["oid"] = json!("o");
    c["https://lex-align.test/groups"] =
        json!((0..300).map(|i| format!("g{i}")).collect::<Vec<_>>());
    assert!(auth
        .verify_bearer(Some(&sign(&a, &c)))
        .unwrap_err()
        .contains("more than"));
}
