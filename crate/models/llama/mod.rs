//! Llama-family decoders (HF `LlamaForCausalLM`; Qwen2/Mistral-shaped configs load too): RMSNorm,
//! rotate-half RoPE, grouped-query attention with a KV cache, SwiGLU MLP, tied or separate lm_head.
//!
//! The layer loop is written out in `forward` because steering acts inside it: every block calls the
//! one `Steer` hook at its MLP output and at its block output.

pub mod block;
pub mod cache;
pub mod config;
pub mod hook;
pub mod rope;
pub mod signature;

use burn::tensor::{Device, Int, Tensor, TensorData};

use crate::base::error::{Error, Result};
use crate::base::limits::ATTENTION_BYTES;
use crate::nn::linear::Linear;
use crate::base::options::{DecoderOptions, WeightFormat};
use crate::nn::embedding::Embedding;
use crate::io::safetensors::Loader;
use crate::models::llama::block::{Block, Step, causal_mask};
use crate::models::llama::cache::Cache;
use crate::models::llama::config::Config;
use crate::models::llama::hook::Steer;
use crate::models::llama::rope::rope_tables;
use crate::models::llama::signature::Signature;
use crate::nn::norm::RmsNorm;

pub struct Llama {
    pub config: Config,
    /// What memory holds: "f32" (always on a GPU, or `weights: 'f32'`), "int8" or "q4" (a q4 file's
    /// layers; its embeddings are int8).
    pub weights: &'static str,
    embed: Embedding, // token embeddings, also the LM head when tied
    blocks: Vec<Block>,
    norm: RmsNorm,
    lm_head: Option<Linear>, // hidden → vocab; None when tied to `embed`
    rope_cos: Tensor<2>,        // [max_positions, head_dim]
    rope_sin: Tensor<2>,        // [max_positions, head_dim]
    device: Device,
    /// A sample of the weights (see `Signature`): what vectors computed with this model record, so
    /// that a vector from another model of the same shape is caught.
    pub signature: Signature,
}

/// What `forward` hands back besides the logits.
pub struct Output {
    /// Logits at the last position: [vocab].
    pub logits: Tensor<1>,
    /// With `capture`: the last-token residual stream after the embeddings and after every block,
    /// [layers + 1, hidden].
    pub residuals: Option<Tensor<2>>,
}

impl Llama {
    pub fn load(config: Config, weights: &[u8], file: &str, device: &Device, options: &DecoderOptions) -> Result<Self> {
        // Int8 is a CPU format (its kernel runs on the host); a GPU keeps f32, which it reads at its
        // own bandwidth. `weights` records what was used.
        let format = if crate::base::backend::is_cpu(device) { options.weights } else { WeightFormat::F32 };
        let w = Loader::new(weights, file, device)?;
        let c = &config;
        let qkv_bias = c.attention_bias.unwrap_or(false) || w.shape("model.layers.0.self_attn.q_proj.bias").is_some();
        let embed = Embedding::load(&w, "model.embed_tokens.weight", c.vocab_size, c.hidden_size, Some(format));
        let blocks: Vec<Block> = (0..c.num_hidden_layers).map(|i| Block::load(&w, i, c, qkv_bias, format)).collect();
        let norm = RmsNorm::load(&w, "model.norm", c.hidden_size, c.rms_norm_eps);
        let has_head = w.shape("lm_head.weight").is_some();
        if c.tie_word_embeddings == Some(false) && !has_head {
            return Err(Error::config("tie_word_embeddings", format!("false, but {file} has no `lm_head.weight`")));
        }
        let tied = c.tie_word_embeddings == Some(true) || !has_head;
        let lm_head = (!tied).then(|| Linear::load_as(&w, "lm_head", c.hidden_size, c.vocab_size, false, Some(format)));
        let weights = blocks.first().map(|b| b.held()).unwrap_or(embed.held());
        let signature = Signature::of(&w);
        w.finish()?;
        let (rope_cos, rope_sin) = rope_tables(c, device);
        Ok(Llama { config, weights, embed, blocks, norm, lm_head, rope_cos, rope_sin, device: device.clone(), signature })
    }

    pub fn device(&self) -> &Device {
        &self.device
    }

    /// Run a prompt of any length after what `cache` holds, `chunk` tokens per forward: the attention
    /// scores of one forward are [heads, chunk, past + chunk] floats, so a prompt of thousands of
    /// tokens needs no more than a chunk's worth at once (in one pass, SmolLM2's 8192-token context
    /// would need 2.4 GB of scores: more than a wasm32 instance can hold beside the weights).
    /// Returns the last forward's output (the logits at the prompt's last position).
    pub fn prefill(&self, ids: &[u32], cache: &mut Cache, steer: &dyn Steer, chunk: usize) -> Result<Output> {
        // Checked for the whole prompt first, so a prompt too long leaves the cache as it was
        // (`forward` checks each chunk only against what is cached by then).
        if cache.len + ids.len() > self.config.context() {
            return Err(Error::Invalid(format!("{} tokens exceed the model's context of {}", cache.len + ids.len(), self.config.context())));
        }
        // One forward's attention scores (and causal mask) are at most heads × chunk × context floats:
        // a config with many heads and a long context gets shorter chunks, so that no forward needs
        // more than the encoder's ATTENTION_BYTES at once (SmolLM2 keeps 512).
        let per_row = (self.config.num_attention_heads as u64).saturating_mul(self.config.context() as u64).saturating_mul(4).max(1);
        let most = (ATTENTION_BYTES as u64 / per_row).max(1) as usize;
        let mut parts = ids.chunks(chunk.clamp(1, most));
        let mut out = self.forward(parts.next().unwrap_or_default(), cache, steer, false)?; // [] is `forward`'s error
        for part in parts {
            out = self.forward(part, cache, steer, false)?;
        }
        Ok(out)
    }

    /// Run `ids` after what `cache` holds; returns the logits at the last position.
    /// `capture` also returns the last-token residual stream of every layer (for computing vectors).
    pub fn forward(&self, ids: &[u32], cache: &mut Cache, steer: &dyn Steer, capture: bool) -> Result<Output> {
        let (logits, residuals) = self.run(ids, 1, ids.len(), &[], cache, steer, capture, false)?;
        Ok(Output { logits: logits.reshape([self.config.vocab_size]), residuals })
    }

    /// Several sequences at once, under one steering (batched evaluation: decoding is bound by reading
    /// the weights, so rows decoded together cost little more than one). The first call on an empty
    /// cache may give rows of different lengths: they are left-padded to the longest, and the padding
    /// is masked for every later call on this cache; later calls give rows of one length (one token
    /// each, when decoding). Returns logits [batch, seq, vocab] at every position with `every_position`
    /// (the padding's are meaningless), else [batch, 1, vocab] at the last.
    pub fn forward_rows(&self, rows: &[&[u32]], cache: &mut Cache, steer: &dyn Steer, every_position: bool) -> Result<Tensor<3>> {
        let b = rows.len();
        let s = rows.iter().map(|r| r.len()).max().unwrap_or(0);
        if b == 0 || rows.iter().any(|r| r.is_empty()) {
            return Err(Error::Invalid("no tokens to run".into()));
        }
        let pad: Vec<usize> = rows.iter().map(|r| s - r.len()).collect();
        // (`run` checks the batch size against the cache.)
        if !cache.is_empty() && pad.iter().any(|&p| p > 0) {
            return Err(Error::Invalid("rows of different lengths after the first call on a cache: continue a batch with one length per row".into()));
        }
        // Padding is token 0 (any id would do: it is masked).
        let ids: Vec<u32> = rows.iter().zip(&pad).flat_map(|(r, &p)| std::iter::repeat_n(0, p).chain(r.iter().copied())).collect();
        Ok(self.run(&ids, b, s, &pad, cache, steer, false, every_position)?.0)
    }

    /// RoPE angles of the new positions: a row's positions count from its first real token. [b, 1, s,
    /// head_dim] with padding, else [1, 1, s, head_dim].
    fn angles(&self, pad: &[usize], padded: bool, past: usize, s: usize) -> (Tensor<4>, Tensor<4>) {
        let (b, dh) = (pad.len(), self.config.head_dim());
        if padded {
            let pos: Vec<i32> = pad.iter().flat_map(|&p| (past..past + s).map(move |t| t.saturating_sub(p) as i32)).collect();
            let pos = Tensor::<1, Int>::from_data(TensorData::new(pos, [b * s]), &self.device);
            let table = |t: &Tensor<2>| t.clone().select(0, pos.clone()).reshape([b, 1, s, dh]);
            (table(&self.rope_cos), table(&self.rope_sin))
        } else {
            let table = |t: &Tensor<2>| t.clone().slice([past..past + s, 0..dh]).unsqueeze::<4>();
            (table(&self.rope_cos), table(&self.rope_sin))
        }
    }

    /// The one forward pass. `ids`: [b * s] row-major; `pad`: each row's left padding on a fresh cache
    /// (empty: none). Returns logits [b, s or 1, vocab] and the captured residuals of row 0.
    #[allow(clippy::too_many_arguments)]
    fn run(&self, ids: &[u32], b: usize, s: usize, pad: &[usize], cache: &mut Cache, steer: &dyn Steer, capture: bool, every_position: bool) -> Result<(Tensor<3>, Option<Tensor<2>>)> {
        let c = &self.config;
        let past = cache.len;
        if s == 0 {
            return Err(Error::Invalid("no tokens to run".into()));
        }
        if past + s > c.context() {
            return Err(Error::Invalid(format!("{} tokens exceed the model's context of {}", past + s, c.context())));
        }
        if let Some(&bad) = ids.iter().find(|&&i| i as usize >= c.vocab_size) {
            return Err(Error::Invalid(format!("token id {bad} is outside the vocabulary ({} ids)", c.vocab_size)));
        }
        let (h, heads, kv, dh) = (c.hidden_size, c.num_attention_heads, c.kv_heads(), c.head_dim());
        let rep = heads / kv; // kv ≥ 1 and heads % kv == 0: checked in `Config::parse`
        cache.layers.resize_with(self.blocks.len(), || None);
        if past == 0 {
            cache.pad = if pad.is_empty() { vec![0; b] } else { pad.to_vec() };
        } else if cache.pad.len() != b {
            // A cache of another batch would fail inside the attention's concatenation.
            return Err(Error::Invalid(format!("{b} rows after a cache of {} rows", cache.pad.len())));
        }
        let padded = cache.pad.iter().any(|&p| p > 0);

        let mut x = self.embed.rows(ids, &self.device).reshape([b, s, h]); // [b, s, h]
        let mut captured = Vec::new();
        let last = |x: &Tensor<3>| x.clone().slice([0..1, s - 1..s]).reshape([1, h]); // [1, h]
        if capture {
            captured.push(last(&x));
        }
        let (cos, sin) = self.angles(&cache.pad, padded, past, s);
        let step = Step { b, s, past, context: c.context(), heads, kv, dh, rep, cos, sin, mask: causal_mask(&cache.pad, padded, past, s, rep, &self.device) };
        for (i, block) in self.blocks.iter().enumerate() {
            x = block.forward(x, &mut cache.layers[i], &step, i, steer);
            if capture {
                captured.push(last(&x));
            }
        }
        cache.len = past + s;
        let (x, n) = if every_position { (x, s) } else { (x.slice([0..b, s - 1..s]), 1) };
        let x = self.norm.forward(x).reshape([b * n, h]); // [b*n, h]
        let logits = match &self.lm_head {
            Some(head) => head.forward2(x),
            None => self.embed.logits(x),
        }; // [b*n, vocab]
        Ok((logits.reshape([b, n, c.vocab_size]), capture.then(|| Tensor::cat(captured, 0))))
    }
}
