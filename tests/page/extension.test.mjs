// The browser extension example (www/extension/, Manifest V3), packaged by scripts/extension.sh and
// loaded unpacked into headless Chromium. A context-menu click cannot be made from a test, so the test
// calls the handler the menu calls (self.veer.classifySelection in the service worker), then drives the
// popup page.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { root, chromeArgs, launchPersistent, nativeScores, maxDiff, results } from './helpers.mjs';

test('extension: loads, classifies the selection like the native CLI, shows it on the badge and in the popup', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'veer-extension-'));
  execFileSync(`${root}scripts/extension.sh`, [dir], { stdio: 'pipe' });
  const manifest = JSON.parse(readFileSync(`${dir}/manifest.json`, 'utf8'));
  assert.equal(manifest.manifest_version, 3);
  assert.equal(manifest.content_security_policy.extension_pages, "script-src 'self' 'wasm-unsafe-eval'; object-src 'self'");

  const context = await launchPersistent([...chromeArgs, `--disable-extensions-except=${dir}`, `--load-extension=${dir}`]);
  const requests = [];
  context.on('request', (r) => requests.push(r.url()));
  try {
    const sw = context.serviceWorkers()[0] ?? (await context.waitForEvent('serviceworker', { timeout: 30_000 }));
    const id = new URL(sw.url()).host;
    const ref = nativeScores('sentiment');

    // The menu exists (update rejects for an unknown id), and its handler classifies on the CPU. The
    // service worker can be reachable before its onInstalled listener has created the menu, so the
    // check waits for the menu (up to 10 s) instead of racing the install.
    const last = await sw.evaluate(async (text) => {
      for (let tries = 0; ; tries++) {
        try {
          await chrome.contextMenus.update('veer-classify', { title: 'Classify with veer' });
          break;
        } catch (e) {
          if (tries >= 100) throw e;
          await new Promise((r) => setTimeout(r, 100));
        }
      }
      await chrome.storage.local.set({ device: 'cpu' });
      return self.veer.classifySelection(text);
    }, ref.texts[0]);
    assert.equal(last.error, undefined, JSON.stringify(last.error));
    assert.equal(last.device, 'cpu');
    assert.equal(last.label, ref.results[0].label);
    assert.ok(maxDiff([last], [ref.results[0]]) <= 1e-4, JSON.stringify(last));
    const badge = await sw.evaluate(() => chrome.action.getBadgeText({}));
    assert.equal(badge, ref.results[0].label.slice(0, 4));

    // The popup shows the last result, and classifies typed text.
    const popup = await context.newPage({ viewport: { width: 400, height: 320 } });
    await popup.goto(`chrome-extension://${id}/popup.html`);
    await popup.waitForSelector('#label');
    assert.equal(await popup.$eval('#label', (e) => e.textContent), ref.results[0].label);
    await popup.fill('#text', ref.texts[1]);
    await popup.click('button[type=submit]');
    await popup.waitForSelector('body[data-done]', { timeout: 120_000 });
    assert.equal(await popup.$eval('#label', (e) => e.textContent), ref.results[1].label);
    await popup.screenshot({ path: `${results}extension-popup.png` });

    const remote = requests.filter((u) => !u.startsWith('chrome-extension://'));
    assert.deepEqual(remote, [], 'the extension fetched something from outside its package');
  } finally {
    await context.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
