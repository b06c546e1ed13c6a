#!/usr/bin/env bash
# Here: gather what the GPU machine needs into .gpu/ (ignored; carried by the device tool): the native
# CLI built with `--features wgpu`, and for each model its small files + the safetensors header.
# Usage: bench/gpu/prepare.sh VEER_WGPU_BINARY
set -euo pipefail
cd "$(dirname "$0")/../.."
rm -rf .gpu && mkdir -p .gpu/models
strip -o .gpu/veer "$1" && xz -T2 -6 .gpu/veer   # ~60 MB stripped: compressed to travel
for m in all-minilm-l6-v2 smollm2-135m-instruct; do
  src=www/models/$m; dst=.gpu/models/$m; mkdir -p $dst
  find $src -maxdepth 2 -type f ! -name 'model.safetensors' ! -name 'native-*' | while read -r f; do
    mkdir -p "$dst/$(dirname "${f#$src/}")"; cp "$f" "$dst/${f#$src/}"; done
  python3 - "$src/model.safetensors" > $dst/shapes.json <<'PY'
import json, struct, sys
f = open(sys.argv[1], 'rb'); n = struct.unpack('<Q', f.read(8))[0]; print(f.read(n).decode())
PY
done
du -sh .gpu
