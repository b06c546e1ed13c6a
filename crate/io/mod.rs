//! Floor 1: bytes in and out. safetensors and GGUF files, the GGUF → HF conversion, tokenizer.json, and
//! a model folder's files. Knows dtypes and shapes, not kernels or models.

pub mod convert;
pub mod files;
pub mod floats;
pub mod gguf;
pub mod quantise;
pub mod quantised;
pub mod safetensors;
pub mod tokenizer;
