//! `lex-align lsp`: the language server editors launch (stdio). It finds the
//! daemon the way the client commands do, starts it when it is local and not
//! running, and bridges the editor to an LSP session inside it, so all the
//! editors on a machine share one daemon, cache, registry and audit log.

use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Args;
use lex_align_lsp::bridge::{bridge_stdio, DaemonAddr};

pub const DEFAULT_SERVER_URL: &str = "http://127.0.0.1:8765";
/// How long a freshly started daemon gets to answer `/api/v1/health`.
const START_WAIT: Duration = Duration::from_secs(5);

#[derive(Debug, Args)]
pub struct LspArgs {
    /// The daemon's URL [default: `server_url` from .lexalign.toml in this
    /// directory or a parent, else $LEXALIGN_SERVER_URL, else http://127.0.0.1:8765].
    #[arg(long)]
    pub server_url: Option<String>,
    /// Project name for the audit log [default: `project` from .lexalign.toml,
    /// else each document's folder name].
    #[arg(long)]
    pub project: Option<String>,
    /// Accepted for editors that always pass it; stdio is the only transport.
    #[arg(long, hide = true)]
    pub stdio: bool,
}

/// `server_url` and `project` of the nearest `.lexalign.toml`.
#[derive(Debug, Default, PartialEq)]
struct ProjectConfig {
    server_url: Option<String>,
    project: Option<String>,
}

fn find_project_config(start: &Path) -> Result<(Option<PathBuf>, ProjectConfig), String> {
    for dir in start.ancestors() {
        let path = dir.join(".lexalign.toml");
        if !path.is_file() {
            continue;
        }
        let text = std::fs::read_to_string(&path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let table: toml::Table = text
            .parse()
            .map_err(|e| format!("{} is not valid TOML: {e}", path.display()))?;
        let string = |key: &str| -> Result<Option<String>, String> {
            match table.get(key) {
                None => Ok(None),
                Some(toml::Value::String(s)) if s.trim().is_empty() => Ok(None),
                Some(toml::Value::String(s)) => Ok(Some(s.trim().to_string())),
                Some(other) => Err(format!(
                    "{}: `{key}` must be a string, not {}",
                    path.display(),
                    other.type_str()
                )),
            }
        };
        let config = ProjectConfig {
            server_url: string("server_url")?,
            project: string("project")?,
        };
        return Ok((Some(path), config));
    }
    Ok((None, ProjectConfig::default()))
}

/// Flag, then `.lexalign.toml`, then the environment, then the default;
/// with where the URL came from, for messages.
fn resolve_url(
    flag: Option<String>,
    config: &ProjectConfig,
    config_path: Option<&Path>,
    env: Option<String>,
) -> (String, String) {
    let (url, source) = if let Some(u) = flag {
        (u, "--server-url".to_string())
    } else if let Some(u) = config.server_url.clone() {
        let path = config_path.map_or(".lexalign.toml".into(), |p| p.display().to_string());
        (u, format!("server_url in {path}"))
    } else if let Some(u) = env.filter(|v| !v.trim().is_empty()) {
        (u, "LEXALIGN_SERVER_URL".to_string())
    } else {
        (DEFAULT_SERVER_URL.to_string(), "the default".to_string())
    };
    (url.trim().trim_end_matches('/').to_string(), source)
}

pub fn run(args: LspArgs) -> u8 {
    let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
    let (config_path, config) = match find_project_config(&cwd) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("lex-align lsp: {e}");
            return 1;
        }
    };
    let (url, source) = resolve_url(
        args.server_url,
        &config,
        config_path.as_deref(),
        std::env::var("LEXALIGN_SERVER_URL").ok(),
    );
    let project = args.project.or(config.project);
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("lex-align lsp: cannot start the async runtime: {e}");
            return 1;
        }
    };
    let code = runtime.block_on(async {
        if let Err(e) = ensure_daemon(&url, &source).await {
            eprintln!("lex-align lsp: {e}");
            return 1;
        }
        match bridge_stdio(&url, project.as_deref()).await {
            Ok(()) => 0,
            Err(e) => {
                eprintln!("lex-align lsp: {e}");
                1
            }
        }
    });
    // stdin is read on a blocking thread that only returns on the next
    // input: do not wait for it.
    runtime.shutdown_background();
    code
}

/// Makes sure something listens at `url`: when nothing does and the URL is
/// on this machine, starts `<this exe> daemon` in the background and waits
/// for its health check.
async fn ensure_daemon(url: &str, source: &str) -> Result<(), String> {
    let addr = DaemonAddr::parse(url).map_err(|e| e.to_string())?;
    let refused = match tokio::time::timeout(
        Duration::from_secs(3),
        tokio::net::TcpStream::connect(&addr.authority),
    )
    .await
    {
        Ok(Ok(_)) => return Ok(()),
        Ok(Err(e)) => e,
        Err(_) => {
            return Err(format!(
                "cannot reach the lex-align daemon at {url} (from {source}): no answer within 3 s"
            ))
        }
    };
    if lex_align_client::api::local_address(url).is_none() {
        return Err(format!(
            "cannot reach the lex-align daemon at {url} (from {source}): {refused}. \
             It is on another machine, so it is not started from here: check that it is up and reachable."
        ));
    }
    let url = url.to_string();
    let started = tokio::task::spawn_blocking(move || {
        lex_align_client::api::start_local_daemon(&url, START_WAIT)
    })
    .await
    .map_err(|e| e.to_string())?;
    match started {
        Ok(note) => {
            eprintln!("lex-align lsp: {note}");
            Ok(())
        }
        Err(e) => Err(format!("no lex-align daemon answering ({refused}): {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_nearest_project_config_wins_and_flags_beat_it() {
        let dir = tempfile::tempdir().unwrap();
        let nested = dir.path().join("svc/src");
        std::fs::create_dir_all(&nested).unwrap();
        std::fs::write(
            dir.path().join(".lexalign.toml"),
            "project = \"outer\"\nserver_url = \"http://127.0.0.1:1111\"\n",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("svc/.lexalign.toml"),
            "project = \"svc\"\nserver_url = \"http://127.0.0.1:2222/\"\nmode = \"single_user\"\n",
        )
        .unwrap();
        let (path, c) = find_project_config(&nested).unwrap();
        assert_eq!(
            path.as_deref(),
            Some(dir.path().join("svc/.lexalign.toml").as_path())
        );
        assert_eq!(c.project.as_deref(), Some("svc"));
        let p = path.as_deref();
        let (url, source) = resolve_url(None, &c, p, Some("http://127.0.0.1:3333".into()));
        assert_eq!(url, "http://127.0.0.1:2222");
        assert!(source.ends_with("svc/.lexalign.toml"), "{source}");
        let flag = Some("http://127.0.0.1:4444".into());
        assert_eq!(
            resolve_url(flag, &c, p, None),
            ("http://127.0.0.1:4444".into(), "--server-url".into())
        );
        let none = ProjectConfig::default();
        assert_eq!(
            resolve_url(None, &none, None, Some("http://127.0.0.1:3333".into())),
            ("http://127.0.0.1:3333".into(), "LEXALIGN_SERVER_URL".into())
        );
        assert_eq!(resolve_url(None, &none, None, None).0, DEFAULT_SERVER_URL);
    }

    #[test]
    fn a_broken_project_config_is_named() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(".lexalign.toml"), "server_url = 8765\n").unwrap();
        let e = find_project_config(dir.path()).unwrap_err();
        assert!(e.contains("`server_url` must be a string"), "{e}");
        std::fs::write(dir.path().join(".lexalign.toml"), "server_url = [\n").unwrap();
        let e = find_project_config(dir.path()).unwrap_err();
        assert!(e.contains("is not valid TOML"), "{e}");
    }
}
