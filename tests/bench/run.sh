#!/usr/bin/env bash
# Builds the release binaries and runs every benchmark of the daemon-core
# issue against local fake upstreams on 127.0.0.1, printing a table.
# Extra arguments go to lex-align-bench (e.g. --duration 5 --samples 5).
# Not in the default parts: the cost of authentication (issue 9), e.g.
#   tests/bench/run.sh --only auth --concurrency 64 --rounds 4
# nor the evaluate path against a fixed-verdict handler on the same stack
# (issue 13), e.g.
#   tests/bench/run.sh --only warm,limit --duration 10 --rounds 3
# nor team mode (issue 11: a personal daemon following a team server vs a
# standalone, registry propagation, drain of 100,000 queued audit rows), e.g.
#   tests/bench/run.sh --only team --duration 5 --rounds 2
# nor the reports at scale, the CLI export and the signing cost (issue 12), e.g.
#   tests/bench/run.sh --only reports,export --keep-db /tmp/reports-1m.sqlite
#   tests/bench/run.sh --only signing --concurrency 64 --rounds 3
set -euo pipefail
cd "$(dirname "$0")/../.."
command -v wrk >/dev/null || { echo "wrk is missing: apt-get install -y wrk" >&2; exit 1; }
cargo build --release -p lex-align -p lex-align-bench
exec target/release/lex-align-bench --daemon-bin target/release/lex-align "$@"
