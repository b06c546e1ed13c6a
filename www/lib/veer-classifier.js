// veer-classifier.js: classifiers and embedding models (`loadClassifier`), and heads trained in the page
// (`trainClassifier`). Part of the veer library (see veer.js).

import { VeerError, toVeerError } from './veer-error.js';
import { FILES, LOAD_OPTIONS, splitOptions, checkOwnOption, describeSources, toUint8, textList } from './veer-sources.js';
import { runtimeFor } from './veer-runtime.js';
import { Model } from './veer-model.js';

/** Texts per slice of a `classify`/`embed` call: an AbortSignal is honoured between slices. Large
 * enough that the per-call overhead is negligible, small enough to stop within a fraction of a second. */
const CHUNK = 64;

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
    return want - 1; // checked by loadClassifier before anything was fetched
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
    let onAbort;
    const stop = signal && new Promise((_, reject) => (onAbort = () => reject(aborted())));
    stop?.catch(() => {});
    signal?.addEventListener('abort', onAbort, { once: true });
    const out = [];
    try {
      for (let i = 0; i < list.length || i === 0; i += CHUNK) {
        // After an abort, `race` still holds the slice in flight: its later failure is not unhandled.
        const part = this._spread(op, list.slice(i, i + CHUNK));
        out.push(...(await (stop ? Promise.race([part, stop]) : part)));
      }
    } finally {
      signal?.removeEventListener('abort', onAbort);
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

/** The `workers` option: 'auto' or a whole number from 1 to 64 (default 1). */
function checkWorkers(want) {
  if (want === undefined || want === null || want === 'auto') return;
  if (!Number.isInteger(want) || want < 1 || want > 64) throw new VeerError('E_INVALID', `loadClassifier: options.workers ${want}: expected 'auto' or a whole number from 1 to 64`);
}

/**
 * Load a classifier or embedding model: an HF folder URL (config.json, model.safetensors,
 * tokenizer.json) or `{config, weights, tokenizer}` as URLs or bytes.
 */
export async function loadClassifier(source, options = {}) {
  // Everything but the library's own options is an `EncoderOptions` request, checked by the model.
  const [own, request] = splitOptions('loadClassifier', options, [...LOAD_OPTIONS, 'workers', 'head']);
  checkWorkers(own.workers);
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
    checkOwnOption('trainClassifier', k, v);
    if (TRAIN_OPTIONS.includes(k)) train[k] = v;
    else if (k !== 'onProgress') load[k] = v;
  }
  const { onProgress, signal } = options ?? {};
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
