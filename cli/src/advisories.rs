//! `lex-align advisories sync`: download the OSV project's PyPI export (a
//! zip of OSV records) into the data directory, with a progress bar on
//! stderr, verified before it replaces the previous copy. The daemon then
//! matches advisories offline against it and re-syncs it on a cadence.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use clap::{Args, Subcommand};
use lex_align_upstream::export::{self, DEFAULT_EXPORT_URL};

use crate::{fail, quickstart, selftest};

#[derive(Debug, Subcommand)]
pub enum AdvisoriesCommand {
    /// Download the OSV PyPI advisory export into DIR/advisories/ (verified; then used offline by the daemon).
    Sync(SyncArgs),
}

#[derive(Debug, Args)]
pub struct SyncArgs {
    /// The data directory [default: $LEXALIGN_DATA_DIR, else ~/.lexalign].
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Where to download from [default: $LEXALIGN_ADVISORY_EXPORT_URL, else the URL of the last sync, else the OSV project's PyPI export].
    #[arg(long)]
    pub url: Option<String>,
}

/// Connecting, and each wait for data; not the whole download.
const TIMEOUT: Duration = Duration::from_secs(30);

pub fn run(command: AdvisoriesCommand) -> u8 {
    match command {
        AdvisoriesCommand::Sync(a) => sync(a),
    }
}

fn env(name: &str) -> Option<String> {
    std::env::var(name)
        .ok()
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty())
}

fn sync(a: SyncArgs) -> u8 {
    let Some(dir) = a.dir.or_else(quickstart::default_data_dir) else {
        return fail("HOME is not set; pass --dir DIR or set LEXALIGN_DATA_DIR.");
    };
    let path = export::export_path(&dir);
    let url = a
        .url
        .or_else(|| env("LEXALIGN_ADVISORY_EXPORT_URL"))
        .or_else(|| export::read_meta(&path).map(|m| m.url))
        .unwrap_or_else(|| DEFAULT_EXPORT_URL.to_owned());
    eprintln!("Downloading the OSV PyPI advisory export");
    eprintln!("  from {url}");
    eprintln!("  into {}", path.display());
    let mut bar = Progress::new(std::io::stderr().is_terminal());
    let result = selftest::runtime().block_on(export::sync_export(
        &url,
        &path,
        TIMEOUT,
        &mut |done, total| bar.update(done, total),
    ));
    bar.finish();
    let synced = match result {
        Ok(s) => s,
        Err(e) => {
            let kept = if path.is_file() {
                " The previous export is kept."
            } else {
                ""
            };
            return fail(format!(
                "advisory sync failed: {e}.{kept} Set LEXALIGN_ADVISORY_EXPORT_URL (or --url) to a reachable copy of the export."
            ));
        }
    };
    println!(
        "Verified {} advisories for {} packages ({}) in {}.",
        synced.meta.records,
        synced.meta.packages,
        mib(synced.meta.bytes),
        synced.path.display()
    );
    if let Some(other) = [
        "LEXALIGN_OSV_URL",
        "OSV_API_URL",
        "LEXALIGN_OFFLINE_ADVISORIES",
    ]
    .into_iter()
    .find(|v| env(v).is_some())
    {
        println!(
            "Note: {other} is set, so a daemon started with it keeps using that source instead."
        );
        return 0;
    }
    let cadence = match resync_hours() {
        Some(h) if h > 0.0 => format!("re-syncs it every {} h", trim_float(h)),
        Some(_) => "does not re-sync it (LEXALIGN_ADVISORY_SYNC_INTERVAL_HOURS=0)".to_owned(),
        None => "re-syncs it every 24 h".to_owned(),
    };
    println!(
        "The daemon matches advisories against it offline (a running one picks it up within a minute) \
         and {cadence} (LEXALIGN_ADVISORY_SYNC_INTERVAL_HOURS)."
    );
    0
}

fn resync_hours() -> Option<f64> {
    env("LEXALIGN_ADVISORY_SYNC_INTERVAL_HOURS").and_then(|h| h.parse().ok())
}

fn trim_float(f: f64) -> String {
    let s = format!("{f:.2}");
    s.trim_end_matches('0').trim_end_matches('.').to_owned()
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}

/// A plain-text progress bar: redrawn in place on a terminal (at most ten
/// times a second), one line per tenth of the download otherwise.
struct Progress {
    tty: bool,
    last_draw: Option<Instant>,
    last_tenth: Option<u64>,
    drawn: bool,
}

const WIDTH: u64 = 30;

impl Progress {
    fn new(tty: bool) -> Progress {
        Progress {
            tty,
            last_draw: None,
            last_tenth: None,
            drawn: false,
        }
    }

    fn line(done: u64, total: Option<u64>) -> String {
        match total.filter(|t| *t > 0) {
            Some(t) => {
                let done = done.min(t);
                let filled = done * WIDTH / t;
                format!(
                    "  [{}{}] {:>3}%  {} / {}",
                    "#".repeat(filled as usize),
                    ".".repeat((WIDTH - filled) as usize),
                    done * 100 / t,
                    mib(done),
                    mib(t)
                )
            }
            None => format!("  {} downloaded", mib(done)),
        }
    }

    fn update(&mut self, done: u64, total: Option<u64>) {
        let mut err = std::io::stderr();
        if self.tty {
            let finished = total.is_some_and(|t| done >= t);
            let due = self
                .last_draw
                .is_none_or(|t| t.elapsed() >= Duration::from_millis(100));
            if due || finished {
                let _ = write!(err, "\r{}\x1b[K", Self::line(done, total));
                let _ = err.flush();
                self.last_draw = Some(Instant::now());
                self.drawn = true;
            }
            return;
        }
        // Not a terminal (a log, CI): a line per tenth, or per 5 MiB when
        // the size is unknown.
        let step = match total.filter(|t| *t > 0) {
            Some(t) => done.min(t) * 10 / t,
            None => done / (5 * 1024 * 1024),
        };
        if self.last_tenth != Some(step) {
            let _ = writeln!(err, "{}", Self::line(done, total));
            self.last_tenth = Some(step);
        }
    }

    fn finish(&mut self) {
        if self.tty && self.drawn {
            eprintln!();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_lines() {
        assert_eq!(
            Progress::line(512 * 1024, Some(1024 * 1024)),
            "  [###############...............]  50%  0.5 MiB / 1.0 MiB"
        );
        assert_eq!(
            Progress::line(3 * 1024 * 1024, None),
            "  3.0 MiB downloaded"
        );
        assert_eq!(trim_float(24.0), "24");
        assert_eq!(trim_float(0.5), "0.5");
    }
}
