// veer-channel.js: the wasm module compiled once per page, and the channels models talk through: a
// module worker (WorkerChannel) or the same host on the calling thread (InlineChannel, `worker: false`).
// Part of the veer library (see veer.js). The worker and the wasm are named by literal
// `new URL('./…', import.meta.url)` expressions here, relative to this file, so that bundlers find them.

import { VeerError, toVeerError, errorFromData } from './veer-error.js';
import { request, openCache, sha256 } from './veer-fetch.js';
import { WASM_SHA256 } from './pkg/veer-digests.js';

// The two modules of the package: `cpu` (built without WebGPU: a fraction of the bytes) and `full`
// (the CPU path plus WebGPU). Literal, for bundlers: they copy the files and rewrite the URLs (do not
// factor `import.meta.url` out).
export const DEFAULT_WASM = {
  cpu: new URL('./pkg/veer_cpu_bg.wasm', import.meta.url).href,
  full: new URL('./pkg/veer_bg.wasm', import.meta.url).href,
};
/** Each module's file name, as errors name it (whatever URL it was fetched from). */
const WASM_FILES = { cpu: 'veer_cpu_bg.wasm', full: 'veer_bg.wasm' };

/** The library's module worker: the literal form bundlers recognise, unless the page gave its own URL. */
function startWorker(workerUrl, name) {
  if (workerUrl) return new Worker(workerUrl, { type: 'module', name });
  return new Worker(new URL('./veer-worker.js', import.meta.url), { type: 'module', name });
}

// --- wasm compilation: once per page, the compiled module shared with every worker ----------------

/** Where the package's own modules are kept between visits, each under its URL and sha256. */
export const WASM_CACHE = 'veer-wasm-v1';

const compiled = new Map();

/**
 * Module `wasm` ({kind: 'cpu'|'full', url, keep}), fetched and compiled once per page: `{module, cached}`.
 * The package's own module (the URL it ships at, http or https) is kept in the Cache API under its
 * sha256 from the build (pkg/veer-digests.js), so a later visit neither downloads nor revalidates it,
 * and a new build is never mistaken for the old one. `keep: false` (init's `cache: false`) keeps nothing.
 */
export function compileWasm({ kind, url, keep = true }) {
  if (!compiled.has(url)) {
    const p = (async () => {
      const digest = url === DEFAULT_WASM[kind] && /^https?:/.test(url) && keep ? WASM_SHA256[kind] : undefined;
      const store = digest ? await openCache(WASM_CACHE) : null;
      const key = store && `${url}?sha256=${digest}`;
      const hit = store && (await store.match(key).catch(() => undefined));
      if (hit) {
        try {
          return { module: await compileResponse(hit, kind, url), cached: true };
        } catch {
          await store.delete(key).catch(() => {}); // a damaged entry: download it again
        }
      }
      const res = await download(kind, url);
      if (store) keepModule(store, key, url, digest, res.clone()); // not awaited: the compile need not wait
      return { module: await compileResponse(res, kind, url), cached: false };
    })();
    compiled.set(url, p);
    p.catch(() => compiled.delete(url));
  }
  return compiled.get(url);
}

async function download(kind, url) {
  const file = WASM_FILES[kind];
  let res;
  try {
    res = await request(url);
  } catch (e) {
    throw new VeerError('E_NETWORK', `${file}: could not fetch ${url}: ${e.message ?? e}`, { file });
  }
  if (!res.ok) throw new VeerError('E_HTTP', `${file}: HTTP ${res.status} for ${url}`, { file, status: res.status });
  return res;
}

async function compileResponse(res, kind, url) {
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
    const file = WASM_FILES[kind];
    throw new VeerError('E_CONTENT', `${file}: not a WebAssembly module (${url}): ${e.message}`, { file });
  }
}

/** Keep the downloaded module under `key` if its bytes are the build's (a host serving another file
 * gets no entry), and drop the entries of earlier builds at the same URL. Failures (quota, storage
 * turned off) only mean the next visit downloads again. */
async function keepModule(store, key, url, digest, res) {
  try {
    const bytes = new Uint8Array(await res.arrayBuffer());
    if ((await sha256(bytes)) !== digest) return;
    await store.put(key, new Response(bytes, { headers: { 'content-type': 'application/wasm' } }));
    for (const old of await store.keys()) if (old.url.startsWith(`${url}?`) && old.url !== key) await store.delete(old);
  } catch {
    // nothing kept
  }
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
    const disposed = () => new VeerError('E_DISPOSED', 'this model was disposed');
    if (this.closed) throw disposed();
    const result = await this.host.handle(op, args);
    // Closed while the call ran: it settles as a worker's pending calls do, with E_DISPOSED.
    if (this.closed) throw disposed();
    return result && typeof result === 'object' && 'transfer' in result && 'value' in result ? result.value : result;
  }

  close() {
    if (!this.closed) this.host.handle('dispose').catch(() => {});
    this.closed = true;
  }
}

/** A channel with the wasm module `wasm` ({kind: 'cpu'|'full', url, keep}) initialised on `device`;
 * resolves to {channel, info, inWorker, wasm}. Without a `Worker` (Node) the host runs inline. */
export async function openChannel({ worker, device, wasm, workerUrl, isolated, name }) {
  const { module } = await compileWasm(wasm);
  const useWorker = worker && typeof Worker === 'function';
  const channel = useWorker ? new WorkerChannel(name, workerUrl) : await new InlineChannel().open();
  try {
    const info = await channel.call('init', { module, kind: wasm.kind, device, isolated: useWorker || isolated });
    return { channel, info, inWorker: useWorker, wasm };
  } catch (e) {
    channel.close();
    throw toVeerError(e);
  }
}
