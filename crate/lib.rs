//! veer: language models in the browser — BERT-family encoders and steerable Llama-family decoders on
//! WebGPU or CPU, from HF-format folders. The same code runs natively (the `veer` CLI) and in wasm.

pub mod backend;
pub mod bench;
pub mod bert;
pub mod convert;
#[cfg(feature = "cli")]
pub mod distill;
pub mod encoder;
pub mod error;
pub mod files;
pub mod generate;
pub mod gguf;
pub mod icv;
pub mod llama;
pub mod nn;
pub mod options;
pub mod panels;
pub mod quant;
pub mod sample;
pub mod steer;
#[cfg(feature = "cli")]
pub mod steer_eval;
pub mod tokenizer;
pub mod train;
pub mod weights;

#[cfg(target_arch = "wasm32")]
pub mod wasm;

pub use error::{Error, Result};
