//! `Vector`: a steering vector on the host, its arithmetic and file bytes.

use wasm_bindgen::prelude::*;

use crate::base::error::Error;
use crate::wasm::js;

/// A steering vector (`veer-vector/1` safetensors), held on the host until a generation uses it.
#[wasm_bindgen]
pub struct Vector {
    pub(crate) inner: crate::steering::vector::Vector,
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
