#!/usr/bin/env bash
# `make pkg`, once per module: wasm-bindgen (`--target web`) and wasm-opt of the module cargo just built.
#   scripts/wasm-module.sh RAW NAME WASM_OPT [wasm-opt flags...]  ->  pkg/NAME.js, pkg/NAME_bg.wasm
# Skipped when RAW and WASM_OPT are those of the last run (pkg/.source-NAME holds their sha256 and level):
# cargo relinks the same path for both modules, so the stamp, not the file's time, says what pkg/ holds.
set -euo pipefail
raw=$1 name=$2 level=$3
shift 3
stamp="$(sha256sum "$raw" | cut -c1-64) $level"
if [ -f "pkg/${name}_bg.wasm" ] && [ -f "pkg/$name.js" ] && [ "$(cat "pkg/.source-$name" 2>/dev/null)" = "$stamp" ]; then
  echo "==> pkg/${name}_bg.wasm is up to date"
else
  rm -f "pkg/.source-$name"
  wasm-bindgen --target web --out-dir pkg --out-name "$name" "$raw"
  echo "==> wasm-opt $level pkg/${name}_bg.wasm"
  node_modules/.bin/wasm-opt "$level" "$@" "pkg/${name}_bg.wasm" -o "pkg/${name}_bg.wasm"
  echo "$stamp" > "pkg/.source-$name"
fi
ls -l "pkg/${name}_bg.wasm"
