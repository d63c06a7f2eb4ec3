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

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_lex-align");

/// `lex-align <args>` with a hermetic environment rooted at `home`.
pub fn lex(home: &Path) -> Cmd {
    Cmd::new(BIN, home)
}

/// `lex-align daemon` with its data in `dir` (registry.yml written from
/// `registry_yaml`) and the given upstream settings.
pub fn daemon_cmd(dir: &Path, registry_yaml: &str, upstream_env: &[(String, String)]) -> Cmd {
    let yml = dir.join("registry.yml");
    std::fs::write(&yml, registry_yaml).unwrap();
    lex(dir)
        .args(["daemon"])
        .env("REGISTRY_PATH", yml.display().to_string())
        .env(
            "DATABASE_PATH",
            dir.join("lexalign.sqlite").display().to_string(),
        )
        .envs(upstream_env)
}
