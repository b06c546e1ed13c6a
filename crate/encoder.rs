//! Texts in, embeddings or label scores out: tokenisation, padded batches, one forward per batch,
//! one async readback per batch. The same pipeline behind the wasm `Classifier` and `veer embed/classify`.

use burn::tensor::Device;
use serde::Serialize;
use tokenizers::{PaddingParams, Tokenizer, TruncationDirection, TruncationParams, TruncationStrategy};

use crate::backend::read_f32;
use crate::bert::{self, Bert, Config, Pooling};
use crate::error::{Error, Result};

#[derive(Debug, Clone)]
pub struct Options {
    /// Tokens per text including [CLS]/[SEP]; longer texts are truncated. Default min(512, max positions).
    pub max_len: Option<usize>,
    pub pooling: Pooling,
    pub normalize: bool,
    /// Texts per forward pass (bounds memory; results do not depend on it).
    pub batch_size: usize,
}

impl Default for Options {
    fn default() -> Self {
        Options { max_len: None, pooling: Pooling::Mean, normalize: true, batch_size: 16 }
    }
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Classification {
    pub label: String,
    pub score: f32,
    /// Every label with its score, in the model's label order.
    pub scores: Vec<(String, f32)>,
}

pub struct Encoder {
    model: Bert,
    tokenizer: Tokenizer,
    pub options: Options,
    max_len: usize,
}

/// One padded batch: ids and mask [batch, seq] row-major.
struct Batch {
    ids: Vec<u32>,
    mask: Vec<u32>,
    size: usize,
}

impl Encoder {
    /// From the bytes of config.json, model.safetensors and tokenizer.json.
    pub fn load(config: &[u8], weights: &[u8], tokenizer: &[u8], options: Options, device: &Device) -> Result<Self> {
        let config = Config::parse(config, "config.json")?;
        let positions = config.max_position_embeddings;
        let max_len = options.max_len.unwrap_or(512).min(positions);
        if max_len < 2 {
            return Err(Error::Invalid(format!("max length {max_len}: needs room for at least [CLS] and [SEP]")));
        }
        let mut tokenizer = crate::tokenizer::load(tokenizer, "tokenizer.json")?;
        // tokenizer.json files often carry their own truncation/padding (MiniLM's pads every text to 128):
        // veer truncates to max_len and pads per batch itself.
        tokenizer
            .with_truncation(Some(TruncationParams {
                max_length: max_len,
                strategy: TruncationStrategy::LongestFirst,
                stride: 0,
                direction: TruncationDirection::Right,
            }))
            .map_err(|e| Error::Tokenizer(format!("cannot set truncation: {e}")))?;
        tokenizer.with_padding(None::<PaddingParams>);
        let model = Bert::load(config, weights, device)?;
        Ok(Encoder { model, tokenizer, options, max_len })
    }

    pub fn labels(&self) -> &[String] {
        &self.model.labels
    }

    pub fn config(&self) -> &Config {
        &self.model.config
    }

    pub fn max_len(&self) -> usize {
        self.max_len
    }

    /// Token ids of each text, with special tokens, truncated to max_len.
    pub fn tokenize(&self, texts: &[impl AsRef<str>]) -> Result<Vec<Vec<u32>>> {
        texts
            .iter()
            .map(|t| {
                self.tokenizer
                    .encode(t.as_ref(), true)
                    .map(|e| e.get_ids().to_vec())
                    .map_err(|e| Error::Tokenizer(format!("could not encode {:?}: {e}", t.as_ref().chars().take(32).collect::<String>())))
            })
            .collect()
    }

    fn batches(&self, ids: &[Vec<u32>]) -> Vec<Batch> {
        ids.chunks(self.options.batch_size.max(1))
            .map(|chunk| {
                let seq = chunk.iter().map(Vec::len).max().unwrap_or(0);
                let (mut flat, mut mask) = (Vec::with_capacity(chunk.len() * seq), Vec::with_capacity(chunk.len() * seq));
                for t in chunk {
                    flat.extend(t.iter().copied().chain(std::iter::repeat(0).take(seq - t.len())));
                    mask.extend((0..seq).map(|i| (i < t.len()) as u32));
                }
                Batch { ids: flat, mask, size: chunk.len() }
            })
            .collect()
    }

    /// One vector per text (pooling and normalisation from the options).
    pub async fn embed(&self, texts: &[impl AsRef<str>]) -> Result<Vec<Vec<f32>>> {
        let hidden = self.model.config.hidden_size;
        let mut out = Vec::with_capacity(texts.len());
        for batch in self.batches(&self.tokenize(texts)?) {
            let h = self.model.forward(&batch.ids, &batch.mask, batch.size)?;
            let pooled = bert::pool(h, &batch.mask, self.options.pooling, self.options.normalize); // [b, hidden]
            out.extend(read_f32(pooled).await?.chunks_exact(hidden).map(<[f32]>::to_vec));
        }
        Ok(out)
    }

    /// Label scores per text: softmax, or sigmoid for multi-label models.
    pub async fn classify(&self, texts: &[impl AsRef<str>]) -> Result<Vec<Classification>> {
        let labels = &self.model.labels;
        if !self.model.has_head() {
            return Err(Error::Invalid("this model has no classification head (no `classifier.weight`); use embed()".into()));
        }
        let mut out = Vec::with_capacity(texts.len());
        for batch in self.batches(&self.tokenize(texts)?) {
            let h = self.model.forward(&batch.ids, &batch.mask, batch.size)?;
            let s = bert::scores(self.model.logits(h)?, self.model.multi_label()); // [b, labels]
            for row in read_f32(s).await?.chunks_exact(labels.len()) {
                let best = row.iter().enumerate().fold(0, |b, (i, &x)| if x > row[b] { i } else { b });
                out.push(Classification {
                    label: labels[best].clone(),
                    score: row[best],
                    scores: labels.iter().cloned().zip(row.iter().copied()).collect(),
                });
            }
        }
        Ok(out)
    }
}
