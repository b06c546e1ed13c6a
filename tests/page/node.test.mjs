// The npm package in Node.js, as a user runs it there (tests, prerendering, batch embedding): the tarball
// installed into a fresh Node project, a script that imports `veer` and classifies, embeds, generates with
// a steering vector and trains a head, with models named by plain paths and file: URLs. Its results are
// compared with the native CLI's: scores and embeddings within 1e-4, greedy ids identical, the trained
// head's scores within 1e-3 of `veer train`'s (the same trainer; the embeddings it starts from differ in
// rounding between wasm and native).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { nativeScores, maxDiff, models, root } from './helpers.mjs';

const version = readFileSync(`${root}Cargo.toml`, 'utf8').match(/^version = "(.+)"$/m)[1];
const tarball = `${root}dist/veer-${version}.tgz`;
const veer = `${root}target/release/veer`;
const cli = (args, input) => JSON.parse(execFileSync(veer, args, { encoding: 'utf8', input }).trim().split('\n').at(-1));

let app;
before(() => {
  if (!existsSync(tarball)) throw new Error(`${tarball} is missing: run make package`);
  app = mkdtempSync(join(tmpdir(), 'veer-node-'));
  writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'veer-node-check', private: true, type: 'module' }));
  execFileSync('npm', ['install', '--offline', '--no-audit', '--no-fund', '--loglevel=error', tarball], { cwd: app, stdio: 'pipe' });
  symlinkSync(models.replace(/\/$/, ''), join(app, 'models'));
});
after(() => app && rmSync(app, { recursive: true, force: true }));

// What the script does, in a fresh `node` process with the app as its working directory.
const SCRIPT = `import { init, loadClassifier, loadGenerator, loadVector, trainClassifier } from 'veer';
import { readFileSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import process from 'node:process';
import { Buffer } from 'node:buffer';
const a = JSON.parse(readFileSync(0, 'utf8'));
const code = (p) => p.then(() => 'ok', (e) => e.code + ' ' + e.message);
const rt = await init();
const out = { runtime: { device: rt.device, module: rt.info.module, worker: rt.worker, reason: rt.fallbackReason } };
const clf = await loadClassifier('models/sentiment/');
out.classifier = { module: clf.module, worker: clf.worker, dtype: clf.dtype };
out.classify = await clf.classify(a.texts);
// A file: URL, checked against the folder's manifest; an absolute path without the trailing slash.
const byUrl = await loadClassifier(pathToFileURL(process.cwd() + '/models/sentiment/').href, { integrity: 'manifest' });
out.byUrl = await byUrl.classify(a.texts);
const absolute = await loadClassifier(process.cwd() + '/models/sentiment');
out.absolute = await absolute.classify(a.texts);
const enc = await loadClassifier('models/all-minilm-l6-v2-q8/');
out.embed = (await enc.embed(a.embed)).map((v) => Array.from(v));
const gen = await loadGenerator('models/smollm2-135m-instruct-q4/');
const positive = await loadVector('models/vectors/positive.safetensors');
out.ids = [];
for await (const p of gen.generate(a.prompt, { chat: true, maxTokens: a.maxTokens, temperature: 0, steer: [{ vector: positive, strength: a.strength }] })) out.ids.push(p.id);
const mine = await trainClassifier('models/all-minilm-l6-v2/', a.train, { seed: 1 });
out.trained = await mine.classify(a.held);
out.head = Buffer.from(mine.save()).toString('base64');
out.missing = await code(loadClassifier('models/no-such-folder/'));
out.afterError = (await clf.classify(a.texts[0])).label;
for (const m of [clf, byUrl, absolute, enc, gen, mine]) m.dispose();
rt.dispose();
// WebGPU asked for: an error where the runtime has none (Node), else a classifier on it (Deno).
out.adapter = Boolean(await globalThis.navigator?.gpu?.requestAdapter?.());
const gpu = await init({ device: 'webgpu' }).catch((e) => e.code + ' ' + e.message);
if (typeof gpu === 'string') out.webgpu = gpu;
else {
  const onGpu = await gpu.loadClassifier('models/sentiment/');
  out.webgpu = { device: onGpu.device, module: onGpu.module, classify: await onGpu.classify(a.texts) };
  onGpu.dispose();
  gpu.dispose();
}
console.log(JSON.stringify(out));
`;

const TRAIN = [
  ['The checkout page returns an error and nobody can pay', 'urgent'],
  ['Login fails for every user since this morning', 'urgent'],
  ['The site is down and customers are calling', 'urgent'],
  ['Payments are being charged twice right now', 'urgent'],
  ['Our database is refusing all connections', 'urgent'],
  ['It would be nice to have a dark mode some day', 'later'],
  ['There is a small typo in the footer text', 'later'],
  ['Could the settings icon be a little larger', 'later'],
  ['Maybe add more colour themes in a future release', 'later'],
  ['The about page could use a nicer photo', 'later'],
].map(([text, label]) => ({ text, label }));
const HELD = ['Nobody can log in and the app crashes at start', 'A slightly rounder button would look better', 'Orders are failing for all customers'];

/** The script's output in a fresh process of `runtime` (`[command, ...args]`), the app its working directory. */
function runScript(runtime, input) {
  writeFileSync(join(app, 'run.mjs'), SCRIPT);
  const stdout = execFileSync(runtime[0], [...runtime.slice(1), 'run.mjs'], { cwd: app, input: JSON.stringify(input), encoding: 'utf8', timeout: 600_000 });
  return JSON.parse(stdout.trim().split('\n').at(-1));
}

// The native CLI's answers, computed once for both runtimes.
let expected;
function reference() {
  if (expected) return expected;
  const ref = nativeScores('sentiment');
  const embed = ['A quiet harbour at dawn.', 'The quarterly report is late again.'];
  const prompt = 'Describe your weekend.';
  const maxTokens = 8;
  const strength = 0.04;
  const native = cli(['embed', '--model', `${models}all-minilm-l6-v2-q8`, ...embed]).embeddings;
  const ids = cli(['generate', '--model', `${models}smollm2-135m-instruct-q4`, '--prompt', prompt, '--chat', '--max-tokens', String(maxTokens), '--vector', `${models}vectors/positive.safetensors:${strength}`]).ids;
  const plain = cli(['generate', '--model', `${models}smollm2-135m-instruct-q4`, '--prompt', prompt, '--chat', '--max-tokens', String(maxTokens)]).ids;
  assert.notDeepEqual(ids, plain, 'the vector changes the ids (else the comparison proves nothing about steering)');
  expected = { ref, native, ids, input: { texts: ref.texts, embed, prompt, maxTokens, strength, train: TRAIN, held: HELD } };
  return expected;
}

/** Everything the script computed, against the native CLI. */
function assertLikeCli(got, who) {
  const { ref, native, ids } = reference();
  for (const k of ['classify', 'byUrl', 'absolute']) {
    const diff = maxDiff(got[k], ref.results);
    assert.ok(diff <= 1e-4, `${who} ${k}: scores differ from the native CLI by ${diff}`);
  }
  const diff = Math.max(...got.embed.flatMap((v, i) => v.map((x, j) => Math.abs(x - native[i][j]))));
  assert.ok(diff <= 1e-4, `${who}: embeddings differ from the native CLI by ${diff}`);
  assert.deepEqual(got.ids, ids, `${who}: steered greedy ids equal the native CLI`);

  // The head trained here, natively: the same scores on the same encoder; and `veer train` on the same
  // examples and seed trains the same head.
  const dir = mkdtempSync(join(tmpdir(), 'veer-node-head-'));
  try {
    writeFileSync(join(dir, 'head.safetensors'), Buffer.from(got.head, 'base64'));
    const asNative = cli(['classify', '--model', `${models}all-minilm-l6-v2`, '--head', join(dir, 'head.safetensors'), '-'], HELD.join('\n')).results;
    const headDiff = maxDiff(got.trained, asNative.map((n) => ({ score: n.score, scores: Object.entries(n.scores) })));
    assert.ok(headDiff <= 1e-4, `${who}: the exported head natively: max |Δ| ${headDiff}`);
    const jsonl = (list) => list.map((e) => JSON.stringify(e)).join('\n');
    writeFileSync(join(dir, 'train.jsonl'), jsonl(TRAIN));
    writeFileSync(join(dir, 'held.jsonl'), jsonl(HELD.map((text) => ({ text, label: 'urgent' }))));
    const trained = cli(['train', '--encoder', `${models}all-minilm-l6-v2`, '--data', join(dir, 'train.jsonl'), '--test', join(dir, 'held.jsonl'), '--out', join(dir, 'native.safetensors'), '--options', '{"seed": 1}']);
    const trainDiff = maxDiff(got.trained, trained.test.scores.map((row) => ({ score: Math.max(...row), scores: trained.labels.map((l, i) => [l, row[i]]) })));
    assert.ok(trainDiff <= 1e-3, `${who}: trained here vs by veer train: max |Δ| ${trainDiff}`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  assert.deepEqual(got.trained.map((r) => r.label), ['urgent', 'later', 'urgent']);

  // A missing folder is a 404 as from a server, naming the file; the runtime keeps working.
  // (the folder's files are fetched at once: whichever 404 comes first names its file)
  assert.match(got.missing, /^E_HTTP [\w.]+: HTTP 404 Not Found for file:\/\/.*\/no-such-folder\//);
  assert.equal(got.afterError, ref.results[0].label);
}

test('the tarball in a fresh Node project classifies, embeds, generates steered and trains a head like the native CLI', () => {
  const got = runScript([process.execPath], reference().input);
  // Node has no WebGPU and no Worker: the CPU module, on the calling thread.
  assert.deepEqual(got.runtime, { device: 'cpu', module: 'cpu', worker: false, reason: 'this runtime has no WebGPU (navigator.gpu)' });
  assert.deepEqual(got.classifier, { module: 'cpu', worker: false, dtype: 'int8' });
  assertLikeCli(got, 'Node');
  // WebGPU asked for where there is none: an error that says so, not a hang or a trap.
  assert.equal(got.adapter, false);
  assert.match(got.webgpu, /^E_DEVICE .*no WebGPU \(navigator\.gpu\)/);
});

// Deno 2 (npm `deno`, a devDependency): the same package and script, no flags but the permissions.
// Deno has module Workers and `navigator.gpu`: models run in workers, and `device: 'webgpu'` takes the
// full module on whatever adapter Deno finds (Mesa's software Vulkan, llvmpipe, where it is installed).
test('the same script under Deno: workers, the CPU module by default, WebGPU where Deno has an adapter', () => {
  const deno = `${root}node_modules/.bin/deno`;
  const got = runScript([deno, 'run', '--allow-read', '--allow-env', '--allow-sys'], reference().input);
  assert.equal(got.runtime.device, 'cpu');
  assert.equal(got.runtime.module, 'cpu');
  assert.equal(got.runtime.worker, true);
  assert.match(got.runtime.reason, got.adapter ? /software fallback/ : /no WebGPU adapter|no WebGPU \(navigator\.gpu\)/);
  assert.deepEqual(got.classifier, { module: 'cpu', worker: true, dtype: 'int8' });
  assertLikeCli(got, 'Deno');
  if (got.adapter) {
    assert.equal(got.webgpu.device, 'webgpu', JSON.stringify(got.webgpu));
    assert.equal(got.webgpu.module, 'full');
    const diff = maxDiff(got.webgpu.classify, reference().ref.results);
    assert.ok(diff <= 1e-3, `Deno on WebGPU: scores differ from the native CLI by ${diff}`);
  } else {
    assert.match(got.webgpu, /^E_DEVICE /);
  }
});
