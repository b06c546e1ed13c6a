//! The batch's real tokens, packed: the layers compute on [tokens, hidden], attention on [batch, seq].

use burn::tensor::{Device, Int, Tensor, TensorData};

/// A padded batch ([batch, seq] with a mask) and where its tokens are. The layers compute on the
/// tokens only, [tokens, hidden]: their linear layers, norms and GELU are nearly all of a forward,
/// and padding was a third of the rows of a batch of 8 short texts (the bench's 12–27-token reviews:
/// 71 % of the padded rows are tokens; 54 % at batch 32). Attention, which needs the [batch, seq]
/// layout, gets the projections spread back into it; the padded keys are masked there, as before.
pub struct Packing {
    pub(crate) batch: usize,
    pub(crate) seq: usize,
    /// [tokens]: each token's row in the padded [batch * seq]. None: nothing is padded.
    pub(crate) tokens: Option<Tensor<1, Int>>,
    /// [batch * seq]: the token row each padded position reads. A pad reads its own text's first token:
    /// its key is masked and its output dropped, but 0 × its value is still computed, so it must come
    /// from the same text (a NaN in one text's states then stays in that text, as with padding).
    pub(crate) rows: Option<Tensor<1, Int>>,
    pub(crate) mask_bias: Tensor<4>, // [batch, 1, 1, seq]: 0 at tokens, -1e9 at padding
}

impl Packing {
    /// `mask`: [batch, seq] row-major, nonzero at tokens. At least one token (checked by callers).
    pub fn new(mask: &[u32], batch: usize, device: &Device) -> Self {
        let seq = mask.len() / batch.max(1);
        let mask_bias = mask_bias(mask, batch, device);
        if mask.iter().all(|&m| m != 0) {
            return Packing { batch, seq, tokens: None, rows: None, mask_bias };
        }
        let tokens: Vec<i32> = (0..mask.len()).filter(|&i| mask[i] != 0).map(|i| i as i32).collect();
        let mut rows = vec![0i32; mask.len()];
        let mut next = 0;
        for text in 0..batch {
            let span = text * seq..(text + 1) * seq;
            let first = next; // this text's first token row (a text without tokens, which the tokenizer never makes, reads a neighbour's)
            for i in span {
                rows[i] = if mask[i] != 0 { next } else { first.min(tokens.len().saturating_sub(1) as i32) };
                next += (mask[i] != 0) as i32;
            }
        }
        let index = |v: Vec<i32>| {
            let n = v.len();
            Tensor::<1, Int>::from_data(TensorData::new(v, [n]), device)
        };
        Packing { batch, seq, tokens: Some(index(tokens)), rows: Some(index(rows)), mask_bias }
    }

    /// [batch, seq, hidden] → [tokens, hidden]
    pub fn pack(&self, x: Tensor<3>) -> Tensor<2> {
        let x = x.flatten(0, 1);
        match &self.tokens {
            Some(t) => x.select(0, t.clone()),
            None => x,
        }
    }

    /// [tokens, hidden] → [batch, seq, hidden]; padded positions hold a copy of a token's row.
    pub fn unpack(&self, x: Tensor<2>) -> Tensor<3> {
        let [_, h] = x.dims();
        let x = match &self.rows {
            Some(r) => x.select(0, r.clone()),
            None => x,
        };
        x.reshape([self.batch, self.seq, h])
    }
}

/// [batch, 1, 1, seq] additive attention mask: 0 at real tokens, -1e9 at padding.
pub fn mask_bias(mask: &[u32], batch: usize, device: &Device) -> Tensor<4> {
    let seq = mask.len() / batch.max(1);
    let pad = Tensor::<2, Int>::from_data(TensorData::new(mask.iter().map(|&m| m as i32).collect::<Vec<_>>(), [batch, seq]), device).equal_elem(0);
    Tensor::<2>::zeros([batch, seq], device).mask_fill(pad, -1e9).reshape([batch, 1, 1, seq])
}
