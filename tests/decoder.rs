//! Decoder runtime against the independent reference (llama.json, icv.json: numpy implementation of
//! HF LlamaForCausalLM on the F16 SmolLM2 weights), natively on the CPU backend in f32.

mod common;

use veer::base::backend::{self, block_on, read_f32};
use veer::io::files::ModelFiles;
use veer::tasks::generate::{Generation, Model};
use veer::models::llama::cache::Cache;
use veer::models::llama::hook::Plain;
use veer::base::options::GenerateOptions;
use veer::steering::spec::SteeringSpec;
use veer::base::options::LayerRange;
use veer::base::options::{DecoderOptions, WeightFormat};

/// The F16 folder in f32 (`weights: f32`; the default would quantise it): what the reference computes.
fn smollm() -> Model {
    smollm_as("smollm2-135m-instruct", WeightFormat::F32)
}

fn smollm_as(folder: &str, weights: WeightFormat) -> Model {
    let dir = common::model(folder);
    Model::load_with(&ModelFiles::from_dir(&dir).unwrap(), folder, &backend::cpu().device, &DecoderOptions { weights }).unwrap()
}

/// Steering as a request asks for it: (vector, strength), optionally a mode and a layer range.
fn steering(vectors: Vec<(veer::steering::vector::Vector, f32)>, layers: Option<[usize; 2]>) -> veer::steering::hook::Steering {
    let spec = SteeringSpec { vectors: vectors.into_iter().map(|(v, s)| ("test vector".to_string(), v, Some(s))).collect(), layers: layers.map(LayerRange), ..Default::default() };
    spec.build_for(30, 576, &veer::models::llama::signature::Signature::default(), &backend::cpu().device).unwrap().unwrap()
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
        let options = GenerateOptions { max_tokens: want.len(), ..Default::default() };
        let mut g = block_on(Generation::start(&m, prompt, &options, &Plain)).unwrap();
        assert_eq!(g.prompt(), prompt_ids.as_slice());
        while block_on(g.next(&m, &Plain)).unwrap().is_some() {}
        assert_eq!(g.ids(), want.as_slice(), "{prompt:?}: greedy ids");
        if want.last() != Some(&2) {
            assert_eq!(g.text(), case["greedy_text"].as_str().unwrap());
        }
    }
}

fn reference_vector() -> veer::steering::vector::Vector {
    let bytes = std::fs::read(common::root().join("tests/fixtures/icv.safetensors")).unwrap();
    veer::steering::vector::Vector::from_safetensors(&bytes, "icv.safetensors").unwrap()
}

#[test]
fn computed_icv_matches_reference_and_steers_greedy_decoding_as_recorded() {
    use veer::steering::icv::{self, Method};
    let m = smollm();
    let fixture = common::fixture("icv.json");
    let pairs: Vec<(Vec<u32>, Vec<u32>)> = fixture["pairs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (m.encode(p[0].as_str().unwrap()).unwrap(), m.encode(p[1].as_str().unwrap()).unwrap()))
        .collect();
    let computed = block_on(icv::compute(&m.llama, &pairs, Method::Pca, &m.name)).unwrap();
    let reference = reference_vector();
    assert_eq!(computed.layers.len(), 30);
    let mut worst = 1.0f64;
    for (i, (a, b)) in computed.layers.iter().zip(&reference.layers).enumerate() {
        let dot: f64 = a.iter().zip(b).map(|(x, y)| *x as f64 * *y as f64).sum();
        let n = |v: &[f32]| v.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
        let cos = dot / (n(a) * n(b));
        worst = worst.min(cos);
        assert!(cos >= 0.9999, "layer {i}: cosine {cos}");
        let want_norm = fixture["icv_layer_norms"][i].as_f64().unwrap();
        assert!((n(a) - want_norm).abs() <= 1e-3 * want_norm.max(1.0), "layer {i}: norm {} vs {want_norm}", n(a));
    }
    println!("ICV per-layer cosine ≥ {worst:.6}");

    // The vector file round-trips with its metadata.
    let reread = veer::steering::vector::Vector::from_safetensors(&computed.to_safetensors().unwrap(), "x").unwrap();
    assert_eq!(reread, computed);

    let prompt_text = fixture["prompt"].as_str().unwrap();
    let prompt = m.encode(prompt_text).unwrap();
    assert_eq!(prompt, ids(&fixture["prompt_ids"]));
    let lam = fixture["lam"].as_f64().unwrap() as f32;
    let steering = steering(vec![(computed, lam)], None);

    let out = m.llama.forward(&prompt, &mut Cache::default(), &steering, false).unwrap();
    let logits = block_on(read_f32(out.logits)).unwrap();
    for pair in fixture["steered_last_logits_top10"].as_array().unwrap() {
        let (id, want) = (pair[0].as_u64().unwrap() as usize, pair[1].as_f64().unwrap());
        assert!((logits[id] as f64 - want).abs() <= 2e-3, "steered logit {id}: {} vs {want}", logits[id]);
    }
    for (steer, key) in [(&steering as &dyn veer::models::llama::hook::Steer, "greedy_steered_ids"), (&Plain, "greedy_plain_ids")] {
        let want = ids(&fixture[key]);
        let options = GenerateOptions { max_tokens: want.len(), ..Default::default() };
        let mut g = block_on(Generation::start(&m, prompt_text, &options, steer)).unwrap();
        while block_on(g.next(&m, steer)).unwrap().is_some() {}
        assert_eq!(g.ids(), want.as_slice(), "{key}");
    }
}

#[test]
fn vector_files_check_the_model_and_arithmetic_composes() {
    let v = reference_vector();
    assert!(v.clone().fit(30, 576, "v").is_ok());
    let e = v.clone().fit(24, 576, "v.safetensors").unwrap_err().to_string();
    assert!(e.contains("v.safetensors") && e.contains("30 layers") && e.contains("24 layers"), "{e}");
    let twice = v.add(&v).unwrap();
    assert_eq!(twice.layers, v.scale(2.0).unwrap().layers);
    let zero = twice.sub(&v.scale(2.0).unwrap()).unwrap();
    assert!(zero.layers.iter().flatten().all(|x| *x == 0.0));
    let unit = v.normalize();
    for row in &unit.layers {
        assert!((row.iter().map(|x| x * x).sum::<f32>().sqrt() - 1.0).abs() < 1e-5);
    }
    assert!(veer::steering::vector::Vector::from_safetensors(b"<html>", "x").is_err());
}

#[test]
fn chat_template_renders_like_the_reference_prompt() {
    let m = smollm();
    let msgs = [veer::tasks::generate::Message { role: "user".into(), content: "What is the capital of France?".into() }];
    let text = m.apply_chat_template(&msgs, true).unwrap();
    assert_eq!(
        text,
        "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n<|im_start|>user\nWhat is the capital of France?<|im_end|>\n<|im_start|>assistant\n"
    );
}

#[test]
fn streaming_never_splits_a_character_and_stop_strings_cut() {
    let m = smollm();
    // Sampled text from a unicode-heavy prompt: every piece is valid UTF-8 by type; their
    // concatenation must equal the final text.
    let options = GenerateOptions { max_tokens: 24, temperature: 0.8, seed: 3, ..Default::default() };
    let mut g = block_on(Generation::start(&m, "Écris une phrase en français avec des accents: ", &options, &Plain)).unwrap();
    let mut streamed = String::new();
    while let Some(p) = block_on(g.next(&m, &Plain)).unwrap() {
        streamed.push_str(&p.text);
    }
    assert_eq!(streamed, g.text());

    let options = GenerateOptions { max_tokens: 16, stop: vec!["Emma".into()], ..Default::default() };
    let mut g = block_on(Generation::start(&m, "Once upon a time, there was a little", &options, &Plain)).unwrap();
    let mut streamed = String::new();
    while let Some(p) = block_on(g.next(&m, &Plain)).unwrap() {
        streamed.push_str(&p.text);
    }
    assert_eq!(streamed, " girl named ");
    assert_eq!(g.text(), " girl named ");
    assert_eq!(g.finish, Some(veer::tasks::generate::Finish::Stop));
}

/// A llama.cpp control-vector GGUF: `direction.{n}` F32 tensors and the metadata the cvector tools write.
fn control_vector_gguf(dirs: &[(usize, Vec<f32>)]) -> Vec<u8> {
    let g = common::gguf::Gguf::default().string("general.architecture", "controlvector").string("controlvector.model_hint", "llama");
    dirs.iter().fold(g, |g, (n, v)| g.tensor(&format!("direction.{n}"), &[v.len() as u64], 0, &common::gguf::f32_bytes(v))).bytes()
}

#[test]
fn control_vectors_add_to_the_block_output_as_llama_cpp() {
    use veer::steering::vector::Vector;
    use veer::base::options::Injection;
    let m = smollm();
    let hidden = 576;
    let direction: Vec<f32> = (0..hidden).map(|i| ((i * 37 % 23) as f32 - 11.0) / 4.0).collect();
    let file = control_vector_gguf(&[(3, direction.clone()), (29, direction.clone())]);
    let mut v = Vector::from_bytes(&file, "cv.gguf").unwrap();
    assert_eq!((v.injection, v.layers.len(), v.model.as_str()), (Injection::Residual, 30, "llama"));
    assert!(v.layers[0].iter().all(|x| *x == 0.0) && v.layers[3] == direction);
    v.fit(30, hidden, "cv.gguf").unwrap();

    // Steering only the last block: the final hidden state moves by λ·v, and the logits follow through
    // the final RMSNorm and the tied embeddings, computed here on the host from the weights file.
    let prompt = m.encode("Once upon a time, there was a little").unwrap();
    let plain = m.llama.forward(&prompt, &mut Cache::default(), &Plain, true).unwrap();
    let residuals = block_on(read_f32(plain.residuals.unwrap())).unwrap();
    let lambda = 0.5f32;
    let last: Vec<f32> = residuals[30 * hidden..].iter().zip(&direction).map(|(x, d)| x + lambda * d).collect();
    let steering = steering(vec![(v, lambda)], Some([29, 30]));
    let got = block_on(read_f32(m.llama.forward(&prompt, &mut Cache::default(), &steering, false).unwrap().logits)).unwrap();

    let bytes = std::fs::read(common::model("smollm2-135m-instruct").join("model.safetensors")).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let f16s = |name: &str| -> Vec<f32> {
        st.tensor(name).unwrap().data().chunks_exact(2).map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32()).collect()
    };
    let (norm_w, embed) = (f16s("model.norm.weight"), f16s("model.embed_tokens.weight"));
    let rms = (last.iter().map(|x| (*x as f64).powi(2)).sum::<f64>() / hidden as f64 + 1e-5).sqrt();
    let normed: Vec<f64> = last.iter().zip(&norm_w).map(|(x, w)| *x as f64 / rms * *w as f64).collect();
    let mut worst = 0.0f64;
    for (id, row) in embed.chunks_exact(hidden).enumerate() {
        let want: f64 = row.iter().zip(&normed).map(|(e, x)| *e as f64 * x).sum();
        worst = worst.max((got[id] as f64 - want).abs());
    }
    assert!(worst <= 2e-3, "steered logits vs host computation: max |Δ| {worst}");
    let plain_logits = block_on(read_f32(plain.logits)).unwrap();
    assert!(plain_logits.iter().zip(&got).any(|(a, b)| (a - b).abs() > 0.1), "steering changed nothing");
}

/// A chat as a page runs one: OpenAI-style messages, the second turn repeating the first turn and the
/// model's answer. Continuing the first generation's KV cache gives the greedy ids of a full
/// re-prefill, and reuses every token of the conversation the second prompt repeats.
#[test]
fn a_second_chat_turn_reuses_the_kv_cache_and_equals_a_full_prefill() {
    use veer::tasks::generate::{Message, Prompt};
    let m = smollm();
    let msg = |role: &str, content: &str| Message { role: role.into(), content: content.into() };
    let options = GenerateOptions { max_tokens: 16, ..Default::default() };
    let first = vec![msg("system", "You are a concise assistant."), msg("user", "Name a colour of the sea.")];
    let mut g = block_on(Generation::start(&m, Prompt::Messages(first.clone()), &options, &Plain)).unwrap();
    while block_on(g.next(&m, &Plain)).unwrap().is_some() {}
    let (first_prompt, answer) = (g.prompt().len(), g.text().trim().to_string());
    assert!(!answer.is_empty());
    let mut second = first;
    second.extend([msg("assistant", &answer), msg("user", "And a colour of the sky?")]);

    let t0 = std::time::Instant::now();
    let mut fresh = block_on(Generation::start(&m, Prompt::Messages(second.clone()), &options, &Plain)).unwrap();
    let full_s = t0.elapsed().as_secs_f64();
    let t0 = std::time::Instant::now();
    let mut resumed = block_on(Generation::resume(Some(g), &m, Prompt::Messages(second), &options, &Plain)).unwrap();
    let resumed_s = t0.elapsed().as_secs_f64();
    assert_eq!(resumed.prompt(), fresh.prompt());
    // Everything up to the first answer is shared (the template closes the answer as the model did).
    assert!(resumed.reused() >= first_prompt, "reused {} of {} (first prompt {first_prompt})", resumed.reused(), resumed.prompt().len());
    assert_eq!(fresh.reused(), 0);
    while block_on(fresh.next(&m, &Plain)).unwrap().is_some() {}
    while block_on(resumed.next(&m, &Plain)).unwrap().is_some() {}
    assert_eq!(resumed.ids(), fresh.ids(), "greedy ids after a reused prefix");
    eprintln!(
        "second turn: {} prompt tokens, {} reused; prefill {:.0} ms full vs {:.0} ms continued",
        fresh.prompt().len(),
        resumed.reused(),
        full_s * 1000.0,
        resumed_s * 1000.0
    );
    // A prompt sharing nothing reuses nothing; messages with an unknown role are refused.
    let other = block_on(Generation::resume(Some(resumed), &m, "Unrelated text.", &options, &Plain)).unwrap();
    assert_eq!(other.reused(), 0);
    let e = Prompt::from_json(serde_json::json!([{"role": "wizard", "content": "x"}])).unwrap_err();
    assert!(e.to_string().contains("messages[0].role `wizard`"), "{e}");
    assert!(Prompt::from_json(serde_json::json!([])).is_err());
    assert!(Prompt::from_json(serde_json::json!(42)).is_err());
}

/// Batched decoding (`generate_rows`: rows of different lengths left-padded, one steering) gives every
/// row what `Generation` gives it alone: the same greedy ids, the same seeded samples, steered or not;
/// and the batch's logits at the first step match a single forward's within the CPU tolerance.
#[test]
fn batched_rows_decode_as_each_prompt_alone() {
    use veer::tasks::generate::generate_rows;
    let m = smollm();
    let fixture = common::fixture("llama.json");
    let prompts: Vec<Vec<u32>> = fixture["cases"].as_array().unwrap().iter().map(|c| ids(&c["input_ids"])).take(4).collect();
    assert!(prompts.iter().map(|p| p.len()).min() < prompts.iter().map(|p| p.len()).max(), "the rows must need padding");
    let steered = steering(vec![(reference_vector(), 0.1)], None);
    for steer in [&Plain as &dyn veer::models::llama::hook::Steer, &steered] {
        let options: Vec<GenerateOptions> = (0..prompts.len())
            .map(|i| GenerateOptions { max_tokens: 12, temperature: if i % 2 == 0 { 0.0 } else { 0.8 }, seed: 7 + i as u64, ..Default::default() })
            .collect();
        let batch = block_on(generate_rows(&m, &prompts, &options, steer)).unwrap();
        for ((p, o), got) in prompts.iter().zip(&options).zip(&batch) {
            let text = m.tokenizer.decode(p, false).unwrap();
            let mut g = block_on(Generation::start(&m, text.as_str(), o, steer)).unwrap();
            assert_eq!(g.prompt(), p.as_slice());
            while block_on(g.next(&m, steer)).unwrap().is_some() {}
            assert_eq!(got.as_slice(), g.ids(), "row of {} tokens, temperature {}", p.len(), o.temperature);
        }
    }
    // First-step logits of the padded batch against each prompt alone.
    let rows: Vec<&[u32]> = prompts.iter().map(|p| p.as_slice()).collect();
    let batch = block_on(read_f32(m.llama.forward_rows(&rows, &mut Cache::default(), &Plain, false).unwrap())).unwrap();
    let vocab = m.llama.config.vocab_size;
    for (r, p) in prompts.iter().enumerate() {
        let alone = block_on(read_f32(m.llama.forward(p, &mut Cache::default(), &Plain, false).unwrap().logits)).unwrap();
        let worst = alone.iter().zip(&batch[r * vocab..(r + 1) * vocab]).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
        assert!(worst <= 1e-3, "row {r}: max |Δ logit| {worst}");
    }
}

/// Teacher-forced on the reference's prompts and greedy continuations: how often `m`'s top token is the
/// reference's next token, and the reference text's mean negative log-likelihood under `f32` and `m`,
/// and the largest logit difference.
fn agreement(f32_model: &Model, m: &Model) -> (usize, usize, f64, f64, f64) {
    let fixture = common::fixture("llama.json");
    let (mut agree, mut total, mut nll_f32, mut nll_m, mut worst) = (0, 0, 0.0f64, 0.0f64, 0.0f64);
    for case in fixture["cases"].as_array().unwrap() {
        let (prompt, greedy) = (ids(&case["input_ids"]), ids(&case["greedy_ids"]));
        let seq: Vec<u32> = prompt.iter().chain(&greedy).copied().collect();
        let logits = |m: &Model| {
            let t = m.llama.forward_rows(&[&seq], &mut Cache::default(), &Plain, true).unwrap();
            block_on(read_f32(t)).unwrap() // [1, seq, vocab]
        };
        let (a, b) = (logits(f32_model), logits(m));
        let vocab = f32_model.llama.config.vocab_size;
        let nll = |l: &[f32], next: u32| {
            let max = l.iter().fold(f32::NEG_INFINITY, |m, &x| m.max(x)) as f64;
            let lse = max + l.iter().map(|&x| (x as f64 - max).exp()).sum::<f64>().ln();
            lse - l[next as usize] as f64
        };
        for (k, &next) in greedy.iter().enumerate() {
            let at = prompt.len() - 1 + k; // the position whose logits predict `next`
            let (la, lb) = (&a[at * vocab..(at + 1) * vocab], &b[at * vocab..(at + 1) * vocab]);
            agree += (veer::base::math::argmax(lb) as u32 == next) as usize;
            total += 1;
            nll_f32 += nll(la, next);
            nll_m += nll(lb, next);
            worst = worst.max(la.iter().zip(lb).map(|(x, y)| (x - y).abs() as f64).fold(0.0, f64::max));
        }
    }
    (agree, total, nll_f32 / total as f64, nll_m / total as f64, worst)
}

/// Int8 weights (the default on a float file) against f32. Stated tolerances, not identity: int8 rounds
/// every weight to 1/254 of its group's largest.
#[test]
fn int8_weights_agree_with_f32_and_keep_perplexity() {
    let (f32_model, int8) = (smollm(), smollm_as("smollm2-135m-instruct", WeightFormat::Int8));
    assert_eq!((f32_model.llama.weights, int8.llama.weights), ("f32", "int8"));
    let (agree, total, nll_f32, nll_int8, worst) = agreement(&f32_model, &int8);
    println!("int8 vs f32: top-1 agreement {agree}/{total}, mean NLL {nll_f32:.4} → {nll_int8:.4} (perplexity ×{:.4}), logits max |Δ| {worst:.3}", (nll_int8 - nll_f32).exp());
    assert!(agree as f64 >= 0.95 * total as f64, "int8 top-1 agreement {agree}/{total}");
    assert!((nll_int8 - nll_f32).abs() <= 0.05, "mean NLL {nll_f32} (f32) vs {nll_int8} (int8)");
}

/// The q4 folder (`convert-gguf --dtype q4`: the GGUF's own Q4_1 blocks, embeddings its Q8_0) as the
/// default loads it: 4-bit in memory, never dequantised. Its weights are the values the F16 folder rounds
/// to f16, so it must agree with the f32 reference almost exactly: greedy ids of every reference prompt,
/// plain and ICV-steered, and the same perplexity; and the q8 folder within int8's tolerances.
#[test]
fn q4_and_q8_folders_decode_as_the_reference_plain_and_steered() {
    let f32_model = smollm();
    let q4 = smollm_as("smollm2-135m-instruct-q4", WeightFormat::Int8);
    assert_eq!(q4.llama.weights, "q4");
    assert!(q4.llama.signature.matches(&f32_model.llama.signature), "a vector made on the F16 folder is accepted");
    let (agree, total, nll_f32, nll_q4, worst) = agreement(&f32_model, &q4);
    println!("q4 vs f32: top-1 agreement {agree}/{total}, mean NLL {nll_f32:.4} → {nll_q4:.4}, logits max |Δ| {worst:.3}");
    assert!(agree as f64 >= 0.98 * total as f64 && (nll_q4 - nll_f32).abs() <= 0.02, "q4: {agree}/{total}, NLL {nll_f32} vs {nll_q4}");
    for case in common::fixture("llama.json")["cases"].as_array().unwrap() {
        let want = ids(&case["greedy_ids"]);
        let options = GenerateOptions { max_tokens: want.len(), ..Default::default() };
        let mut g = block_on(Generation::start(&q4, case["prompt"].as_str().unwrap(), &options, &Plain)).unwrap();
        while block_on(g.next(&q4, &Plain)).unwrap().is_some() {}
        assert_eq!(g.ids(), want.as_slice(), "q4 greedy ids for {:?}", case["prompt"]);
    }
    let fixture = common::fixture("icv.json");
    let steering = steering(vec![(reference_vector(), fixture["lam"].as_f64().unwrap() as f32)], None);
    let want = ids(&fixture["greedy_steered_ids"]);
    let options = GenerateOptions { max_tokens: want.len(), ..Default::default() };
    let mut g = block_on(Generation::start(&q4, fixture["prompt"].as_str().unwrap(), &options, &steering)).unwrap();
    while block_on(g.next(&q4, &steering)).unwrap().is_some() {}
    assert_eq!(g.ids(), want.as_slice(), "q4 ICV-steered greedy ids");

    // The q8 conversion of the same GGUF (Q4_1 blocks re-quantised to int8 groups; Q8_0 copied).
    let gguf = std::fs::read(common::cache().join("SmolLM2-135M-Instruct.Q4_1.gguf")).unwrap();
    let folder = veer::io::convert::convert(&veer::io::gguf::Gguf::parse(&gguf, "smollm2.gguf").unwrap(), veer::io::safetensors::OutDtype::Q8).unwrap();
    let files = ModelFiles::new(folder.config_json.into_bytes(), folder.model_safetensors, folder.tokenizer_json.into_bytes());
    let q8 = Model::load(&files, "smollm2-q8", &backend::cpu().device).unwrap();
    assert_eq!(q8.llama.weights, "int8");
    let (agree, total, nll_f32, nll_q8, _) = agreement(&f32_model, &q8);
    println!("q8 (from Q4_1) vs f32: top-1 agreement {agree}/{total}, mean NLL {nll_f32:.4} → {nll_q8:.4}");
    assert!(agree as f64 >= 0.95 * total as f64 && (nll_q8 - nll_f32).abs() <= 0.05, "q8: {agree}/{total}, NLL {nll_f32} vs {nll_q8}");
    // Asked for f32, a quantised folder is dequantised: the q4 folder then computes the reference's model.
    let q4_f32 = smollm_as("smollm2-135m-instruct-q4", WeightFormat::F32);
    assert_eq!(q4_f32.llama.weights, "f32");
    let (_, _, _, _, worst) = agreement(&f32_model, &q4_f32);
    assert!(worst <= 0.05, "q4 dequantised vs F16: logits max |Δ| {worst}");
}
