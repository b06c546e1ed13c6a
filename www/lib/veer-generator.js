// veer-generator.js: Llama-family decoders (`loadGenerator`): streamed, steered generation that
// continues a conversation's KV cache, and in-context vectors computed from the model. Part of the veer
// library (see veer.js).

import { VeerError } from './veer-error.js';
import { LOAD_OPTIONS, splitOptions, describeSources } from './veer-sources.js';
import { runtimeFor } from './veer-runtime.js';
import { Model } from './veer-model.js';
import { Vector } from './veer-vector.js';

let generations = 0;

export class Generator extends Model {
  _loadExtra() {
    let name = this._options.name;
    if (!name && this._sources.weights.url) name = new URL('.', this._sources.weights.url).pathname.split('/').filter(Boolean).pop();
    return { name: name ?? '', options: this._request };
  }

  /** Token ids of `text` (no special tokens). */
  async encode(text) {
    // Checked here: the wasm-bindgen glue passes a non-string on unchecked, and wasm traps on it.
    if (typeof text !== 'string') throw new VeerError('E_INVALID', `encode: expected a string, got ${text === null ? 'null' : typeof text}`);
    return this._call('encode', { text });
  }

  /** The prompt text the chat template makes of `[{role, content}]`. */
  applyChatTemplate(messages, addGenerationPrompt = true) {
    return this._call('applyChatTemplate', { messages, addGenerationPrompt });
  }

  /** An in-context vector from `[{from, to}]` demonstration pairs. */
  async computeVector(pairs, { method } = {}) {
    if (method !== undefined && typeof method !== 'string') throw new VeerError('E_INVALID', 'computeVector: options.method must be a string');
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
    let signal;
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
      // `signal` and `steer` are the library's; the rest is the model's `GenerateOptions` request.
      const [own, request] = splitOptions('generate', options, ['signal', 'steer']);
      const { steer } = own;
      signal = own.signal;
      if (steer !== undefined && !Array.isArray(steer)) throw new VeerError('E_INVALID', 'steer: expected an array of {vector, strength}');
      // Vectors travel by id; each one's bytes go to this generator's worker once.
      const vectors = [];
      const terms = (steer ?? []).map((s, i) => {
        if (!(s?.vector instanceof Vector)) throw new VeerError('E_INVALID', `steer[${i}].vector: expected a Vector from loadVector or computeVector`);
        if (s.strength !== undefined && !Number.isFinite(s.strength)) throw new VeerError('E_INVALID', `steer[${i}].strength: expected a finite number`);
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
