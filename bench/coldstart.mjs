// Cold start as a visitor sees it, in headless Chromium (Debian's chromium, playwright-core): for the
// sentiment classifier (q8) and SmolLM2 (the q4 folder, the default; the F16 folder with f32 weights), a first visit (new browser profile: empty HTTP cache and Cache API)
// and a second visit (new page, same profile: models and the wasm module from the Cache API).
// Per visit: bytes the page downloaded, wasm fetch + compile, runtime start, model fetch and create
// (parse + upload), first result, and the total to first result. Medians with min–max over --runs;
// Markdown table on stdout, JSON in bench/results/<name>.json. Measures; asserts nothing. The visits run
// the library's default on this machine, the CPU module (veer_cpu_bg.wasm); each of the package's two
// modules is also compiled on its own in a fresh page (bytes, WebAssembly.compile ms).
//
//   node bench/coldstart.mjs [--runs 5] [--name coldstart] [--www DIR]
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, basename, resolve } from 'node:path';
import { serve, launchPersistent, blankPage, root } from '../tests/page/helpers.mjs';

const args = process.argv.slice(2);
const opt = (name, fallback) => {
  const i = args.indexOf(name);
  return i >= 0 ? args.splice(i, 2)[1] : fallback;
};
const runs = Number(opt('--runs', 5));
const name = opt('--name', 'coldstart');
const wwwDir = resolve(opt('--www', `${root}www`));

const models = {
  sentiment: { kind: 'classifier', url: 'models/sentiment/' },
  'smollm2-q4': { kind: 'generator', url: 'models/smollm2-135m-instruct-q4/' },
  'smollm2-f16-f32': { kind: 'generator', url: 'models/smollm2-135m-instruct/', options: { weights: 'f32' } },
};

/** One visit in `page`: everything from importing the library to the first result. */
async function visit(page, lib, model) {
  return page.evaluate(
    async ([lib, model]) => {
      performance.clearResourceTimings();
      performance.setResourceTimingBufferSize(1000);
      const t0 = performance.now();
      const veer = await import(lib);
      const rt = await veer.init({ device: 'cpu' });
      const t1 = performance.now();
      let m;
      let firstMs;
      if (model.kind === 'classifier') {
        m = await rt.loadClassifier(model.url);
        const t = performance.now();
        await m.classify('The package arrived on time and the cookies were delicious.');
        firstMs = performance.now() - t;
      } else {
        m = await rt.loadGenerator(model.url, model.options);
        const t = performance.now();
        for await (const _ of m.generate('Say hello.', { maxTokens: 1, chat: true })) break;
        firstMs = performance.now() - t;
      }
      const total = performance.now() - t0;
      // Bytes over the network (0 for an HTTP-cache hit; Cache API reads are not network requests).
      const bytes = performance.getEntriesByType('resource').reduce((n, e) => n + (e.transferSize || 0), 0);
      const out = {
        bytes,
        compileMs: rt.info.compileMs,
        startMs: rt.info.startMs,
        runtimeMs: Math.round(t1 - t0),
        fetchMs: m.info.fetchMs,
        createMs: m.info.createMs,
        firstMs: Math.round(firstMs),
        totalMs: Math.round(total),
        memoryMb: Math.round(m.info.memoryBytes / 1e5) / 10, // the model worker's wasm memory after load
        cached: m.info.cached,
        moduleCached: rt.info.moduleCached,
      };
      m.dispose();
      rt.dispose();
      return out;
    },
    [lib, model],
  );
}

const server = await serve(dirname(wwwDir), Number(process.env.VEER_BENCH_PORT ?? 8797));
const www = `${server.base}${basename(wwwDir)}/`;
const results = {};
const modules = {};
try {
  for (let r = 0; r < runs; r++) {
    for (const file of ['veer_cpu_bg.wasm', 'veer_bg.wasm']) {
      const context = await launchPersistent();
      try {
        const page = await blankPage(context, www);
        const got = await page.evaluate(async (url) => {
          const bytes = await (await fetch(url)).arrayBuffer();
          const t = performance.now();
          await WebAssembly.compile(bytes);
          return { bytes: bytes.byteLength, compileMs: Math.round(performance.now() - t) };
        }, `${www}lib/pkg/${file}`);
        (modules[file] ??= []).push(got);
        process.stderr.write(`run ${r + 1}/${runs} ${file}: ${JSON.stringify(got)}\n`);
      } finally {
        await context.close();
      }
    }
    for (const [label, model] of Object.entries(models)) {
      const context = await launchPersistent();
      try {
        for (const state of ['first visit', 'second visit']) {
          const page = await blankPage(context, www);
          const got = await visit(page, `${www}lib/veer.js`, model);
          await page.close();
          ((results[label] ??= {})[state] ??= []).push(got);
          process.stderr.write(`run ${r + 1}/${runs} ${label} ${state}: ${JSON.stringify(got)}\n`);
        }
      } finally {
        await context.close();
      }
    }
  }
} finally {
  server.stop();
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor((xs.length - 1) / 2)];
const cell = (xs) => (xs.length > 1 ? `${median(xs)} (${Math.min(...xs)}–${Math.max(...xs)})` : `${xs[0]}`);
const fields = [
  ['bytes', 'downloaded (MB)', (v) => +(v / 1e6).toFixed(2)],
  ['compileMs', 'wasm fetch + compile (ms)'],
  ['startMs', 'runtime worker start (ms)'],
  ['fetchMs', 'model fetch (ms)'],
  ['createMs', 'model create: parse + upload (ms)'],
  ['firstMs', 'first result (ms)'],
  ['totalMs', 'import → first result (ms)'],
  ['memoryMb', 'model worker wasm memory after load (MB)'],
];
const lines = [];
for (const [label, states] of Object.entries(results)) {
  lines.push(`\n${label} (${runs} runs, median (min–max))\n`, `| | ${Object.keys(states).join(' | ')} |`, `|---|${Object.keys(states).map(() => '---').join('|')}|`);
  for (const [key, title, f = (v) => v] of fields) lines.push(`| ${title} | ${Object.values(states).map((rs) => cell(rs.map((x) => f(x[key])))).join(' | ')} |`);
}
lines.push('\n| module | bytes (MB) | WebAssembly.compile (ms) |', '|---|---|---|');
for (const [file, rs] of Object.entries(modules)) lines.push(`| ${file} | ${(rs[0].bytes / 1e6).toFixed(2)} | ${cell(rs.map((x) => x.compileMs))} |`);
console.log(lines.join('\n'));
mkdirSync(`${root}bench/results`, { recursive: true });
const browser = (await import('node:child_process')).execFileSync('/usr/bin/chromium', ['--version'], { encoding: 'utf8' }).trim();
writeFileSync(`${root}bench/results/${name}.json`, JSON.stringify({ date: new Date().toISOString(), browser, runs, results, modules }, null, 1) + '\n');
