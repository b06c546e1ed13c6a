//! `Generator`: a decoder with its vectors, generating token by token.

use serde::Serialize;
use wasm_bindgen::prelude::*;

use crate::base::backend::Backend;
use crate::base::error::Error;
use crate::base::options::{DecoderOptions, GenerateOptions};
use crate::wasm::runtime::Runtime;
use crate::wasm::vector::Vector;
use crate::wasm::{ModelFiles, js, options_from_js};

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

    /// What memory holds: "int8" or "q4" (quantised, the CPU's default), or "f32" (a GPU, or asked for).
    #[wasm_bindgen(getter)]
    pub fn weights(&self) -> String {
        self.model.llama.weights.to_string()
    }

    /// Token ids of `text` (no special tokens added).
    pub fn encode(&self, text: &str) -> Result<Vec<u32>, JsError> {
        self.model.encode(text).map_err(js)
    }

    /// `messages`: `[{role, content}]`. The prompt text the model's template makes of them.
    #[wasm_bindgen(js_name = applyChatTemplate)]
    pub fn apply_chat_template(&self, messages: JsValue, add_generation_prompt: bool) -> Result<String, JsError> {
        let messages: Vec<crate::tasks::generate::Message> =
            // serde-wasm-bindgen's message prints the offending value (the user's text): not passed on.
            serde_wasm_bindgen::from_value(messages).map_err(|_| js(Error::Invalid("messages: expected [{role, content}], both strings".into())))?;
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
        let pairs: Vec<crate::steering::icv::Pair> = serde_wasm_bindgen::from_value(pairs).map_err(|_| js(Error::Invalid("pairs: expected [{from, to}], both strings".into())))?;
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
