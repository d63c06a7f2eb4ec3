//! Authenticator `test-auth`, for the plugin tests only.
//!
//! Config (`test-auth.json`): `{"fail": "why"}` makes configure fail;
//! `{"hang_configure": true}` makes it wait for the release file;
//! `{"groups": [...]}` are the groups of every identity; `{"release_file":
//! path}` ends a `hang` token's wait when the file appears.
//!
//! Tokens: `ok.<id>` → identity `<id>`; `panic` panics; `hang` blocks
//! until the release file appears (at most 60 s); anything else is 401.
#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::time::{Duration, Instant};

use lex_align_plugin_sdk::{AuthRequest, AuthenticatorPlugin, Identity, PluginError, Value};

pub struct TestAuth {
    groups: Vec<String>,
    release_file: Option<PathBuf>,
}

/// Waits for `file` (or 60 s): a call that outlives its timeout.
pub fn hang_until(file: Option<&std::path::Path>) {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(60) {
        if file.is_some_and(|f| f.exists()) {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

impl AuthenticatorPlugin for TestAuth {
    fn configure(config: &Value) -> Result<Self, PluginError> {
        if let Some(why) = config.get("fail").and_then(Value::as_str) {
            return Err(PluginError::bad_config(why));
        }
        let release_file = config
            .get("release_file")
            .and_then(Value::as_str)
            .map(PathBuf::from);
        if config.get("hang_configure") == Some(&Value::Bool(true)) {
            hang_until(release_file.as_deref());
        }
        Ok(TestAuth {
            groups: config
                .get("groups")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(|g| g.as_str().map(String::from))
                        .collect()
                })
                .unwrap_or_default(),
            release_file,
        })
    }

    fn authenticate(&self, req: &AuthRequest) -> Result<Identity, PluginError> {
        match req.bearer() {
            Some("panic") => panic!("test-auth was told to panic"),
            Some("hang") => {
                hang_until(self.release_file.as_deref());
                Err(PluginError::unauthorized("released"))
            }
            Some(t) if t.starts_with("ok.") && t.len() > 3 => Ok(Identity {
                id: t[3..].to_string(),
                email: Some(format!("{}@example.test", &t[3..])),
                groups: self.groups.clone(),
            }),
            Some(_) => Err(PluginError::unauthorized("unknown token")),
            None => Err(PluginError::unauthorized("no bearer token")),
        }
    }
}

lex_align_plugin_sdk::export_authenticator!("test-auth", TestAuth);
