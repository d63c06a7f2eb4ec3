//! Offline advisories: a directory tree of OSV records (JSON or YAML, e.g.
//! the PyPA advisory database) or an OSV export zip, indexed at load by
//! canonical PyPI package name.

use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use lex_align_engine::advisory::{parse_osv_json, parse_osv_yaml, OsvRecord};

use crate::canonical_name;

#[derive(Debug, Clone, Default)]
pub struct OfflineAdvisories {
    by_package: HashMap<String, Vec<OsvRecord>>,
    records: usize,
    /// The newest `modified` stamp of the records (Unix seconds): how
    /// current the data is.
    newest_modified: Option<u64>,
    /// Files that could not be parsed (reported, not fatal: one bad record
    /// in a large snapshot must not disable all the others).
    skipped: Vec<(PathBuf, String)>,
}

/// `Some(true)` for YAML, `Some(false)` for JSON, `None` for other files.
fn record_format(path: &Path) -> Option<bool> {
    match path.extension()?.to_str()?.to_ascii_lowercase().as_str() {
        "json" => Some(false),
        "yaml" | "yml" => Some(true),
        _ => None,
    }
}

fn parse_file(path: &Path) -> Result<OsvRecord, String> {
    let text = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
    if record_format(path) == Some(true) {
        parse_osv_yaml(&text)
    } else {
        parse_osv_json(&text)
    }
}

impl OfflineAdvisories {
    /// Loads a directory (recursively; `*.json`, `*.yaml`, `*.yml`) or a
    /// `.zip` of JSON records. Errors only when the source itself cannot be
    /// read or holds no record at all.
    pub fn load(path: &Path) -> Result<OfflineAdvisories, String> {
        let mut out = OfflineAdvisories::default();
        let meta = std::fs::metadata(path)
            .map_err(|e| format!("offline advisories {}: {e}", path.display()))?;
        if meta.is_dir() {
            out.load_dir(path)?;
        } else {
            out.load_zip(path)?;
        }
        if out.records == 0 {
            return Err(format!(
                "offline advisories {}: no OSV record found ({} unreadable)",
                path.display(),
                out.skipped.len()
            ));
        }
        for records in out.by_package.values_mut() {
            records.sort_by(|a, b| a.id.cmp(&b.id));
        }
        if !out.skipped.is_empty() {
            tracing::warn!(
                skipped = out.skipped.len(),
                first = %out.skipped[0].1,
                "some offline advisory files could not be parsed"
            );
        }
        tracing::info!(records = out.records, packages = out.by_package.len(), source = %path.display(), "offline advisories loaded");
        Ok(out)
    }

    fn load_dir(&mut self, root: &Path) -> Result<(), String> {
        let mut files = Vec::new();
        let mut stack = vec![root.to_path_buf()];
        while let Some(dir) = stack.pop() {
            let entries = std::fs::read_dir(&dir)
                .map_err(|e| format!("offline advisories {}: {e}", dir.display()))?;
            for entry in entries {
                let path = entry
                    .map_err(|e| format!("offline advisories {}: {e}", dir.display()))?
                    .path();
                if path.is_dir() {
                    stack.push(path);
                } else if record_format(&path).is_some() {
                    files.push(path);
                }
            }
        }
        files.sort();
        // YAML parsing dominates start-up on the PyPA snapshot (~2.7k
        // files): spread it over the cores.
        let workers = std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .min(8);
        let chunk = files.len().div_ceil(workers).max(1);
        let parsed: Vec<Vec<(PathBuf, Result<OsvRecord, String>)>> = std::thread::scope(|scope| {
            let handles: Vec<_> = files
                .chunks(chunk)
                .map(|part| {
                    scope.spawn(move || part.iter().map(|p| (p.clone(), parse_file(p))).collect())
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("parser thread panicked"))
                .collect()
        });
        for (path, result) in parsed.into_iter().flatten() {
            match result {
                Ok(record) => self.add(record),
                Err(e) => self.skipped.push((path, e)),
            }
        }
        Ok(())
    }

    fn load_zip(&mut self, path: &Path) -> Result<(), String> {
        let file = std::fs::File::open(path)
            .map_err(|e| format!("offline advisories {}: {e}", path.display()))?;
        let mut zip = zip::ZipArchive::new(std::io::BufReader::new(file)).map_err(|e| {
            format!(
                "offline advisories {}: not a zip archive: {e}",
                path.display()
            )
        })?;
        for i in 0..zip.len() {
            let mut entry = zip
                .by_index(i)
                .map_err(|e| format!("offline advisories {}: {e}", path.display()))?;
            if !entry.is_file() || !entry.name().ends_with(".json") {
                continue;
            }
            let name = PathBuf::from(entry.name());
            let mut text = String::new();
            let parsed = entry
                .read_to_string(&mut text)
                .map_err(|e| e.to_string())
                .and_then(|_| parse_osv_json(&text));
            match parsed {
                Ok(record) => self.add(record),
                Err(e) => self.skipped.push((name, e)),
            }
        }
        Ok(())
    }

    fn add(&mut self, record: OsvRecord) {
        self.records += 1;
        if let Some(t) = record.modified.as_deref().and_then(rfc3339_unix) {
            self.newest_modified = Some(self.newest_modified.map_or(t, |n| n.max(t)));
        }
        let mut names: Vec<String> = record
            .affected
            .iter()
            .filter_map(|a| a.package.as_ref())
            .filter(|p| p.ecosystem.eq_ignore_ascii_case("PyPI"))
            .filter_map(|p| canonical_name(&p.name))
            .collect();
        names.sort();
        names.dedup();
        for name in names {
            self.by_package
                .entry(name)
                .or_default()
                .push(record.clone());
        }
    }

    /// Every record that names the package (any spelling) as affected.
    pub fn for_package(&self, name: &str) -> Vec<OsvRecord> {
        canonical_name(name)
            .and_then(|n| self.by_package.get(&n).cloned())
            .unwrap_or_default()
    }

    /// Records loaded (each counted once, however many packages it names).
    pub fn record_count(&self) -> usize {
        self.records
    }

    /// Canonical names of every package the records name.
    pub fn package_names(&self) -> Vec<String> {
        self.by_package.keys().cloned().collect()
    }

    pub fn package_count(&self) -> usize {
        self.by_package.len()
    }

    /// The newest `modified` time of the records (Unix seconds).
    pub fn newest_modified(&self) -> Option<u64> {
        self.newest_modified
    }

    /// Files that could not be parsed, with the reason.
    pub fn skipped(&self) -> &[(PathBuf, String)] {
        &self.skipped
    }
}

fn rfc3339_unix(s: &str) -> Option<u64> {
    let t = time::OffsetDateTime::parse(s.trim(), &time::format_description::well_known::Rfc3339)
        .ok()?;
    u64::try_from(t.unix_timestamp()).ok()
}
