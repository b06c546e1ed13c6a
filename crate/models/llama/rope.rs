//! Rotate-half RoPE: the cos/sin tables and their application.

use burn::tensor::{Device, Tensor, TensorData};

use crate::models::llama::config::Config;

/// cos/sin tables for rotate-half RoPE: [max_positions, head_dim], frequencies repeated twice.
pub(crate) fn rope_tables(c: &Config, device: &Device) -> (Tensor<2>, Tensor<2>) {
    let (dh, n) = (c.head_dim(), c.context());
    let inv: Vec<f64> = (0..dh / 2).map(|i| 1.0 / c.rope_theta.powf(2.0 * i as f64 / dh as f64)).collect();
    let (mut cos, mut sin) = (Vec::with_capacity(n * dh), Vec::with_capacity(n * dh));
    for p in 0..n {
        for _ in 0..2 {
            for f in &inv {
                let angle = p as f64 * f;
                cos.push(angle.cos() as f32);
                sin.push(angle.sin() as f32);
            }
        }
    }
    (Tensor::from_data(TensorData::new(cos, [n, dh]), device), Tensor::from_data(TensorData::new(sin, [n, dh]), device))
}

/// x * cos + rotate_half(x) * sin, with rotate_half([a, b]) = [-b, a]. x: [b, heads, s, dh]; cos/sin
/// [b or 1, 1, s, dh].
pub(crate) fn rope(x: Tensor<4>, cos: &Tensor<4>, sin: &Tensor<4>) -> Tensor<4> {
    let [b, n, s, dh] = x.dims();
    let half = dh / 2;
    let x1 = x.clone().slice([0..b, 0..n, 0..s, 0..half]);
    let x2 = x.clone().slice([0..b, 0..n, 0..s, half..dh]);
    let rotated = Tensor::cat(vec![x2.neg(), x1], 3);
    x * cos.clone() + rotated * sin.clone()
}
