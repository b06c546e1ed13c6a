// veer-runtime.js: `init()` and the Runtime it resolves to (the device choice, the settings models are
// loaded with, the runtime's own worker for vectors). Part of the veer library (see veer.js, which adds
// the `load*` methods).

import { VeerError } from './veer-error.js';
import { DEFAULT_CACHE, DEFAULT_STALL_TIMEOUT } from './veer-fetch.js';
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

  /** The module a model opened on `device` runs in: the CPU module for the CPU, else the runtime's. */
  _wasmFor(device) {
    const kind = device === 'cpu' ? 'cpu' : this.info.module;
    return { kind, url: this.options.wasmUrls[kind], keep: this.options.cache !== false };
  }

  /** The device a new model should ask for. */
  _deviceForModels() {
    if (this.device === 'cpu') return 'cpu';
    return this.requested === 'webgpu' ? 'webgpu' : 'auto';
  }

  /** What every download on this runtime is fetched with (fetchVerified's options): the cache, the stall
   * limit, and a `cacheerror` event when a verified file could not be kept in the Cache API (a full
   * quota, storage turned off; it is used uncached). */
  _fetchSettings() {
    return {
      cache: this.options.cache,
      stallTimeout: this.options.stallTimeout,
      onCacheError: ({ file, url, reason }) => this.dispatchEvent(Object.assign(new Event('cacheerror'), { file, url, reason })),
    };
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

// The words of `software_adapter` in crate/base/backend.rs, which says the same to direct wasm users
// (`Runtime.create('auto')`); here it is decided before any module is fetched.
const SOFTWARE = 'the browser\'s WebGPU adapter is a software fallback (isFallbackAdapter), far slower than the CPU path; ask for device "webgpu" to use it anyway';

/**
 * Which of the two modules `device` needs, asked of the browser before either is fetched:
 * `{module: 'cpu'|'full', why, fallback?}`. `auto` takes the full module only for a hardware WebGPU
 * adapter; otherwise the CPU module, and `fallback` says why (it becomes `fallbackReason`).
 */
export async function chooseModule(device) {
  if (device === 'cpu') return { module: 'cpu', why: 'device "cpu" was asked for' };
  const gpu = globalThis.navigator?.gpu;
  if (device === 'webgpu') {
    // wgpu cannot start without navigator.gpu: say so before fetching the full module for nothing.
    if (!gpu) throw new VeerError('E_DEVICE', 'init: device "webgpu" was asked for, but this runtime has no WebGPU (navigator.gpu)');
    return { module: 'full', why: 'device "webgpu" was asked for' };
  }
  const cpu = (fallback) => ({ module: 'cpu', why: fallback, fallback });
  if (!gpu || typeof gpu.requestAdapter !== 'function') return cpu('this runtime has no WebGPU (navigator.gpu)');
  let adapter;
  try {
    adapter = await gpu.requestAdapter();
  } catch (e) {
    return cpu(`WebGPU requestAdapter failed: ${e?.message ?? e}`);
  }
  if (!adapter) return cpu('the browser offers no WebGPU adapter');
  // `info.isFallbackAdapter` (Chrome 136+), formerly `adapter.isFallbackAdapter`.
  if (adapter.info?.isFallbackAdapter ?? adapter.isFallbackAdapter) {
    const name = ['vendor', 'architecture', 'description'].map((k) => adapter.info?.[k]).filter(Boolean).join(' ');
    return cpu(name ? SOFTWARE.replace('adapter is', `adapter (${name}) is`) : SOFTWARE);
  }
  return { module: 'full', why: 'device "auto" found a hardware WebGPU adapter' };
}

/**
 * Start veer: choose a device and the module it needs, compile that module, open the runtime.
 * @param {{device?: 'auto'|'webgpu'|'cpu', worker?: boolean, cache?: string|false, stallTimeout?: number, wasmUrl?: string, cpuWasmUrl?: string, workerUrl?: string}} [options]
 */
export async function init(options = {}) {
  splitOptions('init', options, ['worker', 'cache', 'stallTimeout'], ['device', 'wasmUrl', 'cpuWasmUrl', 'workerUrl']);
  for (const k of ['wasmUrl', 'cpuWasmUrl', 'workerUrl']) {
    if (options[k] !== undefined && typeof options[k] !== 'string' && !(options[k] instanceof URL)) throw new VeerError('E_INVALID', `init: options.${k} must be a URL string`);
  }
  const o = {
    device: options.device ?? 'auto',
    worker: options.worker ?? true,
    cache: options.cache ?? DEFAULT_CACHE,
    stallTimeout: options.stallTimeout ?? DEFAULT_STALL_TIMEOUT,
    wasmUrls: {
      cpu: options.cpuWasmUrl ? resolve(options.cpuWasmUrl) : DEFAULT_WASM.cpu,
      full: options.wasmUrl ? resolve(options.wasmUrl) : DEFAULT_WASM.full,
    },
    workerUrl: options.workerUrl ? resolve(options.workerUrl) : undefined,
  };
  if (!['auto', 'webgpu', 'cpu'].includes(o.device)) throw new VeerError('E_INVALID', `init: options.device "${o.device}": expected "auto", "webgpu" or "cpu"`);
  const t0 = performance.now();
  const choice = await chooseModule(o.device);
  const wasm = { kind: choice.module, url: o.wasmUrls[choice.module], keep: o.cache !== false };
  const { cached } = await compileWasm(wasm); // timed apart: download (or the Cache API) + compilation, once per page
  const t1 = performance.now();
  // `auto` without a hardware adapter runs the CPU module on the CPU: it has no WebGPU to try.
  const device = choice.fallback ? 'cpu' : o.device;
  const opened = await openChannel({ worker: o.worker, device, wasm, workerUrl: o.workerUrl, name: 'veer runtime' });
  if (choice.fallback) opened.info.fallbackReason = choice.fallback;
  defaultRuntime = new Runtime(o, opened, { module: choice.module, moduleReason: choice.why, moduleCached: cached, compileMs: Math.round(t1 - t0), startMs: Math.round(performance.now() - t1) });
  return defaultRuntime;
}

/** The runtime a `load*` call runs on: `options.runtime`, else the last `init()`'s (started if none). */
export async function runtimeFor(options) {
  return options.runtime ?? defaultRuntime ?? (await init());
}
