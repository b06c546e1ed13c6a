#!/usr/bin/env bash
# There (device tool): burn's `fusion` + `autotune` on wgpu against the plain wgpu build, same machine,
# same random weights as run.sh. .gpu/veer.xz is the plain build, .gpu/veer-fusion.xz the one built with
# `--features wgpu,burn/fusion,burn/autotune`. One JSON line per result in $OUT/fusion.jsonl.
# run: for f in .gl/*.deb; do dpkg -x $f /; done; ldconfig; bash bench/gpu/fusion.sh
set -uo pipefail
export VK_DRIVER_FILES=${VK_DRIVER_FILES:-/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json}
OUT=${OUT:-/tmp/out}; mkdir -p $OUT; J=$OUT/fusion.jsonl; : > $J
M=.gpu/models
for b in veer veer-fusion; do
  python3 -c "import lzma, shutil; shutil.copyfileobj(lzma.open('.gpu/$b.xz'), open('/tmp/$b', 'wb'))" && chmod +x /tmp/$b
done
python3 bench/gpu/random_weights.py $M/all-minilm-l6-v2
python3 bench/gpu/random_weights.py $M/smollm2-135m-instruct 0,1,2
echo "{\"kind\":\"machine\",\"gpu\":\"$(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader)\"}" >> $J
P="The harbour town woke slowly: fishermen mended nets, a baker opened early, and children ran along the sea wall while gulls argued over scraps."
for b in veer veer-fusion veer veer-fusion; do
  for len in 16 64; do
    r=$(timeout 120 /tmp/$b bench --model $M/all-minilm-l6-v2 --device wgpu --max-len $len --batch 1 --batch 8 --batch 32 --batch 128 --batch-size 128 --seconds 2)
    echo "{\"kind\":\"encoder\",\"binary\":\"$b\",\"max_len\":$len,\"result\":${r:-null}}" >> $J
  done
  for n in 8 72; do
    r=$(timeout 120 /tmp/$b generate --model $M/smollm2-135m-instruct --max-tokens $n --device wgpu --prompt "$P" | tail -1)
    echo "{\"kind\":\"decode\",\"binary\":\"$b\",\"tokens\":$n,\"result\":${r:-null}}" >> $J
  done
done
T="a short text about the sea|another sentence that is somewhat longer than the first one, about boats"
IFS='|' read -ra texts <<< "$T"
for b in veer veer-fusion; do echo "{\"kind\":\"embed\",\"binary\":\"$b\",\"result\":$(/tmp/$b embed --model $M/all-minilm-l6-v2 --device wgpu "${texts[@]}")}" >> $J; done
cut -c1-300 $J
