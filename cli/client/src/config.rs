//! `.lexalign.toml`: the six keys of the original client, found by walking up
//! from the working directory. Unlike the original, a broken file is an error
//! that names the file, line and key (W35), never "absent".

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

pub const CONFIG_FILE: &str = ".lexalign.toml";
pub const DEFAULT_SERVER_URL: &str = "http://127.0.0.1:8765";
pub const DEFAULT_API_KEY_ENV_VAR: &str = "LEXALIGN_API_KEY";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    SingleUser,
    Org,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::SingleUser => "single-user",
            Mode::Org => "org",
        }
    }

    pub fn parse(s: &str) -> Option<Mode> {
        match s {
            "single-user" => Some(Mode::SingleUser),
            "org" => Some(Mode::Org),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub project: String,
    pub server_url: String,
    pub mode: Mode,
    pub fail_open: bool,
    pub api_key_env_var: String,
    pub auto_request_approval: bool,
    /// The directory holding `.lexalign.toml` (the project root).
    pub root: PathBuf,
}

impl Config {
    /// The defaults `init` writes for a project and mode.
    pub fn new(project: &str, server_url: &str, mode: Mode, root: &Path) -> Config {
        Config {
            project: project.to_string(),
            server_url: server_url.to_string(),
            mode,
            fail_open: mode == Mode::SingleUser,
            api_key_env_var: DEFAULT_API_KEY_ENV_VAR.to_string(),
            auto_request_approval: mode == Mode::SingleUser,
            root: root.to_path_buf(),
        }
    }

    pub fn path(&self) -> PathBuf {
        self.root.join(CONFIG_FILE)
    }

    /// The file text, keys in the original's order.
    pub fn to_toml(&self) -> String {
        let s = |v: &str| toml::Value::String(v.to_string()).to_string();
        format!(
            "project = {}\nserver_url = {}\nmode = {}\nfail_open = {}\napi_key_env_var = {}\nauto_request_approval = {}\n",
            s(&self.project),
            s(&self.server_url),
            s(self.mode.as_str()),
            self.fail_open,
            s(&self.api_key_env_var),
            self.auto_request_approval
        )
    }

    /// The bearer token, when its variable is set and non-empty. The
    /// original sent it in org mode only; a solo daemon may have
    /// authentication on too, so it is sent whenever it is set.
    pub fn token(&self) -> Option<String> {
        std::env::var(&self.api_key_env_var)
            .ok()
            .filter(|t| !t.trim().is_empty())
    }
}

#[derive(Debug)]
pub enum ConfigError {
    /// No `.lexalign.toml` in the directory or any parent.
    NotFound {
        start: PathBuf,
    },
    Io {
        path: PathBuf,
        message: String,
    },
    /// Not valid TOML.
    Syntax {
        path: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },
    Missing {
        path: PathBuf,
        key: &'static str,
    },
    /// A key with the wrong type or an unknown value.
    Invalid {
        path: PathBuf,
        line: usize,
        key: String,
        message: String,
    },
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::NotFound { .. } => write!(
                f,
                "No .lexalign.toml found. Run `lex-align-client init` first."
            ),
            ConfigError::Io { path, message } => {
                write!(f, "{}: cannot read: {message}", path.display())
            }
            ConfigError::Syntax {
                path,
                line,
                column,
                message,
            } => write!(
                f,
                "{}:{line}:{column}: invalid TOML: {message}",
                path.display()
            ),
            ConfigError::Missing { path, key } => write!(
                f,
                "{}: missing required key `{key}` (add e.g. `{key} = \"my-service\"`, or re-run `lex-align-client init`)",
                path.display()
            ),
            ConfigError::Invalid {
                path,
                line,
                key,
                message,
            } => write!(f, "{}:{line}: `{key}`: {message}", path.display()),
        }
    }
}

impl std::error::Error for ConfigError {}

/// The first directory from `start` upwards that holds `.lexalign.toml`.
pub fn find_project_root(start: &Path) -> Option<PathBuf> {
    start
        .ancestors()
        .find(|d| d.join(CONFIG_FILE).is_file())
        .map(Path::to_path_buf)
}

/// Finds and loads the configuration for a working directory.
pub fn load(start: &Path) -> Result<Config, ConfigError> {
    let root = find_project_root(start).ok_or_else(|| ConfigError::NotFound {
        start: start.to_path_buf(),
    })?;
    let path = root.join(CONFIG_FILE);
    let text = std::fs::read_to_string(&path).map_err(|e| ConfigError::Io {
        path: path.clone(),
        message: e.to_string(),
    })?;
    parse(&text, &root)
}

fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].matches('\n').count() + 1
}

/// Parses the file text of `<root>/.lexalign.toml`.
pub fn parse(text: &str, root: &Path) -> Result<Config, ConfigError> {
    let path = root.join(CONFIG_FILE);
    let table: BTreeMap<String, toml::Spanned<toml::Value>> =
        toml::from_str(text).map_err(|e| {
            let (line, column) = match e.span() {
                Some(span) => {
                    let line = line_of(text, span.start);
                    let line_start = text[..span.start].rfind('\n').map_or(0, |i| i + 1);
                    (line, text[line_start..span.start].chars().count() + 1)
                }
                None => (1, 1),
            };
            ConfigError::Syntax {
                path: path.clone(),
                line,
                column,
                message: e.message().to_string(),
            }
        })?;

    let invalid =
        |key: &str, value: &toml::Spanned<toml::Value>, message: String| ConfigError::Invalid {
            path: path.clone(),
            line: line_of(text, value.span().start),
            key: key.to_string(),
            message,
        };
    let string = |key: &'static str| -> Result<Option<String>, ConfigError> {
        match table.get(key) {
            None => Ok(None),
            Some(v) => match v.get_ref() {
                toml::Value::String(s) => Ok(Some(s.clone())),
                other => Err(invalid(
                    key,
                    v,
                    format!("expected a string, found {}", other.type_str()),
                )),
            },
        }
    };
    let boolean = |key: &'static str| -> Result<Option<bool>, ConfigError> {
        match table.get(key) {
            None => Ok(None),
            Some(v) => match v.get_ref() {
                toml::Value::Boolean(b) => Ok(Some(*b)),
                other => Err(invalid(
                    key,
                    v,
                    format!(
                        "expected true or false, found {} {}",
                        other.type_str(),
                        other
                    ),
                )),
            },
        }
    };

    let project = string("project")?
        .map(|p| p.trim().to_string())
        .ok_or(ConfigError::Missing {
            path: path.clone(),
            key: "project",
        })?;
    if project.is_empty() {
        return Err(invalid(
            "project",
            &table["project"],
            "must not be empty".into(),
        ));
    }
    let server_url = string("server_url")?.unwrap_or_else(|| DEFAULT_SERVER_URL.into());
    if !(server_url.starts_with("http://") || server_url.starts_with("https://")) {
        return Err(invalid(
            "server_url",
            &table["server_url"],
            format!("{server_url:?} is not an http:// or https:// URL"),
        ));
    }
    let mode = match string("mode")? {
        None => Mode::SingleUser,
        Some(m) => Mode::parse(&m).ok_or_else(|| {
            invalid(
                "mode",
                &table["mode"],
                format!("{m:?} is not a mode; use \"single-user\" or \"org\""),
            )
        })?,
    };
    Ok(Config {
        project,
        server_url: server_url.trim_end_matches('/').to_string(),
        mode,
        fail_open: boolean("fail_open")?.unwrap_or(true),
        api_key_env_var: string("api_key_env_var")?
            .unwrap_or_else(|| DEFAULT_API_KEY_ENV_VAR.into()),
        auto_request_approval: boolean("auto_request_approval")?.unwrap_or(mode != Mode::Org),
        root: root.to_path_buf(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_follow_the_original() {
        let c = parse("project = \"svc\"\n", Path::new("/p")).unwrap();
        assert_eq!(c.server_url, DEFAULT_SERVER_URL);
        assert_eq!(c.mode, Mode::SingleUser);
        assert!(c.fail_open && c.auto_request_approval);
        let c = parse("project = \"svc\"\nmode = \"org\"\n", Path::new("/p")).unwrap();
        assert!(!c.auto_request_approval);
    }

    #[test]
    fn round_trips_in_key_order() {
        let c = Config::new("my \"svc\"", "http://h:1", Mode::Org, Path::new("/p"));
        let text = c.to_toml();
        assert!(text.starts_with("project = "));
        let keys: Vec<&str> = text
            .lines()
            .map(|l| l.split(" = ").next().unwrap())
            .collect();
        assert_eq!(
            keys,
            [
                "project",
                "server_url",
                "mode",
                "fail_open",
                "api_key_env_var",
                "auto_request_approval"
            ]
        );
        assert_eq!(parse(&text, Path::new("/p")).unwrap(), c);
    }

    #[test]
    fn errors_name_file_line_and_key() {
        let e = parse("project = \"a\"\nfail_open = \"no\"\n", Path::new("/p")).unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains("/p/.lexalign.toml:2:"), "{msg}");
        assert!(msg.contains("fail_open"), "{msg}");

        let e = parse("server_url = \"http://x\"\n", Path::new("/p")).unwrap_err();
        assert!(matches!(e, ConfigError::Missing { key: "project", .. }));

        let e = parse("project = \"a\"\nmode = [\n", Path::new("/p")).unwrap_err();
        match e {
            ConfigError::Syntax { line, .. } => assert!(line >= 2),
            other => panic!("{other:?}"),
        }
        let e = parse("project = \"a\"\nmode = \"team\"\n", Path::new("/p")).unwrap_err();
        assert!(e.to_string().contains("single-user"));
    }
}
