// veer.js: text classifiers, embeddings and steered generation in the browser, as an ES module that
// needs no bundler. Models run in a module Web Worker by default (`worker: false` runs them on the
// page); the API is the same either way.
//
//   import { init, loadClassifier, loadGenerator, loadVector } from './veer.js';
//   const rt = await init({ device: 'auto' });                 // rt.device: 'webgpu' | 'cpu'
//   const clf = await loadClassifier('models/sentiment/', { onProgress, integrity: 'manifest' });
//   await clf.classify(['great stuff', 'awful']);             // [{label, score, scores}]
//
// Page-relative URLs (models) resolve against the page; the library's own files (worker, wasm) against
// this module's URL, so it works from any static host and sub-path. The worker and the wasm are named
// by literal `new URL('./…', import.meta.url)` expressions so that bundlers (Vite, webpack 5, Rollup,
// esbuild with a plugin) find and copy them; `workerUrl`/`wasmUrl` override both. See veer.d.ts.

import { VeerError, toVeerError, errorFromData } from './veer-error.js';
import { fetchFile, fetchVerified, clearCache, DEFAULT_CACHE } from './veer-fetch.js';

export { VeerError, clearCache, fetchFile };

const here = import.meta.url;
// Literal, for bundlers: they copy the file and rewrite the URL (do not factor `import.meta.url` out).
const DEFAULT_WASM = new URL('./pkg/veer_bg.wasm', import.meta.url).href;

/** The library's module worker: the literal form bundlers recognise, unless the page gave its own URL. */
function startWorker(workerUrl, name) {
  if (workerUrl) return new Worker(workerUrl, { type: 'module', name });
  return new Worker(new URL('./veer-worker.js', import.meta.url), { type: 'module', name });
}

/** Where page-relative URLs resolve: the document, else the worker/extension script. */
function pageBase() {
  return globalThis.document?.baseURI ?? globalThis.location?.href ?? here;
}

const resolve = (u) => new URL(String(u), pageBase()).href;

// --- wasm compilation: once per page, the compiled module shared with every worker ----------------

const compiled = new Map();

function compileWasm(url) {
  if (!compiled.has(url)) {
    const p = (async () => {
      let res;
      try {
        res = await fetch(url);
      } catch (e) {
        throw new VeerError('E_NETWORK', `veer_bg.wasm: could not fetch ${url}: ${e.message ?? e}`, { file: 'veer_bg.wasm' });
      }
      if (!res.ok) throw new VeerError('E_HTTP', `veer_bg.wasm: HTTP ${res.status} for ${url}`, { file: 'veer_bg.wasm', status: res.status });
      if ((res.headers.get('content-type') ?? '').startsWith('application/wasm')) {
        try {
          return await WebAssembly.compileStreaming(res.clone());
        } catch {
          // fall through to the buffered path
        }
      }
      const bytes = await res.arrayBuffer();
      try {
        return await WebAssembly.compile(bytes);
      } catch (e) {
        throw new VeerError('E_CONTENT', `veer_bg.wasm: not a WebAssembly module (${url}): ${e.message}`, { file: 'veer_bg.wasm' });
      }
    })();
    compiled.set(url, p);
    p.catch(() => compiled.delete(url));
  }
  return compiled.get(url);
}

// --- channels: the same requests to a worker or to an inline host ----------------------------------

class WorkerChannel {
  constructor(name, workerUrl) {
    this.pending = new Map();
    this.next = 1;
    this.dead = null;
    const where = workerUrl ?? 'veer-worker.js';
    try {
      this.worker = startWorker(workerUrl, name);
    } catch (e) {
      throw new VeerError('E_WORKER', `could not start ${where}: ${e.message ?? e}`);
    }
    this.worker.onmessage = ({ data }) => {
      const p = this.pending.get(data.id);
      if (!p) return;
      this.pending.delete(data.id);
      if (data.ok) p.resolve(data.value);
      else p.reject(errorFromData(data.error));
    };
    const fail = (message) => {
      this.dead = new VeerError('E_WORKER', message, { fatal: true });
      for (const p of this.pending.values()) p.reject(this.dead);
      this.pending.clear();
    };
    this.worker.onerror = (e) => {
      e.preventDefault?.();
      fail(`veer worker failed (${where}): ${e.message || 'script error (check that the file is served as JavaScript)'}`);
    };
    this.worker.onmessageerror = () => fail('veer worker: a message could not be deserialised');
  }

  call(op, args, transfer = []) {
    if (this.dead) return Promise.reject(this.dead);
    return new Promise((resolve, reject) => {
      const id = this.next++;
      this.pending.set(id, { resolve, reject });
      this.worker.postMessage({ id, op, args }, transfer);
    });
  }

  close() {
    this.worker.terminate();
    this.dead ??= new VeerError('E_DISPOSED', 'this model was disposed');
    for (const p of this.pending.values()) p.reject(this.dead);
    this.pending.clear();
  }
}

let hostModule;

class InlineChannel {
  async open() {
    hostModule ??= import('./veer-host.js');
    this.host = new (await hostModule).Host();
    return this;
  }

  async call(op, args) {
    if (this.closed) throw new VeerError('E_DISPOSED', 'this model was disposed');
    const result = await this.host.handle(op, args);
    return result && typeof result === 'object' && 'transfer' in result && 'value' in result ? result.value : result;
  }

  close() {
    if (!this.closed) this.host.handle('dispose').catch(() => {});
    this.closed = true;
  }
}

/** A channel with the wasm module initialised on `device`; resolves to {channel, info}. */
async function openChannel({ worker, device, wasmUrl, workerUrl, isolated, name }) {
  const module = await compileWasm(wasmUrl);
  const useWorker = worker && typeof Worker === 'function';
  const channel = useWorker ? new WorkerChannel(name, workerUrl) : await new InlineChannel().open();
  try {
    const info = await channel.call('init', { module, device, isolated: useWorker || isolated });
    return { channel, info, inWorker: useWorker };
  } catch (e) {
    channel.close();
    throw toVeerError(e);
  }
}

// --- runtime ----------------------------------------------------------------------------------------

let defaultRuntime;

/** A device choice and the settings models are loaded with. Dispatches `fallback` events. */
export class Runtime extends EventTarget {
  constructor(options, opened, info) {
    super();
    this.options = options;
    this.info = info;
    this.requested = options.device;
    this.device = opened.info.device;
    this.fallbackReason = opened.info.fallbackReason;
    this.version = opened.info.version;
    this.worker = opened.inWorker;
    this._home = opened.channel;
    this._vectors = 0;
  }

  /** Max |difference| of a small matmul + softmax on this device against the CPU. */
  selfCheck() {
    return this._home.call('selfCheck');
  }

  /** This machine's single-thread CPU bounds, measured in the runtime's worker (about a second):
   * `{ readGbS, f32GflopS, int8GmacS }` — what benchmarks put their results against. */
  async roofline() {
    const r = await this._home.call('roofline');
    return { readGbS: r.read_gb_s, f32GflopS: r.f32_gflop_s, int8GmacS: r.int8_gmac_s };
  }

  loadClassifier(source, options) {
    return loadClassifier(source, { ...options, runtime: this });
  }

  loadGenerator(source, options) {
    return loadGenerator(source, { ...options, runtime: this });
  }

  loadVector(source, options) {
    return loadVector(source, { ...options, runtime: this });
  }

  /** The device a new model should ask for. */
  _deviceForModels() {
    if (this.device === 'cpu') return 'cpu';
    return this.requested === 'webgpu' ? 'webgpu' : 'auto';
  }

  _fellBack(reason) {
    if (this.device === 'cpu') return;
    this.device = 'cpu';
    this.fallbackReason = reason;
    this.dispatchEvent(Object.assign(new Event('fallback'), { reason }));
  }

  dispose() {
    this._home.close();
    if (defaultRuntime === this) defaultRuntime = undefined;
  }
}

/**
 * Start veer: compile the wasm module and choose a device.
 * @param {{device?: 'auto'|'webgpu'|'cpu', worker?: boolean, cache?: string|false, wasmUrl?: string, workerUrl?: string}} [options]
 */
export async function init(options = {}) {
  splitOptions('init', options, [], ['device', 'worker', 'cache', 'wasmUrl', 'workerUrl']);
  const o = {
    device: options.device ?? 'auto',
    worker: options.worker ?? true,
    cache: options.cache ?? DEFAULT_CACHE,
    wasmUrl: options.wasmUrl ? resolve(options.wasmUrl) : DEFAULT_WASM,
    workerUrl: options.workerUrl ? resolve(options.workerUrl) : undefined,
  };
  if (!['auto', 'webgpu', 'cpu'].includes(o.device)) throw new VeerError('E_INVALID', `init: options.device "${o.device}": expected "auto", "webgpu" or "cpu"`);
  const t0 = performance.now();
  await compileWasm(o.wasmUrl); // timed apart: download + compilation of the module, once per page
  const t1 = performance.now();
  const opened = await openChannel({ worker: o.worker, device: o.device, wasmUrl: o.wasmUrl, workerUrl: o.workerUrl, name: 'veer runtime' });
  defaultRuntime = new Runtime(o, opened, { compileMs: Math.round(t1 - t0), startMs: Math.round(performance.now() - t1) });
  return defaultRuntime;
}

async function runtimeFor(options) {
  return options.runtime ?? defaultRuntime ?? (await init());
}

// --- sources: a base URL, or explicit URLs / bytes per file -----------------------------------------

// The roles of a model folder's files (the same table as `ROLES` in crate/files.rs; a test compares them).
const FILES = {
  config: { name: 'config.json', kind: 'json' },
  weights: { name: 'model.safetensors', kind: 'safetensors' },
  tokenizer: { name: 'tokenizer.json', kind: 'json' },
  tokenizerConfig: { name: 'tokenizer_config.json', kind: 'json', optional: true },
  pooling: { name: '1_Pooling/config.json', kind: 'json', optional: true },
  sentenceBert: { name: 'sentence_bert_config.json', kind: 'json', optional: true },
  // A classifier head apart from its encoder (`loadClassifier(encoder, { head })`); never looked for in
  // a folder.
  head: { name: 'head.safetensors', kind: 'safetensors', optional: true },
};

// Options the library itself handles; the rest of a `load*`/`generate` options object is the model's
// request (`EncoderOptions`, `GenerateOptions` in crate/options.rs), checked by the Rust types.
const LOAD_OPTIONS = ['runtime', 'worker', 'integrity', 'onProgress', 'onFallback', 'onRestart', 'signal'];

/** Split `options` into the library's and the model's; `known` lists what the model side accepts when
 * it has no Rust request type (anything else is then an error here). */
function splitOptions(what, options, own, known) {
  const mine = {};
  const rest = {};
  for (const [k, v] of Object.entries(options ?? {})) {
    if (own.includes(k)) mine[k] = v;
    else if (known && !known.includes(k)) throw new VeerError('E_INVALID', `${what}: options.${k} is not an option (known: ${[...own, ...known].join(', ')})`);
    // A function cannot reach the model (structured clone): no model option takes one.
    else if (typeof v === 'function') throw new VeerError('E_INVALID', `${what}: options.${k} is a function; no such callback option (the library's own: ${own.join(', ')})`);
    else if (v !== undefined) rest[k] = v;
  }
  return [mine, rest];
}

function isBytes(x) {
  return x instanceof ArrayBuffer || ArrayBuffer.isView(x) || (typeof Blob === 'function' && x instanceof Blob);
}

/** {role: {url} | {bytes}} for the files a model needs. */
function describeSources(source, roles) {
  const out = {};
  if (typeof source === 'string' || source instanceof URL) {
    let base = resolve(source);
    if (!base.endsWith('/')) base += '/';
    for (const role of roles) out[role] = { url: new URL(FILES[role].name, base).href, ...FILES[role] };
    return out;
  }
  if (!source || typeof source !== 'object') throw new VeerError('E_INVALID', 'model source: expected a folder URL or {config, weights, tokenizer[, tokenizerConfig]}');
  for (const role of roles) {
    const v = source[role];
    const spec = { ...FILES[role] };
    if (v === undefined || v === null) {
      if (spec.optional) continue;
      throw new VeerError('E_INVALID', `model source: "${role}" (${spec.name}) is missing`, { file: spec.name });
    }
    if (typeof v === 'string' || v instanceof URL) out[role] = { ...spec, url: resolve(v) };
    else if (isBytes(v)) out[role] = { ...spec, bytes: v };
    else if (spec.kind === 'json' && typeof v === 'object') out[role] = { ...spec, bytes: new TextEncoder().encode(JSON.stringify(v)) };
    else throw new VeerError('E_INVALID', `model source: "${role}" must be a URL, bytes or (for JSON files) an object`, { file: spec.name });
  }
  return out;
}

async function toUint8(v) {
  if (typeof Blob === 'function' && v instanceof Blob) return new Uint8Array(await v.arrayBuffer());
  if (v instanceof ArrayBuffer) return new Uint8Array(v);
  return new Uint8Array(v.buffer, v.byteOffset, v.byteLength);
}

/**
 * Fetch (or take) every file, verified. Resolves to {bytes: {role: Uint8Array}, owned: Set<role>,
 * files: {name: {size, cached, ms}}}; `owned` bytes were downloaded here and may be transferred.
 */
async function gather(sources, options, cacheName) {
  const files = {};
  const bytes = {};
  const owned = new Set();
  // One file failing stops the other downloads.
  const controller = new AbortController();
  const outer = options.signal;
  if (outer?.aborted) controller.abort();
  outer?.addEventListener('abort', () => controller.abort(), { once: true });
  const all = Promise.all(
    Object.entries(sources).map(async ([role, s]) => {
      const r = s.url
        ? await fetchVerified(s.url, { ...s, role, integrity: options.integrity, resolve, cache: cacheName, onProgress: options.onProgress, signal: controller.signal })
        : await fetchVerified(undefined, { ...s, role, bytes: await toUint8(s.bytes), integrity: options.integrity });
      if (!r) return;
      bytes[role] = r.bytes;
      if (s.url) owned.add(role);
      files[s.name] = { size: r.bytes.length, cached: r.cached, ms: Math.round(r.ms), ...(s.url && { url: s.url }) };
    }),
  );
  try {
    await all;
  } catch (e) {
    controller.abort(); // Promise.all rejected with the first failure; stop the rest
    throw e;
  }
  return { bytes, owned, files, sources };
}

/** Arguments for a `load*` request: the files as `[{role, name, bytes}]` (name: the URL they were
 * fetched as, so errors name it), with the downloaded buffers listed for transfer. */
function loadArgs(g, extra) {
  const files = [];
  const transfer = [];
  for (const [role, b] of Object.entries(g.bytes)) {
    files.push({ role, name: g.sources[role].url ?? g.sources[role].name, bytes: b });
    if (g.owned.has(role) && b.byteOffset === 0 && b.byteLength === b.buffer.byteLength) transfer.push(b.buffer);
  }
  return { args: { ...extra, files }, transfer };
}

// --- models -----------------------------------------------------------------------------------------

/** Texts per slice of a `classify`/`embed` call: an AbortSignal is honoured between slices. Large
 * enough that the per-call overhead is negligible, small enough to stop within a fraction of a second. */
const CHUNK = 64;

/** A string or an iterable of strings as an array; anything else is the caller's E_INVALID (the message
 * names the position and type, never the value: it may be the user's text). */
function textList(method, texts) {
  if (typeof texts === 'string') return [texts];
  if (texts == null || typeof texts[Symbol.iterator] !== 'function') throw new VeerError('E_INVALID', `${method}: expected a string or an array of strings, got ${texts === null ? 'null' : typeof texts}`);
  const list = Array.from(texts);
  const bad = list.findIndex((t) => typeof t !== 'string');
  if (bad >= 0) throw new VeerError('E_INVALID', `${method}: texts[${bad}] is ${list[bad] === null ? 'null' : typeof list[bad]}; expected a string`);
  return list;
}

class Model extends EventTarget {
  constructor(rt, kind, sources, options, request) {
    super();
    this.runtime = rt;
    this.kind = kind;
    this._sources = sources;
    this._options = options;
    this._request = request;
    this._disposed = false;
  }

  /** Fetch everything and create the model on `device` in a fresh worker (or inline host). Each model
   * has its own wasm instance, inline too, so a trap in one leaves the others working. */
  async _open(device, { signal } = {}) {
    const t0 = performance.now();
    const g = await gather(this._sources, { ...this._options, signal }, this.runtime.options.cache);
    const tFetched = performance.now();
    const worker = this._options.worker ?? this.runtime.options.worker;
    const opened = await openChannel({ worker, device, wasmUrl: this.runtime.options.wasmUrl, workerUrl: this.runtime.options.workerUrl, isolated: true, name: `veer ${this.kind}` });
    const op = this.kind === 'classifier' ? 'loadClassifier' : 'loadGenerator';
    try {
      const { args, transfer } = loadArgs(g, this._loadExtra());
      const helpers = opened.inWorker ? this._helpers(g) : 0;
      // With helpers to load, the bytes are copied to each worker rather than moved to the first.
      const info = await opened.channel.call(op, args, helpers > 0 ? [] : transfer);
      // dispose() during a (re)load: the new worker goes too.
      const disposed = () => new VeerError('E_DISPOSED', `${this.kind} was disposed while it was loading`);
      if (this._disposed) throw disposed();
      this._closePool();
      if (helpers > 0 && info.device === 'cpu') this._pool = await this._openPool(helpers, device, op, args, transfer);
      if (this._disposed) {
        this._closePool();
        throw disposed();
      }
      this._ch?.close();
      this._ch = opened.channel;
      this._vectorsSent = new Set(); // vectors the new worker holds
      this.device = info.device;
      if (info.weights) this.weights = info.weights; // generators: 'f32', or 'int8' when asked for on the CPU
      this.worker = opened.inWorker;
      if (opened.info.fallbackReason) this.fallbackReason = opened.info.fallbackReason;
      const t1 = performance.now();
      this.info = {
        device: this.device,
        files: g.files,
        bytes: Object.values(g.files).reduce((n, f) => n + f.size, 0),
        fetchMs: Math.round(tFetched - t0),
        createMs: Math.round(t1 - tFetched),
        loadMs: Math.round(t1 - t0),
        cached: Object.values(g.files).every((f) => f.cached),
      };
      return info;
    } catch (e) {
      opened.channel.close();
      throw toVeerError(e);
    }
  }

  /** Only a lost or failing GPU moves a model to the CPU (the host reports a trap after a device loss
   * as E_DEVICE); a bad argument or a trap of its own does not. */
  _isDeviceFailure(e) {
    return this.device === 'webgpu' && e.code === 'E_DEVICE';
  }

  /** The model's instance (or its worker) is gone: the next call starts a fresh one. */
  _isTrap(e) {
    return e.fatal === true && (e.code === 'E_WASM' || e.code === 'E_WORKER');
  }

  /** Reload the model in a fresh instance after a trap (files from the cache) and say so. */
  async _restart() {
    if (!this._recovering) {
      const reason = `${this._trapped.code}: ${this._trapped.message}`;
      this._recovering = (async () => {
        await this._open(this.device);
        this._trapped = undefined;
        const event = Object.assign(new Event('restart'), { reason });
        this.dispatchEvent(event);
        this._options.onRestart?.(event);
      })();
      this._recovering.finally(() => (this._recovering = undefined)).catch(() => {});
    }
    return this._recovering;
  }

  /** Note a trap from any of the model's channels: the next call restarts the model. */
  _noteTrap(e) {
    const err = toVeerError(e);
    if (!this._disposed && this._isTrap(err)) this._trapped ??= err;
    return err;
  }

  /** The GPU failed: reload this model on the CPU (files come from the cache) and say so. */
  async _fallBack(error) {
    if (!this._recovering) {
      this._recovering = (async () => {
        const reason = `${error.code}: ${error.message}`;
        const from = this.device;
        await this._open('cpu');
        this.fallbackReason = reason;
        this.runtime._fellBack(reason);
        const event = Object.assign(new Event('fallback'), { from, to: 'cpu', reason });
        this.dispatchEvent(event);
        this._options.onFallback?.(event);
      })();
      this._recovering.finally(() => (this._recovering = undefined)).catch(() => {});
    }
    return this._recovering;
  }

  async _call(op, args, { retry = true, transfer } = {}) {
    if (this._disposed) throw new VeerError('E_DISPOSED', `${this.kind} was disposed`);
    if (this._recovering) await this._recovering;
    if (this._trapped) await this._restart();
    try {
      return await this._ch.call(op, args, transfer);
    } catch (e) {
      const err = toVeerError(e);
      if (this._disposed) throw err;
      if (!this._isDeviceFailure(err)) throw this._noteTrap(err);
      await this._fallBack(err);
      if (!retry) throw new VeerError('E_DEVICE', `${err.message}; the model now runs on the CPU: call again`, { fellBack: true });
      return this._ch.call(op, args, transfer);
    }
  }

  /** Testing aid: make this model's instance trap, as a panic or an out-of-memory would. */
  _simulateTrap() {
    return this._call('simulateTrap', {});
  }

  /** Testing aid: destroy this model's WebGPU device as a GPU reset would (resolves to how many). */
  _simulateDeviceLoss() {
    return this._ch.call('loseDevice');
  }

  /** How many more workers to load the model into (a `Classifier`'s pool; none for other models). */
  _helpers() {
    return 0;
  }

  /** `n` more workers holding the same model on the CPU; the last one takes the downloaded buffers. */
  async _openPool(n, device, op, args, transfer) {
    const pool = [];
    try {
      for (let i = 0; i < n; i++) {
        const opened = await openChannel({ worker: true, device, wasmUrl: this.runtime.options.wasmUrl, workerUrl: this.runtime.options.workerUrl, name: `veer ${this.kind} ${i + 2}` });
        pool.push(opened.channel);
        await opened.channel.call(op, args, i === n - 1 ? transfer : []);
      }
      return pool;
    } catch (e) {
      for (const ch of pool) ch.close();
      throw toVeerError(e);
    }
  }

  _closePool() {
    for (const ch of this._pool ?? []) ch.close();
    this._pool = [];
  }

  /** `op` over `list` split into contiguous parts, one per worker of the pool, in parallel; the
   * results concatenated in order. Without a pool, or for one text, the model's own worker. */
  async _spread(op, list) {
    const workers = 1 + (this._pool?.length ?? 0);
    if (workers === 1 || list.length < 2) return this._call(op, { texts: list });
    const parts = Math.min(workers, list.length);
    const size = Math.ceil(list.length / parts);
    const chunks = Array.from({ length: parts }, (_, i) => list.slice(i * size, (i + 1) * size)).filter((c) => c.length);
    const results = await Promise.all(
      chunks.map((texts, i) => (i === 0 ? this._call(op, { texts }) : this._pool[i - 1].call(op, { texts }).catch((e) => Promise.reject(this._noteTrap(e))))),
    );
    return results.flat();
  }

  /** Free the model's memory and stop its worker(s). Later calls reject with E_DISPOSED. */
  dispose() {
    if (this._disposed) return;
    this._disposed = true;
    this._ch?.call('dispose').catch(() => {});
    this._ch?.close();
    this._closePool();
  }
}

export class Classifier extends Model {
  _loadExtra() {
    return { options: this._request };
  }

  /** Extra CPU workers for the `workers` option: a number, or 'auto' — the cores the browser reports
   * (at most 4), fewer if the copies would pass ~1 GB (weights live as f32: about 2.5× an F16 file). */
  _helpers(g) {
    const want = this._options.workers ?? 1;
    if (want === 'auto') {
      const bytes = g.bytes.weights?.length ?? 0;
      const cores = Math.min(globalThis.navigator?.hardwareConcurrency ?? 1, 4);
      return Math.max(1, Math.min(cores, Math.floor(1e9 / Math.max(1, 2.5 * bytes)))) - 1;
    }
    if (!Number.isInteger(want) || want < 1 || want > 64) throw new VeerError('E_INVALID', `loadClassifier: options.workers ${want}: expected 'auto' or a whole number from 1 to 64`);
    return want - 1;
  }

  /** Workers this classifier runs in (the `workers` option; 1 on WebGPU or inline). */
  get workers() {
    return 1 + (this._pool?.length ?? 0);
  }

  /** One result per text, `{label, score, scores: {label: score}}` in the model's label order. */
  async classify(texts, options) {
    const single = typeof texts === 'string';
    const list = textList('classify', texts);
    if (this.labels.length === 0) throw new VeerError('E_CONFIG', 'config `id2label`: this model has no classification head (use embed)');
    const raw = await this._chunked('classify', list, options);
    const out = raw.map((r) => ({ label: r.label, score: r.score, scores: Object.fromEntries(this.labels.map((l) => [l, r.scores[l]])) }));
    return single ? out[0] : out;
  }

  /** One Float32Array per text (pooled, normalised unless `normalize: false`). */
  async embed(texts, options) {
    const single = typeof texts === 'string';
    const out = await this._chunked('embed', textList('embed', texts), options);
    return single ? out[0] : out;
  }

  /** `op` over `list` in slices of CHUNK texts (each spread over the pool), so that `options.signal`
   * can stop a long call between slices; an abort rejects at once with E_ABORTED (the slice in flight
   * finishes in its worker and is dropped). */
  async _chunked(op, list, options) {
    const [{ signal }] = splitOptions(op, options, ['signal'], []);
    const aborted = () => new VeerError('E_ABORTED', `${op} aborted`);
    if (signal?.aborted) throw aborted();
    const stop = signal && new Promise((_, reject) => signal.addEventListener('abort', () => reject(aborted()), { once: true }));
    stop?.catch(() => {});
    const out = [];
    for (let i = 0; i < list.length || i === 0; i += CHUNK) {
      const part = this._spread(op, list.slice(i, i + CHUNK));
      out.push(...(await (stop ? Promise.race([part, stop]) : part)));
    }
    return out;
  }

  /** Token ids per text, as the model sees them. */
  async tokenize(texts) {
    const single = typeof texts === 'string';
    const out = await this._spread('tokenize', textList('tokenize', texts));
    return single ? out[0] : out;
  }

  /** The head this classifier was trained with (`trainClassifier`) or loaded from bytes
   * (`loadClassifier(encoder, { head })`), as `head.safetensors` bytes: what `loadClassifier`'s `head`
   * option, `veer classify --head` and `veer pack` take. Nothing leaves the page unless you send it. */
  save() {
    const bytes = this._sources.head?.bytes;
    if (!bytes) throw new VeerError('E_INVALID', 'save: this classifier has no head of its own to save (train one with trainClassifier, or load one with the head option)');
    return bytes.slice();
  }
}

/**
 * Load a classifier or embedding model: an HF folder URL (config.json, model.safetensors,
 * tokenizer.json) or `{config, weights, tokenizer}` as URLs or bytes.
 */
export async function loadClassifier(source, options = {}) {
  // Everything but the library's own options is an `EncoderOptions` request, checked by the model.
  const [own, request] = splitOptions('loadClassifier', options, [...LOAD_OPTIONS, 'workers', 'head']);
  const rt = await runtimeFor(own);
  const sources = describeSources(source, ['config', 'weights', 'tokenizer', 'pooling', 'sentenceBert']);
  if (own.head !== undefined) sources.head = describeSources({ head: own.head }, ['head']).head;
  if (sources.head?.bytes) sources.head.bytes = await toUint8(sources.head.bytes); // kept for save()
  const clf = new Classifier(rt, 'classifier', sources, own, request);
  const info = await clf._open(rt._deviceForModels(), { signal: own.signal });
  clf.labels = info.labels;
  clf.maxLength = info.maxLength;
  clf.pooling = info.pooling;
  return clf;
}

// Options of `trainClassifier` that shape the training (the rest load the encoder, as for
// `loadClassifier`); all but `labels` are the Rust `HeadOptions`, checked there.
const TRAIN_OPTIONS = ['labels', 'epochs', 'seed', 'hidden', 'learningRate', 'batchSize', 'patience', 'holdout', 'classWeights'];

/**
 * Train a classifier head on an encoder from labelled examples, in the page: `encoder` as
 * `loadClassifier` takes it, `examples` `[{ text, label }]`. Embeddings are computed in the model's
 * worker (once per text), the head (linear, or `hidden` units) trained there with the code of
 * `veer distill`/`veer train`: AdamW, class weighting, early stopping on a held-out slice of each
 * label, deterministic for a `seed`. Resolves to a `Classifier` (its `training` says how it went) whose
 * `save()` gives the `head.safetensors` bytes. `onProgress({ phase: 'embed', done, total })` then
 * `({ phase: 'train', epoch, epochs, bestEpoch, valLoss, done })`; `signal` aborts (E_ABORTED).
 */
export async function trainClassifier(encoder, examples, options = {}) {
  const train = {};
  const load = {};
  for (const [k, v] of Object.entries(options ?? {})) {
    if (TRAIN_OPTIONS.includes(k)) train[k] = v;
    else if (k !== 'onProgress') load[k] = v;
  }
  const { onProgress, signal } = options ?? {};
  if (onProgress !== undefined && typeof onProgress !== 'function') throw new VeerError('E_INVALID', 'trainClassifier: options.onProgress must be a function');
  if (!Array.isArray(examples)) throw new VeerError('E_INVALID', 'trainClassifier: examples must be an array of { text, label }');
  // Messages name positions and types, never the user's text.
  examples.forEach((e, i) => {
    if (!e || typeof e.text !== 'string' || typeof e.label !== 'string') throw new VeerError('E_INVALID', `trainClassifier: examples[${i}] must be { text: string, label: string }`);
  });
  const labels = train.labels ?? [...new Set(examples.map((e) => e.label))];
  delete train.labels;
  if (!Array.isArray(labels) || labels.some((l) => typeof l !== 'string') || new Set(labels).size !== labels.length) {
    throw new VeerError('E_INVALID', 'trainClassifier: options.labels must be an array of distinct strings');
  }
  const labelIds = examples.map((e, i) => {
    const k = labels.indexOf(e.label);
    if (k < 0) throw new VeerError('E_INVALID', `trainClassifier: examples[${i}].label is not one of options.labels`);
    return k;
  });
  const aborted = () => new VeerError('E_ABORTED', 'trainClassifier aborted');
  if (signal?.aborted) throw aborted();
  const clf = await loadClassifier(encoder, load);
  try {
    const texts = examples.map((e) => e.text);
    const unique = [...new Set(texts)];
    for (let i = 0; i < unique.length; i += CHUNK) {
      if (signal?.aborted) throw aborted();
      await clf._call('trainEmbed', { texts: unique.slice(i, i + CHUNK) });
      onProgress?.({ phase: 'embed', done: Math.min(i + CHUNK, unique.length), total: unique.length });
    }
    if (signal?.aborted) throw aborted();
    const t0 = performance.now();
    const started = await clf._call('trainStart', { texts, labelIds, labels, options: train });
    let p;
    do {
      if (signal?.aborted) throw aborted();
      p = await clf._call('trainEpochs', { n: 5 });
      onProgress?.({ phase: 'train', ...p });
    } while (!p.done);
    const name = typeof encoder === 'string' ? encoder.replace(/\/+$/, '').split('/').pop() : '';
    const head = await clf._call('trainFinish', { encoder: name });
    for (const ch of clf._pool ?? []) await ch.call('attachHead', { bytes: head });
    // Part of the model's files from now on: a restart or a GPU → CPU reload keeps the trained head.
    clf._sources.head = { ...FILES.head, name: 'trained head', bytes: head };
    clf.labels = labels;
    clf.training = { examples: texts.length, train: started.train, heldOut: started.heldOut, epochs: p.epoch, bestEpoch: p.bestEpoch, valLoss: p.valLoss, ms: Math.round(performance.now() - t0) };
    return clf;
  } catch (e) {
    clf.dispose();
    throw toVeerError(e);
  }
}

let generations = 0;

export class Generator extends Model {
  _loadExtra() {
    let name = this._options.name;
    if (!name && this._sources.weights.url) name = new URL('.', this._sources.weights.url).pathname.split('/').filter(Boolean).pop();
    return { name: name ?? '', options: this._request };
  }

  /** Token ids of `text` (no special tokens). */
  encode(text) {
    return this._call('encode', { text });
  }

  /** The prompt text the chat template makes of `[{role, content}]`. */
  applyChatTemplate(messages, addGenerationPrompt = true) {
    return this._call('applyChatTemplate', { messages, addGenerationPrompt });
  }

  /** An in-context vector from `[{from, to}]` demonstration pairs. */
  async computeVector(pairs, { method } = {}) {
    const id = `${this.runtime._vectors++}:computed`;
    const d = await this._call('computeVector', { pairs, method, id });
    this._vectorsSent.add(id); // it stays in this generator's worker
    return new Vector(this.runtime, d, id);
  }

  async _lock() {
    const previous = this._busy ?? Promise.resolve();
    let release;
    this._busy = new Promise((r) => (release = r));
    await previous;
    return release;
  }

  /**
   * Stream a generation: `for await (const {text, id} of gen.generate(prompt, options))`.
   * `prompt`: a string, or OpenAI-style messages `[{role: 'system'|'user'|'assistant', content}]`
   * that the model's chat template renders. A conversation continues the previous generation's KV
   * cache: only what the new prompt adds to what the model already read is prefilled
   * (`gen.reusedTokens` says how many prompt tokens were reused), as long as the steering is the same.
   * Options: the model's `GenerateOptions` (veer.d.ts), with `steer: [{vector, strength}]`, plus
   * `signal`. `gen.finish` then says why it ended.
   *
   * One generation runs at a time per generator, and the newest wins: calling `generate` again ends
   * an older iterator that is still open (read to the end or not, abandoned without `break`) with
   * E_ABORTED at its next step, so a forgotten iterator never blocks the next generation.
   */
  async *generate(prompt, options = {}) {
    const { signal, steer, ...request } = options ?? {};
    let superseded = false;
    let release = () => {};
    this._current?.supersede();
    const me = (this._current = { supersede: () => ((superseded = true), release()) });
    const checkSuperseded = () => {
      if (superseded) throw new VeerError('E_ABORTED', 'generation superseded by a newer generate() on this generator');
    };
    release = await this._lock();
    if (superseded) release();
    const abortable = (p) => {
      if (!signal) return p;
      return new Promise((resolve, reject) => {
        const onAbort = () => reject(new VeerError('E_ABORTED', 'generation aborted'));
        if (signal.aborted) return onAbort();
        signal.addEventListener('abort', onAbort, { once: true });
        p.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort));
      });
    };
    let done = false;
    this.finish = undefined;
    const n = ++generations;
    try {
      checkSuperseded();
      if (steer !== undefined && !Array.isArray(steer)) throw new VeerError('E_INVALID', 'steer: expected an array of {vector, strength}');
      // Vectors travel by id; each one's bytes go to this generator's worker once.
      const vectors = [];
      const terms = (steer ?? []).map((s, i) => {
        if (!(s?.vector instanceof Vector)) throw new VeerError('E_INVALID', `steer[${i}].vector: expected a Vector from loadVector or computeVector`);
        if (!this._vectorsSent.has(s.vector.id)) vectors.push({ id: s.vector.id, bytes: s.vector.bytes });
        const { vector, ...rest } = s;
        return { ...rest, vector: vector.id };
      });
      if (steer !== undefined) request.steer = terms;
      if (typeof prompt !== 'string' && !Array.isArray(prompt)) throw new VeerError('E_INVALID', 'generate: prompt must be a string or [{role, content}] messages');
      const started = await abortable(this._call('start', { prompt, options: request, vectors }));
      this.promptTokens = started.tokens;
      this.reusedTokens = started.reused;
      for (const v of vectors) this._vectorsSent.add(v.id);
      for (;;) {
        checkSuperseded();
        const piece = await abortable(this._call('next', undefined, { retry: false }));
        checkSuperseded();
        if (piece.done) {
          this.finish = piece.finish;
          done = true;
          return;
        }
        yield piece;
      }
    } finally {
      // A superseded generation leaves the worker, `finish` and the lock to the newer one.
      if (!done && !superseded) {
        this.finish = signal?.aborted ? 'abort' : 'cancelled';
        if (!this._disposed && n === generations) this._ch.call('abort').catch(() => {});
      }
      if (this._current === me) this._current = undefined;
      release();
    }
  }
}

/**
 * Load a Llama-family decoder: an HF folder URL (config.json, model.safetensors, tokenizer.json,
 * optional tokenizer_config.json for the chat template) or `{config, weights, tokenizer, tokenizerConfig}`.
 */
export async function loadGenerator(source, options = {}) {
  // Everything but the library's own options is a `DecoderOptions` request (`weights`), checked by the model.
  const [own, request] = splitOptions('loadGenerator', options, [...LOAD_OPTIONS, 'name']);
  const rt = await runtimeFor(own);
  const gen = new Generator(rt, 'generator', describeSources(source, ['config', 'weights', 'tokenizer', 'tokenizerConfig']), own, request);
  await gen._open(rt._deviceForModels(), { signal: own.signal });
  return gen;
}

// --- steering vectors -------------------------------------------------------------------------------

/** A steering vector: the file's bytes (veer-vector/1 safetensors) and what they describe. */
export class Vector {
  constructor(rt, d, id) {
    this.runtime = rt;
    this.id = id;
    this.bytes = d.bytes;
    this.numLayers = d.numLayers;
    this.hidden = d.hidden;
    this.method = d.method;
    this.model = d.model;
    this.defaultStrength = d.defaultStrength;
  }

  /** A copy of the file bytes (to store or download). */
  toBytes() {
    return this.bytes.slice();
  }

  async _op(op, other, factor) {
    const id = `${this.runtime._vectors++}:${op}`;
    const d = await this.runtime._home.call('vectorOp', { op, id, factor, a: { id: this.id, bytes: this.bytes }, b: other && { id: other.id, bytes: other.bytes } });
    return new Vector(this.runtime, d, id);
  }

  add(other) {
    return this._op('add', other);
  }

  sub(other) {
    return this._op('sub', other);
  }

  scale(factor) {
    return this._op('scale', undefined, factor);
  }

  normalize() {
    return this._op('normalize');
  }
}

/** Load a vector file (veer safetensors or a llama.cpp GGUF control vector) from a URL or bytes. */
export async function loadVector(source, options = {}) {
  const [own] = splitOptions('loadVector', options, ['runtime', 'integrity', 'onProgress', 'signal'], []);
  const rt = await runtimeFor(own);
  let bytes;
  const isUrl = typeof source === 'string' || source instanceof URL;
  const name = isUrl ? String(source).split('/').pop() : 'vector';
  if (isUrl) {
    const integrity = own.integrity?.sha256 ? { vector: own.integrity.sha256 } : own.integrity;
    const r = await fetchVerified(resolve(source), { role: 'vector', name, kind: 'binary', size: own.integrity?.size, integrity, resolve, cache: rt.options.cache, onProgress: own.onProgress, signal: own.signal });
    bytes = r.bytes;
  } else if (isBytes(source)) {
    bytes = (await toUint8(source)).slice();
  } else {
    throw new VeerError('E_INVALID', 'loadVector: expected a URL or bytes');
  }
  const id = `${rt._vectors++}:${name}`;
  const d = await rt._home.call('vectorInfo', { id, bytes });
  return new Vector(rt, { ...d, bytes }, id);
}
