#!/bin/sh
# The plugin's own logic in headless Neovim (no lex-align binary needed).
set -u
here=$(cd "$(dirname "$0")" && pwd)
nvim=${NVIM:-nvim}
exec timeout -k 5 60 "$nvim" --headless -u NONE -i NONE -n \
  --cmd "set runtimepath^=$here/.." \
  -c "luafile $here/unit.lua" </dev/null
