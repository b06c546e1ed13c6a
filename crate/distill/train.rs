//! The student's head on frozen sentence embeddings, trained with burn autodiff: soft-target
//! cross-entropy, AdamW, mini-batches, early stopping on a held-out split (best epoch kept).

use burn::tensor::activation::{log_softmax, softmax};
use burn::tensor::{Device, Tensor, TensorData};
use rand::rngs::SmallRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use serde::Serialize;

use crate::bert::Activation;

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

/// The head's parameters: weights [in, out] (HF stores the transpose) and biases [1, out], so every
/// parameter is a matrix and one optimiser loop serves them all.
#[derive(Clone)]
pub struct Head {
    /// hidden layer (weight, bias), then output layer (weight, bias).
    pub params: Vec<Tensor<2>>,
    pub activation: Activation,
}

impl Head {
    pub fn has_hidden(&self) -> bool {
        self.params.len() == 4
    }

    /// [n, dim] → logits [n, classes]
    pub fn forward(&self, x: Tensor<2>) -> Tensor<2> {
        let p = &self.params;
        let x = if self.has_hidden() { self.activation.apply(x.matmul(p[0].clone()) + p[1].clone()) } else { x };
        let (w, b) = (&p[p.len() - 2], &p[p.len() - 1]);
        x.matmul(w.clone()) + b.clone()
    }

    pub fn num_params(&self) -> usize {
        self.params.iter().map(|t| t.dims().iter().product::<usize>()).sum()
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
fn loss(logits: Tensor<2>, targets: Tensor<2>) -> Tensor<1> {
    (targets * log_softmax(logits, 1)).sum_dim(1).mean().neg().reshape([1])
}

fn rows(x: &[f32], dim: usize, idx: &[usize], device: &Device) -> Tensor<2> {
    let data: Vec<f32> = idx.iter().flat_map(|&i| x[i * dim..(i + 1) * dim].iter().copied()).collect();
    Tensor::from_data(TensorData::new(data, [idx.len(), dim]), device)
}

fn targets(y: &[Vec<f32>], idx: &[usize], device: &Device) -> Tensor<2> {
    let c = y.first().map_or(0, Vec::len);
    let data: Vec<f32> = idx.iter().flat_map(|&i| y[i].iter().copied()).collect();
    Tensor::from_data(TensorData::new(data, [idx.len(), c]), device)
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
        let mut params = Vec::new();
        let mut width = dim;
        if opts.hidden > 0 {
            params.extend([init(dim, opts.hidden), Tensor::zeros([1, opts.hidden], &device)]);
            width = opts.hidden;
        }
        params.extend([init(width, classes), Tensor::zeros([1, classes], &device)]);
        let head = Head { params, activation: opts.activation };
        Trainer { head, opts, device, dim, classes, rng }
    }

    pub fn classes(&self) -> usize {
        self.classes
    }

    /// Probabilities [n][classes] for features [n, dim].
    pub fn predict(&self, x: &[f32]) -> Vec<Vec<f32>> {
        let n = x.len() / self.dim;
        let mut out = Vec::with_capacity(n);
        for start in (0..n).step_by(1024) {
            let idx: Vec<usize> = (start..(start + 1024).min(n)).collect();
            let p = softmax(self.head.forward(rows(x, self.dim, &idx, &self.device)), 1);
            let v = crate::backend::block_on(crate::backend::read_f32(p)).unwrap_or_default();
            out.extend(v.chunks_exact(self.classes).map(<[f32]>::to_vec));
        }
        out
    }

    fn val_loss(&self, val: &Split) -> f32 {
        let idx: Vec<usize> = (0..val.len()).collect();
        let l = loss(self.head.forward(rows(val.x, self.dim, &idx, &self.device)), targets(val.y, &idx, &self.device));
        crate::backend::block_on(crate::backend::read_f32(l)).map(|v| v[0]).unwrap_or(f32::INFINITY)
    }

    /// Train on `train` (rows `idx`), early-stopping on `val`; leaves the best head in place.
    pub fn fit(&mut self, train: &Split, idx: &[usize], val: &Split) -> FitStats {
        let ad = self.device.clone().autodiff();
        let (b1, b2, eps, lr) = (0.9f64, 0.999f64, 1e-8f64, self.opts.lr);
        let n = self.head.params.len();
        let mut m: Vec<Tensor<2>> = self.head.params.iter().map(Tensor::zeros_like).collect();
        let mut v = m.clone();
        let mut step = 0i32;
        let mut best = (self.val_loss(val), 0usize, self.head.clone());
        let mut order = idx.to_vec();
        let mut epoch = 0;
        while epoch < self.opts.epochs && epoch - best.1 < self.opts.patience {
            epoch += 1;
            order.shuffle(&mut self.rng);
            for batch in order.chunks(self.opts.batch.max(1)) {
                step += 1;
                let tracked = Head { params: self.head.params.iter().map(|p| p.clone().autodiff().require_grad()).collect(), activation: self.head.activation };
                let l = loss(tracked.forward(rows(train.x, self.dim, batch, &ad)), targets(train.y, batch, &ad));
                let grads = l.backward();
                let (c1, c2) = (1.0 - b1.powi(step), 1.0 - b2.powi(step));
                for k in 0..n {
                    let g = tracked.params[k].grad(&grads).expect("every head parameter is on the loss path");
                    m[k] = m[k].clone() * b1 + g.clone() * (1.0 - b1);
                    v[k] = v[k].clone() * b2 + g.powi_scalar(2) * (1.0 - b2);
                    let update = (m[k].clone() / c1) / ((v[k].clone() / c2).sqrt() + eps);
                    // AdamW: decoupled weight decay, on weights only (even indices), not biases.
                    let decay = if k % 2 == 0 { self.opts.weight_decay } else { 0.0 };
                    self.head.params[k] = self.head.params[k].clone() * (1.0 - lr * decay) - update * lr;
                }
            }
            let vl = self.val_loss(val);
            if vl < best.0 - 1e-5 {
                best = (vl, epoch, self.head.clone());
            }
        }
        self.head = best.2;
        FitStats { epochs: epoch, best_epoch: best.1, val_loss: best.0 }
    }
}
