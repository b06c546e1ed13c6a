// veer-vector.js: steering vectors (`loadVector`, and what `Vector`'s arithmetic makes), held in the
// runtime's worker. Part of the veer library (see veer.js).

import { VeerError } from './veer-error.js';
import { fetchVerified } from './veer-fetch.js';
import { resolve, splitOptions, isBytes, toUint8, fetchError } from './veer-sources.js';
import { runtimeFor } from './veer-runtime.js';

/** A steering vector: the file's bytes (veer-vector/1 safetensors) and what they describe. */
export class Vector {
  constructor(rt, d, id) {
    this.runtime = rt;
    this.id = id;
    this.bytes = d.bytes;
    this.numLayers = d.numLayers;
    this.hidden = d.hidden;
    this.method = d.method;
    this.model = d.model;
    this.defaultStrength = d.defaultStrength;
  }

  /** A copy of the file bytes (to store or download). */
  toBytes() {
    return this.bytes.slice();
  }

  async _op(op, other, factor) {
    const id = `${this.runtime._vectors++}:${op}`;
    const d = await this.runtime._home.call('vectorOp', { op, id, factor, a: { id: this.id, bytes: this.bytes }, b: other && { id: other.id, bytes: other.bytes } });
    return new Vector(this.runtime, d, id);
  }

  add(other) {
    return this._op('add', other);
  }

  sub(other) {
    return this._op('sub', other);
  }

  scale(factor) {
    return this._op('scale', undefined, factor);
  }

  normalize() {
    return this._op('normalize');
  }
}

/** Load a vector file (veer safetensors or a llama.cpp GGUF control vector) from a URL or bytes. */
export async function loadVector(source, options = {}) {
  const [own] = splitOptions('loadVector', options, ['runtime', 'integrity', 'onProgress', 'signal'], []);
  const rt = await runtimeFor(own);
  let bytes;
  const isUrl = typeof source === 'string' || source instanceof URL;
  const name = isUrl ? String(source).split('/').pop() : 'vector';
  if (isUrl) {
    const integrity = own.integrity?.sha256 ? { vector: own.integrity.sha256 } : own.integrity;
    const r = await fetchVerified(resolve(source), { role: 'vector', name, kind: 'binary', size: own.integrity?.size, integrity, resolve, ...rt._fetchSettings(), onProgress: own.onProgress, signal: own.signal }).catch((e) => Promise.reject(fetchError(e)));
    bytes = r.bytes;
  } else if (isBytes(source)) {
    bytes = (await toUint8(source)).slice();
  } else {
    throw new VeerError('E_INVALID', 'loadVector: expected a URL or bytes');
  }
  const id = `${rt._vectors++}:${name}`;
  const d = await rt._home.call('vectorInfo', { id, bytes });
  return new Vector(rt, { ...d, bytes }, id);
}
