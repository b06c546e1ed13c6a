// veer-worker.js: module worker hosting one veer model (or the runtime's probe). Started by
// veer-channel.js as `new Worker(new URL('./veer-worker.js', import.meta.url), { type: 'module' })`.
// Requests: {id, op, args}; replies: {id, ok: true, value} or {id, ok: false, error: {code, message}}.

import { Host } from './veer-host.js';
import { errorToData } from './veer-error.js';

const host = new Host();

self.onmessage = async ({ data: { id, op, args } }) => {
  try {
    let result = await host.handle(op, args);
    let transfer = [];
    if (result && typeof result === 'object' && 'transfer' in result && 'value' in result) ({ value: result, transfer } = result);
    self.postMessage({ id, ok: true, value: result }, transfer);
  } catch (e) {
    self.postMessage({ id, ok: false, error: errorToData(e) });
  }
};

self.postMessage({ ready: true });
