//! What a caller may ask of a model: one request type per task, each with its defaults in one
//! `Default`. The wasm bindings (from JS objects), the CLI (clap flags) and code fill the same structs,
//! so an option is added in one place. Unknown fields are errors: a typo (`maxLenght`) is reported with
//! the list of known names instead of being ignored. No `#[serde(flatten)]`: it would disable that check.

use serde::{Deserialize, Serialize};

use crate::bert::Pooling;
use crate::error::{Error, Result};
use crate::steer::{Injection, LayerRange, SteerTerm};

/// How an encoder turns texts into embeddings or scores (`loadClassifier` options, `veer embed|classify`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase", deny_unknown_fields)]
#[cfg_attr(feature = "cli", derive(clap::Args))]
pub struct EncoderOptions {
    /// Tokens per text including [CLS]/[SEP]; longer texts are truncated. Default: the length a
    /// `veer_head` was trained with, else `max_seq_length` of sentence_bert_config.json, else
    /// min(512, max_position_embeddings).
    #[cfg_attr(feature = "cli", arg(long = "max-len", alias = "max-length"))]
    pub max_length: Option<usize>,
    /// Embedding pooling, `mean` or `cls`. Default: 1_Pooling/config.json's, else mean. (A trained
    /// `veer_head` pools as it was trained, whatever this says.)
    #[cfg_attr(feature = "cli", arg(long))]
    pub pooling: Option<Pooling>,
    /// L2-normalise embeddings (`--no-normalize` turns it off).
    #[cfg_attr(feature = "cli", arg(long = "no-normalize", action = clap::ArgAction::SetFalse))]
    pub normalize: bool,
    /// Texts per forward pass (bounds memory; results do not depend on it).
    #[cfg_attr(feature = "cli", arg(long, default_value_t = EncoderOptions::default().batch_size))]
    pub batch_size: usize,
}

impl Default for EncoderOptions {
    fn default() -> Self {
        EncoderOptions { max_length: None, pooling: None, normalize: true, batch_size: 16 }
    }
}

/// How a decoder keeps its weights in memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
pub enum WeightFormat {
    /// The file's values as f32 (F16/BF16 upcast exactly): 4 bytes a weight.
    #[default]
    F32,
    /// Int8 in groups of 32 with an f32 scale each (1.125 bytes a weight), multiplied with int16
    /// activations (`quant`). CPU only; outputs agree closely with f32, not exactly (README).
    Int8,
}

impl WeightFormat {
    /// As options spell it: `"f32"` or `"int8"`.
    pub fn name(self) -> &'static str {
        match self {
            WeightFormat::F32 => "f32",
            WeightFormat::Int8 => "int8",
        }
    }
}

/// How a decoder is loaded (`loadGenerator` options, `veer generate` flags).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase", deny_unknown_fields)]
#[cfg_attr(feature = "cli", derive(clap::Args))]
pub struct DecoderOptions {
    /// Weights in memory: `f32` (default) or `int8` (CPU only: 28 % of the memory, decoding
    /// 1.6–1.8× as fast; README "Int8 decoder weights").
    #[cfg_attr(feature = "cli", arg(long, value_enum, default_value_t = WeightFormat::F32))]
    pub weights: WeightFormat,
}

/// One generation request (`generate()` options in JS, `veer generate` flags): sampling, stop
/// conditions, chat templating and steering.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase", deny_unknown_fields)]
#[cfg_attr(feature = "cli", derive(clap::Args))]
pub struct GenerateOptions {
    /// Tokens to generate at most.
    #[cfg_attr(feature = "cli", arg(long, default_value_t = GenerateOptions::default().max_tokens))]
    pub max_tokens: usize,
    /// 0 = greedy (argmax).
    #[cfg_attr(feature = "cli", arg(long, default_value_t = GenerateOptions::default().temperature))]
    pub temperature: f32,
    /// Keep only the k most likely tokens (0 = off).
    #[cfg_attr(feature = "cli", arg(long, default_value_t = GenerateOptions::default().top_k))]
    pub top_k: usize,
    /// Keep the smallest set of tokens whose probability reaches p (1 = off).
    #[cfg_attr(feature = "cli", arg(long, default_value_t = GenerateOptions::default().top_p))]
    pub top_p: f32,
    /// Drop tokens less likely than min_p × the most likely one's probability (0 = off).
    #[cfg_attr(feature = "cli", arg(long, default_value_t = GenerateOptions::default().min_p))]
    pub min_p: f32,
    /// HF-style: logits of tokens already seen are divided (if positive) or multiplied by this (1 = off).
    #[cfg_attr(feature = "cli", arg(long, default_value_t = GenerateOptions::default().repetition_penalty))]
    pub repetition_penalty: f32,
    /// Sampling seed: the same seed reproduces a generation on every device.
    #[cfg_attr(feature = "cli", arg(long, default_value_t = GenerateOptions::default().seed))]
    pub seed: u64,
    /// Stop when the text contains any of these (the stop string is not returned). Repeatable.
    #[cfg_attr(feature = "cli", arg(long))]
    pub stop: Vec<String>,
    /// Stop on these token ids as well as the model's EOS ids.
    #[cfg_attr(feature = "cli", arg(long = "stop-id"))]
    pub stop_ids: Vec<u32>,
    /// Wrap the prompt as one user message with the model's chat template.
    #[cfg_attr(feature = "cli", arg(long))]
    pub chat: bool,
    /// Steering vectors with strengths (default: each vector's `default_strength`). In JS
    /// `{vector, strength}`; on the CLI `--vector FILE[:STRENGTH]`, repeatable.
    #[cfg_attr(feature = "cli", arg(long = "vector", value_name = "FILE[:STRENGTH]"))]
    pub steer: Vec<SteerTerm>,
    /// How the vectors act: `icv` (at MLP outputs) or `residual` (added to block outputs). Default:
    /// the vectors' own mode, which must then agree.
    #[cfg_attr(feature = "cli", arg(long))]
    pub mode: Option<Injection>,
    /// Blocks the vectors act on, `[start, end)` (CLI: `START..END`). Default: all.
    #[cfg_attr(feature = "cli", arg(long, value_name = "START..END"))]
    pub layers: Option<LayerRange>,
    /// Steer with vectors whose recorded model signature differs from this model's (normally an
    /// error: a vector computed with another model of the same shape steers it somewhere meaningless).
    #[cfg_attr(feature = "cli", arg(long))]
    pub force_vectors: bool,
}

impl Default for GenerateOptions {
    fn default() -> Self {
        GenerateOptions {
            max_tokens: 64,
            temperature: 0.0,
            top_k: 0,
            top_p: 1.0,
            min_p: 0.0,
            repetition_penalty: 1.0,
            seed: 0,
            stop: Vec::new(),
            stop_ids: Vec::new(),
            chat: false,
            steer: Vec::new(),
            mode: None,
            layers: None,
            force_vectors: false,
        }
    }
}

impl GenerateOptions {
    /// Every number in range (NaN included), so sampling never meets a value it cannot use.
    pub fn validate(&self) -> Result<()> {
        let bad = |name: &str, value: f32, want: &str| Err(Error::Invalid(format!("{name} {value}: expected {want}")));
        if !(self.temperature >= 0.0 && self.temperature.is_finite()) {
            return bad("temperature", self.temperature, "a finite number ≥ 0");
        }
        if !(self.top_p > 0.0 && self.top_p <= 1.0) {
            return bad("topP", self.top_p, "0 < topP ≤ 1");
        }
        if !(0.0..=1.0).contains(&self.min_p) {
            return bad("minP", self.min_p, "0 ≤ minP ≤ 1");
        }
        if !(self.repetition_penalty > 0.0 && self.repetition_penalty.is_finite()) {
            return bad("repetitionPenalty", self.repetition_penalty, "a positive number");
        }
        Ok(())
    }
}

/// Parse a request type from JSON text (what the wasm bindings receive), naming the request in errors.
pub fn from_json<T: serde::de::DeserializeOwned>(json: &str, what: &str) -> Result<T> {
    serde_json::from_str(json).map_err(|e| {
        // serde_json appends " at line 1 column N": positions in a JSON text the caller never wrote.
        let message = e.to_string();
        let message = message.split(" at line ").next().unwrap_or_default();
        Error::Invalid(format!("{what}: {message}"))
    })
}

/// The JSON field names of a request type, as JS writes them (for the test that keeps veer.d.ts in step).
pub fn field_names<T: Serialize + Default>() -> Vec<String> {
    match serde_json::to_value(T::default()) {
        Ok(serde_json::Value::Object(map)) => map.keys().cloned().collect(),
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_fields_are_errors_that_list_the_known_ones() {
        let e = from_json::<EncoderOptions>(r#"{"maxLenght": 12}"#, "options").unwrap_err().to_string();
        assert!(e.contains("unknown field `maxLenght`") && e.contains("`maxLength`") && e.contains("`batchSize`"), "{e}");
        assert!(!e.contains("line 1"), "{e}");
        let e = from_json::<GenerateOptions>(r#"{"top_p": 0.5}"#, "options").unwrap_err().to_string();
        assert!(e.contains("unknown field `top_p`") && e.contains("`topP`"), "{e}");
    }

    #[test]
    fn omitted_fields_take_the_one_default() {
        let o: GenerateOptions = from_json(r#"{"minP": 0.1, "steer": [{"vector": "a"}], "layers": [2, 5]}"#, "options").unwrap();
        assert_eq!(o.max_tokens, GenerateOptions::default().max_tokens);
        assert_eq!(o.min_p, 0.1);
        assert_eq!(o.steer, vec![SteerTerm { vector: "a".into(), strength: None }]);
        assert_eq!(o.layers, Some(LayerRange([2, 5])));
        let e: EncoderOptions = from_json(r#"{"pooling": "cls"}"#, "options").unwrap();
        assert_eq!(e, EncoderOptions { pooling: Some(Pooling::Cls), ..Default::default() });
    }

    #[test]
    fn field_names_are_the_camel_case_js_names() {
        let names = field_names::<GenerateOptions>();
        for n in ["maxTokens", "minP", "topP", "repetitionPenalty", "stopIds", "steer", "mode", "layers", "forceVectors"] {
            assert!(names.iter().any(|x| x == n), "{n} in {names:?}");
        }
    }

    #[test]
    fn non_finite_and_out_of_range_numbers_are_rejected() {
        for o in [
            GenerateOptions { temperature: f32::NAN, ..Default::default() },
            GenerateOptions { top_p: 0.0, ..Default::default() },
            GenerateOptions { min_p: 1.5, ..Default::default() },
            GenerateOptions { repetition_penalty: f32::INFINITY, ..Default::default() },
        ] {
            assert!(o.validate().is_err(), "{o:?}");
        }
        assert!(GenerateOptions::default().validate().is_ok());
    }
}
