//! Floor 3: the few layers veer's models share, written over plain tensors so the layer loops stay
//! explicit (steering hooks and per-layer hidden states need them).

pub mod embedding;
pub mod linear;
pub mod norm;
pub mod ops;
pub mod pooling;
