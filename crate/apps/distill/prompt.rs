//! What an LM teacher is asked and what it answers: the prompt, its rendering for one text, a score and
//! how it was obtained, and the `Labeller` both LM teachers (in process, `teacher`; a server, `server`)
//! implement, so the label cache serves both.

use serde::{Deserialize, Serialize};

use crate::apps::distill::cache::Hash;
use crate::base::error::Result;
use crate::base::options::SteerTerm;

/// How the decoder LM is asked.
#[derive(Debug, Clone)]
pub struct LlmPrompt {
    /// The user message (chat models) or the whole prompt, with `{text}` and `{labels}` placeholders.
    pub template: String,
    /// One per label, in label order: the answer whose log-probability scores that label.
    pub verbalisers: Vec<String>,
    /// Texts are cut to this many characters (at a word boundary) before prompting: the LM's cost
    /// grows with the prompt, and the opening of a text carries most of its label.
    pub max_chars: usize,
    /// Wrap the prompt in the model's chat template (when it has one).
    pub chat: bool,
    /// Steering vector file and strength (default: the file's).
    pub vector: Option<SteerTerm>,
}

pub const DEFAULT_TEMPLATE: &str = "Classify the text below into exactly one of these categories: {labels}.\n\nText: {text}\n\nAnswer with the category only.";

/// One text's label probabilities from an LM teacher, and how they were obtained.
#[derive(Debug, Clone, PartialEq)]
pub struct Score {
    pub p: Vec<f32>,
    pub via: Via,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Via {
    /// Verbaliser log-probabilities (in process: whole verbalisers; a server: first answer tokens).
    Logprobs,
    /// A server's answer constrained to the labels by a JSON schema (one-hot).
    Schema,
    /// A server's free answer matched to a verbaliser (one-hot).
    Generate,
    /// A free answer that names no label: equal probabilities.
    Unparsed,
}

/// An LM teacher: scores texts and says what its scores depend on.
pub trait Labeller {
    /// What the cached scores depend on (model, prompt, steering).
    fn key(&self) -> Hash;
    /// Scores every text of `texts`, passing each to `done` (index into `texts`, score) as it is ready.
    fn score_all(&self, texts: &[&str], done: &mut dyn FnMut(usize, Score) -> Result<()>) -> Result<()>;
}

/// The prompt's text for one input (before any chat template).
pub fn render(prompt: &LlmPrompt, labels: &[String], text: &str) -> String {
    let text = truncate_words(text.trim(), prompt.max_chars);
    prompt.template.replace("{labels}", &labels.join(", ")).replace("{text}", &text)
}

/// At most `max` characters, cut at the last whitespace when there is one.
fn truncate_words(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    let cut: String = text.chars().take(max).collect();
    match cut.rfind(char::is_whitespace) {
        Some(i) if i > max / 2 => format!("{}…", &cut[..i]),
        _ => format!("{cut}…"),
    }
}

/// p / p_content_free, renormalised.
pub fn calibrate(p: &[f32], prior: &[f32]) -> Vec<f32> {
    let q: Vec<f32> = p.iter().zip(prior).map(|(a, b)| a / b.max(1e-12)).collect();
    let s: f32 = q.iter().sum();
    q.iter().map(|x| x / s.max(f32::MIN_POSITIVE)).collect()
}
