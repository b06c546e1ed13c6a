// In-browser classifier training (`trainClassifier`) against the native `veer train` on the same
// examples and seed: held-out accuracy on BBC News topics (5 labels) and the driverless-car tweets
// (3 labels) with 8, 32 and 128 examples per label, and the time to train on 50 and 500 examples.
// Headless Chromium, CPU, one worker. Prints a Markdown table, writes bench/results/train.json;
// measures, asserts nothing. Data: bench/train_data.py over the CSVs `make assets` fetched.
//
//   node bench/train.mjs [--seed 1]
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { serve, launch, chromeArgs, root, models } from '../tests/page/helpers.mjs';

const args = process.argv.slice(2);
const seed = Number(args[args.indexOf('--seed') + 1] || 1);
const data = `${process.env.VEER_CACHE ?? `${root}.cache`}/data`;
const dir = `${root}.cache/train-data`;
if (!existsSync(`${dir}/tweets-n500.jsonl`)) execFileSync('python3', [`${root}bench/train_data.py`, data, dir], { stdio: 'inherit' });
const read = (f) => readFileSync(`${dir}/${f}`, 'utf8').trim().split('\n').map((l) => JSON.parse(l));
const encoder = `${models}all-minilm-l6-v2`;

const server = await serve(root, Number(process.env.VEER_BENCH_PORT ?? 8791));
const browser = await launch(chromeArgs);

/** trainClassifier in a fresh page: accuracy on `test`, timings. */
async function inBrowser(train, test) {
  const page = await browser.newPage();
  await page.goto(`${server.base}www/`);
  try {
    return await page.evaluate(
      async ([train, test, seed, lib]) => {
        const veer = await import(lib);
        await veer.init({ device: 'cpu' });
        const t0 = performance.now();
        const clf = await veer.trainClassifier('models/all-minilm-l6-v2/', train, { seed });
        const totalMs = performance.now() - t0;
        const results = test.length ? await clf.classify(test.map((e) => e.text)) : [];
        const correct = results.filter((r, i) => r.label === test[i].label).length;
        const out = { accuracy: test.length ? correct / test.length : null, totalMs, training: clf.training, headBytes: clf.save().length };
        clf.dispose();
        return out;
      },
      [train, test, seed, `${server.base}www/lib/veer.js`],
    );
  } finally {
    await page.close();
  }
}

function native(file, test) {
  const out = JSON.parse(execFileSync(`${root}target/release/veer`, ['train', '--encoder', encoder, '--data', `${dir}/${file}`, '--out', `${root}test-results/bench-head.safetensors`, ...(test ? ['--test', `${dir}/${test}`] : []), '--options', JSON.stringify({ seed })], { encoding: 'utf8', maxBuffer: 1 << 28 }));
  return { accuracy: out.test?.accuracy ?? null, trainMs: out.seconds.train * 1000, embedMs: out.seconds.embed * 1000, epochs: out.progress.epoch };
}

mkdirSync(`${root}test-results`, { recursive: true });
const rows = [];
for (const task of ['bbc', 'tweets']) {
  const test = read(`${task}-test.jsonl`);
  for (const k of [8, 32, 128]) {
    const train = read(`${task}-${k}.jsonl`);
    const b = await inBrowser(train, test);
    const n = native(`${task}-${k}.jsonl`, `${task}-test.jsonl`);
    rows.push({ task, perLabel: k, examples: train.length, test: test.length, browser: b, native: n, delta: b.accuracy - n.accuracy });
    console.error(`${task} ${k}/label: browser ${b.accuracy.toFixed(3)} native ${n.accuracy.toFixed(3)} (browser ${Math.round(b.totalMs)} ms, ${b.training.epochs} epochs)`);
  }
}
const timing = [];
for (const n of [50, 500]) {
  const train = read(`tweets-n${n}.jsonl`);
  const b = await inBrowser(train, []);
  timing.push({ examples: n, totalMs: b.totalMs, trainMs: b.training.ms, epochs: b.training.epochs });
  console.error(`${n} examples: ${Math.round(b.totalMs)} ms in all, ${b.training.ms} ms training (${b.training.epochs} epochs)`);
}
await browser.close();
server.stop();

const result = { date: new Date().toISOString(), seed, encoder: 'all-MiniLM-L6-v2', rows, timing };
mkdirSync(`${root}bench/results`, { recursive: true });
writeFileSync(`${root}bench/results/train.json`, JSON.stringify(result, null, 2));
console.log('| task | examples per label | browser accuracy | native accuracy | Δ | epochs |');
console.log('|---|---|---|---|---|---|');
for (const r of rows) console.log(`| ${r.task} | ${r.perLabel} (${r.examples}) | ${r.browser.accuracy.toFixed(3)} | ${r.native.accuracy.toFixed(3)} | ${r.delta >= 0 ? '+' : ''}${r.delta.toFixed(3)} | ${r.browser.training.epochs} |`);
console.log('\n| examples | trainClassifier, total (embed + train) | of which training |');
console.log('|---|---|---|');
for (const t of timing) console.log(`| ${t.examples} | ${(t.totalMs / 1000).toFixed(1)} s | ${(t.trainMs / 1000).toFixed(2)} s (${t.epochs} epochs) |`);
