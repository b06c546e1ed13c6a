#!/usr/bin/env bash
# Package the browser extension example: www/extension/ plus the veer library, the wasm module and one
# model, so that the extension carries all its code (Manifest V3 allows no remote code).
# Usage: scripts/extension.sh [OUT_DIR] [MODEL]   (defaults: www/extension, sentiment)
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-www/extension}
model=${2:-sentiment}
src=www/extension
models=${VEER_WWW:-www}/models   # VEER_WWW: another copy of www/ (as the page tests take)

for f in pkg/veer.js pkg/veer_bg.wasm pkg/veer_cpu.js pkg/veer_cpu_bg.wasm pkg/veer-digests.js $models/$model/config.json $models/$model/model.safetensors $models/$model/tokenizer.json; do
  [[ -f $f ]] || { echo "extension: $f is missing (make pkg / make assets)" >&2; exit 1; }
done
mkdir -p "$out"
if [[ $(realpath "$out") != $(realpath "$src") ]]; then
  cp "$src"/manifest.json "$src"/*.js "$src"/*.html "$src"/*.css "$out"/
fi
rm -rf "$out/veer" "$out/models"
mkdir -p "$out/veer/pkg" "$out/models/sentiment"
# The library's modules (all of www/lib/ but veer.d.ts and the pkg link), then both modules and their glue (the device is a setting).
cp www/lib/*.js "$out/veer/"
cp pkg/veer.js pkg/veer_bg.wasm pkg/veer_cpu.js pkg/veer_cpu_bg.wasm pkg/veer-digests.js "$out/veer/pkg/"
# The extension loads models/sentiment/ by default, whichever model is packaged there.
cp $models/$model/config.json $models/$model/model.safetensors $models/$model/tokenizer.json "$out/models/sentiment/"
# sentence-transformers' settings, where the folder has them (the library reads them as the CLI does).
for f in sentence_bert_config.json 1_Pooling/config.json; do
  if [[ -f $models/$model/$f ]]; then
    mkdir -p "$(dirname "$out/models/sentiment/$f")"
    cp "$models/$model/$f" "$out/models/sentiment/$f"
  fi
done
echo "extension: $out ($(du -sh "$out" | cut -f1)), load it unpacked from chrome://extensions"
