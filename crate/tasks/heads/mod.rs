//! Classifier heads on frozen sentence embeddings: the one trainer behind `veer distill` and the
//! browser's `trainClassifier`, and the `head.safetensors` file they both write.
//!
//! Soft-target cross-entropy (optionally class-weighted), AdamW, mini-batches, early stopping on a
//! held-out split (best epoch kept). Training runs on the host in plain f32 loops with the gradients
//! written out (`HostHead`): a head is at most two affine layers, its backward pass five small matrix
//! products, its features are on the host already; the wasm module then needs no autodiff backend
//! (which would wrap every tensor operation of every backend in the build), and the browser and the
//! CLI get the same bits. `tests` check the gradients against burn's autodiff natively. The tensor
//! `Head` serves prediction, export and `veer distill`'s fine-tuning.

use std::collections::HashMap;

use burn::tensor::activation::{log_softmax, softmax};
use burn::tensor::{Device, Tensor, TensorData};
// StdRng (ChaCha12) rather than SmallRng: SmallRng is a different generator on 32-bit targets, and the
// browser (wasm32) must train the same head as the CLI for the same seed.
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use serde::Serialize;

use crate::base::backend::read_f32;
use crate::base::math::{argmax, one_hot};
use crate::base::limits::{MAX_EXAMPLES, MAX_LABELS};
use crate::nn::linear::NamedParam;
use crate::base::options::{Activation, HeadOptions, PooledHead, TrainOptions};
use crate::base::error::{Error, Result};
use crate::io::safetensors::{OutDtype, Stored};

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

/// One affine layer of a head: weight [in, out] (HF stores the transpose) and bias [1, out], both
/// matrices so that one optimiser loop serves every parameter.
#[derive(Clone)]
pub struct Dense {
    pub weight: Tensor<2>,
    pub bias: Tensor<2>,
}

impl Dense {
    /// [n, in] → [n, out]
    fn forward(&self, x: Tensor<2>) -> Tensor<2> {
        x.matmul(self.weight.clone()) + self.bias.clone()
    }
}

/// A classifier head: an optional hidden layer with its activation (HF `pre_classifier`), then the
/// output layer (`classifier`).
#[derive(Clone)]
pub struct Head {
    pub hidden: Option<Dense>,
    pub out: Dense,
    pub activation: Activation,
}

impl Head {
    pub fn has_hidden(&self) -> bool {
        self.hidden.is_some()
    }

    /// [n, dim] → logits [n, classes]
    pub fn forward(&self, x: Tensor<2>) -> Tensor<2> {
        let x = match &self.hidden {
            Some(h) => crate::nn::ops::activate(self.activation, h.forward(x)),
            None => x,
        };
        self.out.forward(x)
    }

    pub fn classes(&self) -> usize {
        self.out.bias.dims()[1]
    }

    /// The parameters as the optimiser sees them: weight, bias per layer, the hidden layer first.
    pub fn params(&self) -> Vec<Tensor<2>> {
        self.hidden.iter().chain([&self.out]).flat_map(|d| [d.weight.clone(), d.bias.clone()]).collect()
    }

    /// The inverse of `params`: a head of this shape from new values (same order and count).
    pub fn with_params(&self, values: &[Tensor<2>]) -> Head {
        let dense = |k: usize| Dense { weight: values[2 * k].clone(), bias: values[2 * k + 1].clone() };
        let hidden = self.hidden.as_ref().map(|_| dense(0));
        Head { out: dense(hidden.is_some() as usize), hidden, activation: self.activation }
    }

    pub fn num_params(&self) -> usize {
        self.params().iter().map(|t| t.dims().iter().product::<usize>()).sum()
    }
}

/// Mean soft-target cross-entropy of logits [n, c] against targets [n, c].
pub fn loss(logits: Tensor<2>, targets: Tensor<2>) -> Tensor<1> {
    (targets * log_softmax(logits, 1)).sum_dim(1).mean().neg().reshape([1])
}

/// A scalar loss back on the host (async: on WebGPU a readback is).
pub async fn read_loss(l: Tensor<1>) -> Result<f32> {
    Ok(read_f32(l).await?.first().copied().unwrap_or(f32::INFINITY))
}

/// AdamW over a list of matrix parameters (the head's, and the fine-tuned layers'): one optimiser for
/// every trainer in veer.
pub struct AdamW {
    m: Vec<Tensor<2>>,
    v: Vec<Tensor<2>>,
    step: i32,
}

impl AdamW {
    const B1: f64 = 0.9;
    const B2: f64 = 0.999;
    const EPS: f64 = 1e-8;

    pub fn new(params: &[Tensor<2>]) -> Self {
        let m: Vec<Tensor<2>> = params.iter().map(Tensor::zeros_like).collect();
        AdamW { v: m.clone(), m, step: 0 }
    }

    /// One step with gradients `grads` (one per parameter, `None` for one off the loss path); `lr(k)`
    /// and `decay(k)` give parameter k's learning rate and decoupled weight decay.
    pub fn step(&mut self, params: Vec<Tensor<2>>, grads: Vec<Option<Tensor<2>>>, lr: impl Fn(usize) -> f64, decay: impl Fn(usize) -> f64) -> Vec<Tensor<2>> {
        self.step += 1;
        let (c1, c2) = (1.0 - Self::B1.powi(self.step), 1.0 - Self::B2.powi(self.step));
        params
            .into_iter()
            .zip(grads)
            .enumerate()
            .map(|(k, (p, g))| {
                let g = g.unwrap_or_else(|| p.zeros_like());
                self.m[k] = self.m[k].clone() * Self::B1 + g.clone() * (1.0 - Self::B1);
                self.v[k] = self.v[k].clone() * Self::B2 + g.powi_scalar(2) * (1.0 - Self::B2);
                let update = (self.m[k].clone() / c1) / ((self.v[k].clone() / c2).sqrt() + Self::EPS);
                p * (1.0 - lr(k) * decay(k)) - update * lr(k)
            })
            .collect()
    }
}

fn rows(x: &[f32], dim: usize, idx: &[usize], device: &Device) -> Tensor<2> {
    let data: Vec<f32> = idx.iter().flat_map(|&i| x[i * dim..(i + 1) * dim].iter().copied()).collect();
    Tensor::from_data(TensorData::new(data, [idx.len(), dim]), device)
}

/// Soft targets [rows, classes] on `device`.
pub fn targets<'a>(y: impl ExactSizeIterator<Item = &'a Vec<f32>> + Clone, device: &Device) -> Tensor<2> {
    let (n, c) = (y.len(), y.clone().next().map_or(0, Vec::len));
    let data: Vec<f32> = y.flat_map(|r| r.iter().copied()).collect();
    Tensor::from_data(TensorData::new(data, [n, c]), device)
}

/// One affine layer on the host: weight [inp, out] row-major (burn's layout) and bias [out].
#[derive(Clone, Debug)]
pub struct HostLayer {
    pub w: Vec<f32>,
    pub b: Vec<f32>,
    pub inp: usize,
    pub out: usize,
}

impl HostLayer {
    /// x [n, inp] → [n, out]
    fn forward(&self, x: &[f32], n: usize) -> Vec<f32> {
        let mut y: Vec<f32> = (0..n).flat_map(|_| self.b.iter().copied()).collect();
        for (xi, yi) in x.chunks_exact(self.inp).zip(y.chunks_exact_mut(self.out)) {
            for (&xv, wrow) in xi.iter().zip(self.w.chunks_exact(self.out)) {
                yi.iter_mut().zip(wrow).for_each(|(y, &w)| *y += xv * w);
            }
        }
        y
    }

    /// Gradients of weight and bias for input x [n, inp] and output gradient dy [n, out].
    fn grads(&self, x: &[f32], dy: &[f32]) -> [Vec<f32>; 2] {
        let mut dw = vec![0.0f32; self.w.len()];
        let mut db = vec![0.0f32; self.out];
        for (xi, di) in x.chunks_exact(self.inp).zip(dy.chunks_exact(self.out)) {
            for (&xv, row) in xi.iter().zip(dw.chunks_exact_mut(self.out)) {
                row.iter_mut().zip(di).for_each(|(g, &d)| *g += xv * d);
            }
            db.iter_mut().zip(di).for_each(|(g, &d)| *g += d);
        }
        [dw, db]
    }

    /// The input gradient dx [n, inp] = dy [n, out] · wᵀ.
    fn input_grad(&self, dy: &[f32]) -> Vec<f32> {
        dy.chunks_exact(self.out).flat_map(|di| self.w.chunks_exact(self.out).map(move |wrow| wrow.iter().zip(di).map(|(w, d)| w * d).sum::<f32>())).collect()
    }

    fn dense(&self, device: &Device) -> Dense {
        Dense {
            weight: Tensor::from_data(TensorData::new(self.w.clone(), [self.inp, self.out]), device),
            bias: Tensor::from_data(TensorData::new(self.b.clone(), [1, self.out]), device),
        }
    }
}

/// `act` and its derivative at `z`, on the host (burn's definitions: GELU is the erf form).
fn activate(act: Activation, z: f32) -> (f32, f32) {
    match act {
        Activation::Relu => (z.max(0.0), if z > 0.0 { 1.0 } else { 0.0 }),
        Activation::Tanh => {
            let t = z.tanh();
            (t, 1.0 - t * t)
        }
        Activation::Gelu => {
            let cdf = 0.5 * (1.0 + libm::erff(z / std::f32::consts::SQRT_2));
            let pdf = (-0.5 * z * z).exp() / (2.0 * std::f32::consts::PI).sqrt();
            (z * cdf, cdf + z * pdf)
        }
    }
}

/// A head on the host: the optional hidden layer, then the output layer. Training runs here, in plain
/// f32 loops: a head is small (MiniLM's 384 inputs × a few labels), its data is on the host already,
/// and the same loops give the same bits natively and in wasm (no backend's kernels in between).
#[derive(Clone, Debug)]
pub struct HostHead {
    pub layers: Vec<HostLayer>,
    pub activation: Activation,
}

impl HostHead {
    /// Logits [n, classes] for x [n, dim], with what the backward pass needs: the pre-activations of
    /// the hidden layer and its outputs.
    fn forward(&self, x: &[f32], n: usize) -> (Vec<f32>, Option<(Vec<f32>, Vec<f32>)>) {
        match self.layers.as_slice() {
            [hidden, out] => {
                let z = hidden.forward(x, n);
                let a: Vec<f32> = z.iter().map(|&v| activate(self.activation, v).0).collect();
                (out.forward(&a, n), Some((z, a)))
            }
            [out] => (out.forward(x, n), None),
            _ => (Vec::new(), None),
        }
    }

    fn classes(&self) -> usize {
        self.layers.last().map_or(0, |l| l.out)
    }

    /// Σ w_i ce_i / Σ w_i of the logits against soft targets (rows of `y`), and d loss / d logits.
    fn loss(&self, logits: &[f32], y: &[&Vec<f32>], w: &[f32]) -> (f32, Vec<f32>) {
        let c = self.classes();
        let total: f32 = w.iter().sum::<f32>().max(f32::MIN_POSITIVE);
        let mut loss = 0.0f32;
        let mut grad = vec![0.0f32; logits.len()];
        for (((row, g), yi), &wi) in logits.chunks_exact(c).zip(grad.chunks_exact_mut(c)).zip(y).zip(w) {
            let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            let lse = max + row.iter().map(|v| (v - max).exp()).sum::<f32>().ln();
            let ysum: f32 = yi.iter().sum();
            loss -= wi * yi.iter().zip(row).map(|(t, v)| t * (v - lse)).sum::<f32>();
            // d/dz of −Σ y log softmax(z) = softmax(z) Σ y − y.
            g.iter_mut().zip(row).zip(yi.iter()).for_each(|((g, v), t)| *g = wi * ((v - lse).exp() * ysum - t) / total);
        }
        (loss / total, grad)
    }

    /// Gradients of `loss` for rows x [n, dim], targets `y`, row weights `w`, in `params` order
    /// (weight, bias per layer, the hidden layer first).
    pub fn gradients(&self, x: &[f32], y: &[&Vec<f32>], w: &[f32]) -> Vec<Vec<f32>> {
        let n = y.len();
        let (logits, hidden) = self.forward(x, n);
        let (_, dlogits) = self.loss(&logits, y, w);
        match (self.layers.as_slice(), hidden) {
            ([h, out], Some((z, a))) => {
                let [dw2, db2] = out.grads(&a, &dlogits);
                let dz: Vec<f32> = out.input_grad(&dlogits).iter().zip(&z).map(|(d, &v)| d * activate(self.activation, v).1).collect();
                let [dw1, db1] = h.grads(x, &dz);
                vec![dw1, db1, dw2, db2]
            }
            ([out], _) => out.grads(x, &dlogits).into(),
            _ => Vec::new(),
        }
    }

    pub fn to_head(&self, device: &Device) -> Head {
        let mut dense: Vec<Dense> = self.layers.iter().map(|l| l.dense(device)).collect();
        let out = dense.pop().unwrap_or_else(|| HostLayer { w: vec![0.0], b: vec![0.0], inp: 1, out: 1 }.dense(device));
        Head { hidden: dense.pop(), out, activation: self.activation }
    }
}

/// AdamW on host parameters (the head's): the same update as `AdamW` for tensors.
struct HostAdam {
    m: Vec<Vec<f32>>,
    v: Vec<Vec<f32>>,
    step: i32,
}

impl HostAdam {
    fn step(&mut self, params: &mut [&mut Vec<f32>], grads: &[Vec<f32>], lr: f32, decay: impl Fn(usize) -> f32) {
        self.step += 1;
        let (b1, b2, eps) = (AdamW::B1 as f32, AdamW::B2 as f32, AdamW::EPS as f32);
        let (c1, c2) = (1.0 - b1.powi(self.step), 1.0 - b2.powi(self.step));
        for (k, (p, g)) in params.iter_mut().zip(grads).enumerate() {
            let keep = 1.0 - lr * decay(k);
            for (((p, &g), m), v) in p.iter_mut().zip(g).zip(&mut self.m[k]).zip(&mut self.v[k]) {
                *m = *m * b1 + g * (1.0 - b1);
                *v = *v * b2 + g * g * (1.0 - b2);
                *p = *p * keep - (*m / c1) / ((*v / c2).sqrt() + eps) * lr;
            }
        }
    }
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
        head_safetensors(&self.trainer.host.to_head(&self.trainer.device), &[], OutDtype::F32, &self.spec, &self.labels, encoder).await
    }
}

// --- the head file -------------------------------------------------------------------------------------

pub const HEAD_FORMAT: &str = "veer-head/1";

/// The head in HF layout ([out, in] weights): `pre_classifier.*` (when there is a hidden layer) and
/// `classifier.*`, F32; plus any fine-tuned encoder layers under their HF names, in `dtype` (they
/// replace the base encoder's tensors when packed).
pub async fn head_safetensors(head: &Head, layers: &[NamedParam], dtype: OutDtype, spec: &PooledHead, labels: &[String], encoder: &str) -> Result<Vec<u8>> {
    let names: &[&str] = if head.has_hidden() { &["pre_classifier.weight", "pre_classifier.bias", "classifier.weight", "classifier.bias"] } else { &["classifier.weight", "classifier.bias"] };
    // HF layout: linear weights [out, in]; biases and norm parameters flat.
    async fn hf(name: &str, p: &Tensor<2>, transposed: bool, dtype: OutDtype) -> Result<Stored> {
        let [i, o] = p.dims();
        let (value, shape) = if transposed { (p.clone().transpose(), vec![o, i]) } else { (p.clone(), vec![i * o]) };
        Ok(Stored::floats(name, shape, &read_f32(value).await?, dtype))
    }
    let mut tensors = Vec::new();
    for (name, p) in names.iter().zip(&head.params()) {
        tensors.push(hf(name, p, name.ends_with(".weight"), OutDtype::F32).await?);
    }
    for p in layers {
        tensors.push(hf(&p.name, &p.value, p.transposed, dtype).await?);
    }
    let json = |v: serde_json::Result<String>| v.map_err(|e| Error::file("head.safetensors", format!("metadata: {e}")));
    let meta: HashMap<String, String> = [
        ("format".to_string(), HEAD_FORMAT.to_string()),
        ("labels".to_string(), json(serde_json::to_string(labels))?),
        ("veer_head".to_string(), json(serde_json::to_string(spec))?),
        ("encoder".to_string(), encoder.to_string()),
    ]
    .into();
    crate::io::safetensors::write(&tensors, meta, "head.safetensors")
}

/// A head file's metadata: its labels and how it reads the encoder.
pub fn read_head_metadata(bytes: &[u8], file: &str) -> Result<(Vec<String>, PooledHead)> {
    crate::base::error::reject_html(bytes, file, "a head file")?;
    let (_, meta) = safetensors::SafeTensors::read_metadata(bytes).map_err(|e| Error::file(file, format!("not a safetensors head file: {e}")))?;
    let meta = meta.metadata().clone().unwrap_or_default();
    if meta.get("format").map(String::as_str) != Some(HEAD_FORMAT) {
        return Err(Error::file(file, format!("not a {HEAD_FORMAT} file (written by `veer distill` or `trainClassifier`)")));
    }
    let labels: Vec<String> = serde_json::from_str(meta.get("labels").map_or("", String::as_str)).map_err(|e| Error::file(file, format!("metadata `labels`: {e}")))?;
    let spec: PooledHead = serde_json::from_str(meta.get("veer_head").map_or("", String::as_str)).map_err(|e| Error::file(file, format!("metadata `veer_head`: {e}")))?;
    Ok((labels, spec))
}

#[cfg(all(test, feature = "cli"))]
mod tests {
    use super::*;
    use crate::base::backend::block_on;

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
