//! The wasm-bindgen surface. Every export returns `Result<_, JsError>`: a panic would abort the module
//! and take the page's models with it, so errors travel as values with a message a user can act on.

use serde::Serialize;
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;

use crate::base::backend::{self, Backend, DeviceChoice};
use crate::base::limits::MAX_EXAMPLES;
use crate::base::error::Error;
use crate::base::options::{DecoderOptions, EncoderOptions, GenerateOptions};

fn js(e: Error) -> JsError {
    JsError::new(&format!("[{}] {e}", e.code()))
}

/// A plain JS object (JSON-compatible: maps become objects).
fn to_js(value: &impl serde::Serialize) -> Result<JsValue, JsError> {
    value.serialize(&serde_wasm_bindgen::Serializer::json_compatible()).map_err(|e| JsError::new(&e.to_string()))
}

#[wasm_bindgen(start)]
pub fn start() {
    backend::run_static_constructors();
    console_error_panic_hook::set_once();
}

/// The veer version, e.g. `"0.1.0"`.
#[wasm_bindgen]
pub fn version() -> String {
    env!("CARGO_PKG_VERSION").to_string()
}

/// A compute device chosen once; models are created on it.
#[wasm_bindgen]
pub struct Runtime {
    backend: Backend,
}

#[wasm_bindgen]
impl Runtime {
    /// `device`: `"auto"` (WebGPU, else CPU), `"webgpu"` or `"cpu"`. Rejects if `"webgpu"` is asked for
    /// and the browser has no usable adapter; `"auto"` then falls back and says why in `fallbackReason`.
    pub async fn create(device: String) -> Result<Runtime, JsError> {
        let choice: DeviceChoice = device.parse().map_err(js)?;
        let backend = backend::select(choice).await.map_err(js)?;
        Ok(Runtime { backend })
    }

    /// `"webgpu"` or `"cpu"`.
    #[wasm_bindgen(getter)]
    pub fn device(&self) -> String {
        self.backend.kind.name().to_string()
    }

    /// Why `"auto"` fell back to the CPU, or `undefined`.
    #[wasm_bindgen(getter, js_name = fallbackReason)]
    pub fn fallback_reason(&self) -> Option<String> {
        self.backend.fallback_reason.clone()
    }

    /// Runs a small matmul + softmax on this device and on the CPU; resolves to the max |difference|.
    #[wasm_bindgen(js_name = selfCheck)]
    pub async fn self_check(&self) -> Result<f32, JsError> {
        backend::self_check(&self.backend).await.map_err(js)
    }

    /// This machine's single-thread bounds in this worker (`bench::Roofline`: read GB/s, f32 GFLOP/s,
    /// int8 G multiply–adds/s; about a second): what a page's CPU results can be put against.
    pub fn roofline(&self) -> Result<JsValue, JsError> {
        let perf = js_sys::Reflect::get(&js_sys::global(), &JsValue::from_str("performance")).ok().filter(|p| !p.is_undefined());
        let now = || perf.as_ref().and_then(|p| js_sys::Reflect::get(p, &JsValue::from_str("now")).ok().and_then(|f| f.dyn_into::<js_sys::Function>().ok()).and_then(|f| f.call0(p).ok()).and_then(|v| v.as_f64())).unwrap_or(0.0);
        let r = crate::tasks::bench::roofline(now).map_err(js)?;
        serde_wasm_bindgen::to_value(&r).map_err(|e| js(Error::Invalid(e.to_string())))
    }
}

/// A tokenizer built from the bytes of `tokenizer.json`.
#[wasm_bindgen]
pub struct Tokenizer {
    inner: tokenizers::Tokenizer,
}

#[wasm_bindgen]
impl Tokenizer {
    /// `bytes`: the contents of tokenizer.json. Throws if they are not a tokenizer (an HTML error page,
    /// a truncated download).
    #[wasm_bindgen(constructor)]
    pub fn new(bytes: &[u8]) -> Result<Tokenizer, JsError> {
        Ok(Tokenizer { inner: crate::io::tokenizer::load(bytes, "tokenizer.json").map_err(js)? })
    }

    /// Token ids of `text`; `addSpecialTokens` adds the model's special tokens.
    pub fn encode(&self, text: &str, add_special_tokens: bool) -> Result<Vec<u32>, JsError> {
        crate::io::tokenizer::encode(&self.inner, text, add_special_tokens).map_err(js)
    }
}

#[derive(serde::Serialize)]
struct ClassificationJs {
    label: String,
    score: f32,
    scores: std::collections::BTreeMap<String, f32>,
}

/// A request type from a JS options object. Through JSON rather than serde-wasm-bindgen, which reads
/// only the fields it expects: serde's `deny_unknown_fields` then reports a typo with the known names.
/// `undefined`/`null` give the defaults.
fn options_from_js<T: serde::de::DeserializeOwned + Default>(options: &JsValue, what: &str) -> Result<T, JsError> {
    if options.is_undefined() || options.is_null() {
        return Ok(T::default());
    }
    if !options.is_object() || js_sys::Array::is_array(options) {
        return Err(js(Error::Invalid(format!("{what}: expected an object"))));
    }
    // JSON drops functions silently (`progress_callback: fn` would vanish): no option takes one.
    let object = js_sys::Object::from(options.clone());
    for entry in js_sys::Object::entries(&object).iter() {
        let entry = js_sys::Array::from(&entry);
        if entry.get(1).is_function() {
            let key = entry.get(0).as_string().unwrap_or_default();
            return Err(js(Error::Invalid(format!("{what}.{key}: a function is not an option value"))));
        }
    }
    let text = js_sys::JSON::stringify(options).map_err(|_| js(Error::Invalid(format!("{what}: not serialisable as JSON"))))?;
    crate::base::options::from_json(&String::from(text), what).map_err(js)
}

/// The files of a model folder, as fetched: `add(role, name, bytes)` for each, then hand the bundle to
/// `Classifier.create` or `Generator.create`. Roles: config, weights, tokenizer (required),
/// tokenizerConfig, pooling (1_Pooling/config.json), sentenceBert (sentence_bert_config.json).
#[wasm_bindgen]
#[derive(Default)]
pub struct ModelFiles {
    parts: Vec<(String, crate::io::files::File)>,
}

#[wasm_bindgen]
impl ModelFiles {
    #[wasm_bindgen(constructor)]
    pub fn new() -> ModelFiles {
        ModelFiles::default()
    }

    /// `name`: what errors call the file (the URL or file name it was fetched as).
    pub fn add(&mut self, role: String, name: String, bytes: Vec<u8>) {
        self.parts.push((role, crate::io::files::File { name, bytes }));
    }
}

impl ModelFiles {
    fn take(&mut self) -> Result<crate::io::files::ModelFiles, JsError> {
        crate::io::files::ModelFiles::from_parts(std::mem::take(&mut self.parts)).map_err(js)
    }
}

/// A BERT-family encoder (embeddings) with an optional sequence-classification head.
#[wasm_bindgen]
pub struct Classifier {
    encoder: crate::tasks::encode::Encoder,
    device: String,
    /// Head features per text, computed once for every training on this instance (memory only).
    features: std::collections::HashMap<String, Vec<f32>>,
    training: Option<crate::tasks::heads::HeadTraining>,
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
        let training = crate::tasks::heads::HeadTraining::new(features, &ids, labels, spec, &options, self.encoder.model().device()).await.map_err(js)?;
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

// --- decoder -----------------------------------------------------------------------------------------

/// A steering vector (`veer-vector/1` safetensors), held on the host until a generation uses it.
#[wasm_bindgen]
pub struct Vector {
    inner: crate::steering::vector::Vector,
}

#[wasm_bindgen]
impl Vector {
    /// Parse a vector file: veer's safetensors or a llama.cpp GGUF control vector. Throws on anything
    /// that is not one (HTML error page, wrong tensors).
    #[wasm_bindgen(js_name = fromBytes)]
    pub fn from_bytes(bytes: &[u8]) -> Result<Vector, JsError> {
        Ok(Vector { inner: crate::steering::vector::Vector::from_bytes(bytes, "vector file").map_err(js)? })
    }

    /// The file bytes (to store or download).
    #[wasm_bindgen(js_name = toBytes)]
    pub fn to_bytes(&self) -> Result<Vec<u8>, JsError> {
        self.inner.to_safetensors().map_err(js)
    }

    pub fn add(&self, other: &Vector) -> Result<Vector, JsError> {
        Ok(Vector { inner: self.inner.add(&other.inner).map_err(js)? })
    }

    pub fn sub(&self, other: &Vector) -> Result<Vector, JsError> {
        Ok(Vector { inner: self.inner.sub(&other.inner).map_err(js)? })
    }

    pub fn scale(&self, factor: f32) -> Result<Vector, JsError> {
        Ok(Vector { inner: self.inner.scale(factor).map_err(js)? })
    }

    pub fn normalize(&self) -> Vector {
        Vector { inner: self.inner.normalize() }
    }

    #[wasm_bindgen(getter, js_name = numLayers)]
    pub fn num_layers(&self) -> usize {
        self.inner.layers.len()
    }

    #[wasm_bindgen(getter)]
    pub fn hidden(&self) -> usize {
        self.inner.hidden()
    }

    #[wasm_bindgen(getter)]
    pub fn method(&self) -> String {
        self.inner.method.clone()
    }

    #[wasm_bindgen(getter)]
    pub fn model(&self) -> String {
        self.inner.model.clone()
    }

    #[wasm_bindgen(getter, js_name = defaultStrength)]
    pub fn default_strength(&self) -> f32 {
        self.inner.default_strength
    }

    /// Layer `i` as a Float32Array.
    pub fn layer(&self, i: usize) -> Result<js_sys::Float32Array, JsError> {
        let row = self.inner.layers.get(i).ok_or_else(|| js(Error::Invalid(format!("layer {i} of {}", self.inner.layers.len()))))?;
        Ok(js_sys::Float32Array::from(row.as_slice()))
    }
}

/// A Llama-family decoder with its tokenizer and chat template; one generation at a time, token by
/// token (`start`, then `next` until it resolves to `undefined`), so pages stream and abort freely.
/// Steering vectors live here, by id (`putVector`), so a request names them and bytes cross once.
#[wasm_bindgen]
pub struct Generator {
    model: crate::tasks::generate::Model,
    device: Backend,
    vectors: std::collections::HashMap<String, crate::steering::vector::Vector>,
    steering: Option<crate::steering::hook::Steering>,
    /// The generation in progress or the last one, whose KV cache the next `start` may continue
    /// (under the same steering: `steer_key`).
    current: Option<crate::tasks::generate::Generation>,
    steer_key: String,
    /// Bumped whenever a vector is put: part of `steer_key`, since a vector replaced
    /// under the same id steers differently.
    vectors_version: u64,
}

#[wasm_bindgen]
impl Generator {
    /// From a model folder's files (tokenizerConfig carries the chat template). `name` is recorded in
    /// the vectors computed with this model. Weights are uploaded once, here.
    /// `options`: `DecoderOptions` (`{weights: "f32" | "int8"}`).
    pub fn create(runtime: &Runtime, files: &mut ModelFiles, name: Option<String>, options: JsValue) -> Result<Generator, JsError> {
        let options: DecoderOptions = options_from_js(&options, "options")?;
        let model = crate::tasks::generate::Model::load_with(&files.take()?, &name.unwrap_or_default(), &runtime.backend.device, &options).map_err(js)?;
        Ok(Generator { model, device: runtime.backend.clone(), vectors: Default::default(), steering: None, current: None, steer_key: String::new(), vectors_version: 0 })
    }

    #[wasm_bindgen(getter)]
    pub fn device(&self) -> String {
        self.device.kind.name().to_string()
    }

    /// How the weights are held: "f32" or "int8" (asked for, and on the CPU).
    #[wasm_bindgen(getter)]
    pub fn weights(&self) -> String {
        self.model.llama.weights.name().to_string()
    }

    /// Token ids of `text` (no special tokens added).
    pub fn encode(&self, text: &str) -> Result<Vec<u32>, JsError> {
        self.model.encode(text).map_err(js)
    }

    /// `messages`: `[{role, content}]`. The prompt text the model's template makes of them.
    #[wasm_bindgen(js_name = applyChatTemplate)]
    pub fn apply_chat_template(&self, messages: JsValue, add_generation_prompt: bool) -> Result<String, JsError> {
        let messages: Vec<crate::tasks::generate::Message> =
            serde_wasm_bindgen::from_value(messages).map_err(|e| js(Error::Invalid(format!("messages: expected [{{role, content}}]: {e}"))))?;
        self.model.apply_chat_template(&messages, add_generation_prompt).map_err(js)
    }

    /// Keep `vector` under `id` for requests to name in `steer: [{vector: id, strength}]`.
    #[wasm_bindgen(js_name = putVector)]
    pub fn put_vector(&mut self, id: String, vector: &Vector) {
        self.vectors.insert(id, vector.inner.clone());
        self.vectors_version += 1;
    }

    #[wasm_bindgen(js_name = hasVector)]
    pub fn has_vector(&self, id: &str) -> bool {
        self.vectors.contains_key(id)
    }

    #[wasm_bindgen(js_name = dropVector)]
    pub fn drop_vector(&mut self, id: &str) {
        self.vectors.remove(id);
    }

    /// Begin a generation (prefill). `prompt`: a string, or OpenAI-style `[{role, content}]` messages
    /// (rendered by the chat template). `options`: the `GenerateOptions` of veer.d.ts (`maxTokens`,
    /// `temperature`, `topK`, `topP`, `minP`, `repetitionPenalty`, `seed`, `stop`, `stopIds`, `chat`,
    /// `steer: [{vector: id, strength}]`, `mode`, `layers`). Resolves to the prompt's token ids. Any
    /// generation in progress ends; under the same steering its KV cache is continued where the new
    /// prompt repeats what it read (`reused`).
    pub async fn start(&mut self, prompt: JsValue, options: JsValue) -> Result<Vec<u32>, JsError> {
        let previous = self.current.take();
        self.steering = None;
        let prompt: serde_json::Value =
            serde_wasm_bindgen::from_value(prompt).map_err(|_| js(Error::Invalid("prompt: expected a string or [{role, content}] messages".into())))?;
        let prompt = crate::tasks::generate::Prompt::from_json(prompt).map_err(js)?;
        let o: GenerateOptions = options_from_js(&options, "options")?;
        // The cache holds keys and values computed under the steering of its generation.
        let steer_key = serde_json::to_string(&(&o.steer, &o.mode, &o.layers, self.vectors_version)).unwrap_or_default();
        let previous = previous.filter(|_| steer_key == self.steer_key);
        self.steer_key = steer_key;
        let vectors = &self.vectors;
        let spec = crate::steering::spec::SteeringSpec::resolve(&o, |id| {
            vectors.get(id).cloned().ok_or_else(|| Error::Invalid(format!("steer: vector `{id}` was not given to this generator")))
        })
        .map_err(js)?;
        self.steering = spec.build(&self.model.llama).map_err(js)?;
        let hook = crate::steering::hook::hook(self.steering.as_ref());
        let generation = crate::tasks::generate::Generation::resume(previous, &self.model, prompt, &o, hook).await.map_err(js)?;
        let ids = generation.prompt().to_vec();
        self.current = Some(generation);
        Ok(ids)
    }

    /// Prompt tokens of the current generation whose keys and values came from the previous one.
    #[wasm_bindgen(getter)]
    pub fn reused(&self) -> usize {
        self.current.as_ref().map_or(0, |g| g.reused())
    }

    /// The next `{ id, text }`, or `undefined` when the generation has finished (or none is running).
    pub async fn next(&mut self) -> Result<JsValue, JsError> {
        let Some(generation) = self.current.as_mut() else { return Ok(JsValue::UNDEFINED) };
        match generation.next(&self.model, crate::steering::hook::hook(self.steering.as_ref())).await {
            Ok(Some(piece)) => piece.serialize(&serde_wasm_bindgen::Serializer::json_compatible()).map_err(|e| JsError::new(&e.to_string())),
            Ok(None) => Ok(JsValue::UNDEFINED),
            Err(e) => {
                self.current = None;
                Err(js(e))
            }
        }
    }

    /// Why the last generation ended: `"eos"`, `"stop"`, `"max_tokens"`, `"length"` (context full), or
    /// `undefined` while running.
    #[wasm_bindgen(getter)]
    pub fn finish(&self) -> Option<String> {
        let f = self.current.as_ref()?.finish?;
        serde_json::to_value(f).ok()?.as_str().map(str::to_string)
    }

    /// Drop the generation in progress and its KV cache.
    pub fn abort(&mut self) {
        self.current = None;
    }

    /// Compute an in-context vector from `pairs` (`[{from, to}]`); `method`: `"pca"` (default) or `"mean"`.
    #[wasm_bindgen(js_name = computeVector)]
    pub async fn compute_vector(&self, pairs: JsValue, method: Option<String>) -> Result<Vector, JsError> {
        let pairs: Vec<crate::steering::icv::Pair> = serde_wasm_bindgen::from_value(pairs).map_err(|e| js(Error::Invalid(format!("pairs: expected [{{from, to}}]: {e}"))))?;
        let ids = pairs
            .iter()
            .map(|p| Ok((self.model.encode(&p.from)?, self.model.encode(&p.to)?)))
            .collect::<crate::Result<Vec<_>>>()
            .map_err(js)?;
        let method = method.as_deref().unwrap_or("pca").parse().map_err(js)?;
        let inner = crate::steering::icv::compute(&self.model.llama, &ids, method, &self.model.name).await.map_err(js)?;
        Ok(Vector { inner })
    }
}
