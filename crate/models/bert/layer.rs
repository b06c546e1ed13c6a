//! One post-LayerNorm encoder block.

use burn::tensor::Tensor;

use crate::nn::linear::NamedParam;
use crate::nn::norm::LayerNorm;
use crate::nn::linear::Linear;
use crate::nn::ops::softmax_last;
use crate::io::safetensors::Loader;
use crate::models::bert::config::{Config, Names};
use crate::models::bert::packing::Packing;

/// Mirrors HF `BertLayer` / DistilBERT `TransformerBlock`.
pub(crate) struct Layer {
    q: Linear,
    k: Linear,
    v: Linear,
    o: Linear,
    attn_norm: LayerNorm,
    ffn_in: Linear,
    ffn_out: Linear,
    out_norm: LayerNorm,
}

impl Layer {
    pub(crate) fn load(w: &Loader, n: &Names, i: usize, c: &Config) -> Self {
        let p = |part: &str| format!("{}.{i}.{part}", n.layer);
        let (h, f, eps) = (c.hidden_size, c.intermediate_size, c.layer_norm_eps);
        Layer {
            q: Linear::load(w, &p(n.q), h, h, true),
            k: Linear::load(w, &p(n.k), h, h, true),
            v: Linear::load(w, &p(n.v), h, h, true),
            o: Linear::load(w, &p(n.o), h, h, true),
            attn_norm: LayerNorm::load(w, &p(n.attn_norm), h, eps),
            ffn_in: Linear::load(w, &p(n.ffn_in), h, f, true),
            ffn_out: Linear::load(w, &p(n.ffn_out), f, h, true),
            out_norm: LayerNorm::load(w, &p(n.out_norm), h, eps),
        }
    }

    /// What memory holds for the layer's matrices (all loaded alike).
    pub(crate) fn held(&self) -> &'static str {
        self.ffn_in.held()
    }

    /// Parameters as matrices with their HF names (suffixes after `<layer>.<i>.`) and whether HF stores
    /// them transposed (linear weights: veer keeps [in, out], HF [out, in]).
    pub(crate) fn params(&self, n: &Names) -> Vec<NamedParam> {
        let param = |name: String, value: &Tensor<2>, transposed| NamedParam { name, value: value.clone(), transposed };
        let mut out = Vec::new();
        let linears = [(n.q, &self.q), (n.k, &self.k), (n.v, &self.v), (n.o, &self.o), (n.ffn_in, &self.ffn_in), (n.ffn_out, &self.ffn_out)];
        for (name, l) in linears {
            let p = l.params();
            out.push(param(format!("{name}.weight"), &p[0], true));
            out.push(param(format!("{name}.bias"), &p[1], false));
        }
        for (name, norm) in [(n.attn_norm, &self.attn_norm), (n.out_norm, &self.out_norm)] {
            let p = norm.params();
            out.push(param(format!("{name}.weight"), &p[0], false));
            out.push(param(format!("{name}.bias"), &p[1], false));
        }
        out
    }

    /// The inverse of `params` (values only, same order).
    pub(crate) fn from_params(p: &[Tensor<2>], eps: f64) -> Self {
        Layer {
            q: Linear::from_params(&p[0..2]),
            k: Linear::from_params(&p[2..4]),
            v: Linear::from_params(&p[4..6]),
            o: Linear::from_params(&p[6..8]),
            ffn_in: Linear::from_params(&p[8..10]),
            ffn_out: Linear::from_params(&p[10..12]),
            attn_norm: LayerNorm::from_params(&p[12..14], eps),
            out_norm: LayerNorm::from_params(&p[14..16], eps),
        }
    }

    /// x: [tokens, hidden], the batch's tokens without its padding (`Packing`).
    pub(crate) fn forward(&self, x: Tensor<2>, p: &Packing, heads: usize) -> Tensor<2> {
        let [_, h] = x.dims();
        let (b, s) = (p.batch, p.seq);
        let dh = h / heads; // heads ≥ 1 and hidden % heads == 0: checked in `Config::parse`
        // Attention needs the [batch, seq] layout: the projections are spread into it.
        let split = |t: Tensor<2>| p.unpack(t).reshape([b, s, heads, dh]).swap_dims(1, 2); // [b, heads, s, dh]
        let q = split(self.q.forward2(x.clone()));
        let k = split(self.k.forward2(x.clone()));
        let v = split(self.v.forward2(x.clone()));
        let scores = q.matmul(k.swap_dims(2, 3)) / (dh as f64).sqrt() + p.mask_bias.clone(); // [b, heads, s, s]
        let ctx = p.pack(softmax_last(scores).matmul(v).swap_dims(1, 2).reshape([b, s, h])); // [tokens, h]
        let a = self.attn_norm.forward(x + self.o.forward2(ctx));
        let f = self.ffn_out.forward2(self.ffn_in.forward2_gelu(a.clone()));
        self.out_norm.forward(a + f)
    }
}
