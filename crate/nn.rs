//! The few layers veer's models share, written over plain tensors so the layer loops stay explicit
//! (steering hooks and per-layer hidden states need them).

use burn::tensor::{Device, Tensor, TensorData};

use crate::options::WeightFormat;
use crate::panels::{Epilogue, Panels};
use crate::quant::Q8Matrix;
use crate::weights::Loader;

/// HF `nn.Linear`: the weight as an f32 tensor on the device, kept transposed as [in, out]; or, on the
/// CPU device in the browser, as f32 panels on the host for veer's own kernel (`panels`); or (the
/// decoder's `WeightFormat::Int8`, CPU only) as int8 groups on the host (`quant`).
pub struct Linear {
    weight: Weight,
    bias: Option<Tensor<1>>, // [out]; for `Panels` also inside the panels, where the kernel adds it
}

enum Weight {
    Dense(Tensor<2>),       // [in, out]
    Panels(Panels),         // [ceil(out / 8), in, 8] on the host, bias inside
    Int8(Q8Matrix, Device), // [out, in]
}

/// Whether f32 weights on `device` go to `Panels`: the CPU device in wasm SIMD128, where gemm's kernel
/// spills in V8 (`panels`). Natively gemm has AVX2/FMA and threads, and stays.
fn panels_on(device: &Device) -> bool {
    cfg!(all(target_arch = "wasm32", target_feature = "simd128")) && crate::backend::is_cpu(device)
}

impl Linear {
    pub fn load(w: &Loader, name: &str, inp: usize, out: usize, bias: bool) -> Self {
        Self::load_as(w, name, inp, out, bias, WeightFormat::F32)
    }

    pub fn load_as(w: &Loader, name: &str, inp: usize, out: usize, bias: bool, format: WeightFormat) -> Self {
        let name_w = format!("{name}.weight");
        let bias = bias.then(|| w.tensor::<1>(&format!("{name}.bias"), [out]));
        let weight = match format {
            WeightFormat::F32 if panels_on(w.device()) => {
                let b = bias.clone().map(crate::backend::read_now).filter(|b| b.len() == out);
                Weight::Panels(w.panels(&name_w, out, inp, b.as_deref()))
            }
            WeightFormat::F32 => Weight::Dense(w.linear_t(&name_w, out, inp)),
            WeightFormat::Int8 => Weight::Int8(w.int8(&name_w, out, inp), w.device().clone()),
        };
        Linear { weight, bias }
    }

    /// Parameters as matrices for training: weight [in, out], bias [1, out].
    pub fn params(&self) -> Vec<Tensor<2>> {
        let weight = match &self.weight {
            Weight::Dense(t) => t.clone(),
            // Never trained (heads and LoRA are f32 tensors); unpacked so that the method stays total.
            Weight::Panels(m) => {
                Tensor::from_data(TensorData::new(m.unpacked_t().0, [m.inp(), m.out()]), &Device::flex()) // panels are CPU-only
            }
            Weight::Int8(m, device) => Tensor::from_data(TensorData::new(m.dequantised_t(), [m.cols(), m.rows()]), device),
        };
        let mut p = vec![weight];
        if let Some(b) = &self.bias {
            p.push(b.clone().unsqueeze::<2>());
        }
        p
    }

    /// The inverse of `params`.
    pub fn from_params(p: &[Tensor<2>]) -> Self {
        Linear { weight: Weight::Dense(p[0].clone()), bias: p.get(1).map(|b| b.clone().flatten(0, 1)) }
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
        self.forward2_with(x, Epilogue::None)
    }

    /// gelu(forward2(x)); with `Panels`, GELU is applied by the kernel while the rows are in cache.
    pub fn forward2_gelu(&self, x: Tensor<2>) -> Tensor<2> {
        self.forward2_with(x, Epilogue::Gelu)
    }

    fn forward2_with(&self, x: Tensor<2>, epilogue: Epilogue) -> Tensor<2> {
        let y = match &self.weight {
            Weight::Panels(m) => {
                // The activations cross to the host and back (a copy each way, small against the
                // product); the bias and the epilogue are the kernel's.
                let device = x.device();
                let [n, _] = x.dims();
                let y = m.forward(&crate::backend::read_now(x), n, epilogue);
                return Tensor::from_data(TensorData::new(y, [n, m.out()]), &device);
            }
            Weight::Dense(w) => x.matmul(w.clone()),
            Weight::Int8(m, _) => int8_matmul(m, x),
        };
        let y = match &self.bias {
            Some(b) => y + b.clone().unsqueeze::<2>(),
            None => y,
        };
        match epilogue {
            Epilogue::None => y,
            Epilogue::Gelu => burn::tensor::activation::gelu(y),
        }
    }
}

/// x · Wᵀ with int8 `m` ([out, in]) for x [rows, in] on the CPU device → [rows, out]. The activations
/// cross to the host and back (rows × in floats: 2 KB per decoded token for SmolLM2's widest layer),
/// the weights never move. Int8 weights are loaded only for the CPU device (`Llama::load`), whose
/// reads complete at once.
pub fn int8_matmul(m: &Q8Matrix, x: Tensor<2>) -> Tensor<2> {
    let device = x.device();
    let [n, _] = x.dims();
    let data = crate::backend::read_now(x);
    Tensor::from_data(TensorData::new(m.matmul_t(&data, n), [n, m.rows()]), &device)
}

/// Softmax over the last axis. On the browser's CPU device by veer's SIMD128 kernel
/// (`panels::softmax_rows`), since burn's calls libm's scalar `expf` for every score; elsewhere burn's.
pub fn softmax_last<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    if !panels_on(&x.device()) {
        return burn::tensor::activation::softmax(x, D - 1);
    }
    on_host(x, |v, dims| crate::panels::softmax_rows(v, dims[D - 1], false))
}

/// silu(gate) · up, element-wise (Llama's MLP). On the browser's CPU device by veer's SIMD128 kernel
/// (`panels::silu_mul`), since burn's SiLU calls libm's scalar `expf`; elsewhere burn's.
pub fn silu_mul<const D: usize>(gate: Tensor<D>, up: Tensor<D>) -> Tensor<D> {
    if !panels_on(&gate.device()) {
        return burn::tensor::activation::silu(gate) * up;
    }
    let up = crate::backend::read_now(up);
    on_host(gate, |g, _| crate::panels::silu_mul(g, &up, false))
}

/// `f` over a CPU tensor's values in place on the host (a copy each way, small against the work),
/// the result on the tensor's device with the same shape.
fn on_host<const D: usize>(x: Tensor<D>, f: impl FnOnce(&mut [f32], [usize; D])) -> Tensor<D> {
    let (device, dims) = (x.device(), x.dims());
    let mut v = crate::backend::read_now(x);
    f(&mut v, dims);
    Tensor::from_data(TensorData::new(v, dims), &device)
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

    /// [..., hidden] → same. burn's op: one fused pass on the CPU (flex), the same composition of
    /// mean/variance ops as before on other backends and under autodiff.
    pub fn forward<const D: usize>(&self, x: Tensor<D>) -> Tensor<D> {
        burn::tensor::module::layer_norm(x, self.gamma.clone(), Some(self.beta.clone()), self.eps)
    }
}
