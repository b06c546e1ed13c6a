// loadGenerator, streamed generation with steering and chat messages, vector arithmetic.
import { init, loadGenerator, loadVector, VeerError, type ChatMessage, type FinishReason, type GenerateCallOptions, type Piece, type Vector } from '../../www/lib/veer.js';
import type { Equal, Expect } from './_base.js';

export async function generator(): Promise<void> {
  const rt = await init({ device: 'cpu' });
  const gen = await loadGenerator('models/smollm2-135m-instruct/', { runtime: rt, weights: 'int8', integrity: 'manifest' });
  const positive = await loadVector('models/vectors/positive.safetensors', { integrity: 'manifest' });
  const formal = await rt.loadVector(new Uint8Array(16), { integrity: { sha256: '0'.repeat(64) } });

  // Vector arithmetic happens in the runtime's worker: each step resolves to a new Vector.
  const mixed: Vector = await (await positive.add(formal)).sub(await formal.scale(0.5));
  const unit = await mixed.normalize();
  const layers: number = unit.numLayers * unit.hidden;
  const file: Uint8Array = unit.toBytes();

  const controller = new AbortController();
  const options: GenerateCallOptions = {
    maxTokens: 32,
    temperature: 0.7,
    topP: 0.95,
    seed: 1,
    stop: ['\n\n'],
    steer: [{ vector: unit, strength: unit.defaultStrength }, { vector: positive }],
    layers: [4, 20],
    signal: controller.signal,
  };
  let text = '';
  try {
    for await (const piece of gen.generate('Describe the weather today.', options)) {
      type _piece = Expect<Equal<typeof piece, Piece>>;
      text += piece.text;
      if (piece.id === 0) controller.abort();
    }
  } catch (e) {
    // A lost GPU ends the generation; the generator then runs on the CPU.
    if (!(e instanceof VeerError && (e.code === 'E_ABORTED' || e.fellBack === true))) throw e;
  }
  const finish: FinishReason | undefined = gen.finish;
  if (finish === 'max_tokens' || finish === 'abort') console.log(text, gen.promptTokens, gen.reusedTokens);

  // A conversation: the chat template renders messages; the next turn continues the KV cache.
  const chat: ChatMessage[] = [{ role: 'system', content: 'Be brief.' }, { role: 'user', content: 'Hello?' }];
  const prompt: string = await gen.applyChatTemplate(chat);
  const tokens: Uint32Array = await gen.encode(prompt);
  const it = gen.generate(chat, { maxTokens: 8 });
  const first = await it.next();
  if (!first.done) console.log(first.value.text);
  await it.return();

  const computed = await gen.computeVector([{ from: 'cold', to: 'warm' }], { method: 'mean' });
  // @ts-expect-error: a finish reason veer never sets
  if (gen.finish === 'timeout') console.log('never');
  // @ts-expect-error: steer terms hold Vectors, not names
  gen.generate('x', { steer: [{ vector: 'positive' }] });
  // @ts-expect-error: weights are f32 or int8
  await loadGenerator('models/smollm2-135m-instruct/', { weights: 'int4' });
  gen.dispose();
  console.log(layers, file, tokens, computed.method, gen.weights);
}
