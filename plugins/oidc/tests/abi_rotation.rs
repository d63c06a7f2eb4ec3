//! Key rotation through the plugin's real C entry points (one plugin
//! instance per process, hence a test file of its own).

mod support;

use lex_align_fakes::FakeJwks;
use lex_align_plugin_oidc::__lex_align_call as call;
use serde_json::json;
use support::*;

#[test]
fn rotation_through_the_c_abi() {
    let old = rsa(1, "2024-old");
    let new = ec("2025-new");
    let idp = FakeJwks::start(jwks(&[&old]));
    let v = parse(&call(
        &json!({"op": "configure", "config": {
            "issuer": ISSUER, "audience": AUDIENCE, "jwks": idp.url(),
            "groups_claim": "realm_access.roles", "id_claim": "preferred_username",
        }})
        .to_string(),
    ));
    assert_eq!(v, json!({"ok": true}));

    let mut c = claims("ignored-sub");
    c["preferred_username"] = json!("alice");
    c["realm_access"] = json!({"roles": ["reviewers"]});
    let v = parse(&call(&auth_request(&sign(&old, &c))));
    assert_eq!(v["identity"]["id"], "alice", "{v}");
    assert_eq!(v["identity"]["groups"], json!(["reviewers"]));

    // The provider rotates: the new kid is unknown, so the set is fetched
    // again and the token accepted.
    idp.set_jwks(jwks(&[&new]));
    let v = parse(&call(&auth_request(&sign(&new, &c))));
    assert_eq!(v["identity"]["id"], "alice", "{v}");
    assert_eq!(idp.fetches(), 2);

    // The withdrawn key is gone from the cache too.
    let t = sign(&old, &c);
    assert_refused(
        &call(&auth_request(&t)),
        &t,
        "not in the identity provider's key set",
    );
    // ... and asking about it again did not refetch (rate limit).
    assert_eq!(idp.fetches(), 2);
    let v = parse(&call(&auth_request(&sign(&new, &c))));
    assert_eq!(v["identity"]["id"], "alice", "{v}");
}
