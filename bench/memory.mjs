// Memory over a long session, in headless Chromium (Debian's chromium, playwright-core), on the CPU in
// workers: 1,000 `classify` calls (each with the same long-lived AbortSignal, so leaked listeners would
// show), 100 generations of 16 tokens, and 20 load → classify → dispose cycles of a classifier. After a
// warm-up, each phase reports the growth of the model's wasm memory (`model.memoryBytes()`, the
// instance's high-water mark) and of the page's JS heap after a forced GC (CDP `JSHeapUsedSize`; the
// workers' own heaps are not in it). Measures; asserts nothing. Markdown on stdout, JSON in
// bench/results/<name>.json.
//
//   node bench/memory.mjs [--scale 1] [--name memory]      (--scale 0.1: a tenth of every count)
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, basename } from 'node:path';
import { serve, launch, blankPage, www as wwwDir, root } from '../tests/page/helpers.mjs';

const args = process.argv.slice(2);
const opt = (name, fallback) => {
  const i = args.indexOf(name);
  return i >= 0 ? args.splice(i, 2)[1] : fallback;
};
const scale = Number(opt('--scale', 1));
const name = opt('--name', 'memory');
const counts = { classify: Math.round(1000 * scale), generations: Math.round(100 * scale), cycles: Math.round(20 * scale) };

/** The page's JS heap after a full GC, in bytes. */
async function heap(cdp) {
  await cdp.send('HeapProfiler.collectGarbage');
  const { metrics } = await cdp.send('Performance.getMetrics');
  return metrics.find((m) => m.name === 'JSHeapUsedSize').value;
}

const server = await serve(dirname(wwwDir), Number(process.env.VEER_BENCH_PORT ?? 8798));
const www = `${server.base}${basename(wwwDir)}/`;
const browser = await launch();
const rows = [];
try {
  const page = await blankPage(await browser.newContext(), www);
  const cdp = await page.context().newCDPSession(page);
  await cdp.send('Performance.enable');
  await page.evaluate(async (lib) => {
    const veer = await import(lib);
    window.rt = await veer.init({ device: 'cpu' });
    window.clf = await rt.loadClassifier('models/sentiment/');
    window.gen = await rt.loadGenerator('models/smollm2-135m-instruct-q4/');
    window.signal = new AbortController().signal; // one signal for every call, as a long-lived page would
    window.texts = Array.from({ length: 8 }, (_, i) => `Review ${i}: the ${i % 2 ? 'soup was cold and the waiter rude' : 'staff were lovely and the bread fresh'}.`);
    window.generateOnce = async () => {
      let n = 0;
      for await (const _ of gen.generate('Write one sentence about the sea.', { maxTokens: 16, chat: true, signal })) n++;
      return n;
    };
  }, `${www}lib/veer.js`);
  const phase = async (label, count, model, body) => {
    // Warm-up: a tenth of the phase (at least 2), so that buffers of steady-state sizes exist.
    await page.evaluate(body, Math.max(2, Math.round(count / 10)));
    const before = { wasm: model ? await page.evaluate((m) => window[m].memoryBytes(), model) : null, heap: await heap(cdp) };
    const t = Date.now();
    await page.evaluate(body, count);
    const ms = Date.now() - t;
    const after = { wasm: model ? await page.evaluate((m) => window[m].memoryBytes(), model) : null, heap: await heap(cdp) };
    const row = { phase: label, count, ms, wasmBefore: before.wasm, wasmGrowth: model ? after.wasm - before.wasm : null, heapBefore: before.heap, heapGrowth: after.heap - before.heap };
    process.stderr.write(`${JSON.stringify(row)}\n`);
    rows.push(row);
  };
  await phase('classify (8 texts a call)', counts.classify, 'clf', async (n) => {
    for (let i = 0; i < n; i++) await clf.classify(texts, { signal });
  });
  await phase('generate (16 tokens)', counts.generations, 'gen', async (n) => {
    for (let i = 0; i < n; i++) await generateOnce();
  });
  await phase('load → classify → dispose', counts.cycles, null, async (n) => {
    for (let i = 0; i < n; i++) {
      const m = await rt.loadClassifier('models/sentiment/');
      await m.classify(texts[0]);
      m.dispose();
    }
  });
} finally {
  await browser.close();
  server.stop();
}

const mb = (x) => (x === null ? '—' : (x / 1e6).toFixed(2));
const lines = ['| phase | calls | time (s) | model wasm memory before (MB) | its growth (MB) | page JS heap before (MB) | its growth (MB) |', '|---|---|---|---|---|---|---|'];
for (const r of rows) lines.push(`| ${r.phase} | ${r.count} | ${(r.ms / 1000).toFixed(1)} | ${mb(r.wasmBefore)} | ${mb(r.wasmGrowth)} | ${mb(r.heapBefore)} | ${mb(r.heapGrowth)} |`);
console.log(lines.join('\n'));
mkdirSync(`${root}bench/results`, { recursive: true });
const chromium = (await import('node:child_process')).execFileSync('/usr/bin/chromium', ['--version'], { encoding: 'utf8' }).trim();
writeFileSync(`${root}bench/results/${name}.json`, JSON.stringify({ date: new Date().toISOString(), browser: chromium, scale, rows }, null, 1) + '\n');
