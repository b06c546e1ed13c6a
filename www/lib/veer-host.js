// veer-host.js: the side of veer that owns the wasm module and one model. It runs in a module worker
// (veer-worker.js) or, with `worker: false`, on the page; veer-channel.js talks to it with the same
// requests either way. Internal to the library.

import { VeerError, toVeerError } from './veer-error.js';

// Remember the WebGPU devices this realm creates (wgpu asks for them from inside the wasm module), so a
// lost device is noticed before the next call and tests can simulate a loss with `destroy()`.
const gpuDevices = [];
let gpuLost = null;
if (globalThis.GPUAdapter && !GPUAdapter.prototype.__veerPatched) {
  const requestDevice = GPUAdapter.prototype.requestDevice;
  GPUAdapter.prototype.requestDevice = async function (...args) {
    const device = await requestDevice.apply(this, args);
    gpuDevices.push(device);
    device.lost.then((info) => {
      gpuLost = `GPU device lost (${info.reason || 'unknown'}${info.message ? `: ${info.message}` : ''})`;
    });
    return device;
  };
  GPUAdapter.prototype.__veerPatched = true;
}

// The wasm-bindgen glue of each module (self-contained, no imports). Literal `new URL`s so that bundlers
// copy them as files beside the worker; imported by URL, not bundled, because each import of a distinct
// URL is a fresh module with its own wasm instance, which the CPU reload after a GPU failure needs inline.
const GLUE = {
  cpu: new URL('./pkg/veer_cpu.js', import.meta.url).href,
  full: new URL('./pkg/veer.js', import.meta.url).href,
};
let instances = 0;

/** Load module `kind`'s wasm-bindgen glue around the compiled module (a new instance each time `fresh`
 * is set). */
async function loadWasm(kind, module, fresh) {
  const glue = GLUE[kind];
  if (!glue) throw new VeerError('E_INVALID', `no veer module "${kind}" (expected "cpu" or "full")`);
  const url = fresh && instances > 0 ? `${glue}?instance=${instances}` : glue;
  instances++;
  const wasm = await import(/* @vite-ignore */ /* webpackIgnore: true */ url);
  await wasm.default({ module_or_path: module });
  return wasm;
}

const inline = {}; // kind -> Promise<wasm>, shared by the inline hosts of one page (worker: false)

export class Host {
  constructor() {
    this.queue = Promise.resolve();
    this.vectors = new Map(); // vector id -> wasm Vector
  }

  /** Run `op` after every earlier request of this host (wasm objects are not re-entrant). */
  handle(op, args) {
    const run = this.queue.then(() => this.dispatch(op, args));
    this.queue = run.catch(() => {});
    return run;
  }

  async dispatch(op, a) {
    if (op !== 'init' && op !== 'dispose' && op !== 'loseDevice' && this.device === 'webgpu' && gpuLost) {
      throw new VeerError('E_DEVICE', gpuLost, { fatal: true });
    }
    // After a trap the instance's memory and borrow flags are in an unknown state: refuse further work
    // (veer-model.js then starts a fresh instance for the model).
    if (this.trapped && op !== 'dispose') throw new VeerError('E_WASM', `this wasm instance trapped earlier (${this.trapped})`, { fatal: true });
    try {
      return await this[`op_${op}`](a);
    } catch (e) {
      const err = toVeerError(e);
      if (this.device === 'webgpu' && gpuLost && err.code !== 'E_DEVICE') throw new VeerError('E_DEVICE', `${gpuLost}: ${err.message}`, { fatal: true });
      if (err.code === 'E_WASM' && err.fatal) this.trapped = err.message;
      throw err;
    }
  }

  async op_init({ module, kind, device, isolated }) {
    // In a worker the module is ours alone; inline hosts share one instance unless told otherwise.
    if (isolated) {
      this.wasm = await loadWasm(kind, module, true);
    } else {
      inline[kind] ??= loadWasm(kind, module, false);
      this.wasm = await inline[kind];
    }
    this.runtime = await this.wasm.Runtime.create(device);
    this.device = this.runtime.device;
    return { device: this.device, fallbackReason: this.runtime.fallbackReason, version: this.wasm.version() };
  }

  async op_selfCheck() {
    return this.runtime.selfCheck();
  }

  op_roofline() {
    return this.runtime.roofline();
  }

  /** `create(bundle)` with the files of a `load*` request (`[{role, name, bytes}]`) as the wasm bundle. */
  withFiles(files, create) {
    const bundle = new this.wasm.ModelFiles();
    try {
      for (const f of files) bundle.add(f.role, f.name, f.bytes);
      return create(bundle);
    } finally {
      bundle.free();
    }
  }

  op_loadClassifier({ files, options }) {
    this.model = this.withFiles(files, (bundle) => this.wasm.Classifier.create(this.runtime, bundle, options ?? undefined));
    return { labels: this.model.labels, device: this.model.device, maxLength: this.model.maxLength, pooling: this.model.pooling, dtype: this.model.dtype, memoryBytes: this.wasm.memoryBytes() };
  }

  async op_classify({ texts }) {
    return this.model.classify(texts);
  }

  async op_embed({ texts }) {
    const out = await this.model.embed(texts);
    return { value: out, transfer: out.map((v) => v.buffer) };
  }

  op_tokenize({ texts }) {
    const out = this.model.tokenize(texts);
    return { value: out, transfer: out.map((v) => v.buffer) };
  }

  async op_trainEmbed({ texts }) {
    return this.model.trainEmbed(texts);
  }

  async op_trainStart({ texts, labelIds, labels, options }) {
    return this.model.trainStart(texts, new Uint32Array(labelIds), labels, options ?? {});
  }

  async op_trainEpochs({ n }) {
    return this.model.trainEpochs(n);
  }

  async op_trainFinish({ encoder }) {
    const bytes = await this.model.trainFinish(encoder);
    return { value: bytes, transfer: [bytes.buffer] };
  }

  op_attachHead({ bytes }) {
    return this.model.attachHead(bytes);
  }

  op_loadGenerator({ files, name, options }) {
    this.model = this.withFiles(files, (bundle) => this.wasm.Generator.create(this.runtime, bundle, name ?? undefined, options ?? {}));
    return { device: this.model.device, weights: this.model.weights, memoryBytes: this.wasm.memoryBytes() };
  }

  vector(id, bytes) {
    if (!this.vectors.has(id)) {
      if (!bytes) throw new VeerError('E_INVALID', `vector ${id} is unknown to this model`);
      this.vectors.set(id, this.wasm.Vector.fromBytes(bytes));
    }
    return this.vectors.get(id);
  }

  static describe(v) {
    return { numLayers: v.numLayers, hidden: v.hidden, method: v.method, model: v.model, defaultStrength: v.defaultStrength };
  }

  /** Parse a vector file: its description, plus its bytes in veer's own format. */
  op_vectorInfo({ id, bytes }) {
    const v = this.vector(id, bytes);
    return Host.describe(v);
  }

  op_vectorOp({ op, a, b, factor, id }) {
    const x = this.vector(a.id, a.bytes);
    let out;
    if (op === 'add' || op === 'sub') out = x[op](this.vector(b.id, b.bytes));
    else if (op === 'scale') out = x.scale(factor);
    else if (op === 'normalize') out = x.normalize();
    else throw new VeerError('E_INVALID', `vector op ${op}`);
    this.vectors.set(id, out);
    const bytes = out.toBytes();
    return { value: { ...Host.describe(out), bytes }, transfer: [bytes.buffer] };
  }

  op_encode({ text }) {
    return this.model.encode(text);
  }

  op_applyChatTemplate({ messages, addGenerationPrompt }) {
    return this.model.applyChatTemplate(messages, addGenerationPrompt);
  }

  /** `vectors`: `[{id, bytes}]` this generator has not seen yet; the request names them by id. */
  async op_start({ prompt, options, vectors }) {
    // No abort first: the previous generation's KV cache is what `start` continues (same steering).
    for (const { id, bytes } of vectors ?? []) {
      if (this.model.hasVector(id)) continue;
      const v = this.wasm.Vector.fromBytes(bytes);
      this.model.putVector(id, v);
      v.free();
    }
    const ids = await this.model.start(prompt, options ?? {});
    return { tokens: ids.length, reused: this.model.reused };
  }

  async op_next() {
    const piece = await this.model.next();
    return piece === undefined ? { done: true, finish: this.model.finish ?? 'eos' } : piece;
  }

  op_abort() {
    this.model?.abort?.();
  }

  async op_computeVector({ pairs, method, id }) {
    const v = await this.model.computeVector(pairs, method ?? undefined);
    this.model.putVector(id, v);
    this.vectors.set(id, v);
    const bytes = v.toBytes();
    return { value: { ...Host.describe(v), bytes }, transfer: [bytes.buffer] };
  }

  op_memoryBytes() {
    return this.wasm.memoryBytes();
  }

  /** Testing aid: what a wasm trap does (a RuntimeError; the instance is unusable afterwards). */
  op_simulateTrap() {
    throw new WebAssembly.RuntimeError('unreachable (simulated trap)');
  }

  /** Testing aid: destroy this realm's WebGPU devices, as a driver reset or a GPU crash would. */
  op_loseDevice() {
    for (const d of gpuDevices) d.destroy();
    if (gpuDevices.length) gpuLost ??= 'GPU device lost (destroyed)';
    return gpuDevices.length;
  }

  op_dispose() {
    for (const v of this.vectors.values()) v.free?.();
    this.vectors.clear();
    try {
      this.model?.free();
    } catch {
      // a model mid-call or already freed
    }
    this.model = undefined;
  }
}
