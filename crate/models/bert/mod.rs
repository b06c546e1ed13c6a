//! BERT-family encoders (HF `BertModel`, `DistilBertModel`) and their sequence-classification heads.
//!
//! One encoder serves both architectures: they differ only in weight names, token-type embeddings and
//! the head, which a name table and `Head` capture. Post-LayerNorm blocks, absolute positions.

pub mod head_file;

use std::collections::BTreeMap;

use burn::tensor::activation::{relu, softmax, tanh};
use burn::tensor::{Device, Int, Tensor, TensorData};
use serde::Deserialize;

use crate::base::error::{Error, Result, check_positive, check_size};
use crate::base::limits::MAX_LABELS;
use crate::base::options::{PooledHead, Pooling};
use crate::nn::linear::NamedParam;
use crate::nn::norm::LayerNorm;
use crate::nn::linear::Linear;
use crate::nn::ops::softmax_last;
use crate::io::safetensors::Loader;

// --- config ------------------------------------------------------------------------------------------

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

    fn is_distilbert(&self) -> bool {
        self.model_type == "distilbert"
    }

    /// Labels in id order, from `id2label` (`LABEL_i` where absent).
    pub fn labels(&self, n: usize) -> Vec<String> {
        (0..n).map(|i| self.id2label.get(&i.to_string()).cloned().unwrap_or_else(|| format!("LABEL_{i}"))).collect()
    }
}

// --- blocks ------------------------------------------------------------------------------------------

/// HF weight names, per architecture, relative to the base-model prefix.
struct Names {
    prefixes: &'static [&'static str],
    layer: &'static str,
    q: &'static str,
    k: &'static str,
    v: &'static str,
    o: &'static str,
    attn_norm: &'static str,
    ffn_in: &'static str,
    ffn_out: &'static str,
    out_norm: &'static str,
}

const BERT: Names = Names {
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

const DISTILBERT: Names = Names {
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

/// Mirrors HF `BertLayer` / DistilBERT `TransformerBlock`.
struct Layer {
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
    fn load(w: &Loader, n: &Names, i: usize, c: &Config) -> Self {
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

    /// Parameters as matrices with their HF names (suffixes after `<layer>.<i>.`) and whether HF stores
    /// them transposed (linear weights: veer keeps [in, out], HF [out, in]).
    fn params(&self, n: &Names) -> Vec<NamedParam> {
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
    fn from_params(p: &[Tensor<2>], eps: f64) -> Self {
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
    fn forward(&self, x: Tensor<2>, p: &Packing, heads: usize) -> Tensor<2> {
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

/// A padded batch ([batch, seq] with a mask) and where its tokens are. The layers compute on the
/// tokens only, [tokens, hidden]: their linear layers, norms and GELU are nearly all of a forward,
/// and padding was a third of the rows of a batch of 8 short texts (the bench's 12–27-token reviews:
/// 71 % of the padded rows are tokens; 54 % at batch 32). Attention, which needs the [batch, seq]
/// layout, gets the projections spread back into it; the padded keys are masked there, as before.
pub struct Packing {
    batch: usize,
    seq: usize,
    /// [tokens]: each token's row in the padded [batch * seq]. None: nothing is padded.
    tokens: Option<Tensor<1, Int>>,
    /// [batch * seq]: the token row each padded position reads. A pad reads its own text's first token:
    /// its key is masked and its output dropped, but 0 × its value is still computed, so it must come
    /// from the same text (a NaN in one text's states then stays in that text, as with padding).
    rows: Option<Tensor<1, Int>>,
    mask_bias: Tensor<4>, // [batch, 1, 1, seq]: 0 at tokens, -1e9 at padding
}

impl Packing {
    /// `mask`: [batch, seq] row-major, nonzero at tokens. At least one token (checked by callers).
    pub fn new(mask: &[u32], batch: usize, device: &Device) -> Self {
        let seq = mask.len() / batch.max(1);
        let mask_bias = Bert::mask_bias(mask, batch, device);
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

/// The classification head.
enum Head {
    /// BertForSequenceClassification: [CLS] → tanh(pooler) → classifier.
    Bert { pooler: Linear, classifier: Linear },
    /// DistilBertForSequenceClassification: [CLS] → relu(pre_classifier) → classifier.
    DistilBert { pre_classifier: Linear, classifier: Linear },
    /// veer_head: pooled (and normalised) embedding → optional act(pre_classifier) → classifier.
    Pooled { spec: PooledHead, hidden: Option<Linear>, classifier: Linear },
}

/// A `veer_head`: its input is the pooled states of every chosen layer, concatenated; the optional
/// `pre_classifier` sets the classifier's input width. Shapes are checked by the loader, so a head that
/// does not fit the encoder is a load error rather than a failed matmul later.
fn pooled_head(w: &Loader, spec: &PooledHead, c: &Config, n_labels: usize) -> Result<Head> {
    if let Some(&l) = spec.layers.iter().find(|&&l| l > c.num_hidden_layers) {
        return Err(Error::config("veer_head.layers", format!("layer {l}: the encoder has states 0..={}", c.num_hidden_layers)));
    }
    let pooled_width = c.hidden_size * spec.layers.len().max(1);
    let (hidden, width) = match (w.shape("/pre_classifier.weight"), spec.activation) {
        (Some(s), Some(_)) if s.len() == 2 && s[0] > 0 && s[0] <= 1 << 16 => (Some(Linear::load(w, "/pre_classifier", pooled_width, s[0], true)), s[0]),
        (Some(_), None) => return Err(Error::config("veer_head.activation", "missing, but the head has a pre_classifier layer")),
        (Some(s), _) => return Err(Error::tensor("pre_classifier.weight", format!("shape {s:?}: expected [units, {pooled_width}]"))),
        (None, _) => (None, pooled_width),
    };
    let classifier = Linear::load(w, "/classifier", width, n_labels, true);
    Ok(Head::Pooled { spec: spec.clone(), hidden, classifier })
}

// --- model -------------------------------------------------------------------------------------------


pub struct Bert {
    pub config: Config,
    word: Tensor<2>,              // [vocab, hidden]
    position: Tensor<2>,          // [max_positions, hidden]
    token_type: Option<Tensor<2>>, // [type_vocab, hidden]; DistilBERT has none
    emb_norm: LayerNorm,
    layers: Vec<Layer>,
    head: Option<Head>,
    pub labels: Vec<String>,
    device: Device,
}

impl Bert {
    /// Build from config.json and model.safetensors bytes. Every expected tensor is checked for presence
    /// and shape; the error lists all that are missing or mismatched.
    pub fn load(config: Config, weights: &[u8], file: &str, device: &Device) -> Result<Self> {
        let names = if config.is_distilbert() { &DISTILBERT } else { &BERT };
        let mut w = Loader::new(weights, file, device)?;
        w.detect_prefix(names.prefixes, "embeddings.word_embeddings.weight")?;
        let (h, c) = (config.hidden_size, &config);
        let word = w.tensor("embeddings.word_embeddings.weight", [c.vocab_size, h]);
        let position = w.tensor("embeddings.position_embeddings.weight", [c.max_position_embeddings, h]);
        let token_type = (!c.is_distilbert() && c.type_vocab_size > 0).then(|| w.tensor("embeddings.token_type_embeddings.weight", [c.type_vocab_size, h]));
        let emb_norm = LayerNorm::load(&w, "embeddings.LayerNorm", h, c.layer_norm_eps);
        let layers = (0..c.num_hidden_layers).map(|i| Layer::load(&w, names, i, c)).collect();

        let mut labels = Vec::new();
        let head = if let Some(shape) = w.shape("/classifier.weight") {
            // The label count sizes the label list: bound it (and reject an empty [n, 0]) before use.
            let n_labels = if shape.len() == 2 && shape[1] > 0 { shape[0] } else { 0 };
            if n_labels == 0 || n_labels > MAX_LABELS {
                return Err(Error::tensor("classifier.weight", format!("shape {shape:?}: expected [labels 1..={MAX_LABELS}, hidden]")));
            }
            if !c.id2label.is_empty() && c.id2label.len() != n_labels {
                return Err(Error::config("id2label", format!("{} labels, but classifier.weight has {n_labels} rows", c.id2label.len())));
            }
            labels = c.labels(n_labels);
            Some(match &c.veer_head {
                Some(spec) => pooled_head(&w, spec, c, n_labels)?,
                None => {
                    let classifier = Linear::load(&w, "/classifier", h, n_labels, true);
                    if c.is_distilbert() {
                        Head::DistilBert { pre_classifier: Linear::load(&w, "/pre_classifier", h, h, true), classifier }
                    } else {
                        Head::Bert { pooler: Linear::load(&w, "pooler.dense", h, h, true), classifier }
                    }
                }
            })
        } else {
            if c.architectures.iter().any(|a| a.ends_with("ForSequenceClassification")) {
                return Err(Error::tensor("classifier.weight", format!("missing, but config.json says {:?}", c.architectures)));
            }
            None
        };
        w.finish()?;
        Ok(Bert { config, word, position, token_type, emb_norm, layers, head, labels, device: device.clone() })
    }

    /// Replace the head by a head file's: labels and `veer_head` from its metadata, its tensors checked
    /// against this encoder (a head for another encoder width is a load error naming the tensor).
    pub fn attach_head(&mut self, bytes: &[u8], file: &str) -> Result<()> {
        let (labels, spec) = crate::models::bert::head_file::read_head_metadata(bytes, file)?;
        if labels.is_empty() || labels.len() > MAX_LABELS {
            return Err(Error::file(file, format!("{} labels: expected 1..={MAX_LABELS}", labels.len())));
        }
        let w = Loader::new(bytes, file, &self.device)?;
        match w.shape("/classifier.weight") {
            Some(s) if s.first() == Some(&labels.len()) => {}
            s => return Err(Error::tensor("classifier.weight", format!("{file}: shape {s:?}, but the file names {} labels", labels.len()))),
        }
        let head = pooled_head(&w, &spec, &self.config, labels.len())?;
        w.finish()?;
        self.config.id2label = labels.iter().enumerate().map(|(i, l)| (i.to_string(), l.clone())).collect();
        self.config.veer_head = Some(spec);
        self.config.problem_type = None;
        self.labels = labels;
        self.head = Some(head);
        Ok(())
    }

    /// Layer `i`'s parameters for fine-tuning, under their full HF names.
    pub fn layer_params(&self, i: usize) -> Vec<NamedParam> {
        let names = if self.config.is_distilbert() { &DISTILBERT } else { &BERT };
        self.layers[i].params(names).into_iter().map(|p| NamedParam { name: format!("{}.{i}.{}", names.layer, p.name), ..p }).collect()
    }

    /// Run one layer with the given parameters (in `layer_params` order) instead of its own: the
    /// training path, where the parameters are tracked by autodiff. x: [tokens, hidden] (`Packing`).
    pub fn layer_forward(&self, params: &[Tensor<2>], x: Tensor<2>, packing: &Packing) -> Tensor<2> {
        Layer::from_params(params, self.config.layer_norm_eps).forward(x, packing, self.config.num_attention_heads)
    }

    /// [batch, 1, 1, seq] additive attention mask: 0 at real tokens, -1e9 at padding.
    pub fn mask_bias(mask: &[u32], batch: usize, device: &Device) -> Tensor<4> {
        let seq = mask.len() / batch.max(1);
        let pad = Tensor::<2, Int>::from_data(TensorData::new(mask.iter().map(|&m| m as i32).collect::<Vec<_>>(), [batch, seq]), device).equal_elem(0);
        Tensor::<2>::zeros([batch, seq], device).mask_fill(pad, -1e9).reshape([batch, 1, 1, seq])
    }

    pub fn has_head(&self) -> bool {
        self.head.is_some()
    }

    /// Hidden states after the embeddings and after every layer (`layers + 1` of [batch, seq, hidden]);
    /// the last is the encoder's output. ids, mask: [batch, seq] row-major (mask 1 = real token, 0 = pad).
    pub fn forward(&self, ids: &[u32], mask: &[u32], batch: usize) -> Result<Vec<Tensor<3>>> {
        let seq = ids.len() / batch.max(1);
        if batch == 0 || seq == 0 || ids.len() != batch * seq || mask.len() != ids.len() {
            return Err(Error::Invalid(format!("{} ids and {} mask values do not form a [{batch}, seq] batch", ids.len(), mask.len())));
        }
        let c = &self.config;
        if seq > c.max_position_embeddings {
            return Err(Error::Invalid(format!("sequence of {seq} tokens exceeds max_position_embeddings {}", c.max_position_embeddings)));
        }
        if let Some(&bad) = ids.iter().find(|&&i| i as usize >= c.vocab_size) {
            return Err(Error::Invalid(format!("token id {bad} is outside the vocabulary ({} ids)", c.vocab_size)));
        }
        if mask.iter().all(|&m| m == 0) {
            return Err(Error::Invalid("the mask marks no tokens".into()));
        }
        let h = c.hidden_size;
        // The embeddings of the tokens only ([tokens, h]): their ids and positions.
        let (ids_t, pos_t): (Vec<i32>, Vec<i32>) =
            (0..ids.len()).filter(|&i| mask[i] != 0).map(|i| (ids[i] as i32, (i % seq) as i32)).unzip();
        let n = ids_t.len();
        let index = |v: Vec<i32>| Tensor::<1, Int>::from_data(TensorData::new(v, [n]), &self.device);
        let mut x = self.word.clone().select(0, index(ids_t)) + self.position.clone().select(0, index(pos_t)); // [tokens, h]
        if let Some(tt) = &self.token_type {
            // Single-segment inputs: token type 0 everywhere.
            x = x + tt.clone().slice([0..1, 0..h]);
        }
        x = self.emb_norm.forward(x);

        let packing = Packing::new(mask, batch, &self.device);
        let mut states = Vec::with_capacity(self.layers.len() + 1);
        for layer in &self.layers {
            states.push(packing.unpack(x.clone()));
            x = layer.forward(x, &packing, c.num_attention_heads);
        }
        states.push(packing.unpack(x));
        Ok(states)
    }

    /// Classification logits from the hidden states of `forward` → [batch, labels].
    /// `mask` as for `forward` (pooled heads average over real tokens only).
    pub fn logits(&self, states: &[Tensor<3>], mask: &[u32]) -> Result<Tensor<2>> {
        let hidden = states.last().cloned().ok_or_else(|| Error::Invalid("no hidden states".into()))?;
        match &self.head {
            Some(Head::Bert { pooler, classifier }) => Ok(classifier.forward2(tanh(pooler.forward2(cls(hidden))))),
            Some(Head::DistilBert { pre_classifier, classifier }) => Ok(classifier.forward2(relu(pre_classifier.forward2(cls(hidden))))),
            Some(Head::Pooled { spec, hidden: layer, classifier }) => {
                let mut x = pool_layers(states, &spec.layers, mask, spec.pooling, spec.normalize)?; // [b, h * layers]
                if let (Some(layer), Some(act)) = (layer, spec.activation) {
                    x = crate::nn::ops::activate(act, layer.forward2(x)); // [b, units]
                }
                Ok(classifier.forward2(x))
            }
            None => Err(Error::Invalid("this model has no classification head (no `classifier.weight`); use embed()".into())),
        }
    }

    /// Whether scores are independent sigmoids (`problem_type: multi_label_classification`).
    pub fn multi_label(&self) -> bool {
        self.config.problem_type.as_deref() == Some("multi_label_classification")
    }

    pub fn device(&self) -> &Device {
        &self.device
    }
}

fn cls(hidden: Tensor<3>) -> Tensor<2> {
    let [b, _, h] = hidden.dims();
    hidden.slice([0..b, 0..1]).reshape([b, h]) // [b, h]
}

/// [batch, seq, hidden] → [batch, hidden]; `normalize` divides each row by its L2 norm.
pub fn pool(hidden: Tensor<3>, mask: &[u32], pooling: Pooling, normalize: bool) -> Tensor<2> {
    let [b, s, h] = hidden.dims();
    let device = hidden.device();
    let pooled = match pooling {
        Pooling::Cls => cls(hidden),
        Pooling::Mean => {
            let m = Tensor::<2>::from_data(TensorData::new(mask.iter().map(|&v| v as f32).collect::<Vec<_>>(), [b, s]), &device)
                .reshape([b, s, 1]); // [b, s, 1]
            let summed = (hidden * m.clone()).sum_dim(1).reshape([b, h]); // [b, h]
            let count = m.sum_dim(1).reshape([b, 1]).clamp_min(1.0); // [b, 1]
            summed / count
        }
    };
    if normalize {
        let norm = pooled.clone().powi_scalar(2).sum_dim(1).sqrt().clamp_min(1e-12); // [b, 1]
        pooled / norm
    } else {
        pooled
    }
}

/// Each chosen state pooled (and normalised), concatenated: [batch, hidden * layers]. No layers: the last.
pub fn pool_layers(states: &[Tensor<3>], layers: &[usize], mask: &[u32], pooling: Pooling, normalize: bool) -> Result<Tensor<2>> {
    let last = [states.len().saturating_sub(1)];
    let layers = if layers.is_empty() { &last[..] } else { layers };
    let pooled = layers
        .iter()
        .map(|&l| {
            let s = states.get(l).cloned().ok_or_else(|| Error::config("veer_head.layers", format!("layer {l}: the encoder has {} hidden states (0..={})", states.len(), states.len().saturating_sub(1))))?;
            Ok(pool(s, mask, pooling, normalize))
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(Tensor::cat(pooled, 1))
}

/// Scores from logits: softmax for single-label, sigmoid for multi-label.
pub fn scores(logits: Tensor<2>, multi_label: bool) -> Tensor<2> {
    if multi_label { burn::tensor::activation::sigmoid(logits) } else { softmax(logits, 1) }
}
