//! veer: language models in the browser — BERT-family encoders and steerable Llama-family decoders on
//! WebGPU or CPU, from HF-format folders. The same code runs natively (the `veer` CLI) and in wasm.

pub mod backend;
pub mod bert;
pub mod convert;
pub mod encoder;
pub mod error;
pub mod gguf;
pub mod nn;
pub mod tokenizer;
pub mod weights;

#[cfg(target_arch = "wasm32")]
pub mod wasm;

pub use error::{Error, Result};
