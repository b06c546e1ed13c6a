//! Llama-family decoders (HF `LlamaForCausalLM`; Qwen2/Mistral-shaped configs load too): RMSNorm,
//! rotate-half RoPE, grouped-query attention with a KV cache, SwiGLU MLP, tied or separate lm_head.
//!
//! The layer loop is written out in `forward` because steering acts inside it: every block calls the
//! one `Steer` hook at its MLP output and at its block output.

use burn::tensor::{Device, Int, Tensor, TensorData};
use serde::Deserialize;

use crate::base::error::{Error, Result, check_positive, check_size};
use crate::base::limits::{ATTENTION_BYTES, MAX_CONTEXT, MAX_HIDDEN, MAX_LAYERS};
use crate::nn::linear::Linear;
use crate::base::options::{DecoderOptions, WeightFormat};
use crate::kernels::quant::Q8Matrix;
use crate::io::safetensors::Loader;

// --- config ------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Deserialize)]
pub struct Config {
    pub model_type: String,
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    #[serde(default)]
    pub num_key_value_heads: Option<usize>,
    #[serde(default)]
    pub head_dim: Option<usize>,
    #[serde(default = "default_eps")]
    pub rms_norm_eps: f64,
    #[serde(default = "default_theta")]
    pub rope_theta: f64,
    #[serde(default)]
    pub rope_scaling: Option<serde_json::Value>,
    /// Absent: tied when the file has no `lm_head.weight`. `false` requires `lm_head.weight`.
    #[serde(default)]
    pub tie_word_embeddings: Option<bool>,
    #[serde(default = "default_positions")]
    pub max_position_embeddings: usize,
    #[serde(default)]
    pub attention_bias: Option<bool>,
    #[serde(default)]
    pub mlp_bias: bool,
    #[serde(default)]
    pub hidden_act: Option<String>,
    #[serde(default)]
    pub bos_token_id: Option<u32>,
    /// One id or a list (Llama 3 style).
    #[serde(default)]
    pub eos_token_id: Option<serde_json::Value>,
}


fn default_eps() -> f64 {
    1e-6
}
fn default_theta() -> f64 {
    10000.0
}
fn default_positions() -> usize {
    2048
}

impl Config {
    pub fn parse(bytes: &[u8], file: &str) -> Result<Self> {
        crate::base::error::reject_html(bytes, file, "config.json")?;
        let c: Config = serde_json::from_slice(bytes).map_err(|e| Error::file(file, format!("not a decoder config: {e}")))?;
        if !["llama", "mistral", "qwen2"].contains(&c.model_type.as_str()) {
            return Err(Error::config("model_type", format!("`{}`: the decoder runtime loads llama, mistral and qwen2", c.model_type)));
        }
        if let Some(s) = c.rope_scaling.as_ref().filter(|s| !s.is_null()) {
            return Err(Error::config("rope_scaling", format!("{s} is not supported yet (only plain RoPE)")));
        }
        if let Some(act) = c.hidden_act.as_deref().filter(|a| *a != "silu") {
            return Err(Error::config("hidden_act", format!("`{act}`: only `silu` (SwiGLU) is supported")));
        }
        for (field, value, max) in [
            ("vocab_size", c.vocab_size, 1 << 22),
            ("hidden_size", c.hidden_size, MAX_HIDDEN),
            ("intermediate_size", c.intermediate_size, 1 << 17),
            ("num_hidden_layers", c.num_hidden_layers, MAX_LAYERS),
            ("num_attention_heads", c.num_attention_heads, 1024),
            ("num_key_value_heads", c.kv_heads(), 1024),
            ("head_dim", c.head_dim(), 1024),
            ("max_position_embeddings", c.max_position_embeddings, 1 << 24),
        ] {
            check_size(field, value, max)?;
        }
        check_positive("rms_norm_eps", c.rms_norm_eps)?;
        check_positive("rope_theta", c.rope_theta)?;
        if let Some(&bad) = c.eos_ids().iter().find(|&&id| id as usize >= c.vocab_size) {
            return Err(Error::config("eos_token_id", format!("{bad} is outside the vocabulary ({} ids)", c.vocab_size)));
        }
        let heads = c.num_attention_heads;
        if heads % c.kv_heads() != 0 {
            return Err(Error::config("num_key_value_heads", format!("{} does not divide num_attention_heads {heads}", c.kv_heads())));
        }
        if c.head_dim() % 2 != 0 {
            return Err(Error::config("head_dim", format!("{} is odd; rotary embeddings need an even head size", c.head_dim())));
        }
        Ok(c)
    }

    /// Positions veer runs: `max_position_embeddings`, capped at `MAX_CONTEXT` (the RoPE tables are
    /// precomputed for every position, and a browser tab could not hold the KV cache of more).
    pub fn context(&self) -> usize {
        self.max_position_embeddings.min(MAX_CONTEXT)
    }

    pub fn kv_heads(&self) -> usize {
        self.num_key_value_heads.unwrap_or(self.num_attention_heads)
    }

    pub fn head_dim(&self) -> usize {
        self.head_dim.unwrap_or(self.hidden_size / self.num_attention_heads.max(1))
    }

    /// End-of-sequence ids from config.json.
    pub fn eos_ids(&self) -> Vec<u32> {
        match &self.eos_token_id {
            Some(serde_json::Value::Number(n)) => n.as_u64().map(|v| vec![v as u32]).unwrap_or_default(),
            Some(serde_json::Value::Array(a)) => a.iter().filter_map(|v| v.as_u64()).map(|v| v as u32).collect(),
            _ => Vec::new(),
        }
    }
}

// --- steering hook -----------------------------------------------------------------------------------

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

// --- blocks ------------------------------------------------------------------------------------------

struct RmsNorm {
    weight: Tensor<1>, // [hidden]
    eps: f64,
}

impl RmsNorm {
    fn load(w: &Loader, name: &str, hidden: usize, eps: f64) -> Self {
        RmsNorm { weight: w.tensor(&format!("{name}.weight"), [hidden]), eps }
    }

    /// [batch, seq, hidden] → same
    fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        let rms = (x.clone().powi_scalar(2).mean_dim(2) + self.eps).sqrt(); // [b, s, 1]
        x / rms * self.weight.clone().unsqueeze::<3>()
    }
}

/// Mirrors HF `LlamaDecoderLayer`.
struct Block {
    input_norm: RmsNorm,
    q: Linear,
    k: Linear,
    v: Linear,
    o: Linear,
    post_norm: RmsNorm,
    gate: Linear,
    up: Linear,
    down: Linear,
}

impl Block {
    fn load(w: &Loader, i: usize, c: &Config, qkv_bias: bool, format: WeightFormat) -> Self {
        let p = |part: &str| format!("model.layers.{i}.{part}");
        let linear = |name: &str, inp, out, bias| Linear::load_as(w, name, inp, out, bias, format);
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

/// Keys and values of every layer so far, in buffers with room to grow: [batch, kv_heads, capacity,
/// head_dim] each, positions 0..len filled. A step writes its keys and values into the room in place
/// instead of concatenating them onto a copy of the whole cache (46 MB per token at 1000 tokens of
/// SmolLM2); the buffers grow by doubling, up to the model's context.
#[derive(Default)]
pub struct Cache {
    layers: Vec<Option<(Tensor<4>, Tensor<4>)>>,
    len: usize,
    /// Left padding of each row (`forward_rows`): positions a row's queries never see. One entry per
    /// row once the cache holds anything.
    pad: Vec<usize>,
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
fn append(buffer: Option<Tensor<4>>, new: Tensor<4>, past: usize, context: usize) -> (Tensor<4>, Tensor<4>) {
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

// --- model -------------------------------------------------------------------------------------------

pub struct Llama {
    pub config: Config,
    /// How the weights are held: `DecoderOptions::weights` on the CPU, always f32 on a GPU.
    pub weights: WeightFormat,
    embed: Embedding,
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

/// The token embeddings, which also give the logits when the head is tied to them.
enum Embedding {
    Dense(Tensor<2>),  // [vocab, hidden]
    Int8(Q8Matrix),    // [vocab, hidden]
}

impl Embedding {
    /// The rows of `ids` (checked < vocab by `run`): [ids.len(), hidden].
    fn rows(&self, ids: &[u32], device: &Device) -> Tensor<2> {
        match self {
            Embedding::Dense(t) => {
                let ids = Tensor::<1, Int>::from_data(TensorData::new(ids.iter().map(|&i| i as i32).collect::<Vec<_>>(), [ids.len()]), device);
                t.clone().select(0, ids)
            }
            Embedding::Int8(m) => {
                let v: Vec<f32> = ids.iter().flat_map(|&i| m.row(i as usize)).collect();
                Tensor::from_data(TensorData::new(v, [ids.len(), m.cols()]), device)
            }
        }
    }

    /// x [rows, hidden] → logits [rows, vocab].
    fn logits(&self, x: Tensor<2>) -> Tensor<2> {
        match self {
            Embedding::Dense(t) => x.matmul(t.clone().transpose()),
            Embedding::Int8(m) => crate::nn::linear::int8_matmul(m, x),
        }
    }
}

/// A model's identity as far as steering vectors care: 48 evenly spaced values of the token embeddings
/// and 16 of the final norm, as f32. Two copies of one model agree within the rounding of their storage
/// type (F32, F16 and BF16 files of the same weights match); independently trained models of the same
/// shape do not. A fine-tune that barely moves these weights counts as the same model. Folder names
/// and URLs cannot serve: the same model is served from many places under many names.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Signature(pub Vec<f32>);

impl Signature {
    fn of(w: &Loader) -> Self {
        Signature([w.sample("model.embed_tokens.weight", 48), w.sample("model.norm.weight", 16)].concat())
    }

    /// Same model: as many values, each within 1 % (BF16 keeps 8 significant bits, 0.4 %).
    pub fn matches(&self, other: &Signature) -> bool {
        self.0.len() == other.0.len() && self.0.iter().zip(&other.0).all(|(a, b)| (a - b).abs() <= 0.01 * a.abs().max(b.abs()) + 1e-6)
    }

    /// As vector files store it: the values, comma-separated (shortest round-trip form).
    pub fn to_metadata(&self) -> String {
        self.0.iter().map(|v| v.to_string()).collect::<Vec<_>>().join(",")
    }

    /// The metadata form back; `None` unless every value is a finite number (at most 64 of them).
    pub fn parse(s: &str) -> Option<Signature> {
        let values = s.split(',').take(65).map(|v| v.trim().parse::<f32>().ok().filter(|v| v.is_finite())).collect::<Option<Vec<f32>>>()?;
        (values.len() <= 64).then_some(Signature(values))
    }
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
        let embed = match format {
            WeightFormat::F32 => Embedding::Dense(w.tensor("model.embed_tokens.weight", [c.vocab_size, c.hidden_size])),
            WeightFormat::Int8 => Embedding::Int8(crate::nn::linear::int8_matrix(&w, "model.embed_tokens.weight", c.vocab_size, c.hidden_size)),
        };
        let blocks = (0..c.num_hidden_layers).map(|i| Block::load(&w, i, c, qkv_bias, format)).collect();
        let norm = RmsNorm::load(&w, "model.norm", c.hidden_size, c.rms_norm_eps);
        let has_head = w.shape("lm_head.weight").is_some();
        if c.tie_word_embeddings == Some(false) && !has_head {
            return Err(Error::config("tie_word_embeddings", format!("false, but {file} has no `lm_head.weight`")));
        }
        let tied = c.tie_word_embeddings == Some(true) || !has_head;
        let lm_head = (!tied).then(|| Linear::load_as(&w, "lm_head", c.hidden_size, c.vocab_size, false, format));
        let signature = Signature::of(&w);
        w.finish()?;
        let (rope_cos, rope_sin) = rope_tables(c, device);
        Ok(Llama { config, weights: format, embed, blocks, norm, lm_head, rope_cos, rope_sin, device: device.clone(), signature })
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
        // RoPE angles: a row's positions count from its first real token.
        let (cos, sin) = if padded {
            let pos: Vec<i32> = cache.pad.iter().flat_map(|&p| (past..past + s).map(move |t| t.saturating_sub(p) as i32)).collect();
            let pos = Tensor::<1, Int>::from_data(TensorData::new(pos, [b * s]), &self.device);
            let table = |t: &Tensor<2>| t.clone().select(0, pos.clone()).reshape([b, 1, s, dh]);
            (table(&self.rope_cos), table(&self.rope_sin)) // [b, 1, s, dh]
        } else {
            let table = |t: &Tensor<2>| t.clone().slice([past..past + s, 0..dh]).unsqueeze::<4>();
            (table(&self.rope_cos), table(&self.rope_sin)) // [1, 1, s, dh]
        };
        // Causal mask for the new positions against all positions, repeated for the query heads that
        // share a KV head: [b or 1, 1, rep * s, past + s]. One new token of an unpadded batch sees
        // everything: no mask. Padding keys get −1e9, not −∞, so that a padding query (which sees only
        // padding) has a finite softmax; exp(−1e9) is exactly 0 for the real queries.
        let mask = (s > 1 || padded).then(|| {
            let t = past + s;
            let rows = if padded { b } else { 1 };
            let m: Vec<f32> = (0..rows)
                .flat_map(|r| {
                    let p = cache.pad.get(r).copied().unwrap_or(0);
                    (0..rep).flat_map(move |_| (0..s).flat_map(move |i| (0..t).map(move |j| if j > past + i { f32::NEG_INFINITY } else if j < p { -1e9 } else { 0.0 })))
                })
                .collect();
            Tensor::<1>::from_data(TensorData::new(m, [rows * rep * s * t]), &self.device).reshape([rows, 1, rep * s, t])
        });

        for (i, block) in self.blocks.iter().enumerate() {
            let a = block.input_norm.forward(x.clone());
            let q = rope(block.q.forward3(a.clone()).reshape([b, s, heads, dh]).swap_dims(1, 2), &cos, &sin); // [b, heads, s, dh]
            let k = rope(block.k.forward3(a.clone()).reshape([b, s, kv, dh]).swap_dims(1, 2), &cos, &sin); // [b, kv, s, dh]
            let v = block.v.forward3(a).reshape([b, s, kv, dh]).swap_dims(1, 2); // [b, kv, s, dh]
            // The cache was filled by this model (`Generation::resume` keeps only a cache of the same
            // model's signature) and this batch (`forward_rows` checks), so its shapes match but for the
            // sequence axis.
            let (pk, pv) = cache.layers[i].take().unzip();
            let (kb, k) = append(pk, k, past, c.context()); // k: [b, kv, past+s, dh]
            let (vb, v) = append(pv, v, past, c.context()); // v: [b, kv, past+s, dh]
            cache.layers[i] = Some((kb, vb));
            // Query heads grouped by the KV head they read: no copy of K/V per query head.
            let qg = q.reshape([b, kv, rep * s, dh]); // [b, kv, rep*s, dh]
            let mut scores = qg.matmul(k.swap_dims(2, 3)) / (dh as f64).sqrt(); // [b, kv, rep*s, t]
            if let Some(m) = &mask {
                scores = scores + m.clone();
            }
            let attn = crate::nn::ops::softmax_last(scores).matmul(v).reshape([b, heads, s, dh]).swap_dims(1, 2).reshape([b, s, heads * dh]);
            x = x + block.o.forward3(attn);
            let m = block.post_norm.forward(x.clone());
            let m = block.down.forward3(crate::nn::ops::silu_mul(block.gate.forward3(m.clone()), block.up.forward3(m))); // [b, s, h]
            x = x + steer.steer(i, Site::MlpOut, m);
            x = steer.steer(i, Site::BlockOut, x);
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

/// cos/sin tables for rotate-half RoPE: [max_positions, head_dim], frequencies repeated twice.
fn rope_tables(c: &Config, device: &Device) -> (Tensor<2>, Tensor<2>) {
    let (dh, n) = (c.head_dim(), c.context());
    let inv: Vec<f64> = (0..dh / 2).map(|i| 1.0 / c.rope_theta.powf(2.0 * i as f64 / dh as f64)).collect();
    let (mut cos, mut sin) = (Vec::with_capacity(n * dh), Vec::with_capacity(n * dh));
    for p in 0..n {
        for _ in 0..2 {
            for f in &inv {
                let angle = p as f64 * f;
                cos.push(angle.cos() as f32);
                sin.push(angle.sin() as f32);
            }
        }
    }
    (Tensor::from_data(TensorData::new(cos, [n, dh]), device), Tensor::from_data(TensorData::new(sin, [n, dh]), device))
}

/// x * cos + rotate_half(x) * sin, with rotate_half([a, b]) = [-b, a]. x: [b, heads, s, dh]; cos/sin
/// [b or 1, 1, s, dh].
fn rope(x: Tensor<4>, cos: &Tensor<4>, sin: &Tensor<4>) -> Tensor<4> {
    let [b, n, s, dh] = x.dims();
    let half = dh / 2;
    let x1 = x.clone().slice([0..b, 0..n, 0..s, 0..half]);
    let x2 = x.clone().slice([0..b, 0..n, 0..s, half..dh]);
    let rotated = Tensor::cat(vec![x2.neg(), x1], 3);
    x * cos.clone() + rotated * sin.clone()
}
