//! The export macro, used the way a plugin crate uses it (with unsafe code
//! forbidden), driven through the real `extern "C"` call.
#![deny(unsafe_code)]

use lex_align_plugin_sdk::{json, AuthRequest, AuthenticatorPlugin, Identity, PluginError, Value};

struct TokenAuth {
    token: String,
}

impl AuthenticatorPlugin for TokenAuth {
    fn configure(config: &Value) -> Result<Self, PluginError> {
        let token = config["token"]
            .as_str()
            .ok_or_else(|| PluginError::bad_config("token is required"))?;
        Ok(TokenAuth {
            token: token.into(),
        })
    }
    fn authenticate(&self, req: &AuthRequest) -> Result<Identity, PluginError> {
        if req.bearer() == Some("boom") {
            panic!("asked to panic");
        }
        if req.bearer() != Some(self.token.as_str()) {
            return Err(PluginError::unauthorized("wrong token"));
        }
        Ok(Identity {
            id: "ann".into(),
            email: Some("ann@example.test".into()),
            groups: vec![req.path.clone()],
        })
    }
}

lex_align_plugin_sdk::export_authenticator!("token-auth", TokenAuth);

fn call(v: Value) -> Value {
    serde_json::from_str(&__lex_align_call(&v.to_string())).unwrap()
}

fn auth(token: &str) -> Value {
    call(json!({"op": "authenticate", "method": "GET", "path": "/p",
        "headers": {"authorization": format!("Bearer {token}")}, "peer": "127.0.0.1:1"}))
}

#[test]
fn the_whole_life_of_an_authenticator() {
    // The descriptor says who it is.
    let d = unsafe_free_descriptor();
    assert_eq!(
        d,
        (1, "token-auth".to_string(), "authenticator".to_string())
    );

    // Before configure: an error, not a crash.
    assert_eq!(auth("s3cret")["error"]["status"], 503);
    // `config` must be an object.
    assert_eq!(
        call(json!({"op": "configure", "config": [1]}))["error"]["status"],
        400
    );
    // A failing configure leaves it unconfigured; a good one configures it once.
    assert_eq!(
        call(json!({"op": "configure", "config": {}})),
        json!({"error": {"status": 400, "detail": "token is required"}})
    );
    assert_eq!(
        call(json!({"op": "configure", "config": {"token": "s3cret"}})),
        json!({"ok": true})
    );
    assert_eq!(
        call(json!({"op": "configure", "config": {"token": "other"}}))["error"]["status"],
        409
    );

    assert_eq!(
        auth("s3cret"),
        json!({"identity": {"id": "ann", "email": "ann@example.test", "groups": ["/p"]}})
    );
    assert_eq!(auth("nope")["error"]["status"], 401);
    // A panic is an answer, and the plugin keeps working after it.
    let p = auth("boom");
    assert_eq!(p["error"]["status"], 500);
    assert_eq!(p["error"]["detail"], "plugin panicked: asked to panic");
    assert_eq!(auth("s3cret")["identity"]["id"], "ann");

    // Malformed requests.
    assert_eq!(call(json!({"op": "propose"}))["error"]["status"], 400);
    assert_eq!(call(json!({"nop": 1}))["error"]["status"], 400);
    assert_eq!(call(json!({"op": "authenticate"}))["error"]["status"], 400);
    let not_json: Value = serde_json::from_str(&__lex_align_call("{nope")).unwrap();
    assert_eq!(not_json["error"]["status"], 400);
}

/// Reads the descriptor through the exported entry point, as the host does.
fn unsafe_free_descriptor() -> (u32, String, String) {
    let raw = lex_align_plugin();
    assert!(!raw.is_null());
    descriptor_fields(raw)
}

#[path = "support/read.rs"]
mod read;
use read::descriptor_fields;
