// The library's modules (www/lib/) without a browser: each imports only modules before it in ORDER (so
// there is no cycle and nothing imports the entry veer.js), every import names a file of the folder
// (or, from veer-channel.js alone, the modules' digests that `make pkg` writes, pkg/veer-digests.js),
// the files bundlers copy are named by literal `new URL('./…', import.meta.url)`, and veer.js, loaded
// in Node, exports what veer.d.ts declares.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync, existsSync } from 'node:fs';
import { root } from './helpers.mjs';

const lib = `${root}www/lib/`;
// veer-host.js and veer-worker.js (loaded by URL: the inline host, the module worker) import only
// veer-error.js and the host.
const ORDER = ['veer-error.js', 'veer-host.js', 'veer-worker.js', 'veer-fetch.js', 'veer-sources.js', 'veer-channel.js', 'veer-runtime.js', 'veer-model.js', 'veer-vector.js', 'veer-generator.js', 'veer-classifier.js', 'veer.js'];

const modules = readdirSync(lib, { withFileTypes: true }).filter((d) => d.isFile() && d.name.endsWith('.js')).map((d) => d.name);
const source = (m) => readFileSync(lib + m, 'utf8');
/** Relative specifiers of `m`: static imports and re-exports, dynamic imports, `new URL` literals. */
function specifiers(m) {
  const text = source(m).replace(/\/\*[\s\S]*?\*\//g, '').replace(/\/\/.*$/gm, ''); // code only
  const all = (re) => [...text.matchAll(re)].map((x) => x[1]);
  return {
    imports: [...all(/^(?:import|export)\s+(?:\{[^}]*\}|\*(?:\s+as\s+\w+)?|\w+)\s+from\s+'([^']+)'/gm), ...all(/^import\s+'([^']+)'/gm)],
    dynamic: all(/\bimport\(\s*'([^']+)'\s*\)/g),
    urls: all(/new URL\('([^']+)', import\.meta\.url\)/g),
  };
}

test('every module is in ORDER and imports only the modules before it', () => {
  assert.deepEqual([...modules].sort(), [...ORDER].sort(), 'www/lib/*.js against ORDER (a new module needs its place there)');
  for (const m of modules) {
    const { imports, dynamic } = specifiers(m);
    for (const s of [...imports, ...dynamic]) {
      if (m === 'veer-channel.js' && s === './pkg/veer-digests.js') continue;
      assert.match(s, /^\.\/[^/]+\.js$/, `${m}: "${s}" is not a module of www/lib/`);
      const dep = s.slice(2);
      assert.ok(modules.includes(dep), `${m} imports ${dep}, which is not in www/lib/`);
      assert.ok(ORDER.indexOf(dep) < ORDER.indexOf(m), `${m} imports ${dep}, which comes after it`);
    }
  }
});

test("the worker, the wasm and the glue are literal `new URL('./…', import.meta.url)` beside the module", () => {
  const urls = Object.fromEntries(modules.map((m) => [m, specifiers(m).urls]));
  // Both modules of the package and their glue: the CPU-only one and the full one.
  assert.deepEqual(urls['veer-channel.js'].sort(), ['./pkg/veer_bg.wasm', './pkg/veer_cpu_bg.wasm', './veer-worker.js']);
  assert.deepEqual(urls['veer-host.js'].sort(), ['./pkg/veer.js', './pkg/veer_cpu.js']);
  for (const [m, list] of Object.entries(urls)) {
    for (const u of list) if (!u.startsWith('./pkg/')) assert.ok(existsSync(new URL(u, `file://${lib}${m}`)), `${m}: ${u}`);
  }
});

test('veer.js resolves in Node and exports what veer.d.ts declares', async () => {
  const veer = await import(`${lib}veer.js`);
  const dts = source('veer.d.ts');
  const declared = [...dts.matchAll(/^export (?:declare )?(?:class|function) (\w+)/gm)].map((x) => x[1]);
  assert.deepEqual(Object.keys(veer).sort(), [...new Set(declared)].sort());
  for (const name of ['loadClassifier', 'loadGenerator', 'loadVector']) {
    assert.equal(typeof veer.Runtime.prototype[name], 'function', `Runtime.prototype.${name}`);
  }
});

test("veer.d.ts's ErrorCode, docs/js-api.md's table and the codes thrown are one list; each code comes from where the table says", () => {
  const sorted = (xs) => [...new Set(xs)].sort();
  const dts = sorted([...source('veer.d.ts').match(/export type ErrorCode =([^;]+);/)[1].matchAll(/'(E_[A-Z_]+)'/g)].map((m) => m[1]));
  const doc = readFileSync(`${root}docs/js-api.md`, 'utf8');
  const rows = [...doc.matchAll(/^\| `(E_[A-Z_]+)` \| ([a-z ]+) \|/gm)].map((m) => ({ code: m[1], from: m[2] }));
  const fromRust = sorted([...readFileSync(`${root}crate/base/error.rs`, 'utf8').matchAll(/"(E_[A-Z_]+)"/g)].map((m) => m[1]));
  const fromJs = sorted(modules.flatMap((m) => [...source(m).matchAll(/'(E_[A-Z_]+)'/g)].map((x) => x[1])));
  assert.deepEqual(sorted(rows.map((r) => r.code)), dts, 'the docs table against ErrorCode');
  assert.deepEqual(sorted([...fromRust, ...fromJs]), dts, 'the codes Rust and the library throw against ErrorCode');
  for (const { code, from } of rows) {
    if (from.includes('model')) assert.ok(fromRust.includes(code), `${code}: the table says the model raises it; crate/base/error.rs does not`);
    if (from.includes('library')) assert.ok(fromJs.includes(code), `${code}: the table says the library raises it; www/lib/ does not`);
  }
});
