//! The KV cache: every layer's keys and values so far, in buffers that grow in place.

use burn::tensor::Tensor;

/// Keys and values of every layer so far, in buffers with room to grow: [batch, kv_heads, capacity,
/// head_dim] each, positions 0..len filled. A step writes its keys and values into the room in place
/// instead of concatenating them onto a copy of the whole cache (46 MB per token at 1000 tokens of
/// SmolLM2); the buffers grow by doubling, up to the model's context.
#[derive(Default)]
pub struct Cache {
    pub(crate) layers: Vec<Option<(Tensor<4>, Tensor<4>)>>,
    pub(crate) len: usize,
    /// Left padding of each row (`forward_rows`): positions a row's queries never see. One entry per
    /// row once the cache holds anything.
    pub(crate) pad: Vec<usize>,
}

impl Cache {
    /// Number of positions already processed.
    pub fn len(&self) -> usize {
        self.len
    }
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
    pub fn clear(&mut self) {
        *self = Cache::default();
    }
    /// Forget every position from `len` on, so a shared prefix can be continued several ways
    /// (scoring each label after one prompt).
    pub fn truncate(&mut self, len: usize) {
        // Positions from `len` on are never read again before a later call overwrites them.
        self.len = self.len.min(len);
    }
}

/// Write `new` ([b, kv, s, dh]) at positions past..past+s of a layer's buffer, growing it first when it
/// has no room (doubling from 16 positions, at most `context`; `run` checked past + s ≤ context).
/// Returns the buffer and a view of its filled part, [b, kv, past+s, dh]. The view shares the buffer and
/// is dropped before the next call, so that the CPU backend writes into the buffer in place (it copies
/// a buffer that something else still holds).
pub(crate) fn append(buffer: Option<Tensor<4>>, new: Tensor<4>, past: usize, context: usize) -> (Tensor<4>, Tensor<4>) {
    let [b, kv, s, dh] = new.dims();
    let t = past + s;
    let capacity = buffer.as_ref().map_or(0, |k| k.dims()[2]);
    let buffer = match buffer {
        Some(k) if t <= capacity => k,
        old => {
            let grown = t.max(2 * capacity).max(16).next_power_of_two().min(context).max(t);
            let fresh = Tensor::<4>::zeros([b, kv, grown, dh], &new.device());
            match old {
                Some(k) if past > 0 => fresh.slice_assign([0..b, 0..kv, 0..past, 0..dh], k.slice([0..b, 0..kv, 0..past, 0..dh])),
                _ => fresh,
            }
        }
    };
    let buffer = buffer.slice_assign([0..b, 0..kv, past..t, 0..dh], new);
    let filled = buffer.clone().slice([0..b, 0..kv, 0..t, 0..dh]);
    (buffer, filled)
}
