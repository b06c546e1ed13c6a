//! HF `nn.Linear`, holding its weight the way the device runs it fastest: packing is decided here, the
//! loader hands over host matrices.

use burn::tensor::{Device, Tensor, TensorData};

use crate::base::options::WeightFormat;
use crate::io::safetensors::Loader;
use crate::kernels::panels::{Epilogue, Panels};
use crate::kernels::quant::Q8Matrix;
use crate::nn::ops::panels_on;

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

impl Linear {
    pub fn load(w: &Loader, name: &str, inp: usize, out: usize, bias: bool) -> Self {
        Self::load_as(w, name, inp, out, bias, WeightFormat::F32)
    }

    pub fn load_as(w: &Loader, name: &str, inp: usize, out: usize, bias: bool, format: WeightFormat) -> Self {
        let name_w = format!("{name}.weight");
        let bias = bias.then(|| w.tensor::<1>(&format!("{name}.bias"), [out]));
        let weight = match format {
            WeightFormat::F32 if panels_on(w.device()) => {
                let b = bias.clone().map(crate::base::backend::read_now).filter(|b| b.len() == out);
                Weight::Panels(match w.host_matrix(&name_w, out, inp) {
                    Some(v) => Panels::new(&v, out, inp, b.as_deref()),
                    None => Panels::new(&[0.0], 1, 1, None), // the loader has recorded the problem
                })
            }
            WeightFormat::F32 => Weight::Dense(w.linear_t(&name_w, out, inp)),
            WeightFormat::Int8 => Weight::Int8(int8_matrix(w, &name_w, out, inp), w.device().clone()),
        };
        Linear { weight, bias }
    }

    /// Parameters as matrices for training: weight [in, out], bias [1, out].
    pub fn params(&self) -> Vec<Tensor<2>> {
        let weight = match &self.weight {
            Weight::Dense(t) => t.clone(),
            // Never trained (heads and LoRA are f32 tensors); unpacked so that the method stays total.
            Weight::Panels(m) => {
                Tensor::from_data(TensorData::new(m.unpacked_t().0, [m.inp(), m.out()]), &crate::base::backend::cpu().device) // panels are CPU-only
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
                let y = m.forward(&crate::base::backend::read_now(x), n, epilogue);
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
    let data = crate::base::backend::read_now(x);
    Tensor::from_data(TensorData::new(m.matmul_t(&data, n), [n, m.rows()]), &device)
}

/// An HF weight stored [out, in] (or an embedding table [rows, width]) as int8 groups in its stored
/// layout; on a problem (recorded by the loader) a 1×1 placeholder, so loading goes on and reports all.
pub fn int8_matrix(w: &Loader, name: &str, out: usize, inp: usize) -> Q8Matrix {
    match w.host_matrix(name, out, inp) {
        Some(v) => Q8Matrix::from_f32(&v, out, inp),
        None => Q8Matrix::from_f32(&[0.0], 1, 1),
    }
}

/// A parameter as fine-tuning and the head file see it: its HF name, its value as a matrix (veer's
/// layout: linear weights [in, out]), and whether HF stores it transposed ([out, in]).
#[derive(Clone)]
pub struct NamedParam {
    pub name: String,
    pub value: Tensor<2>,
    pub transposed: bool,
}
