//! The q8 encoder folder `make assets` ships (`veer pack --dtype q8`: int8 matrices, io::quantised)
//! against the F16 folder it is made from: embeddings within cosine 0.999 on the reference texts, held
//! as int8 in memory on the CPU. (The q8 default classifiers' test accuracy against their F16 students'
//! is `tests/distill.rs`' `default_classifiers_reach_their_accuracy_on_held_out_data`.)
//! Stated tolerances, not identity: int8 rounds each weight by up to half a step of its group's scale.

mod common;

use std::path::Path;

use veer::base::backend::{self, block_on};
use veer::base::options::EncoderOptions;
use veer::io::files::ModelFiles;
use veer::tasks::encode::Encoder;

fn encoder(dir: &Path) -> Encoder {
    Encoder::load(&ModelFiles::from_dir(dir).unwrap(), &EncoderOptions { batch_size: 16, ..Default::default() }, &backend::cpu().device).unwrap()
}

fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let dot: f64 = a.iter().zip(b).map(|(x, y)| *x as f64 * *y as f64).sum();
    let n = |v: &[f32]| v.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
    dot / (n(a) * n(b))
}

#[test]
fn q8_minilm_embeds_within_cosine_0_999_of_f16() {
    let (f16, q8) = (encoder(&common::model("all-minilm-l6-v2")), encoder(&common::model("all-minilm-l6-v2-q8")));
    assert_eq!((f16.dtype(), q8.dtype()), ("f32", "int8"));
    let fixture = common::fixture("bert.json");
    let texts: Vec<String> = fixture["cases"].as_array().unwrap().iter().map(|c| c["text"].as_str().unwrap().to_string()).collect();
    let (a, b) = (block_on(f16.embed(&texts)).unwrap(), block_on(q8.embed(&texts)).unwrap());
    let worst = a.iter().zip(&b).map(|(x, y)| cosine(x, y)).fold(1.0, f64::min);
    println!("q8 vs F16 MiniLM: embeddings cosine ≥ {worst:.5} over {} texts", texts.len());
    assert!(worst >= 0.999, "cosine {worst}");
    // And against the independent reference (numpy, F32 weights), as the F16 folder is checked at 0.99999.
    for (case, e) in fixture["cases"].as_array().unwrap().iter().zip(&b) {
        let want: Vec<f32> = case["mean_pooled_normalized"].as_array().unwrap().iter().map(|x| x.as_f64().unwrap() as f32).collect();
        assert!(cosine(&want, e) >= 0.999, "{:?}", case["text"]);
    }
}
