//! The one way steering enters the decoder: each block calls `Steer` at its MLP output and its output.

use burn::tensor::Tensor;

/// Where in a block the hook is called.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Site {
    /// The MLP output, before it is added to the residual stream (where ICV acts).
    MlpOut,
    /// The block output, i.e. the residual stream after the block (where control vectors act).
    BlockOut,
}

/// The one way steering enters the decoder. `x`: [batch, seq, hidden].
pub trait Steer {
    fn steer(&self, layer: usize, site: Site, x: Tensor<3>) -> Tensor<3>;
}

/// No steering.
pub struct Plain;

impl Steer for Plain {
    fn steer(&self, _: usize, _: Site, x: Tensor<3>) -> Tensor<3> {
        x
    }
}
