//! The lex-align client: the commands of the original `lex-align-client`
//! (same flags, JSON and exit codes), the git pre-commit check and the
//! Claude Code hooks, over the daemon's HTTP API.
//!
//! Wiring into a binary: `#[command(subcommand)] ClientCommand` and
//! [`run`]. Exit codes: 0 ok; 2 DENIED (`check`, `audit`) or usage error;
//! 1 errors and a blocked `precommit`.

pub mod api;
pub mod bash;
mod commands;
pub mod config;
pub mod edit;
pub mod hook;
pub mod install;
pub mod project;
pub mod sarif;
mod signed;
pub mod verdict;

use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ModeArg {
    #[value(name = "single-user")]
    SingleUser,
    Org,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum AuditFormat {
    Text,
    Json,
    Sarif,
}

/// The client commands (`lex-align-client …`, `lex-align client …`).
#[derive(Debug, Clone, Subcommand)]
pub enum ClientCommand {
    /// Set up lex-align in this project: .lexalign.toml, Claude Code hooks,
    /// CLAUDE.md section and the git pre-commit hook.
    Init {
        /// Do not prompt; take defaults for anything not given.
        #[arg(short = 'y', long)]
        yes: bool,
        #[arg(long, value_name = "URL")]
        server_url: Option<String>,
        #[arg(long, value_name = "NAME")]
        project: Option<String>,
        #[arg(long, value_enum)]
        mode: Option<ModeArg>,
        #[arg(long)]
        no_claude_hooks: bool,
        #[arg(long)]
        no_precommit: bool,
        #[arg(long)]
        no_claude_md: bool,
    },
    /// Check one package (a name, or a full requirement like 'cryptography>=41').
    Check {
        #[arg(long)]
        package: String,
        #[arg(long)]
        version: Option<String>,
        /// Output JSON (always on; kept for compatibility).
        #[arg(long, default_value_t = true)]
        json: bool,
        #[arg(long)]
        agent_model: Option<String>,
        #[arg(long)]
        agent_version: Option<String>,
        /// Ask the daemon for a signed verdict (a DSSE envelope; `lex-align verify` checks it offline).
        #[arg(long)]
        signed: bool,
        /// With --signed: save the envelope to FILE (the verdict is printed as usual) [default: print the envelope].
        #[arg(short = 'o', long, value_name = "FILE", requires = "signed")]
        output: Option<std::path::PathBuf>,
    },
    /// Ask for a package to be reviewed for the registry.
    RequestApproval {
        #[arg(long)]
        package: String,
        #[arg(long)]
        rationale: String,
        #[arg(long)]
        agent_model: Option<String>,
        #[arg(long)]
        agent_version: Option<String>,
    },
    /// Check every dependency of the project (manifests, requirements, lock files).
    Audit {
        /// Same as `--format json`.
        #[arg(long)]
        json: bool,
        #[arg(long, value_enum)]
        format: Option<AuditFormat>,
        #[arg(long)]
        agent_model: Option<String>,
        #[arg(long)]
        agent_version: Option<String>,
    },
    /// Show configuration, server state, pending approvals and hook state.
    Status {
        #[arg(long)]
        json: bool,
    },
    /// Git pre-commit entry point: checks the staged dependencies.
    Precommit {
        /// Machine-readable report on stdout.
        #[arg(long)]
        json: bool,
    },
    /// Remove the hooks and the CLAUDE.md section init wrote (keeps .lexalign.toml).
    Uninstall {
        #[arg(short = 'y', long)]
        yes: bool,
    },
    /// Agent hook entry point (reads the event JSON on stdin).
    #[command(hide = true)]
    Hook {
        /// session-start, pre-tool-use or session-end
        name: String,
    },
}

/// Names of the client commands, for binaries that also accept them at the top level.
pub fn top_level_commands() -> &'static [&'static str] {
    &[
        "init",
        "check",
        "request-approval",
        "audit",
        "status",
        "precommit",
        "uninstall",
        "hook",
    ]
}

/// Runs a client command; prints its output and returns the exit code.
pub fn run(cmd: ClientCommand) -> ExitCode {
    ExitCode::from(commands::run(cmd) as u8)
}

/// As [`run`], with the numeric exit code (for tests and embedding).
pub fn run_code(cmd: ClientCommand) -> i32 {
    commands::run(cmd)
}

/// The client as a stand-alone command line (`lex-align-client …`).
#[derive(Debug, Parser)]
#[command(
    name = "lex-align-client",
    about = "lex-align client: check Python dependencies against the team's policy daemon."
)]
pub struct ClientCli {
    #[command(subcommand)]
    pub command: ClientCommand,
}

/// Parses and runs client arguments (without the program name), e.g. the
/// words after `lex-align client`. Usage errors print clap's message and
/// give exit code 2; `--help` gives 0.
pub fn run_args<I, T>(args: I) -> u8
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    let argv = std::iter::once(std::ffi::OsString::from("lex-align-client"))
        .chain(args.into_iter().map(Into::into));
    match ClientCli::try_parse_from(argv) {
        Ok(cli) => commands::run(cli.command) as u8,
        Err(e) => {
            let _ = e.print();
            e.exit_code() as u8
        }
    }
}
