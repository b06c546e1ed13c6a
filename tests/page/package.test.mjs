// The npm package as a user gets it: `make package`'s tarball installed into a fresh Vite app, built for
// production (`vite build`) and served from its dist/ alone (plus the models); and the same tarball
// unpacked under a plain page with no bundler. Both classify and generate in headless Chromium, match the
// native CLI, and make no request outside the page's origin.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
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
async function runApp(folder, port, wantIds) {
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
    assert.ok(requests.some((u) => u.endsWith('.wasm')), `the wasm module was fetched: ${requests.join(' ')}`);
    assert.deepEqual(errors, []);
    return requests;
  } finally {
    await page.close();
    server.stop();
  }
}

test('a Vite production build of an app that installs the tarball classifies and generates', async () => {
  const app = join(dir, 'vite-app');
  mkdirSync(app);
  writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'veer-vite-check', private: true, type: 'module' }));
  writeFileSync(join(app, 'index.html'), '<!doctype html><meta charset="utf-8"><title>veer in a Vite app</title><script type="module" src="/main.js"></script>');
  writeFileSync(join(app, 'main.js'), appCode('veer'));
  // As a user would: install the tarball (no dependencies, so no network), then a production build.
  execFileSync('npm', ['install', '--offline', '--no-audit', '--no-fund', '--loglevel=error', tarball], { cwd: app, stdio: 'pipe' });
  execFileSync(process.execPath, [`${root}node_modules/vite/bin/vite.js`, 'build', '--logLevel', 'error'], { cwd: app, stdio: 'pipe' });
  const dist = join(app, 'dist');
  const assets = readdirSync(join(dist, 'assets'));
  assert.ok(assets.some((f) => f.endsWith('.wasm')), `dist/assets has the wasm: ${assets}`);
  assert.ok(assets.some((f) => f.startsWith('veer-worker')), `dist/assets has the worker: ${assets}`);
  const requests = await runApp(dist, 8795, nativeIds());
  // Everything the library loaded came from the build's own assets, none from node_modules.
  assert.ok(!requests.some((u) => u.includes('node_modules')), requests.join(' '));
});

test('the tarball unpacked under a plain page (no bundler) classifies and generates', async () => {
  const site = join(dir, 'plain');
  mkdirSync(site);
  execFileSync('tar', ['-xzf', tarball, '-C', site]); // -> package/
  const files = readdirSync(join(site, 'package')).sort();
  // The library is every plain file of www/lib/ (scripts/package.sh copies the folder), plus pkg/.
  const lib = readdirSync(`${root}www/lib`, { withFileTypes: true }).filter((d) => d.isFile()).map((d) => d.name);
  assert.deepEqual(files, [...lib, 'LICENSE-APACHE', 'LICENSE-MIT', 'README.md', 'package.json', 'pkg'].sort());
  assert.deepEqual(readdirSync(join(site, 'package', 'pkg')).sort(), ['veer.js', 'veer_bg.wasm']);
  const manifest = JSON.parse(readFileSync(join(site, 'package', 'package.json'), 'utf8'));
  assert.equal(manifest.version, version);
  assert.equal(manifest.exports['.'].types, './veer.d.ts');
  writeFileSync(join(site, 'index.html'), `<!doctype html><meta charset="utf-8"><title>veer, plain page</title><script type="module">${appCode('./package/veer.js')}</script>`);
  await runApp(site, 8796, nativeIds());
});
