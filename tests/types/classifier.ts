// loadClassifier, classify, embed, tokenize as an app calls them, under `tsc --strict`.
import { init, loadClassifier, VeerError, type Classification, type ClassifierOptions, type Progress, type WasmModule } from '../../www/lib/veer.js';
import type { Equal, Expect } from './_base.js';

export async function classifier(): Promise<void> {
  const rt = await init({ device: 'auto', worker: true, cache: 'my-models' });
  const device: 'webgpu' | 'cpu' = rt.device;
  const module: WasmModule = rt.info.module;
  const why: string = rt.info.moduleReason;
  await init({ wasmUrl: '/static/veer_bg.wasm', cpuWasmUrl: '/static/veer_cpu_bg.wasm' });
  rt.addEventListener('fallback', () => console.log(rt.fallbackReason));

  const controller = new AbortController();
  const options: ClassifierOptions = {
    integrity: 'manifest',
    onProgress: (p: Progress) => console.log(p.file, p.loaded, p.total ?? '?', p.cached),
    onFallback: (e) => console.log(e.reason, e.to),
    onRestart: (e) => console.log(e.reason),
    signal: controller.signal,
    workers: 'auto',
    maxLength: 128,
    pooling: 'mean',
    normalize: true,
    batchSize: 8,
  };
  const clf = await loadClassifier('models/sentiment/', options);
  const one = await clf.classify('great stuff');
  const many = await clf.classify(['great stuff', 'awful'], { signal: controller.signal });
  type _one = Expect<Equal<typeof one, Classification>>;
  type _many = Expect<Equal<typeof many, Classification[]>>;
  const best: string = one.label;
  const score: number | undefined = one.scores[best];

  const vector = await clf.embed('a cat sits on the mat');
  const vectors = await clf.embed(['a', 'b']);
  type _embed = Expect<Equal<typeof vector, Float32Array>>;
  type _embeds = Expect<Equal<typeof vectors, Float32Array[]>>;
  const ids: Uint32Array = await clf.tokenize('hello');
  const labels: string[] = clf.labels;
  const total: number = clf.info.bytes + clf.workers + clf.maxLength;
  type _module = Expect<Equal<typeof clf.module, 'cpu' | 'full'>>;
  const same: boolean = clf.info.module === clf.module;

  // The same on a given runtime, from files passed as bytes and objects.
  const inline = await rt.loadClassifier(
    { config: { id2label: { 0: 'neg', 1: 'pos' } }, weights: new Uint8Array(8), tokenizer: '/tok.json' },
    { worker: false, head: new ArrayBuffer(8) },
  );
  inline.dispose();

  try {
    await clf.classify(['x']);
  } catch (e) {
    if (e instanceof VeerError && e.code === 'E_ABORTED') console.log(e.name, e.file, e.fatal);
  }
  // @ts-expect-error: not an option
  await loadClassifier('models/sentiment/', { maxLenght: 128 });
  // @ts-expect-error: a pooling veer does not have
  await loadClassifier('models/sentiment/', { pooling: 'max' });
  // @ts-expect-error: callbacks are functions
  await loadClassifier('models/sentiment/', { onProgress: 'x' });
  clf.dispose();
  rt.dispose();
  console.log(device, score, ids, labels, total);
}
