//! `quickstart`: a data directory with a starter `registry.yml` and the
//! SQLite audit DB, then the daemon on 127.0.0.1:8765. Idempotent: user
//! edits to `registry.yml` and the existing DB are kept.

use std::path::{Path, PathBuf};
use std::time::Duration;

use lex_align_engine::registry::STARTER_YAML;

use crate::args::QuickstartArgs;
use crate::compile::{self, LoadError};
use crate::{daemon, fail, selftest};

pub const MARKER: &str = ".lexalign-quickstart.toml";
pub const REGISTRY_FILE: &str = "registry.yml";
pub const DB_FILE: &str = "lexalign.sqlite";

pub fn run(a: QuickstartArgs) -> u8 {
    let target = match a.target.clone().map(expand_tilde).or_else(default_data_dir) {
        Some(t) => t,
        None => return fail("HOME is not set; pass --target DIR or set LEXALIGN_DATA_DIR."),
    };
    if let Err(e) = std::fs::create_dir_all(&target) {
        return fail(format!("cannot create {}: {e}", target.display()));
    }
    let target = std::fs::canonicalize(&target).unwrap_or(target);

    let mut written: Vec<PathBuf> = Vec::new();
    let mut skipped: Vec<PathBuf> = Vec::new();

    let yml = target.join(REGISTRY_FILE);
    if yml.exists() && !a.force {
        skipped.push(yml.clone());
    } else {
        if let Err(e) = std::fs::write(&yml, STARTER_YAML) {
            return fail(format!("cannot write {}: {e}", yml.display()));
        }
        written.push(yml.clone());
    }
    // Validate what the daemon will load, so a broken hand edit fails here
    // with the line number instead of at daemon start.
    let text = match std::fs::read_to_string(&yml) {
        Ok(t) => t,
        Err(e) => return fail(format!("cannot read {}: {e}", yml.display())),
    };
    match compile::load(&text) {
        Ok(_) => {}
        Err(LoadError::Yaml(e)) => {
            return fail(format!("YAML parse error in {}: {e}", yml.display()))
        }
        Err(LoadError::Invalid(e)) => return fail(format!("Registry validation failed: {e}")),
    }

    let db = target.join(DB_FILE);
    if db.exists() {
        skipped.push(db.clone());
    } else {
        match lex_align_store::Store::open(&db) {
            Ok(store) => drop(store),
            Err(e) => return fail(format!("cannot create the audit DB {}: {e}", db.display())),
        }
        written.push(db.clone());
    }

    let marker = target.join(MARKER);
    let marker_text = format!(
        "target = {}\nregistry_path = {}\ndatabase_path = {}\nbind_host = {}\nbind_port = {}\n",
        toml_str(&target.display().to_string()),
        toml_str(&yml.display().to_string()),
        toml_str(&db.display().to_string()),
        toml_str(&a.host),
        a.port
    );
    if let Err(e) = std::fs::write(&marker, marker_text) {
        return fail(format!("cannot write {}: {e}", marker.display()));
    }
    written.push(marker);

    for p in &written {
        println!("  + {}", p.display());
    }
    for p in &skipped {
        println!("  · skipped (exists) {}", p.display());
    }
    println!();
    println!("Quickstart bundle ready under {}.", target.display());
    println!("  registry: {}", yml.display());
    println!("  audit DB: {}", db.display());
    println!();

    if a.no_serve {
        println!("Skipping `serve` (--no-serve). Start later with:");
        println!("  {}", start_command(&target, &yml, &db, &a.host, a.port));
        return 0;
    }

    let base = base_url(&a.host, a.port);
    if already_serving(&base) {
        println!("A lex-align daemon already answers on {base}; not starting another.");
        println!("Stop it first to restart with this configuration.");
        return 0;
    }

    // The daemon reads its configuration from the environment, like the
    // original; set it before any thread exists. The target is the data
    // directory (signing key, synced advisories, checkpoints), not just
    // where the registry and the DB happen to be.
    std::env::set_var("LEXALIGN_DATA_DIR", &target);
    std::env::set_var("REGISTRY_PATH", &yml);
    std::env::set_var("DATABASE_PATH", &db);
    std::env::set_var("BIND_HOST", &a.host);
    std::env::set_var("BIND_PORT", a.port.to_string());
    daemon::init_logging();
    let mut config = match lex_align_daemon::Config::from_env() {
        Ok(c) => c,
        Err(e) => return fail(format!("invalid configuration: {e}")),
    };
    config.bind_host = a.host.clone();
    config.bind_port = a.port;
    // Before describing the advisory source: it depends on the index.
    daemon::use_pip_default_index(&mut config);
    let advisories =
        lex_align_upstream::describe_advisory_source(&lex_align_daemon::upstream_config(&config));
    println!("  advisories: {}", advisories.summary());

    println!("Starting server on {base} (Ctrl-C to stop)");
    println!("Run `lex-align-client init` in another terminal to point a project at it.");
    println!();
    daemon::serve(config)
}

/// `LEXALIGN_DATA_DIR`, else `~/.lexalign` (the original's default).
pub fn default_data_dir() -> Option<PathBuf> {
    if let Some(d) = std::env::var_os("LEXALIGN_DATA_DIR").filter(|d| !d.is_empty()) {
        return Some(expand_tilde(PathBuf::from(d)));
    }
    std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .map(|h| PathBuf::from(h).join(".lexalign"))
}

fn expand_tilde(p: PathBuf) -> PathBuf {
    let Some(s) = p.to_str() else { return p };
    let home = std::env::var_os("HOME").map(PathBuf::from);
    match (s, home) {
        ("~", Some(h)) => h,
        (s, Some(h)) if s.starts_with("~/") => h.join(&s[2..]),
        _ => p,
    }
}

/// The command `--no-serve` prints. It names this very executable so it
/// works whether or not `lex-align` is on PATH.
fn start_command(target: &Path, yml: &Path, db: &Path, host: &str, port: u16) -> String {
    let exe = std::env::current_exe()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|_| "lex-align".to_string());
    format!(
        "LEXALIGN_DATA_DIR={} REGISTRY_PATH={} DATABASE_PATH={} BIND_HOST={} BIND_PORT={} {} daemon",
        shell_quote(&target.display().to_string()),
        shell_quote(&yml.display().to_string()),
        shell_quote(&db.display().to_string()),
        shell_quote(host),
        port,
        shell_quote(&exe)
    )
}

fn shell_quote(s: &str) -> String {
    let plain = !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "/._-+:,@%=".contains(c));
    if plain {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// A TOML basic string (JSON string escapes are a subset TOML accepts).
fn toml_str(s: &str) -> String {
    serde_json::to_string(s).expect("strings always serialize")
}

pub fn base_url(host: &str, port: u16) -> String {
    if host.contains(':') && !host.starts_with('[') {
        format!("http://[{host}]:{port}")
    } else {
        format!("http://{host}:{port}")
    }
}

/// True when a lex-align daemon (a JSON health answer) is already on the port.
fn already_serving(base: &str) -> bool {
    let url = format!("{base}/api/v1/health");
    selftest::runtime().block_on(async {
        let Ok(client) = reqwest::Client::builder()
            .timeout(Duration::from_secs(2))
            .build()
        else {
            return false;
        };
        match client.get(&url).send().await {
            Ok(resp) if resp.status().is_success() => resp
                .json::<serde_json::Value>()
                .await
                .map(|v| v.is_object())
                .unwrap_or(false),
            _ => false,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_keeps_plain_paths_and_quotes_the_rest() {
        assert_eq!(shell_quote("/tmp/a-b_c/x.yml"), "/tmp/a-b_c/x.yml");
        assert_eq!(shell_quote("/tmp/my dir/x"), "'/tmp/my dir/x'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
    }

    #[test]
    fn marker_strings_are_valid_toml() {
        let raw = "C:\\path \"quoted\" \u{e9}";
        let doc: toml::Table = toml::from_str(&format!("k = {}\n", toml_str(raw))).unwrap();
        assert_eq!(doc["k"].as_str(), Some(raw));
    }
}
