//! `Classifier`: embeddings, classification and training a head in the page.

use serde::Serialize;
use wasm_bindgen::prelude::*;

use crate::base::error::Error;
use crate::base::limits::MAX_EXAMPLES;
use crate::base::options::EncoderOptions;
use crate::wasm::runtime::Runtime;
use crate::wasm::{ModelFiles, js, options_from_js, to_js};

#[derive(serde::Serialize)]
struct ClassificationJs {
    label: String,
    score: f32,
    scores: std::collections::BTreeMap<String, f32>,
}

/// A BERT-family encoder (embeddings) with an optional sequence-classification head.
#[wasm_bindgen]
pub struct Classifier {
    encoder: crate::tasks::encode::Encoder,
    device: String,
    /// Head features per text, computed once for every training on this instance (memory only).
    features: std::collections::HashMap<String, Vec<f32>>,
    training: Option<crate::tasks::heads::trainer::HeadTraining>,
}

#[wasm_bindgen]
impl Classifier {
    /// Build from a model folder's files on `runtime`'s device. `options`: `{ maxLength, pooling:
    /// "mean" | "cls", normalize, batchSize }`, all optional; unset ones take the folder's settings.
    /// Weights are uploaded once, here.
    pub fn create(runtime: &Runtime, files: &mut ModelFiles, options: JsValue) -> Result<Classifier, JsError> {
        let options: EncoderOptions = options_from_js(&options, "options")?;
        let encoder = crate::tasks::encode::Encoder::load(&files.take()?, &options, &runtime.backend.device).map_err(js)?;
        Ok(Classifier { encoder, device: runtime.device(), features: Default::default(), training: None })
    }

    /// Tokens per text after truncation, and the embedding pooling, as resolved from options and folder.
    #[wasm_bindgen(getter, js_name = maxLength)]
    pub fn max_length(&self) -> usize {
        self.encoder.max_len()
    }

    #[wasm_bindgen(getter)]
    pub fn pooling(&self) -> String {
        match self.encoder.pooling() {
            crate::base::options::Pooling::Mean => "mean".into(),
            crate::base::options::Pooling::Cls => "cls".into(),
        }
    }

    /// What memory holds for the encoder's matrices: "int8" (a q8 folder on the CPU) or "f32".
    #[wasm_bindgen(getter)]
    pub fn dtype(&self) -> String {
        self.encoder.dtype().to_string()
    }

    /// Label names in the model's order (empty for a plain encoder).
    #[wasm_bindgen(getter)]
    pub fn labels(&self) -> Vec<String> {
        self.encoder.labels().to_vec()
    }

    /// `"webgpu"` or `"cpu"`.
    #[wasm_bindgen(getter)]
    pub fn device(&self) -> String {
        self.device.clone()
    }

    /// Resolves to `[{ label, score, scores: { [label]: score } }]`, one per text.
    pub async fn classify(&self, texts: Vec<String>) -> Result<JsValue, JsError> {
        let results = self.encoder.classify(&texts).await.map_err(js)?;
        let out: Vec<ClassificationJs> =
            results.into_iter().map(|r| ClassificationJs { label: r.label, score: r.score, scores: r.scores.into_iter().collect() }).collect();
        out.serialize(&serde_wasm_bindgen::Serializer::json_compatible()).map_err(|e| JsError::new(&e.to_string()))
    }

    /// Resolves to one `Float32Array` per text.
    pub async fn embed(&self, texts: Vec<String>) -> Result<Vec<js_sys::Float32Array>, JsError> {
        let vectors = self.encoder.embed(&texts).await.map_err(js)?;
        Ok(vectors.iter().map(|v| js_sys::Float32Array::from(v.as_slice())).collect())
    }

    /// Start training a head on this encoder: `texts[i]` labelled `labels[labelIds[i]]`; `options` as
    /// `HeadOptions` (`{ epochs, seed, hidden, learningRate, batchSize, patience, holdout,
    /// classWeights }`). Embeds the texts not seen before. Resolves to `{ train, heldOut, embedded }`.
    #[wasm_bindgen(js_name = trainStart)]
    pub async fn train_start(&mut self, texts: Vec<String>, label_ids: Vec<u32>, labels: Vec<String>, options: JsValue) -> Result<JsValue, JsError> {
        self.training = None;
        let options: crate::base::options::HeadOptions = options_from_js(&options, "options")?;
        if texts.len() > MAX_EXAMPLES {
            return Err(js(Error::Invalid(format!("{} examples: at most {}", texts.len(), MAX_EXAMPLES))));
        }
        let spec = options.spec(self.encoder.max_len());
        let embedded = self.embed_new(&texts).await?;
        // Every text is in the cache now (`embed_new` added those it lacked).
        let features: Vec<Vec<f32>> = texts.iter().map(|t| self.features.get(t).cloned().unwrap_or_default()).collect();
        let ids: Vec<usize> = label_ids.iter().map(|&l| l as usize).collect();
        let training = crate::tasks::heads::trainer::HeadTraining::new(features, &ids, labels, spec, &options, self.encoder.model().device()).await.map_err(js)?;
        let (train, held_out) = training.sizes();
        self.training = Some(training);
        to_js(&serde_json::json!({"train": train, "heldOut": held_out, "embedded": embedded}))
    }

    /// Compute and keep the head features of the `texts` not seen before (in slices, so that a page
    /// can abort between them); resolves to how many were new. Features depend only on the encoder
    /// (mean-pooled, normalised last layer), not on the head's options.
    #[wasm_bindgen(js_name = trainEmbed)]
    pub async fn train_embed(&mut self, texts: Vec<String>) -> Result<usize, JsError> {
        self.embed_new(&texts).await
    }

    /// Classify with the head in `bytes` (a `head.safetensors`) from now on; resolves to its labels.
    #[wasm_bindgen(js_name = attachHead)]
    pub fn attach_head(&mut self, bytes: &[u8]) -> Result<Vec<String>, JsError> {
        self.encoder.attach_head(bytes, "head.safetensors").map_err(js)?;
        Ok(self.encoder.labels().to_vec())
    }

    /// Up to `n` more epochs of the training `train_start` began; resolves to its progress
    /// `{ epoch, epochs, bestEpoch, valLoss (the best epoch's), lastLoss, done }`.
    #[wasm_bindgen(js_name = trainEpochs)]
    pub async fn train_epochs(&mut self, n: usize) -> Result<JsValue, JsError> {
        let training = self.training.as_mut().ok_or_else(|| js(Error::Invalid("no training in progress (call trainStart first)".into())))?;
        to_js(&training.epochs(n).await.map_err(js)?)
    }

    /// End the training: the best head becomes this classifier's head; returns its `head.safetensors`
    /// bytes (what `save()` hands the page).
    #[wasm_bindgen(js_name = trainFinish)]
    pub async fn train_finish(&mut self, encoder_name: String) -> Result<Vec<u8>, JsError> {
        let training = self.training.take().ok_or_else(|| js(Error::Invalid("no training in progress (call trainStart first)".into())))?;
        let bytes = training.head_file(&encoder_name).await.map_err(js)?;
        self.encoder.attach_head(&bytes, "trained head").map_err(js)?;
        Ok(bytes)
    }

    /// Token ids per text, as the model sees them (special tokens, truncation).
    pub fn tokenize(&self, texts: Vec<String>) -> Result<Vec<js_sys::Uint32Array>, JsError> {
        let ids = self.encoder.tokenize(&texts).map_err(js)?;
        Ok(ids.iter().map(|v| js_sys::Uint32Array::from(v.as_slice())).collect())
    }
}

impl Classifier {
    /// Compute and keep the head features of the `texts` not cached yet; how many were new.
    async fn embed_new(&mut self, texts: &[String]) -> Result<usize, JsError> {
        if self.features.len() + texts.len() > 4 * MAX_EXAMPLES {
            self.features.clear(); // a page streaming many texts through: memory stays bounded
        }
        let spec = crate::base::options::HeadOptions::default().spec(self.encoder.max_len());
        let mut new: Vec<&String> = texts.iter().filter(|t| !self.features.contains_key(*t)).collect();
        new.sort();
        new.dedup();
        let computed = self.encoder.features(&new, &spec).await.map_err(js)?;
        let count = new.len();
        for (t, f) in new.into_iter().zip(computed) {
            self.features.insert(t.clone(), f);
        }
        Ok(count)
    }
}
