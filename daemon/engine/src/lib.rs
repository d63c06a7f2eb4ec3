//! The pure evaluation core of lex-align.
//!
//! Everything here is deterministic and free of I/O and async: the daemon,
//! the LSP server, the CLI and the hooks all share it. Upstream facts (index
//! metadata, advisories) are fetched by the caller and handed in as values.
//!
//! Flow of one evaluation:
//! 1. [`request::EvalRequest::parse`] validates the caller's input (4xx on error).
//! 2. [`evaluate::plan`] decides from the registry alone whether upstream facts
//!    are needed (a banned package is denied without any network call).
//! 3. The caller fetches what the plan asks for, concurrently.
//! 4. [`evaluate::decide`] turns registry + facts into a [`verdict::Verdict`].

pub mod advisory;
pub mod evaluate;
pub mod license;
pub mod name;
pub mod registry;
pub mod request;
mod spdx_expr;
pub mod verdict;

// The shared test fixtures (registry text, pyproject), from their one copy
// in the fakes crate: std-only, so included rather than depended on.
#[cfg(test)]
#[path = "../../../tests/fakes/src/fixtures.rs"]
mod fixtures;
