// Demo page: start the wasm module, pick a device, show what this browser gives veer.
import init, { Runtime, version } from './pkg/veer.js';

const badge = document.getElementById('badge');
const runtimeList = document.getElementById('runtime');

function row(name, value) {
  const dt = document.createElement('dt');
  dt.textContent = name;
  const dd = document.createElement('dd');
  dd.textContent = value;
  runtimeList.append(dt, dd);
}

function size(bytes) {
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(1)} KiB`;
  return `${(bytes / 1048576).toFixed(1)} MiB`;
}

async function start() {
  const t0 = performance.now();
  await init();
  row('veer', version());
  row('wasm start', `${(performance.now() - t0).toFixed(0)} ms`);
  const t1 = performance.now();
  const rt = await Runtime.create('auto');
  row('device', rt.device);
  row('device start', `${(performance.now() - t1).toFixed(0)} ms`);
  if (rt.fallbackReason) row('why not WebGPU', rt.fallbackReason);
  row('self-check max |Δ| vs CPU', (await rt.selfCheck()).toExponential(2));
  badge.textContent = rt.device === 'webgpu' ? 'WebGPU' : 'CPU';
  badge.dataset.state = rt.device;
}

async function listModels() {
  const tbody = document.querySelector('#models tbody');
  const res = await fetch('models/manifest.json');
  if (!res.ok) {
    tbody.innerHTML = '<tr><td colspan="3">no models/manifest.json: run <code>make assets</code></td></tr>';
    return;
  }
  const { files } = await res.json();
  for (const [name, { size: bytes, sha256 }] of Object.entries(files)) {
    const tr = document.createElement('tr');
    tr.innerHTML = '<td></td><td></td><td class="hash"></td>';
    tr.children[0].textContent = name;
    tr.children[1].textContent = size(bytes);
    tr.children[2].textContent = sha256.slice(0, 16) + '…';
    tbody.append(tr);
  }
}

start().catch((err) => {
  badge.textContent = `error: ${err.message ?? err}`;
  badge.dataset.state = 'error';
  console.error(err);
});
listModels();
