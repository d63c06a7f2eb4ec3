//! `lex-align team status`: how the local (personal) daemon's link to its
//! team server is, from the `team` object of its health.

use clap::{Args, Subcommand};
use serde_json::Value;

use crate::fail;
use crate::selftest::error_chain;

#[derive(Debug, Subcommand)]
pub enum TeamCommand {
    /// The link: team URL, identity, applied registry version, lag, queue, state.
    Status(StatusArgs),
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// The personal daemon [default: $LEXALIGN_SERVER_URL, else http://127.0.0.1:8765].
    #[arg(long)]
    pub url: Option<String>,
    /// Print the `team` object as JSON.
    #[arg(long)]
    pub json: bool,
}

pub fn run(command: TeamCommand) -> u8 {
    match command {
        TeamCommand::Status(a) => status(a),
    }
}

fn status(a: StatusArgs) -> u8 {
    let base = a
        .url
        .or_else(|| std::env::var("LEXALIGN_SERVER_URL").ok())
        .unwrap_or_else(|| "http://127.0.0.1:8765".into());
    let health = format!("{}/api/v1/health", base.trim_end_matches('/'));
    let result = crate::selftest::get_health(&health);
    let (code, body) = match result {
        Ok(r) => r,
        Err(e) => {
            return fail(format!(
                "daemon unreachable at {health}: {}",
                error_chain(&e)
            ))
        }
    };
    let v: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
    if code != 200 {
        return fail(format!("HTTP {code} from {health}: {body}"));
    }
    if v.get("db").is_none() {
        return fail(format!(
            "{health} answered only `up`: the daemon has authentication on; set LEXALIGN_API_KEY to a key it accepts"
        ));
    }
    let Some(t) = v.get("team").filter(|t| t.is_object()) else {
        return fail(format!(
            "the daemon at {base} follows no team server (start it with LEXALIGN_TEAM_URL and LEXALIGN_API_KEY)"
        ));
    };
    if a.json {
        println!(
            "{}",
            serde_json::to_string_pretty(t).expect("JSON values serialise")
        );
    } else {
        print!("{}", render(t));
    }
    match t["state"].as_str() {
        Some("following") | Some("connecting") => 0,
        _ => 1,
    }
}

fn s(v: &Value) -> String {
    match v {
        Value::Null => "-".into(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

pub fn render(t: &Value) -> String {
    let identity = match &t["identity"] {
        Value::Object(_) => format!(
            "{} (role {}, {})",
            s(&t["identity"]["id"]),
            s(&t["identity"]["role"]),
            s(&t["identity"]["method"])
        ),
        _ => "- (not yet known)".into(),
    };
    let mut out = String::new();
    out.push_str(&format!("team server:     {}\n", s(&t["url"])));
    out.push_str(&format!("state:           {}\n", s(&t["state"])));
    out.push_str(&format!("identity:        {identity}\n"));
    out.push_str(&format!(
        "registry:        version {} (generation {}; team at {}; lag {})\n",
        s(&t["registry_version"]),
        s(&t["registry_generation"]),
        s(&t["team_generation"]),
        s(&t["lag_generations"])
    ));
    out.push_str(&format!(
        "event stream:    {}\n",
        if t["events_connected"] == true {
            "connected"
        } else {
            "down (ETag polling)"
        }
    ));
    out.push_str(&format!("last contact:    {}\n", s(&t["last_contact_at"])));
    out.push_str(&format!(
        "outbox:          {} row(s) queued; last delivery {}\n",
        s(&t["outbox"]["depth"]),
        s(&t["outbox"]["last_delivery_at"])
    ));
    if t["degraded"].is_object() {
        out.push_str(&format!(
            "degraded:        {} (since {})\n",
            s(&t["degraded"]["reason"]),
            s(&t["degraded"]["since"])
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_the_link() {
        let t = serde_json::json!({
            "url": "https://team", "state": "degraded",
            "identity": {"id": "alice-laptop", "role": "agent", "method": "apikey:key_1"},
            "registry_version": "1.3", "registry_generation": 4, "team_generation": 4,
            "lag_generations": 0, "events_connected": false, "last_contact_at": null,
            "outbox": {"depth": 12, "last_delivery_at": null},
            "degraded": {"reason": "the team server is unreachable", "since": "2026-01-01T00:00:00Z"}
        });
        let r = render(&t);
        assert!(r.contains("alice-laptop (role agent"), "{r}");
        assert!(r.contains("12 row(s) queued"), "{r}");
        assert!(
            r.contains("degraded:        the team server is unreachable"),
            "{r}"
        );
    }
}
