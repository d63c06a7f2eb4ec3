#!/usr/bin/env bash
# Builds every fuzz target and runs each for SECONDS (default 30), one after
# the other, then prints per target: runs, exec/s, crashes. Exits non-zero
# on any crash (the input is under tests/fuzz/artifacts/<target>/) or when
# the build fails.
#
#   bash tests/fuzz/run.sh [SECONDS] [TARGET...]
#
# cargo-fuzz needs unstable compiler flags (-Zsanitizer, sancov passes); the
# machine has one stable toolchain, so the script sets RUSTC_BOOTSTRAP=1.
# FUZZ_SANITIZER=none runs without AddressSanitizer (default: address);
# FUZZ_NO_BUILD=1 runs the binaries of the last build (target/fuzz-bin).
# Seeds (tests/fuzz/corpus/<target>, read only) are copied nowhere: the
# inputs a run finds go to target/fuzz-corpus/<target> under this directory.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
secs="${1:-30}"
shift || true
sanitizer="${FUZZ_SANITIZER:-address}"
export RUSTC_BOOTSTRAP=1
export CARGO_BUILD_JOBS="${CARGO_BUILD_JOBS:-2}"

if ! command -v cargo-fuzz >/dev/null 2>&1; then
  echo "==> installing cargo-fuzz (crates.io, into ~/.cargo/bin)"
  cargo install cargo-fuzz --locked --quiet
fi

if (($#)); then
  targets=("$@")
else
  mapfile -t targets < <(cargo fuzz list --fuzz-dir "$here")
fi

logs="$here/target/fuzz-logs"
bin="$here/target/fuzz-bin"
mkdir -p "$logs" "$bin"
if [[ "${FUZZ_NO_BUILD:-}" != 1 ]]; then
  echo "==> cargo fuzz build (sanitizer: $sanitizer)"
  if ! cargo fuzz build --fuzz-dir "$here" --sanitizer "$sanitizer" >"$logs/build.log" 2>&1; then
    tail -n 60 "$logs/build.log"
    echo "fuzz: build failed (full log: $logs/build.log)"
    exit 1
  fi
  # Run copies: a later build (sources edited meanwhile) cannot swap a
  # binary under a running fuzzer.
  for t in "${targets[@]}"; do
    cp "$here/target/x86_64-unknown-linux-gnu/release/$t" "$bin/$t.new" && mv "$bin/$t.new" "$bin/$t"
  done
fi
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_odr_violation=0}"

crashed=0
printf '%-22s %8s %12s %10s %8s\n' target seconds runs exec/s crashes
for t in "${targets[@]}"; do
  work="$here/target/fuzz-corpus/$t"
  seeds="$here/corpus/$t"
  artifacts="$here/artifacts/$t"
  mkdir -p "$work" "$seeds" "$artifacts"
  before=$(find "$artifacts" -type f | wc -l)
  log="$logs/$t.log"
  start=$(date +%s)
  rc=0
  # First corpus dir gets what the run finds; the seeds are only read.
  "$bin/$t" -artifact_prefix="$artifacts/" -max_total_time="$secs" -timeout=20 \
    -rss_limit_mb=4096 -print_final_stats=1 "$work" "$seeds" </dev/null >"$log" 2>&1 || rc=$?
  elapsed=$(($(date +%s) - start))
  runs=$(grep -Eo 'stat::number_of_executed_units: *[0-9]+' "$log" | grep -Eo '[0-9]+$' | tail -1)
  eps=$(grep -Eo 'stat::average_exec_per_sec: *[0-9]+' "$log" | grep -Eo '[0-9]+$' | tail -1)
  new=$(($(find "$artifacts" -type f | wc -l) - before))
  crashes=$new
  if ((rc != 0 && crashes == 0)); then crashes=1; fi
  printf '%-22s %8s %12s %10s %8s\n' "$t" "$elapsed" "${runs:-?}" "${eps:-?}" "$crashes"
  if ((crashes)); then
    crashed=$((crashed + 1))
    grep -E 'panicked at|ERROR: libFuzzer|SUMMARY|Test unit written|^thread' "$log" | head -n 8 | sed 's/^/    /'
    echo "    full log: $log"
  fi
done
echo "fuzz: ${#targets[@]} targets, ${crashed} with crashes"
((crashed == 0))
