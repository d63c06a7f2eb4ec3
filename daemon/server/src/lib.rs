//! The lex-align daemon.
