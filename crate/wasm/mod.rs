//! The wasm-bindgen surface. Every export returns `Result<_, JsError>`: a panic would abort the module
//! and take the page's models with it, so errors travel as values with a message a user can act on.
//!
//! One file per exported class: `runtime` (device, tokenizer), `classifier` (embed, classify, train),
//! `vector`, `generator`; here the helpers they share.

pub mod classifier;
pub mod generator;
pub mod runtime;
pub mod vector;

use wasm_bindgen::prelude::*;

use crate::base::backend;
use crate::base::error::Error;

pub(crate) fn js(e: Error) -> JsError {
    JsError::new(&format!("[{}] {e}", e.code()))
}

/// A plain JS object (JSON-compatible: maps become objects).
pub(crate) fn to_js(value: &impl serde::Serialize) -> Result<JsValue, JsError> {
    value.serialize(&serde_wasm_bindgen::Serializer::json_compatible()).map_err(|e| JsError::new(&e.to_string()))
}

#[wasm_bindgen(start)]
pub fn start() {
    backend::run_static_constructors();
    console_error_panic_hook::set_once();
}

/// The veer version, e.g. `"0.1.0"`.
/// Bytes of this instance's linear memory (it only grows): what the weights, caches and buffers of the
/// models it holds have taken at their peak (`model.info.memoryBytes` after a load).
#[wasm_bindgen(js_name = memoryBytes)]
pub fn memory_bytes() -> f64 {
    #[cfg(target_arch = "wasm32")]
    return (core::arch::wasm32::memory_size(0) * 65536) as f64;
    #[cfg(not(target_arch = "wasm32"))]
    0.0
}

#[wasm_bindgen]
pub fn version() -> String {
    env!("CARGO_PKG_VERSION").to_string()
}

/// A request type from a JS options object. Through JSON rather than serde-wasm-bindgen, which reads
/// only the fields it expects: serde's `deny_unknown_fields` then reports a typo with the known names.
/// `undefined`/`null` give the defaults.
pub(crate) fn options_from_js<T: serde::de::DeserializeOwned + Default>(options: &JsValue, what: &str) -> Result<T, JsError> {
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
    pub(crate) fn take(&mut self) -> Result<crate::io::files::ModelFiles, JsError> {
        crate::io::files::ModelFiles::from_parts(std::mem::take(&mut self.parts)).map_err(js)
    }
}
