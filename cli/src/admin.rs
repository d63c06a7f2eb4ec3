//! `admin keys …` and `admin overrides …`: the access tables of the
//! database a daemon uses, changed beside it (it picks changes up within
//! a second; see `lex_align_store::AccessDb`).

use std::path::PathBuf;
use std::time::Duration;

use lex_align_daemon::auth::Role;
use lex_align_daemon::http::overrides::{check_expiry, parse_expiry, MIN_JUSTIFICATION};
use lex_align_store::{AccessDb, ApiKey, OverrideRow};
use serde_json::json;

use crate::args::{AdminCommand, DbArg, KeysCommand, OverridesCommand};
use crate::{audit, fail};

pub fn run(command: AdminCommand) -> u8 {
    match command {
        AdminCommand::Keys { command } => keys(command),
        AdminCommand::Overrides { command } => overrides(command),
    }
}

fn open(db: DbArg) -> Result<AccessDb, u8> {
    let Some(path): Option<PathBuf> = db.db.or_else(audit::default_db) else {
        return Err(fail(
            "no database given: pass --db PATH or set DATABASE_PATH (or LEXALIGN_DATA_DIR).",
        ));
    };
    AccessDb::open(&path).map_err(|e| fail(format!("cannot open {}: {e}", path.display())))
}

fn keys(command: KeysCommand) -> u8 {
    match command {
        KeysCommand::Create {
            name,
            role,
            project,
            expires_in_days,
            json,
            db,
        } => create(&name, &role, project.as_deref(), expires_in_days, json, db),
        KeysCommand::Generate { project, db } => {
            create(&project, "agent", Some(&project), None, false, db)
        }
        KeysCommand::List { json, db } => {
            let db = match open(db) {
                Ok(d) => d,
                Err(code) => return code,
            };
            match db.keys() {
                Ok(keys) if json => {
                    println!("{}", json!({ "keys": keys }));
                    0
                }
                Ok(keys) => {
                    print_keys(&keys);
                    0
                }
                Err(e) => fail(format!("cannot list keys: {e}")),
            }
        }
        KeysCommand::Revoke { id, db } => {
            let db = match open(db) {
                Ok(d) => d,
                Err(code) => return code,
            };
            match db.revoke_key(&id) {
                Ok(true) => {
                    println!("Revoked API key {id}; a running daemon refuses it within a second.");
                    0
                }
                Ok(false) => fail(format!(
                    "no live API key with id {id} (see `lex-align admin keys list`)"
                )),
                Err(e) => fail(format!("cannot revoke {id}: {e}")),
            }
        }
    }
}

fn create(
    name: &str,
    role: &str,
    project: Option<&str>,
    days: Option<u32>,
    json: bool,
    db: DbArg,
) -> u8 {
    let Some(role) = Role::parse(role) else {
        return fail(format!(
            "{role:?} is not a role; use agent, developer or operator"
        ));
    };
    if days == Some(0) {
        return fail("--expires-in-days must be at least 1");
    }
    let db = match open(db) {
        Ok(d) => d,
        Err(code) => return code,
    };
    let expires = days.map(|d| Duration::from_secs(u64::from(d) * 86_400));
    let made = match db.create_key(name, role.as_str(), project, expires) {
        Ok(m) => m,
        Err(e) => return fail(format!("cannot create the key: {e}")),
    };
    let r = &made.record;
    if json {
        println!(
            "{}",
            json!({
                "id": r.id, "name": r.name, "role": r.role, "project": r.project,
                "key": made.key, "created_at": r.created_at, "expires_at": r.expires_at,
            })
        );
    } else {
        println!("Created API key {} ({}, role {}).", r.id, r.name, r.role);
        if let Some(p) = &r.project {
            println!("  project: {p} only");
        }
        println!("  expires: {}", r.expires_at.as_deref().unwrap_or("never"));
        println!();
        println!("  {}", made.key);
        println!();
        println!("This is the only time the key is shown: store it as LEXALIGN_API_KEY.");
    }
    0
}

fn key_state(k: &ApiKey) -> &'static str {
    let now = time::OffsetDateTime::now_utc();
    let expired = k.expires_at.as_deref().is_some_and(|t| {
        time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339)
            .map_or(true, |t| t <= now)
    });
    if k.revoked_at.is_some() {
        "revoked"
    } else if expired {
        "expired"
    } else {
        "active"
    }
}

fn print_keys(keys: &[ApiKey]) {
    if keys.is_empty() {
        println!(
            "No API keys. Create one with `lex-align admin keys create --name NAME --role ROLE`."
        );
        return;
    }
    println!(
        "{:<17} {:<20} {:<10} {:<16} {:<8} {:<33} EXPIRES",
        "ID", "NAME", "ROLE", "PROJECT", "STATE", "CREATED"
    );
    for k in keys {
        println!(
            "{:<17} {:<20} {:<10} {:<16} {:<8} {:<33} {}",
            k.id,
            k.name,
            k.role,
            k.project.as_deref().unwrap_or("(any)"),
            key_state(k),
            k.created_at,
            k.expires_at.as_deref().unwrap_or("never")
        );
    }
}

fn overrides(command: OverridesCommand) -> u8 {
    match command {
        OverridesCommand::List { all, json, db } => {
            let db = match open(db) {
                Ok(d) => d,
                Err(code) => return code,
            };
            let rows = if all {
                db.all_overrides()
            } else {
                db.active_overrides()
            };
            match rows {
                Ok(rows) if json => {
                    println!("{}", json!({ "overrides": rows }));
                    0
                }
                Ok(rows) => {
                    print_overrides(&rows);
                    0
                }
                Err(e) => fail(format!("cannot list overrides: {e}")),
            }
        }
        OverridesCommand::Grant {
            package,
            project,
            version,
            justification,
            expires,
            approver,
            json,
            db,
        } => {
            if let Err(e) =
                lex_align_engine::request::EvalRequest::parse(&package, version.as_deref(), None)
            {
                return fail(format!("{}: {}", e.field, e.message));
            }
            if justification.trim().chars().count() < MIN_JUSTIFICATION {
                return fail(format!(
                    "--justification must say why in at least {MIN_JUSTIFICATION} characters"
                ));
            }
            let Some(expires_at) = parse_expiry(&expires) else {
                return fail(format!(
                    "--expires {expires:?} is not an RFC 3339 time or a date (e.g. 2027-01-31)"
                ));
            };
            if let Err(m) = check_expiry(expires_at) {
                return fail(m);
            }
            let approver = approver
                .or_else(|| std::env::var("USER").ok())
                .filter(|a| !a.trim().is_empty())
                .unwrap_or_else(|| "operator".into());
            let db = match open(db) {
                Ok(d) => d,
                Err(code) => return code,
            };
            match db.grant_override(
                &package,
                &project,
                version.as_deref(),
                justification.trim(),
                &approver,
                expires_at,
            ) {
                Ok(row) if json => {
                    println!("{}", json!(row));
                    0
                }
                Ok(row) => {
                    println!(
                        "Granted override {} for {} in project {} until {} (approver {}).",
                        row.id, row.package, row.project, row.expires_at, row.approver
                    );
                    0
                }
                Err(e) => fail(format!("cannot grant the override: {e}")),
            }
        }
        OverridesCommand::Revoke { id, db } => {
            let db = match open(db) {
                Ok(d) => d,
                Err(code) => return code,
            };
            let by = std::env::var("USER").unwrap_or_else(|_| "operator".into());
            match db.revoke_override(&id, &by) {
                Ok(true) => {
                    println!("Revoked override {id}; a running daemon stops applying it within a second.");
                    0
                }
                Ok(false) => fail(format!("no active override with id {id}")),
                Err(e) => fail(format!("cannot revoke {id}: {e}")),
            }
        }
    }
}

fn print_overrides(rows: &[OverrideRow]) {
    if rows.is_empty() {
        println!("No overrides.");
        return;
    }
    for r in rows {
        let state = if r.revoked_at.is_some() {
            "revoked"
        } else {
            "granted"
        };
        println!(
            "{}  {} {}  project {}  until {}  by {} ({state})",
            r.id,
            r.package,
            r.version.as_deref().unwrap_or("(any version)"),
            r.project,
            r.expires_at,
            r.approver
        );
        println!("    {}", r.justification);
    }
}
