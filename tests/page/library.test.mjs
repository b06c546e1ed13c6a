// The JavaScript library (www/lib/veer.js) in headless Chromium, served from the repository root so
// that it runs under a sub-path (/www/). One browser profile on disk for the whole file, so the Cache API
// persists.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { dirname, basename } from 'node:path';
import { readFileSync, writeFileSync, mkdirSync, rmSync, existsSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { serve, launchPersistent, blankPage, watch, nativeScores, maxDiff, www as wwwDir, models, root } from './helpers.mjs';

/** The reference's long text (truncated at 256 tokens in tests/fixtures/bert.json). */
function readLongText() {
  const cases = JSON.parse(readFileSync(`${root}tests/fixtures/bert.json`, 'utf8')).cases;
  return cases.find((c) => c.input_ids.length === 256).text;
}

let server;
let context;
let www;
before(async () => {
  server = await serve(dirname(wwwDir), Number(process.env.VEER_LIB_PORT ?? 8789));
  www = `${server.base}${basename(wwwDir)}/`;
  context = await launchPersistent();
});
after(async () => {
  await context?.close();
  server?.stop();
});

/** Run `fn(veer, arg)` in a fresh page with the library imported. */
async function inPage(fn, arg) {
  const page = await blankPage(context, www);
  const errors = watch(page);
  try {
    return await page.evaluate(
      async ([src, lib, a]) => {
        const veer = await import(lib);
        return (0, eval)(`(${src})`)(veer, a);
      },
      [fn.toString(), `${www}lib/veer.js`, arg],
    );
  } finally {
    await page.close();
    assert.deepEqual(errors, []);
  }
}

test('classifiers match the native CLI on the CPU within 1e-4, in a worker and inline', async () => {
  const refs = { sentiment: nativeScores('sentiment'), topic: nativeScores('topic') };
  const got = await inPage(
    async (veer, refs) => {
      const rt = await veer.init({ device: 'cpu' });
      const out = { device: rt.device };
      for (const [name, ref] of Object.entries(refs)) {
        const progress = [];
        const clf = await veer.loadClassifier(`models/${name}/`, { integrity: 'manifest', onProgress: (p) => progress.push(p) });
        const weights = progress.filter((p) => p.file === 'model.safetensors');
        out[name] = { worker: clf.worker, device: clf.device, labels: clf.labels, results: await clf.classify(ref.texts), single: await clf.classify(ref.texts[0]), info: clf.info, progress: { n: weights.length, last: weights.at(-1) } };
        clf.dispose();
        out[name].afterDispose = await clf.classify(['x']).catch((e) => e.code);
        const inline = await veer.loadClassifier(`models/${name}/`, { worker: false });
        out[name].inline = { worker: inline.worker, results: await inline.classify(ref.texts) };
        inline.dispose();
      }
      return out;
    },
    { sentiment: refs.sentiment, topic: refs.topic },
  );
  assert.equal(got.device, 'cpu');
  for (const name of ['sentiment', 'topic']) {
    const g = got[name];
    const ref = refs[name].results;
    assert.equal(g.worker, true);
    assert.equal(g.inline.worker, false);
    assert.equal(g.device, 'cpu');
    assert.deepEqual(g.results.map((r) => r.label), ref.map((r) => r.label), name);
    assert.ok(maxDiff(g.results, ref) <= 1e-4, `${name} (worker): max |Δ| ${maxDiff(g.results, ref)}`);
    assert.ok(maxDiff(g.inline.results, ref) <= 1e-4, `${name} (inline): max |Δ| ${maxDiff(g.inline.results, ref)}`);
    // Alone or in a batch (other padding, other matmul shapes): the same label, scores within float noise.
    assert.equal(g.single.label, g.results[0].label);
    const asNative = (r) => ({ score: r.score, scores: Object.entries(r.scores) });
    assert.ok(maxDiff([g.single], [asNative(g.results[0])]) <= 1e-5, `${name}: one text alone vs in a batch`);
    assert.deepEqual(Object.keys(g.results[0].scores), g.labels, 'scores in the model label order');
    assert.equal(g.afterDispose, 'E_DISPOSED');
    // Byte progress: several events for the weights, the last one complete.
    assert.ok(g.progress.n >= 2 && g.progress.last.loaded === g.progress.last.total && g.progress.last.total === g.info.files['model.safetensors'].size, JSON.stringify(g.progress));
  }
  assert.deepEqual(got.sentiment.labels.slice().sort(), ['negative', 'positive']);
  assert.deepEqual(got.topic.labels.slice().sort(), ['business', 'entertainment', 'politics', 'sport', 'tech']);
});

test('embed: unit-length Float32Arrays; every encoder folder embeds a long text as the native CLI does', async () => {
  const names = ['all-minilm-l6-v2', 'sentiment', 'topic'];
  const refs = Object.fromEntries(names.map((n) => [n, JSON.parse(readFileSync(`${models}${n}/native-embedding.json`, 'utf8'))]));
  const long = readLongText();
  const got = await inPage(
    async (veer, { names, long }) => {
      await veer.init({ device: 'cpu' });
      const enc = await veer.loadClassifier('models/all-minilm-l6-v2/', { integrity: 'manifest' });
      const [a, b] = await enc.embed(['A cat sits on the mat.', 'Stock markets fell sharply.']);
      const norm = Math.hypot(...a);
      const classify = await enc.classify('x').catch((e) => e.code);
      enc.dispose();
      // Truncation and pooling come from each folder's files, without options, as on the CLI.
      const folders = {};
      for (const name of names) {
        const m = await veer.loadClassifier(`models/${name}/`, { integrity: 'manifest' });
        folders[name] = { maxLength: m.maxLength, pooling: m.pooling, embedding: Array.from(await m.embed(long)), ids: Array.from(await m.tokenize(long)) };
        m.dispose();
      }
      // Options the model does not know are errors that name them, whichever layer checks them.
      const bad = {};
      for (const [k, v] of [['maxLenght', 12], ['device', 'cpu'], ['pooling', 'max'], ['progress_callback', () => {}], ['onProgress', 'x'], ['signal', {}]]) {
        bad[k] = await veer.loadClassifier('models/all-minilm-l6-v2/', { [k]: v }).then(() => 'loaded', (e) => `${e.code} ${e.message}`);
      }
      bad.generator = await veer.loadGenerator('models/smollm2-135m-instruct/', { dtype: 'q8' }).then(() => 'loaded', (e) => `${e.code} ${e.message}`);
      return { type: a.constructor.name, dims: [a.length, b.length], norm, classify, folders, bad };
    },
    { names, long },
  );
  assert.equal(got.type, 'Float32Array');
  assert.deepEqual(got.dims, [384, 384]);
  assert.ok(Math.abs(got.norm - 1) < 1e-4, String(got.norm));
  assert.equal(got.classify, 'E_CONFIG');
  for (const name of names) {
    const [g, r] = [got.folders[name], refs[name]];
    assert.deepEqual([g.maxLength, g.pooling], [r.max_length, r.pooling], name);
    assert.equal(g.maxLength, 256, `${name}: sentence-transformers' 256 tokens`);
    assert.deepEqual(g.ids, r.input_ids[0], `${name}: token ids`);
    const diff = Math.max(...g.embedding.map((x, i) => Math.abs(x - r.embeddings[0][i])));
    assert.ok(diff <= 1e-4, `${name}: browser vs CLI embedding max |Δ| ${diff}`);
  }
  for (const [k, message] of Object.entries(got.bad)) {
    assert.match(message, /^E_INVALID /, `${k}: ${message}`);
    assert.ok(message.includes(k === 'generator' ? 'dtype' : k === 'pooling' ? 'max' : k), `${k}: ${message}`);
  }
  assert.ok(got.bad.maxLenght.includes('maxLength'), `the known names are listed: ${got.bad.maxLenght}`);
});

test("auto leaves a software WebGPU adapter for the CPU (and the CPU module) and says why; 'webgpu' still takes it with the full module", async () => {
  const got = await inPage(async (veer) => {
    const adapter = await navigator.gpu?.requestAdapter();
    const software = Boolean(adapter?.info?.isFallbackAdapter ?? adapter?.isFallbackAdapter);
    const auto = await veer.init();
    const out = { software, auto: { device: auto.device, reason: auto.fallbackReason, module: auto.info.module } };
    const clf = await auto.loadClassifier('models/sentiment/');
    out.auto.model = clf.module;
    clf.dispose();
    auto.dispose();
    const gpu = await veer.init({ device: 'webgpu' });
    out.webgpu = { device: gpu.device, module: gpu.info.module, why: gpu.info.moduleReason };
    gpu.dispose();
    const cpu = await veer.init({ device: 'cpu' });
    out.cpu = { device: cpu.device, module: cpu.info.module, reason: cpu.fallbackReason ?? null };
    cpu.dispose();
    out.wasm = performance.getEntriesByType('resource').map((e) => e.name.split('/').at(-1)).filter((n) => n.endsWith('.wasm'));
    return out;
  });
  assert.deepEqual(got.webgpu, { device: 'webgpu', module: 'full', why: 'device "webgpu" was asked for' });
  assert.deepEqual(got.cpu, { device: 'cpu', module: 'cpu', reason: null });
  if (got.software) {
    assert.deepEqual([got.auto.device, got.auto.module, got.auto.model], ['cpu', 'cpu', 'cpu']);
    assert.match(got.auto.reason, /software fallback/);
  } else {
    assert.deepEqual([got.auto.device, got.auto.module], ['webgpu', 'full'], JSON.stringify(got));
  }
  // Each module fetched at most once per page, whatever the number of runtimes and workers (none at all
  // when an earlier test of this profile left it in the Cache API).
  assert.equal(new Set(got.wasm).size, got.wasm.length, `a module fetched twice: ${got.wasm}`);
});

test('a trap ends one model instance only: the next call reloads it and says so (worker, inline, pool)', async () => {
  const got = await inPage(async (veer) => {
    await veer.init({ device: 'cpu' });
    const out = {};
    for (const [label, options] of Object.entries({ worker: {}, inline: { worker: false }, pool: { workers: 2 } })) {
      const a = await veer.loadClassifier('models/sentiment/', options);
      const b = await veer.loadClassifier('models/sentiment/', options);
      const texts = ['good food', 'awful service', 'fine'];
      const before = await a.classify(texts);
      const restarts = [];
      a.addEventListener('restart', (e) => restarts.push(e.reason));
      const trap = await a._simulateTrap().then(() => 'no error', (e) => ({ code: e.code, fatal: e.fatal }));
      const other = await b.classify(texts); // its own instance: unaffected
      const after = await a.classify(texts); // a fresh instance
      const badArgument = await a.classify([42]).then(() => 'no error', (e) => e.code);
      const afterBad = await a.classify(texts); // a bad argument is not a trap: no restart
      out[label] = { trap, restarts, same: JSON.stringify(after) === JSON.stringify(before), other: JSON.stringify(other) === JSON.stringify(before), badArgument, afterBad: JSON.stringify(afterBad) === JSON.stringify(before) };
      a.dispose();
      b.dispose();
    }
    return out;
  });
  for (const [label, r] of Object.entries(got)) {
    assert.deepEqual(r.trap, { code: 'E_WASM', fatal: true }, label);
    assert.equal(r.restarts.length, 1, `${label}: one restart event: ${r.restarts}`);
    assert.match(r.restarts[0], /^E_WASM: wasm trap/, label);
    assert.ok(r.same && r.other && r.afterBad, `${label}: ${JSON.stringify(r)}`);
    assert.equal(r.badArgument, 'E_INVALID', label);
  }
});

test('dispose() while a model reloads (after a trap or a GPU loss) ends the new worker too', async () => {
  const got = await inPage(async (veer) => {
    // Count the library's live workers.
    let live = 0;
    let onWorker;
    const Base = Worker;
    globalThis.Worker = class extends Base {
      constructor(...a) {
        super(...a);
        live++;
        onWorker?.();
      }
      terminate() {
        live--;
        super.terminate();
      }
    };
    const rt = await veer.init({ device: 'cpu' });
    const before = live;
    const clf = await veer.loadClassifier('models/sentiment/', { runtime: rt });
    const loaded = live - before;
    await clf._simulateTrap().catch(() => {});
    // The next call reloads the model in a new worker: dispose() as soon as that worker exists.
    onWorker = () => {
      onWorker = undefined;
      queueMicrotask(() => clf.dispose());
    };
    const result = await clf.classify(['fine']).then(() => 'ok', (e) => e.code);
    await new Promise((r) => setTimeout(r, 200));
    const left = live - before;
    rt.dispose();
    return { loaded, result, left };
  });
  assert.equal(got.loaded, 1);
  assert.equal(got.result, 'E_DISPOSED');
  assert.equal(got.left, 0, 'a worker outlived dispose()');
});

test('classify and embed take an AbortSignal: a 10 000-text call stops promptly and the model keeps working', async () => {
  const got = await inPage(async (veer) => {
    await veer.init({ device: 'cpu' });
    const clf = await veer.loadClassifier('models/sentiment/');
    const texts = Array.from({ length: 10000 }, (_, i) => `review number ${i}: the food was fine`);
    const controller = new AbortController();
    const t0 = performance.now();
    setTimeout(() => controller.abort(), 300);
    const classify = await clf.classify(texts, { signal: controller.signal }).then(() => 'finished', (e) => ({ code: e.code, name: e.name }));
    const ms = performance.now() - t0;
    const pre = new AbortController();
    pre.abort();
    const embed = await clf.embed(['x'], { signal: pre.signal }).then(() => 'finished', (e) => e.code);
    const unknown = await clf.classify(['x'], { signl: 1 }).then(() => 'finished', (e) => e.code);
    const badSignal = await clf.classify(['x'], { signal: {} }).then(() => 'finished', (e) => e.code);
    const after = await clf.classify(['good food', 'bad food']);
    clf.dispose();
    return { classify, ms, embed, unknown, badSignal, after: after.map((r) => r.label) };
  });
  assert.deepEqual(got.classify, { code: 'E_ABORTED', name: 'AbortError' });
  assert.ok(got.ms < 5000, `abort took ${got.ms} ms`);
  assert.equal(got.embed, 'E_ABORTED');
  assert.equal(got.unknown, 'E_INVALID');
  assert.equal(got.badSignal, 'E_INVALID');
  assert.equal(got.after.length, 2);
});

test('a pool of workers splits a batch and gives the scores of one worker', async () => {
  const ref = nativeScores('sentiment');
  const got = await inPage(
    async (veer, texts) => {
      await veer.init({ device: 'cpu' });
      const pool = await veer.loadClassifier('models/sentiment/', { workers: 2 });
      const auto = await veer.loadClassifier('models/sentiment/', { workers: 'auto' });
      const out = { workers: pool.workers, auto: auto.workers, cores: navigator.hardwareConcurrency, results: await pool.classify(texts), embedded: (await pool.embed(texts)).length, ids: (await pool.tokenize(texts)).length };
      out.bad = await veer.loadClassifier('models/sentiment/', { workers: 0 }).catch((e) => e.code);
      pool.dispose();
      auto.dispose();
      out.afterDispose = await pool.classify(texts).catch((e) => e.code);
      return out;
    },
    ref.texts,
  );
  assert.equal(got.workers, 2);
  assert.equal(got.auto, Math.min(got.cores, 4));
  assert.equal(got.embedded, ref.texts.length);
  assert.equal(got.ids, ref.texts.length);
  assert.deepEqual(got.results.map((r) => r.label), ref.results.map((r) => r.label));
  assert.ok(maxDiff(got.results, ref.results) <= 1e-4, `pool vs native: max |Δ| ${maxDiff(got.results, ref.results)}`);
  assert.equal(got.bad, 'E_INVALID');
  assert.equal(got.afterDispose, 'E_DISPOSED');
});

test('a second load comes from the Cache API: no network fetch of the weights', async () => {
  const requests = [];
  const onRequest = (r) => requests.push(r.url());
  context.on('request', onRequest);
  try {
    // The first test loaded sentiment in this profile; a new page (a second visit) must not download it.
    const got = await inPage(async (veer) => {
      await veer.init({ device: 'cpu' });
      const clf = await veer.loadClassifier('models/sentiment/', { integrity: 'manifest' });
      const info = clf.info;
      clf.dispose();
      return info;
    });
    assert.equal(got.cached, true, JSON.stringify(got));
    assert.equal(got.files['model.safetensors'].cached, true);
    const weights = requests.filter((u) => /\.safetensors$/.test(u));
    assert.deepEqual(weights, [], 'weights fetched from the network on the second load');
  } finally {
    context.off('request', onRequest);
  }
});

test("the package's module is kept in the Cache API under its build's sha256: a later visit downloads no wasm; other bytes are not kept", async () => {
  const requests = [];
  const onRequest = (r) => requests.push(r.url());
  context.on('request', onRequest);
  // A visit: the CPU module's runtime classifies one text; then the cache's entries, once they are
  // `want` (the entry is written after the compile, in the background; wait at most 5 s).
  const visit = (want, options) => inPage(async (veer, [want, options]) => {
    const rt = await veer.init({ device: 'cpu', ...options });
    const clf = await rt.loadClassifier('models/sentiment/');
    const out = { cached: rt.info.moduleCached, label: (await clf.classify('a lovely day')).label };
    clf.dispose();
    rt.dispose();
    const entries = async () => (await (await caches.open('veer-wasm-v1')).keys()).map((r) => r.url.split('/').at(-1));
    for (let i = 0; i < 100 && JSON.stringify(await entries()) !== JSON.stringify(want); i++) await new Promise((r) => setTimeout(r, 50));
    out.entries = await entries();
    return out;
  }, [want, options]);
  const { WASM_SHA256 } = await import(`${root}pkg/veer-digests.js`);
  const key = `veer_cpu_bg.wasm?sha256=${WASM_SHA256.cpu}`;
  try {
    // A fresh cache holding an earlier build's entry at the same URL.
    await inPage(async () => {
      await caches.delete('veer-wasm-v1');
      const c = await caches.open('veer-wasm-v1');
      await c.put(new URL(`lib/pkg/veer_cpu_bg.wasm?sha256=${'0'.repeat(64)}`, location.href).href, new Response(new Uint8Array([0, 97, 115, 109])));
    });
    const first = await visit([key], {});
    assert.deepEqual(first, { cached: false, label: 'positive', entries: [key] }, 'kept under the new digest; the earlier build dropped');
    requests.length = 0;
    const second = await visit([key], {});
    assert.deepEqual(second, { cached: true, label: 'positive', entries: [key] });
    assert.deepEqual(requests.filter((u) => u.endsWith('.wasm')), [], 'the second visit downloaded a module');
    // `cache: false`: compiled from the network, nothing kept.
    await inPage(async () => caches.delete('veer-wasm-v1'));
    const off = await visit([], { cache: false });
    assert.deepEqual(off, { cached: false, label: 'positive', entries: [] });
  } finally {
    context.off('request', onRequest);
  }
});

test("a module whose bytes are not the build's runs but is not kept in the Cache API", async () => {
  // The CPU module with one more custom section: valid wasm, the same code, another sha256 (a host
  // serving a file from another build).
  const wasm = readFileSync(`${root}pkg/veer_cpu_bg.wasm`);
  const other = Buffer.concat([wasm, Buffer.from([0, 5, 4, ...Buffer.from('veer')])]);
  const page = await blankPage(context, www);
  const errors = watch(page);
  await page.route('**/veer_cpu_bg.wasm', (route) => route.fulfill({ body: other, contentType: 'application/wasm' }));
  try {
    const got = await page.evaluate(async (lib) => {
      await caches.delete('veer-wasm-v1');
      const veer = await import(lib);
      const rt = await veer.init({ device: 'cpu' });
      const clf = await rt.loadClassifier('models/sentiment/');
      const label = (await clf.classify('a lovely day')).label;
      clf.dispose();
      rt.dispose();
      await new Promise((r) => setTimeout(r, 1500)); // the time the digest and a put take, many times over
      return { cached: rt.info.moduleCached, label, entries: (await (await caches.open('veer-wasm-v1')).keys()).length };
    }, `${www}lib/veer.js`);
    assert.deepEqual(got, { cached: false, label: 'positive', entries: 0 });
  } finally {
    await page.close();
    assert.deepEqual(errors, []);
  }
});

test('a cache entry of another format, or cut short, is deleted and the file fetched again', async () => {
  const got = await inPage(async (veer) => {
    const rt = await veer.init({ device: 'cpu' });
    const url = new URL('models/vectors/positive.safetensors', location.href).href;
    const fetched = () => performance.getEntriesByType('resource').filter((e) => e.name === url).length;
    const c = await caches.open('veer-models-v1');
    await c.delete(url);
    const first = await rt.loadVector(url);
    const entry = await c.match(url);
    const bytes = new Uint8Array(await entry.clone().arrayBuffer());
    const out = { format: entry.headers.get('x-veer-cache'), fetched: [fetched()] };
    await rt.loadVector(url); // from the cache
    out.fetched.push(fetched());
    // As an older veer (or another library) would have stored it: no format header.
    await c.put(url, new Response(bytes, { headers: { 'content-type': 'application/octet-stream' } }));
    await rt.loadVector(url);
    out.fetched.push(fetched());
    out.rewritten = (await c.match(url)).headers.get('x-veer-cache');
    // Cut short: fewer bytes than it was stored with.
    await c.put(url, new Response(bytes.slice(0, 100), { headers: { 'content-length': String(bytes.length), 'x-veer-cache': '1' } }));
    const again = await rt.loadVector(url);
    out.fetched.push(fetched());
    out.same = again.toBytes().length === first.toBytes().length;
    rt.dispose();
    return out;
  });
  assert.deepEqual(got, { format: '1', fetched: [1, 1, 2, 3], rewritten: '1', same: true });
});

test("a download that stalls fails with E_NETWORK after init's stallTimeout, naming the file", async () => {
  // The page's own origin (Chromium refuses a page's requests to another loopback port): a proxy to the
  // test server, but for /stall/body, which sends headers and 100 of 1000 bytes and then nothing, and
  // /stall/silent, which never answers.
  const { createServer, get } = await import('node:http');
  const held = [];
  const proxy = createServer((req, res) => {
    if (req.url.startsWith('/stall/')) {
      held.push(res);
      if (req.url.startsWith('/stall/body')) {
        res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': '1000' });
        res.write(Buffer.alloc(100, 1));
      }
      return;
    }
    get(new URL(req.url, server.base), (up) => {
      res.writeHead(up.statusCode, up.headers);
      up.pipe(res);
    }).on('error', () => res.destroy());
  });
  await new Promise((r) => proxy.listen(0, '127.0.0.1', r));
  const base = `http://127.0.0.1:${proxy.address().port}/`;
  const page = await blankPage(context, `${base}${basename(wwwDir)}/`);
  const errors = watch(page);
  try {
    const got = await page.evaluate(async (lib) => {
      const veer = await import(lib);
      const rt = await veer.init({ device: 'cpu', stallTimeout: 500 });
      const attempt = async (p) => {
        const t = performance.now();
        return p.then(() => 'loaded', (e) => ({ code: e.code, message: e.message, s: Math.round((performance.now() - t) / 100) / 10 }));
      };
      const out = {
        body: await attempt(rt.loadVector('/stall/body.safetensors')),
        silent: await attempt(rt.loadVector('/stall/silent.safetensors')),
        bad: await veer.init({ device: 'cpu', stallTimeout: -1 }).then(() => 'accepted', (e) => e.code),
      };
      out.after = (await rt.loadVector('models/vectors/positive.safetensors')).toBytes().length > 0;
      rt.dispose();
      return out;
    }, `${base}${basename(wwwDir)}/lib/veer.js`);
    assert.equal(got.body.code, 'E_NETWORK', JSON.stringify(got));
    assert.match(got.body.message, /^body\.safetensors: no data after 100 bytes for 0\.5 s/);
    assert.equal(got.silent.code, 'E_NETWORK', JSON.stringify(got));
    assert.match(got.silent.message, /^silent\.safetensors: no response for 0\.5 s/);
    for (const k of ['body', 'silent']) assert.ok(got[k].s < 5, `${k}: failed after ${got[k].s} s`);
    assert.equal(got.bad, 'E_INVALID');
    assert.equal(got.after, true);
  } finally {
    await page.close();
    for (const res of held) res.destroy();
    proxy.closeAllConnections();
    proxy.close();
  }
  assert.deepEqual(errors.filter((e) => !/Failed to load resource|ERR_/.test(e)), []);
});

test('a full Cache API quota: the files are used uncached and the runtime says so with cacheerror events', async () => {
  const got = await inPage(async (veer) => {
    const put = Cache.prototype.put;
    Cache.prototype.put = () => Promise.reject(new DOMException('the quota is full', 'QuotaExceededError'));
    try {
      const rt = await veer.init({ device: 'cpu', cache: 'veer-quota-test' });
      const events = [];
      rt.addEventListener('cacheerror', (e) => events.push(`${e.file} ${e.reason.split(':')[0]}`));
      const clf = await rt.loadClassifier('models/sentiment/');
      const label = (await clf.classify('a lovely day')).label;
      await rt.loadVector('models/vectors/positive.safetensors');
      clf.dispose();
      rt.dispose();
      const kept = (await (await caches.open('veer-quota-test')).keys()).length;
      await caches.delete('veer-quota-test');
      return { label, events: events.sort(), kept };
    } finally {
      Cache.prototype.put = put;
    }
  });
  assert.deepEqual(got, {
    label: 'positive',
    kept: 0,
    events: ['1_Pooling/config.json', 'config.json', 'model.safetensors', 'positive.safetensors', 'sentence_bert_config.json', 'tokenizer.json'].map((f) => `${f} QuotaExceededError`),
  });
});

// Offline the files come from the Cache API with no request. A new model instance (a worker, or inline a
// fresh import of the glue) also needs the library's own files, which offline only the HTTP cache (the
// test server sends no-cache) or a service worker could give (docs/js-api.md, "Offline"): so here the
// runtime's existing instance loads a vector, and fetchFile reads a model's files.
test('offline after a first visit: files come from the Cache API without a request', async () => {
  const requests = [];
  const onRequest = (r) => r.url().includes('/models/') && requests.push(r.url());
  const page = await blankPage(context, www);
  const errors = watch(page);
  try {
    await page.evaluate(async (lib) => {
      window.veer = await import(lib);
      window.rt = await veer.init({ device: 'cpu' });
      (await rt.loadClassifier('models/topic/', { integrity: 'manifest' })).dispose(); // online: cached
      await rt.loadVector('models/vectors/positive.safetensors', { integrity: 'manifest' });
    }, `${www}lib/veer.js`);
    await context.setOffline(true);
    context.on('request', onRequest);
    const got = await page.evaluate(async () => {
      const v = await rt.loadVector('models/vectors/positive.safetensors', { integrity: 'manifest' });
      const files = {};
      for (const [f, kind] of [['config.json', 'json'], ['tokenizer.json', 'json'], ['model.safetensors', 'safetensors']]) {
        files[f] = (await veer.fetchFile(`models/topic/${f}`, { kind })).cached;
      }
      return { vector: v.toBytes().length > 0, files };
    });
    assert.deepEqual(got, { vector: true, files: { 'config.json': true, 'tokenizer.json': true, 'model.safetensors': true } });
    assert.deepEqual(requests, [], 'requests made while offline');
  } finally {
    context.off('request', onRequest);
    await context.setOffline(false);
    await page.evaluate(() => rt.dispose()).catch(() => {});
    await page.close();
  }
  assert.deepEqual(errors, []);
});

test('integrity cannot be skipped: a manifest entry must pin sha256 and size; an integrity object must hash every fetched file', async () => {
  const page = await blankPage(context, www);
  try {
    // A manifest whose weights entry lost its sha256: the file would otherwise be used unverified.
    await page.route(`**/${basename(wwwDir)}/models/manifest.json`, async (route) => {
      const response = await route.fetch();
      const manifest = await response.json();
      delete manifest.files['sentiment/model.safetensors'].sha256;
      await route.fulfill({ response, json: manifest });
    });
    const got = await page.evaluate(async (lib) => {
      const veer = await import(lib);
      const rt = await veer.init({ device: 'cpu', cache: false });
      const attempt = (p) => p.then(() => 'loaded', (e) => ({ code: e.code, file: e.file, message: e.message }));
      const unpinned = await attempt(veer.loadClassifier('models/sentiment/', { runtime: rt, integrity: 'manifest' }));
      const noHash = await attempt(veer.loadClassifier('models/topic/', { runtime: rt, integrity: { weights: '0'.repeat(64) } }));
      const shortHash = await attempt(veer.loadVector('models/vectors/positive.safetensors', { runtime: rt, integrity: { sha256: 'abc' } }));
      return { unpinned, noHash, shortHash };
    }, `${www}lib/veer.js`);
    assert.equal(got.unpinned.code, 'E_INTEGRITY', JSON.stringify(got.unpinned));
    assert.match(got.unpinned.message, /model\.safetensors: the entry in .*manifest\.json needs "sha256"/);
    assert.equal(got.noHash.code, 'E_INTEGRITY', JSON.stringify(got.noHash));
    assert.match(got.noHash.message, /integrity needs a sha256/);
    assert.equal(got.shortHash.code, 'E_INTEGRITY', JSON.stringify(got.shortHash));
  } finally {
    await page.close();
  }
});

test('integrity: a corrupted file is rejected and never cached; HTML pages and 404s are errors naming the file', async () => {
  const page = await blankPage(context, www);
  try {
    // One digit changed in transit: same size, still JSON, so only the sha256 can tell.
    await page.route(`**/${basename(wwwDir)}/models/sentiment/config.json`, async (route) => {
      const response = await route.fetch();
      const body = (await response.text()).replace(/\d/, (d) => (d === '0' ? '1' : '0'));
      await route.fulfill({ response, body });
    });
    // A static host's "not found" page with status 200.
    await page.route(`**/${basename(wwwDir)}/models/topic/tokenizer.json`, (route) => route.fulfill({ status: 200, contentType: 'text/html', body: '<!doctype html><title>Not here</title>' }));
    const got = await page.evaluate(async (lib) => {
      const veer = await import(lib);
      const rt = await veer.init({ device: 'cpu', cache: 'veer-integrity-test' });
      const attempt = (p) => p.then(() => ({ ok: true }), (e) => ({ name: e.name, code: e.code, file: e.file, message: e.message, isError: e instanceof Error }));
      const cache = await caches.open('veer-integrity-test');
      const corrupted = await attempt(veer.loadClassifier('models/sentiment/', { runtime: rt, integrity: 'manifest' }));
      const cachedConfig = !!(await cache.match(new URL('models/sentiment/config.json', location.href).href));
      const html = await attempt(veer.loadClassifier('models/topic/', { runtime: rt }));
      const cachedTokenizer = !!(await cache.match(new URL('models/topic/tokenizer.json', location.href).href));
      const missing = await attempt(veer.loadClassifier('models/no-such-model/', { runtime: rt }));
      const badSha = await attempt(veer.loadVector('models/vectors/positive.safetensors', { runtime: rt, integrity: { sha256: '0'.repeat(64) } }));
      const badDevice = await attempt(veer.init({ device: 'tpu' }));
      await caches.delete('veer-integrity-test');
      return { corrupted, cachedConfig, html, cachedTokenizer, missing, badSha, badDevice };
    }, `${www}lib/veer.js`);
    assert.equal(got.corrupted.code, 'E_INTEGRITY', JSON.stringify(got.corrupted));
    assert.equal(got.corrupted.isError, true);
    assert.equal(got.corrupted.file, 'config.json');
    assert.match(got.corrupted.message, /config\.json: sha256 [0-9a-f]{64} does not match/);
    assert.equal(got.cachedConfig, false, 'the corrupted config.json was cached');
    assert.equal(got.html.code, 'E_CONTENT', JSON.stringify(got.html));
    assert.match(got.html.message, /tokenizer\.json: .*HTML/);
    assert.equal(got.cachedTokenizer, false, 'the HTML page was cached');
    assert.equal(got.missing.code, 'E_HTTP', JSON.stringify(got.missing));
    assert.match(got.missing.message, /HTTP 404 .*no-such-model/);
    assert.equal(got.badSha.code, 'E_INTEGRITY', JSON.stringify(got.badSha));
    assert.equal(got.badDevice.code, 'E_INVALID', JSON.stringify(got.badDevice));
  } finally {
    await page.close();
  }
});

test('fetches stop reading at the size the manifest declares; a Content-Length no instance can hold is refused unread', async () => {
  const page = await blankPage(context, www);
  try {
    // config.json followed by 8 MiB of padding: a host serving far more than the manifest pins.
    await page.route(`**/${basename(wwwDir)}/models/sentiment/config.json`, async (route) => {
      const response = await route.fetch();
      const body = Buffer.concat([await response.body(), Buffer.alloc(8 << 20, 0x20)]);
      await route.fulfill({ response, body });
    });
    await page.route('**/huge.bin', (route) => route.fulfill({ status: 200, headers: { 'content-type': 'application/octet-stream', 'content-length': String(5 * 2 ** 30) }, body: 'tiny' }));
    // And a 64 MiB file from the real server (which streams it in small chunks), fetched as a 1000-byte one.
    mkdirSync(`${root}test-results`, { recursive: true });
    writeFileSync(`${root}test-results/padded.bin`, Buffer.alloc(64 << 20, 0x20));
    const got = await page.evaluate(async ([lib, big]) => {
      const veer = await import(lib);
      const rt = await veer.init({ device: 'cpu', cache: false });
      const attempt = (p) => p.then(() => ({ ok: true }), (e) => ({ code: e.code, file: e.file, message: e.message }));
      const padded = await attempt(veer.loadClassifier('models/sentiment/', { runtime: rt, integrity: 'manifest' }));
      const streamed = await attempt(veer.fetchFile(big, { size: 1000, cache: false }));
      const huge = await attempt(veer.fetchFile(new URL('huge.bin', location.href).href, { cache: false }));
      const still = (await (await veer.loadClassifier('models/topic/', { runtime: rt })).classify(['the match went to extra time'])).length;
      return { padded, streamed, huge, still };
    }, [`${www}lib/veer.js`, `${server.base}test-results/padded.bin`]);
    assert.equal(got.padded.code, 'E_INTEGRITY', JSON.stringify(got.padded));
    assert.match(got.padded.message, /config\.json: the server sent \d+ bytes so far, more than the \d+ bytes expected \(the manifest's size\); stopped reading/);
    assert.equal(got.streamed.code, 'E_INTEGRITY', JSON.stringify(got.streamed));
    const m = /the server sent (\d+) bytes so far, more than the 1000 bytes expected \(the manifest's size\); stopped reading/.exec(got.streamed.message);
    assert.ok(m, got.streamed.message);
    assert.ok(Number(m[1]) < 8 << 20, `read ${m[1]} bytes of a 64 MiB file before stopping at 1000`);
    assert.equal(got.huge.code, 'E_CONTENT', JSON.stringify(got.huge));
    assert.match(got.huge.message, /huge\.bin: the server announces 5368709120 bytes \(5120\.0 MiB\), more than the 2048\.0 MiB/);
    assert.equal(got.still, 1);
  } finally {
    await page.close();
    rmSync(`${root}test-results/padded.bin`, { force: true });
  }
});

test('chat: OpenAI-style messages; a second turn continues the KV cache and gives the ids of a full prefill', async () => {
  const got = await inPage(async (veer) => {
    await veer.init({ device: 'cpu' });
    const gen = await veer.loadGenerator('models/smollm2-135m-instruct/', { integrity: 'manifest' });
    const run = async (prompt) => {
      const ids = [];
      let text = '';
      for await (const p of gen.generate(prompt, { maxTokens: 8, temperature: 0 })) ids.push(p.id), (text += p.text);
      return { ids, text, prompt: gen.promptTokens, reused: gen.reusedTokens };
    };
    const first = [{ role: 'system', content: 'You are a concise assistant.' }, { role: 'user', content: 'Name a colour of the sea.' }];
    const one = await run(first);
    const second = [...first, { role: 'assistant', content: one.text.trim() }, { role: 'user', content: 'And of the sky?' }];
    const two = await run(second);
    await run('Something unrelated.');
    const fresh = await run(second); // after a prompt that shares nothing: a full prefill
    const badRole = await gen.generate([{ role: 'wizard', content: 'x' }]).next().catch((e) => e.code);
    const badPrompt = await gen.generate(42).next().catch((e) => e.code);
    gen.dispose();
    return { one, two, fresh, badRole, badPrompt };
  });
  assert.ok(got.one.ids.length > 0 && got.one.reused === 0, JSON.stringify(got.one));
  assert.ok(got.two.reused >= got.one.prompt, `second turn reused ${got.two.reused} of ${got.two.prompt} tokens (first prompt ${got.one.prompt})`);
  assert.equal(got.fresh.reused, 0);
  assert.equal(got.fresh.prompt, got.two.prompt);
  assert.deepEqual(got.two.ids, got.fresh.ids, 'continued vs full prefill');
  assert.equal(got.badRole, 'E_INVALID');
  assert.equal(got.badPrompt, 'E_INVALID');
});

test('generation with int8 weights (the default on a float folder): the same ids as the native CLI\'s int8 kernel; other values rejected', async () => {
  const prompt = 'Describe the weather today in one sentence.';
  const got = await inPage(async (veer, prompt) => {
    await veer.init({ device: 'cpu' });
    const gen = await veer.loadGenerator('models/smollm2-135m-instruct/', { weights: 'int8' });
    const ids = [];
    for await (const p of gen.generate(prompt, { maxTokens: 16, temperature: 0, chat: true })) ids.push(p.id);
    const weights = gen.weights;
    gen.dispose();
    const bad = await veer.loadGenerator('models/smollm2-135m-instruct/', { weights: 'int4' }).catch((e) => ({ code: e.code, message: e.message }));
    return { ids, weights, bad };
  }, prompt);
  assert.equal(got.weights, 'int8');
  // The browser's wasm SIMD128 kernel and the native SSE2 one sum the same integers in the same lanes.
  const native = JSON.parse(execFileSync(`${root}target/release/veer`, ['generate', '--model', `${models}smollm2-135m-instruct`, '--prompt', prompt, '--chat', '--max-tokens', '16', '--weights', 'int8'], { encoding: 'utf8' }));
  assert.deepEqual(got.ids, native.ids, 'int8 greedy ids, browser vs native');
  assert.equal(got.bad.code, 'E_INVALID');
  assert.match(got.bad.message, /int4.*f32.*int8|f32.*int8.*int4/s);
});

test('generation on the default q4 folder: streams, aborts with an AbortSignal, and steering changes the output (CPU)', async () => {
  const got = await inPage(async (veer) => {
    await veer.init({ device: 'cpu' });
    const gen = await veer.loadGenerator('models/smollm2-135m-instruct-q4/', { integrity: 'manifest' });
    const positive = await veer.loadVector('models/vectors/positive.safetensors', { integrity: 'manifest' });
    const prompt = 'Describe the weather today in one sentence.';
    const options = { maxTokens: 12, temperature: 0, chat: true };
    const run = async (o) => {
      const pieces = [];
      for await (const p of gen.generate(prompt, { ...options, ...o })) pieces.push(p);
      return { text: pieces.map((p) => p.text).join(''), n: pieces.length, ids: pieces.map((p) => p.id), finish: gen.finish };
    };
    const plain = await run({});
    const steered = await run({ steer: [{ vector: positive, strength: positive.defaultStrength }] });
    // The strength defaults to the vector's own; minP 1 keeps only the top token: greedy at any temperature.
    const steeredDefault = await run({ steer: [{ vector: positive }] });
    const minP = await run({ temperature: 1, seed: 7, minP: 1 });
    const sampled = await run({ temperature: 0.9, topP: 0.95, seed: 11 });
    // Abort after two pieces: the loop throws an AbortError with code E_ABORTED.
    const controller = new AbortController();
    let seen = 0;
    let aborted;
    try {
      for await (const _ of gen.generate('Count from one to one hundred.', { maxTokens: 100, temperature: 0, chat: true, signal: controller.signal })) {
        if (++seen === 2) controller.abort();
      }
    } catch (e) {
      aborted = { name: e.name, code: e.code, finish: gen.finish };
    }
    const again = await run({}); // the generator is usable after an abort
    // An iterator abandoned after one piece (no break, no return()) does not block the next
    // generate(), which supersedes it: read again, it ends with E_ABORTED.
    const abandoned = gen.generate(prompt, options);
    await abandoned.next();
    const afterAbandoned = await run({});
    const abandonedNext = await abandoned.next().then((r) => JSON.stringify(r), (e) => e.code);
    const computed = await gen.computeVector([
      { from: 'The food was cold.', to: 'The food was lovely.' },
      { from: 'What a dull day.', to: 'What a wonderful day.' },
    ]);
    const scaled = await positive.scale(2);
    const withComputed = await run({ steer: [{ vector: computed, strength: 0.1 }] });
    const badStrength = await gen.generate(prompt, { steer: [{ vector: positive, strength: {} }] }).next().catch((e) => e.code);
    const wrong = await gen.generate(prompt, { steer: [{ vector: 'positive' }] }).next().catch((e) => e.code);
    const unknownOption = await gen.generate(prompt, { maxTokenz: 3 }).next().catch((e) => e.code);
    // A function cannot be a model option: E_INVALID in a worker as inline (not a DataCloneError).
    const functionOption = await gen.generate(prompt, { maxTokens: () => 3 }).next().catch((e) => e.code);
    gen.dispose();
    return {
      device: gen.device,
      weights: gen.weights,
      plain,
      steered,
      steeredDefault,
      minP,
      sampled,
      withComputed,
      badStrength,
      aborted,
      seen,
      again,
      afterAbandoned,
      abandonedNext,
      positive: { numLayers: positive.numLayers, hidden: positive.hidden, defaultStrength: positive.defaultStrength },
      computed: { numLayers: computed.numLayers, hidden: computed.hidden, bytes: computed.toBytes().length },
      scaled: scaled.numLayers,
      wrong,
      unknownOption,
      functionOption,
    };
  });
  assert.equal(got.device, 'cpu');
  assert.equal(got.weights, 'q4', '4-bit in memory, as the file holds it');
  assert.ok(got.plain.n >= 4 && got.plain.n <= 12, JSON.stringify(got.plain));
  assert.equal(got.plain.text.length > 0, true);
  assert.notEqual(got.steered.text, got.plain.text, `steered output equals plain: ${got.plain.text}`);
  assert.deepEqual(got.steeredDefault.ids, got.steered.ids, 'strength defaults to the vector file');
  assert.deepEqual(got.minP.ids, got.plain.ids, 'minP 1 samples the greedy token');
  // A seed gives the same sample in the browser (wasm32) as natively.
  const native = JSON.parse(execFileSync(`${root}target/release/veer`, ['generate', '--model', `${models}smollm2-135m-instruct-q4`, '--prompt', 'Describe the weather today in one sentence.', '--chat', '--max-tokens', '12', '--temperature', '0.9', '--top-p', '0.95', '--seed', '11'], { encoding: 'utf8' }));
  assert.deepEqual(got.sampled.ids, native.ids, `sampled: browser ${got.sampled.text} vs native ${native.text}`);
  assert.notEqual(got.withComputed.text, got.plain.text, 'a vector computed in the generator steers it');
  assert.equal(got.badStrength, 'E_INVALID');
  assert.deepEqual(got.aborted, { name: 'AbortError', code: 'E_ABORTED', finish: 'abort' });
  assert.equal(got.seen, 2);
  assert.deepEqual(got.again, got.plain, 'greedy generation after an abort is the same as before');
  assert.deepEqual(got.afterAbandoned, got.plain, 'generation after an abandoned iterator');
  assert.equal(got.abandonedNext, 'E_ABORTED');
  assert.deepEqual(got.positive, { numLayers: 30, hidden: 576, defaultStrength: got.positive.defaultStrength });
  assert.ok(got.positive.defaultStrength > 0);
  assert.equal(got.computed.numLayers, 30);
  assert.equal(got.computed.hidden, 576);
  assert.ok(got.computed.bytes > 30 * 576 * 4);
  assert.equal(got.scaled, 30);
  assert.equal(got.wrong, 'E_INVALID');
  assert.equal(got.unknownOption, 'E_INVALID');
  assert.equal(got.functionOption, 'E_INVALID');
});

/** BBC News examples (bench/train_data.py over the CSV that `make assets` fetched for the topic
 * classifier): `k` per label to train on and 10 per label held out, first 600 characters, one line. */
function bbcExamples(k) {
  const data = `${process.env.VEER_CACHE ?? `${root}.cache`}/data`;
  const out = `${root}test-results/train-data`;
  if (!existsSync(`${out}/bbc-test.jsonl`)) execFileSync('python3', [`${root}bench/train_data.py`, data, out], { stdio: 'ignore' });
  const read = (f) => readFileSync(`${out}/${f}`, 'utf8').trim().split('\n').map((l) => JSON.parse(l)).map((e) => ({ text: e.text.slice(0, 600).replace(/\s+/g, ' '), label: e.label }));
  const test = read('bbc-test.jsonl');
  const held = ['business', 'entertainment', 'politics', 'sports', 'tech'].flatMap((l) => test.filter((e) => e.label === l).slice(0, 10));
  return { train: read(`bbc-${k}.jsonl`), test: held };
}

test('trainClassifier trains a head in the page that classifies held-out texts, and it loads natively with the same scores', async () => {
  const { train, test: held } = bbcExamples(8);
  const got = await inPage(
    async (veer, { train, held }) => {
      await veer.init({ device: 'cpu' });
      const progress = [];
      const clf = await veer.trainClassifier('models/all-minilm-l6-v2/', train, { seed: 3, onProgress: (p) => progress.push(p) });
      const results = await clf.classify(held.map((e) => e.text));
      const head = clf.save();
      // The same seed and examples give the same head; the saved head loads on the encoder again.
      const again = await veer.trainClassifier('models/all-minilm-l6-v2/', train, { seed: 3 });
      const same = again.save().every((b, i) => b === head[i]) && again.save().length === head.length;
      again.dispose();
      const loaded = await veer.loadClassifier('models/all-minilm-l6-v2/', { head });
      const reloaded = await loaded.classify(held.map((e) => e.text));
      const code = (p) => p.then(() => 'ok', (e) => `${e.code} ${e.message}`);
      const controller = new AbortController();
      const aborted = await code(veer.trainClassifier('models/all-minilm-l6-v2/', train, { onProgress: (p) => p.phase === 'train' && controller.abort(), signal: controller.signal }));
      const secret = 'my private note about a patient';
      const badLabel = await code(veer.trainClassifier('models/all-minilm-l6-v2/', [...train, { text: secret, label: 'weather' }], { labels: ['business', 'entertainment', 'politics', 'sports', 'tech'] }));
      const oneExample = await code(veer.trainClassifier('models/all-minilm-l6-v2/', [...train, { text: secret, label: 'weather' }]));
      const badOption = await code(veer.trainClassifier('models/all-minilm-l6-v2/', train, { epochs: 0 }));
      const folderHead = await code(Promise.resolve().then(() => loaded.save()));
      const plain = await veer.loadClassifier('models/sentiment/');
      const plainSave = await code(Promise.resolve().then(() => plain.save()));
      plain.dispose();
      loaded.dispose();
      return {
        labels: clf.labels, training: clf.training, results, reloaded, head: Array.from(head), same,
        phases: [...new Set(progress.map((p) => p.phase))], lastProgress: progress.at(-1),
        aborted, badLabel, oneExample, badOption, folderHead, plainSave, secret,
      };
    },
    { train, held },
  );
  const correct = got.results.filter((r, i) => r.label === held[i].label).length;
  const accuracy = correct / held.length;
  // 8 examples per label, 5 labels; the native `veer train` on the same data reaches ~0.9.
  assert.ok(accuracy >= 0.75, `held-out accuracy ${accuracy}`);
  assert.deepEqual(got.labels, [...new Set(train.map((e) => e.label))]);
  assert.equal(got.training.examples, 40);
  assert.equal(got.training.train + got.training.heldOut, 40);
  assert.ok(got.training.heldOut >= 5, JSON.stringify(got.training));
  assert.deepEqual(got.phases, ['embed', 'train']);
  assert.equal(got.lastProgress.done, true);
  assert.ok(got.same, 'the same seed gives the same head');
  assert.ok(maxDiff(got.reloaded, got.results.map((r) => ({ score: r.score, scores: Object.entries(r.scores) }))) <= 1e-6, 'loadClassifier(encoder, { head })');
  assert.match(got.aborted, /^E_ABORTED/);
  assert.match(got.badLabel, /^E_INVALID .*examples\[40\]\.label/);
  assert.match(got.oneExample, /^E_INVALID .*`weather` has 1 example/);
  assert.match(got.badOption, /^E_INVALID .*epochs/);
  assert.equal(got.folderHead, 'ok');
  assert.match(got.plainSave, /^E_INVALID/);
  for (const e of [got.badLabel, got.oneExample]) assert.ok(!e.includes(got.secret), 'errors never contain the user\'s text');
  // The exported head, natively: `veer classify --head` on the same encoder gives the same scores.
  mkdirSync(`${root}test-results`, { recursive: true });
  const headFile = `${root}test-results/trained-head.safetensors`;
  writeFileSync(headFile, Buffer.from(got.head));
  const native = JSON.parse(execFileSync(`${root}target/release/veer`, ['classify', '--model', `${models}all-minilm-l6-v2`, '--head', headFile, '-'], { input: held.map((e) => e.text).join('\n'), encoding: 'utf8' })).results;
  const diff = maxDiff(got.results, native.map((n) => ({ score: n.score, scores: Object.entries(n.scores) })));
  assert.ok(diff <= 1e-4, `browser vs native scores of the exported head: max |Δ| ${diff}`);
  // Trained natively from the same examples and seed (`veer train`, the same trainer): the same head,
  // up to the embeddings' rounding.
  const jsonl = (list) => list.map((e) => JSON.stringify(e)).join('\n');
  writeFileSync(`${root}test-results/train.jsonl`, jsonl(train));
  writeFileSync(`${root}test-results/held.jsonl`, jsonl(held));
  const cli = JSON.parse(execFileSync(`${root}target/release/veer`, ['train', '--encoder', `${models}all-minilm-l6-v2`, '--data', `${root}test-results/train.jsonl`, '--test', `${root}test-results/held.jsonl`, '--out', `${root}test-results/native-head.safetensors`, '--options', '{"seed": 3}'], { encoding: 'utf8' }));
  assert.equal(cli.progress.epoch, got.training.epochs, 'the same number of epochs');
  const trained = maxDiff(got.results, cli.test.scores.map((row) => ({ score: Math.max(...row), scores: cli.labels.map((l, i) => [l, row[i]]) })));
  assert.ok(trained <= 1e-3, `browser-trained vs natively trained head: max |Δ| ${trained}`);
});
