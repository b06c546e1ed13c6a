// veer-sources.js: what the caller passes, checked and made ready: options split into the library's and
// the model's, a model's files (a base URL, or explicit URLs / bytes per file) fetched and verified, text
// lists. Part of the veer library (see veer.js).

import { VeerError, toVeerError } from './veer-error.js';
import { fetchVerified } from './veer-fetch.js';

const here = import.meta.url;

/** The working directory as a file: URL with a trailing slash (Node, Deno, Bun), else undefined. */
function cwdBase() {
  const cwd = globalThis.process?.cwd?.() ?? globalThis.Deno?.cwd?.();
  if (typeof cwd !== 'string') return undefined;
  const path = cwd.replace(/\\/g, '/').replace(/\/?$/, '/');
  // encodeURI leaves # and ? as they are: in a path they are characters, not URL syntax.
  return `file://${path.startsWith('/') ? '' : '/'}${encodeURI(path).replace(/#/g, '%23').replace(/\?/g, '%3F')}`;
}

/** Where page-relative URLs resolve: the document, else the worker/extension script, else (Node,
 * Deno) the working directory, so that plain paths are paths. */
function pageBase() {
  return globalThis.document?.baseURI ?? globalThis.location?.href ?? cwdBase() ?? here;
}

export const resolve = (u) => new URL(String(u), pageBase()).href;

// The roles of a model folder's files (the same table as `ROLES` in crate/io/files.rs; a test compares
// them).
export const FILES = {
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
// request (`EncoderOptions`, `GenerateOptions` in crate/base/options.rs), checked by the Rust types.
export const LOAD_OPTIONS = ['runtime', 'worker', 'integrity', 'onProgress', 'onFallback', 'onRestart', 'signal'];

const CALLBACKS = ['onProgress', 'onFallback', 'onRestart'];

/** The type checks of the library's own callback and signal options, wherever they are taken
 * (`undefined` and `null` mean not given). */
export function checkOwnOption(what, k, v) {
  if (v === undefined || v === null) return;
  if (CALLBACKS.includes(k) && typeof v !== 'function') throw new VeerError('E_INVALID', `${what}: options.${k} must be a function`);
  if (k === 'signal' && (typeof v !== 'object' || typeof v.aborted !== 'boolean' || typeof v.addEventListener !== 'function')) {
    throw new VeerError('E_INVALID', `${what}: options.signal must be an AbortSignal`);
  }
  if (k === 'worker' && typeof v !== 'boolean') throw new VeerError('E_INVALID', `${what}: options.worker must be true or false`);
  if (k === 'cache' && v !== false && (typeof v !== 'string' || v === '')) throw new VeerError('E_INVALID', `${what}: options.cache must be a cache name or false`);
  if (k === 'stallTimeout' && !(Number.isFinite(v) && v >= 0)) throw new VeerError('E_INVALID', `${what}: options.stallTimeout must be a number of milliseconds (0: no limit)`);
  // A string goes to wasm as it is: the glue does not check types, and a number there is a trap.
  if (k === 'name' && typeof v !== 'string') throw new VeerError('E_INVALID', `${what}: options.name must be a string`);
  // (an object's hashes are checked where each file is: a missing or malformed one is E_INTEGRITY)
  if (k === 'integrity' && typeof v !== 'string' && (typeof v !== 'object' || Array.isArray(v))) {
    throw new VeerError('E_INVALID', `${what}: options.integrity must be 'manifest', a sha256, or an object of them by role`);
  }
}

/** Split `options` into the library's (type-checked) and the model's; `known` lists what the model side
 * accepts when it has no Rust request type (anything else is then an error here). */
export function splitOptions(what, options, own, known) {
  const mine = {};
  const rest = {};
  for (const [k, v] of Object.entries(options ?? {})) {
    if (own.includes(k)) {
      checkOwnOption(what, k, v);
      mine[k] = v;
    } else if (known && !known.includes(k)) throw new VeerError('E_INVALID', `${what}: options.${k} is not an option (known: ${[...own, ...known].join(', ')})`);
    // A function cannot reach the model (structured clone): no model option takes one.
    else if (typeof v === 'function') throw new VeerError('E_INVALID', `${what}: options.${k} is a function; no such callback option (the library's own: ${own.join(', ')})`);
    else if (v !== undefined) rest[k] = v;
  }
  return [mine, rest];
}

export function isBytes(x) {
  return x instanceof ArrayBuffer || ArrayBuffer.isView(x) || (typeof Blob === 'function' && x instanceof Blob);
}

/** {role: {url} | {bytes}} for the files a model needs. */
export function describeSources(source, roles) {
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

export async function toUint8(v) {
  if (typeof Blob === 'function' && v instanceof Blob) return new Uint8Array(await v.arrayBuffer());
  if (v instanceof ArrayBuffer) return new Uint8Array(v);
  return new Uint8Array(v.buffer, v.byteOffset, v.byteLength);
}

/** What a failure to get a file's bytes (fetching, reading a Blob, a progress callback) rejects with. */
export const fetchError = (e) => toVeerError(e, 'E_NETWORK');

/**
 * Fetch (or take) every file, verified, with the runtime's `settings` (`Runtime._fetchSettings()`).
 * Resolves to {bytes: {role: Uint8Array}, owned: Set<role>, files: {name: {size, cached, ms}}}; `owned` bytes were downloaded here and may be transferred.
 * Rejects with a VeerError.
 */
export async function gather(sources, options, settings) {
  const files = {};
  const bytes = {};
  const owned = new Set();
  // One file failing stops the other downloads.
  const controller = new AbortController();
  const outer = options.signal;
  const onAbort = () => controller.abort();
  if (outer?.aborted) controller.abort();
  outer?.addEventListener('abort', onAbort, { once: true });
  const all = Promise.all(
    Object.entries(sources).map(async ([role, s]) => {
      const r = s.url
        ? await fetchVerified(s.url, { ...s, role, integrity: options.integrity, resolve, ...settings, onProgress: options.onProgress, signal: controller.signal })
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
    throw fetchError(e);
  } finally {
    outer?.removeEventListener('abort', onAbort);
  }
  return { bytes, owned, files, sources };
}

/** Arguments for a `load*` request: the files as `[{role, name, bytes}]` (name: the URL they were
 * fetched as, so errors name it), with the downloaded buffers listed for transfer. */
export function loadArgs(g, extra) {
  const files = [];
  const transfer = [];
  for (const [role, b] of Object.entries(g.bytes)) {
    files.push({ role, name: g.sources[role].url ?? g.sources[role].name, bytes: b });
    if (g.owned.has(role) && b.byteOffset === 0 && b.byteLength === b.buffer.byteLength) transfer.push(b.buffer);
  }
  return { args: { ...extra, files }, transfer };
}

/** A string or an iterable of strings as an array; anything else is the caller's E_INVALID (the message
 * names the position and type, never the value: it may be the user's text). */
export function textList(method, texts) {
  if (typeof texts === 'string') return [texts];
  if (texts == null || typeof texts[Symbol.iterator] !== 'function') throw new VeerError('E_INVALID', `${method}: expected a string or an array of strings, got ${texts === null ? 'null' : typeof texts}`);
  const list = Array.from(texts);
  const bad = list.findIndex((t) => typeof t !== 'string');
  if (bad >= 0) throw new VeerError('E_INVALID', `${method}: texts[${bad}] is ${list[bad] === null ? 'null' : typeof list[bad]}; expected a string`);
  return list;
}
