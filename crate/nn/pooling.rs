//! Pooling hidden states into one vector per text, and scores from logits.

use burn::tensor::activation::softmax;
use burn::tensor::{Tensor, TensorData};

use crate::base::error::{Error, Result};
use crate::base::options::Pooling;

pub fn cls(hidden: Tensor<3>) -> Tensor<2> {
    let [b, _, h] = hidden.dims();
    hidden.slice([0..b, 0..1]).reshape([b, h]) // [b, h]
}

/// [batch, seq, hidden] → [batch, hidden]; `normalize` divides each row by its L2 norm.
pub fn pool(hidden: Tensor<3>, mask: &[u32], pooling: Pooling, normalize: bool) -> Tensor<2> {
    let [b, s, h] = hidden.dims();
    let device = hidden.device();
    let pooled = match pooling {
        Pooling::Cls => cls(hidden),
        Pooling::Mean => {
            let m = Tensor::<2>::from_data(TensorData::new(mask.iter().map(|&v| v as f32).collect::<Vec<_>>(), [b, s]), &device)
                .reshape([b, s, 1]); // [b, s, 1]
            let summed = (hidden * m.clone()).sum_dim(1).reshape([b, h]); // [b, h]
            let count = m.sum_dim(1).reshape([b, 1]).clamp_min(1.0); // [b, 1]
            summed / count
        }
    };
    if normalize {
        let norm = pooled.clone().powi_scalar(2).sum_dim(1).sqrt().clamp_min(1e-12); // [b, 1]
        pooled / norm
    } else {
        pooled
    }
}

/// Each chosen state pooled (and normalised), concatenated: [batch, hidden * layers]. No layers: the last.
pub fn pool_layers(states: &[Tensor<3>], layers: &[usize], mask: &[u32], pooling: Pooling, normalize: bool) -> Result<Tensor<2>> {
    let last = [states.len().saturating_sub(1)];
    let layers = if layers.is_empty() { &last[..] } else { layers };
    let pooled = layers
        .iter()
        .map(|&l| {
            let s = states.get(l).cloned().ok_or_else(|| Error::config("veer_head.layers", format!("layer {l}: the encoder has {} hidden states (0..={})", states.len(), states.len().saturating_sub(1))))?;
            Ok(pool(s, mask, pooling, normalize))
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(Tensor::cat(pooled, 1))
}

/// Scores from logits: softmax for single-label, sigmoid for multi-label.
pub fn scores(logits: Tensor<2>, multi_label: bool) -> Tensor<2> {
    if multi_label { burn::tensor::activation::sigmoid(logits) } else { softmax(logits, 1) }
}
