//! `Runtime` (a device chosen once) and `Tokenizer`.

use wasm_bindgen::JsCast;
use wasm_bindgen::prelude::*;

use crate::base::backend::{self, Backend, DeviceChoice};
use crate::base::error::Error;
use crate::wasm::js;

/// A compute device chosen once; models are created on it.
#[wasm_bindgen]
pub struct Runtime {
    pub(crate) backend: Backend,
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
