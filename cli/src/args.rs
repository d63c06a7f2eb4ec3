//! Command-line grammar (clap derive). The server commands keep the original
//! `lex-align-server` names and flags; `lex-align` adds `daemon` and `audit`.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "lex-align",
    version,
    about = "lex-align: dependency policy daemon and CLI",
    long_about = "lex-align: dependency policy daemon and CLI.\n\n\
                  Also answers as `lex-align-server` (installed under that name, or \
                  `lex-align server …`) and `lex-align-client` (`lex-align client …`)."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the daemon (HTTP API) in the foreground.
    #[command(visible_alias = "serve")]
    Daemon(ServeArgs),
    #[command(flatten)]
    Common(Common),
    /// Language server for editors (stdio), served by the local daemon.
    Lsp(crate::lsp_cmd::LspArgs),
    /// The original `lex-align-server` commands.
    Server {
        #[command(subcommand)]
        command: ServerCommand,
    },
    /// The original `lex-align-client` commands (`check`, `audit`, `hook`, … also work at top level).
    Client(ClientArgs),
    /// Check a signed verdict offline (exit 0 valid, 1 invalid, with why).
    Verify(crate::verify::VerifyArgs),
}

#[derive(Debug, Subcommand)]
pub enum ServerCommand {
    /// Start the daemon (the original `serve`).
    #[command(visible_alias = "daemon")]
    Serve(ServeArgs),
    /// Write the Docker operator bundle (not needed: see `quickstart`).
    Init(InitArgs),
    #[command(flatten)]
    Common(Common),
}

/// Commands shared by `lex-align` and `lex-align-server`.
#[derive(Debug, Subcommand)]
pub enum Common {
    /// Lay down a data directory (starter registry.yml + SQLite audit DB) and run the daemon.
    Quickstart(QuickstartArgs),
    /// Manage the package registry.
    Registry {
        #[command(subcommand)]
        command: RegistryCommand,
    },
    /// Validate the daemon's configuration; exit 1 on any failure.
    CheckConfig,
    /// Probe `/api/v1/health` of a running daemon.
    Selftest(SelftestArgs),
    /// Audit log tools.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// Administrative commands (organization mode).
    Admin {
        #[command(subcommand)]
        command: AdminCommand,
    },
    /// Team mode: the personal daemon's link to its team server.
    Team {
        #[command(subcommand)]
        command: crate::team::TeamCommand,
    },
    /// Advisory data for the vulnerability gate (the OSV PyPI export, offline).
    Advisories {
        #[command(subcommand)]
        command: crate::advisories::AdvisoriesCommand,
    },
    /// Authenticator and proposer plugins (docs/plugins.md).
    Plugins {
        #[command(subcommand)]
        command: crate::plugins::PluginsCommand,
    },
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Bind address (overrides BIND_HOST).
    #[arg(long)]
    pub host: Option<String>,
    /// Bind port (overrides BIND_PORT).
    #[arg(long)]
    pub port: Option<u16>,
    /// Accepted for compatibility; the daemon reloads the registry by itself.
    #[arg(long, hide = true)]
    pub reload: bool,
}

#[derive(Debug, Args)]
pub struct QuickstartArgs {
    /// Directory for the registry + audit DB [default: $LEXALIGN_DATA_DIR or ~/.lexalign].
    #[arg(long)]
    pub target: Option<PathBuf>,
    /// Bind host.
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    /// Bind port.
    #[arg(long, default_value_t = 8765)]
    pub port: u16,
    /// Lay down the directory and exit without starting the daemon.
    #[arg(long)]
    pub no_serve: bool,
    /// Overwrite an existing registry.yml in the target directory.
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, Args)]
pub struct InitArgs {
    /// Directory the original wrote its Docker bundle into.
    #[arg(long, default_value = "./lexalign")]
    pub target: PathBuf,
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, Subcommand)]
pub enum RegistryCommand {
    /// Compile a YAML registry SOURCE to the JSON form at DESTINATION.
    Compile {
        /// The registry YAML (must exist).
        #[arg(value_parser = existing_file)]
        source: PathBuf,
        /// Where to write the compiled JSON (parent directories are created).
        destination: PathBuf,
    },
}

#[derive(Debug, Args)]
pub struct SelftestArgs {
    /// Base URL of the daemon to probe.
    #[arg(long, default_value = "http://127.0.0.1:8765")]
    pub url: String,
    /// Per-request timeout (seconds).
    #[arg(long, default_value_t = 5.0)]
    pub timeout: f64,
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Verify the audit log's hash chain; exit 1 and name the first broken row if it fails.
    Verify {
        /// The SQLite file [default: $DATABASE_PATH, else <data dir>/lexalign.sqlite].
        #[arg(long)]
        db: Option<PathBuf>,
    },
    /// Export the audit log (jsonl: verifiable on its own, closed by a signed checkpoint; csv; md).
    Export(crate::export::ExportArgs),
    /// Prove a JSONL export offline; exit 1 and name the first edited, dropped or reordered row.
    VerifyExport(crate::export::VerifyExportArgs),
}

#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Manage API keys (works beside a running daemon; changes apply within a second).
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// Manage overrides: time-boxed exceptions that let one DENIED package through for one project.
    Overrides {
        #[command(subcommand)]
        command: OverridesCommand,
    },
}

/// Where the access tables live.
#[derive(Debug, Args)]
pub struct DbArg {
    /// The SQLite file [default: $DATABASE_PATH, else <data dir>/lexalign.sqlite].
    #[arg(long)]
    pub db: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Create an API key and print it once (only its hash is stored).
    Create {
        /// Who or what the key is for (recorded as the requester in the audit log).
        #[arg(long)]
        name: String,
        /// agent, developer or operator.
        #[arg(long)]
        role: String,
        /// Only let the key act for this project.
        #[arg(long)]
        project: Option<String>,
        /// Expire the key after this many days [default: never].
        #[arg(long)]
        expires_in_days: Option<u32>,
        /// Print one JSON object (id, name, role, project, key, created_at, expires_at).
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        db: DbArg,
    },
    /// List API keys (never the keys themselves).
    List {
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        db: DbArg,
    },
    /// Revoke an API key by its id (see `list`).
    Revoke {
        id: String,
        #[command(flatten)]
        db: DbArg,
    },
    /// The original's command: an agent key scoped to PROJECT.
    #[command(hide = true)]
    Generate {
        #[arg(long)]
        project: String,
        #[command(flatten)]
        db: DbArg,
    },
}

#[derive(Debug, Subcommand)]
pub enum OverridesCommand {
    /// List active overrides (`--all`: also lapsed and revoked ones).
    List {
        #[arg(long)]
        all: bool,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        db: DbArg,
    },
    /// Let PACKAGE through for one project until a given time.
    Grant {
        package: String,
        #[arg(long)]
        project: String,
        /// Only this exact version [default: any].
        #[arg(long)]
        version: Option<String>,
        /// Why (at least 20 characters; shown in every verdict it changes).
        #[arg(long)]
        justification: String,
        /// When it lapses: an RFC 3339 time or a date (end of that day, UTC); at most 90 days ahead.
        #[arg(long)]
        expires: String,
        /// Who approves it [default: $USER].
        #[arg(long)]
        approver: Option<String>,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        db: DbArg,
    },
    /// Revoke an override by its id.
    Revoke {
        id: String,
        #[command(flatten)]
        db: DbArg,
    },
}

#[derive(Debug, Args)]
pub struct ClientArgs {
    /// The client command and its arguments.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub args: Vec<String>,
}

/// Mirrors click's `Path(exists=True, dir_okay=False)`: a usage error (exit 2).
fn existing_file(s: &str) -> Result<PathBuf, String> {
    let p = PathBuf::from(s);
    if !p.exists() {
        Err(format!("File '{s}' does not exist."))
    } else if p.is_dir() {
        Err(format!("File '{s}' is a directory."))
    } else {
        Ok(p)
    }
}

/// Rewrites argv so the binary behaves as `lex-align server …` when invoked
/// as `lex-align-server` (and likewise for the client).
pub fn normalize_argv(mut argv: Vec<std::ffi::OsString>) -> Vec<std::ffi::OsString> {
    let stem = argv.first().and_then(|a| {
        std::path::Path::new(a)
            .file_stem()
            .map(|s| s.to_os_string())
    });
    let persona = match stem.as_ref().and_then(|s| s.to_str()) {
        Some("lex-align-server") => Some("server"),
        Some("lex-align-client") => Some("client"),
        _ => None,
    };
    if let Some(sub) = persona {
        argv[0] = "lex-align".into();
        argv.insert(1, sub.into());
    } else if is_client_command(&argv) {
        // `lex-align check …` is `lex-align client check …`; only `audit
        // verify|export|verify-export` stay with the audit-log tools.
        argv.insert(1, "client".into());
    }
    argv
}

fn is_client_command(argv: &[std::ffi::OsString]) -> bool {
    let word = |i: usize| argv.get(i).and_then(|a| a.to_str());
    match word(1) {
        Some("audit") => !matches!(word(2), Some("verify" | "export" | "verify-export")),
        Some(w) => lex_align_client::top_level_commands().contains(&w),
        None => false,
    }
}
