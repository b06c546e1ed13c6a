//! Decoder runtime against the independent reference (llama.json, icv.json: numpy implementation of
//! HF LlamaForCausalLM on the F16 SmolLM2 weights), natively on the CPU backend in f32.

mod common;

use veer::backend::{self, block_on, read_f32};
use veer::generate::{GenerateParams, Generation, Model};
use veer::llama::{Cache, Plain};

fn smollm() -> Model {
    let dir = common::model("smollm2-135m-instruct");
    let read = |f: &str| std::fs::read(dir.join(f)).unwrap();
    let tc = read("tokenizer_config.json");
    Model::load(&read("config.json"), &read("model.safetensors"), &read("tokenizer.json"), Some(&tc), "smollm2-135m-instruct", &backend::cpu().device).unwrap()
}

fn ids(v: &serde_json::Value) -> Vec<u32> {
    serde_json::from_value(v.clone()).unwrap()
}

#[test]
fn prompts_logits_residuals_and_greedy_ids_match_reference() {
    let m = smollm();
    let fixture = common::fixture("llama.json");
    for case in fixture["cases"].as_array().unwrap() {
        let prompt = case["prompt"].as_str().unwrap();
        let prompt_ids = m.encode(prompt).unwrap();
        assert_eq!(prompt_ids, ids(&case["input_ids"]), "{prompt:?}");

        let out = m.llama.forward(&prompt_ids, &mut Cache::default(), &Plain, true).unwrap();
        let logits = block_on(read_f32(out.logits)).unwrap();
        let residuals = block_on(read_f32(out.residuals.unwrap())).unwrap();
        let hidden = m.llama.config.hidden_size;
        let norms: Vec<f64> = residuals.chunks_exact(hidden).map(|r| r.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt()).collect();
        let want_norms: Vec<f64> = serde_json::from_value(case["residual_last_token_norms"].clone()).unwrap();
        for (layer, (g, w)) in norms.iter().zip(&want_norms).enumerate() {
            assert!((g - w).abs() <= 1e-3 * w.max(1.0), "{prompt:?}: residual norm after layer {layer}: {g} vs {w}");
        }
        let mut worst = 0.0f64;
        for pair in case["last_logits_top10"].as_array().unwrap() {
            let (id, want) = (pair[0].as_u64().unwrap() as usize, pair[1].as_f64().unwrap());
            worst = worst.max((logits[id] as f64 - want).abs());
        }
        println!("{prompt:?}: top-10 logits max |Δ| {worst:.2e}");
        assert!(worst <= 2e-3, "{prompt:?}: top-10 logits max |Δ| {worst}");

        let want = ids(&case["greedy_ids"]);
        let params = GenerateParams { max_tokens: want.len(), ..Default::default() };
        let mut g = block_on(Generation::start(&m, prompt_ids, params, &Plain)).unwrap();
        while block_on(g.next()).unwrap().is_some() {}
        assert_eq!(g.ids(), want.as_slice(), "{prompt:?}: greedy ids");
        if want.last() != Some(&2) {
            assert_eq!(g.text(), case["greedy_text"].as_str().unwrap());
        }
    }
}
