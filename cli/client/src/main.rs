//! `lex-align-client`: the client commands as their own small binary (the
//! `lex-align` binary offers the same commands).

fn main() -> std::process::ExitCode {
    std::process::ExitCode::from(lex_align_client::run_args(std::env::args_os().skip(1)))
}
