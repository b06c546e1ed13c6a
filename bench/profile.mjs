// Where the encoder's time goes on the browser's CPU path: the wasm module (with its function names:
// `make bench-profile` builds it without wasm-opt, which would drop them) runs all-MiniLM-L6-v2 in
// Node's V8 (the same engine and wasm SIMD128 code generation as Chromium), under V8's sampling
// profiler; prints each function's share of the time spent in the forward pass (self time), and the
// veer/burn functions' inclusive shares. Measures; asserts nothing.
//
//   node bench/profile.mjs [--pkg .cache/prof-pkg] [--batch 8] [--len 16] [--runs 20]
//
// UNDER=NAME (environment) counts the samples under another function instead of `Bert::forward`;
// `UNDER='(root)'` counts everything, e.g. the per-call overhead outside the forward.
import { readFileSync } from 'node:fs';
import { Session } from 'node:inspector/promises';

const args = process.argv.slice(2);
const opt = (name, fallback) => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : fallback;
};
const root = new URL('../', import.meta.url).pathname;
const pkg = opt('--pkg', `${root}.cache/prof-pkg`);
const batch = Number(opt('--batch', 8));
const len = Number(opt('--len', 16));
const runs = Number(opt('--runs', 20));

const wasm = await import(`${pkg}/veer.js`);
await wasm.default({ module_or_path: readFileSync(`${pkg}/veer_bg.wasm`) });
const runtime = await wasm.Runtime.create('cpu');
const dir = `${root}www/models/all-minilm-l6-v2/`;
const files = new wasm.ModelFiles();
for (const [role, name] of [['config', 'config.json'], ['weights', 'model.safetensors'], ['tokenizer', 'tokenizer.json'], ['tokenizerConfig', 'tokenizer_config.json'], ['pooling', '1_Pooling/config.json'], ['sentenceBert', 'sentence_bert_config.json']]) {
  files.add(role, name, readFileSync(dir + name));
}
const model = wasm.Classifier.create(runtime, files, { maxLength: len });
// Texts long enough to fill `len` tokens once truncated; varied so that no two are the same.
const words = 'the harbour town woke slowly fishermen mended nets a baker opened early and children ran along the sea wall while gulls argued over scraps later the wind rose clouds gathered over the hills and the ferry left late'.split(' ');
const texts = Array.from({ length: batch }, (_, i) => [...words, ...words, ...words].slice(i % 7, (i % 7) + 3 * len).join(' '));
await model.embed(texts); // warm-up: allocation, V8's tier-up

const session = new Session();
session.connect();
await session.post('Profiler.enable');
await session.post('Profiler.setSamplingInterval', { interval: 200 });
await session.post('Profiler.start');
const t0 = performance.now();
for (let i = 0; i < runs; i++) await model.embed(texts);
const ms = (performance.now() - t0) / runs;
const { profile } = await session.post('Profiler.stop');
console.log(`all-MiniLM-L6-v2, batch ${batch} × ${len} tokens: ${ms.toFixed(1)} ms per batch under the profiler (${(batch * 1000 / ms).toFixed(1)} texts/s)`);

// Self and inclusive time of the samples under `Bert::forward`.
const byId = new Map(profile.nodes.map((n) => [n.id, n]));
const parent = new Map();
for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
const dt = new Map();
profile.samples.forEach((id, i) => dt.set(id, (dt.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0)));
const name = (id) => byId.get(id).callFrame.functionName.replace(/::h[0-9a-f]{16}$/, '');
const under = (id) => {
  for (let x = id; x !== undefined; x = parent.get(x)) if (name(x).startsWith(process.env.UNDER ?? 'veer::bert::Bert::forward')) return true;
  return false;
};
const self = new Map();
const incl = new Map();
let total = 0;
for (const n of profile.nodes) {
  const t = dt.get(n.id) ?? 0;
  if (!t || !under(n.id)) continue;
  total += t;
  self.set(name(n.id), (self.get(name(n.id)) ?? 0) + t);
  const seen = new Set();
  for (let x = n.id; x !== undefined; x = parent.get(x)) {
    if (!seen.has(name(x))) incl.set(name(x), (incl.get(name(x)) ?? 0) + t);
    seen.add(name(x));
  }
}
const pct = (t) => `${((100 * t) / total).toFixed(1).padStart(5)} %`;
console.log(`\nBert::forward: ${(total / 1000 / runs).toFixed(1)} ms per batch. Self time:`);
for (const [k, t] of [...self].sort((a, b) => b[1] - a[1]).slice(0, 15)) console.log(`  ${pct(t)}  ${k.slice(0, 120)}`);
console.log('Inclusive (veer and burn_flex functions):');
for (const [k, t] of [...incl].sort((a, b) => b[1] - a[1]).filter(([k]) => /^veer::|^burn_flex::ops::(activation|matmul|attention)/.test(k)).slice(0, 15)) console.log(`  ${pct(t)}  ${k.slice(0, 120)}`);
process.exit(0);
