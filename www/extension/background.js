// Service worker: the "Classify with veer" context menu. The model itself runs in an offscreen document
// (service workers cannot start the module Worker veer uses), which keeps it loaded between clicks.

const MENU = 'veer-classify';
const DEFAULTS = { modelUrl: '', device: 'auto' }; // modelUrl '' = the model packaged in models/sentiment/

chrome.runtime.onInstalled.addListener(() => {
  chrome.contextMenus.create({ id: MENU, title: 'Classify with veer', contexts: ['selection'] });
});

chrome.contextMenus.onClicked.addListener((info) => {
  if (info.menuItemId === MENU && info.selectionText) classifySelection(info.selectionText);
});

let creating;
async function ensureOffscreen() {
  const url = chrome.runtime.getURL('offscreen.html');
  const existing = await chrome.runtime.getContexts({ contextTypes: ['OFFSCREEN_DOCUMENT'], documentUrls: [url] });
  if (existing.length) return;
  creating ??= chrome.offscreen
    .createDocument({ url: 'offscreen.html', reasons: ['WORKERS'], justification: 'runs the veer classifier (WebAssembly) in a Web Worker' })
    .finally(() => (creating = undefined));
  await creating;
}

/** Classify `text` in the offscreen document; resolves to {label, score, scores, device, ms} or {error}. */
async function classify(text) {
  await ensureOffscreen();
  const settings = { ...DEFAULTS, ...(await chrome.storage.local.get(Object.keys(DEFAULTS))) };
  return chrome.runtime.sendMessage({ target: 'offscreen', type: 'classify', text, settings });
}

/** What the context menu does: classify, then show the label on the toolbar button and in the popup. */
async function classifySelection(text) {
  const result = await classify(text).catch((e) => ({ error: { code: 'E_EXTENSION', message: e.message } }));
  const last = { text, ...result, at: Date.now() };
  await chrome.storage.session.set({ last });
  if (result.error) {
    await chrome.action.setBadgeText({ text: '!' });
    await chrome.action.setTitle({ title: `veer: ${result.error.code}: ${result.error.message}` });
  } else {
    await chrome.action.setBadgeText({ text: result.label.slice(0, 4) });
    await chrome.action.setTitle({ title: `veer: ${result.label} (${result.score.toFixed(2)}) — “${text.slice(0, 60)}”` });
  }
  chrome.action.openPopup?.().catch(() => {}); // shows the result where the browser allows it
  return last;
}

chrome.runtime.onMessage.addListener((msg, _sender, reply) => {
  if (msg?.target !== 'background') return false;
  if (msg.type === 'classify') classify(msg.text).then(reply, (e) => reply({ error: { code: 'E_EXTENSION', message: e.message } }));
  return true;
});

// For tests and the devtools console.
self.veer = { classify, classifySelection };
