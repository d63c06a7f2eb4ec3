//! Fake upstream servers.
