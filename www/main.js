// Demo page: live classification with two classifiers, steered generation side by side with plain,
// and what this browser gives veer. URL parameters: ?device=auto|webgpu|cpu, ?worker=0 (run inline),
// ?maxTokens=N (default length of a generation).
import { init, loadClassifier, loadGenerator, loadVector, trainClassifier } from './lib/veer.js';

const params = new URLSearchParams(location.search);
const device = params.get('device') ?? 'auto';
const worker = params.get('worker') !== '0';
const $ = (id) => document.getElementById(id);
const badge = $('badge');
const chips = $('chips');

const size = (bytes) => (bytes < 1048576 ? `${(bytes / 1024).toFixed(1)} KiB` : `${(bytes / 1048576).toFixed(1)} MiB`);
const ms = (t) => (t < 1000 ? `${Math.round(t)} ms` : `${(t / 1000).toFixed(1)} s`);

function row(name, value) {
  const dt = document.createElement('dt');
  dt.textContent = name;
  const dd = document.createElement('dd');
  dd.textContent = value;
  $('runtime').append(dt, dd);
}

function chip(name, model) {
  const li = document.createElement('li');
  li.dataset.model = name;
  li.textContent = `${name} ${size(model.info.bytes)} · ${ms(model.info.loadMs)}${model.info.cached ? ' (cached)' : ''}`;
  li.title = `${model.device}; fetch ${ms(model.info.fetchMs)}, create ${ms(model.info.createMs)}`;
  chips.querySelector(`[data-model="${name}"]`)?.remove();
  chips.append(li);
}

function showError(el, err) {
  el.innerHTML = '';
  const p = document.createElement('p');
  p.className = 'note error';
  p.textContent = `${err.code ?? 'error'}: ${err.message ?? err}`;
  el.append(p);
}

// --- manifest: the model table, integrity, the vectors on offer -----------------------------------

const MANIFEST = 'models/manifest.json';
const manifest = fetch(MANIFEST)
  .then((r) => (r.ok ? r.json() : undefined))
  .catch(() => undefined);

async function listModels() {
  const tbody = document.querySelector('#models tbody');
  const m = await manifest;
  if (!m) {
    tbody.innerHTML = '<tr><td colspan="3">no models/manifest.json: run <code>make assets</code></td></tr>';
    return;
  }
  for (const [name, { size: bytes, sha256 }] of Object.entries(m.files)) {
    const tr = document.createElement('tr');
    tr.innerHTML = '<td></td><td></td><td class="hash"></td>';
    tr.children[0].textContent = name;
    tr.children[1].textContent = size(bytes);
    tr.children[2].textContent = sha256.slice(0, 16) + '…';
    tbody.append(tr);
  }
}

// --- runtime --------------------------------------------------------------------------------------

async function startRuntime() {
  const t0 = performance.now();
  const rt = await init({ device, worker });
  row('veer', rt.version);
  row('device', rt.device);
  row('module', `${rt.info.module === 'cpu' ? 'CPU only (veer_cpu_bg.wasm)' : 'CPU + WebGPU (veer_bg.wasm)'}: ${rt.info.moduleReason}`);
  row('device start', ms(performance.now() - t0));
  row('models run in', rt.worker ? 'a Web Worker each' : 'the page');
  if (rt.fallbackReason) row('why not WebGPU', rt.fallbackReason);
  row('self-check max |Δ| vs CPU', (await rt.selfCheck()).toExponential(2));
  badge.textContent = rt.device === 'webgpu' ? 'WebGPU' : 'CPU';
  badge.dataset.state = rt.device;
  rt.addEventListener('fallback', (e) => {
    badge.textContent = 'CPU (GPU lost)';
    badge.dataset.state = 'cpu';
    badge.title = e.reason;
  });
  return rt;
}

// --- live classification --------------------------------------------------------------------------

const CLASSIFIERS = ['sentiment', 'topic'];
const classifiers = {};

function renderBars(name, result, latency) {
  const panel = document.querySelector(`.result[data-model="${name}"]`);
  panel.querySelector('.latency').textContent = ms(latency);
  panel.dataset.label = result.label;
  const bars = panel.querySelector('.bars');
  bars.innerHTML = '';
  const sorted = Object.entries(result.scores).sort((a, b) => b[1] - a[1]);
  for (const [label, score] of sorted) {
    const div = document.createElement('div');
    div.className = 'bar' + (label === result.label ? ' top' : '');
    div.dataset.label = label;
    div.dataset.score = String(score);
    div.innerHTML = '<span class="name"></span><span class="track"><span class="fill"></span></span><span class="value"></span>';
    div.querySelector('.name').textContent = label;
    div.querySelector('.fill').style.width = `${(score * 100).toFixed(1)}%`;
    div.querySelector('.value').textContent = score.toFixed(3);
    bars.append(div);
  }
}

let classifying = null;
let again = false;

async function classifyNow() {
  if (classifying) {
    again = true;
    return classifying;
  }
  const text = $('text').value;
  classifying = Promise.all(
    Object.entries(classifiers).map(async ([name, clf]) => {
      const t0 = performance.now();
      try {
        const [r] = await clf.classify([text]);
        renderBars(name, r, performance.now() - t0);
      } catch (e) {
        showError(document.querySelector(`.result[data-model="${name}"] .bars`), e);
      }
    }),
  );
  await classifying;
  classifying = null;
  $('classify').dataset.text = text;
  if (again) {
    again = false;
    return classifyNow();
  }
}

async function startClassifiers(rt) {
  // The manifest by URL: no probing of each model folder for its own (no 404s in the console).
  const integrity = (await manifest) ? MANIFEST : undefined;
  await Promise.all(
    CLASSIFIERS.map(async (name) => {
      const panel = document.querySelector(`.result[data-model="${name}"] .bars`);
      try {
        const clf = await loadClassifier(`models/${name}/`, {
          runtime: rt,
          integrity,
          onProgress: ({ file, loaded, total }) => {
            if (file === 'model.safetensors' && total) panel.innerHTML = `<p class="note">loading… ${Math.round((100 * loaded) / total)}%</p>`;
          },
        });
        classifiers[name] = clf;
        chip(name, clf);
        clf.addEventListener('fallback', () => chip(name, clf));
      } catch (e) {
        showError(panel, e);
      }
    }),
  );
  let timer;
  $('text').addEventListener('input', () => {
    clearTimeout(timer);
    timer = setTimeout(classifyNow, 150);
  });
  await classifyNow();
  $('classify').dataset.state = Object.keys(classifiers).length ? 'ready' : 'error';
}

// --- steered generation ---------------------------------------------------------------------------

let generator;
const vectors = new Map();
let controller;

async function listVectors() {
  const m = await manifest;
  const names = m ? Object.keys(m.files).filter((f) => /^vectors\/[^/]+\.safetensors$/.test(f)).map((f) => f.slice(8, -12)) : [];
  const select = $('vector');
  const order = (n) => (n === 'positive' ? '' : n);
  for (const name of (names.length ? names : ['positive', 'formal']).sort((a, b) => order(a).localeCompare(order(b)))) select.add(new Option(name, name));
}

async function getVector(rt, name) {
  if (!vectors.has(name)) {
    const p = loadVector(`models/vectors/${name}.safetensors`, { runtime: rt, integrity: (await manifest) ? MANIFEST : undefined });
    vectors.set(name, p);
    p.catch(() => vectors.delete(name));
  }
  return vectors.get(name);
}

async function getGenerator(rt) {
  if (!generator) {
    generator = (async () => {
      const bar = $('gen-progress');
      bar.hidden = false;
      const note = $('gen-note');
      note.textContent = 'loading the generator…';
      const gen = await loadGenerator('models/smollm2-135m-instruct-q4/', {
        runtime: rt,
        integrity: (await manifest) ? MANIFEST : undefined,
        onProgress: ({ file, loaded, total }) => {
          if (file !== 'model.safetensors' || !total) return;
          bar.max = total;
          bar.value = loaded;
        },
      });
      bar.hidden = true;
      note.textContent = `SmolLM2-135M-Instruct on ${gen.device}: ${size(gen.info.bytes)}, loaded in ${ms(gen.info.loadMs)}${gen.info.cached ? ' from the cache' : ''}.`;
      chip('smollm2', gen);
      gen.addEventListener('fallback', () => chip('smollm2', gen));
      return gen;
    })();
    generator.catch(() => (generator = undefined));
  }
  return generator;
}

async function stream(gen, out, prompt, options) {
  out.textContent = '';
  const t0 = performance.now();
  let n = 0;
  for await (const piece of gen.generate(prompt, options)) {
    out.textContent += piece.text;
    n++;
  }
  out.dataset.finish = gen.finish;
  out.title = `${n} tokens in ${ms(performance.now() - t0)}`;
}

/** Chat mode: the conversation so far (OpenAI-style messages), answered with the steering set at each turn. */
let conversation = [];

function chatLine(role, text) {
  const li = document.createElement('li');
  li.className = role;
  li.textContent = text;
  $('chat-log').append(li);
  return li;
}

async function runChatTurn(rt, signal) {
  const section = $('generate');
  section.dataset.state = 'loading';
  const [gen, vector] = await Promise.all([getGenerator(rt), getVector(rt, $('vector').value)]);
  section.dataset.state = 'running';
  const strength = Number($('strength').value);
  const text = $('prompt').value;
  chatLine('user', text);
  const out = chatLine('assistant', '');
  out.dataset.steer = `${$('vector').value} × ${strength.toFixed(2)}`;
  const messages = [...conversation, { role: 'user', content: text }];
  const t0 = performance.now();
  for await (const piece of gen.generate(messages, { maxTokens: Number($('max-tokens').value), temperature: 0, signal, steer: strength ? [{ vector, strength }] : undefined })) {
    out.textContent += piece.text;
  }
  conversation = [...messages, { role: 'assistant', content: out.textContent.trim() }];
  out.dataset.reused = String(gen.reusedTokens);
  $('gen-note').className = 'note';
  $('gen-note').textContent = `turn ${conversation.length / 2 | 0}: ${gen.promptTokens} prompt tokens, ${gen.reusedTokens} from the previous turn's cache; ${ms(performance.now() - t0)}`;
  section.dataset.state = 'done';
}

async function runGeneration(rt) {
  const section = $('generate');
  controller?.abort();
  controller = new AbortController();
  const { signal } = controller;
  $('run').disabled = true;
  $('stop').disabled = false;
  for (const id of ['out-plain', 'out-steered']) {
    $(id).textContent = '';
    delete $(id).dataset.finish;
  }
  try {
    if ($('chat-mode').checked) return await runChatTurn(rt, signal);
    section.dataset.state = 'loading';
    const [gen, vector] = await Promise.all([getGenerator(rt), getVector(rt, $('vector').value)]);
    section.dataset.state = 'running';
    const strength = Number($('strength').value);
    $('steer-label').textContent = `(${$('vector').value} × ${strength.toFixed(2)})`;
    const options = { maxTokens: Number($('max-tokens').value), temperature: 0, chat: true, signal };
    const prompt = $('prompt').value;
    await stream(gen, $('out-plain'), prompt, options);
    await stream(gen, $('out-steered'), prompt, { ...options, steer: [{ vector, strength }] });
    section.dataset.state = 'done';
  } catch (e) {
    if (e.code === 'E_ABORTED') {
      section.dataset.state = 'aborted';
    } else {
      section.dataset.state = 'error';
      $('gen-note').className = 'note error';
      $('gen-note').textContent = `${e.code ?? 'error'}: ${e.message}`;
    }
  } finally {
    $('run').disabled = false;
    $('stop').disabled = true;
  }
}

function setupGeneration(rt) {
  const maxTokens = params.get('maxTokens');
  if (maxTokens) $('max-tokens').value = maxTokens;
  $('strength').addEventListener('input', () => ($('strength-value').textContent = Number($('strength').value).toFixed(2)));
  $('vector').addEventListener('change', async () => {
    try {
      const v = await getVector(rt, $('vector').value);
      $('strength').value = String(v.defaultStrength);
      $('strength-value').textContent = v.defaultStrength.toFixed(2);
    } catch (e) {
      $('gen-note').textContent = `${e.code ?? 'error'}: ${e.message}`;
    }
  });
  $('gen-form').addEventListener('submit', (e) => {
    e.preventDefault();
    runGeneration(rt);
  });
  $('stop').addEventListener('click', () => controller?.abort());
  // Chat mode: one steered conversation instead of the plain/steered pair.
  const newChat = () => {
    conversation = [];
    $('chat-log').replaceChildren();
  };
  $('chat-mode').addEventListener('change', () => {
    const chat = $('chat-mode').checked;
    $('chat-log').hidden = !chat;
    $('new-chat').hidden = !chat;
    document.querySelector('#generate .outputs').hidden = chat;
    newChat();
  });
  $('new-chat').addEventListener('click', newChat);
  listVectors().then(() => $('vector').dispatchEvent(new Event('change')));
}

// --- teach it: a classifier trained in the page from the user's own examples ----------------------

let taught;

/** `label: text` lines → examples (lines without a colon are skipped). */
function parseExamples(text) {
  return text
    .split('\n')
    .map((line) => line.match(/^\s*([^:]+?)\s*:\s*(.+?)\s*$/))
    .filter(Boolean)
    .map(([, label, text]) => ({ label, text }));
}

async function classifyTaught() {
  if (!taught) return;
  const t0 = performance.now();
  const result = await taught.classify($('teach-text').value);
  const bars = $('teach-bars');
  bars.replaceChildren();
  for (const [label, score] of Object.entries(result.scores)) {
    const bar = document.createElement('div');
    bar.className = 'bar';
    bar.dataset.label = label;
    bar.innerHTML = '<span class="name"></span><span class="fill"></span><span class="value"></span>';
    bar.children[0].textContent = label;
    bar.children[1].style.width = `${(score * 100).toFixed(1)}%`;
    bar.children[2].textContent = score.toFixed(3);
    bars.append(bar);
  }
  $('teach').dataset.result = result.label;
  $('teach-note').dataset.latency = String(Math.round(performance.now() - t0));
}

async function teach(rt) {
  const section = $('teach');
  const note = $('teach-note');
  const progress = $('teach-progress');
  const examples = parseExamples($('teach-examples').value);
  section.dataset.state = 'training';
  $('teach-train').disabled = true;
  progress.hidden = false;
  try {
    taught?.dispose();
    taught = undefined;
    const t0 = performance.now();
    taught = await trainClassifier('models/all-minilm-l6-v2/', examples, {
      runtime: rt,
      integrity: (await manifest) ? MANIFEST : undefined,
      seed: 1,
      onProgress: (p) => {
        if (p.phase === 'embed') note.textContent = `embedding ${p.done}/${p.total} examples…`;
        else note.textContent = `epoch ${p.epoch} of at most ${p.epochs}, held-out loss ${p.valLoss.toFixed(3)}`;
        progress.max = p.phase === 'embed' ? p.total : p.epochs;
        progress.value = p.phase === 'embed' ? p.done : p.epoch;
      },
    });
    const t = taught.training;
    note.textContent = `trained on ${t.train} examples (${t.heldOut} held out) in ${ms(performance.now() - t0)}; best epoch ${t.bestEpoch} of ${t.epochs}. Type below.`;
    $('teach-text').disabled = false;
    $('teach-export').disabled = false;
    await classifyTaught();
    section.dataset.state = 'ready';
  } catch (e) {
    section.dataset.state = 'error';
    note.textContent = `${e.code ?? 'error'}: ${e.message}`;
  } finally {
    $('teach-train').disabled = false;
    progress.hidden = true;
  }
}

function setupTeach(rt) {
  $('teach-train').addEventListener('click', () => teach(rt));
  $('teach-text').addEventListener('input', () => classifyTaught().catch((e) => ($('teach-note').textContent = `${e.code ?? 'error'}: ${e.message}`)));
  $('teach-export').addEventListener('click', () => {
    const url = URL.createObjectURL(new Blob([taught.save()], { type: 'application/octet-stream' }));
    const a = Object.assign(document.createElement('a'), { href: url, download: 'head.safetensors' });
    a.click();
    setTimeout(() => URL.revokeObjectURL(url), 1000);
  });
}

// --- start ----------------------------------------------------------------------------------------

listModels();
startRuntime()
  .then(async (rt) => {
    window.veerDemo = { rt, classifiers, taught: () => taught, getGenerator: () => getGenerator(rt), getVector: (n) => getVector(rt, n) };
    setupGeneration(rt);
    setupTeach(rt);
    await startClassifiers(rt);
  })
  .catch((err) => {
    badge.textContent = `error: ${err.message ?? err}`;
    badge.dataset.state = 'error';
    console.error(err);
  });
