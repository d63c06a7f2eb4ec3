//! `audit export` and `audit verify-export`.

use std::io::{BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};

use clap::{Args, ValueEnum};
use lex_align_daemon::signing::{self, DaemonKey, KeySet};
use lex_align_store::export::{parse_time_bound, verify_export};
use lex_align_store::{ExportFilter, ExportFormat, Store, StoreError};

use crate::{audit, fail, quickstart};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum FormatArg {
    /// One JSON object per line, with a header and a signed checkpoint: verifiable.
    Jsonl,
    Csv,
    /// A Markdown table (for reading, not verifiable).
    Md,
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    #[arg(long, value_enum, default_value = "jsonl")]
    pub format: FormatArg,
    /// Rows at or after this time (RFC 3339, or a date: that day's start, UTC).
    #[arg(long)]
    pub since: Option<String>,
    /// Rows before this time (RFC 3339, or a date: through the end of that day, UTC).
    #[arg(long)]
    pub until: Option<String>,
    /// Only this project's rows.
    #[arg(long)]
    pub project: Option<String>,
    /// Write to FILE (atomically: all or nothing) [default: stdout].
    #[arg(short = 'o', long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// The SQLite file [default: $DATABASE_PATH, else <data dir>/lexalign.sqlite].
    #[arg(long)]
    pub db: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct VerifyExportArgs {
    /// A JSONL export (`lex-align audit export --format jsonl`).
    pub file: PathBuf,
    /// Trusted keys: the daemon's `GET /api/v1/keys` answer, saved as is
    /// [default: the key of the daemon on this machine].
    #[arg(long, value_name = "FILE")]
    pub keys: Option<PathBuf>,
}

/// The data directory (where the daemon keeps its signing key).
pub(crate) fn data_dir() -> Option<PathBuf> {
    match lex_align_daemon::Config::from_env() {
        Ok(c) => Some(c.data_dir),
        Err(_) => quickstart::default_data_dir(),
    }
}

/// `--keys FILE`, else the local daemon's public key.
pub(crate) fn trusted_keys(keys: Option<&Path>) -> Result<KeySet, String> {
    match keys {
        Some(path) => {
            let bytes = std::fs::read(path)
                .map_err(|e| format!("cannot read the keys file {}: {e}", path.display()))?;
            KeySet::from_document(&bytes).map_err(|e| format!("{}: {e}", path.display()))
        }
        None => {
            let dir =
                data_dir().ok_or("no data directory: set LEXALIGN_DATA_DIR or pass --keys FILE")?;
            if !DaemonKey::path_in(&dir).exists() {
                return Err(format!(
                    "no signing key at {} (no daemon has run with this data directory): pass --keys FILE, \
                     the daemon's GET /api/v1/keys answer saved as is",
                    DaemonKey::path_in(&dir).display()
                ));
            }
            signing::local_keys(&dir).map_err(|e| e.to_string())
        }
    }
}

/// Opens for writing (filing what a crashed daemon left in the inbox), or
/// read-only beside a running daemon.
fn open(path: &Path) -> Result<Store, String> {
    if !path.is_file() {
        return Err(format!("no audit database at {}", path.display()));
    }
    match Store::open(path) {
        Ok(s) => Ok(s),
        Err(StoreError::InUse(_)) => {
            let s = Store::open_read_only(path)
                .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
            eprintln!(
                "note: a daemon is writing {}; rows it acknowledged in the last few milliseconds may not be filed yet.",
                path.display()
            );
            Ok(s)
        }
        Err(e) => Err(format!("cannot open {}: {e}", path.display())),
    }
}

pub fn export(a: ExportArgs) -> u8 {
    match run_export(a) {
        Ok(()) => 0,
        Err(e) => fail(e),
    }
}

fn run_export(a: ExportArgs) -> Result<(), String> {
    let filter = ExportFilter {
        since: a
            .since
            .as_deref()
            .map(|s| parse_time_bound(s, false))
            .transpose()
            .map_err(|e| format!("--since: {e}"))?,
        until: a
            .until
            .as_deref()
            .map(|s| parse_time_bound(s, true))
            .transpose()
            .map_err(|e| format!("--until: {e}"))?,
        project: a.project.filter(|p| !p.is_empty()),
    };
    let format = match a.format {
        FormatArg::Jsonl => ExportFormat::Jsonl,
        FormatArg::Csv => ExportFormat::Csv,
        FormatArg::Md => ExportFormat::Markdown,
    };
    let key = match format {
        ExportFormat::Jsonl => {
            let dir =
                data_dir().ok_or("no data directory for the signing key: set LEXALIGN_DATA_DIR")?;
            Some(DaemonKey::load_or_create(&dir).map_err(|e| e.to_string())?)
        }
        _ => None,
    };
    let path =
        a.db.or_else(audit::default_db)
            .ok_or("no audit database given: pass --db PATH or set DATABASE_PATH.")?;
    let store = open(&path)?;
    if store.recovery().filed > 0 {
        eprintln!(
            "note: filed {} acknowledged rows a stopped daemon left in the inbox.",
            store.recovery().filed
        );
    }
    let signer = key
        .as_ref()
        .map(|k| k as &dyn lex_align_store::export::CheckpointSigner);

    let summary = match &a.output {
        None => {
            let stdout = std::io::stdout();
            let mut out = BufWriter::with_capacity(1 << 16, stdout.lock());
            store
                .export(format, &filter, &mut out, signer)
                .map_err(|e| e.to_string())?
        }
        Some(file) => {
            // All or nothing: a partial file never carries the final name.
            let dir = file
                .parent()
                .filter(|d| !d.as_os_str().is_empty())
                .unwrap_or(Path::new("."));
            let name = file
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| "export".into());
            let tmp = dir.join(format!(".{name}.{}.partial", std::process::id()));
            let result = (|| {
                let f = std::fs::File::create(&tmp)
                    .map_err(|e| format!("cannot write {}: {e}", tmp.display()))?;
                let mut out = BufWriter::with_capacity(1 << 16, f);
                let s = store
                    .export(format, &filter, &mut out, signer)
                    .map_err(|e| e.to_string())?;
                let f = out
                    .into_inner()
                    .map_err(|e| format!("cannot write {}: {e}", tmp.display()))?;
                f.sync_all()
                    .map_err(|e| format!("cannot write {}: {e}", tmp.display()))?;
                std::fs::rename(&tmp, file)
                    .map_err(|e| format!("cannot write {}: {e}", file.display()))?;
                Ok::<_, String>(s)
            })();
            if result.is_err() {
                let _ = std::fs::remove_file(&tmp);
            }
            result?
        }
    };
    let range = match (summary.first_seq, summary.last_seq) {
        (Some(a), Some(b)) => format!(" (seq {a}–{b})"),
        _ => String::new(),
    };
    let dest = a
        .output
        .as_ref()
        .map_or("stdout".to_string(), |p| p.display().to_string());
    eprintln!("Exported {} rows{range} to {dest}.", summary.rows);
    eprintln!("  head: {}", summary.head_hash);
    if let Some(k) = &key {
        eprintln!("  checkpoint signed by key {}", k.key_id());
    }
    let _ = std::io::stderr().flush();
    Ok(())
}

pub fn verify_export_cmd(a: VerifyExportArgs) -> u8 {
    let keys = match trusted_keys(a.keys.as_deref()) {
        Ok(k) => k,
        Err(e) => return fail(e),
    };
    let file = match std::fs::File::open(&a.file) {
        Ok(f) => f,
        Err(e) => return fail(format!("cannot read {}: {e}", a.file.display())),
    };
    let mut input = BufReader::with_capacity(1 << 16, file);
    let report = match verify_export(&mut input, &keys) {
        Ok(r) => r,
        Err(e) => return fail(format!("cannot read {}: {e}", a.file.display())),
    };
    let name = a.file.display();
    if report.ok {
        let cp = report
            .checkpoint
            .as_ref()
            .expect("a proven export has its checkpoint");
        let mode = report.mode.as_deref().unwrap_or("chain");
        println!(
            "Export {name}: {} rows checked ({}), hash chain OK, checkpoint signed by key {} at {}.",
            report.rows,
            if mode == "chain" {
                "the whole log"
            } else {
                "filtered: each row proven on its own"
            },
            cp.key_id,
            cp.created_at
        );
        println!("  head: {}", report.head_hash);
        if let Some(f) = &report.filters {
            let mut parts = Vec::new();
            if let Some(p) = &f.project {
                parts.push(format!("project {p}"));
            }
            if let Some(s) = &f.since {
                parts.push(format!("since {s}"));
            }
            if let Some(u) = &f.until {
                parts.push(format!("until {u}"));
            }
            if !parts.is_empty() {
                println!("  filters: {}", parts.join(", "));
            }
        }
        if let Some(h) = &cp.log_head {
            println!("  log head when exported: seq {} {}", h.seq, h.hash);
        }
        return 0;
    }
    let p = report
        .problem
        .clone()
        .expect("a failed report names its problem");
    match p.seq {
        Some(seq) => eprintln!(
            "Export {name}: BROKEN at line {} (row seq {seq}); {} rows proven before it.",
            p.line, report.rows
        ),
        None => eprintln!(
            "Export {name}: BROKEN at line {}; {} rows proven before it.",
            p.line, report.rows
        ),
    }
    if let Some(id) = &p.id {
        eprintln!("  row id: {id}");
    }
    eprintln!("  reason: {}", p.reason);
    1
}
