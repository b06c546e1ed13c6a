// Benchmarks in one headless Chromium session (Debian's chromium, playwright-core), configurations
// interleaved, a fresh page per run, medians with min–max, ratios only within the session. Prints a
// Markdown table and writes bench/results/<name>.json. Measures; asserts nothing.
//
//   node bench/compare.mjs [--runs 5] [--name NAME] [--decoder] CONTENDER...
//
// CONTENDER is `label=DIR[@WORKERS]`: a directory holding a copy of the veer library (veer*.js) and its
// pkg/ (veer.js, veer_bg.wasm) — e.g. two builds of the wasm module — and how many workers the
// classifier gets (default 1). Labels must be distinct; the same DIR may appear twice.
import { mkdtempSync, mkdirSync, readFileSync, symlinkSync, writeFileSync, rmSync } from 'node:fs';
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
const contenders = args.map((a) => {
  const [label, spec] = a.split('=');
  const [dir, workers] = (spec ?? '').split('@');
  if (!label || !dir) throw new Error(`contender \`${a}\`: expected LABEL=DIR[@WORKERS]`);
  return { label, dir: resolve(dir), workers: workers === 'auto' ? 'auto' : Number(workers ?? 1) };
});
if (contenders.length === 0) throw new Error('usage: node bench/compare.mjs [--runs N] [--name NAME] [--decoder] LABEL=DIR...');

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
const prompt = 'The harbour town woke slowly: fishermen mended nets, a baker opened early, and children ran along the sea wall while gulls argued over scraps.';

// One folder served over HTTP: each contender's library under /<label>/, the models under /models/.
const site = mkdtempSync(join(tmpdir(), 'veer-bench-'));
for (const c of contenders) symlinkSync(c.dir, join(site, c.label)); // one URL prefix per label
symlinkSync(models, join(site, 'models'));
const server = await serve(site, Number(process.env.VEER_BENCH_PORT ?? 8790));
const browser = await launch(chromeArgs);

/** One run of one contender in a fresh page: cold start, encoder throughput and latency, decoder. */
async function measure(c) {
  const page = await browser.newPage();
  await page.route(`${server.base}__bench.html`, (r) => r.fulfill({ contentType: 'text/html', body: '<!doctype html><title>bench</title>' }));
  await page.goto(`${server.base}__bench.html`);
  try {
    return await page.evaluate(
      async ({ lib, short, long, prompt, decoder, workers }) => {
        const now = () => performance.now();
        const t0 = now();
        const veer = await import(lib);
        const rt = await veer.init({ device: 'cpu', cache: false });
        const clf = await veer.loadClassifier('models/all-minilm-l6-v2/', { runtime: rt, ...(workers !== 1 && { workers }) });
        await clf.embed(short[0]);
        const out = { coldMs: now() - t0 };
        const throughput = async (texts, batch) => {
          await clf.embed(texts.slice(0, batch)); // warm: allocation, first-use costs
          const t = now();
          for (let i = 0; i < texts.length; i += batch) await clf.embed(texts.slice(i, i + batch));
          return (texts.length * 1000) / (now() - t);
        };
        for (const b of [1, 8, 32]) {
          out[`short_b${b}`] = await throughput(short, b);
          out[`long_b${b}`] = await throughput(long, b);
        }
        const lat = [];
        for (const t of short.slice(0, 16)) {
          const s = now();
          await clf.embed(t);
          lat.push(now() - s);
        }
        lat.sort((a, b) => a - b);
        out.latency_p50 = lat[Math.floor(lat.length / 2)];
        out.latency_p95 = lat[Math.min(lat.length - 1, Math.ceil(lat.length * 0.95) - 1)];
        clf.dispose();
        if (decoder) {
          const gen = await veer.loadGenerator('models/smollm2-135m-instruct/', { runtime: rt });
          const run = async () => {
            const s = now();
            let first;
            let n = 0;
            for await (const _ of gen.generate(prompt, { maxTokens: 64, temperature: 0 })) {
              if (n++ === 0) first = now();
            }
            return { prefill: (gen.promptTokens * 1000) / (first - s), decode: ((n - 1) * 1000) / (now() - first) };
          };
          await run();
          const r = await run();
          out.prefill = r.prefill;
          out.decode = r.decode;
          gen.dispose();
        }
        rt.dispose();
        return out;
      },
      { lib: `${server.base}${c.label}/veer.js`, short, long, prompt, decoder, workers: c.workers },
    );
  } finally {
    await page.close();
  }
}

const results = Object.fromEntries(contenders.map((c) => [c.label, []]));
try {
  for (let r = 0; r < runs; r++) {
    for (const c of r % 2 ? [...contenders].reverse() : contenders) {
      const m = await measure(c);
      results[c.label].push(m);
      console.error(`run ${r + 1}/${runs} ${c.label}: ${JSON.stringify(Object.fromEntries(Object.entries(m).map(([k, v]) => [k, Number(v.toFixed(1))])))}`);
    }
  }
} finally {
  await browser.close();
  server.stop();
  rmSync(site, { recursive: true, force: true });
}

const stat = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return { median: s[Math.floor(s.length / 2)], min: s[0], max: s[s.length - 1] };
};
const metrics = Object.keys(results[contenders[0].label][0]);
const units = { coldMs: 'ms', latency_p50: 'ms', latency_p95: 'ms', prefill: 'tokens/s', decode: 'tokens/s' };
const summary = Object.fromEntries(contenders.map((c) => [c.label, Object.fromEntries(metrics.map((m) => [m, stat(results[c.label].map((x) => x[m]))]))]));
const base = contenders[0].label;
const fmt = (s) => `${s.median.toFixed(1)} (${s.min.toFixed(1)}–${s.max.toFixed(1)})`;
let table = `| metric | ${contenders.map((c) => c.label).join(' | ')} |${contenders.slice(1).map((c) => ` ${c.label} / ${base} |`).join('')}\n`;
table += `|---|${contenders.map(() => '---|').join('')}${contenders.slice(1).map(() => '---|').join('')}\n`;
for (const m of metrics) {
  const unit = units[m] ?? 'texts/s';
  table += `| ${m} (${unit}) | ${contenders.map((c) => fmt(summary[c.label][m])).join(' | ')} |`;
  table += contenders.slice(1).map((c) => ` ${(summary[c.label][m].median / summary[base][m].median).toFixed(2)}× |`).join('');
  table += '\n';
}
console.log(table);
mkdirSync(`${root}bench/results`, { recursive: true });
const chromium = browser.version();
writeFileSync(`${root}bench/results/${name}.json`, JSON.stringify({ date: new Date().toISOString(), chromium, runs, contenders: contenders.map((c) => c.label), summary, results }, null, 1));
