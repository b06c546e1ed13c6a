//! HF `nn.Linear`, holding its weight the way the device runs it fastest: packing is decided here, the
//! loader hands over host matrices.

use burn::tensor::{Device, Tensor, TensorData};

use crate::base::options::WeightFormat;
use crate::io::safetensors::Loader;
use crate::kernels::panels::{Epilogue, Panels};
use crate::io::quantised::Packed;
use crate::kernels::quant::Q8Matrix;
use crate::kernels::quant4::Q4Matrix;
use crate::nn::ops::panels_on;

/// HF `nn.Linear`: the weight as an f32 tensor on the device, kept transposed as [in, out]; or, on the
/// CPU device in the browser, as f32 panels on the host for veer's own kernel (`panels`); or, on the
/// CPU, as int8 groups (`quant`: a q8 file, or the decoder's `WeightFormat::Int8`) or 4-bit groups
/// (`quant4`: a q4 file) on the host.
pub struct Linear {
    weight: Weight,
    bias: Option<Tensor<1>>, // [out]; for `Panels` also inside the panels, where the kernel adds it
    host_bias: Option<Vec<f32>>, // [out] on the host, for the quantised weights (added with the epilogue)
}

enum Weight {
    Dense(Tensor<2>),       // [in, out]
    Panels(Panels),         // [ceil(out / 8), in, 8] on the host, bias inside
    Int8(Q8Matrix, Device), // [out, in]
    Q4(Q4Matrix, Device),   // [out, in]
}

impl Linear {
    /// The weight as the file has it: quantised matrices stay quantised on the CPU (dequantised on a
    /// GPU), float ones are f32.
    pub fn load(w: &Loader, name: &str, inp: usize, out: usize, bias: bool) -> Self {
        Self::load_as(w, name, inp, out, bias, None)
    }

    /// `format`: `None` as `load`; `Some(F32)` f32 whatever the file holds; `Some(Int8)` quantised on
    /// the CPU (a float file's weights quantised to int8 here, a q8 or q4 file's kept as they are).
    pub fn load_as(w: &Loader, name: &str, inp: usize, out: usize, bias: bool, format: Option<WeightFormat>) -> Self {
        let name_w = format!("{name}.weight");
        let bias = bias.then(|| w.tensor::<1>(&format!("{name}.bias"), [out]));
        let cpu = crate::base::backend::is_cpu(w.device());
        let weight = if cpu && w.is_packed(&name_w) && format != Some(WeightFormat::F32) {
            match w.packed(&name_w, out, inp) {
                Some(Packed::Q4 { q, scales, mins }) => Weight::Q4(Q4Matrix::from_packed(q, &scales, &mins, out, inp), w.device().clone()),
                Some(Packed::Q8 { q, scales, group }) => Weight::Int8(Q8Matrix::from_packed(q, &scales, group, out, inp), w.device().clone()),
                None => Weight::Int8(Q8Matrix::from_f32(&[0.0], 1, 1), w.device().clone()), // the loader has recorded the problem
            }
        } else if cpu && format == Some(WeightFormat::Int8) {
            Weight::Int8(int8_matrix(w, &name_w, out, inp), w.device().clone())
        } else if panels_on(w.device()) {
            let b = bias.clone().map(crate::base::backend::read_now).filter(|b| b.len() == out);
            Weight::Panels(match w.host_matrix(&name_w, out, inp) {
                Some(v) => Panels::new(&v, out, inp, b.as_deref()),
                None => Panels::new(&[0.0], 1, 1, None), // the loader has recorded the problem
            })
        } else {
            Weight::Dense(w.linear_t(&name_w, out, inp))
        };
        let quantised = matches!(weight, Weight::Int8(..) | Weight::Q4(..));
        let host_bias = bias.clone().filter(|_| quantised).map(crate::base::backend::read_now).filter(|b| b.len() == out);
        Linear { weight, bias, host_bias }
    }

    /// What memory holds: "f32", "int8" or "q4".
    pub fn held(&self) -> &'static str {
        match &self.weight {
            Weight::Dense(_) | Weight::Panels(_) => "f32",
            Weight::Int8(..) => "int8",
            Weight::Q4(..) => "q4",
        }
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
            Weight::Q4(m, device) => Tensor::from_data(TensorData::new(m.dequantised_t(), [m.cols(), m.rows()]), device),
        };
        let mut p = vec![weight];
        if let Some(b) = &self.bias {
            p.push(b.clone().unsqueeze::<2>());
        }
        p
    }

    /// The inverse of `params`.
    pub fn from_params(p: &[Tensor<2>]) -> Self {
        Linear { weight: Weight::Dense(p[0].clone()), bias: p.get(1).map(|b| b.clone().flatten(0, 1)), host_bias: None }
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
            Weight::Int8(m, _) => return self.on_host(x, epilogue, m.rows(), |x, n| m.matmul_t(x, n)),
            Weight::Q4(m, _) => return self.on_host(x, epilogue, m.rows(), |x, n| m.matmul_t(x, n)),
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

impl Linear {
    /// A quantised product on the host, as the panels do it: the product, then the bias and the
    /// epilogue on the rows while they are in cache, one tensor back (not three burn passes over it).
    fn on_host(&self, x: Tensor<2>, epilogue: Epilogue, out: usize, product: impl Fn(&[f32], usize) -> Vec<f32>) -> Tensor<2> {
        let device = x.device();
        let [n, _] = x.dims();
        let mut y = product(&crate::base::backend::read_now(x), n); // [n, out]
        if let Some(b) = &self.host_bias {
            y.chunks_exact_mut(out.max(1)).for_each(|row| row.iter_mut().zip(b).for_each(|(v, b)| *v += b));
        }
        if epilogue == Epilogue::Gelu {
            crate::kernels::simd_math::gelu_in_place(&mut y, false);
        }
        Tensor::from_data(TensorData::new(y, [n, out]), &device)
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
/// layout: a q8 file's values as they are, anything else quantised here; on a problem (recorded by the
/// loader) a 1×1 placeholder, so loading goes on and reports all.
pub fn int8_matrix(w: &Loader, name: &str, out: usize, inp: usize) -> Q8Matrix {
    if w.is_packed(name) {
        if let Some(Packed::Q8 { q, scales, group }) = w.packed(name, out, inp) {
            return Q8Matrix::from_packed(q, &scales, group, out, inp);
        }
    }
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
