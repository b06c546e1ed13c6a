// Popup: the last context-menu result, and a box to classify any text.
const box = document.getElementById('result');

function show(r) {
  box.innerHTML = '';
  if (!r) return;
  if (r.text) {
    const q = document.createElement('p');
    q.className = 'quote';
    q.textContent = `“${r.text.length > 120 ? `${r.text.slice(0, 120)}…` : r.text}”`;
    box.append(q);
  }
  if (r.error) {
    const p = document.createElement('p');
    p.className = 'error';
    p.textContent = `${r.error.code}: ${r.error.message}`;
    box.append(p);
    return;
  }
  const label = document.createElement('div');
  label.className = 'label';
  label.id = 'label';
  label.textContent = r.label;
  label.dataset.score = String(r.score);
  box.append(label);
  for (const [name, score] of Object.entries(r.scores).sort((a, b) => b[1] - a[1])) {
    const row = document.createElement('div');
    row.className = 'bar';
    row.dataset.label = name;
    row.dataset.score = String(score);
    row.innerHTML = '<span></span><span class="track"><span class="fill"></span></span><span></span>';
    row.children[0].textContent = name;
    row.querySelector('.fill').style.width = `${(100 * score).toFixed(1)}%`;
    row.children[2].textContent = score.toFixed(3);
    box.append(row);
  }
  const note = document.createElement('p');
  note.className = 'note';
  note.textContent = `${r.device}, ${r.ms} ms`;
  box.append(note);
}

chrome.storage.session.get('last').then(({ last }) => last && show(last));

document.getElementById('form').addEventListener('submit', async (e) => {
  e.preventDefault();
  const text = document.getElementById('text').value;
  box.innerHTML = '<p class="note">classifying…</p>';
  show({ text, ...(await chrome.runtime.sendMessage({ target: 'background', type: 'classify', text })) });
  document.body.dataset.done = 'true';
});
