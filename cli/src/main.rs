//! `lex-align`: the daemon and its operator commands in one binary.
//!
//! Invoked as `lex-align-server` it behaves as `lex-align server …` (the
//! original server CLI); as `lex-align-client` as `lex-align client …`.

mod admin;
mod advisories;
mod args;
mod audit;
mod check_config;
mod compile;
mod daemon;
mod export;
mod lsp_cmd;
mod plugins;
mod quickstart;
mod selftest;
mod team;
mod verify;

use std::process::ExitCode;

use clap::Parser;

use args::{Cli, Command, Common, RegistryCommand, ServerCommand};

/// Prints `Error: <message>` on stderr (the original's click format) and
/// yields exit code 1.
pub fn fail(message: impl std::fmt::Display) -> u8 {
    eprintln!("Error: {message}");
    1
}

fn main() -> ExitCode {
    let argv = args::normalize_argv(std::env::args_os().collect());
    let cli = Cli::parse_from(argv);
    ExitCode::from(run(cli.command))
}

fn run(command: Command) -> u8 {
    match command {
        Command::Daemon(a) => daemon::run(a.host, a.port, a.reload),
        Command::Common(c) => common(c),
        Command::Lsp(a) => lsp_cmd::run(a),
        Command::Server { command } => match command {
            ServerCommand::Serve(a) => daemon::run(a.host, a.port, a.reload),
            ServerCommand::Init(a) => init(&a.target),
            ServerCommand::Common(c) => common(c),
        },
        Command::Client(a) => lex_align_client::run_args(a.args),
        Command::Verify(a) => verify::run(a),
    }
}

fn common(c: Common) -> u8 {
    match c {
        Common::Quickstart(a) => quickstart::run(a),
        Common::Registry {
            command:
                RegistryCommand::Compile {
                    source,
                    destination,
                },
        } => compile::run(&source, &destination),
        Common::CheckConfig => check_config::run(),
        Common::Selftest(a) => selftest::run(&a.url, a.timeout),
        Common::Audit {
            command: args::AuditCommand::Verify { db },
        } => audit::verify(db),
        Common::Audit {
            command: args::AuditCommand::Export(a),
        } => export::export(a),
        Common::Audit {
            command: args::AuditCommand::VerifyExport(a),
        } => export::verify_export_cmd(a),
        Common::Admin { command } => admin::run(command),
        Common::Advisories { command } => advisories::run(command),
        Common::Team { command } => team::run(command),
        Common::Plugins { command } => plugins::run(command),
    }
}

/// The original wrote a Docker Compose bundle (server + Redis). The daemon is
/// one self-contained binary with its cache in SQLite, so there is nothing to
/// containerise: point operators at `quickstart` instead.
fn init(target: &std::path::Path) -> u8 {
    fail(format!(
        "`init` wrote a Docker Compose bundle for the Python server; this daemon needs no Docker or Redis. \
         Run `lex-align quickstart --target {}` to lay down a registry and audit DB and start the daemon \
         (or `--no-serve` to print the command that starts it).",
        target.display()
    ))
}
