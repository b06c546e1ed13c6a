//! The few layers veer's models share, written over plain tensors so the layer loops stay explicit
//! (steering hooks and per-layer hidden states need them).

use burn::tensor::Tensor;

use crate::weights::Loader;

/// HF `nn.Linear`, weight kept transposed as [in, out].
pub struct Linear {
    weight_t: Tensor<2>,       // [in, out]
    bias: Option<Tensor<1>>,   // [out]
}

impl Linear {
    pub fn load(w: &Loader, name: &str, inp: usize, out: usize, bias: bool) -> Self {
        Linear {
            weight_t: w.linear_t(&format!("{name}.weight"), out, inp),
            bias: bias.then(|| w.tensor(&format!("{name}.bias"), [out])),
        }
    }

    /// Parameters as matrices for training: weight [in, out], bias [1, out].
    pub fn params(&self) -> Vec<Tensor<2>> {
        let mut p = vec![self.weight_t.clone()];
        if let Some(b) = &self.bias {
            p.push(b.clone().unsqueeze::<2>());
        }
        p
    }

    /// The inverse of `params`.
    pub fn from_params(p: &[Tensor<2>]) -> Self {
        Linear { weight_t: p[0].clone(), bias: p.get(1).map(|b| b.clone().flatten(0, 1)) }
    }

    /// [batch, seq, in] → [batch, seq, out]
    pub fn forward3(&self, x: Tensor<3>) -> Tensor<3> {
        let [b, s, i] = x.dims();
        let y = self.forward2(x.reshape([b * s, i]));
        let o = y.dims()[1];
        y.reshape([b, s, o])
    }

    /// [rows, in] → [rows, out]
    pub fn forward2(&self, x: Tensor<2>) -> Tensor<2> {
        let y = x.matmul(self.weight_t.clone());
        match &self.bias {
            Some(b) => y + b.clone().unsqueeze::<2>(),
            None => y,
        }
    }
}

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

    /// [batch, seq, hidden] → same
    pub fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        let mean = x.clone().mean_dim(2); // [b, s, 1]
        let centred = x - mean;
        let var = centred.clone().powi_scalar(2).mean_dim(2); // [b, s, 1]
        let normed = centred / (var + self.eps).sqrt();
        normed * self.gamma.clone().unsqueeze::<3>() + self.beta.clone().unsqueeze::<3>()
    }
}
