//! One trainer for every head: mini-batches, early stopping on a held-out split (best epoch kept), and
//! `HeadTraining`, the one path of the browser's `trainClassifier` and `veer train`.

use burn::tensor::activation::softmax;
use burn::tensor::Device;
// StdRng (ChaCha12) rather than SmallRng: SmallRng is a different generator on 32-bit targets, and the
// browser (wasm32) must train the same head as the CLI for the same seed.
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use serde::Serialize;

use crate::base::backend::read_f32;
use crate::base::math::{argmax, one_hot};
use crate::base::limits::{MAX_EXAMPLES, MAX_LABELS};
use crate::base::options::{HeadOptions, PooledHead, TrainOptions};
use crate::base::error::{Error, Result};
use crate::io::safetensors::OutDtype;
use crate::tasks::heads::host::{HostAdam, HostHead, HostLayer};
use crate::tasks::heads::tensor::{Head, rows};

/// Features [n, dim] row-major with soft targets [n][classes].
pub struct Split<'a> {
    pub x: &'a [f32],
    pub y: &'a [Vec<f32>],
}

impl Split<'_> {
    pub fn len(&self) -> usize {
        self.y.len()
    }
    pub fn is_empty(&self) -> bool {
        self.y.is_empty()
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct FitStats {
    pub epochs: usize,
    pub best_epoch: usize,
    pub val_loss: f32,
}

/// A head and its optimiser state.
pub struct Trainer {
    /// The head as tensors (prediction, export, fine-tuning): the best head once a fit has ended
    /// (uploaded then, not after every epoch).
    pub head: Head,
    host: HostHead,
    opts: TrainOptions,
    device: Device,
    dim: usize,
    classes: usize,
    rng: StdRng,
}

/// One `fit` in progress: what `Trainer::epoch` advances (the browser runs a few epochs per call, so
/// that a page can report progress and abort between them).
pub struct Fit {
    adam: HostAdam,
    best: (f32, usize, HostHead),
    order: Vec<usize>,
    epoch: usize,
    /// Per class (targets' argmax): the example weight; all 1 without class weighting.
    class_weight: Vec<f32>,
    /// The latest epoch's held-out loss.
    last: f32,
}

impl Fit {
    pub fn epoch(&self) -> usize {
        self.epoch
    }
    pub fn best_val_loss(&self) -> f32 {
        self.best.0
    }
    pub fn last_val_loss(&self) -> f32 {
        self.last
    }
}

impl Trainer {
    pub fn new(dim: usize, classes: usize, opts: TrainOptions, device: &Device) -> Self {
        let device = device.clone();
        // Initialised from our own seeded generator: burn's random tensors are not reproducible
        // across runs on every backend.
        let mut rng = StdRng::seed_from_u64(opts.seed);
        let mut init = |inp: usize, out: usize| {
            let bound = 1.0 / (inp as f32).sqrt();
            HostLayer { w: (0..inp * out).map(|_| rng.random_range(-bound..bound)).collect(), b: vec![0.0; out], inp, out }
        };
        let mut layers = Vec::new();
        if opts.hidden > 0 {
            layers.push(init(dim, opts.hidden));
        }
        let width = if opts.hidden > 0 { opts.hidden } else { dim };
        layers.push(init(width, classes));
        let host = HostHead { layers, activation: opts.activation };
        Trainer { head: host.to_head(&device), host, opts, device, dim, classes, rng }
    }

    pub fn classes(&self) -> usize {
        self.classes
    }

    /// Probabilities [n][classes] for features [n, dim].
    pub async fn predict(&self, x: &[f32]) -> Result<Vec<Vec<f32>>> {
        let n = x.len() / self.dim;
        let mut out = Vec::with_capacity(n);
        for start in (0..n).step_by(1024) {
            let idx: Vec<usize> = (start..(start + 1024).min(n)).collect();
            let p = softmax(self.head.forward(rows(x, self.dim, &idx, &self.device)), 1);
            out.extend(read_f32(p).await?.chunks_exact(self.classes).map(<[f32]>::to_vec));
        }
        Ok(out)
    }

    /// Row weights for the targets `y` of rows `idx`.
    fn weights(fit: &Fit, y: &[Vec<f32>], idx: &[usize]) -> Vec<f32> {
        idx.iter().map(|&i| fit.class_weight.get(argmax(&y[i])).copied().unwrap_or(1.0)).collect()
    }

    fn val_loss(&self, head: &HostHead, fit: &Fit, val: &Split) -> f32 {
        let idx: Vec<usize> = (0..val.len()).collect();
        let (logits, _) = head.forward(val.x, val.len());
        head.loss(&logits, &val.y.iter().collect::<Vec<_>>(), &Self::weights(fit, val.y, &idx)).0
    }

    /// Start training on `train` (rows `idx`) with early stopping on `val`; `epoch` advances it.
    pub async fn start(&mut self, train: &Split<'_>, idx: &[usize], val: &Split<'_>) -> Result<Fit> {
        if idx.is_empty() || val.is_empty() {
            return Err(Error::Invalid(format!("training needs examples to train on and to hold out ({} and {})", idx.len(), val.len())));
        }
        let mut class_weight = vec![1.0f32; self.classes];
        if self.opts.class_weights {
            let mut counts = vec![0usize; self.classes];
            idx.iter().for_each(|&i| counts[argmax(&train.y[i]).min(self.classes - 1)] += 1);
            for (w, &c) in class_weight.iter_mut().zip(&counts) {
                *w = if c == 0 { 0.0 } else { idx.len() as f32 / (self.classes * c) as f32 };
            }
        }
        let zeros = || self.host.layers.iter().flat_map(|l| [vec![0.0f32; l.w.len()], vec![0.0f32; l.b.len()]]).collect::<Vec<_>>();
        let adam = HostAdam { m: zeros(), v: zeros(), step: 0 };
        let mut fit = Fit { adam, best: (f32::INFINITY, 0, self.host.clone()), order: idx.to_vec(), epoch: 0, class_weight, last: f32::INFINITY };
        fit.best.0 = self.val_loss(&self.host, &fit, val);
        Ok(fit)
    }

    /// One epoch over the training rows; `false` once the fit is over (epochs used up, or `patience`
    /// epochs without a better held-out loss), with the best head in place.
    pub async fn epoch(&mut self, fit: &mut Fit, train: &Split<'_>, val: &Split<'_>) -> Result<bool> {
        if fit.epoch >= self.opts.epochs || fit.epoch - fit.best.1 >= self.opts.patience {
            self.host = fit.best.2.clone();
            self.head = self.host.to_head(&self.device);
            return Ok(false);
        }
        fit.epoch += 1;
        let mut order = std::mem::take(&mut fit.order);
        order.shuffle(&mut self.rng);
        for batch in order.chunks(self.opts.batch.max(1)) {
            let x: Vec<f32> = batch.iter().flat_map(|&i| train.x[i * self.dim..(i + 1) * self.dim].iter().copied()).collect();
            let y: Vec<&Vec<f32>> = batch.iter().map(|&i| &train.y[i]).collect();
            let grads = self.host.gradients(&x, &y, &Self::weights(fit, train.y, batch));
            let mut params: Vec<&mut Vec<f32>> = self.host.layers.iter_mut().flat_map(|l| [&mut l.w, &mut l.b]).collect();
            // Decoupled weight decay on weights (even indices), not biases.
            let decay = self.opts.weight_decay as f32;
            fit.adam.step(&mut params, &grads, self.opts.lr as f32, |k| if k % 2 == 0 { decay } else { 0.0 });
        }
        fit.order = order;
        let vl = self.val_loss(&self.host, fit, val);
        fit.last = vl;
        if !vl.is_finite() {
            return Err(Error::Invalid(format!("training diverged: held-out loss {vl} at epoch {} (lower the learning rate)", fit.epoch)));
        }
        if vl < fit.best.0 - 1e-5 {
            fit.best = (vl, fit.epoch, self.host.clone());
        }
        Ok(true)
    }

    pub fn stats(fit: &Fit) -> FitStats {
        FitStats { epochs: fit.epoch, best_epoch: fit.best.1, val_loss: fit.best.0 }
    }

    /// Train on `train` (rows `idx`), early-stopping on `val`; leaves the best head in place.
    pub async fn fit(&mut self, train: &Split<'_>, idx: &[usize], val: &Split<'_>) -> Result<FitStats> {
        let mut fit = self.start(train, idx, val).await?;
        while self.epoch(&mut fit, train, val).await? {}
        Ok(Self::stats(&fit))
    }
}

// --- a head from labelled examples (the browser's `trainClassifier`, `veer train`) -----------------------

/// Held-out rows per label: `fraction` of each label's rows (at least one where a label has two or
/// more), the rest to train on; shuffled with `seed`. Stratified, so that a handful of examples per
/// label still leaves every label on both sides.
pub fn holdout(label_ids: &[usize], classes: usize, fraction: f64, seed: u64) -> (Vec<usize>, Vec<usize>) {
    let mut rng = StdRng::seed_from_u64(seed ^ 0x5eed_0f_ba1d);
    let (mut train, mut val) = (Vec::new(), Vec::new());
    for c in 0..classes {
        let mut rows: Vec<usize> = (0..label_ids.len()).filter(|&i| label_ids[i] == c).collect();
        rows.shuffle(&mut rng);
        let k = if rows.len() >= 2 { ((rows.len() as f64 * fraction).round() as usize).clamp(1, rows.len() - 1) } else { 0 };
        val.extend_from_slice(&rows[..k]);
        train.extend_from_slice(&rows[k..]);
    }
    (train, val)
}

/// Progress of a `HeadTraining`, after each call to `epochs`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Progress {
    pub epoch: usize,
    pub epochs: usize,
    pub best_epoch: usize,
    pub val_loss: f32,
    /// The latest epoch's held-out loss (`val_loss` is the best one's).
    pub last_loss: f32,
    pub done: bool,
}

/// A head trained from labelled examples' features: the one code path of the browser's
/// `trainClassifier` and the CLI's `veer train` (so that both give the same head for the same data
/// and seed). Run `epochs` until `done`, then `head_file`.
pub struct HeadTraining {
    trainer: Trainer,
    fit: Option<Fit>,
    x: Vec<f32>,
    y: Vec<Vec<f32>>,
    train_idx: Vec<usize>,
    val_x: Vec<f32>,
    val_y: Vec<Vec<f32>>,
    labels: Vec<String>,
    spec: PooledHead,
    epochs: usize,
    stats: Option<FitStats>,
    last: f32,
}

impl HeadTraining {
    /// `features[i]` (all one width) of an example labelled `label_ids[i]` (an index into `labels`).
    pub async fn new(features: Vec<Vec<f32>>, label_ids: &[usize], labels: Vec<String>, spec: PooledHead, options: &HeadOptions, device: &Device) -> Result<Self> {
        let opts = options.check()?;
        let classes = labels.len();
        if classes < 2 || classes > MAX_LABELS {
            return Err(Error::Invalid(format!("{classes} labels: a classifier needs 2..={}", MAX_LABELS)));
        }
        if features.len() != label_ids.len() || features.len() > MAX_EXAMPLES {
            return Err(Error::Invalid(format!("{} examples with {} labels: expected one label per example, at most {MAX_EXAMPLES}", features.len(), label_ids.len())));
        }
        if let Some(&bad) = label_ids.iter().find(|&&l| l >= classes) {
            return Err(Error::Invalid(format!("label index {bad}: there are {classes} labels")));
        }
        let dim = features.first().map_or(0, Vec::len);
        if dim == 0 || features.iter().any(|f| f.len() != dim || f.iter().any(|v| !v.is_finite())) {
            return Err(Error::Invalid("example features differ in width or are not finite".into()));
        }
        let mut counts = vec![0usize; classes];
        label_ids.iter().for_each(|&l| counts[l] += 1);
        if let Some(c) = counts.iter().position(|&n| n < 2) {
            return Err(Error::Invalid(format!("label `{}` has {} example(s): every label needs at least 2 (one to train on, one held out)", labels[c], counts[c])));
        }
        let (train_idx, val_idx) = holdout(label_ids, classes, options.holdout, options.seed);
        let hot = |i: usize| one_hot(label_ids[i], classes);
        let y: Vec<Vec<f32>> = (0..features.len()).map(hot).collect();
        let val_x: Vec<f32> = val_idx.iter().flat_map(|&i| features[i].iter().copied()).collect();
        let val_y: Vec<Vec<f32>> = val_idx.iter().map(|&i| hot(i)).collect();
        let x: Vec<f32> = features.into_iter().flatten().collect();
        let epochs = opts.epochs;
        let mut trainer = Trainer::new(dim, classes, opts, device);
        let fit = trainer.start(&Split { x: &x, y: &y }, &train_idx, &Split { x: &val_x, y: &val_y }).await?;
        Ok(HeadTraining { trainer, fit: Some(fit), x, y, train_idx, val_x, val_y, labels, spec, epochs, stats: None, last: f32::INFINITY })
    }

    /// Rows trained on and held out.
    pub fn sizes(&self) -> (usize, usize) {
        (self.train_idx.len(), self.val_y.len())
    }

    /// Up to `n` more epochs.
    pub async fn epochs(&mut self, n: usize) -> Result<Progress> {
        if let Some(fit) = self.fit.as_mut() {
            let (train, val) = (Split { x: &self.x, y: &self.y }, Split { x: &self.val_x, y: &self.val_y });
            for _ in 0..n {
                let more = self.trainer.epoch(fit, &train, &val).await?;
                self.last = fit.last_val_loss();
                if !more {
                    self.stats = Some(Trainer::stats(fit));
                    self.fit = None;
                    break;
                }
            }
        }
        Ok(match (&self.fit, &self.stats) {
            (Some(f), _) => Progress { epoch: f.epoch(), epochs: self.epochs, best_epoch: f.best.1, val_loss: f.best_val_loss(), last_loss: f.last_val_loss(), done: false },
            (None, Some(s)) => Progress { epoch: s.epochs, epochs: self.epochs, best_epoch: s.best_epoch, val_loss: s.val_loss, last_loss: self.last, done: true },
            (None, None) => Progress { epoch: 0, epochs: self.epochs, best_epoch: 0, val_loss: f32::INFINITY, last_loss: f32::INFINITY, done: true },
        })
    }

    /// The trained head as a `head.safetensors` (call after `epochs` reports `done`; before, the head
    /// of the latest epoch). `encoder`: what the file records as its encoder.
    pub async fn head_file(&self, encoder: &str) -> Result<Vec<u8>> {
        // The host head: the tensor one is uploaded when the fit ends.
        crate::tasks::heads::file::head_safetensors(&self.trainer.host.to_head(&self.trainer.device), &[], OutDtype::F32, &self.spec, &self.labels, encoder).await
    }
}

#[cfg(all(test, feature = "cli"))]
mod tests {
    use super::*;
    use crate::base::backend::block_on;
    use crate::base::options::Activation;
    use crate::tasks::heads::tensor::targets;
    use burn::tensor::activation::log_softmax;
    use burn::tensor::{Tensor, TensorData};

    /// `loss` with a weight per row (weights [n, 1]), Σ w_i ce_i / Σ w_i, in tensors: what autodiff
    /// differentiates for the check below.
    fn weighted_loss(logits: Tensor<2>, targets: Tensor<2>, weights: Tensor<2>) -> Tensor<1> {
        let total = weights.clone().sum();
        ((targets * log_softmax(logits, 1)).sum_dim(1) * weights).sum().neg().reshape([1]) / total
    }

    /// The host backward pass against burn's autodiff (the native build has it) on the same head as
    /// tensors, for every head shape and activation, with uneven row weights and soft targets.
    #[test]
    fn hand_written_gradients_match_autodiff() {
        let device = crate::base::backend::cpu().device;
        let (n, dim, classes) = (7, 5, 3);
        let mut rng = StdRng::seed_from_u64(9);
        let mut values = |len: usize| (0..len).map(|_| rng.random_range(-1.0f32..1.0)).collect::<Vec<f32>>();
        let x = values(n * dim);
        let y: Vec<Vec<f32>> = (0..n).map(|i| (0..classes).map(|c| if c == i % classes { 0.8 } else { 0.1 }).collect()).collect();
        let w: Vec<f32> = (0..n).map(|i| 0.5 + i as f32 * 0.3).collect();
        for (hidden, activation) in [(0, Activation::Relu), (4, Activation::Relu), (4, Activation::Tanh), (4, Activation::Gelu)] {
            let mut host = Trainer::new(dim, classes, TrainOptions { hidden, activation, seed: 3, ..Default::default() }, &device).host;
            // Biases start at zero: give them values so that their gradients are exercised too.
            for l in &mut host.layers {
                l.b = values(l.out);
            }
            let ours = host.gradients(&x, &y.iter().collect::<Vec<_>>(), &w);
            let head = host.to_head(&device);
            let ad = device.clone().autodiff();
            let tracked: Vec<Tensor<2>> = head.params().iter().map(|p| p.clone().autodiff().require_grad()).collect();
            let xt = Tensor::<2>::from_data(TensorData::new(x.clone(), [n, dim]), &ad);
            let wt = Tensor::<2>::from_data(TensorData::new(w.clone(), [n, 1]), &ad);
            let grads = weighted_loss(head.with_params(&tracked).forward(xt), targets(y.iter(), &ad), wt).backward();
            for (k, (mine, t)) in ours.into_iter().zip(&tracked).enumerate() {
                let theirs = block_on(read_f32(t.grad(&grads).unwrap())).unwrap();
                let worst = mine.iter().zip(&theirs).map(|(p, q)| (p - q).abs()).fold(0.0f32, f32::max);
                assert!(mine.len() == theirs.len() && worst <= 1e-6, "hidden {hidden} {activation:?} param {k}: max |Δ| {worst}");
            }
            // The host forward is the tensor forward.
            let (logits, _) = host.forward(&x, n);
            let want = block_on(read_f32(head.forward(Tensor::from_data(TensorData::new(x.clone(), [n, dim]), &device)))).unwrap();
            assert!(logits.iter().zip(&want).all(|(a, b)| (a - b).abs() <= 1e-5), "hidden {hidden} {activation:?}: forward");
        }
    }

    #[test]
    fn class_weights_balance_a_skewed_training_set() {
        let device = crate::base::backend::cpu().device;
        // 1-d features: class 0 around -1 (18 rows), class 1 around +0.2 (2 rows): unweighted, the
        // boundary sits near the rare class; weighted, it moves towards the middle.
        let xs: Vec<f32> = (0..18).map(|i| -1.0 + (i as f32) * 0.01).chain([0.15, 0.25]).collect();
        let ys: Vec<Vec<f32>> = (0..20).map(|i| if i < 18 { vec![1.0, 0.0] } else { vec![0.0, 1.0] }).collect();
        let train = Split { x: &xs, y: &ys };
        let idx: Vec<usize> = (0..20).collect();
        let boundary = |class_weights: bool| {
            let mut t = Trainer::new(1, 2, TrainOptions { class_weights, lr: 0.05, epochs: 300, patience: 300, seed: 1, ..Default::default() }, &device);
            block_on(t.fit(&train, &idx, &train)).unwrap();
            // The x where p(class 1) = 0.5, found on a grid.
            let grid: Vec<f32> = (0..200).map(|i| -1.0 + i as f32 * 0.01).collect();
            let p = block_on(t.predict(&grid)).unwrap();
            grid[p.iter().position(|p| p[1] >= 0.5).unwrap_or(199)]
        };
        let (plain, weighted) = (boundary(false), boundary(true));
        assert!(weighted < plain - 0.05, "class weighting moves the boundary away from the rare class: {plain} → {weighted}");
    }
}
