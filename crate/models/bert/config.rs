//! `config.json` of a BERT or DistilBERT checkpoint, every size checked, and the HF weight names of
//! each architecture.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::base::error::{Error, Result, check_positive, check_size};
use crate::base::options::PooledHead;

/// `config.json` of a BERT or DistilBERT checkpoint (DistilBERT's own field names as aliases).
#[derive(Debug, Clone, Deserialize)]
pub struct Config {
    pub model_type: String,
    pub vocab_size: usize,
    #[serde(alias = "dim")]
    pub hidden_size: usize,
    #[serde(alias = "n_layers")]
    pub num_hidden_layers: usize,
    #[serde(alias = "n_heads")]
    pub num_attention_heads: usize,
    #[serde(alias = "hidden_dim")]
    pub intermediate_size: usize,
    pub max_position_embeddings: usize,
    #[serde(default)]
    pub type_vocab_size: usize,
    #[serde(default = "default_eps")]
    pub layer_norm_eps: f64,
    #[serde(default = "default_act", alias = "activation")]
    pub hidden_act: String,
    #[serde(default)]
    pub position_embedding_type: Option<String>,
    #[serde(default)]
    pub architectures: Vec<String>,
    #[serde(default)]
    pub id2label: BTreeMap<String, String>,
    #[serde(default)]
    pub problem_type: Option<String>,
    /// veer's pooled head (what `veer distill` exports): absent for HF heads.
    #[serde(default)]
    pub veer_head: Option<PooledHead>,
}

fn default_eps() -> f64 {
    1e-12
}
fn default_act() -> String {
    "gelu".into()
}

impl Config {
    pub fn parse(bytes: &[u8], file: &str) -> Result<Self> {
        crate::base::error::reject_html(bytes, file, "config.json")?;
        let c: Config = serde_json::from_slice(bytes).map_err(|e| Error::file(file, format!("not a BERT/DistilBERT config: {e}")))?;
        if c.model_type != "bert" && c.model_type != "distilbert" {
            return Err(Error::config("model_type", format!("`{}`: the encoder runtime loads `bert` and `distilbert`", c.model_type)));
        }
        if c.hidden_act != "gelu" {
            return Err(Error::config("hidden_act", format!("`{}`: only exact `gelu` is supported", c.hidden_act)));
        }
        if let Some(p) = c.position_embedding_type.as_deref().filter(|p| *p != "absolute") {
            return Err(Error::config("position_embedding_type", format!("`{p}`: only `absolute` is supported")));
        }
        for (field, value, max) in [
            ("vocab_size", c.vocab_size, 1 << 22),
            ("hidden_size", c.hidden_size, 1 << 14),
            ("num_hidden_layers", c.num_hidden_layers, 256),
            ("num_attention_heads", c.num_attention_heads, 256),
            ("intermediate_size", c.intermediate_size, 1 << 16),
            ("max_position_embeddings", c.max_position_embeddings, 1 << 16),
        ] {
            check_size(field, value, max)?;
        }
        if c.type_vocab_size > 1 << 10 {
            return Err(Error::config("type_vocab_size", format!("{}: expected 0..=1024", c.type_vocab_size)));
        }
        check_positive("layer_norm_eps", c.layer_norm_eps)?;
        if c.hidden_size % c.num_attention_heads != 0 {
            return Err(Error::config("num_attention_heads", format!("{} does not divide hidden_size {}", c.num_attention_heads, c.hidden_size)));
        }
        Ok(c)
    }

    pub(crate) fn is_distilbert(&self) -> bool {
        self.model_type == "distilbert"
    }

    /// Labels in id order, from `id2label` (`LABEL_i` where absent).
    pub fn labels(&self, n: usize) -> Vec<String> {
        (0..n).map(|i| self.id2label.get(&i.to_string()).cloned().unwrap_or_else(|| format!("LABEL_{i}"))).collect()
    }
}

/// HF weight names, per architecture, relative to the base-model prefix.
pub(crate) struct Names {
    pub(crate) prefixes: &'static [&'static str],
    pub(crate) layer: &'static str,
    pub(crate) q: &'static str,
    pub(crate) k: &'static str,
    pub(crate) v: &'static str,
    pub(crate) o: &'static str,
    pub(crate) attn_norm: &'static str,
    pub(crate) ffn_in: &'static str,
    pub(crate) ffn_out: &'static str,
    pub(crate) out_norm: &'static str,
}

pub(crate) const BERT: Names = Names {
    prefixes: &["", "bert.", "model."],
    layer: "encoder.layer",
    q: "attention.self.query",
    k: "attention.self.key",
    v: "attention.self.value",
    o: "attention.output.dense",
    attn_norm: "attention.output.LayerNorm",
    ffn_in: "intermediate.dense",
    ffn_out: "output.dense",
    out_norm: "output.LayerNorm",
};

pub(crate) const DISTILBERT: Names = Names {
    prefixes: &["", "distilbert."],
    layer: "transformer.layer",
    q: "attention.q_lin",
    k: "attention.k_lin",
    v: "attention.v_lin",
    o: "attention.out_lin",
    attn_norm: "sa_layer_norm",
    ffn_in: "ffn.lin1",
    ffn_out: "ffn.lin2",
    out_norm: "output_layer_norm",
};
