//! The student's head on frozen sentence embeddings, trained with burn autodiff: soft-target
//! cross-entropy, AdamW, mini-batches, early stopping on a held-out split (best epoch kept).

use burn::tensor::activation::{log_softmax, softmax};
use burn::tensor::{Device, Gradients, Tensor, TensorData};
use rand::rngs::SmallRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use serde::Serialize;

use crate::backend::{block_on, read_f32};
use crate::bert::Activation;
use crate::error::Result;

#[derive(Debug, Clone)]
pub struct TrainOptions {
    /// Units of the hidden layer; 0 for a linear head.
    pub hidden: usize,
    pub activation: Activation,
    pub lr: f64,
    pub weight_decay: f64,
    pub batch: usize,
    /// Epochs per fit, and epochs without a better held-out loss before stopping.
    pub epochs: usize,
    pub patience: usize,
    pub seed: u64,
}

impl Default for TrainOptions {
    fn default() -> Self {
        TrainOptions { hidden: 0, activation: Activation::Relu, lr: 3e-3, weight_decay: 1e-4, batch: 32, epochs: 200, patience: 15, seed: 0 }
    }
}

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
            Some(h) => self.activation.apply(h.forward(x)),
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

/// A head and its optimiser state.
pub struct Trainer {
    pub head: Head,
    opts: TrainOptions,
    device: Device,
    dim: usize,
    classes: usize,
    rng: SmallRng,
}

/// Mean soft-target cross-entropy of logits [n, c] against targets [n, c].
pub(crate) fn loss(logits: Tensor<2>, targets: Tensor<2>) -> Tensor<1> {
    (targets * log_softmax(logits, 1)).sum_dim(1).mean().neg().reshape([1])
}

/// A scalar loss back on the host.
pub(crate) fn read_loss(l: Tensor<1>) -> Result<f32> {
    Ok(block_on(read_f32(l))?.first().copied().unwrap_or(f32::INFINITY))
}

/// AdamW over a list of matrix parameters (the head's, and the fine-tuned layers'): one optimiser for
/// every trainer in `distill`.
pub(crate) struct AdamW {
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

    /// One step: `tracked` are the autodiff copies of `params` the loss was computed from; `lr(k)` and
    /// `decay(k)` give parameter k's learning rate and decoupled weight decay.
    pub fn step(&mut self, params: Vec<Tensor<2>>, tracked: &[Tensor<2>], grads: &Gradients, lr: impl Fn(usize) -> f64, decay: impl Fn(usize) -> f64) -> Vec<Tensor<2>> {
        self.step += 1;
        let (c1, c2) = (1.0 - Self::B1.powi(self.step), 1.0 - Self::B2.powi(self.step));
        params
            .into_iter()
            .enumerate()
            .map(|(k, p)| {
                // A parameter off the loss path (none in veer's heads) simply gets no gradient step.
                let g = tracked[k].grad(grads).unwrap_or_else(|| p.zeros_like());
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
pub(crate) fn targets<'a>(y: impl ExactSizeIterator<Item = &'a Vec<f32>> + Clone, device: &Device) -> Tensor<2> {
    let (n, c) = (y.len(), y.clone().next().map_or(0, Vec::len));
    let data: Vec<f32> = y.flat_map(|r| r.iter().copied()).collect();
    Tensor::from_data(TensorData::new(data, [n, c]), device)
}

impl Trainer {
    pub fn new(dim: usize, classes: usize, opts: TrainOptions, device: &Device) -> Self {
        let device = device.clone();
        // Initialised from our own seeded generator: burn's random tensors are not reproducible
        // across runs on every backend.
        let mut rng = SmallRng::seed_from_u64(opts.seed);
        let mut init = |i: usize, o: usize| {
            let bound = 1.0 / (i as f32).sqrt();
            let values: Vec<f32> = (0..i * o).map(|_| rng.random_range(-bound..bound)).collect();
            Tensor::<2>::from_data(TensorData::new(values, [i, o]), &device)
        };
        let hidden = (opts.hidden > 0).then(|| Dense { weight: init(dim, opts.hidden), bias: Tensor::zeros([1, opts.hidden], &device) });
        let width = if opts.hidden > 0 { opts.hidden } else { dim };
        let out = Dense { weight: init(width, classes), bias: Tensor::zeros([1, classes], &device) };
        let head = Head { hidden, out, activation: opts.activation };
        Trainer { head, opts, device, dim, classes, rng }
    }

    pub fn classes(&self) -> usize {
        self.classes
    }

    /// Probabilities [n][classes] for features [n, dim].
    pub fn predict(&self, x: &[f32]) -> Result<Vec<Vec<f32>>> {
        let n = x.len() / self.dim;
        let mut out = Vec::with_capacity(n);
        for start in (0..n).step_by(1024) {
            let idx: Vec<usize> = (start..(start + 1024).min(n)).collect();
            let p = softmax(self.head.forward(rows(x, self.dim, &idx, &self.device)), 1);
            out.extend(block_on(read_f32(p))?.chunks_exact(self.classes).map(<[f32]>::to_vec));
        }
        Ok(out)
    }

    fn val_loss(&self, val: &Split) -> Result<f32> {
        let idx: Vec<usize> = (0..val.len()).collect();
        read_loss(loss(self.head.forward(rows(val.x, self.dim, &idx, &self.device)), targets(val.y.iter(), &self.device)))
    }

    /// Train on `train` (rows `idx`), early-stopping on `val`; leaves the best head in place.
    pub fn fit(&mut self, train: &Split, idx: &[usize], val: &Split) -> Result<FitStats> {
        let ad = self.device.clone().autodiff();
        let mut adam = AdamW::new(&self.head.params());
        let mut best = (self.val_loss(val)?, 0usize, self.head.clone());
        let mut order = idx.to_vec();
        let mut epoch = 0;
        while epoch < self.opts.epochs && epoch - best.1 < self.opts.patience {
            epoch += 1;
            order.shuffle(&mut self.rng);
            for batch in order.chunks(self.opts.batch.max(1)) {
                let tracked: Vec<Tensor<2>> = self.head.params().into_iter().map(|p| p.autodiff().require_grad()).collect();
                let logits = self.head.with_params(&tracked).forward(rows(train.x, self.dim, batch, &ad));
                let grads = loss(logits, targets(batch.iter().map(|&i| &train.y[i]), &ad)).backward();
                // Decoupled weight decay on weights (even indices of `params`), not biases.
                let values = adam.step(self.head.params(), &tracked, &grads, |_| self.opts.lr, |k| if k % 2 == 0 { self.opts.weight_decay } else { 0.0 });
                self.head = self.head.with_params(&values);
            }
            let vl = self.val_loss(val)?;
            if vl < best.0 - 1e-5 {
                best = (vl, epoch, self.head.clone());
            }
        }
        self.head = best.2;
        Ok(FitStats { epochs: epoch, best_epoch: best.1, val_loss: best.0 })
    }
}
