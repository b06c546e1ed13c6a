//! `veer steer-eval`: does steering do what a user wants, at what cost? The In-context Vectors paper's
//! evaluation (Liu et al.: style-transfer success, fluency, similarity against prompting and in-context
//! learning) for veer's vectors on a committed prompt set.
//!
//! For each attribute (a vector's demonstration pairs plus a judge classifier) and each method — no
//! steering; an instruction in the prompt; the pairs shown as demonstrations (the paper's ICL
//! baseline); ICV from PCA and from the mean at several strengths; the mean vector added to the
//! residual stream (a control vector) — every prompt is answered under every decoding (greedy, and
//! sampled with fixed seeds). Each answer is scored by:
//! - the judge: the probability of the target label (a MiniLM head trained on labelled data that has
//!   nothing to do with the vector's pairs; its accuracy on held-out sets is reported beside it);
//! - fluency: its perplexity under the unsteered model, given the plain prompt, and whether it is
//!   degenerate (empty, or looping);
//! - content: MiniLM cosine similarity to the prompt (or, for rewrites, to the source sentence) and
//!   to the unsteered answer of the same prompt and decoding: the drift a vector causes.
//!
//! A negative strength means the opposite direction: the vector negated (−v) at that strength.
//! Rows of one cell are decoded together (`generate::generate_rows`).

pub mod config;
pub mod report;
pub mod run;
pub mod score;
