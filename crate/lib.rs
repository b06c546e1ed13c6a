//! veer: language models in the browser — BERT-family encoders and steerable Llama-family decoders on
//! WebGPU or CPU, from HF-format folders. The same code runs natively (the `veer` CLI) and in wasm.
//!
//! Each folder is a floor and imports only from the floors listed above it here (tests/layers.rs keeps
//! it so); ARCHITECTURE.md describes each.

pub mod base;
pub mod io;
pub mod kernels;
pub mod nn;
pub mod models;
pub mod steering;
pub mod tasks;
#[cfg(feature = "cli")]
pub mod apps;
#[cfg(target_arch = "wasm32")]
pub mod wasm;

pub use base::error::{Error, Result};
