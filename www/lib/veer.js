// veer.js: text classifiers, embeddings and steered generation in the browser, as an ES module that
// needs no bundler. Models run in a module Web Worker by default (`worker: false` runs them on the
// page); the API is the same either way.
//
//   import { init, loadClassifier, loadGenerator, loadVector } from './veer.js';
//   const rt = await init({ device: 'auto' });                 // rt.device: 'webgpu' | 'cpu'
//   const clf = await loadClassifier('models/sentiment/', { onProgress, integrity: 'manifest' });
//   await clf.classify(['great stuff', 'awful']);             // [{label, score, scores}]
//
// Page-relative URLs (models) resolve against the page; the library's own files (worker, wasm) against
// the library's folder, so it works from any static host and sub-path. The worker and the wasm are named
// by literal `new URL('./…', import.meta.url)` expressions (veer-channel.js) so that bundlers (Vite,
// webpack 5, Rollup, esbuild with a plugin) find and copy them; `workerUrl`/`wasmUrl` override both.
// See veer.d.ts.
//
// Only what this file exports is the library's API. The modules, each importing only from those
// before it (tests/page/modules.test.mjs checks): veer-error, veer-fetch, veer-sources, veer-channel,
// veer-runtime, veer-model, veer-vector, veer-generator, veer-classifier, veer.js. veer-host.js (the
// side that owns the wasm module; it imports veer-error) and veer-worker.js (the module worker around
// it) are loaded by URL.

import { Runtime } from './veer-runtime.js';
import { loadClassifier } from './veer-classifier.js';
import { loadGenerator } from './veer-generator.js';
import { loadVector } from './veer-vector.js';

export { VeerError } from './veer-error.js';
export { clearCache, fetchFile } from './veer-fetch.js';
export { Runtime, init } from './veer-runtime.js';
export { Classifier, loadClassifier, trainClassifier } from './veer-classifier.js';
export { Generator, loadGenerator } from './veer-generator.js';
export { Vector, loadVector } from './veer-vector.js';

// The runtime's own `load*` methods: here, because the loaders live in modules above veer-runtime.js
// (they import it). This is the one side effect of importing the library (npm/package.json's
// `sideEffects` lists this file for it); the methods are non-enumerable, as a class's are.
const methods = {
  loadClassifier(source, options) {
    return loadClassifier(source, { ...options, runtime: this });
  },

  loadGenerator(source, options) {
    return loadGenerator(source, { ...options, runtime: this });
  },

  loadVector(source, options) {
    return loadVector(source, { ...options, runtime: this });
  },
};
for (const [name, value] of Object.entries(methods)) Object.defineProperty(Runtime.prototype, name, { value, writable: true, configurable: true });
