// The library as a careless or hostile page uses it (issue #32): wrong types, unknown options, bad
// bytes, calls on a disposed model, dispose() while a call or a generation is in flight, concurrent
// calls and loads, abandoned iterators. Every case runs on the CPU in a worker and inline (`worker:
// false`) and asserts the error code, the same code in both, and that the model still answers
// afterwards; the page must end with no page error and no unhandled rejection. Each case has a time
// limit, so a hang is a failure that names the case rather than a stuck run.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { dirname, basename } from 'node:path';
import { serve, launch, blankPage, watch, www as wwwDir } from './helpers.mjs';

let server;
let browser;
let www;
before(async () => {
  server = await serve(dirname(wwwDir), Number(process.env.VEER_HOSTILE_PORT ?? 8791));
  www = `${server.base}${basename(wwwDir)}/`;
  browser = await launch();
});
after(async () => {
  await browser?.close();
  server?.stop();
});

// Run in the page: every case in one mode ({worker: true|false}); resolves to {name: outcome}, where an
// outcome is 'ok:<value>' or the error's code ('TypeError' etc. for a non-VeerError, 'TIMEOUT').
async function runCases(veer, { worker }) {
  const outcome = async (fn, ms = 30_000) => {
    let timer;
    const limit = new Promise((resolve) => (timer = setTimeout(() => resolve('TIMEOUT'), ms)));
    const run = (async () => {
      try {
        const v = await fn();
        return `ok:${typeof v === 'string' ? v : JSON.stringify(v)}`.slice(0, 120);
      } catch (e) {
        // The user's text (marked SECRET- in the cases that pass it) never appears in a message.
        if (String(e?.message).includes('SECRET-')) return `${e?.code}: the message holds the user's text`;
        return e instanceof veer.VeerError ? e.code : `${e?.name ?? typeof e}: ${e?.message ?? e}`;
      }
    })();
    try {
      return await Promise.race([run, limit]);
    } finally {
      clearTimeout(timer);
    }
  };
  const rt = await veer.init({ device: 'cpu', worker });
  const clf = await rt.loadClassifier('models/sentiment/');
  const gen = await rt.loadGenerator('models/smollm2-135m-instruct-q4/');
  const vector = await rt.loadVector('models/vectors/positive.safetensors');
  const label = async () => (await clf.classify('a lovely day')).label;
  const tokens = async (g, n, options = {}) => {
    const ids = [];
    for await (const p of g.generate('Say hello.', { maxTokens: n, temperature: 0, chat: true, ...options })) ids.push(p.id);
    return ids;
  };
  const reference = await tokens(gen, 4);
  const out = {};
  const cases = {
    // init and load: arguments checked before anything is fetched
    'init: unknown device': () => veer.init({ device: 'gpu', worker }),
    'init: unknown option': () => veer.init({ devise: 'cpu', worker }),
    'init: worker not a boolean': () => veer.init({ device: 'cpu', worker: 'yes' }),
    'init: wasmUrl a number': () => veer.init({ device: 'cpu', worker, wasmUrl: 42 }),
    'init: cache a number': () => veer.init({ device: 'cpu', worker, cache: 7 }),
    'load: source a number': () => rt.loadClassifier(42),
    'load: source null': () => rt.loadClassifier(null),
    'load: onProgress not a function': () => rt.loadClassifier('models/sentiment/', { onProgress: 'x' }),
    'load: signal not an AbortSignal': () => rt.loadClassifier('models/sentiment/', { signal: {} }),
    'load: workers 0': () => rt.loadClassifier('models/sentiment/', { workers: 0 }),
    'load: workers 1.5': () => rt.loadClassifier('models/sentiment/', { workers: 1.5 }),
    'load: workers 10000': () => rt.loadClassifier('models/sentiment/', { workers: 10000 }),
    'load: maxLength -1': () => rt.loadClassifier('models/sentiment/', { maxLength: -1 }),
    'load: unknown option': () => rt.loadClassifier('models/sentiment/', { maxLenght: 8 }),
    'load: integrity a number': () => rt.loadClassifier('models/sentiment/', { integrity: 5 }),
    'load: missing folder': () => rt.loadClassifier('models/no-such-folder/'),
    'load: weights that are not safetensors': () => rt.loadClassifier({ config: 'models/sentiment/config.json', tokenizer: 'models/sentiment/tokenizer.json', weights: new Uint8Array(4096).fill(7) }),
    'load: config of the wrong shape': () => rt.loadClassifier({ config: { hidden_size: 'big' }, tokenizer: 'models/sentiment/tokenizer.json', weights: 'models/sentiment/model.safetensors' }),
    'load: tokenizer that is not JSON': () => rt.loadClassifier({ config: 'models/sentiment/config.json', weights: 'models/sentiment/model.safetensors', tokenizer: new Uint8Array([123, 34, 0, 255]) }),
    'load: aborted while loading': () => {
      const c = new AbortController();
      const p = rt.loadClassifier('models/sentiment/', { signal: c.signal });
      c.abort();
      return p;
    },
    'load: a generator folder as a classifier': () => rt.loadClassifier('models/smollm2-135m-instruct-q4/'),
    'load: vector bytes that are not safetensors': () => rt.loadVector(new Uint8Array(100).fill(1)),
    // calls
    'classify: a number': () => clf.classify(42),
    'classify: null among texts': () => clf.classify(['SECRET-1 my diagnosis', null]),
    'classify: unknown option': () => clf.classify('ok', { batch: 2 }),
    'classify: signal not an AbortSignal': () => clf.classify('ok', { signal: 'stop' }),
    'classify: signal already aborted': () => clf.classify('ok', { signal: AbortSignal.abort() }),
    'classify: an empty list': () => clf.classify([]),
    'embed: a 1 MB text (truncated, not refused)': async () => (await clf.embed('word '.repeat(200_000))).length,
    'tokenize: an object': () => clf.tokenize({ text: 'x' }),
    '20 concurrent calls give the sequential results': async () => {
      const texts = Array.from({ length: 20 }, (_, i) => `review number ${i}: ${i % 2 ? 'awful' : 'great'} food`);
      const one = [];
      for (const t of texts) one.push((await clf.classify(t)).score);
      const many = (await Promise.all(texts.map((t) => clf.classify(t)))).map((r) => r.score);
      return JSON.stringify(one) === JSON.stringify(many);
    },
    'the same folder loaded 3 times at once': async () => {
      const all = await Promise.all([0, 1, 2].map(() => rt.loadClassifier('models/sentiment/')));
      const labels = await Promise.all(all.map((m) => m.classify('a lovely day').then((r) => r.label)));
      all.forEach((m) => m.dispose());
      return labels.join(',');
    },
    'a long-lived signal: every abort listener added is removed': async () => {
      const signal = new AbortController().signal;
      let live = 0;
      const add = signal.addEventListener.bind(signal);
      const remove = signal.removeEventListener.bind(signal);
      signal.addEventListener = (type, fn, o) => (type === 'abort' && live++, add(type, fn, o));
      signal.removeEventListener = (type, fn, o) => (type === 'abort' && live--, remove(type, fn, o));
      for (let i = 0; i < 5; i++) await clf.classify(['a', 'b'], { signal });
      for (let i = 0; i < 2; i++) await tokens(gen, 2, { signal });
      const m = await rt.loadClassifier('models/sentiment/', { signal });
      m.dispose();
      return live;
    },
    'memory stays flat: 50 classify calls and 5 generations add no wasm memory after a warm-up': async () => {
      for (let i = 0; i < 5; i++) await clf.classify(['a warm-up text', 'another one']);
      await tokens(gen, 8);
      const before = [await clf.memoryBytes(), await gen.memoryBytes()];
      for (let i = 0; i < 50; i++) await clf.classify(['a warm-up text', 'another one']);
      for (let i = 0; i < 5; i++) await tokens(gen, 8);
      const after = [await clf.memoryBytes(), await gen.memoryBytes()];
      return after.map((a, i) => a - before[i]);
    },
    'dispose() during a classify': async () => {
      const m = await rt.loadClassifier('models/sentiment/');
      const p = m.classify(Array.from({ length: 64 }, () => 'a long enough sentence to take a moment to classify'));
      m.dispose();
      return p;
    },
    'a call after dispose()': async () => {
      const m = await rt.loadClassifier('models/sentiment/');
      m.dispose();
      return m.classify('ok');
    },
    'dispose() twice': async () => {
      const m = await rt.loadClassifier('models/sentiment/');
      m.dispose();
      m.dispose();
      return 'quiet';
    },
    // generation
    'generate: maxTokens -1': () => tokens(gen, -1),
    'generate: temperature a string': () => tokens(gen, 2, { temperature: 'SECRET-2 hot' }),
    'generate: a function-valued option': () => tokens(gen, 2, { onToken: () => {} }),
    'generate: prompt a number': async () => {
      for await (const _ of gen.generate(42, { maxTokens: 2 })) return 'a token';
    },
    'generate: steer with something that is not a Vector': () => tokens(gen, 2, { steer: [{ vector: { id: 'x' }, strength: 1 }] }),
    'generate: steer strength NaN': () => tokens(gen, 2, { steer: [{ vector, strength: NaN }] }),
    'generate: steer not a list': () => tokens(gen, 2, { steer: vector }),
    'generate: an iterator abandoned after 1 token, then a full one': async () => {
      for await (const _ of gen.generate('Say hello.', { maxTokens: 4, temperature: 0, chat: true })) break;
      return JSON.stringify(await tokens(gen, 4)) === JSON.stringify(reference);
    },
    'generate: return() mid-way, then a full one': async () => {
      const it = gen.generate('Say hello.', { maxTokens: 4, temperature: 0, chat: true });
      await it.next();
      await it.return();
      return JSON.stringify(await tokens(gen, 4)) === JSON.stringify(reference);
    },
    'generate: a second generate() ends the first (E_ABORTED at its next step)': async () => {
      const first = gen.generate('Say hello.', { maxTokens: 8, temperature: 0, chat: true });
      await first.next();
      const second = tokens(gen, 4);
      const rest = (async () => {
        for await (const _ of first);
      })();
      const [a, b] = await Promise.allSettled([rest, second]);
      return `${a.status === 'rejected' ? a.reason.code : 'finished'} ${JSON.stringify(b.value) === JSON.stringify(reference)}`;
    },
    'generate: aborted by a signal mid-way': async () => {
      const c = new AbortController();
      const ids = [];
      for await (const p of gen.generate('Say hello.', { maxTokens: 16, temperature: 0, chat: true, signal: c.signal })) {
        ids.push(p.id);
        if (ids.length === 2) c.abort();
      }
      return `${ids.length} ${gen.finish}`;
    },
    'generate: dispose() mid-generation': async () => {
      const g = await rt.loadGenerator('models/smollm2-135m-instruct-q4/');
      const it = g.generate('Say hello.', { maxTokens: 16, temperature: 0, chat: true });
      await it.next();
      g.dispose();
      return it.next();
    },
    'applyChatTemplate: not a list': () => gen.applyChatTemplate('hello'),
    'applyChatTemplate: a message without content': () => gen.applyChatTemplate([{ role: 'user' }]),
    'applyChatTemplate: content not a string, with the user\'s text': () => gen.applyChatTemplate([{ role: 'user', content: 'SECRET-3 hello' }, { role: 'user', content: { text: 'SECRET-4 my bank details' } }]),
    'computeVector: no pairs': () => gen.computeVector([]),
    'computeVector: pairs of numbers': () => gen.computeVector([{ from: 'SECRET-5 a text', to: 2 }]),
    'computeVector: method a number': () => gen.computeVector([{ from: 'a', to: 'b' }], { method: 5 }),
    'load: generator name a number': () => rt.loadGenerator('models/smollm2-135m-instruct-q4/', { name: 5 }),
    'load: worker option not a boolean': () => rt.loadClassifier('models/sentiment/', { worker: 1 }),
    'vector: scale by a string': () => vector.scale('two'),
    'encode: a number': () => gen.encode(5),
  };
  for (const [name, fn] of Object.entries(cases)) {
    const got = await outcome(fn);
    // The models still answer (a later call works) after every case.
    const after = await outcome(label, 30_000);
    const afterGen = await outcome(async () => JSON.stringify(await tokens(gen, 4)) === JSON.stringify(reference), 30_000);
    out[name] = { got, after, afterGen };
  }
  clf.dispose();
  gen.dispose();
  rt.dispose();
  return out;
}

// What each case must give, in a worker and inline alike.
const EXPECTED = {
  'init: unknown device': 'E_INVALID',
  'init: unknown option': 'E_INVALID',
  'init: worker not a boolean': 'E_INVALID',
  'init: wasmUrl a number': 'E_INVALID',
  'init: cache a number': 'E_INVALID',
  'load: source a number': 'E_INVALID',
  'load: source null': 'E_INVALID',
  'load: onProgress not a function': 'E_INVALID',
  'load: signal not an AbortSignal': 'E_INVALID',
  'load: workers 0': 'E_INVALID',
  'load: workers 1.5': 'E_INVALID',
  'load: workers 10000': 'E_INVALID',
  'load: maxLength -1': 'E_INVALID',
  'load: unknown option': 'E_INVALID',
  'load: integrity a number': 'E_INVALID',
  'load: missing folder': 'E_HTTP',
  'load: weights that are not safetensors': 'E_FILE',
  // A field of the wrong type is a malformed file (E_FILE), as is a tokenizer that is not JSON; E_CONFIG
  // is a well-formed field that is missing, out of range or unsupported.
  'load: config of the wrong shape': 'E_FILE',
  'load: tokenizer that is not JSON': 'E_FILE',
  'load: aborted while loading': 'E_ABORTED',
  'load: a generator folder as a classifier': 'E_CONFIG',
  'load: vector bytes that are not safetensors': 'E_FILE',
  'classify: a number': 'E_INVALID',
  'classify: null among texts': 'E_INVALID',
  'classify: unknown option': 'E_INVALID',
  'classify: signal not an AbortSignal': 'E_INVALID',
  'classify: signal already aborted': 'E_ABORTED',
  'classify: an empty list': 'ok:[]',
  'embed: a 1 MB text (truncated, not refused)': 'ok:384',
  'tokenize: an object': 'E_INVALID',
  '20 concurrent calls give the sequential results': 'ok:true',
  'the same folder loaded 3 times at once': 'ok:positive,positive,positive',
  'a long-lived signal: every abort listener added is removed': 'ok:0',
  'memory stays flat: 50 classify calls and 5 generations add no wasm memory after a warm-up': 'ok:[0,0]',
  'dispose() during a classify': 'E_DISPOSED',
  'a call after dispose()': 'E_DISPOSED',
  'dispose() twice': 'ok:quiet',
  'generate: maxTokens -1': 'E_INVALID',
  'generate: temperature a string': 'E_INVALID',
  'generate: a function-valued option': 'E_INVALID',
  'generate: prompt a number': 'E_INVALID',
  'generate: steer with something that is not a Vector': 'E_INVALID',
  'generate: steer strength NaN': 'E_INVALID',
  'generate: steer not a list': 'E_INVALID',
  'generate: an iterator abandoned after 1 token, then a full one': 'ok:true',
  'generate: return() mid-way, then a full one': 'ok:true',
  'generate: a second generate() ends the first (E_ABORTED at its next step)': 'ok:E_ABORTED true',
  'generate: aborted by a signal mid-way': 'E_ABORTED', // the loop ends with an AbortError (docs/js-api.md)
  'generate: dispose() mid-generation': 'E_DISPOSED',
  'applyChatTemplate: not a list': 'E_INVALID',
  'applyChatTemplate: a message without content': 'E_INVALID',
  "applyChatTemplate: content not a string, with the user's text": 'E_INVALID',
  'computeVector: no pairs': 'E_INVALID',
  'computeVector: pairs of numbers': 'E_INVALID',
  'computeVector: method a number': 'E_INVALID',
  'load: generator name a number': 'E_INVALID',
  'load: worker option not a boolean': 'E_INVALID',
  'vector: scale by a string': 'E_INVALID',
  'encode: a number': 'E_INVALID',
};

for (const worker of [true, false]) {
  test(`${Object.keys(EXPECTED).length} hostile uses ${worker ? 'in a worker' : 'inline'}: the documented code each, and the page and its models survive`, async () => {
    const page = await blankPage(await browser.newContext(), www);
    const errors = watch(page);
    const unhandled = [];
    await page.exposeFunction('__unhandled', (m) => unhandled.push(m));
    await page.evaluate(() => addEventListener('unhandledrejection', (e) => window.__unhandled(String(e.reason?.code ?? e.reason))));
    try {
      const got = await page.evaluate(
        async ([src, lib, mode]) => (0, eval)(`(${src})`)(await import(lib), mode),
        [runCases.toString(), `${www}lib/veer.js`, { worker }],
      );
      assert.deepEqual(Object.keys(got), Object.keys(EXPECTED), 'the cases the page ran');
      const wrong = Object.entries(got).filter(([name, r]) => r.got !== EXPECTED[name]).map(([name, r]) => `${name}: got ${r.got}, expected ${EXPECTED[name]}`);
      assert.deepEqual(wrong, [], wrong.join('\n'));
      const dead = Object.entries(got).filter(([, r]) => r.after !== 'ok:positive' || r.afterGen !== 'ok:true').map(([name, r]) => `${name}: afterwards ${r.after} / ${r.afterGen}`);
      assert.deepEqual(dead, [], dead.join('\n'));
      await page.waitForTimeout(200); // a rejection nobody handled is reported a task later
      assert.deepEqual(unhandled, [], 'unhandled rejections');
      assert.deepEqual(errors, []);
    } finally {
      await page.close();
    }
  });
}
