//! One answer's scores, rates with intervals, and the degenerate-answer test.

use serde::{Deserialize, Serialize};

use crate::apps::steer_eval::config::Cell;


/// One answer and its scores.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Answer {
    pub prompt: usize,
    pub kind: String,
    pub decoding: usize,
    pub text: String,
    pub tokens: usize,
    /// Judge probability of each attribute's target label.
    pub judge: std::collections::BTreeMap<String, f32>,
    /// Perplexity under the unsteered model given the plain prompt (greedy answers only; None: a sampled
    /// answer, or no tokens but EOS).
    pub perplexity: Option<f64>,
    pub degenerate: bool,
    /// Cosine similarity to the prompt (open prompts) or the source sentence (rewrites).
    pub similarity_prompt: f32,
    /// Cosine similarity to the unsteered answer of the same prompt and decoding.
    pub similarity_unsteered: f32,
}

/// A cell's answers and how long they took.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CellResult {
    pub cell: Cell,
    pub seconds: f64,
    pub answers: Vec<Answer>,
}

/// Success counts with a 95 % Wilson interval.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Rate {
    pub k: usize,
    pub n: usize,
    pub rate: f64,
    pub low: f64,
    pub high: f64,
}

impl Rate {
    pub fn of(k: usize, n: usize) -> Rate {
        if n == 0 {
            return Rate { k, n, rate: 0.0, low: 0.0, high: 1.0 };
        }
        let (p, n_f, z) = (k as f64 / n as f64, n as f64, 1.959964);
        let centre = (p + z * z / (2.0 * n_f)) / (1.0 + z * z / n_f);
        let half = z / (1.0 + z * z / n_f) * (p * (1.0 - p) / n_f + z * z / (4.0 * n_f * n_f)).sqrt();
        Rate { k, n, rate: p, low: (centre - half).max(0.0), high: (centre + half).min(1.0) }
    }
}

/// Degenerate: nothing but punctuation, a word trigram said three times or more (the loops strong
/// vectors fall into: "A time is a physical state." ×3), or a long answer of few distinct words.
pub fn degenerate(text: &str) -> bool {
    // Words are runs of letters and digits: "lol,l,l,l" is four words, not one.
    let words: Vec<String> = text.split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty()).map(str::to_lowercase).collect();
    if words.is_empty() {
        return true;
    }
    let mut trigrams = std::collections::HashMap::new();
    for t in words.windows(3) {
        let n = trigrams.entry(t.to_vec()).or_insert(0usize);
        *n += 1;
        if *n >= 3 {
            return true;
        }
    }
    let distinct = words.iter().collect::<std::collections::HashSet<_>>().len();
    words.len() >= 8 && (distinct as f64) < 0.35 * words.len() as f64
}

pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let (na, nb) = (a.iter().map(|x| x * x).sum::<f32>().sqrt(), b.iter().map(|x| x * x).sum::<f32>().sqrt());
    if na == 0.0 || nb == 0.0 { 0.0 } else { dot / (na * nb) }
}
