//! Sentence embeddings of a dataset from the frozen encoder: the student's input features.

use std::path::Path;

use crate::base::backend::block_on;
use crate::apps::distill::cache::{self, Hash, RowFile};
use crate::tasks::encode::Encoder;
use crate::base::error::Result;

/// Texts per cache append: bounds what an interrupted run recomputes.
const CHUNK: usize = 256;

/// Pooled, normalised states of every layer (0 = embeddings … L), [n, hidden * (L + 1)] row-major,
/// computed once per (encoder, texts) and cached under `dir`, so trying other layer sets costs no
/// encoder pass.
pub fn embed_all(encoder: &Encoder, encoder_id: Hash, texts: &[String], dir: &Path, what: &str) -> Result<Vec<f32>> {
    let hidden = encoder.config().hidden_size;
    let states = encoder.config().num_hidden_layers + 1;
    let all: Vec<usize> = (0..states).collect();
    let dim = hidden * states;
    let key = texts.iter().fold(encoder_id.str("embed-all-layers").bytes(&(encoder.max_len() as u64).to_le_bytes()), |h, t| h.str(t));
    cache::ensure_dir(dir)?;
    let mut file = RowFile::open(dir.join(format!("emb-{}.f32", key.hex())), dim)?;
    if file.len() < texts.len() {
        let bar = cache::bar(texts.len(), what);
        bar.set_position(file.len() as u64);
        for chunk in texts[file.len()..].chunks(CHUNK) {
            let rows: Vec<f32> = block_on(encoder.embed_layers(chunk, &all))?.into_iter().flatten().collect();
            file.append(&rows)?;
            bar.inc(chunk.len() as u64);
        }
        bar.finish_and_clear();
    }
    file.rows.truncate(texts.len() * dim);
    Ok(file.rows)
}

/// The chosen layers' columns of `embed_all` rows (empty: the last layer): [n, hidden * layers].
pub fn select(all: &[f32], hidden: usize, states: usize, layers: &[usize]) -> Vec<f32> {
    let last = [states - 1];
    let layers = if layers.is_empty() { &last[..] } else { layers };
    let dim = hidden * states;
    let mut out = Vec::with_capacity(all.len() / states * layers.len());
    for row in all.chunks_exact(dim) {
        for &l in layers {
            out.extend_from_slice(&row[l * hidden..(l + 1) * hidden]);
        }
    }
    out
}
