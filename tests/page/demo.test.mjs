// Page end-to-end: the demo served as `make demo` serves it, in headless Chromium (Debian's, driven by
// playwright-core; no browser download). Screenshots go to test-results/.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdirSync, readFileSync } from 'node:fs';
import { chromium } from 'playwright-core';

const root = new URL('../../', import.meta.url).pathname;
const port = Number(process.env.VEER_PAGE_PORT ?? 8788);
const base = `http://127.0.0.1:${port}/`;
const chromeArgs = JSON.parse(readFileSync(`${root}webdriver.json`, 'utf8'))['goog:chromeOptions'].args;
let server;

before(async () => {
  mkdirSync(`${root}test-results`, { recursive: true });
  server = spawn('python3', [`${root}scripts/serve.py`, `${root}www`, String(port), '--quiet'], { stdio: ['ignore', 'pipe', 'inherit'] });
  await new Promise((resolve, reject) => {
    server.stdout.once('data', resolve);
    server.once('exit', (code) => reject(new Error(`static server exited with ${code}`)));
  });
});

after(() => server?.kill());

async function openDemo(args) {
  const browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args });
  const page = await browser.newPage();
  const errors = [];
  page.on('pageerror', (e) => errors.push(e.message));
  await page.goto(base);
  await page.waitForFunction(() => document.getElementById('badge').dataset.state !== 'loading', null, { timeout: 120_000 });
  const rows = await page.$$eval('#runtime dt', (dts) => Object.fromEntries(dts.map((dt) => [dt.textContent, dt.nextElementSibling.textContent])));
  return { browser, page, rows, errors, state: await page.$eval('#badge', (b) => b.dataset.state) };
}

test('demo page reports WebGPU and a self-check that matches the CPU', async () => {
  const { browser, page, rows, errors, state } = await openDemo(chromeArgs);
  try {
    assert.deepEqual(errors, []);
    assert.equal(state, 'webgpu', JSON.stringify(rows));
    assert.equal(rows.device, 'webgpu');
    assert.ok(Number(rows['self-check max |Δ| vs CPU']) <= 1e-5, rows['self-check max |Δ| vs CPU']);
    await page.waitForSelector('#models tbody tr td.hash');
    const files = await page.$$eval('#models tbody tr td:first-child', (tds) => tds.map((td) => td.textContent));
    assert.ok(files.includes('all-minilm-l6-v2/model.safetensors'), files.join(', '));
    await page.screenshot({ path: `${root}test-results/demo-webgpu.png`, fullPage: true });
  } finally {
    await browser.close();
  }
});

test('without WebGPU the page falls back to the CPU and says why', async () => {
  const args = chromeArgs.filter((a) => a !== '--enable-unsafe-webgpu').concat('--disable-webgpu');
  const { browser, page, rows, errors, state } = await openDemo(args);
  try {
    assert.deepEqual(errors, []);
    assert.equal(state, 'cpu', JSON.stringify(rows));
    assert.ok(rows['why not WebGPU']?.length > 0, JSON.stringify(rows));
    assert.equal(rows['self-check max |Δ| vs CPU'], '0.00e+0');
    await page.screenshot({ path: `${root}test-results/demo-cpu.png`, fullPage: true });
  } finally {
    await browser.close();
  }
});
