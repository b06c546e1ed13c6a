//! The benchmark's configuration (bench/steer/eval.json): prompts, decodings, attributes, cells.

use serde::{Deserialize, Serialize};

/// One prompt of the set (JSONL): `kind` is question, describe, review or rewrite; a rewrite carries the
/// `source` sentence its text asks to rewrite.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct EvalPrompt {
    pub kind: String,
    pub text: String,
    #[serde(default)]
    pub source: Option<String>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Decoding {
    pub temperature: f32,
    pub seed: u64,
}

/// An attribute to steer towards, as the config file names it (paths relative to the config's folder).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AttributeSpec {
    pub name: String,
    /// The vector's demonstration pairs (JSONL `{from, to}`).
    pub pairs: String,
    /// The judge: a head.safetensors for the encoder, and the label that means "steered".
    pub judge: String,
    pub target: String,
    /// Labelled JSONL sets (`{text, label}`) the judge's accuracy is measured on; a missing file is
    /// reported as missing (the held-out split of the training data exists after `make steer-eval`).
    #[serde(default)]
    pub validation: Vec<String>,
    /// The prompting baseline's instruction, appended to the user's message.
    pub instruction: String,
    /// Strengths per vector method (`icv-pca`, `icv-mean`, `residual`); negative = −v.
    pub strengths: std::collections::BTreeMap<String, Vec<f32>>,
    /// `--quick`: the `icv-pca` strengths to run (none: the attribute is left out).
    pub quick: Vec<f32>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub model: String,
    pub encoder: String,
    pub prompts: String,
    pub max_tokens: usize,
    /// Rows decoded together.
    pub batch: usize,
    pub decodings: Vec<Decoding>,
    pub attributes: Vec<AttributeSpec>,
    /// Prompts timed one at a time per method for the latency table.
    pub latency_prompts: usize,
    /// `--quick`: prompts of each kind (every decoding).
    pub quick_per_kind: usize,
}

/// What one cell is: a method and, for vectors, a strength.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Cell {
    /// None for the unsteered cell, which every attribute's judge scores.
    pub attribute: Option<String>,
    pub method: String,
    pub strength: Option<f32>,
}
