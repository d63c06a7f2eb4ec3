#!/bin/sh
# Headless Neovim end-to-end test of lex-align's language server.
#
#   LEX_ALIGN_BIN=/path/to/lex-align editors/neovim/test/e2e.sh PROJECT_DIR [RESULT_JSON]
#
# Opens PROJECT_DIR/pyproject.toml (or $E2E_FILE, relative to PROJECT_DIR)
# in `nvim --headless` with this plugin, waits for a lex-align diagnostic
# with code `banned`, applies the "Replace … with …" quick fix (or another
# lex-align quickfix with an edit), and checks that the banned diagnostic
# clears and stays cleared. The daemon must be reachable the way
# `lex-align lsp` finds it (the project's .lexalign.toml, the environment, or
# the machine default); this script does not start one.
#
# Environment:
#   LEX_ALIGN_BIN  (required) the lex-align binary; the plugin runs `$LEX_ALIGN_BIN lsp`
#   E2E_FILE       manifest to open, relative to PROJECT_DIR [pyproject.toml]
#   E2E_PACKAGE    the package expected to be banned [any]
#   E2E_LINE       its 1-based line in the file [any]
#   E2E_TIMEOUT    seconds before the run is abandoned [60]
#   E2E_SETTLE_MS  how long the cleared state must hold [1500]
#   E2E_DEBOUNCE_MS  lexAlign.debounceMs for the session [50]
#   E2E_NATIVE     0 = use vim.lsp.start even where vim.lsp.config exists [1]
#   NVIM           the Neovim binary [nvim]
#   E2E_KEEP       1 = keep the scratch directory (Neovim's lsp.log) for debugging
#
# Exit status: 0 pass, 1 fail, 2 usage error, 124 timeout. The result is
# written as JSON to RESULT_JSON (without it: printed, from a scratch file):
# `ok`, `error`, the diagnostics before and after, the code actions offered
# and the line before and after the fix. The manifest on disk is not changed.
set -u

here=$(cd "$(dirname "$0")" && pwd)
plugin=$(cd "$here/.." && pwd)

usage() {
  echo "usage: LEX_ALIGN_BIN=/path/to/lex-align $0 PROJECT_DIR [RESULT_JSON]" >&2
  exit 2
}

[ $# -ge 1 ] || usage
project=$1
[ -d "$project" ] || { echo "e2e: project directory '$project' does not exist" >&2; exit 2; }
project=$(cd "$project" && pwd)

nvim=${NVIM:-nvim}
command -v "$nvim" >/dev/null 2>&1 || { echo "e2e: '$nvim' not found; install Neovim (apt-get install -y neovim)" >&2; exit 2; }

bin=${LEX_ALIGN_BIN:-}
[ -n "$bin" ] || { echo "e2e: set LEX_ALIGN_BIN to the lex-align binary" >&2; exit 2; }
case $bin in
  */*) bin=$(cd "$(dirname "$bin")" && pwd)/$(basename "$bin") ;;
  *) bin=$(command -v "$bin" || true) ;;
esac
[ -n "$bin" ] && [ -x "$bin" ] || { echo "e2e: LEX_ALIGN_BIN '${LEX_ALIGN_BIN}' is not an executable file" >&2; exit 2; }

file=${E2E_FILE:-pyproject.toml}
case $file in
  /*) ;;
  *) file=$project/$file ;;
esac
[ -f "$file" ] || { echo "e2e: '$file' does not exist" >&2; exit 2; }

timeout_s=${E2E_TIMEOUT:-60}
case $timeout_s in
  ''|*[!0-9]*) echo "e2e: E2E_TIMEOUT must be a whole number of seconds" >&2; exit 2 ;;
esac

scratch=$(mktemp -d "${TMPDIR:-/tmp}/lex-align-nvim-e2e.XXXXXX")
result=${2:-$scratch/result.json}
case $result in
  /*) ;;
  *) result=$(pwd)/$result ;;
esac
rm -f "$result"

cleanup() {
  if [ "${E2E_KEEP:-0}" = 1 ]; then
    echo "e2e: scratch directory kept: $scratch" >&2
  else
    rm -rf "$scratch"
  fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# A private config/state so the user's init.lua and plugins stay out, and
# Neovim's lsp.log lands where we can show it.
mkdir -p "$scratch/config" "$scratch/data" "$scratch/state" "$scratch/cache"

# The Lua side gives up a few seconds before the outer timeout, so it can
# still write its result; `timeout` is the backstop against a wedged editor.
lua_budget_ms=$(( timeout_s > 10 ? (timeout_s - 5) * 1000 : timeout_s * 800 ))

XDG_CONFIG_HOME=$scratch/config \
XDG_DATA_HOME=$scratch/data \
XDG_STATE_HOME=$scratch/state \
XDG_CACHE_HOME=$scratch/cache \
E2E_BIN=$bin \
E2E_FILE=$file \
E2E_RESULT=$result \
E2E_TIMEOUT_MS=$lua_budget_ms \
  timeout -k 5 "$timeout_s" "$nvim" --headless -u NONE -i NONE -n \
    --cmd "set runtimepath^=$plugin" \
    -c "luafile $here/e2e.lua" \
    </dev/null
status=$?

if [ $status -eq 124 ] || [ $status -eq 137 ]; then
  echo "e2e: FAIL: Neovim did not finish within ${timeout_s}s" >&2
  if [ ! -s "$result" ]; then
    printf '{"ok":false,"error":"timed out after %ss"}\n' "$timeout_s" >"$result"
  fi
  status=124
elif [ $status -ne 0 ] && [ ! -s "$result" ]; then
  printf '{"ok":false,"error":"nvim exited with status %s before writing a result"}\n' "$status" >"$result"
fi

if [ $status -ne 0 ]; then
  echo "e2e: result ($result):" >&2
  cat "$result" >&2
  for log in "$scratch/cache/nvim/lsp.log" "$scratch/state/nvim/lsp.log"; do
    if [ -s "$log" ]; then
      echo "e2e: last lines of Neovim's $log:" >&2
      tail -n 40 "$log" >&2
    fi
  done
  [ $status -eq 124 ] || status=1
fi
if [ -z "${2:-}" ]; then
  # No result path was given: show it before the scratch directory goes.
  [ $status -ne 0 ] || cat "$result"
fi
exit $status
