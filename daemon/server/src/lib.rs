//! The lex-align daemon: configuration, the evaluation service, registry
//! state and reload, proposers, and the HTTP API.
//!
//! Entry points used by the CLI: [`Config::from_env`] and [`serve`].
