//! Normalisation layers.

use burn::tensor::Tensor;

use crate::io::safetensors::Loader;

/// HF `nn.LayerNorm` over the last axis.
pub struct LayerNorm {
    gamma: Tensor<1>, // [hidden]
    beta: Tensor<1>,  // [hidden]
    eps: f64,
}

impl LayerNorm {
    pub fn load(w: &Loader, name: &str, hidden: usize, eps: f64) -> Self {
        LayerNorm { gamma: w.tensor(&format!("{name}.weight"), [hidden]), beta: w.tensor(&format!("{name}.bias"), [hidden]), eps }
    }

    /// Parameters as matrices for training: gamma [1, hidden], beta [1, hidden].
    pub fn params(&self) -> Vec<Tensor<2>> {
        vec![self.gamma.clone().unsqueeze::<2>(), self.beta.clone().unsqueeze::<2>()]
    }

    pub fn from_params(p: &[Tensor<2>], eps: f64) -> Self {
        LayerNorm { gamma: p[0].clone().flatten(0, 1), beta: p[1].clone().flatten(0, 1), eps }
    }

    /// [..., hidden] → same. burn's op: one fused pass on the CPU (flex), the same composition of
    /// mean/variance ops as before on other backends and under autodiff.
    pub fn forward<const D: usize>(&self, x: Tensor<D>) -> Tensor<D> {
        burn::tensor::module::layer_norm(x, self.gamma.clone(), Some(self.beta.clone()), self.eps)
    }
}

/// Llama's RMSNorm over the last axis.
pub struct RmsNorm {
    weight: Tensor<1>, // [hidden]
    eps: f64,
}

impl RmsNorm {
    pub fn load(w: &Loader, name: &str, hidden: usize, eps: f64) -> Self {
        RmsNorm { weight: w.tensor(&format!("{name}.weight"), [hidden]), eps }
    }

    /// [batch, seq, hidden] → same
    pub fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        let rms = (x.clone().powi_scalar(2).mean_dim(2) + self.eps).sqrt(); // [b, s, 1]
        x / rms * self.weight.clone().unsqueeze::<3>()
    }
}
