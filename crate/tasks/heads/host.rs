//! The head on the host in plain f32 loops, with its backward pass written out: what training runs.

use burn::tensor::{Device, Tensor, TensorData};
// StdRng (ChaCha12) rather than SmallRng: SmallRng is a different generator on 32-bit targets, and the
// browser (wasm32) must train the same head as the CLI for the same seed.

use crate::base::options::Activation;
use crate::tasks::heads::tensor::{AdamW, Dense, Head};

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
    pub fn forward(&self, x: &[f32], n: usize) -> Vec<f32> {
        let mut y: Vec<f32> = (0..n).flat_map(|_| self.b.iter().copied()).collect();
        for (xi, yi) in x.chunks_exact(self.inp).zip(y.chunks_exact_mut(self.out)) {
            for (&xv, wrow) in xi.iter().zip(self.w.chunks_exact(self.out)) {
                yi.iter_mut().zip(wrow).for_each(|(y, &w)| *y += xv * w);
            }
        }
        y
    }

    /// Gradients of weight and bias for input x [n, inp] and output gradient dy [n, out].
    pub fn grads(&self, x: &[f32], dy: &[f32]) -> [Vec<f32>; 2] {
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
    pub fn input_grad(&self, dy: &[f32]) -> Vec<f32> {
        dy.chunks_exact(self.out).flat_map(|di| self.w.chunks_exact(self.out).map(move |wrow| wrow.iter().zip(di).map(|(w, d)| w * d).sum::<f32>())).collect()
    }

    pub fn dense(&self, device: &Device) -> Dense {
        Dense {
            weight: Tensor::from_data(TensorData::new(self.w.clone(), [self.inp, self.out]), device),
            bias: Tensor::from_data(TensorData::new(self.b.clone(), [1, self.out]), device),
        }
    }
}

/// `act` and its derivative at `z`, on the host (burn's definitions: GELU is the erf form).
pub fn activate(act: Activation, z: f32) -> (f32, f32) {
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
    pub fn forward(&self, x: &[f32], n: usize) -> (Vec<f32>, Option<(Vec<f32>, Vec<f32>)>) {
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

    pub fn classes(&self) -> usize {
        self.layers.last().map_or(0, |l| l.out)
    }

    /// Σ w_i ce_i / Σ w_i of the logits against soft targets (rows of `y`), and d loss / d logits.
    pub fn loss(&self, logits: &[f32], y: &[&Vec<f32>], w: &[f32]) -> (f32, Vec<f32>) {
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
pub struct HostAdam {
    pub m: Vec<Vec<f32>>,
    pub v: Vec<Vec<f32>>,
    pub step: i32,
}

impl HostAdam {
    pub fn step(&mut self, params: &mut [&mut Vec<f32>], grads: &[Vec<f32>], lr: f32, decay: impl Fn(usize) -> f32) {
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
