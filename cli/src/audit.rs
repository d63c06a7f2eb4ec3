//! `audit verify`: prove the audit log's hash chain.

use std::path::PathBuf;

use crate::{fail, quickstart};

pub fn verify(db: Option<PathBuf>) -> u8 {
    let Some(path) = db.or_else(default_db) else {
        return fail("no audit database given: pass --db PATH or set DATABASE_PATH.");
    };
    // Opening creates a missing file; verifying a fresh empty log would
    // wrongly report success for a mistyped path.
    if !path.is_file() {
        return fail(format!("no audit database at {}", path.display()));
    }
    // Opening for writing first files rows a crashed daemon left in the
    // inbox; beside a running daemon, read what it has filed so far.
    let store = match lex_align_store::Store::open(&path) {
        Ok(s) => s,
        Err(lex_align_store::StoreError::InUse(_)) => {
            match lex_align_store::Store::open_read_only(&path) {
                Ok(s) => {
                    eprintln!(
                        "note: a daemon is writing {}; rows it acknowledged in the last few \
                         milliseconds may not be filed yet.",
                        path.display()
                    );
                    s
                }
                Err(e) => return fail(format!("cannot open {}: {e}", path.display())),
            }
        }
        Err(e) => return fail(format!("cannot open {}: {e}", path.display())),
    };
    if store.recovery().filed > 0 {
        eprintln!(
            "note: filed {} acknowledged rows a stopped daemon left in the inbox.",
            store.recovery().filed
        );
    }
    let report = match store.verify() {
        Ok(r) => r,
        Err(e) => {
            return fail(format!(
                "cannot read the audit log in {}: {e}",
                path.display()
            ))
        }
    };
    if report.ok {
        println!(
            "Audit log {}: {} rows checked, hash chain OK.",
            path.display(),
            report.rows
        );
        println!("  head: {}", report.head_hash);
        return 0;
    }
    match &report.first_broken {
        Some(b) => {
            eprintln!(
                "Audit log {}: hash chain BROKEN at row {} ({} rows checked).",
                path.display(),
                b.seq,
                report.rows
            );
            eprintln!(
                "  row id: {}",
                b.id.as_deref().unwrap_or("(missing: rows were deleted)")
            );
            eprintln!("  reason: {}", b.reason);
            eprintln!("  The log was changed after it was written at or just before this row.");
        }
        None => eprintln!(
            "Audit log {}: hash chain BROKEN ({} rows checked).",
            path.display(),
            report.rows
        ),
    }
    1
}

/// `DATABASE_PATH`, else the daemon's configured path, else the data dir.
pub(crate) fn default_db() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("DATABASE_PATH").filter(|p| !p.is_empty()) {
        return Some(PathBuf::from(p));
    }
    if let Ok(c) = lex_align_daemon::Config::from_env() {
        return Some(c.database_path);
    }
    quickstart::default_data_dir().map(|d| d.join(quickstart::DB_FILE))
}
