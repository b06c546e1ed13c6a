#!/usr/bin/env bash
# llama-cpp-python's OpenAI-compatible server in .cache/server-venv, for `make test-server` and
# `make bench-teacher`. PyPI has only its source: the first run compiles llama.cpp (≈ 14 min on 2 cores);
# the wheel is kept in .cache/wheels, so a new venv later takes seconds.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cache=${VEER_CACHE:-$root/.cache}
venv=$cache/server-venv
version=0.3.36
say() { printf '\033[1m==> %s\033[0m\n' "$*"; }

if [ -x "$venv/bin/python" ] && "$venv/bin/python" -c "import llama_cpp, llama_cpp.server, sys; sys.exit(llama_cpp.__version__ != '$version')" 2>/dev/null; then
  exit 0
fi
mkdir -p "$cache/wheels"
whl=$(ls "$cache"/wheels/llama_cpp_python-$version-*.whl 2>/dev/null | head -1 || true)
if [ -z "$whl" ]; then
  say "building llama-cpp-python $version from source (≈ 14 min on 2 cores, once)"
  CMAKE_BUILD_PARALLEL_LEVEL=$(nproc) python3 -m pip wheel --no-deps -q -w "$cache/wheels" "llama-cpp-python==$version"
  whl=$(ls "$cache"/wheels/llama_cpp_python-$version-*.whl | head -1)
fi
say "installing llama-cpp-python $version with its server into ${venv#"$root"/}"
rm -rf "$venv"
python3 -m venv "$venv"
"$venv/bin/pip" install -q "llama_cpp_python[server] @ file://$whl"
