// veer-error.js: the one error type of the veer library and its conversions. Part of the veer library
// (see veer.js); shared by the page side, the worker and the fetch helpers.

/** An `Error` with a stable `code` (`E_HTTP`, `E_CONTENT`, `E_INTEGRITY`, …) and the file at fault. */
export class VeerError extends Error {
  constructor(code, message, extra = {}) {
    super(message);
    this.name = code === 'E_ABORTED' ? 'AbortError' : 'VeerError';
    this.code = code;
    Object.assign(this, extra);
  }
}

/** Turn anything thrown by the wasm module ("[E_CODE] message", a trap, a JsError) into a VeerError. */
export function toVeerError(e, fallbackCode = 'E_WASM') {
  if (e instanceof VeerError) return e;
  const message = String(e?.message ?? e);
  const m = /^\[(E_[A-Z_]+)\]\s*([\s\S]*)$/.exec(message);
  if (m) return new VeerError(m[1], m[2]);
  if (e?.name === 'AbortError') return new VeerError('E_ABORTED', message);
  // A wasm trap (a panic, `unreachable`, out of memory) leaves the module unusable.
  if (e instanceof WebAssembly.RuntimeError) return new VeerError('E_WASM', `wasm trap: ${message}`, { fatal: true });
  // The wasm-bindgen glue rejects an argument of the wrong type with a TypeError: the caller's mistake.
  if (e instanceof TypeError) return new VeerError('E_INVALID', message);
  return new VeerError(fallbackCode, message);
}

/** Plain-object form for postMessage (Error subclasses lose `code` in structured clone). */
export function errorToData(e) {
  const v = toVeerError(e);
  return { code: v.code, message: v.message, file: v.file, fatal: v.fatal };
}

export function errorFromData(d) {
  const extra = {};
  if (d.file) extra.file = d.file;
  if (d.fatal) extra.fatal = true;
  return new VeerError(d.code, d.message, extra);
}
