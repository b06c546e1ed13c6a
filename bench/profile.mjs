// Where the encoder's time goes on the browser's CPU path: the wasm module (with its function names:
// `make bench-profile` builds it without wasm-opt, which would drop them) runs all-MiniLM-L6-v2 in
// Node's V8 (the same engine and wasm SIMD128 code generation as Chromium), under V8's sampling
// profiler; prints each function's share of the time spent in the forward pass (self time), and the
// veer/burn functions' inclusive shares. Measures; asserts nothing.
//
//   node bench/profile.mjs [--pkg .cache/prof-pkg] [--batch 8] [--len 16] [--runs 20]
//   node bench/profile.mjs --decoder q4|int8|f32 [--tokens 32]   (SmolLM2-135M decode, one token per step;
//   q4: the q4 folder, the default; int8 and f32: the F16 folder with those weights)
//
// UNDER=NAME (environment) counts the samples under another function instead of `Bert::forward`
// (the encoder's default; the decoder's is everything, `(root)`); `UNDER='(root)'` counts everything,
// e.g. the per-call overhead outside the forward.
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

const decoder = opt('--decoder', null);
const tokens = Number(opt('--tokens', 32));

const wasm = await import(`${pkg}/veer.js`);
await wasm.default({ module_or_path: readFileSync(`${pkg}/veer_bg.wasm`) });
const runtime = await wasm.Runtime.create('cpu');
const load = (dir, roles) => {
  const files = new wasm.ModelFiles();
  for (const [role, name] of roles) files.add(role, name, readFileSync(dir + name));
  return files;
};
const session = new Session();
session.connect();
let top;
let ms;
if (decoder) {
  // Decode: the prompt is prefilled outside the profile; each profiled step is one token.
  const folder = decoder === 'q4' ? 'smollm2-135m-instruct-q4' : 'smollm2-135m-instruct';
  const files = load(`${root}www/models/${folder}/`, [['config', 'config.json'], ['weights', 'model.safetensors'], ['tokenizer', 'tokenizer.json'], ['tokenizerConfig', 'tokenizer_config.json']]);
  const model = wasm.Generator.create(runtime, files, 'smollm2', { weights: decoder === 'q4' ? 'int8' : decoder });
  const generate = async (profiled) => {
    await model.start('The harbour town woke slowly; fishermen mended nets and', { maxTokens: tokens + 1, temperature: 0, stopIds: [], chat: false });
    await model.next();
    if (profiled) await session.post('Profiler.start');
    const t0 = performance.now();
    let n = 0;
    while ((await model.next()) !== undefined) n++;
    return (performance.now() - t0) / n;
  };
  await generate(false); // warm-up
  await session.post('Profiler.enable');
  await session.post('Profiler.setSamplingInterval', { interval: 200 });
  ms = 0;
  for (let i = 0; i < runs; i++) {
    ms += (await generate(true)) / runs;
    const { profile } = await session.post('Profiler.stop');
    top = top ? merge(top, profile) : profile;
  }
  console.log(`SmolLM2-135M ${decoder}, decode: ${ms.toFixed(1)} ms per token under the profiler (${(1000 / ms).toFixed(1)} tokens/s)`);
} else {
  const dir = `${root}www/models/all-minilm-l6-v2/`;
  const files = load(dir, [['config', 'config.json'], ['weights', 'model.safetensors'], ['tokenizer', 'tokenizer.json'], ['tokenizerConfig', 'tokenizer_config.json'], ['pooling', '1_Pooling/config.json'], ['sentenceBert', 'sentence_bert_config.json']]);
  const model = wasm.Classifier.create(runtime, files, { maxLength: len });
  // Texts long enough to fill `len` tokens once truncated; varied so that no two are the same.
  const words = 'the harbour town woke slowly fishermen mended nets a baker opened early and children ran along the sea wall while gulls argued over scraps later the wind rose clouds gathered over the hills and the ferry left late'.split(' ');
  const texts = Array.from({ length: batch }, (_, i) => [...words, ...words, ...words].slice(i % 7, (i % 7) + 3 * len).join(' '));
  await model.embed(texts); // warm-up: allocation, V8's tier-up
  await session.post('Profiler.enable');
  await session.post('Profiler.setSamplingInterval', { interval: 200 });
  await session.post('Profiler.start');
  const t0 = performance.now();
  for (let i = 0; i < runs; i++) await model.embed(texts);
  ms = (performance.now() - t0) / runs;
  top = (await session.post('Profiler.stop')).profile;
  console.log(`all-MiniLM-L6-v2, batch ${batch} × ${len} tokens: ${ms.toFixed(1)} ms per batch under the profiler (${(batch * 1000 / ms).toFixed(1)} texts/s)`);
}

// Several profiles as one: their nodes renumbered apart, samples and time deltas concatenated.
function merge(a, b) {
  const shift = Math.max(...a.nodes.map((n) => n.id));
  const nodes = b.nodes.map((n) => ({ ...n, id: n.id + shift, children: (n.children ?? []).map((c) => c + shift) }));
  return { nodes: [...a.nodes, ...nodes], samples: [...a.samples, ...b.samples.map((s) => s + shift)], timeDeltas: [...a.timeDeltas, ...b.timeDeltas] };
}
const profile = top;
const root_ = decoder ? '(root)' : 'veer::models::bert::Bert::forward';
// Self and inclusive time of the samples under `Bert::forward`.
const byId = new Map(profile.nodes.map((n) => [n.id, n]));
const parent = new Map();
for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
const dt = new Map();
profile.samples.forEach((id, i) => dt.set(id, (dt.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0)));
const name = (id) => byId.get(id).callFrame.functionName.replace(/::h[0-9a-f]{16}$/, '');
const under = (id) => {
  for (let x = id; x !== undefined; x = parent.get(x)) if (name(x).startsWith(process.env.UNDER ?? root_)) return true;
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
console.log(`\n${process.env.UNDER ?? root_}: ${(total / 1000 / runs / (decoder ? tokens : 1)).toFixed(1)} ms per ${decoder ? 'token' : 'batch'}. Self time:`);
for (const [k, t] of [...self].sort((a, b) => b[1] - a[1]).slice(0, 15)) console.log(`  ${pct(t)}  ${k.slice(0, 120)}`);
console.log('Inclusive (veer and burn_flex functions):');
for (const [k, t] of [...incl].sort((a, b) => b[1] - a[1]).filter(([k]) => /^veer::|^burn_flex::ops::(activation|matmul|attention)/.test(k)).slice(0, 15)) console.log(`  ${pct(t)}  ${k.slice(0, 120)}`);
process.exit(0);
