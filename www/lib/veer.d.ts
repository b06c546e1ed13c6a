// Types for veer.js, the browser library (ES module, no bundler needed). tests/types/ uses them as an
// app would, under `tsc --strict` (make test-page).

export type Device = 'auto' | 'webgpu' | 'cpu';

/** Error codes: from the model (E_FILE, E_TENSOR, E_CONFIG, E_TOKENIZER, E_DEVICE, E_INVALID) and from
 * the library (E_HTTP, E_CONTENT, E_INTEGRITY, E_NETWORK, E_ABORTED, E_DISPOSED, E_WORKER, E_WASM). */
export type ErrorCode =
  | 'E_FILE' | 'E_TENSOR' | 'E_CONFIG' | 'E_TOKENIZER' | 'E_DEVICE' | 'E_INVALID'
  | 'E_HTTP' | 'E_CONTENT' | 'E_INTEGRITY' | 'E_NETWORK' | 'E_ABORTED' | 'E_DISPOSED' | 'E_WORKER' | 'E_WASM';

/** Every error veer throws: an `Error` with a stable `code`; `name` is 'AbortError' for E_ABORTED. */
export class VeerError extends Error {
  constructor(code: ErrorCode, message: string, extra?: { file?: string; status?: number; fatal?: boolean; fellBack?: boolean });
  name: 'VeerError' | 'AbortError';
  code: ErrorCode;
  /** The file at fault, where one is (e.g. 'model.safetensors'). */
  file?: string;
  /** HTTP status for E_HTTP. */
  status?: number;
  /** Set when the instance cannot be used again (E_WASM: a trap; E_WORKER: its worker died; E_DEVICE:
   * its GPU was lost). A model's next call reloads it (a `restart` event; after a GPU loss, on the CPU). */
  fatal?: boolean;
  /** E_DEVICE ending a generation: the GPU failed and the generator now runs on the CPU; generate again. */
  fellBack?: boolean;
}

export interface InitOptions {
  /** Default 'auto': WebGPU when the browser has a hardware adapter, else the CPU (reason in
   * `fallbackReason`). 'cpu' and 'auto' without a hardware adapter load the CPU-only module
   * (veer_cpu_bg.wasm); 'webgpu' and 'auto' with one load the full module (veer_bg.wasm). */
  device?: Device;
  /** Run models in module Web Workers (default true); false runs them on the calling thread. Where there
   * is no `Worker` (Node.js) models run on the calling thread whatever this says. */
  worker?: boolean;
  /** Cache API name for model files (default 'veer-models-v1'); false: never cache. */
  cache?: string | false;
  /** How long a download may go without a response or a byte before it fails with E_NETWORK, in ms
   * (default 30000; 0: no limit). */
  stallTimeout?: number;
  /** Where the full module veer_bg.wasm is (default: ./pkg/veer_bg.wasm next to veer.js, or where a bundler put it). */
  wasmUrl?: string;
  /** Where the CPU-only module veer_cpu_bg.wasm is (default: ./pkg/veer_cpu_bg.wasm next to veer.js). */
  cpuWasmUrl?: string;
  /** Where veer-worker.js is (default: next to veer.js, or the worker chunk a bundler emitted). */
  workerUrl?: string;
}

export interface Progress {
  file: string;
  url: string;
  loaded: number;
  /** Undefined when the server sends no Content-Length. */
  total?: number;
  /** True when the bytes come from the Cache API. */
  cached: boolean;
}

/** 'manifest': sha256 from a manifest.json ({files: {path: {size, sha256}}}) in the model folder or up to
 * two folders above; a string ending in .json: that manifest; an object: sha256 per role or file name. */
export type Integrity = 'manifest' | string | Partial<Record<ModelRole | string, string>>;

/** A model folder's files (crate/io/files.rs `ROLES`); the last three are optional. */
export type ModelRole = 'config' | 'weights' | 'tokenizer' | 'tokenizerConfig' | 'pooling' | 'sentenceBert';

export interface LoadOptions {
  /** The runtime to load on (default: the last `init()`, started with defaults if there was none). */
  runtime?: Runtime;
  /** Override the runtime's `worker` setting for this model. */
  worker?: boolean;
  integrity?: Integrity;
  onProgress?: (p: Progress) => void;
  /** Called when a lost GPU made veer move this model to the CPU (also a 'fallback' event). */
  onFallback?: (e: FallbackEvent) => void;
  /** Called when the model's wasm instance trapped (a panic, out of memory) and the next call reloaded it in a fresh one (also a 'restart' event). */
  onRestart?: (e: RestartEvent) => void;
  signal?: AbortSignal;
}

/** How an encoder embeds and classifies (crate/base/options.rs `EncoderOptions`; unknown names are errors). */
export interface EncoderOptions {
  /** Tokens per text including [CLS]/[SEP]. Default: the trained head's, else sentence_bert_config.json's
   * max_seq_length, else min(512, max_position_embeddings). */
  maxLength?: number;
  /** Default: 1_Pooling/config.json's, else 'mean'. */
  pooling?: 'mean' | 'cls';
  /** L2-normalise embeddings (default true). */
  normalize?: boolean;
  /** Texts per forward pass (default 16; bounds memory, results do not depend on it). Not settable
   * through `trainClassifier`, whose `batchSize` is the training's (`TrainOptions.batchSize`). */
  batchSize?: number;
}

export interface ClassifierOptions extends LoadOptions, EncoderOptions {
  /** Workers holding the model on the CPU, each its own wasm instance: a call's texts are split among
   * them, so batch throughput scales with cores without cross-origin isolation. 'auto': the cores the
   * browser reports (at most 4), fewer when the copies would pass ~1 GB. Default 1; always 1 on WebGPU
   * and with `worker: false`. */
  workers?: number | 'auto';
  /** A `head.safetensors` (from `trainClassifier`'s `save()`, `veer train` or `veer distill`) to
   * classify with, on top of the encoder `source`. */
  head?: string | URL | Bytes;
}

/** `trainClassifier`'s options: the training's (crate/base/options.rs `HeadOptions`, and `labels`),
 * and `loadClassifier`'s for the encoder, except `onProgress` (the training's progress here; the
 * encoder's downloads are not reported) and `batchSize` (the training's here). */
export interface TrainOptions extends Omit<ClassifierOptions, 'onProgress' | 'batchSize'> {
  /** Label order (default: order of first appearance in the examples). */
  labels?: string[];
  /** Most epochs (default 200); training stops earlier after `patience` (15) epochs without a better
   * held-out loss, and keeps the best epoch's head. */
  epochs?: number;
  patience?: number;
  /** The same seed, examples and options give the same head (default 0). */
  seed?: number;
  /** Units of a hidden ReLU layer (default 0: a linear head). */
  hidden?: number;
  learningRate?: number;
  /** Examples per optimiser step, not the encoder's texts per forward pass (`EncoderOptions.batchSize`,
   * which stays at its default while training). */
  batchSize?: number;
  /** Fraction of each label's examples held out for early stopping (default 0.2, at least one). */
  holdout?: number;
  /** Weight examples so that every label counts alike (default true). */
  classWeights?: boolean;
  onProgress?: (p: TrainProgress) => void;
}

export type TrainProgress =
  | { phase: 'embed'; done: number; total: number }
  | { phase: 'train'; epoch: number; epochs: number; bestEpoch: number; valLoss: number; lastLoss: number; done: boolean };

export interface GeneratorOptions extends LoadOptions {
  /** Stored in vectors computed with this model (default: the folder name). */
  name?: string;
  /** How the weights are held in memory on the CPU. `int8` (default): quantised — a q4 folder's
   * matrices stay 4-bit, a q8 folder's int8, a float folder's are quantised to int8 groups of 32 at load;
   * outputs agree closely but not identically with f32 (docs/performance.md, "Quantised weights").
   * `f32`: the file's values exactly (quantised files dequantised), 3–5× the memory. On WebGPU the weights
   * are f32 (`generator.weights` says what memory holds). */
  weights?: 'f32' | 'int8';
}

type Bytes = ArrayBuffer | ArrayBufferView | Blob;
/** A folder URL (page-relative or absolute) holding config.json, model.safetensors, tokenizer.json
 * (and, when present, tokenizer_config.json for generators, 1_Pooling/config.json and
 * sentence_bert_config.json for encoders), or each file as a URL, bytes, or (JSON files) an object. */
export type ModelSource =
  | string
  | URL
  | {
      config: string | URL | Bytes | object;
      weights: string | URL | Bytes;
      tokenizer: string | URL | Bytes | object;
      tokenizerConfig?: string | URL | Bytes | object;
      pooling?: string | URL | Bytes | object;
      sentenceBert?: string | URL | Bytes | object;
    };

/** Options of `classify` and `embed`. */
export interface CallOptions {
  signal?: AbortSignal;
}

/** A model's instance trapped; the call after the trap reloaded it (files from the cache). The call that trapped rejected with E_WASM (or E_WORKER). */
export interface RestartEvent extends Event {
  readonly reason: string;
}

/** A Runtime's `cacheerror` event: a downloaded, verified file could not be kept in the Cache API (a full
 * quota, storage turned off). The load goes on with the file uncached. */
export interface CacheErrorEvent extends Event {
  readonly file: string;
  readonly url: string;
  /** The Cache API's error, e.g. 'QuotaExceededError: …'. */
  readonly reason: string;
}

export interface FallbackEvent extends Event {
  from?: string;
  to?: 'cpu';
  reason: string;
}

export interface ModelInfo {
  device: 'webgpu' | 'cpu';
  files: Record<string, { size: number; cached: boolean; ms: number; url?: string }>;
  /** Total bytes of the model's files. */
  bytes: number;
  fetchMs: number;
  createMs: number;
  loadMs: number;
  /** Every file came from the Cache API. */
  cached: boolean;
  /** The wasm instance's memory after the load (its peak so far: wasm memory never shrinks); with
   * `worker: true` the memory of the model's own worker. */
  memoryBytes: number;
  /** The package's module the model runs in. */
  module: WasmModule;
}

/** 'cpu': veer_cpu_bg.wasm, built without WebGPU; 'full': veer_bg.wasm, the CPU path and WebGPU. */
export type WasmModule = 'cpu' | 'full';

/** Events: 'fallback' (FallbackEvent), 'cacheerror' (CacheErrorEvent). */
export class Runtime extends EventTarget {
  readonly device: 'webgpu' | 'cpu';
  readonly requested: Device;
  /** Why 'auto' is not on WebGPU, or why a model left it. */
  readonly fallbackReason?: string;
  readonly version: string;
  readonly worker: boolean;
  /** Which module `init()` loaded and why; start-up timings: choosing the module, fetching and
   * compiling it (once per page), then starting the runtime's worker and device. */
  readonly info: { module: WasmModule; moduleReason: string; moduleCached: boolean; compileMs: number; startMs: number };
  /** Max |difference| of a small matmul + softmax on this device against the CPU. */
  selfCheck(): Promise<number>;
  /** This machine's single-thread CPU bounds, measured in the runtime's worker (about a second). */
  roofline(): Promise<{ readGbS: number; f32GflopS: number; int8GmacS: number }>;
  loadClassifier(source: ModelSource, options?: ClassifierOptions): Promise<Classifier>;
  loadGenerator(source: ModelSource, options?: GeneratorOptions): Promise<Generator>;
  loadVector(source: string | URL | Bytes, options?: VectorOptions): Promise<Vector>;
  dispose(): void;
}

interface Model extends EventTarget {
  readonly device: 'webgpu' | 'cpu';
  /** Set when the model moved to the CPU after a GPU failure, or 'auto' chose the CPU for it. */
  readonly fallbackReason?: string;
  readonly worker: boolean;
  /** The module it runs in: 'cpu' on the CPU (after a GPU loss too), else 'full'. */
  readonly module: WasmModule;
  readonly info: ModelInfo;
  /** The wasm memory of the model's instance now, in bytes: the high-water mark (wasm memory only grows). */
  memoryBytes(): Promise<number>;
  /** Free the model and stop its worker; later calls reject with E_DISPOSED. */
  dispose(): void;
}

export interface Classification {
  label: string;
  score: number;
  /** Every label's score, in the model's label order. */
  scores: Record<string, number>;
}

export class Classifier extends EventTarget implements Model {
  readonly device: 'webgpu' | 'cpu';
  readonly fallbackReason?: string;
  readonly worker: boolean;
  readonly module: WasmModule;
  readonly info: ModelInfo;
  /** Label names in the model's order (empty for a plain encoder). */
  readonly labels: string[];
  /** Workers this classifier runs in (see `ClassifierOptions.workers`). */
  readonly workers: number;
  /** Truncation length and embedding pooling in effect (options, else the folder's settings). */
  readonly maxLength: number;
  readonly pooling: 'mean' | 'cls';
  /** What memory holds for the encoder's matrices: 'int8' (a q8 folder on the CPU) or 'f32'. */
  readonly dtype: 'f32' | 'int8';
  /** `signal` stops a long call between slices of 64 texts; it then rejects with E_ABORTED and the model stays usable. */
  classify(texts: string[], options?: CallOptions): Promise<Classification[]>;
  classify(text: string, options?: CallOptions): Promise<Classification>;
  embed(texts: string[], options?: CallOptions): Promise<Float32Array[]>;
  embed(text: string, options?: CallOptions): Promise<Float32Array>;
  tokenize(texts: string[]): Promise<Uint32Array[]>;
  tokenize(text: string): Promise<Uint32Array>;
  /** The trained (or `head`-loaded) head as `head.safetensors` bytes; E_INVALID for a folder's own head. */
  save(): Uint8Array;
  /** After `trainClassifier`: examples, rows trained on and held out, epochs run, the best epoch and
   * its held-out loss, training time. */
  readonly training?: { examples: number; train: number; heldOut: number; epochs: number; bestEpoch: number; valLoss: number; ms: number };
  memoryBytes(): Promise<number>;
  dispose(): void;
}

export interface Steer {
  vector: Vector;
  /** Default: the vector's defaultStrength. */
  strength?: number;
}

/** One generation request (crate/base/options.rs `GenerateOptions`; unknown names are errors). */
export interface GenerateOptions {
  /** Tokens to generate at most (default 64). */
  maxTokens?: number;
  /** 0 (default) = greedy. */
  temperature?: number;
  /** Keep the k most likely tokens (0 = off). */
  topK?: number;
  /** Keep the smallest set of tokens whose probability reaches p (1 = off). */
  topP?: number;
  /** Drop tokens less likely than minP × the most likely one (0 = off). */
  minP?: number;
  /** HF-style repetition penalty (1 = off). */
  repetitionPenalty?: number;
  seed?: number;
  stop?: string[];
  stopIds?: number[];
  /** Wrap the prompt in the model's chat template as a user message. */
  chat?: boolean;
  steer?: Steer[];
  /** Default: the vectors' own mode (they must agree). */
  mode?: 'icv' | 'residual';
  /** Blocks [start, end) the vectors act on (default all). */
  layers?: [number, number];
  /**
   * Steer with vectors computed with another model. Vectors record a signature of their model's
   * weights (`computeVector` writes it); one from a different model of the same shape is an
   * E_INVALID error unless this is set. GGUF control vectors carry none and are checked by shape.
   */
  forceVectors?: boolean;
}

export interface GenerateCallOptions extends GenerateOptions {
  /** Aborting ends the loop with an AbortError (code E_ABORTED). */
  signal?: AbortSignal;
}

export interface ChatMessage {
  role: 'system' | 'user' | 'assistant';
  content: string;
}

/** 'length': the model's context is full; 'abort': the `signal` aborted it; 'cancelled': the loop was
 * left early (`break`, an error). */
export type FinishReason = 'eos' | 'stop' | 'max_tokens' | 'length' | 'abort' | 'cancelled';

export interface Piece {
  id: number;
  text: string;
}

export class Generator extends EventTarget implements Model {
  readonly device: 'webgpu' | 'cpu';
  readonly fallbackReason?: string;
  readonly worker: boolean;
  readonly module: WasmModule;
  readonly info: ModelInfo;
  /** What memory holds: 'q4' (a q4 folder) or 'int8' on the CPU by default, 'f32' on WebGPU or when
   * asked for. */
  readonly weights: 'f32' | 'int8' | 'q4';
  /** Why the last generation ended; undefined while one runs. */
  readonly finish?: FinishReason;
  /** Prompt length in tokens of the last generation. */
  readonly promptTokens?: number;
  /** Prompt tokens of the last generation whose keys and values came from the one before (a chat's earlier turns). */
  readonly reusedTokens?: number;
  /**
   * Stream pieces of text. `prompt`: a text, or OpenAI-style messages rendered by the chat template;
   * the previous generation's KV cache is continued where the new prompt repeats what it read (same
   * steering). One generation at a time per Generator: a newer call ends an older iterator still open
   * (E_ABORTED at its next step).
   */
  generate(prompt: string | ChatMessage[], options?: GenerateCallOptions): AsyncGenerator<Piece, void, undefined>;
  computeVector(pairs: { from: string; to: string }[], options?: { method?: 'pca' | 'mean' }): Promise<Vector>;
  encode(text: string): Promise<Uint32Array>;
  applyChatTemplate(messages: ChatMessage[], addGenerationPrompt?: boolean): Promise<string>;
  memoryBytes(): Promise<number>;
  dispose(): void;
}

export interface VectorOptions {
  runtime?: Runtime;
  /** 'manifest', a manifest URL, or {sha256}. */
  integrity?: 'manifest' | string | { sha256: string; size?: number };
  onProgress?: (p: Progress) => void;
  signal?: AbortSignal;
}

/** A steering vector (veer-vector/1 safetensors or a llama.cpp GGUF control vector). */
export class Vector {
  readonly bytes: Uint8Array;
  readonly numLayers: number;
  readonly hidden: number;
  readonly method: string;
  readonly model: string;
  readonly defaultStrength: number;
  toBytes(): Uint8Array;
  add(other: Vector): Promise<Vector>;
  sub(other: Vector): Promise<Vector>;
  scale(factor: number): Promise<Vector>;
  normalize(): Promise<Vector>;
}

export function init(options?: InitOptions): Promise<Runtime>;
export function loadClassifier(source: ModelSource, options?: ClassifierOptions): Promise<Classifier>;
/** Train a classifier head on `encoder` from `examples`, in the page (see `TrainOptions`). */
export function trainClassifier(encoder: ModelSource, examples: { text: string; label: string }[], options?: TrainOptions): Promise<Classifier>;
export function loadGenerator(source: ModelSource, options?: GeneratorOptions): Promise<Generator>;
export function loadVector(source: string | URL | Bytes, options?: VectorOptions): Promise<Vector>;
/** Remove cached model files (all, or those whose URL starts with `prefix`); resolves to how many. */
export function clearCache(options?: { prefix?: string; cache?: string }): Promise<number>;
/** Fetch one file with progress, cache and integrity (what the loaders use). */
export function fetchFile(
  url: string | URL,
  options?: { file?: string; kind?: 'json' | 'safetensors' | 'binary'; sha256?: string; size?: number; cache?: string | false; optional?: boolean; onProgress?: (p: Progress) => void; signal?: AbortSignal },
): Promise<{ bytes: Uint8Array; cached: boolean; ms: number } | undefined>;
