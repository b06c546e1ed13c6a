// The npm package as a user gets it: `make package`'s tarball installed into a fresh app and built for
// production by Vite, webpack 5 and esbuild, each served from its output folder alone (plus the models);
// and the same tarball unpacked under a plain page with no bundler. Each classifies and generates in
// headless Chromium, matches the native CLI, finds both of the package's modules in its output, fetches
// only the CPU one (the app asks for the CPU) and makes no request outside the page's origin.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, mkdirSync, readFileSync, readdirSync, rmSync, symlinkSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { serve, launch, watch, nativeScores, maxDiff, models, root } from './helpers.mjs';

const version = readFileSync(`${root}Cargo.toml`, 'utf8').match(/^version = "(.+)"$/m)[1];
const tarball = `${root}dist/veer-${version}.tgz`;
const prompt = 'Name three colours.';
const maxTokens = 6;

let dir;
let browser;
before(async () => {
  if (!existsSync(tarball)) throw new Error(`${tarball} is missing: run make package`);
  dir = mkdtempSync(join(tmpdir(), 'veer-package-'));
  browser = await launch();
});
after(async () => {
  await browser?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** Greedy ids of the native CLI for the same prompt (the browser's CPU path must give the same ids). */
let native;
function nativeIds() {
  if (native) return native;
  const out = execFileSync(`${root}target/release/veer`, ['generate', '--model', `${models}smollm2-135m-instruct`, '--prompt', prompt, '--max-tokens', String(maxTokens), '--chat'], { encoding: 'utf8' });
  native = JSON.parse(out.trim().split('\n').at(-1)).ids;
  return native;
}

/** The app's code, the same with or without a bundler: classify (worker and inline) and generate. */
const appCode = (from) => `import { init, loadClassifier, loadGenerator } from '${from}';
window.run = async ({ texts, prompt, maxTokens }) => {
  await init({ device: 'cpu' });
  const clf = await loadClassifier('models/sentiment/');
  const inline = await loadClassifier('models/sentiment/', { worker: false });
  const gen = await loadGenerator('models/smollm2-135m-instruct/');
  const ids = [];
  for await (const p of gen.generate(prompt, { maxTokens, temperature: 0, chat: true })) ids.push(p.id);
  return { worker: clf.worker, inlineWorker: inline.worker, results: await clf.classify(texts), inline: await inline.classify(texts), ids };
};
`;

/** Serve `folder` (with the models linked in), run the app, check results and that nothing left the origin. */
async function runApp(folder, port, wantIds, cpuModule = 'veer_cpu_bg.wasm') {
  symlinkSync(models.replace(/\/$/, ''), join(folder, 'models'));
  const server = await serve(folder, port);
  const page = await browser.newPage();
  const errors = watch(page);
  const requests = [];
  page.on('request', (r) => requests.push(r.url()));
  page.on('worker', (w) => requests.push(w.url()));
  try {
    await page.goto(`${server.base}index.html`);
    await page.waitForFunction(() => typeof window.run === 'function');
    const ref = nativeScores('sentiment');
    const got = await page.evaluate((a) => window.run(a), { texts: ref.texts, prompt, maxTokens });
    assert.equal(got.worker, true);
    assert.equal(got.inlineWorker, false);
    const diff = Math.max(maxDiff(got.results, ref.results), maxDiff(got.inline, ref.results));
    assert.ok(diff <= 1e-4, `scores differ from the native CLI by ${diff}`);
    assert.deepEqual(got.ids, wantIds, 'greedy ids equal the native CLI');
    const origin = new URL(server.base).origin;
    const outside = requests.filter((u) => !u.startsWith(origin) && !u.startsWith('blob:') && !u.startsWith('data:'));
    assert.deepEqual(outside, [], 'requests outside the page origin');
    const wasm = requests.filter((u) => u.endsWith('.wasm')).map((u) => u.split('/').at(-1));
    assert.equal(wasm.length, 1, `one module fetched: ${requests.join(' ')}`);
    assert.equal(wasm[0], cpuModule, 'device "cpu" fetches the CPU module');
    assert.deepEqual(errors, []);
    return requests;
  } finally {
    await page.close();
    server.stop();
  }
}

/** A fresh app folder with index.html (loading `script`, a module unless `classic`) and main.js, the
 * tarball installed as a user would (no dependencies, so no network). */
function newApp(name, script, { classic = false } = {}) {
  const app = join(dir, name);
  mkdirSync(app);
  writeFileSync(join(app, 'package.json'), JSON.stringify({ name: `veer-${name}-check`, private: true, type: 'module' }));
  writeFileSync(join(app, 'index.html'), `<!doctype html><meta charset="utf-8"><title>veer in ${name}</title><script ${classic ? 'defer' : 'type="module"'} src="${script}"></script>`);
  writeFileSync(join(app, 'main.js'), appCode('veer'));
  execFileSync('npm', ['install', '--offline', '--no-audit', '--no-fund', '--loglevel=error', tarball], { cwd: app, stdio: 'pipe' });
  return app;
}

/** Every file under `folder`, as paths relative to it. */
const listAll = (folder) => readdirSync(folder, { recursive: true, withFileTypes: true }).filter((d) => d.isFile()).map((d) => join(d.parentPath ?? d.path, d.name).slice(folder.length + 1));

/** Both modules are in the build output byte for byte, and both glues (bundlers rename them: webpack
 * to bare hashes, and its production mode minifies them). */
function assertShipped(out, files) {
  const digest = (f) => createHash('sha256').update(readFileSync(f)).digest('hex');
  const shipped = new Map(files.map((f) => [digest(join(out, f)), f]));
  const found = {};
  for (const f of ['veer_bg.wasm', 'veer_cpu_bg.wasm']) {
    found[f] = shipped.get(digest(`${root}pkg/${f}`));
    assert.ok(found[f], `${out}: pkg/${f} is not in the output: ${files.join(' ')}`);
  }
  const glues = files.filter((f) => f.endsWith('.js') && readFileSync(join(out, f), 'utf8').includes('__wbg_get_imports'));
  assert.equal(glues.length, 2, `${out}: the two modules' glue: ${glues.join(' ')}`);
  return found['veer_cpu_bg.wasm'].split('/').at(-1); // the CPU module's name in the output
}

test('a Vite production build of an app that installs the tarball classifies and generates', async () => {
  const app = newApp('vite', '/main.js');
  execFileSync(process.execPath, [`${root}node_modules/vite/bin/vite.js`, 'build', '--logLevel', 'error'], { cwd: app, stdio: 'pipe' });
  const dist = join(app, 'dist');
  const files = listAll(dist);
  const cpu = assertShipped(dist, files);
  assert.ok(files.some((f) => f.startsWith('assets/veer-worker')), `dist/assets has the worker: ${files}`);
  const requests = await runApp(dist, 8795, nativeIds(), cpu);
  // Everything the library loaded came from the build's own assets, none from node_modules.
  assert.ok(!requests.some((u) => u.includes('node_modules')), requests.join(' '));
});

test('a webpack 5 production build (no configuration beyond the entry) classifies and generates', async () => {
  // webpack's defaults: `new URL('./…', import.meta.url)` becomes an emitted asset, `new Worker(new URL(…))`
  // a worker bundle; the page loads the classic script webpack writes.
  const app = newApp('webpack', 'main.js', { classic: true });
  execFileSync(process.execPath, [`${root}node_modules/webpack-cli/bin/cli.js`, '--mode', 'production', '--entry', './main.js', '--output-path', 'dist', '--no-stats'], { cwd: app, stdio: 'pipe' });
  const dist = join(app, 'dist');
  writeFileSync(join(dist, 'index.html'), readFileSync(join(app, 'index.html')));
  const files = listAll(dist);
  const cpu = assertShipped(dist, files);
  const requests = await runApp(dist, 8797, nativeIds(), cpu);
  assert.ok(!requests.some((u) => u.includes('node_modules')), requests.join(' '));
});

test('an esbuild bundle (the app and the worker as entry points, pkg/ copied beside them) classifies and generates', async () => {
  // esbuild copies no `new URL` assets: the README's recipe bundles veer-worker.js as a second entry
  // point under its own name and copies the package's pkg/ folder next to the bundles.
  const app = newApp('esbuild', 'main.js');
  const dist = join(app, 'dist');
  execFileSync(`${root}node_modules/.bin/esbuild`, ['main.js', 'node_modules/veer/veer-worker.js', '--bundle', '--format=esm', '--minify', '--entry-names=[name]', '--outdir=dist', '--log-level=error'], { cwd: app, stdio: 'pipe' });
  execFileSync('cp', ['-r', join(app, 'node_modules/veer/pkg'), dist]);
  writeFileSync(join(dist, 'index.html'), readFileSync(join(app, 'index.html')));
  const files = listAll(dist);
  const cpu = assertShipped(dist, files);
  assert.ok(files.includes('veer-worker.js'), files.join(' '));
  await runApp(dist, 8798, nativeIds(), cpu);
});

test('the tarball unpacked under a plain page (no bundler) classifies and generates', async () => {
  const site = join(dir, 'plain');
  mkdirSync(site);
  execFileSync('tar', ['-xzf', tarball, '-C', site]); // -> package/
  const files = readdirSync(join(site, 'package')).sort();
  // The library is every plain file of www/lib/ (scripts/package.sh copies the folder), plus pkg/.
  const lib = readdirSync(`${root}www/lib`, { withFileTypes: true }).filter((d) => d.isFile()).map((d) => d.name);
  assert.deepEqual(files, [...lib, 'LICENSE-APACHE', 'LICENSE-MIT', 'README.md', 'package.json', 'pkg'].sort());
  assert.deepEqual(readdirSync(join(site, 'package', 'pkg')).sort(), ['veer-digests.js', 'veer.js', 'veer_bg.wasm', 'veer_cpu.js', 'veer_cpu_bg.wasm']);
  const manifest = JSON.parse(readFileSync(join(site, 'package', 'package.json'), 'utf8'));
  assert.equal(manifest.version, version);
  assert.equal(manifest.exports['.'].types, './veer.d.ts');
  writeFileSync(join(site, 'index.html'), `<!doctype html><meta charset="utf-8"><title>veer, plain page</title><script type="module">${appCode('./package/veer.js')}</script>`);
  await runApp(site, 8796, nativeIds());
});
