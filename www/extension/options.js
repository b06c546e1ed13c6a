const fields = ['modelUrl', 'device'];
const stored = await chrome.storage.local.get(fields);
for (const f of fields) if (stored[f]) document.getElementById(f).value = stored[f];
document.getElementById('form').addEventListener('submit', async (e) => {
  e.preventDefault();
  await chrome.storage.local.set(Object.fromEntries(fields.map((f) => [f, document.getElementById(f).value])));
  document.getElementById('saved').textContent = 'saved';
});
