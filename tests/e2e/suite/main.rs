//! End-to-end suite: the real `lex-align` binary, real SQLite files, the
//! daemon on loopback, fake upstreams fed realistic data, and the original
//! Python client. Built as the `e2e` test target of the `lex-align` package
//! (cli/Cargo.toml) so cargo builds the binary first and hands us its path.

mod commands;
mod compat;
mod durability;
mod index_fallbacks;
mod plugins;
mod proposers;
mod shipped_plugins;
mod team_access;
mod team_mode;

use std::path::Path;

use lex_align_e2e::Cmd;
use serde_json::Value;

/// The registry `lex-align init` writes: every daemon of the suite starts on it.
pub const STARTER: &str = include_str!("../../../daemon/engine/src/starter_registry.yml");

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_lex-align");

/// `lex-align <args>` with a hermetic environment rooted at `home`.
pub fn lex(home: &Path) -> Cmd {
    Cmd::new(BIN, home)
}

/// `lex-align daemon` with its data in `dir` (registry.yml written from
/// `registry_yaml`) and the given upstream settings.
pub fn daemon_cmd(dir: &Path, registry_yaml: &str, upstream_env: &[(String, String)]) -> Cmd {
    std::fs::write(dir.join("registry.yml"), registry_yaml).unwrap();
    daemon_in(dir, upstream_env)
}

/// `lex-align daemon` on the data already in `dir` (a restart keeps the
/// registry.yml a test has changed since).
pub fn daemon_in(dir: &Path, upstream_env: &[(String, String)]) -> Cmd {
    lex(dir)
        .args(["daemon"])
        .env(
            "REGISTRY_PATH",
            dir.join("registry.yml").display().to_string(),
        )
        .env(
            "DATABASE_PATH",
            dir.join("lexalign.sqlite").display().to_string(),
        )
        .envs(upstream_env)
}

/// A team daemon on the data in `dir`: API keys required
/// (`AUTH_ENABLED=true AUTH_BACKEND=apikey`).
pub fn apikey_daemon_in(dir: &Path, upstream_env: &[(String, String)]) -> Cmd {
    daemon_in(dir, upstream_env)
        .env("AUTH_ENABLED", "true")
        .env("AUTH_BACKEND", "apikey")
}

/// What `admin keys create --json` printed.
#[derive(Debug, Clone)]
pub struct Key {
    pub id: String,
    pub name: String,
    pub key: String,
}

/// `lex-align admin keys create --json` on the database `db`, its output
/// checked field by field.
pub async fn create_key(home: &Path, db: &Path, name: &str, role: &str) -> Key {
    let run = lex(home)
        .args(["admin", "keys", "create", "--name", name, "--role", role])
        .args(["--json", "--db"])
        .args([db.display().to_string()])
        .output()
        .await;
    run.expect_code(0);
    let v: Value = serde_json::from_str(run.stdout.trim())
        .unwrap_or_else(|e| panic!("keys create --json is not one object ({e}): {}", run.stdout));
    for field in [
        "id",
        "name",
        "role",
        "project",
        "key",
        "created_at",
        "expires_at",
    ] {
        assert!(v.get(field).is_some(), "no {field} in {v}");
    }
    assert_eq!(v["name"], name, "{v}");
    assert_eq!(v["role"], role, "{v}");
    assert!(v["project"].is_null() && v["expires_at"].is_null(), "{v}");
    let key = v["key"].as_str().unwrap().to_string();
    assert!(key.starts_with("lxa_"), "{v}");
    Key {
        id: v["id"].as_str().unwrap().to_string(),
        name: name.to_string(),
        key,
    }
}
