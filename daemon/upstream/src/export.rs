//! The OSV PyPI export kept in the data directory: downloaded by
//! `lex-align advisories sync` (and re-synced by the daemon on a cadence),
//! verified before it replaces the previous copy, used offline.
//!
//! Layout: `<data dir>/advisories/osv-pypi.zip` and, beside it,
//! `osv-pypi.json` saying where it came from, when, and what it holds.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use tokio::io::AsyncWriteExt;

use crate::offline::OfflineAdvisories;

/// Where the OSV project publishes every PyPI advisory as one zip of OSV
/// JSON records (its public bucket; an advisory database, not a package
/// index). `LEXALIGN_ADVISORY_EXPORT_URL` overrides it (a mirror, a test).
pub const DEFAULT_EXPORT_URL: &str =
    "https://osv-vulnerabilities.storage.googleapis.com/PyPI/all.zip";

/// The export's directory under the data directory.
pub const EXPORT_DIR: &str = "advisories";
const EXPORT_FILE: &str = "osv-pypi.zip";
const META_FILE: &str = "osv-pypi.json";

/// `<data dir>/advisories/osv-pypi.zip`.
pub fn export_path(data_dir: &Path) -> PathBuf {
    data_dir.join(EXPORT_DIR).join(EXPORT_FILE)
}

fn meta_path(export: &Path) -> PathBuf {
    export.with_file_name(META_FILE)
}

/// What the sidecar `osv-pypi.json` records about the export.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExportMeta {
    /// The URL it was downloaded from.
    pub url: String,
    /// When the download finished (seconds since the Unix epoch).
    pub synced_at: u64,
    pub records: usize,
    pub packages: usize,
    pub bytes: u64,
}

/// The sidecar of the export at `export`; `None` if missing or unreadable
/// (an export copied in by hand has none: its file time is its age).
pub fn read_meta(export: &Path) -> Option<ExportMeta> {
    let text = std::fs::read_to_string(meta_path(export)).ok()?;
    serde_json::from_str(&text).ok()
}

/// When the export's data was fetched: the sidecar's time, else the file's.
pub fn synced_at(export: &Path) -> Option<u64> {
    read_meta(export).map(|m| m.synced_at).or_else(|| {
        let modified = std::fs::metadata(export).ok()?.modified().ok()?;
        Some(unix(modified))
    })
}

pub(crate) fn unix(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

pub(crate) fn unix_now() -> u64 {
    unix(SystemTime::now())
}

/// A finished sync.
#[derive(Debug)]
pub struct Synced {
    pub path: PathBuf,
    pub meta: ExportMeta,
    /// The verified records, ready to be used without reading the file again.
    pub data: OfflineAdvisories,
}

/// Downloads the export at `url` into `export` (usually
/// [`export_path`]): streamed to a temporary file beside it, verified (a
/// zip of OSV JSON records naming at least one PyPI package), then renamed
/// over the previous copy, so a failed or interrupted sync leaves the old
/// one in place. `progress` is called with (bytes so far, total if known).
/// `timeout` bounds connecting and each wait for data, not the whole
/// download.
pub async fn sync_export(
    url: &str,
    export: &Path,
    timeout: Duration,
    progress: &mut (dyn FnMut(u64, Option<u64>) + Send),
) -> Result<Synced, String> {
    let parsed =
        reqwest::Url::parse(url).map_err(|e| format!("invalid export URL {url:?}: {e}"))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(format!("export URL {url:?} must be http or https"));
    }
    let dir = export
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .ok_or_else(|| format!("{} has no parent directory", export.display()))?;
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;

    let client = reqwest::Client::builder()
        .user_agent(concat!("lex-align/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(timeout)
        .read_timeout(timeout)
        .use_rustls_tls()
        .build()
        .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
    let mut resp = client
        .get(parsed)
        .send()
        .await
        .map_err(|e| format!("cannot download {url}: {}", describe(&e)))?;
    if !resp.status().is_success() {
        return Err(format!("HTTP {} from {url}", resp.status().as_u16()));
    }
    let total = resp.content_length();
    let tmp = dir.join(format!(".{EXPORT_FILE}.{}.partial", std::process::id()));
    let result = async {
        let mut file = tokio::fs::File::create(&tmp)
            .await
            .map_err(|e| format!("cannot write {}: {e}", tmp.display()))?;
        let mut done: u64 = 0;
        progress(0, total);
        while let Some(chunk) = resp
            .chunk()
            .await
            .map_err(|e| format!("download of {url} broke off: {}", describe(&e)))?
        {
            file.write_all(&chunk)
                .await
                .map_err(|e| format!("cannot write {}: {e}", tmp.display()))?;
            done += chunk.len() as u64;
            progress(done, total);
        }
        if let Some(want) = total.filter(|w| *w != done) {
            return Err(format!(
                "download of {url} ended after {done} of {want} bytes"
            ));
        }
        file.sync_all()
            .await
            .map_err(|e| format!("cannot write {}: {e}", tmp.display()))?;
        let check = tmp.clone();
        let data = tokio::task::spawn_blocking(move || OfflineAdvisories::load(&check))
            .await
            .map_err(|e| format!("verification failed: {e}"))?
            .map_err(|e| format!("{url} is not a usable OSV export: {e}"))?;
        if data.package_count() == 0 {
            return Err(format!(
                "{url} is not a PyPI export: none of its {} records names a PyPI package",
                data.record_count()
            ));
        }
        Ok((done, data))
    }
    .await;
    let (bytes, data) = match result {
        Ok(r) => r,
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            return Err(e);
        }
    };
    std::fs::rename(&tmp, export).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        format!("cannot move the export into {}: {e}", export.display())
    })?;
    let meta = ExportMeta {
        url: url.to_owned(),
        synced_at: unix_now(),
        records: data.record_count(),
        packages: data.package_count(),
        bytes,
    };
    write_atomic(
        &meta_path(export),
        serde_json::to_string_pretty(&meta)
            .expect("the sidecar serialises")
            .as_bytes(),
    )?;
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(Synced {
        path: export.to_path_buf(),
        meta,
        data,
    })
}

fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), String> {
    let tmp = path.with_extension(format!("{}.partial", std::process::id()));
    let write = || -> std::io::Result<()> {
        use std::io::Write;
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    };
    write().map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        format!("cannot write {}: {e}", path.display())
    })
}

fn describe(e: &reqwest::Error) -> String {
    let mut msg = if e.is_timeout() {
        "timed out".to_owned()
    } else {
        e.to_string()
    };
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        let text = s.to_string();
        if !msg.contains(&text) {
            msg.push_str(": ");
            msg.push_str(&text);
        }
        source = s.source();
    }
    msg
}

/// "3 h", "2 days", "40 s": a duration for people.
pub fn human_duration(secs: u64) -> String {
    match secs {
        s if s < 120 => format!("{s} s"),
        s if s < 2 * 3600 => format!("{} min", s / 60),
        s if s < 2 * 86_400 => format!("{} h", s / 3600),
        s => format!("{} days", s / 86_400),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_for_people() {
        assert_eq!(human_duration(5), "5 s");
        assert_eq!(human_duration(600), "10 min");
        assert_eq!(human_duration(3 * 3600 + 5), "3 h");
        assert_eq!(human_duration(5 * 86_400), "5 days");
    }

    #[test]
    fn export_lives_under_the_data_dir() {
        let p = export_path(Path::new("/data"));
        assert_eq!(p, Path::new("/data/advisories/osv-pypi.zip"));
        assert_eq!(meta_path(&p), Path::new("/data/advisories/osv-pypi.json"));
    }
}
