// The demo page end to end, served as `make demo` serves it (www/ at the root), in headless Chromium
// (Debian's, driven by playwright-core; no browser download). Screenshots go to test-results/.
// WebGPU here is Chromium's software renderer: `auto` leaves it for the CPU; ?device=webgpu takes it
// (classification, slowly); generation runs with ?device=cpu.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { serve, launch, chromeArgs, noWebGpuArgs, watch, nativeScores, maxDiff, results, www } from './helpers.mjs';

let server;
before(async () => (server = await serve(www, Number(process.env.VEER_PAGE_PORT ?? 8788))));
after(() => server?.stop());

async function openDemo(args, query = '') {
  const browser = await launch(args);
  const page = await browser.newPage({ viewport: { width: 1100, height: 900 } });
  const errors = watch(page);
  // Which of the package's two modules the page fetched (each at most once: workers share it).
  const wasm = [];
  page.on('request', (r) => r.url().endsWith('.wasm') && wasm.push(r.url().split('/').at(-1)));
  page.wasm = wasm;
  // No failed request may show in the console (the page used to probe each model folder for a manifest).
  page.on('response', (r) => r.status() >= 400 && errors.push(`HTTP ${r.status()} ${r.url()}`));
  await page.goto(`${server.base}${query}`);
  await page.waitForFunction(() => document.getElementById('badge').dataset.state !== 'loading', null, { timeout: 120_000 });
  const rows = await page.$$eval('#runtime dt', (dts) => Object.fromEntries(dts.map((dt) => [dt.textContent, dt.nextElementSibling.textContent])));
  return { browser, page, rows, errors, state: await page.$eval('#badge', (b) => b.dataset.state) };
}

/** Type `text`, wait until both classifiers have scored it; resolves to {name: {label, scores, latency}}. */
async function classifyOnPage(page, text) {
  await page.fill('#text', text);
  await page.waitForFunction((t) => document.getElementById('classify').dataset.text === t, text, { timeout: 240_000 });
  return page.$$eval('.result', (panels) =>
    Object.fromEntries(
      panels.map((p) => {
        const scores = Object.fromEntries([...p.querySelectorAll('.bar')].map((b) => [b.dataset.label, Number(b.dataset.score)]));
        return [p.dataset.model, { label: p.dataset.label, score: scores[p.dataset.label], scores, latency: p.querySelector('.latency').textContent }];
      }),
    ),
  );
}

async function waitClassifiers(page) {
  await page.waitForFunction(() => document.getElementById('classify').dataset.state !== 'loading', null, { timeout: 300_000 });
  assert.equal(await page.$eval('#classify', (s) => s.dataset.state), 'ready', await page.$eval('#classify', (s) => s.textContent));
}

test('WebGPU: badge, self-check, model table, live classification, a lost GPU falls back to the CPU', async () => {
  // `auto` does not take this machine's software adapter (see the next test): ask for WebGPU.
  const { browser, page, rows, errors, state } = await openDemo(chromeArgs, '?device=webgpu');
  try {
    assert.equal(state, 'webgpu', JSON.stringify(rows));
    assert.equal(rows.device, 'webgpu');
    assert.match(rows.module, /^CPU \+ WebGPU .*"webgpu" was asked for/);
    assert.deepEqual(page.wasm, ['veer_bg.wasm'], 'only the full module before the GPU is lost');
    assert.ok(Number(rows['self-check max |Δ| vs CPU']) <= 1e-5, rows['self-check max |Δ| vs CPU']);
    await page.waitForSelector('#models tbody tr td.hash');
    const files = await page.$$eval('#models tbody tr td:first-child', (tds) => tds.map((td) => td.textContent));
    for (const f of ['sentiment/model.safetensors', 'topic/model.safetensors', 'vectors/positive.safetensors']) assert.ok(files.includes(f), files.join(', '));

    await waitClassifiers(page);
    const chips = await page.$$eval('#chips li', (lis) => lis.map((li) => li.textContent));
    assert.ok(chips.some((c) => /^sentiment .*(KiB|MiB) · /.test(c)) && chips.some((c) => /^topic /.test(c)), chips.join(' | '));
    for (const name of ['sentiment', 'topic']) {
      const ref = nativeScores(name);
      const got = await classifyOnPage(page, ref.texts[0]);
      assert.equal(got[name].label, ref.results[0].label, `${name} on WebGPU: ${JSON.stringify(got[name])}`);
      assert.ok(maxDiff([got[name]], [ref.results[0]]) <= 1e-3, `${name} on WebGPU vs native: ${JSON.stringify(got[name])}`);
      assert.match(got[name].latency, /\d+(\.\d)? m?s/);
    }
    await page.screenshot({ path: `${results}demo-webgpu.png`, fullPage: true });

    // The GPU goes away (a driver reset): the next classification runs on the CPU, the page keeps working.
    const lost = await page.evaluate(() => window.veerDemo.classifiers.sentiment._simulateDeviceLoss());
    assert.ok(lost >= 1, `devices destroyed: ${lost}`);
    const ref = nativeScores('sentiment');
    const after = await classifyOnPage(page, ref.texts[1]);
    assert.equal(after.sentiment.label, ref.results[1].label);
    assert.ok(maxDiff([after.sentiment], [ref.results[1]]) <= 1e-4, JSON.stringify(after.sentiment));
    const device = await page.evaluate(() => [window.veerDemo.classifiers.sentiment.device, window.veerDemo.classifiers.sentiment.fallbackReason, window.veerDemo.rt.device]);
    assert.equal(device[0], 'cpu');
    assert.match(device[1], /E_DEVICE.*lost/);
    assert.equal(device[2], 'cpu');
    assert.equal(await page.evaluate(() => window.veerDemo.classifiers.sentiment.module), 'cpu', 'a model moved to the CPU runs the CPU module');
    assert.deepEqual(page.wasm, ['veer_bg.wasm', 'veer_cpu_bg.wasm']);
    assert.equal(await page.$eval('#badge', (b) => b.textContent), 'CPU (GPU lost)');
    assert.deepEqual(errors, []);
  } finally {
    await browser.close();
  }
});

test('without WebGPU the page falls back to the CPU, says why, and classifies like the native CLI', async () => {
  const { browser, page, rows, errors, state } = await openDemo(noWebGpuArgs);
  try {
    assert.equal(state, 'cpu', JSON.stringify(rows));
    assert.ok(rows['why not WebGPU']?.length > 0, JSON.stringify(rows));
    assert.match(rows.module, /^CPU only /);
    assert.equal(rows['self-check max |Δ| vs CPU'], '0.00e+0');
    await waitClassifiers(page);
    const ref = nativeScores('topic');
    const got = await classifyOnPage(page, ref.texts[0]);
    assert.equal(got.topic.label, ref.results[0].label);
    assert.ok(maxDiff([got.topic], [ref.results[0]]) <= 1e-4, JSON.stringify(got.topic));
    await page.screenshot({ path: `${results}demo-cpu.png`, fullPage: true });
    assert.deepEqual(page.wasm, ['veer_cpu_bg.wasm'], 'a page without WebGPU never fetches the full module');
    assert.deepEqual(errors, []);
  } finally {
    await browser.close();
  }
});

test('chat on the page: each turn is steered at the slider strength and continues the KV cache (?device=cpu)', async () => {
  const { browser, page, errors, state } = await openDemo(chromeArgs, '?device=cpu&maxTokens=8');
  try {
    assert.equal(state, 'cpu');
    await page.selectOption('#vector', 'positive');
    await page.check('#chat-mode');
    const turn = async (text) => {
      await page.fill('#prompt', text);
      await page.click('#run');
      await page.waitForFunction(() => ['done', 'error', 'aborted'].includes(document.getElementById('generate').dataset.state) && !document.getElementById('run').disabled, null, { timeout: 300_000 });
      assert.equal(await page.$eval('#generate', (s) => s.dataset.state), 'done', await page.$eval('#gen-note', (n) => n.textContent));
    };
    await turn('Name a colour of the sea.');
    await turn('And of the sky?');
    const log = await page.$$eval('#chat-log li', (lis) => lis.map((li) => ({ role: li.className, text: li.textContent, reused: li.dataset.reused })));
    assert.deepEqual(log.map((l) => l.role), ['user', 'assistant', 'user', 'assistant']);
    assert.ok(log[1].text.length > 0 && log[3].text.length > 0, JSON.stringify(log));
    assert.equal(log[1].reused, '0');
    assert.ok(Number(log[3].reused) > 10, `second turn reused ${log[3].reused} tokens`);
    assert.match(await page.$eval('#gen-note', (n) => n.textContent), /^turn 2: \d+ prompt tokens, \d+ from the previous turn's cache/);
    await page.screenshot({ path: `${results}demo-chat.png`, fullPage: true });
    assert.deepEqual(errors, []);
  } finally {
    await browser.close();
  }
});

test('steered generation on the page: plain and steered stream side by side and differ (?device=cpu)', async () => {
  const { browser, page, errors, state } = await openDemo(chromeArgs, '?device=cpu&maxTokens=12');
  try {
    assert.equal(state, 'cpu');
    await page.selectOption('#vector', 'positive');
    await page.waitForFunction(() => document.getElementById('strength-value').textContent !== '', null);
    await page.fill('#prompt', 'Describe the weather today in one sentence.');
    // Streaming: the columns grow piece by piece.
    await page.evaluate(() => {
      window.updates = { plain: 0, steered: 0 };
      new MutationObserver(() => window.updates.plain++).observe(document.getElementById('out-plain'), { childList: true, characterData: true, subtree: true });
      new MutationObserver(() => window.updates.steered++).observe(document.getElementById('out-steered'), { childList: true, characterData: true, subtree: true });
    });
    await page.click('#run');
    await page.waitForFunction(() => ['done', 'error', 'aborted'].includes(document.getElementById('generate').dataset.state), null, { timeout: 300_000 });
    const note = await page.$eval('#gen-note', (n) => n.textContent);
    assert.equal(await page.$eval('#generate', (s) => s.dataset.state), 'done', note);
    const plain = await page.$eval('#out-plain', (e) => e.textContent);
    const steered = await page.$eval('#out-steered', (e) => e.textContent);
    assert.ok(plain.length > 0 && steered.length > 0, `${plain} | ${steered}`);
    assert.notEqual(plain, steered);
    const updates = await page.evaluate(() => window.updates);
    assert.ok(updates.plain > 3 && updates.steered > 3, JSON.stringify(updates));
    assert.match(note, /on cpu: .* MiB, loaded in/);
    const chips = await page.$$eval('#chips li', (lis) => lis.map((li) => li.textContent));
    assert.ok(chips.some((c) => c.startsWith('smollm2 ')), chips.join(' | '));
    await page.screenshot({ path: `${results}demo-generation.png`, fullPage: true });
    assert.deepEqual(errors, []);
  } finally {
    await browser.close();
  }
});

test('teach it: the page trains a classifier from the examples in the box and classifies what is typed (?device=cpu)', async () => {
  const { browser, page, errors } = await openDemo(noWebGpuArgs, '?device=cpu');
  try {
    await page.click('#teach-train');
    await page.waitForFunction(() => ['ready', 'error'].includes(document.getElementById('teach').dataset.state), null, { timeout: 300_000 });
    const note = await page.textContent('#teach-note');
    assert.equal(await page.$eval('#teach', (s) => s.dataset.state), 'ready', note);
    assert.match(note, /trained on \d+ examples \(\d+ held out\)/);
    // The default text is an outage; a wish for later is the other label.
    assert.equal(await page.$eval('#teach', (s) => s.dataset.result), 'urgent');
    await page.fill('#teach-text', 'Maybe one day we could add more colour themes');
    await page.waitForFunction(() => document.getElementById('teach').dataset.result === 'later', null, { timeout: 60_000 });
    const bars = await page.$$eval('#teach-bars .bar', (b) => b.map((x) => x.dataset.label));
    assert.deepEqual(bars, ['urgent', 'later']);
    // Export hands the page a head.safetensors download.
    const [download] = await Promise.all([page.waitForEvent('download'), page.click('#teach-export')]);
    assert.equal(download.suggestedFilename(), 'head.safetensors');
    await page.screenshot({ path: `${results}demo-teach.png`, fullPage: true });
    assert.deepEqual(errors, []);
  } finally {
    await browser.close();
  }
});
