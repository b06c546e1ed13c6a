#!/usr/bin/env bash
# There (device tool, one GPU): native veer on the CPU (all cores) vs wgpu (Vulkan), on MiniLM-L6 and
# SmolLM2-135M shaped random weights (bench/gpu/random_weights.py). Every result is one JSON line in
# $OUT/gpu.jsonl; bench/gpu/report.py turns them into the README's table.
# run: for f in .gl/*.deb; do dpkg -x $f /; done; ldconfig; bash bench/gpu/run.sh
set -uo pipefail
export VK_DRIVER_FILES=${VK_DRIVER_FILES:-/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json}
OUT=${OUT:-/tmp/out}; mkdir -p $OUT; J=$OUT/gpu.jsonl; : > $J
M=.gpu/models; V=/tmp/veer
python3 -c "import lzma, shutil; shutil.copyfileobj(lzma.open('.gpu/veer.xz'), open('$V', 'wb'))" && chmod +x $V
python3 bench/gpu/random_weights.py $M/all-minilm-l6-v2
python3 bench/gpu/random_weights.py $M/smollm2-135m-instruct 0,1,2
card=$(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader); cpu=$(lscpu | sed -n 's/^Model name: *//p' | head -1)
echo "{\"kind\":\"machine\",\"gpu\":\"$card\",\"cpu\":\"$cpu\",\"cores\":$(nproc)}" >> $J
echo "{\"kind\":\"device\",\"result\":$($V device --device wgpu)}" >> $J
for len in 16 64; do for dev in cpu wgpu; do
  r=$(timeout 150 $V bench --model $M/all-minilm-l6-v2 --device $dev --max-len $len --batch 1 --batch 8 --batch 32 --batch 128 --batch-size 128 --seconds 2)
  echo "{\"kind\":\"encoder\",\"max_len\":$len,\"result\":$r}" >> $J
done; done
# Decoding: each CLI run pays for shader compilation in its first forwards, so the rates come from two
# runs that differ only in length (prompt or tokens): the difference cancels the one-off costs.
P="The harbour town woke slowly: fishermen mended nets, a baker opened early, and children ran along the sea wall while gulls argued over scraps."
for dev in cpu wgpu; do
  for n in 8 72; do echo "{\"kind\":\"decode\",\"tokens\":$n,\"result\":$(timeout 150 $V generate --model $M/smollm2-135m-instruct --max-tokens $n --device $dev --prompt "$P" | tail -1)}" >> $J; done
  echo "{\"kind\":\"prefill\",\"copies\":4,\"result\":$(timeout 150 $V generate --model $M/smollm2-135m-instruct --max-tokens 1 --device $dev --prompt "$P $P $P $P" | tail -1)}" >> $J
done
T="a short text about the sea|another sentence that is somewhat longer than the first one, about boats"
for dev in cpu wgpu; do IFS='|' read -ra texts <<< "$T"; echo "{\"kind\":\"embed\",\"device\":\"$dev\",\"result\":$($V embed --model $M/all-minilm-l6-v2 --device $dev "${texts[@]}")}" >> $J; done
cat $J | cut -c1-400
