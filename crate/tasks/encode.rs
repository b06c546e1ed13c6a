//! Texts in, embeddings or label scores out: tokenisation, padded batches, one forward per batch,
//! one async readback per batch. The same pipeline behind the wasm `Classifier` and `veer embed/classify`.

use burn::tensor::Device;
use serde::Serialize;
use tokenizers::{PaddingParams, Tokenizer, TruncationDirection, TruncationParams, TruncationStrategy};

use crate::base::backend::read_f32;
use crate::base::limits::ATTENTION_BYTES;
use crate::models::bert::Bert;
use crate::models::bert::config::Config;
use crate::base::options::Pooling;
use crate::base::error::{Error, Result};
use crate::io::files::ModelFiles;
use crate::base::options::EncoderOptions;

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
    /// Embedding pooling, after the folder's defaults were applied.
    pooling: Pooling,
    normalize: bool,
    batch_size: usize,
    max_len: usize,
}

/// One padded batch: ids and mask [batch, seq] row-major, and which input text each row is.
pub(crate) struct Batch {
    pub ids: Vec<u32>,
    pub mask: Vec<u32>,
    pub size: usize,
    pub rows: Vec<usize>,
}

impl Encoder {
    /// From a model folder's files. Options left unset take the folder's own settings (see
    /// `EncoderOptions`), so every entry point embeds a text the same way.
    pub fn load(files: &ModelFiles, options: &EncoderOptions, device: &Device) -> Result<Self> {
        let config = Config::parse(&files.config.bytes, &files.config.name)?;
        let positions = config.max_position_embeddings;
        // A separate head file (`trainClassifier`, `veer distill`) replaces the folder's head.
        let head = files.head.as_ref().map(|f| crate::models::bert::head_file::read_head_metadata(&f.bytes, &f.name)).transpose()?;
        let trained = head.as_ref().map_or(config.veer_head.as_ref(), |(_, spec)| Some(spec)).and_then(|h| h.max_length);
        let max_len = options.max_length.or(trained).or(files.max_seq_length()?).unwrap_or(512).min(positions);
        if max_len < 2 {
            return Err(Error::Invalid(format!("max length {max_len}: needs room for at least [CLS] and [SEP]")));
        }
        if options.batch_size == 0 {
            return Err(Error::Invalid("batchSize 0: expected at least 1".into()));
        }
        // One batch's attention scores are batch × heads × len² floats: bounded so that a batch of
        // full-length texts fits a wasm32 instance beside the weights. In u64: heads × len² × 4 can
        // pass 2^32 for a config's caps (256 heads, 2^16 positions).
        let per_text = config.num_attention_heads as u64 * (max_len as u64).pow(2) * 4;
        let most = (ATTENTION_BYTES as u64 / per_text).max(1); // per_text ≥ 16: heads ≥ 1 (checked), max_len ≥ 2
        if options.batch_size as u64 > most {
            return Err(Error::Invalid(format!(
                "batchSize {}: at most {most} texts of up to {max_len} tokens per batch ({} MiB of attention scores each)",
                options.batch_size,
                per_text.div_ceil(1 << 20)
            )));
        }
        let pooling = match options.pooling {
            Some(p) => p,
            None => files.pooling()?.unwrap_or(Pooling::Mean),
        };
        let mut tokenizer = crate::io::tokenizer::load(&files.tokenizer.bytes, &files.tokenizer.name)?;
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
        let mut model = Bert::load(config, &files.weights.bytes, &files.weights.name, device)?;
        if let Some(f) = &files.head {
            model.attach_head(&f.bytes, &f.name)?;
        }
        Ok(Encoder { model, tokenizer, pooling, normalize: options.normalize, batch_size: options.batch_size, max_len })
    }

    /// What memory holds for the encoder's matrices (`Bert::dtype`).
    pub fn dtype(&self) -> &'static str {
        self.model.dtype()
    }

    pub fn labels(&self) -> &[String] {
        &self.model.labels
    }

    /// Replace the head by a head file's (the bytes `heads::file::head_safetensors` writes).
    pub fn attach_head(&mut self, bytes: &[u8], file: &str) -> Result<()> {
        self.model.attach_head(bytes, file)
    }

    /// The encoder itself (fine-tuning runs its layers directly).
    pub fn model(&self) -> &Bert {
        &self.model
    }

    pub fn config(&self) -> &Config {
        &self.model.config
    }

    pub fn max_len(&self) -> usize {
        self.max_len
    }

    pub fn pooling(&self) -> Pooling {
        self.pooling
    }

    /// Token ids of each text, with special tokens, truncated to max_len.
    pub fn tokenize(&self, texts: &[impl AsRef<str>]) -> Result<Vec<Vec<u32>>> {
        texts.iter().map(|t| crate::io::tokenizer::encode(&self.tokenizer, t.as_ref(), true)).collect()
    }

    /// Texts of similar length batched together (sorted by token count): padding costs compute, and
    /// mixed lengths would pad short texts to the longest. Results are put back in input order.
    pub(crate) fn batches(&self, ids: &[Vec<u32>]) -> Vec<Batch> {
        let mut order: Vec<usize> = (0..ids.len()).collect();
        order.sort_by_key(|&i| ids[i].len());
        order
            .chunks(self.batch_size) // ≥ 1: checked in `load`, the only constructor
            .map(|chunk| {
                let seq = chunk.iter().map(|&i| ids[i].len()).max().unwrap_or(0);
                let (mut flat, mut mask) = (Vec::with_capacity(chunk.len() * seq), Vec::with_capacity(chunk.len() * seq));
                for &i in chunk {
                    let t = &ids[i];
                    flat.extend(t.iter().copied().chain(std::iter::repeat(0).take(seq - t.len())));
                    mask.extend((0..seq).map(|j| (j < t.len()) as u32));
                }
                Batch { ids: flat, mask, size: chunk.len(), rows: chunk.to_vec() }
            })
            .collect()
    }

    /// One vector per text (pooling and normalisation from the options).
    pub async fn embed(&self, texts: &[impl AsRef<str>]) -> Result<Vec<Vec<f32>>> {
        self.embed_layers(texts, &[]).await
    }

    /// The chosen hidden states (0 = embeddings, i = after layer i; empty = the last) pooled and
    /// concatenated per text: what a `veer_head` classifier reads.
    pub async fn embed_layers(&self, texts: &[impl AsRef<str>], layers: &[usize]) -> Result<Vec<Vec<f32>>> {
        self.pooled(texts, layers, self.pooling, self.normalize).await
    }

    /// What a head of `spec` reads for each text (its layers, pooling and normalisation, whatever
    /// this encoder's embedding options): the features a head is trained on.
    pub async fn features(&self, texts: &[impl AsRef<str>], spec: &crate::base::options::PooledHead) -> Result<Vec<Vec<f32>>> {
        self.pooled(texts, &spec.layers, spec.pooling, spec.normalize).await
    }

    async fn pooled(&self, texts: &[impl AsRef<str>], layers: &[usize], pooling: Pooling, normalize: bool) -> Result<Vec<Vec<f32>>> {
        let hidden = self.model.config.hidden_size;
        let mut out = vec![Vec::new(); texts.len()];
        for batch in self.batches(&self.tokenize(texts)?) {
            let states = self.model.forward(&batch.ids, &batch.mask, batch.size)?;
            let pooled = crate::nn::pooling::pool_layers(&states, layers, &batch.mask, pooling, normalize)?; // [b, hidden * layers]
            // hidden_size ≥ 1 (checked at load): a chunk size of 0 is impossible.
            for (&row, v) in batch.rows.iter().zip(read_f32(pooled).await?.chunks_exact(hidden * layers.len().max(1))) {
                out[row] = v.to_vec();
            }
        }
        Ok(out)
    }

    /// Label scores per text: softmax, or sigmoid for multi-label models.
    pub async fn classify(&self, texts: &[impl AsRef<str>]) -> Result<Vec<Classification>> {
        let labels = &self.model.labels;
        if !self.model.has_head() {
            return Err(Error::Invalid("this model has no classification head (no `classifier.weight`); use embed()".into()));
        }
        let mut out = vec![None; texts.len()];
        for batch in self.batches(&self.tokenize(texts)?) {
            let states = self.model.forward(&batch.ids, &batch.mask, batch.size)?;
            let s = crate::nn::pooling::scores(self.model.logits(&states, &batch.mask)?, self.model.multi_label()); // [b, labels]
            for (&at, row) in batch.rows.iter().zip(read_f32(s).await?.chunks_exact(labels.len())) {
                // Broken weights give NaN scores; a page must never rank or threshold on them.
                if row.iter().any(|x| !x.is_finite()) {
                    return Err(Error::Invalid("the model produced non-finite scores (NaN): check its weights".into()));
                }
                let best = crate::base::math::argmax(row); // < row.len() == labels.len() ≥ 1 (a head has labels)
                out[at] = Some(Classification {
                    label: labels[best].clone(),
                    score: row[best],
                    scores: labels.iter().cloned().zip(row.iter().copied()).collect(),
                });
            }
        }
        Ok(out.into_iter().flatten().collect())
    }
}
