//! A lookup table (token embeddings), which a decoder with tied weights also multiplies as its LM head.

use burn::tensor::{Device, Int, Tensor, TensorData};

use crate::base::options::WeightFormat;
use crate::io::safetensors::Loader;
use crate::kernels::quant::Q8Matrix;
use crate::nn::linear::{int8_matmul, int8_matrix};

pub enum Embedding {
    Dense(Tensor<2>), // [rows, width]
    Int8(Q8Matrix),   // [rows, width], on the host
}

impl Embedding {
    /// `name` [rows, width]: int8 on the CPU when the file stores it quantised (unless `format` asks
    /// for f32) or when `format` asks for int8; f32 on the device otherwise (as `Linear::load_as`).
    pub fn load(w: &Loader, name: &str, rows: usize, width: usize, format: Option<WeightFormat>) -> Self {
        let cpu = crate::base::backend::is_cpu(w.device());
        if cpu && ((w.is_packed(name) && format != Some(WeightFormat::F32)) || format == Some(WeightFormat::Int8)) {
            Embedding::Int8(int8_matrix(w, name, rows, width))
        } else {
            Embedding::Dense(w.tensor(name, [rows, width]))
        }
    }

    /// The rows of `ids` (each checked < rows by the model): [ids.len(), width].
    pub fn rows(&self, ids: &[u32], device: &Device) -> Tensor<2> {
        match self {
            Embedding::Dense(t) => {
                let ids = Tensor::<1, Int>::from_data(TensorData::new(ids.iter().map(|&i| i as i32).collect::<Vec<_>>(), [ids.len()]), device);
                t.clone().select(0, ids)
            }
            Embedding::Int8(m) => {
                let v: Vec<f32> = ids.iter().flat_map(|&i| m.row(i as usize)).collect();
                Tensor::from_data(TensorData::new(v, [ids.len(), m.cols()]), device)
            }
        }
    }

    /// x [n, width] → x · tableᵀ [n, rows] (a tied LM head's logits).
    pub fn logits(&self, x: Tensor<2>) -> Tensor<2> {
        match self {
            Embedding::Dense(t) => x.matmul(t.clone().transpose()),
            Embedding::Int8(m) => int8_matmul(m, x),
        }
    }

    /// What memory holds: "f32" or "int8".
    pub fn held(&self) -> &'static str {
        match self {
            Embedding::Dense(_) => "f32",
            Embedding::Int8(_) => "int8",
        }
    }
}
