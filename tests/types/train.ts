// trainClassifier with its progress, and the head it saves.
import { trainClassifier, loadClassifier, type TrainOptions, type TrainProgress } from '../../www/lib/veer.js';
import type { Equal, Expect } from './_base.js';

export async function train(examples: { text: string; label: string }[]): Promise<Uint8Array> {
  const progress: TrainProgress[] = [];
  const options: TrainOptions = {
    labels: ['business', 'sport'],
    epochs: 100,
    seed: 3,
    hidden: 0,
    learningRate: 1e-3,
    batchSize: 32, // the training's batch
    holdout: 0.2,
    classWeights: true,
    maxLength: 256, // the encoder's options apply as for loadClassifier
    onProgress: (p) => {
      type _p = Expect<Equal<typeof p, TrainProgress>>;
      progress.push(p);
      if (p.phase === 'embed') console.log(p.done, p.total);
      else console.log(p.epoch, p.epochs, p.bestEpoch, p.valLoss, p.done);
    },
  };
  const clf = await trainClassifier('models/all-minilm-l6-v2/', examples, options);
  const training = clf.training;
  if (training) console.log(training.examples, training.heldOut, training.bestEpoch, training.ms);
  const head: Uint8Array = clf.save();
  const again = await loadClassifier('models/all-minilm-l6-v2/', { head });
  again.dispose();
  clf.dispose();
  // @ts-expect-error: the progress of a training, not of downloads
  await trainClassifier('models/all-minilm-l6-v2/', examples, { onProgress: (p: { file: string }) => p.file });
  return head;
}
