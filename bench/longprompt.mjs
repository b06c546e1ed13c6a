// The longest prompt SmolLM2 accepts, on the browser CPU (headless Chromium, one worker): prompts of
// --lengths tokens (the last at the model's 8192-token context) are prefilled — 512 tokens per forward
// (`PREFILL_CHUNK`), so attention memory stays bounded — and 4 tokens generated; one token past the
// context must be an E_INVALID error, after which the generator still works. Prints a table, writes
// bench/results/longprompt.json. Minutes per long prompt on 2 cores: a measurement, not a test.
//
//   node bench/longprompt.mjs [--lengths 1024,4096,8188]
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, basename } from 'node:path';
import { serve, launchPersistent, blankPage, root, www } from '../tests/page/helpers.mjs';

const args = process.argv.slice(2);
const i = args.indexOf('--lengths');
const lengths = (i >= 0 ? args[i + 1] : '1024,4096,8188').split(',').map(Number);

const server = await serve(dirname(www), Number(process.env.VEER_BENCH_PORT ?? 8791));
const context = await launchPersistent();
try {
  const page = await blankPage(context, `${server.base}${basename(www)}/`);
  page.setDefaultTimeout(0);
  const results = await page.evaluate(
    async ([lib, lengths]) => {
      const veer = await import(lib);
      await veer.init({ device: 'cpu', cache: false });
      const gen = await veer.loadGenerator('models/smollm2-135m-instruct/');
      // A long text of at least `n` tokens: one paragraph repeated, then word by word.
      const paragraph = 'The harbour town woke slowly: fishermen mended nets, a baker opened early, and children ran along the sea wall while gulls argued over scraps. ';
      const perParagraph = (await gen.encode(paragraph)).length;
      const words = paragraph.split(' ');
      const prompt = async (n) => {
        let text = paragraph.repeat(Math.floor(n / perParagraph) - 1);
        for (let w = 0; (await gen.encode(text)).length < n; w++) text += `${words[w % words.length]} `;
        return { text, tokens: (await gen.encode(text)).length };
      };
      const out = [];
      for (const n of lengths) {
        const p = await prompt(n);
        const t0 = performance.now();
        let first;
        let k = 0;
        let error;
        try {
          for await (const _ of gen.generate(p.text, { maxTokens: 4, temperature: 0 })) if (k++ === 0) first = performance.now();
        } catch (e) {
          error = `${e.code}: ${e.message}`;
        }
        out.push({ tokens: gen.promptTokens ?? p.tokens, prefillMs: first ? first - t0 : null, tokensPerS: first ? ((gen.promptTokens ?? p.tokens) * 1000) / (first - t0) : null, generated: k, finish: gen.finish, error });
      }
      // One past the context: a clean error, and the generator keeps working.
      const over = await prompt(8193);
      let overError;
      try {
        for await (const _ of gen.generate(over.text, { maxTokens: 1 }));
      } catch (e) {
        overError = `${e.code}: ${e.message}`;
      }
      let after = 0;
      for await (const _ of gen.generate('Hello', { maxTokens: 2, temperature: 0 })) after++;
      return { out, over: { tokens: over.tokens, error: overError }, after };
    },
    [`${server.base}${basename(www)}/lib/veer.js`, lengths],
  );
  let table = '| prompt tokens | prefill (s) | tokens/s | generated | error |\n|---|---|---|---|---|\n';
  for (const r of results.out) table += `| ${r.tokens} | ${r.prefillMs === null ? '—' : (r.prefillMs / 1000).toFixed(1)} | ${r.tokensPerS?.toFixed(1) ?? '—'} | ${r.generated} | ${r.error ?? ''} |\n`;
  table += `| ${results.over.tokens} | — | — | — | ${results.over.error ?? 'none (expected an error)'} |\n`;
  console.log(table);
  console.log(`generator after the error: ${results.after} tokens`);
  mkdirSync(`${root}bench/results`, { recursive: true });
  writeFileSync(`${root}bench/results/longprompt.json`, JSON.stringify({ date: new Date().toISOString(), chromium: context.browser()?.version(), ...results }, null, 1));
} finally {
  await context.close();
  server.stop();
}
