// veer-channel.js: the wasm module compiled once per page, and the channels models talk through: a
// module worker (WorkerChannel) or the same host on the calling thread (InlineChannel, `worker: false`).
// Part of the veer library (see veer.js). The worker and the wasm are named by literal
// `new URL('./…', import.meta.url)` expressions here, relative to this file, so that bundlers find them.

import { VeerError, toVeerError, errorFromData } from './veer-error.js';
import { request } from './veer-fetch.js';

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

const compiled = new Map();

/** Module `wasm` ({kind: 'cpu'|'full', url}), fetched and compiled once per page. */
export function compileWasm({ kind, url }) {
  const file = WASM_FILES[kind];
  if (!compiled.has(url)) {
    const p = (async () => {
      let res;
      try {
        res = await request(url);
      } catch (e) {
        throw new VeerError('E_NETWORK', `${file}: could not fetch ${url}: ${e.message ?? e}`, { file });
      }
      if (!res.ok) throw new VeerError('E_HTTP', `${file}: HTTP ${res.status} for ${url}`, { file, status: res.status });
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
        throw new VeerError('E_CONTENT', `${file}: not a WebAssembly module (${url}): ${e.message}`, { file });
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

/** A channel with the wasm module `wasm` ({kind: 'cpu'|'full', url}) initialised on `device`;
 * resolves to {channel, info, inWorker, wasm}. Without a `Worker` (Node) the host runs inline. */
export async function openChannel({ worker, device, wasm, workerUrl, isolated, name }) {
  const module = await compileWasm(wasm);
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
