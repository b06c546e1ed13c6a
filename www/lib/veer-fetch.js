// veer-fetch.js: model files over HTTP with byte progress, Cache API persistence and sha256 integrity.
// Needs only veer-error.js; works on the page, in a worker and in an extension. Part of the veer library
// (see veer.js), usable on its own.

import { VeerError } from './veer-error.js';

export const DEFAULT_CACHE = 'veer-models-v1';
// The format of a cached model file: its bytes as verified, with the Content-Length they were stored
// with. An entry without this header (an older veer, another writer) is fetched again.
const CACHE_FORMAT_HEADER = 'x-veer-cache';
const CACHE_FORMAT = '1';
/** How long a download may go without a byte before it fails (ms; init's `stallTimeout`). */
export const DEFAULT_STALL_TIMEOUT = 30_000;

// Node.js, Bun and Deno: file: URLs, which is what plain paths resolve to there (veer-sources.js), are
// read with node:fs. Node's fetch cannot read them; Deno's can, but throws on a missing file where a
// server would answer 404 (which optional files and the errors rely on).
const LOCAL_FS = (typeof process === 'object' && typeof process.versions?.node === 'string') || typeof globalThis.Deno === 'object';

/** A local file as a `Response` (Node, Deno): 200 with its bytes, 404 when absent, as a static server answers. */
async function readLocal(url) {
  // Module names in variables, ignored by bundlers: a browser build never loads them.
  const fsName = 'node:fs/promises';
  const urlName = 'node:url';
  const [{ readFile }, { fileURLToPath }] = await Promise.all([import(/* webpackIgnore: true */ /* @vite-ignore */ fsName), import(/* webpackIgnore: true */ /* @vite-ignore */ urlName)]);
  try {
    const bytes = await readFile(fileURLToPath(url));
    const type = url.endsWith('.wasm') ? 'application/wasm' : url.endsWith('.json') ? 'application/json' : 'application/octet-stream';
    return new Response(bytes, { status: 200, headers: { 'content-type': type, 'content-length': String(bytes.length) } });
  } catch (e) {
    if (e.code === 'ENOENT' || e.code === 'ENOTDIR') return new Response(null, { status: 404, statusText: 'Not Found' });
    if (e.code === 'EACCES' || e.code === 'EPERM') return new Response(null, { status: 403, statusText: 'Forbidden' });
    throw e;
  }
}

/** `fetch`, and outside browsers also for file: URLs. The one way the library requests a file. */
export function request(url, init) {
  if (LOCAL_FS && String(url).startsWith('file:')) return readLocal(String(url));
  return fetch(url, init);
}

const hex = (buf) => Array.from(new Uint8Array(buf), (b) => b.toString(16).padStart(2, '0')).join('');

/** sha256 of `bytes` as lowercase hex (SubtleCrypto: needs a secure context, which localhost is). */
export async function sha256(bytes) {
  if (!globalThis.crypto?.subtle) {
    throw new VeerError('E_INTEGRITY', 'SubtleCrypto is not available (not a secure context: serve over https or from localhost)');
  }
  return hex(await crypto.subtle.digest('SHA-256', bytes));
}

function checkAbort(signal, file) {
  if (signal?.aborted) throw new VeerError('E_ABORTED', `${file}: aborted`, { file });
}

/**
 * What kind of bytes a file must hold: `json`, `safetensors`, or `binary` (anything but an HTML page).
 * Throws E_CONTENT naming the file when they do not fit.
 */
export function checkContent(bytes, kind, file) {
  let i = 0;
  while (i < bytes.length && i < 1024 && (bytes[i] === 0x20 || bytes[i] === 0x0a || bytes[i] === 0x0d || bytes[i] === 0x09)) i++;
  if (bytes[i] === 0x3c /* < */) {
    throw new VeerError('E_CONTENT', `${file}: an HTML page (wrong URL or a server error page), not ${kind}`, { file });
  }
  if (kind === 'json' && bytes[i] !== 0x7b /* { */ && bytes[i] !== 0x5b /* [ */) {
    throw new VeerError('E_CONTENT', `${file}: not JSON (starts with byte 0x${(bytes[i] ?? 0).toString(16)})`, { file });
  }
  if (kind === 'safetensors') {
    if (bytes.length < 10) throw new VeerError('E_CONTENT', `${file}: ${bytes.length} bytes, too short for safetensors`, { file });
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    const headerLen = Number(view.getBigUint64(0, true));
    if (headerLen + 8 > bytes.length || bytes[8] !== 0x7b) {
      throw new VeerError('E_CONTENT', `${file}: not a safetensors file (header length ${headerLen} of ${bytes.length} bytes)`, { file });
    }
  }
}

/**
 * The largest file the library reads: one wasm32 instance has 4 GiB of address space, and a file's
 * bytes are copied into it next to what is built from them, so nothing larger can be loaded.
 */
export const MAX_FILE_BYTES = 2 ** 31;

const mb = (n) => `${(n / 2 ** 20).toFixed(1)} MiB`;

/** `promise`, or E_NETWORK naming `file` when it has not settled within `ms` (0: no limit). */
function withinStall(promise, ms, file, what) {
  if (!ms) return promise;
  let timer;
  const stalled = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new VeerError('E_NETWORK', `${file}: ${what} for ${ms / 1000} s; stopped (init's stallTimeout)`, { file })), ms);
  });
  return Promise.race([promise, stalled]).finally(() => clearTimeout(timer));
}

async function readBody(response, { file, url, total, onProgress, signal, cached, stallTimeout = 0 }) {
  // Content-Length is the server's word (and counts compressed bytes): it sizes the first buffer
  // only within what the manifest declares, and a claim no instance could hold is refused unread.
  const claimed = Number(response.headers.get('content-length')) || 0;
  const limit = total ?? MAX_FILE_BYTES; // never read past the declared size
  if (claimed > MAX_FILE_BYTES) {
    response.body?.cancel().catch(() => {});
    throw new VeerError('E_CONTENT', `${file}: the server announces ${claimed} bytes (${mb(claimed)}), more than the ${mb(MAX_FILE_BYTES)} a wasm32 instance can load`, { file });
  }
  const len = Math.min(claimed || total || 0, limit);
  if (!response.body) {
    const bytes = new Uint8Array(await response.arrayBuffer());
    onProgress?.({ file, url, loaded: bytes.length, total: bytes.length, cached });
    return bytes;
  }
  const reader = response.body.getReader();
  let buffer = new Uint8Array(len);
  let loaded = 0;
  let lastReport = 0;
  onProgress?.({ file, url, loaded: 0, total: len || undefined, cached });
  try {
    for (;;) {
      checkAbort(signal, file);
      const { done, value } = await withinStall(reader.read(), stallTimeout, file, `no data after ${loaded} bytes`);
      if (done) break;
      if (loaded + value.length > limit) {
        const why = total === undefined ? `more than the ${mb(MAX_FILE_BYTES)} a wasm32 instance can load` : `more than the ${total} bytes expected (the manifest's size)`;
        throw new VeerError(total === undefined ? 'E_CONTENT' : 'E_INTEGRITY', `${file}: the server sent ${loaded + value.length} bytes so far, ${why}; stopped reading`, { file });
      }
      if (loaded + value.length > buffer.length) {
        // No or wrong Content-Length (compression): grow geometrically.
        const grown = new Uint8Array(Math.min(limit, Math.max(loaded + value.length, buffer.length * 2, 1 << 16)));
        grown.set(buffer.subarray(0, loaded));
        buffer = grown;
      }
      buffer.set(value, loaded);
      loaded += value.length;
      const now = Date.now();
      if (now - lastReport > 50) {
        lastReport = now;
        onProgress?.({ file, url, loaded, total: len || undefined, cached });
      }
    }
  } catch (e) {
    reader.cancel().catch(() => {});
    if (e instanceof VeerError) throw e;
    if (signal?.aborted) throw new VeerError('E_ABORTED', `${file}: aborted`, { file });
    throw new VeerError('E_NETWORK', `${file}: download failed after ${loaded} bytes (${url}): ${e.message ?? e}`, { file });
  }
  onProgress?.({ file, url, loaded, total: loaded, cached });
  return loaded === buffer.length ? buffer : buffer.slice(0, loaded);
}

/** The Cache API cache `name`, or null where there is none (Node, opaque origins, storage off). */
export async function openCache(name) {
  if (!name || !globalThis.caches) return null;
  try {
    return await caches.open(name);
  } catch {
    return null; // opaque origins, disabled storage: go without a cache
  }
}

/**
 * Fetch one file as bytes.
 * @param {string|URL} url absolute, or relative to the page
 * @param {object} o
 * @param {string} [o.file] name used in progress events and errors (default: the URL's path)
 * @param {'json'|'safetensors'|'binary'} [o.kind] what the bytes must be
 * @param {string} [o.sha256] expected hex digest; verified before the bytes are used or cached
 * @param {number} [o.size] expected byte size
 * @param {string|false} [o.cache] Cache API name (default `veer-models-v1`); false to bypass
 * @param {number} [o.stallTimeout] ms without a response or a byte before E_NETWORK (0 or absent: none)
 * @param {(e: {file: string, url: string, reason: string}) => void} [o.onCacheError] a verified file could not be cached (quota, storage off); it is used all the same
 * @param {boolean} [o.optional] resolve to `undefined` on 404 instead of throwing
 * @returns {Promise<{bytes: Uint8Array, cached: boolean, ms: number}>}
 */
export async function fetchFile(url, o = {}) {
  // Page-relative, as the docs show it; an absolute URL where there is no page (Node, Deno).
  try {
    url = new URL(String(url), globalThis.location?.href).href;
  } catch {
    throw new VeerError('E_INVALID', `fetchFile: not a URL${globalThis.location ? '' : ' (no page to resolve a relative one against: give an absolute or file: URL)'}`);
  }
  const file = o.file ?? new URL(url).pathname.split('/').filter(Boolean).slice(-2).join('/');
  const kind = o.kind ?? 'binary';
  const cacheName = o.cache === undefined ? DEFAULT_CACHE : o.cache;
  const t0 = performance.now();
  checkAbort(o.signal, file);
  // Only files from http(s) are kept: packaged and local ones (chrome-extension:, file:) are on the
  // device already, and the Cache API takes no other scheme (Deno's throws on file:).
  const cache = /^https?:/.test(url) ? await openCache(cacheName) : null;

  const verify = async (bytes) => {
    checkContent(bytes, kind, file);
    if (o.size !== undefined && bytes.length !== o.size) {
      throw new VeerError('E_INTEGRITY', `${file}: ${bytes.length} bytes, expected ${o.size}`, { file });
    }
    if (o.sha256) {
      const got = await sha256(bytes);
      if (got !== o.sha256.toLowerCase()) {
        throw new VeerError('E_INTEGRITY', `${file}: sha256 ${got} does not match the expected ${o.sha256}`, { file });
      }
    }
  };

  if (cache) {
    const hit = await cache.match(url).catch(() => undefined);
    if (hit) {
      const bytes = await readBody(hit, { file, url, onProgress: o.onProgress, signal: o.signal, cached: true });
      try {
        // An entry of another format version, or cut short (its bytes fewer than it was stored with), is
        // not used: it is deleted and the file fetched again.
        const stored = Number(hit.headers.get('content-length'));
        if (hit.headers.get(CACHE_FORMAT_HEADER) !== CACHE_FORMAT || (stored && bytes.length !== stored)) {
          throw new VeerError('E_INTEGRITY', `${file}: a cache entry of another format, or truncated`, { file });
        }
        await verify(bytes);
        return { bytes, cached: true, ms: performance.now() - t0 };
      } catch (e) {
        if (e.code === 'E_ABORTED') throw e;
        await cache.delete(url).catch(() => {}); // stale or damaged: fetch again
      }
    }
  }

  let response;
  try {
    response = await withinStall(request(url, { signal: o.signal, cache: 'no-cache' }), o.stallTimeout, file, 'no response');
  } catch (e) {
    if (o.signal?.aborted) throw new VeerError('E_ABORTED', `${file}: aborted`, { file });
    if (e instanceof VeerError) throw e;
    // Packaged files (chrome-extension:, file:) have no 404: a missing one fails to fetch.
    if (o.optional && !/^https?:/.test(url)) return undefined;
    throw new VeerError('E_NETWORK', `${file}: could not fetch ${url}: ${e.message ?? e}`, { file });
  }
  if (!response.ok) {
    if (o.optional && (response.status === 404 || response.status === 410)) return undefined;
    throw new VeerError('E_HTTP', `${file}: HTTP ${response.status} ${response.statusText} for ${url}`, { file, status: response.status });
  }
  const type = response.headers.get('content-type') ?? '';
  if (/^text\/html/i.test(type)) {
    response.body?.cancel().catch(() => {});
    if (o.optional) return undefined;
    throw new VeerError('E_CONTENT', `${file}: the server answered with an HTML page (${type}), not ${kind}: wrong URL? (${url})`, { file });
  }
  const bytes = await readBody(response, { file, url, total: o.size, onProgress: o.onProgress, signal: o.signal, cached: false, stallTimeout: o.stallTimeout });
  await verify(bytes);
  if (cache) {
    // Only verified bytes are cached. A full quota or an incognito profile is not an error.
    try {
      await cache.put(url, new Response(bytes, { headers: { 'content-type': type || 'application/octet-stream', 'content-length': String(bytes.length), [CACHE_FORMAT_HEADER]: CACHE_FORMAT } }));
    } catch (e) {
      // The file is used uncached; the runtime says so with a `cacheerror` event.
      const reason = `${e?.name ?? 'Error'}: ${e?.message ?? e}`;
      if (o.onCacheError) o.onCacheError({ file, url, reason });
      else console.warn(`veer: could not cache ${file}: ${reason}`);
    }
  }
  return { bytes, cached: false, ms: performance.now() - t0 };
}

const manifests = new Map();

/** Fetch and parse a `manifest.json` (`{files: {path: {size, sha256}}}`); `undefined` on 404. */
export async function loadManifest(url, { signal, cache } = {}) {
  url = String(url);
  if (!manifests.has(url)) {
    const p = (async () => {
      let res;
      try {
        res = await request(url, { signal, cache: 'no-cache' });
      } catch (e) {
        // Offline: the last manifest that was cached alongside the models.
        const c = await openCache(cache === undefined ? DEFAULT_CACHE : cache);
        res = await c?.match(url);
        if (!res) throw new VeerError('E_NETWORK', `manifest.json: could not fetch ${url}: ${e.message ?? e}`, { file: 'manifest.json' });
      }
      if (res.status === 404) return undefined;
      if (!res.ok) throw new VeerError('E_HTTP', `manifest.json: HTTP ${res.status} for ${url}`, { file: 'manifest.json', status: res.status });
      const text = await res.text();
      let json;
      try {
        json = JSON.parse(text);
      } catch {
        return undefined; // an HTML fallback page: no manifest here
      }
      if (!json || typeof json.files !== 'object') throw new VeerError('E_CONTENT', `manifest.json: no "files" object (${url})`, { file: 'manifest.json' });
      const c = await openCache(cache === undefined ? DEFAULT_CACHE : cache);
      c?.put(url, new Response(text, { headers: { 'content-type': 'application/json' } })).catch(() => {});
      return { url, files: json.files };
    })();
    manifests.set(url, p);
    p.catch(() => manifests.delete(url));
  }
  return manifests.get(url);
}

const SHA256 = /^[0-9a-f]{64}$/i;

/** A manifest entry must pin the file: a 64-hex sha256 and a byte size (else the file would be used unverified). */
function checkEntry(entry, key, manifest) {
  const ok = entry && typeof entry.sha256 === 'string' && SHA256.test(entry.sha256) && Number.isSafeInteger(entry.size) && entry.size >= 0;
  if (!ok) throw new VeerError('E_INTEGRITY', `${key}: the entry in ${manifest} needs "sha256" (64 hex digits) and "size" (bytes)`, { file: key });
  return { sha256: entry.sha256.toLowerCase(), size: entry.size };
}

/**
 * The manifest entry `{size, sha256}` for `fileUrl`: the manifest is `manifestUrl` when given, else the
 * first `manifest.json` found in the file's folder or up to two folders above it (same origin).
 */
export async function manifestEntry(fileUrl, { manifestUrl, signal, cache } = {}) {
  const file = new URL(fileUrl);
  const candidates = manifestUrl ? [new URL(manifestUrl, file)] : ['manifest.json', '../manifest.json', '../../manifest.json'].map((p) => new URL(p, file));
  const seen = new Set();
  for (const m of candidates) {
    if (seen.has(m.href) || m.origin !== file.origin) continue;
    seen.add(m.href);
    const manifest = await loadManifest(m.href, { signal, cache });
    if (!manifest) continue;
    const dir = new URL('./', m).href;
    const key = decodeURIComponent(file.href.startsWith(dir) ? file.href.slice(dir.length) : file.pathname);
    const entry = manifest.files[key];
    if (entry) return { ...checkEntry(entry, key, m.href), manifest: m.href, key };
    if (manifestUrl) throw new VeerError('E_INTEGRITY', `${key}: not listed in ${m.href}`, { file: key });
  }
  throw new VeerError('E_INTEGRITY', `${file.pathname}: no manifest.json lists this file (looked in ${[...seen].join(', ')})`, { file: file.pathname });
}

/**
 * The one integrity path of the library: fetch `url` (or check the `bytes` given) against what
 * `integrity` expects. `integrity`: undefined (no hash; content and size checks still apply),
 * 'manifest' (the manifest.json of the file's folder or up to two above), a manifest URL (resolved with
 * `resolve`), or `{[role or file name]: sha256}`. Resolves to `{bytes, cached, ms}`, or undefined for an
 * `optional` file that is absent: a 404, or in manifest mode a file the manifest does not list (it is
 * then not fetched at all, so nothing unverified is used and no failed request is made).
 */
export async function fetchVerified(url, { role, name, kind, optional, integrity, resolve, bytes, size, cache, stallTimeout, onCacheError, onProgress, signal } = {}) {
  let expected = { size };
  if (integrity && typeof integrity === 'object') {
    // Every fetched file is pinned or not used: without a hash it is an error, or absent if optional.
    // (Bytes the caller passed are theirs: checked when a hash is given, used as they are otherwise.)
    const h = integrity[role] ?? integrity[name];
    if (h === undefined && optional && !bytes) return undefined;
    if (h === undefined && bytes) {
      // nothing to check
    } else if (typeof h !== 'string' || !SHA256.test(h)) {
      throw new VeerError('E_INTEGRITY', `${name}: integrity needs a sha256 (64 hex digits) for "${role ?? name}", got ${h === undefined ? 'none' : typeof h === 'string' ? `"${h.slice(0, 80)}"` : typeof h}`, { file: name });
    } else {
      expected.sha256 = h.toLowerCase();
    }
  } else if (typeof integrity === 'string' && url) {
    const manifestUrl = integrity === 'manifest' ? undefined : resolve ? resolve(integrity) : new URL(integrity, url).href;
    try {
      expected = await manifestEntry(url, { manifestUrl, signal, cache });
    } catch (e) {
      if (optional && e.code === 'E_INTEGRITY') return undefined;
      throw e;
    }
  }
  if (bytes) {
    if (expected.sha256 && (await sha256(bytes)) !== expected.sha256.toLowerCase()) {
      throw new VeerError('E_INTEGRITY', `${name}: sha256 does not match the expected ${expected.sha256}`, { file: name });
    }
    return { bytes, cached: false, ms: 0 };
  }
  return fetchFile(url, { file: name, kind, sha256: expected.sha256, size: expected.size, cache, stallTimeout, onCacheError, optional, onProgress, signal });
}

/** Remove every cached model file (or only those whose URL starts with `prefix`). */
export async function clearCache({ prefix, cache = DEFAULT_CACHE } = {}) {
  if (!globalThis.caches) return 0;
  if (!prefix) return (await caches.delete(cache)) ? 1 : 0;
  const c = await caches.open(cache);
  let n = 0;
  for (const req of await c.keys()) if (req.url.startsWith(String(prefix)) && (await c.delete(req))) n++;
  return n;
}
