#!/usr/bin/env bash
# Install what `make demo` / `make test` need on a fresh machine (Rust, Node and Python present).
# Each step checks first, so a second run does nothing.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
say() { printf '\033[1m==> %s\033[0m\n' "$*"; }
sudo=""; [ "$(id -u)" = 0 ] || sudo=sudo

if ! rustup target list --installed | grep -q '^wasm32-unknown-unknown$'; then
  say "adding the wasm32-unknown-unknown Rust target"
  rustup target add wasm32-unknown-unknown
fi

want=0.2.130   # must equal the wasm-bindgen pinned in Cargo.toml
if [ "$(wasm-bindgen --version 2>/dev/null | cut -d' ' -f2)" != "$want" ]; then
  say "installing wasm-bindgen-cli $want (a few minutes, once)"
  cargo install wasm-bindgen-cli --version "$want"
fi

if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then
  say "installing Debian's chromium and chromium-driver (headless browser tests with WebGPU)"
  $sudo apt-get update -q
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q chromium chromium-driver
fi

# npm: binaryen (wasm-opt; Debian's binaryen 108 breaks this module), playwright-core (page tests), vite, webpack and
# esbuild (bundler tests),
# typescript (tsc --strict on tests/types).
if [ ! -x "$root/node_modules/.bin/wasm-opt" ] || [ "$root/package-lock.json" -nt "$root/node_modules/.package-lock.json" ]; then
  say "installing node packages (binaryen, playwright-core, vite, webpack, esbuild, typescript)"
  (cd "$root" && npm ci --no-audit --no-fund --loglevel=error)
fi
