//! Where the package index is: lex-align's own variable, the original
//! server's `PYPI_API_URL`, then the user's uv and pip settings. No index
//! host is built in: with nothing configured the caller reports it.

use std::path::{Path, PathBuf};

use crate::IndexKind;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexSetting {
    pub url: String,
    pub kind: IndexKind,
    /// Which setting it came from, for `check-config` and logs, e.g.
    /// `UV_DEFAULT_INDEX` or `/home/me/.config/pip/pip.conf [global] index-url`.
    pub source: String,
}

/// The variable a user should set when [`discover_index`] finds nothing.
pub const INDEX_URL_VAR: &str = "LEXALIGN_INDEX_URL";

/// First configured index, in this order: `LEXALIGN_INDEX_URL`,
/// `PYPI_API_URL` (a JSON-API root), `UV_DEFAULT_INDEX`, `UV_INDEX_URL`,
/// `uv.toml` (cwd and its ancestors, then the user's), `PIP_INDEX_URL`,
/// `pip.conf` (`$PIP_CONFIG_FILE`, user files, `/etc/pip.conf`).
///
/// `env` reads environment variables (injected so tests need not mutate
/// the process environment); `home` and `cwd` locate the config files.
pub fn discover_index(
    env: &dyn Fn(&str) -> Option<String>,
    home: Option<&Path>,
    cwd: Option<&Path>,
) -> Option<IndexSetting> {
    discover_index_with(env, home, cwd, Some(Path::new(SYSTEM_PIP_CONF)))
}

/// The system-wide pip configuration read last by [`discover_index`].
pub const SYSTEM_PIP_CONF: &str = "/etc/pip.conf";

/// [`discover_index`] with the system-wide pip file given explicitly
/// (`None` skips it), so tests do not depend on the machine's `/etc`.
pub fn discover_index_with(
    env: &dyn Fn(&str) -> Option<String>,
    home: Option<&Path>,
    cwd: Option<&Path>,
    system_pip_conf: Option<&Path>,
) -> Option<IndexSetting> {
    let var = |name: &str| {
        env(name)
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    };

    if let Some(url) = var(INDEX_URL_VAR) {
        return Some(setting(url, lexalign_kind, INDEX_URL_VAR.to_owned()));
    }
    if let Some(url) = var("PYPI_API_URL") {
        return Some(IndexSetting {
            url,
            kind: IndexKind::Json,
            source: "PYPI_API_URL".to_owned(),
        });
    }
    for name in ["UV_DEFAULT_INDEX", "UV_INDEX_URL"] {
        if let Some(url) = var(name) {
            return Some(setting(url, installer_kind, name.to_owned()));
        }
    }
    for file in uv_config_files(&var, home, cwd) {
        if let Some((url, key)) = read_uv_toml(&file) {
            return Some(setting(
                url,
                installer_kind,
                format!("{} {key}", file.display()),
            ));
        }
    }
    if let Some(url) = var("PIP_INDEX_URL") {
        return Some(setting(url, installer_kind, "PIP_INDEX_URL".to_owned()));
    }
    for file in pip_config_files(&var, home, system_pip_conf) {
        if let Some(url) = read_pip_conf(&file) {
            return Some(setting(
                url,
                installer_kind,
                format!("{} [global] index-url", file.display()),
            ));
        }
    }
    None
}

fn setting(url: String, kind: fn(&str) -> IndexKind, source: String) -> IndexSetting {
    IndexSetting {
        kind: kind(&url),
        url,
        source,
    }
}

fn ends_in_simple(url: &str) -> bool {
    let path = url.split(['?', '#']).next().unwrap_or(url);
    path.trim_end_matches('/').ends_with("/simple")
}

/// Our own variable may name either kind of root.
fn lexalign_kind(url: &str) -> IndexKind {
    if ends_in_simple(url) {
        IndexKind::Auto
    } else {
        IndexKind::Json
    }
}

/// uv and pip settings always name a simple index; one ending in `/simple`
/// may also have a JSON API next to it, which `Auto` probes for.
fn installer_kind(url: &str) -> IndexKind {
    if ends_in_simple(url) {
        IndexKind::Auto
    } else {
        IndexKind::Simple
    }
}

fn uv_config_files(
    var: &dyn Fn(&str) -> Option<String>,
    home: Option<&Path>,
    cwd: Option<&Path>,
) -> Vec<PathBuf> {
    let mut files = Vec::new();
    // uv uses the nearest project-level uv.toml, then the user-level one.
    if let Some(found) = cwd.and_then(|cwd| {
        cwd.ancestors()
            .map(|d| d.join("uv.toml"))
            .find(|f| f.is_file())
    }) {
        files.push(found);
    }
    if let Some(xdg) = var("XDG_CONFIG_HOME") {
        files.push(Path::new(&xdg).join("uv/uv.toml"));
    }
    if let Some(home) = home {
        files.push(home.join(".config/uv/uv.toml"));
    }
    files
}

fn pip_config_files(
    var: &dyn Fn(&str) -> Option<String>,
    home: Option<&Path>,
    system: Option<&Path>,
) -> Vec<PathBuf> {
    let mut files = Vec::new();
    if let Some(file) = var("PIP_CONFIG_FILE") {
        files.push(PathBuf::from(file));
    }
    if let Some(xdg) = var("XDG_CONFIG_HOME") {
        files.push(Path::new(&xdg).join("pip/pip.conf"));
    }
    if let Some(home) = home {
        files.push(home.join(".config/pip/pip.conf"));
        files.push(home.join(".pip/pip.conf"));
    }
    files.extend(system.map(Path::to_path_buf));
    files
}

/// The `[[index]]` entry with `default = true`, else `index-url = "…"` (the
/// older top-level key), else `[pip] index-url`. An unreadable or malformed file is skipped, as uv
/// itself would refuse it and the user sees that elsewhere.
fn read_uv_toml(path: &Path) -> Option<(String, &'static str)> {
    let text = std::fs::read_to_string(path).ok()?;
    let doc: toml::Table = text.parse().ok()?;
    if let Some(indexes) = doc.get("index").and_then(toml::Value::as_array) {
        let default = indexes
            .iter()
            .filter_map(toml::Value::as_table)
            .find(|t| t.get("default").and_then(toml::Value::as_bool) == Some(true));
        if let Some(url) = default
            .and_then(|t| t.get("url"))
            .and_then(toml::Value::as_str)
        {
            return Some((url.to_owned(), "[[index]] default url"));
        }
    }
    if let Some(url) = doc.get("index-url").and_then(toml::Value::as_str) {
        return Some((url.to_owned(), "index-url"));
    }
    // `uv pip` reads its own section.
    doc.get("pip")
        .and_then(|p| p.get("index-url"))
        .and_then(toml::Value::as_str)
        .map(|url| (url.to_owned(), "[pip] index-url"))
}

fn read_pip_conf(path: &Path) -> Option<String> {
    let text = std::fs::read_to_string(path).ok()?;
    ini_value(&text, "global", "index-url")
}

/// The value of `key` in `[section]` of an INI file as pip reads it
/// (configparser: `=` or `:` separators, `#`/`;` comment lines, keys
/// case-insensitive, `_` and `-` alike, indented lines continue a value).
fn ini_value(text: &str, section: &str, key: &str) -> Option<String> {
    let norm = |k: &str| k.trim().to_ascii_lowercase().replace('_', "-");
    let want = norm(key);
    let mut in_section = false;
    let mut found: Option<String> = None;
    let mut continuing = false;
    for line in text.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with('#') || trimmed.starts_with(';') {
            continue;
        }
        if continuing && !trimmed.is_empty() && line.starts_with([' ', '\t']) {
            // pip allows a list of URLs over several lines; the first one is
            // the index, the rest would be extra indexes.
            if let Some(v) = found.as_mut().filter(|v| v.is_empty()) {
                *v = trimmed.to_owned();
            }
            continue;
        }
        continuing = false;
        if let Some(name) = trimmed.strip_prefix('[').and_then(|s| s.strip_suffix(']')) {
            in_section = name.trim().eq_ignore_ascii_case(section);
            continue;
        }
        if !in_section {
            continue;
        }
        let Some(idx) = trimmed.find(['=', ':']) else {
            continue;
        };
        // `index-url: http://…`: split at the first separator only.
        let (k, v) = trimmed.split_at(idx);
        if norm(k) == want {
            let v = v[1..].trim();
            found = Some(v.split_whitespace().next().unwrap_or("").to_owned());
            continuing = true;
        }
    }
    found.filter(|v| !v.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ini_parsing() {
        let text = "# comment\n[install]\nindex-url = http://wrong/simple\n\n[global]\ntimeout = 60\nINDEX_URL: http://right/simple/\n";
        assert_eq!(
            ini_value(text, "global", "index-url").as_deref(),
            Some("http://right/simple/")
        );
        let cont = "[global]\nindex-url =\n    http://first/simple\n    http://second/simple\n";
        assert_eq!(
            ini_value(cont, "global", "index-url").as_deref(),
            Some("http://first/simple")
        );
        assert_eq!(
            ini_value("[global]\ntimeout=1\n", "global", "index-url"),
            None
        );
    }

    #[test]
    fn kinds() {
        assert_eq!(installer_kind("http://h/simple/"), IndexKind::Auto);
        assert_eq!(
            installer_kind("http://h/root/pypi/+simple/"),
            IndexKind::Simple
        );
        assert_eq!(lexalign_kind("http://h/pypi"), IndexKind::Json);
        assert_eq!(lexalign_kind("http://h/simple"), IndexKind::Auto);
    }
}
