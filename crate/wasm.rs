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
