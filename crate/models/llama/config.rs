//! `config.json` of a Llama-family decoder, every size checked before anything is allocated from it.

use serde::Deserialize;

use crate::base::error::{Error, Result, check_positive, check_size};
use crate::base::limits::{MAX_CONTEXT, MAX_HIDDEN, MAX_LAYERS};

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
