//! Floor 2: the CPU kernels burn's backend lacks or runs slowly in wasm: packed f32 matmul panels,
//! SIMD exp/erf/GELU/softmax/SiLU, and int8 weights. Plain slices in and out, no tensors.

pub mod panels;
pub mod quant;
pub mod quant4;
pub mod simd_math;
