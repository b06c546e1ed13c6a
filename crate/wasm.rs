//! The wasm-bindgen surface. Every export returns `Result<_, JsError>`: a panic would abort the module
//! and take the page's models with it, so errors travel as values with a message a user can act on.

use serde::Serialize;
use wasm_bindgen::JsCast;
use wasm_bindgen::prelude::*;

use crate::backend::{self, Backend, DeviceChoice};
use crate::error::Error;

fn js(e: Error) -> JsError {
    JsError::new(&format!("[{}] {e}", e.code()))
}

#[wasm_bindgen(start)]
pub fn start() {
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
        Ok(Tokenizer { inner: crate::tokenizer::load(bytes, "tokenizer.json").map_err(js)? })
    }

    /// Token ids of `text`; `addSpecialTokens` adds the model's special tokens.
    pub fn encode(&self, text: &str, add_special_tokens: bool) -> Result<Vec<u32>, JsError> {
        crate::tokenizer::encode(&self.inner, text, add_special_tokens).map_err(js)
    }
}

/// Options for `Classifier.create` (all optional).
#[derive(serde::Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct EncoderOptions {
    max_length: Option<usize>,
    pooling: Option<String>,
    normalize: Option<bool>,
    batch_size: Option<usize>,
}

#[derive(serde::Serialize)]
struct ClassificationJs {
    label: String,
    score: f32,
    scores: std::collections::BTreeMap<String, f32>,
}

/// Deserialize an options object, rejecting keys it does not know: serde-wasm-bindgen only reads the
/// fields it expects, so a typo (`maxLenght`) would otherwise be silently ignored.
fn options_from_js<T: serde::de::DeserializeOwned + Default>(options: JsValue, known: &[&str]) -> Result<T, JsError> {
    if options.is_undefined() || options.is_null() {
        return Ok(T::default());
    }
    let object = options.dyn_ref::<js_sys::Object>().ok_or_else(|| js(Error::Invalid("options must be an object".into())))?;
    for key in js_sys::Object::keys(object).iter() {
        let key = key.as_string().unwrap_or_default();
        if !known.contains(&key.as_str()) {
            return Err(js(Error::Invalid(format!("options.{key} is not an option (known: {})", known.join(", ")))));
        }
    }
    serde_wasm_bindgen::from_value(options).map_err(|e| js(Error::Invalid(format!("options: {e}"))))
}

/// A BERT-family encoder (embeddings) with an optional sequence-classification head.
#[wasm_bindgen]
pub struct Classifier {
    encoder: crate::encoder::Encoder,
    device: String,
}

#[wasm_bindgen]
impl Classifier {
    /// Build from the bytes of config.json, model.safetensors and tokenizer.json on `runtime`'s device.
    /// `options`: `{ maxLength, pooling: "mean" | "cls", normalize, batchSize }`, all optional.
    /// Weights are uploaded once, here.
    pub fn create(runtime: &Runtime, config: &[u8], weights: &[u8], tokenizer: &[u8], options: JsValue) -> Result<Classifier, JsError> {
        let opts: EncoderOptions = options_from_js(options, &["maxLength", "pooling", "normalize", "batchSize"])?;
        let pooling = match opts.pooling.as_deref() {
            None | Some("mean") => crate::bert::Pooling::Mean,
            Some("cls") => crate::bert::Pooling::Cls,
            Some(other) => return Err(js(Error::Invalid(format!("options.pooling `{other}`: expected \"mean\" or \"cls\"")))),
        };
        let defaults = crate::encoder::Options::default();
        let options = crate::encoder::Options {
            max_len: opts.max_length,
            pooling,
            normalize: opts.normalize.unwrap_or(defaults.normalize),
            batch_size: opts.batch_size.unwrap_or(defaults.batch_size),
        };
        let encoder = crate::encoder::Encoder::load(config, weights, tokenizer, options, &runtime.backend.device).map_err(js)?;
        Ok(Classifier { encoder, device: runtime.device() })
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

    /// Token ids per text, as the model sees them (special tokens, truncation).
    pub fn tokenize(&self, texts: Vec<String>) -> Result<Vec<js_sys::Uint32Array>, JsError> {
        let ids = self.encoder.tokenize(&texts).map_err(js)?;
        Ok(ids.iter().map(|v| js_sys::Uint32Array::from(v.as_slice())).collect())
    }
}

// --- decoder -----------------------------------------------------------------------------------------

/// A steering vector (`veer-vector/1` safetensors), held on the host until a generation uses it.
#[wasm_bindgen]
pub struct Vector {
    inner: crate::steer::Vector,
}

#[wasm_bindgen]
impl Vector {
    /// Parse a vector file: veer's safetensors or a llama.cpp GGUF control vector. Throws on anything
    /// that is not one (HTML error page, wrong tensors).
    #[wasm_bindgen(js_name = fromBytes)]
    pub fn from_bytes(bytes: &[u8]) -> Result<Vector, JsError> {
        Ok(Vector { inner: crate::steer::Vector::from_bytes(bytes, "vector file").map_err(js)? })
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

    pub fn scale(&self, factor: f32) -> Vector {
        Vector { inner: self.inner.scale(factor) }
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

/// Options for `Generator.start` (all optional).
#[derive(serde::Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct StartOptions {
    max_tokens: Option<usize>,
    temperature: Option<f32>,
    top_k: Option<usize>,
    top_p: Option<f32>,
    repetition_penalty: Option<f32>,
    seed: Option<u64>,
    stop: Vec<String>,
    stop_ids: Vec<u32>,
    chat: bool,
    mode: Option<String>,
    layers: Option<[usize; 2]>,
}

#[derive(serde::Deserialize)]
struct Pair {
    from: String,
    to: String,
}

/// A Llama-family decoder with its tokenizer and chat template; one generation at a time, token by
/// token (`start`, then `next` until it resolves to `undefined`), so pages stream and abort freely.
#[wasm_bindgen]
pub struct Generator {
    model: crate::generate::Model,
    device: Backend,
    vectors: Vec<(crate::steer::Vector, f32)>,
    steering: Option<crate::steer::Steering>,
    current: Option<crate::generate::Generation>,
}

#[wasm_bindgen]
impl Generator {
    /// From the bytes of config.json, model.safetensors, tokenizer.json and (optional)
    /// tokenizer_config.json, which carries the chat template. Weights are uploaded once, here.
    pub fn create(
        runtime: &Runtime,
        config: &[u8],
        weights: &[u8],
        tokenizer: &[u8],
        tokenizer_config: Option<Vec<u8>>,
        name: Option<String>,
    ) -> Result<Generator, JsError> {
        let model = crate::generate::Model::load(config, weights, tokenizer, tokenizer_config.as_deref(), &name.unwrap_or_default(), &runtime.backend.device)
            .map_err(js)?;
        Ok(Generator { model, device: runtime.backend.clone(), vectors: Vec::new(), steering: None, current: None })
    }

    #[wasm_bindgen(getter)]
    pub fn device(&self) -> String {
        self.device.kind.name().to_string()
    }

    /// Token ids of `text` (no special tokens added).
    pub fn encode(&self, text: &str) -> Result<Vec<u32>, JsError> {
        self.model.encode(text).map_err(js)
    }

    /// `messages`: `[{role, content}]`. The prompt text the model's template makes of them.
    #[wasm_bindgen(js_name = applyChatTemplate)]
    pub fn apply_chat_template(&self, messages: JsValue, add_generation_prompt: bool) -> Result<String, JsError> {
        let messages: Vec<crate::generate::Message> =
            serde_wasm_bindgen::from_value(messages).map_err(|e| js(Error::Invalid(format!("messages: expected [{{role, content}}]: {e}"))))?;
        self.model.apply_chat_template(&messages, add_generation_prompt).map_err(js)
    }

    /// Add `vector` at `strength` to the steering of the next `start` (checked against the model).
    pub fn steer(&mut self, vector: &Vector, strength: f32) -> Result<(), JsError> {
        let c = &self.model.llama.config;
        let mut v = vector.inner.clone();
        v.fit(c.num_hidden_layers, c.hidden_size, "vector").map_err(js)?;
        self.vectors.push((v, strength));
        Ok(())
    }

    /// Remove all steering vectors (takes effect at the next `start`).
    #[wasm_bindgen(js_name = clearSteering)]
    pub fn clear_steering(&mut self) {
        self.vectors.clear();
    }

    /// Begin a generation (prefill). Options: `{ maxTokens, temperature, topK, topP,
    /// repetitionPenalty, seed, stop: [string], stopIds: [number], chat, mode: "icv"|"residual",
    /// layers: [start, end] }`. Resolves to the prompt's token ids. Any generation in progress ends.
    pub async fn start(&mut self, prompt: String, options: JsValue) -> Result<Vec<u32>, JsError> {
        self.current = None;
        let known = ["maxTokens", "temperature", "topK", "topP", "repetitionPenalty", "seed", "stop", "stopIds", "chat", "mode", "layers"];
        let o: StartOptions = options_from_js(options, &known)?;
        let c = &self.model.llama.config;
        let text = if o.chat {
            self.model.apply_chat_template(&[crate::generate::Message { role: "user".into(), content: prompt }], true).map_err(js)?
        } else {
            prompt
        };
        let ids = self.model.encode(&text).map_err(js)?;
        let d = crate::sample::SamplingParams::default();
        let params = crate::generate::GenerateParams {
            max_tokens: o.max_tokens.unwrap_or(64),
            sampling: crate::sample::SamplingParams {
                temperature: o.temperature.unwrap_or(d.temperature),
                top_k: o.top_k.unwrap_or(d.top_k),
                top_p: o.top_p.unwrap_or(d.top_p),
                repetition_penalty: o.repetition_penalty.unwrap_or(d.repetition_penalty),
                seed: o.seed.unwrap_or(d.seed),
            },
            stop: o.stop,
            stop_ids: o.stop_ids,
        };
        self.steering = match self.vectors.first() {
            None => None,
            Some((first, _)) => {
                let injection = match o.mode.as_deref() {
                    Some(m) => m.parse().map_err(js)?,
                    None => first.injection,
                };
                let range = match o.layers {
                    Some([a, b]) if a < b && b <= c.num_hidden_layers => a..b,
                    Some([a, b]) => return Err(js(Error::Invalid(format!("layers [{a}, {b}]: expected start < end ≤ {}", c.num_hidden_layers)))),
                    None => 0..c.num_hidden_layers,
                };
                Some(crate::steer::Steering::new(&self.vectors, injection, range, &self.device.device).map_err(js)?)
            }
        };
        let steer: &dyn crate::llama::Steer = match &self.steering {
            Some(s) => s,
            None => &crate::llama::Plain,
        };
        self.current = Some(crate::generate::Generation::start(&self.model, ids.clone(), params, steer).await.map_err(js)?);
        Ok(ids)
    }

    /// The next `{ id, text }`, or `undefined` when the generation has finished (or none is running).
    pub async fn next(&mut self) -> Result<JsValue, JsError> {
        let Some(generation) = self.current.as_mut() else { return Ok(JsValue::UNDEFINED) };
        let steer: &dyn crate::llama::Steer = match &self.steering {
            Some(s) => s,
            None => &crate::llama::Plain,
        };
        match generation.next(&self.model, steer).await {
            Ok(Some(piece)) => piece.serialize(&serde_wasm_bindgen::Serializer::json_compatible()).map_err(|e| JsError::new(&e.to_string())),
            Ok(None) => Ok(JsValue::UNDEFINED),
            Err(e) => {
                self.current = None;
                Err(js(e))
            }
        }
    }

    /// Why the last generation ended: `"eos"`, `"stop"`, `"max_tokens"`, or `undefined` while running.
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
        let pairs: Vec<Pair> = serde_wasm_bindgen::from_value(pairs).map_err(|e| js(Error::Invalid(format!("pairs: expected [{{from, to}}]: {e}"))))?;
        let ids = pairs
            .iter()
            .map(|p| Ok((self.model.encode(&p.from)?, self.model.encode(&p.to)?)))
            .collect::<crate::Result<Vec<_>>>()
            .map_err(js)?;
        let method = method.as_deref().unwrap_or("pca").parse().map_err(js)?;
        let inner = crate::icv::compute(&self.model.llama, &ids, method, &self.model.name).await.map_err(js)?;
        Ok(Vector { inner })
    }
}
