//! lex-align client (in progress).
