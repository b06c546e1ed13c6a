// veer-model.js: what every model shares: fetching its files and opening it in a fresh worker (or
// inline host), reloading it after a trap, moving it to the CPU after a GPU failure, the pool of CPU
// workers, dispose. Part of the veer library (see veer.js); Classifier and Generator extend it.

import { VeerError, toVeerError } from './veer-error.js';
import { gather, loadArgs } from './veer-sources.js';
import { openChannel } from './veer-channel.js';

export class Model extends EventTarget {
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
    const g = await gather(this._sources, { ...this._options, signal }, this.runtime._fetchSettings());
    const tFetched = performance.now();
    const worker = this._options.worker ?? this.runtime.options.worker;
    const opened = await openChannel({ worker, device, wasm: this.runtime._wasmFor(device), workerUrl: this.runtime.options.workerUrl, isolated: true, name: `veer ${this.kind}` });
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
      if (helpers > 0 && info.device === 'cpu') this._pool = await this._openPool(helpers, device, opened.wasm, op, args, transfer);
      if (this._disposed) {
        this._closePool();
        throw disposed();
      }
      this._ch?.close();
      this._ch = opened.channel;
      this._vectorsSent = new Set(); // vectors the new worker holds
      this.device = info.device;
      if (info.weights) this.weights = info.weights; // generators: 'int8' or 'q4' on the CPU (the default), else 'f32'
      if (info.dtype) this.dtype = info.dtype; // classifiers: 'int8' (a q8 folder on the CPU) or 'f32'
      this.worker = opened.inWorker;
      this.module = opened.wasm.kind; // 'cpu' or 'full': which of the package's modules runs it
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
        memoryBytes: info.memoryBytes,
        module: opened.wasm.kind,
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
      return this._ch.call(op, args, transfer).catch((e2) => Promise.reject(this._noteTrap(e2)));
    }
  }

  /** The wasm memory of this model's instance now, in bytes (a pool's first worker). wasm memory only
   * grows: this is the high-water mark of everything the model did so far. */
  memoryBytes() {
    return this._call('memoryBytes', {});
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
  async _openPool(n, device, wasm, op, args, transfer) {
    const pool = [];
    try {
      for (let i = 0; i < n; i++) {
        const opened = await openChannel({ worker: true, device, wasm, workerUrl: this.runtime.options.workerUrl, name: `veer ${this.kind} ${i + 2}` });
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
