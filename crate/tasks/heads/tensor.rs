//! The head as tensors: prediction, export and `veer distill`'s fine-tuning (AdamW on tensors).

use burn::tensor::activation::log_softmax;
use burn::tensor::{Device, Tensor, TensorData};
// StdRng (ChaCha12) rather than SmallRng: SmallRng is a different generator on 32-bit targets, and the
// browser (wasm32) must train the same head as the CLI for the same seed.

use crate::base::backend::read_f32;
use crate::base::options::Activation;
use crate::base::error::Result;

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
    pub const B1: f64 = 0.9;
    pub const B2: f64 = 0.999;
    pub const EPS: f64 = 1e-8;

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

pub fn rows(x: &[f32], dim: usize, idx: &[usize], device: &Device) -> Tensor<2> {
    let data: Vec<f32> = idx.iter().flat_map(|&i| x[i * dim..(i + 1) * dim].iter().copied()).collect();
    Tensor::from_data(TensorData::new(data, [idx.len(), dim]), device)
}

/// Soft targets [rows, classes] on `device`.
pub fn targets<'a>(y: impl ExactSizeIterator<Item = &'a Vec<f32>> + Clone, device: &Device) -> Tensor<2> {
    let (n, c) = (y.len(), y.clone().next().map_or(0, Vec::len));
    let data: Vec<f32> = y.flat_map(|r| r.iter().copied()).collect();
    Tensor::from_data(TensorData::new(data, [n, c]), device)
}
