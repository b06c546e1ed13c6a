#!/usr/bin/env bash
# There (device tool, one GPU): native veer CPU (all cores) vs wgpu (Vulkan) on MiniLM-L6 and SmolLM2-135M
# shaped random weights. Writes $OUT/gpu.json lines and prints them.
# run: for f in .gl/*.deb; do dpkg -x $f /; done; ldconfig; bash bench/gpu/run.sh
set -uo pipefail
export VK_DRIVER_FILES=${VK_DRIVER_FILES:-/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json}
OUT=${OUT:-/tmp/out}; mkdir -p $OUT
V=.gpu/veer; M=.gpu/models
python3 bench/gpu/random_weights.py $M/all-minilm-l6-v2
python3 bench/gpu/random_weights.py $M/smollm2-135m-instruct 0,1,2
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee $OUT/card.txt
nproc; lscpu | grep -m1 'Model name'
$V device --device wgpu 2>&1 | tee $OUT/device.txt
for len in 16 64; do
  for dev in cpu wgpu; do
    echo "== bench $dev max-len $len"
    timeout 120 $V bench --model $M/all-minilm-l6-v2 --device $dev --max-len $len --batch 1 8 32 128 --batch-size 128 --seconds 3 2>&1 | tee -a $OUT/bench-$dev-$len.txt
  done
done
P="The harbour town woke slowly: fishermen mended nets, a baker opened early, and children ran along the sea wall while gulls argued over scraps."
for dev in cpu wgpu; do
  echo "== generate $dev"
  timeout 120 $V generate --model $M/smollm2-135m-instruct --max-tokens 64 --device $dev --prompt "$P" 2>&1 | tail -c 1500 | tee $OUT/gen-$dev.txt
done
# Agreement on the same random weights: embeddings CPU vs wgpu.
T="a short text about the sea|another sentence that is somewhat longer than the first one, about boats"
for dev in cpu wgpu; do IFS='|' read -ra texts <<< "$T"; $V embed --model $M/all-minilm-l6-v2 --device $dev "${texts[@]}" > $OUT/embed-$dev.json 2>$OUT/embed-$dev.err; done
python3 - $OUT <<'PY'
import json, sys, numpy as np
o = sys.argv[1]
def load(d):
    t = open(f"{o}/embed-{d}.json").read()
    try: return np.array(json.loads(t)["embeddings"], dtype=np.float64)
    except Exception: return np.array([json.loads(l) for l in t.splitlines() if l.strip()], dtype=np.float64)
try:
    a, b = load("cpu"), load("wgpu"); print("embed max |cpu - wgpu| =", float(np.abs(a - b).max()), "shape", a.shape)
except Exception as e: print("embed compare failed:", e)
PY
