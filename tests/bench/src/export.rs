//! `--only export`: the release `lex-align audit export` as a child
//! process on the reports part's log (seeded when missing) and on a log a
//! tenth its size, JSONL and CSV: rows/s and peak RSS (`/usr/bin/time`'s
//! maximum resident set), so a flat RSS shows as the same figure at both
//! sizes. (`cargo bench -p lex-align-store --bench export` measures the
//! library in process; this is the command an operator runs.)

use std::path::Path;
use std::process::Command;

use anyhow::{bail, Context};

use crate::{figure, Args, Figure};

/// Peak RSS in KiB and seconds of one export.
fn run_export(
    bin: &Path,
    db: &Path,
    format: &str,
    out: &Path,
    data: &Path,
) -> anyhow::Result<(u64, f64)> {
    let o = Command::new("/usr/bin/time")
        .args(["-f", "BENCH %M %e"])
        .arg(bin)
        .args(["audit", "export", "--format", format, "--db"])
        .arg(db)
        .arg("-o")
        .arg(out)
        .env("LEXALIGN_DATA_DIR", data)
        .output()
        .context("/usr/bin/time (apt-get install time)")?;
    let err = String::from_utf8_lossy(&o.stderr);
    if !o.status.success() {
        bail!("audit export --format {format}: {err}");
    }
    let line = err
        .lines()
        .rev()
        .find_map(|l| l.strip_prefix("BENCH "))
        .context("no /usr/bin/time line")?;
    let mut w = line.split_whitespace();
    let kib: u64 = w.next().context("rss")?.parse()?;
    let secs: f64 = w.next().context("secs")?.parse()?;
    Ok((kib, secs))
}

pub async fn export(args: &Args, figures: &mut Vec<Figure>) -> anyhow::Result<()> {
    let Some(bin) = args.daemon_bin.clone() else {
        eprintln!("export skipped: needs --daemon-bin (the release lex-align)");
        return Ok(());
    };
    let dir = tempfile::tempdir()?;
    let big = match &args.keep_db {
        Some(p) => p.clone(),
        None => dir.path().join("big.sqlite"),
    };
    let rows = args.report_rows;
    let small_rows = (rows / 10).max(1);
    let small = dir.path().join("small.sqlite");
    for (db, n) in [(&big, rows), (&small, small_rows)] {
        if !db.exists() {
            eprintln!("export: seeding {n} rows into {}", db.display());
            let path = db.clone();
            tokio::task::spawn_blocking(move || crate::reports::seed(&path, n)).await??;
        }
    }
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data)?;
    let out = dir.path().join("export.out");
    // A first run migrates a file of an older schema and makes the key.
    run_export(&bin, &small, "csv", &out, &data)?;
    for format in ["jsonl", "csv"] {
        let mut rss = Vec::new();
        for (db, n) in [(&small, small_rows), (&big, rows)] {
            let (kib, secs) = run_export(&bin, db, format, &out, &data)?;
            let size = std::fs::metadata(&out)?.len();
            eprintln!("export {format} {n} rows: {secs:.2} s, peak RSS {kib} KiB, {size} bytes");
            rss.push((n, kib, secs, size));
        }
        let (n, kib, secs, size) = rss[1];
        figures.push(figure(
            format!("`lex-align audit export --format {format}` of {n} rows"),
            format!(
                "{:.0} rows/s ({secs:.1} s, {} MiB out); peak RSS {:.1} MiB (at {} rows: {:.1} MiB)",
                n as f64 / secs.max(1e-9),
                size >> 20,
                kib as f64 / 1024.0,
                rss[0].0,
                rss[0].1 as f64 / 1024.0
            ),
            "RSS flat",
            Some(kib <= rss[0].1 + 4096),
        ));
    }
    std::fs::remove_file(&out).ok();
    Ok(())
}
