#!/usr/bin/env bash
# `make package`: the npm package `veer` as a tarball, dist/veer-VERSION.tgz (`npm pack`; not published
# from here). The library's files from www/lib/ (its ES modules and veer.d.ts, at the package root), the
# wasm-bindgen glue and module from pkg/ (or PKG=dir), npm/README.md, the licences, and npm/package.json
# with the version of Cargo.toml.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
pkg=${PKG:-pkg}
version=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -1)
stage=target/npm/veer
rm -rf "$stage" && mkdir -p "$stage/pkg" dist
# Every plain file of www/lib/ (not its pkg link: the files of pkg/ are copied next).
find www/lib -mindepth 1 -maxdepth 1 -type f -exec cp {} "$stage/" \;
cp "$pkg/veer.js" "$pkg/veer_bg.wasm" "$pkg/veer_cpu.js" "$pkg/veer_cpu_bg.wasm" "$pkg/veer-digests.js" "$stage/pkg/"
cp npm/README.md LICENSE-MIT LICENSE-APACHE "$stage/"
node -e 'const fs = require("fs"); const p = JSON.parse(fs.readFileSync("npm/package.json", "utf8")); p.version = process.argv[1]; fs.writeFileSync(process.argv[2], JSON.stringify(p, null, 2) + "\n");' "$version" "$stage/package.json"
rm -f "dist/veer-$version.tgz"
(cd "$stage" && npm pack --pack-destination "$root/dist" --loglevel=error >/dev/null)
tgz=dist/veer-$version.tgz
# Sizes as a server would send each module: raw, gzip -9 and brotli quality 11 (node's zlib).
node -e 'const fs = require("fs"), z = require("zlib");
console.log(`==> ${process.argv[1]}: ${fs.statSync(process.argv[1]).size} bytes`);
for (const f of process.argv.slice(2)) {
  const b = fs.readFileSync(f);
  const br = z.brotliCompressSync(b, { params: { [z.constants.BROTLI_PARAM_QUALITY]: 11, [z.constants.BROTLI_PARAM_SIZE_HINT]: b.length } }).length;
  console.log(`    ${f.split("/").at(-1)}: ${b.length} raw, ${z.gzipSync(b, { level: 9 }).length} gzip -9, ${br} brotli 11`);
}' "$tgz" "$stage/pkg/veer_cpu_bg.wasm" "$stage/pkg/veer_bg.wasm"
