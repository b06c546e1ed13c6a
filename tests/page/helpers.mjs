// Shared by the page tests: the static server (scripts/serve.py, as `make demo` serves), Debian's
// Chromium with the flags of webdriver.json, screenshots into test-results/.
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

export const root = new URL('../../', import.meta.url).pathname;
export const results = `${root}test-results/`;
export const chromeArgs = JSON.parse(readFileSync(`${root}webdriver.json`, 'utf8'))['goog:chromeOptions'].args;
export const noWebGpuArgs = chromeArgs.filter((a) => a !== '--enable-unsafe-webgpu').concat('--disable-webgpu');
export const executablePath = process.env.CHROME_BIN ?? '/usr/bin/chromium';
// VEER_WWW serves another copy of www/ (same layout), e.g. to try models before they are in the tree.
export const www = (process.env.VEER_WWW ?? `${root}www`).replace(/\/$/, '');
export const models = `${www}/models/`;

/** Serve `folder` (absolute) on `port` (COOP/COEP headers with `isolated`); resolves to {base, stop()}. */
export async function serve(folder, port, { isolated = false } = {}) {
  mkdirSync(results, { recursive: true });
  const server = spawn('python3', [`${root}scripts/serve.py`, folder, String(port), '--quiet', ...(isolated ? ['--isolated'] : [])], { stdio: ['ignore', 'pipe', 'ignore'] } /* stderr: tracebacks of downloads the tests cancel */);
  await new Promise((resolve, reject) => {
    server.stdout.once('data', resolve);
    server.once('exit', (code) => reject(new Error(`static server exited with ${code}`)));
  });
  return { base: `http://127.0.0.1:${port}/`, stop: () => server.kill() };
}

export function launch(args = chromeArgs) {
  return chromium.launch({ executablePath, args });
}

/** A browser profile on disk, so the Cache API persists across pages (an incognito one keeps little). */
export async function launchPersistent(args = chromeArgs, extra = {}) {
  const dir = mkdtempSync(join(tmpdir(), 'veer-profile-'));
  const context = await chromium.launchPersistentContext(dir, { executablePath, args, ...extra });
  const close = context.close.bind(context);
  context.close = async () => {
    await close();
    rmSync(dir, { recursive: true, force: true });
  };
  return context;
}

/** Collect page errors and console errors that are not the expected 404s of manifest look-ups. */
export function watch(page) {
  const errors = [];
  page.on('pageerror', (e) => errors.push(e.message));
  return errors;
}

/** The reference the browser must match: written by the native CLI (`veer classify`). */
export function nativeScores(name) {
  const file = `${models}${name}/native-scores.json`;
  if (!existsSync(file)) throw new Error(`${file} is missing: run make assets`);
  return JSON.parse(readFileSync(file, 'utf8'));
}

/** Max |Δ| between browser results ({label, score, scores: {l: s}}) and native ones (scores: [[l, s]]). */
export function maxDiff(browser, native) {
  let max = 0;
  browser.forEach((b, i) => {
    const n = native[i];
    const want = Object.fromEntries(n.scores);
    for (const [label, s] of Object.entries(want)) max = Math.max(max, Math.abs(b.scores[label] - s));
    max = Math.max(max, Math.abs(b.score - n.score));
  });
  return max;
}

/** A blank same-origin page to drive the library from (served by the route, no file needed). */
export async function blankPage(context, base) {
  const page = await context.newPage();
  const url = `${base}__blank.html`;
  await page.route(url, (r) => r.fulfill({ contentType: 'text/html', body: '<!doctype html><meta charset="utf-8"><title>veer test</title>' }));
  await page.goto(url);
  return page;
}
