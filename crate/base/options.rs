//! What a caller may ask of a model: one request type per task, each with its defaults in one
//! `Default`. The wasm bindings (from JS objects), the CLI (clap flags) and code fill the same structs,
//! so an option is added in one place. Unknown fields are errors: a typo (`maxLenght`) is reported with
//! the list of known names instead of being ignored. No `#[serde(flatten)]`: it would disable that check.

use serde::{Deserialize, Serialize};

use std::ops::Range;

use crate::base::error::{Error, Result};

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

/// How a decoder keeps its weights in memory (on the CPU; a GPU keeps f32).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
pub enum WeightFormat {
    /// The file's values as f32 (F16/BF16 upcast exactly, q8/q4 dequantised): 4 bytes a weight.
    F32,
    /// Quantised, the default: a q8 or q4 file's matrices as they are (1.125 / 0.75 bytes a weight);
    /// a float file's quantised to int8 in groups of 32 with an f32 scale each. Multiplied with int16
    /// activations (`quant`, `quant4`); outputs agree closely with f32, not exactly (docs/performance.md,
    /// "Quantised weights").
    #[default]
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
    /// Weights in memory on the CPU: `int8` (default: quantised; a q4 file stays 4-bit) or `f32` (exact,
    /// 3.6× the memory, decoding at about half the speed; docs/performance.md, "Quantised weights").
    #[cfg_attr(feature = "cli", arg(long, value_enum, default_value_t = WeightFormat::Int8))]
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
    /// The sampling numbers of this request.
    pub fn sampler(&self) -> SamplerOptions {
        SamplerOptions { temperature: self.temperature, top_k: self.top_k, top_p: self.top_p, min_p: self.min_p, repetition_penalty: self.repetition_penalty, seed: self.seed }
    }

    /// Every number in range (see `SamplerOptions::validate`).
    pub fn validate(&self) -> Result<()> {
        self.sampler().validate()
    }
}

/// What the sampler reads of a request (`GenerateOptions::sampler`): the numbers that choose a token.
#[derive(Debug, Clone, PartialEq)]
pub struct SamplerOptions {
    pub temperature: f32,
    pub top_k: usize,
    pub top_p: f32,
    pub min_p: f32,
    pub repetition_penalty: f32,
    pub seed: u64,
}

impl SamplerOptions {
    /// Every number in range (NaN included), so sampling never meets a value it cannot use. Errors
    /// name the fields as JS spells them.
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

// --- encoders and their heads -------------------------------------------------------------------------

/// Pooling of the last hidden state into one vector per text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Pooling {
    /// Mean over real (unmasked) tokens: the sentence-transformers default.
    Mean,
    /// The hidden state at position 0 ([CLS]).
    Cls,
}

impl std::str::FromStr for Pooling {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        crate::base::error::parse_name(s, "pooling")
    }
}

/// config.json `veer_head`: a classifier on the pooled sentence embedding rather than on [CLS].
/// Tensors: optional `pre_classifier` [hidden', hidden] with `activation`, then `classifier`.
#[derive(Debug, Clone, Deserialize, serde::Serialize, PartialEq)]
pub struct PooledHead {
    pub pooling: Pooling,
    pub normalize: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub activation: Option<Activation>,
    /// Hidden states pooled and concatenated (0 = embeddings, i = after layer i); empty: the last.
    /// Middle layers carry sentiment and style that a similarity-trained last layer has smoothed away.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub layers: Vec<usize>,
    /// Tokens per text the head was trained with: the default truncation when loading.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_length: Option<usize>,
}

#[derive(Debug, Clone, Copy, Deserialize, serde::Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Activation {
    Relu,
    Gelu,
    Tanh,
}

/// How a classifier head is trained (`veer distill` flags; `HeadOptions` is the browser's and `veer
/// train`'s view of it).
#[derive(Debug, Clone)]
#[cfg_attr(feature = "cli", derive(clap::Args))]
pub struct TrainOptions {
    /// Hidden units of an MLP head (0: linear head).
    #[cfg_attr(feature = "cli", arg(long, default_value_t = TrainOptions::default().hidden))]
    pub hidden: usize,
    #[cfg_attr(feature = "cli", arg(skip = TrainOptions::default().activation))]
    pub activation: Activation,
    /// AdamW learning rate.
    #[cfg_attr(feature = "cli", arg(long, default_value_t = TrainOptions::default().lr))]
    pub lr: f64,
    #[cfg_attr(feature = "cli", arg(long, default_value_t = TrainOptions::default().weight_decay))]
    pub weight_decay: f64,
    /// Examples per mini-batch.
    #[cfg_attr(feature = "cli", arg(long = "batch-size", default_value_t = TrainOptions::default().batch))]
    pub batch: usize,
    /// Epochs per fit.
    #[cfg_attr(feature = "cli", arg(long, default_value_t = TrainOptions::default().epochs))]
    pub epochs: usize,
    /// Epochs without a better held-out loss before stopping.
    #[cfg_attr(feature = "cli", arg(long, default_value_t = TrainOptions::default().patience))]
    pub patience: usize,
    /// Seed of initialisation, shuffling and splits.
    #[cfg_attr(feature = "cli", arg(long, default_value_t = TrainOptions::default().seed))]
    pub seed: u64,
    /// Weight each example by n / (classes × its class's count), so that a rare class counts as much
    /// as a common one (targets' argmax decides the class).
    #[cfg_attr(feature = "cli", arg(long))]
    pub class_weights: bool,
}

impl Default for TrainOptions {
    fn default() -> Self {
        TrainOptions { hidden: 0, activation: Activation::Relu, lr: 3e-3, weight_decay: 1e-4, batch: 32, epochs: 200, patience: 15, seed: 0, class_weights: false }
    }
}

/// What a caller sets for `HeadTraining` (JS `trainClassifier` options; defaults in `Default`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct HeadOptions {
    pub epochs: usize,
    pub seed: u64,
    /// Units of a hidden layer (0: a linear head).
    pub hidden: usize,
    pub learning_rate: f64,
    pub batch_size: usize,
    pub patience: usize,
    /// Fraction of each label's examples held out for early stopping.
    pub holdout: f64,
    pub class_weights: bool,
}

impl Default for HeadOptions {
    fn default() -> Self {
        let t = TrainOptions::default();
        HeadOptions { epochs: t.epochs, seed: 0, hidden: 0, learning_rate: t.lr, batch_size: t.batch, patience: t.patience, holdout: 0.2, class_weights: true }
    }
}

impl HeadOptions {
    /// How the trained head reads the encoder: mean-pooled, normalised last layer (as `veer distill`),
    /// texts truncated to `max_length` tokens.
    pub fn spec(&self, max_length: usize) -> PooledHead {
        PooledHead { pooling: Pooling::Mean, normalize: true, activation: (self.hidden > 0).then_some(Activation::Relu), layers: Vec::new(), max_length: Some(max_length) }
    }

    /// The trainer's settings, each checked against its range.
    pub fn check(&self) -> Result<TrainOptions> {
        let bad = |what: &str, why: &str| Err(Error::Invalid(format!("{what}: {why}")));
        if self.epochs == 0 || self.epochs > 10_000 {
            return bad("epochs", "expected 1..=10000");
        }
        if self.hidden > 4096 {
            return bad("hidden", "at most 4096 units");
        }
        if !(self.learning_rate.is_finite() && self.learning_rate > 0.0 && self.learning_rate <= 1.0) {
            return bad("learningRate", "expected a number in (0, 1]");
        }
        if self.batch_size == 0 || self.batch_size > 4096 {
            return bad("batchSize", "expected 1..=4096");
        }
        if !(self.holdout.is_finite() && self.holdout > 0.0 && self.holdout < 1.0) {
            return bad("holdout", "expected a fraction in (0, 1)");
        }
        Ok(TrainOptions {
            hidden: self.hidden,
            activation: Activation::Relu,
            lr: self.learning_rate,
            batch: self.batch_size,
            epochs: self.epochs,
            patience: self.patience.max(1),
            seed: self.seed,
            class_weights: self.class_weights,
            ..TrainOptions::default()
        })
    }
}

// --- steering ------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Injection {
    Icv,
    Residual,
}

impl std::str::FromStr for Injection {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        crate::base::error::parse_name(s, "injection mode")
    }
}

impl Injection {
    pub fn name(self) -> &'static str {
        match self {
            Injection::Icv => "icv",
            Injection::Residual => "residual",
        }
    }
}

/// One steering term of a request: a vector by handle (a file path on the CLI, a vector id in the
/// browser) and its strength (default: the vector's `default_strength`). CLI form: `FILE[:STRENGTH]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SteerTerm {
    pub vector: String,
    #[serde(default)]
    pub strength: Option<f32>,
}

impl std::str::FromStr for SteerTerm {
    type Err = Error;
    /// `FILE` or `FILE:STRENGTH`; a suffix that is not a number is part of the file name (`C:\v.gguf`).
    fn from_str(spec: &str) -> Result<Self> {
        match spec.rsplit_once(':') {
            Some((file, s)) if !file.is_empty() && s.parse::<f32>().is_ok() => Ok(SteerTerm { vector: file.to_string(), strength: s.parse().ok() }),
            _ => Ok(SteerTerm { vector: spec.to_string(), strength: None }),
        }
    }
}

/// Blocks `[start, end)` that steering acts on. JSON `[start, end]`, CLI `START..END`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct LayerRange(pub [usize; 2]);

impl std::str::FromStr for LayerRange {
    type Err = Error;
    fn from_str(spec: &str) -> Result<Self> {
        let bad = || Error::Invalid(format!("layers `{spec}`: expected START..END, e.g. 10..20"));
        let (a, b) = spec.split_once("..").ok_or_else(bad)?;
        Ok(LayerRange([a.trim().parse().map_err(|_| bad())?, b.trim().parse().map_err(|_| bad())?]))
    }
}

impl LayerRange {
    /// The range, checked against a model of `n` blocks.
    pub fn within(self, n: usize) -> Result<Range<usize>> {
        let [a, b] = self.0;
        if a < b && b <= n { Ok(a..b) } else { Err(Error::Invalid(format!("layers [{a}, {b}]: expected start < end ≤ {n} (the model's blocks)"))) }
    }
}

// --- parsing -------------------------------------------------------------------------------------------

/// Parse a request type from JSON text (what the wasm bindings receive), naming the request in errors.
pub fn from_json<T: serde::de::DeserializeOwned>(json: &str, what: &str) -> Result<T> {
    serde_json::from_str(json).map_err(|e| {
        // serde_json appends " at line 1 column N": positions in a JSON text the caller never wrote.
        let message = e.to_string();
        let message = message.split(" at line ").next().unwrap_or_default();
        Error::Invalid(format!("{what}: {}", without_values(message)))
    })
}

/// A serde error message without the strings it quotes from the input (`invalid type: string "…"`): they
/// may be the user's text (a stop sequence), which errors never contain. Types, field names and variant
/// names (`unknown variant `int4``: an identifier checked against a fixed list) stay.
pub fn without_values(message: &str) -> String {
    const OPEN: &str = "string \"";
    let mut out = String::with_capacity(message.len());
    let mut rest = message;
    while let Some(at) = rest.find(OPEN) {
        out.push_str(&rest[..at + OPEN.len() - 1]);
        out.push_str("(value not shown)");
        // The value is Debug-escaped: \" inside it is not its end.
        let value = &rest[at + OPEN.len()..];
        let mut escaped = false;
        let end = value.char_indices().find(|&(_, c)| {
            let closes = !escaped && c == '"';
            escaped = !escaped && c == '\\';
            closes
        });
        rest = end.map_or("", |(i, _)| &value[i + 1..]);
    }
    out.push_str(rest);
    out
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
    fn request_errors_never_quote_the_input() {
        let e = from_json::<GenerateOptions>(r#"{"temperature": "SECRET \"quoted\" hot"}"#, "generate").unwrap_err().to_string();
        assert!(!e.contains("SECRET") && e.contains("invalid type: string (value not shown)") && e.contains("expected f32"), "{e}");
        let e = from_json::<GenerateOptions>(r#"{"stop": [1], "max_tokens": 2}"#, "generate").unwrap_err().to_string();
        assert!(e.contains("invalid type: integer"), "{e}");
        assert_eq!(without_values("unknown variant `int4`, expected `f32` or `int8`"), "unknown variant `int4`, expected `f32` or `int8`");
        assert_eq!(without_values("no values here"), "no values here");
        assert_eq!(without_values("string \"open"), "string (value not shown)");
    }

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
