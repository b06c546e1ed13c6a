#!/usr/bin/env bash
# What `make bench-compare` measures veer against, installed offline-capable and once:
#  - bench/contenders: transformers.js and wllama from npm (--ignore-scripts: transformers.js' node
#    postinstall downloads from the network and is not needed in a browser);
#  - .cache/bench-venv: numpy + onnx, to write the fp32 ONNX of veer's own all-MiniLM-L6-v2 weights
#    (bench/onnx_export.py) into .cache/bench/tjs/, the folder layout transformers.js loads offline.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
say() { printf '\033[1m==> %s\033[0m\n' "$*"; }
cd "$root"
if [ ! -d bench/contenders/node_modules/@wllama ] || [ bench/contenders/package-lock.json -nt bench/contenders/node_modules/.package-lock.json ]; then
  say "installing the bench contenders (transformers.js, wllama)"
  (cd bench/contenders && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error)
fi
venv=.cache/bench-venv
if ! "$venv/bin/python" -c 'import numpy, onnx' 2>/dev/null; then
  say "creating $venv (numpy, onnx)"
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q numpy==2.2.6 onnx==1.17.0
fi
src=www/models/all-minilm-l6-v2
out=.cache/bench/tjs/all-minilm-l6-v2
stamp="$(sha256sum "$src/model.safetensors" bench/onnx_export.py | sha256sum | cut -c1-64)"
if [ "$(cat "$out/.source" 2>/dev/null)" != "$stamp" ]; then
  say "exporting $src to fp32 ONNX -> $out"
  rm -rf "$out"
  "$venv/bin/python" bench/onnx_export.py "$src" "$out"
  echo "$stamp" > "$out/.source"
fi
