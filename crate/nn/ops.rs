//! Element-wise and row-wise operations the models share: on the browser's CPU device by veer's SIMD128
//! kernels (burn's call libm's scalar `expf` per value there), elsewhere by burn's.

use burn::tensor::activation::{gelu, relu, tanh};
use burn::tensor::{Device, Tensor, TensorData};

use crate::base::options::Activation;

/// Whether f32 work on `device` goes to veer's kernels: the CPU device in wasm SIMD128, where gemm's
/// kernel spills in V8 (`panels`). Natively gemm has AVX2/FMA and threads, and stays.
pub fn panels_on(device: &Device) -> bool {
    cfg!(all(target_arch = "wasm32", target_feature = "simd128")) && crate::base::backend::is_cpu(device)
}

/// A head's activation on [rows, units].
pub fn activate(act: Activation, x: Tensor<2>) -> Tensor<2> {
    match act {
        Activation::Relu => relu(x),
        Activation::Gelu => gelu(x),
        Activation::Tanh => tanh(x),
    }
}

/// Softmax over the last axis. On the browser's CPU device by veer's SIMD128 kernel
/// (`simd_math::softmax_rows`), since burn's calls libm's scalar `expf` for every score; elsewhere burn's.
pub fn softmax_last<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    if !panels_on(&x.device()) {
        return burn::tensor::activation::softmax(x, D - 1);
    }
    on_host(x, |v, dims| crate::kernels::simd_math::softmax_rows(v, dims[D - 1], false))
}

/// silu(gate) · up, element-wise (Llama's MLP). On the browser's CPU device by veer's SIMD128 kernel
/// (`simd_math::silu_mul`), since burn's SiLU calls libm's scalar `expf`; elsewhere burn's.
pub fn silu_mul<const D: usize>(gate: Tensor<D>, up: Tensor<D>) -> Tensor<D> {
    if !panels_on(&gate.device()) {
        return burn::tensor::activation::silu(gate) * up;
    }
    let up = crate::base::backend::read_now(up);
    on_host(gate, |g, _| crate::kernels::simd_math::silu_mul(g, &up, false))
}

/// `f` over a CPU tensor's values in place on the host (a copy each way, small against the work),
/// the result on the tensor's device with the same shape.
fn on_host<const D: usize>(x: Tensor<D>, f: impl FnOnce(&mut [f32], [usize; D])) -> Tensor<D> {
    let (device, dims) = (x.device(), x.dims());
    let mut v = crate::base::backend::read_now(x);
    f(&mut v, dims);
    Tensor::from_data(TensorData::new(v, dims), &device)
}

