//! `lex-align plugins list`: the plugin libraries the running daemon found
//! (from its health), or, with no daemon to ask, a local scan of
//! `LEXALIGN_PLUGIN_DIRS`, said to be one.

use clap::{Args, Subcommand};
use serde_json::{json, Value};

use crate::fail;
use crate::selftest::error_chain;

#[derive(Debug, Subcommand)]
pub enum PluginsCommand {
    /// Every plugin library found: name, kind, ABI, state (ready | failed | unhealthy), error.
    List(ListArgs),
}

#[derive(Debug, Args)]
pub struct ListArgs {
    /// The daemon to ask [default: $LEXALIGN_SERVER_URL, else http://127.0.0.1:8765].
    #[arg(long)]
    pub url: Option<String>,
    /// Print `{"source", "url", "plugins": [...]}` as JSON.
    #[arg(long)]
    pub json: bool,
}

pub fn run(command: PluginsCommand) -> u8 {
    match command {
        PluginsCommand::List(a) => list(a),
    }
}

enum Asked {
    /// The daemon's `plugins`.
    Answered(Value),
    /// Nothing listens there.
    NoDaemon(String),
    /// Something answered, but not with the list.
    Refused(String),
}

fn ask(base: &str) -> Asked {
    let health = format!("{}/api/v1/health", base.trim_end_matches('/'));
    let result = crate::selftest::get_health(&health);
    let (code, body) = match result {
        Ok(r) => r,
        Err(e) if e.is_connect() => return Asked::NoDaemon(error_chain(&e)),
        Err(e) => return Asked::Refused(format!("{health}: {}", error_chain(&e))),
    };
    let v: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
    if code != 200 {
        return Asked::Refused(format!("HTTP {code} from {health}"));
    }
    if v.get("db").is_none() {
        return Asked::Refused(format!(
            "{health} answered only `up`: the daemon has authentication on; set LEXALIGN_API_KEY to a key it accepts"
        ));
    }
    match v.get("plugins") {
        Some(p @ Value::Array(_)) => Asked::Answered(p.clone()),
        _ => Asked::Refused(format!(
            "{health} lists no plugins (a daemon older than plugin support?)"
        )),
    }
}

/// A local scan, as the daemon would load them (each plugin's configure runs).
fn scan() -> Result<Value, String> {
    let settings = lex_align_plugin_host::HostSettings::from_env().map_err(|e| e.to_string())?;
    let host = lex_align_plugin_host::PluginHost::load(settings);
    Ok(serde_json::to_value(host.report()).expect("reports serialise"))
}

fn text(v: &Value) -> String {
    match v {
        Value::Null => "-".into(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

pub fn render(plugins: &[Value]) -> String {
    if plugins.is_empty() {
        return "no plugin libraries found (LEXALIGN_PLUGIN_DIRS lists the directories to search)\n".into();
    }
    let rows: Vec<[String; 5]> = plugins
        .iter()
        .map(|p| {
            [
                text(&p["name"]),
                text(&p["kind"]),
                text(&p["abi"]),
                text(&p["state"]),
                text(&p["path"]),
            ]
        })
        .collect();
    let head = ["NAME", "KIND", "ABI", "STATE", "PATH"];
    let widths: Vec<usize> = (0..5)
        .map(|i| {
            rows.iter()
                .map(|r| r[i].chars().count())
                .chain([head[i].len()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |cells: [&str; 5]| {
        let mut s = String::new();
        for (i, c) in cells.iter().enumerate() {
            if i == 4 {
                s.push_str(c);
            } else {
                s.push_str(&format!("{c:<w$}  ", w = widths[i]));
            }
        }
        s.push('\n');
        s
    };
    let mut out = line(head);
    for (r, p) in rows.iter().zip(plugins) {
        out.push_str(&line([&r[0], &r[1], &r[2], &r[3], &r[4]]));
        if let Some(e) = p["error"].as_str() {
            out.push_str(&format!("    error: {e}\n"));
        }
    }
    out
}

fn list(a: ListArgs) -> u8 {
    let base = a
        .url
        .or_else(|| std::env::var("LEXALIGN_SERVER_URL").ok())
        .unwrap_or_else(|| "http://127.0.0.1:8765".into());
    let (source, plugins, note) = match ask(&base) {
        Asked::Answered(p) => ("daemon", p, format!("as loaded by the daemon at {base}")),
        Asked::Refused(why) => return fail(why),
        Asked::NoDaemon(why) => match scan() {
            Ok(p) => (
                "local",
                p,
                format!(
                    "no daemon at {base} ({why}); scanned LEXALIGN_PLUGIN_DIRS locally instead"
                ),
            ),
            Err(e) => return fail(e),
        },
    };
    if a.json {
        let out = json!({"source": source, "url": base, "plugins": plugins});
        println!(
            "{}",
            serde_json::to_string_pretty(&out).expect("JSON values serialise")
        );
    } else {
        println!("plugins {note}:");
        print!(
            "{}",
            render(plugins.as_array().map(Vec::as_slice).unwrap_or(&[]))
        );
    }
    0
}
