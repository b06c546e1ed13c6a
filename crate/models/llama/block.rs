//! One decoder layer (HF `LlamaDecoderLayer`) and what the layers of one forward pass share.

use burn::tensor::{Device, Tensor, TensorData};

use crate::nn::linear::Linear;
use crate::base::options::WeightFormat;
use crate::io::safetensors::Loader;
use crate::models::llama::config::Config;
use crate::models::llama::hook::{Site, Steer};
use crate::models::llama::rope::rope;
use crate::models::llama::cache::append;
use crate::nn::norm::RmsNorm;

/// Mirrors HF `LlamaDecoderLayer`.
pub(crate) struct Block {
    pub(crate) input_norm: RmsNorm,
    pub(crate) q: Linear,
    pub(crate) k: Linear,
    pub(crate) v: Linear,
    pub(crate) o: Linear,
    pub(crate) post_norm: RmsNorm,
    pub(crate) gate: Linear,
    pub(crate) up: Linear,
    pub(crate) down: Linear,
}

/// What every block of one forward pass shares: the batch's shape, the RoPE angles of its positions
/// and its attention mask.
pub(crate) struct Step {
    pub(crate) b: usize,
    pub(crate) s: usize,
    pub(crate) past: usize,
    pub(crate) context: usize,
    pub(crate) heads: usize,
    pub(crate) kv: usize,
    pub(crate) dh: usize,
    /// Query heads per KV head.
    pub(crate) rep: usize,
    pub(crate) cos: Tensor<4>,
    pub(crate) sin: Tensor<4>,
    pub(crate) mask: Option<Tensor<4>>, // [b or 1, 1, rep * s, past + s]
}

/// Causal mask for the new positions against all positions, repeated for the query heads that share a
/// KV head: [b or 1, 1, rep * s, past + s]. One new token of an unpadded batch sees everything: no
/// mask. Padding keys get −1e9, not −∞, so that a padding query (which sees only padding) has a finite
/// softmax; exp(−1e9) is exactly 0 for the real queries.
pub(crate) fn causal_mask(pad: &[usize], padded: bool, past: usize, s: usize, rep: usize, device: &Device) -> Option<Tensor<4>> {
    (s > 1 || padded).then(|| {
        let t = past + s;
        let rows = if padded { pad.len() } else { 1 };
        let m: Vec<f32> = (0..rows)
            .flat_map(|r| {
                let p = pad.get(r).copied().unwrap_or(0);
                (0..rep).flat_map(move |_| (0..s).flat_map(move |i| (0..t).map(move |j| if j > past + i { f32::NEG_INFINITY } else if j < p { -1e9 } else { 0.0 })))
            })
            .collect();
        Tensor::<1>::from_data(TensorData::new(m, [rows * rep * s * t]), device).reshape([rows, 1, rep * s, t])
    })
}

impl Block {
    /// One decoder layer on x [b, s, h], its keys and values appended to `slot`; block `i` for `steer`.
    pub(crate) fn forward(&self, x: Tensor<3>, slot: &mut Option<(Tensor<4>, Tensor<4>)>, st: &Step, i: usize, steer: &dyn Steer) -> Tensor<3> {
        let Step { b, s, past, heads, kv, dh, rep, .. } = *st;
        let a = self.input_norm.forward(x.clone());
        let q = rope(self.q.forward3(a.clone()).reshape([b, s, heads, dh]).swap_dims(1, 2), &st.cos, &st.sin); // [b, heads, s, dh]
        let k = rope(self.k.forward3(a.clone()).reshape([b, s, kv, dh]).swap_dims(1, 2), &st.cos, &st.sin); // [b, kv, s, dh]
        let v = self.v.forward3(a).reshape([b, s, kv, dh]).swap_dims(1, 2); // [b, kv, s, dh]
        // The cache was filled by this model (`Generation::resume` keeps only a cache of the same
        // model's signature) and this batch (`forward_rows` checks), so its shapes match but for the
        // sequence axis.
        let (pk, pv) = slot.take().unzip();
        let (kb, k) = append(pk, k, past, st.context); // k: [b, kv, past+s, dh]
        let (vb, v) = append(pv, v, past, st.context); // v: [b, kv, past+s, dh]
        *slot = Some((kb, vb));
        // Query heads grouped by the KV head they read: no copy of K/V per query head.
        let qg = q.reshape([b, kv, rep * s, dh]); // [b, kv, rep*s, dh]
        let mut scores = qg.matmul(k.swap_dims(2, 3)) / (dh as f64).sqrt(); // [b, kv, rep*s, t]
        if let Some(m) = &st.mask {
            scores = scores + m.clone();
        }
        let attn = crate::nn::ops::softmax_last(scores).matmul(v).reshape([b, heads, s, dh]).swap_dims(1, 2).reshape([b, s, heads * dh]);
        let x = x + self.o.forward3(attn);
        let m = self.post_norm.forward(x.clone());
        let m = self.down.forward3(crate::nn::ops::silu_mul(self.gate.forward3(m.clone()), self.up.forward3(m))); // [b, s, h]
        let x = x + steer.steer(i, Site::MlpOut, m);
        steer.steer(i, Site::BlockOut, x)
    }

    /// What memory holds for the block's matrices (they are all loaded alike).
    pub(crate) fn held(&self) -> &'static str {
        self.down.held()
    }

    pub(crate) fn load(w: &Loader, i: usize, c: &Config, qkv_bias: bool, format: WeightFormat) -> Self {
        let p = |part: &str| format!("model.layers.{i}.{part}");
        let linear = |name: &str, inp, out, bias| Linear::load_as(w, name, inp, out, bias, Some(format));
        let (h, f, dh) = (c.hidden_size, c.intermediate_size, c.head_dim());
        let (q_out, kv_out) = (c.num_attention_heads * dh, c.kv_heads() * dh);
        Block {
            input_norm: RmsNorm::load(w, &p("input_layernorm"), h, c.rms_norm_eps),
            q: linear(&p("self_attn.q_proj"), h, q_out, qkv_bias),
            k: linear(&p("self_attn.k_proj"), h, kv_out, qkv_bias),
            v: linear(&p("self_attn.v_proj"), h, kv_out, qkv_bias),
            o: linear(&p("self_attn.o_proj"), q_out, h, c.attention_bias.unwrap_or(false)),
            post_norm: RmsNorm::load(w, &p("post_attention_layernorm"), h, c.rms_norm_eps),
            gate: linear(&p("mlp.gate_proj"), h, f, c.mlp_bias),
            up: linear(&p("mlp.up_proj"), h, f, c.mlp_bias),
            down: linear(&p("mlp.down_proj"), f, h, c.mlp_bias),
        }
    }
}
