// Offscreen document: holds the veer runtime and the classifier (in its Web Worker) for the extension.
import { init, loadClassifier } from './veer/veer.js';

let loaded; // {key, promise of Classifier}

async function classifier({ modelUrl, device }) {
  const url = modelUrl || chrome.runtime.getURL('models/sentiment/');
  const key = `${url} ${device}`;
  if (loaded?.key !== key) {
    loaded?.promise.then((c) => c.dispose(), () => {});
    const packaged = url.startsWith(chrome.runtime.getURL(''));
    loaded = {
      key,
      promise: init({ device, cache: packaged ? false : undefined }).then((runtime) => loadClassifier(url, { runtime })),
    };
    loaded.promise.catch(() => (loaded = undefined));
  }
  return loaded.promise;
}

chrome.runtime.onMessage.addListener((msg, _sender, reply) => {
  if (msg?.target !== 'offscreen' || msg.type !== 'classify') return false;
  (async () => {
    const t0 = performance.now();
    const clf = await classifier(msg.settings);
    const r = await clf.classify(msg.text);
    return { ...r, device: clf.device, ms: Math.round(performance.now() - t0) };
  })().then(reply, (e) => reply({ error: { code: e.code ?? 'E_EXTENSION', message: e.message } }));
  return true;
});
