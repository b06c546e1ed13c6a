//! Classifier heads on frozen sentence embeddings: the one trainer behind `veer distill` and the
//! browser's `trainClassifier`, and the `head.safetensors` file they both write.
//!
//! Soft-target cross-entropy (optionally class-weighted), AdamW, mini-batches, early stopping on a
//! held-out split (best epoch kept). Training runs on the host in plain f32 loops with the gradients
//! written out (`HostHead`): a head is at most two affine layers, its backward pass five small matrix
//! products, its features are on the host already; the wasm module then needs no autodiff backend
//! (which would wrap every tensor operation of every backend in the build), and the browser and the
//! CLI get the same bits. `tests` check the gradients against burn's autodiff natively. The tensor
//! `Head` serves prediction, export and `veer distill`'s fine-tuning.

pub mod file;
pub mod host;
pub mod tensor;
pub mod trainer;
