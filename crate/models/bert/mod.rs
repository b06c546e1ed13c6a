//! BERT-family encoders (HF `BertModel`, `DistilBertModel`) and their sequence-classification heads.
//!
//! One encoder serves both architectures: they differ only in weight names, token-type embeddings and
//! the head, which a name table and `Head` capture. Post-LayerNorm blocks, absolute positions.

pub mod config;
pub mod head_file;
pub mod layer;
pub mod packing;

use burn::tensor::activation::{relu, tanh};
use burn::tensor::{Device, Int, Tensor, TensorData};

use crate::base::error::{Error, Result};
use crate::base::limits::MAX_LABELS;
use crate::base::options::PooledHead;
use crate::nn::linear::NamedParam;
use crate::nn::norm::LayerNorm;
use crate::nn::embedding::Embedding;
use crate::nn::linear::Linear;
use crate::io::safetensors::Loader;
use crate::models::bert::config::{BERT, Config, DISTILBERT};
use crate::models::bert::layer::Layer;
use crate::models::bert::packing::Packing;
use crate::nn::pooling::{cls, pool_layers};

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
    word: Embedding,              // [vocab, hidden]
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
        let word = Embedding::load(&w, "embeddings.word_embeddings.weight", c.vocab_size, h, None);
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

    /// What memory holds for the encoder's matrices: "f32", or "int8" (a q8 file on the CPU).
    pub fn dtype(&self) -> &'static str {
        self.layers.first().map(|l| l.held()).unwrap_or(self.word.held())
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
        let (ids_t, pos_t): (Vec<u32>, Vec<i32>) = (0..ids.len()).filter(|&i| mask[i] != 0).map(|i| (ids[i], (i % seq) as i32)).unzip();
        let n = ids_t.len();
        let positions = Tensor::<1, Int>::from_data(TensorData::new(pos_t, [n]), &self.device);
        let mut x = self.word.rows(&ids_t, &self.device) + self.position.clone().select(0, positions); // [tokens, h]
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
