// veer-runtime.js: `init()` and the Runtime it resolves to (the device choice, the settings models are
// loaded with, the runtime's own worker for vectors). Part of the veer library (see veer.js, which adds
// the `load*` methods).

import { VeerError } from './veer-error.js';
import { DEFAULT_CACHE } from './veer-fetch.js';
import { resolve, splitOptions } from './veer-sources.js';
import { DEFAULT_WASM, compileWasm, openChannel } from './veer-channel.js';

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

  // loadClassifier, loadGenerator, loadVector: added by veer.js (they live in modules above this one).

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

/** The runtime a `load*` call runs on: `options.runtime`, else the last `init()`'s (started if none). */
export async function runtimeFor(options) {
  return options.runtime ?? defaultRuntime ?? (await init());
}
