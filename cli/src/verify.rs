//! `lex-align verify FILE`: check a signed verdict offline.

use std::path::PathBuf;

use clap::Args;
use lex_align_daemon::signing::{check_verdict, verify_envelope};

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// A signed verdict (`lex-align check --signed -o FILE`, or `?envelope=dsse` saved).
    pub file: PathBuf,
    /// Trusted keys: the daemon's `GET /api/v1/keys` answer, saved as is
    /// [default: the key of the daemon on this machine].
    #[arg(long, value_name = "FILE")]
    pub keys: Option<PathBuf>,
    /// Accept a verdict past its `expires_at`.
    #[arg(long)]
    pub allow_expired: bool,
    /// Print the result as one JSON object.
    #[arg(long)]
    pub json: bool,
}

fn invalid(json: bool, why: &str) -> u8 {
    if json {
        println!("{}", serde_json::json!({"valid": false, "reason": why}));
    }
    eprintln!("Invalid: {why}");
    1
}

pub fn run(a: VerifyArgs) -> u8 {
    let keys = match crate::export::trusted_keys(a.keys.as_deref()) {
        Ok(k) => k,
        Err(e) => return crate::fail(e),
    };
    let bytes = match std::fs::read(&a.file) {
        Ok(b) => b,
        Err(e) => return crate::fail(format!("cannot read {}: {e}", a.file.display())),
    };
    let verified = match verify_envelope(&bytes, &keys) {
        Ok(v) => v,
        Err(why) => return invalid(a.json, &why),
    };
    let now = time::OffsetDateTime::now_utc();
    let s = match check_verdict(&verified, now, a.allow_expired) {
        Ok(s) => s,
        Err(why) => return invalid(a.json, &why),
    };
    if a.json {
        let mut v = serde_json::to_value(&s).unwrap_or_default();
        v["valid"] = true.into();
        println!("{v}");
        return 0;
    }
    let what = match &s.version {
        Some(v) => format!("{} {v}", s.package),
        None => s.package.clone(),
    };
    let expiry = if s.expired {
        format!("EXPIRED at {} (accepted: --allow-expired)", s.expires_at)
    } else {
        format!("valid until {}", s.expires_at)
    };
    println!(
        "Valid: {} {what} for project {}, signed by key {} at {}, {expiry}.",
        s.verdict, s.project, s.key_id, s.issued_at
    );
    if !s.reason.is_empty() {
        println!("  reason: {}", s.reason);
    }
    if s.form == "vsa" {
        println!("  form: in-toto Statement, SLSA verification summary");
    }
    0
}
