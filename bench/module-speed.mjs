// One wasm module's CPU speed in Node's V8 (the engine and wasm code generation of Chromium), to choose
// how the shipped modules are built (docs/performance.md, "wasm size"): MiniLM q8 embeddings (short
// texts, batch 8, texts/s, the best of 5 runs of 1.5 s) and SmolLM2 q4 greedy decoding (tokens/s, the
// best of 3 runs of 32 tokens after a warm-up run). Prints JSON; asserts nothing.
//
//   node bench/module-speed.mjs PKG_DIR NAME     e.g. node bench/module-speed.mjs pkg veer_cpu
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
const [pkgArg = 'pkg', name = 'veer_cpu'] = process.argv.slice(2);
const pkg = resolve(pkgArg);
const root = new URL('../', import.meta.url).pathname;
const wasm = await import(`${pkg}/${name}.js`);
await wasm.default({ module_or_path: readFileSync(`${pkg}/${name}_bg.wasm`) });
const runtime = await wasm.Runtime.create('cpu');
const load = (dir, roles) => { const f = new wasm.ModelFiles(); for (const [r, n] of roles) f.add(r, n, readFileSync(dir + n)); return f; };
const enc = wasm.Classifier.create(runtime, load(`${root}www/models/all-minilm-l6-v2-q8/`, [['config', 'config.json'], ['weights', 'model.safetensors'], ['tokenizer', 'tokenizer.json']]), {});
const texts = Array.from({ length: 8 }, (_, i) => `A short sentence number ${i} about the weather.`);
for (let i = 0; i < 5; i++) await enc.embed(texts);
const res = [];
for (let r = 0; r < 5; r++) { let n = 0; const t0 = performance.now(); while (performance.now() - t0 < 1500) { await enc.embed(texts); n += 8; } res.push(n / ((performance.now() - t0) / 1000)); }
const gen = wasm.Generator.create(runtime, load(`${root}www/models/smollm2-135m-instruct-q4/`, [['config', 'config.json'], ['weights', 'model.safetensors'], ['tokenizer', 'tokenizer.json'], ['tokenizerConfig', 'tokenizer_config.json']]), 'smollm2', {});
const dec = [];
for (let r = 0; r < 4; r++) {
  await gen.start('The harbour town woke slowly; fishermen mended nets and', { maxTokens: 33, temperature: 0, stopIds: [], chat: false });
  await gen.next(); const t0 = performance.now(); let n = 0; while ((await gen.next()) !== undefined) n++; dec.push(n / ((performance.now() - t0) / 1000));
}
const f = (xs) => `${Math.max(...xs).toFixed(1)} (min ${Math.min(...xs).toFixed(1)})`;
console.log(JSON.stringify({ pkg, encoder: f(res), decode: f(dec.slice(1)) }));
