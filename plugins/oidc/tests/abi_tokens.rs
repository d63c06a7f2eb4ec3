//! The token matrix through the plugin's real C entry points (one plugin
//! instance per process, so one test).

mod support;

use lex_align_fakes::FakeJwks;
use lex_align_plugin_oidc::__lex_align_call as call;
use serde_json::json;
use support::*;

#[test]
fn tokens_through_the_c_abi() {
    let r1 = rsa(1, "r1");
    let e1 = ec("e1");
    let r2 = rsa(2, "r2"); // never published
    let idp = FakeJwks::start(jwks(&[&r1, &e1]));

    // Nothing is answered before a successful configure.
    let v = parse(&call(&auth_request(&sign(&r1, &claims("alice")))));
    assert_eq!(v["error"]["status"], 503, "{v}");

    // configure refuses what it cannot check.
    for bad in [
        json!({"audience": AUDIENCE, "jwks": idp.url()}),
        json!({"issuer": ISSUER, "jwks": idp.url()}),
        json!({"issuer": ISSUER, "audience": AUDIENCE}),
        json!({"issuer": ISSUER, "audience": AUDIENCE, "jwks": "/nonexistent/jwks.json"}),
        json!({"issuer": ISSUER, "audience": AUDIENCE, "jwks": "http://idp.example.test/jwks"}),
    ] {
        let v = parse(&call(
            &json!({"op": "configure", "config": bad}).to_string(),
        ));
        assert_eq!(v["error"]["status"], 400, "{bad} → {v}");
    }
    let v = parse(&call(
        &json!({"op": "configure", "config": {
            "issuer": ISSUER, "audience": AUDIENCE, "jwks": idp.url(),
        }})
        .to_string(),
    ));
    assert_eq!(v, json!({"ok": true}));
    assert_eq!(idp.fetches(), 1);

    // Valid tokens, both algorithms.
    let v = parse(&call(&auth_request(&sign(&r1, &claims("alice")))));
    assert_eq!(
        v,
        json!({"identity": {"id": "alice", "email": "alice@example.test", "groups": ["lex-align-admins", "devs"]}})
    );
    let v = parse(&call(&auth_request(&sign(&e1, &claims("bob")))));
    assert_eq!(v["identity"]["id"], "bob", "{v}");
    // `aud` as an array naming us; expiry within the 30 s leeway.
    let mut c = claims("carol");
    c["aud"] = json!(["other-app", AUDIENCE]);
    c["exp"] = json!(now() - 10);
    let v = parse(&call(&auth_request(&sign(&r1, &c))));
    assert_eq!(v["identity"]["id"], "carol", "{v}");

    // Claims that must fail.
    let cases: Vec<(serde_json::Value, &str)> = vec![
        (json!({"exp": now() - 3600}), "expired"),
        (json!({"nbf": now() + 3600}), "not valid yet"),
        (json!({"aud": "other-app"}), "another audience"),
        (json!({"aud": ["a", "b"]}), "another audience"),
        (
            json!({"iss": "https://evil.example.test"}),
            "another issuer",
        ),
        (json!({"iss": [ISSUER]}), "another issuer"),
        (json!({"exp": null}), "`exp`"),
        (json!({"aud": null}), "`aud`"),
        (json!({"sub": null}), "`sub`"),
    ];
    for (patch, reason) in cases {
        let mut c = claims("mallory");
        for (k, v) in patch.as_object().unwrap() {
            if v.is_null() {
                c.as_object_mut().unwrap().remove(k);
            } else {
                c[k] = v.clone();
            }
        }
        for key in [&r1, &e1] {
            let t = sign(key, &c);
            let answer = call(&auth_request(&t));
            assert_refused(&answer, &t, reason);
        }
    }

    // Unsigned and HMAC tokens, including HMAC keyed with the RSA public key.
    let t = unsigned("r1", &claims("mallory"));
    assert_refused(&call(&auth_request(&t)), &t, "alg none");
    for alg in [
        jsonwebtoken::Algorithm::HS256,
        jsonwebtoken::Algorithm::HS384,
        jsonwebtoken::Algorithm::HS512,
    ] {
        let t = hmac_with_public_key(&r1, alg, &claims("mallory"));
        assert_refused(&call(&auth_request(&t)), &t, "HMAC");
    }

    // Tampered payload (privilege escalation) and signature.
    let good = sign(&r1, &claims("alice"));
    let mut escalated = claims("root");
    escalated["groups"] = json!(["lex-align-admins", "security"]);
    let t = tamper_payload(&good, &escalated);
    assert_refused(&call(&auth_request(&t)), &t, "signature does not verify");
    let t = tamper_signature(&good);
    assert_refused(&call(&auth_request(&t)), &t, "signature does not verify");
    let t = tamper_signature(&sign(&e1, &claims("alice")));
    assert_refused(&call(&auth_request(&t)), &t, "signature does not verify");

    // A kid of the wrong key type for the algorithm.
    let t = sign_as(&r1, "e1", &claims("mallory"));
    assert_refused(&call(&auth_request(&t)), &t, "does not match the type");

    // Unknown kid: the key set is fetched once more, then the token refused;
    // further unknown kids within the refresh interval fetch nothing.
    let t = sign(&r2, &claims("mallory"));
    assert_refused(
        &call(&auth_request(&t)),
        &t,
        "not in the identity provider's key set",
    );
    assert_eq!(idp.fetches(), 2);
    for i in 0..25 {
        let t = sign_as(&r2, &format!("random-{i}"), &claims("mallory"));
        assert_refused(
            &call(&auth_request(&t)),
            &t,
            "not in the identity provider's key set",
        );
    }
    assert_eq!(
        idp.fetches(),
        2,
        "a flood of unknown kids must not reach the IdP"
    );

    // Shapes that are not a token at all.
    let v = parse(&call(
        &json!({"op": "authenticate", "method": "GET", "path": "/", "headers": {}, "peer": null})
            .to_string(),
    ));
    assert_eq!(v["error"]["status"], 401);
    assert!(v["error"]["detail"]
        .as_str()
        .unwrap()
        .contains("missing bearer token"));
    for junk in ["abc", "a.b", "a.b.c.d", "!!!.e30.sig"] {
        let answer = call(&auth_request(junk));
        assert_eq!(parse(&answer)["error"]["status"], 401, "{junk}: {answer}");
    }
    let crit = format!(
        "{}.{}.{}",
        base64_url(&json!({"alg": "RS256", "kid": "r1", "crit": ["exp"], "exp": 1})),
        base64_url(&claims("alice")),
        good.split('.').nth(2).unwrap()
    );
    assert_refused(&call(&auth_request(&crit)), &crit, "critical header");

    // Still serving valid tokens after all that.
    let v = parse(&call(&auth_request(&sign(&e1, &claims("dave")))));
    assert_eq!(v["identity"]["id"], "dave", "{v}");
}

fn base64_url(v: &serde_json::Value) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
}
