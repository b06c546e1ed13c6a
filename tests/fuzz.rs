//! Mutation fuzzing of every parser a hostile file reaches, on stable Rust (cargo-fuzz needs nightly,
//! which this project cannot install): each target is a `fn(&[u8])` in the shape cargo-fuzz expects;
//! the harness here mutates seed inputs built below (bit flips, interesting bytes and 64-bit integers,
//! splices, truncation) for `VEER_FUZZ_SECONDS` per target (default 2; `make fuzz` runs longer) and
//! fails on any panic, saving the input to `target/fuzz-crashes/`. Errors are fine: panics are bugs.
//! Not coverage-guided, so it finds what random mutation of well-formed files reaches.
//!
//! Targets: GGUF parse + dequantise; vector file → fit → round trip → arithmetic; config.json +
//! safetensors → encoder load + classify, and → decoder load + 4 generated tokens; tokenizer.json →
//! encode; chat template render; sampler on arbitrary logits and options. JSON inputs (configs,
//! tokenizer.json, safetensors headers) are also mutated through their structure (`Shape`).

mod common;

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::{Duration, Instant};

use common::gguf::Gguf;
use common::rng::Rng;
use veer::base::backend;
use veer::tasks::encode::Encoder;
use veer::io::files::ModelFiles;
use veer::tasks::generate::{Generation, Message, Model, render_chat_template};
use veer::models::llama::hook::Plain;
use veer::base::options::{EncoderOptions, GenerateOptions};
use veer::tasks::sample::Sampler;
use veer::steering::vector::Vector;
use veer::base::options::Injection;
use veer::io::safetensors::{OutDtype, Stored};

const INTERESTING: [u64; 10] = [0, 1, 2, 0x7f, 0xff, 0xffff_ffff, 0x1_0000_0000, 1 << 40, i64::MAX as u64, u64::MAX];

/// One to four mutations of `seed`, sometimes spliced with another seed.
fn mutate(rng: &mut Rng, seed: &[u8], other: &[u8]) -> Vec<u8> {
    let mut b = seed.to_vec();
    for _ in 0..1 + rng.below(4) {
        if b.is_empty() {
            b.push(rng.next_u64() as u8);
            continue;
        }
        let at = rng.below(b.len());
        match rng.below(7) {
            0 => b[at] ^= 1 << rng.below(8),
            1 => b[at] = [0u8, 0xff, 0x7f, 0x80, b'0', b'9', b'"', b'{'][rng.below(8)],
            2 if b.len() >= 8 => {
                let at = rng.below(b.len() - 7);
                b[at..at + 8].copy_from_slice(&INTERESTING[rng.below(INTERESTING.len())].to_le_bytes());
            }
            3 => b.truncate(at),
            4 => {
                let n = 1 + rng.below(16);
                let end = (at + n).min(b.len());
                b.drain(at..end);
            }
            5 => {
                let n = 1 + rng.below(16);
                let fill: Vec<u8> = (0..n).map(|_| rng.next_u64() as u8).collect();
                b.splice(at..at, fill);
            }
            _ if !other.is_empty() => {
                let from = rng.below(other.len());
                let n = 1 + rng.below(64);
                let piece = &other[from..(from + n).min(other.len())];
                let end = (at + piece.len()).min(b.len());
                b.splice(at..end, piece.iter().copied());
            }
            _ => b[at] = b[at].wrapping_add(1),
        }
    }
    b
}

/// How a seed is mutated: bytes only, or (half the time) through its JSON structure, so that a
/// well-formed config, tokenizer.json or safetensors header reaches the loaders with a hostile value in
/// one field (which random byte edits of a JSON text rarely produce).
#[derive(Clone, Copy)]
enum Shape {
    Bytes,
    Json,
    /// 8-byte little-endian header length, JSON header, data (safetensors).
    SafetensorsHeader,
}

/// Values that hit the loaders' edge cases: zero, negatives, sizes that wrap 32 and 64 bits, floats
/// past f32, wrong types.
fn hostile_value(rng: &mut Rng) -> serde_json::Value {
    use serde_json::json;
    match rng.below(18) {
        0 => json!(0),
        1 => json!(-1),
        2 => json!(1),
        3 => json!(u32::MAX),
        4 => json!(1u64 << 32),
        5 => json!(u64::MAX),
        6 => json!(i64::MIN),
        7 => json!(1e308),
        8 => json!(-1e-310),
        9 => json!(0.5),
        10 => json!(""),
        11 => json!("\u{0}\u{ffff}"),
        12 => serde_json::Value::Null,
        13 => json!(true),
        14 => json!([]),
        15 => json!({}),
        16 => json!([u64::MAX, 0]),
        _ => json!(rng.next_u64() % 100_000),
    }
}

/// The number of nodes in `v` (for picking one uniformly).
fn count_nodes(v: &serde_json::Value) -> usize {
    1 + match v {
        serde_json::Value::Array(a) => a.iter().map(count_nodes).sum(),
        serde_json::Value::Object(o) => o.values().map(count_nodes).sum(),
        _ => 0,
    }
}

/// Apply one structural edit to node number `k` (depth-first order): replace it with a hostile value,
/// duplicate it into its parent, or remove one child.
fn edit_node(v: &mut serde_json::Value, k: &mut usize, rng: &mut Rng) -> bool {
    if *k == 0 {
        match (rng.below(4), &mut *v) {
            (0, serde_json::Value::Object(o)) if !o.is_empty() => {
                let key = o.keys().nth(rng.below(o.len())).cloned().unwrap_or_default();
                o.remove(&key);
            }
            (0, serde_json::Value::Array(a)) if !a.is_empty() => {
                a.remove(rng.below(a.len()));
            }
            (1, serde_json::Value::Array(a)) if !a.is_empty() => {
                let copy = a[rng.below(a.len())].clone();
                a.push(copy);
            }
            _ => *v = hostile_value(rng),
        }
        return true;
    }
    *k -= 1;
    match v {
        serde_json::Value::Array(a) => a.iter_mut().any(|c| edit_node(c, k, rng)),
        serde_json::Value::Object(o) => o.values_mut().any(|c| edit_node(c, k, rng)),
        _ => false,
    }
}

/// One to three structural edits of a JSON text; `None` when `text` is not JSON.
fn mutate_json(rng: &mut Rng, text: &[u8]) -> Option<Vec<u8>> {
    let mut v: serde_json::Value = serde_json::from_slice(text).ok()?;
    for _ in 0..1 + rng.below(3) {
        let mut k = rng.below(count_nodes(&v));
        edit_node(&mut v, &mut k, rng);
    }
    serde_json::to_vec(&v).ok()
}

fn mutate_shaped(rng: &mut Rng, shape: Shape, seed: &[u8], other: &[u8]) -> Vec<u8> {
    if rng.below(2) == 0 {
        return mutate(rng, seed, other);
    }
    match shape {
        Shape::Bytes => mutate(rng, seed, other),
        Shape::Json => mutate_json(rng, seed).unwrap_or_else(|| mutate(rng, seed, other)),
        Shape::SafetensorsHeader => {
            let len = seed.get(..8).map(|b| u64::from_le_bytes(b.try_into().unwrap_or_default()) as usize).unwrap_or(0);
            match seed.get(8..8 + len).and_then(|h| mutate_json(rng, h)) {
                Some(header) => [&(header.len() as u64).to_le_bytes()[..], &header, &seed[8 + len..]].concat(),
                None => mutate(rng, seed, other),
            }
        }
    }
}

/// Run `target` on byte mutations of `seeds` for the configured time; panics are failures.
fn fuzz(name: &str, seeds: &[Vec<u8>], target: impl Fn(&[u8])) {
    fuzz_shaped(name, Shape::Bytes, seeds, target)
}

/// Run `target` on mutations of `seeds` (see [`Shape`]) for the configured time; panics are failures.
fn fuzz_shaped(name: &str, shape: Shape, seeds: &[Vec<u8>], target: impl Fn(&[u8])) {
    let seconds: f64 = std::env::var("VEER_FUZZ_SECONDS").ok().and_then(|s| s.parse().ok()).unwrap_or(2.0);
    let mut rng = Rng(name.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, c| (h ^ c as u64).wrapping_mul(0x100_0000_01b3)));
    // The seeds themselves must pass (they are the well-formed files).
    for s in seeds {
        target(s);
    }
    let end = Instant::now() + Duration::from_secs_f64(seconds);
    let mut runs = 0u64;
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    while Instant::now() < end {
        let (a, b) = (rng.below(seeds.len()), rng.below(seeds.len()));
        let input = mutate_shaped(&mut rng, shape, &seeds[a], &seeds[b]);
        if let Err(panic) = catch_unwind(AssertUnwindSafe(|| target(&input))) {
            std::panic::set_hook(hook);
            let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/fuzz-crashes");
            std::fs::create_dir_all(&dir).unwrap();
            let path = dir.join(format!("{name}-{runs}.bin"));
            std::fs::write(&path, &input).unwrap();
            let msg = panic.downcast_ref::<String>().cloned().or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string())).unwrap_or_default();
            panic!("fuzz target `{name}` panicked after {runs} runs: {msg}; input saved to {}", path.display());
        }
        runs += 1;
    }
    std::panic::set_hook(hook);
    println!("fuzz {name}: {runs} runs in {seconds} s, no panic");
}

// --- seeds -----------------------------------------------------------------------------------------------

/// A GGUF control vector with `direction.{n}` tensors of 32 elements in the given ggml types (id,
/// byte length: F32 128, F16 64, Q8_0 34, Q4_0 18, Q4_1 20) and a string-array metadata key.
fn gguf_seed(types: &[(u32, usize)]) -> Vec<u8> {
    let g = Gguf::default().string("general.architecture", "controlvector").strings("tokenizer.ggml.tokens", &["a", "b"]);
    let g = types.iter().enumerate().fold(g, |g, (i, &(ty, bytes))| {
        let data: Vec<u8> = (0..bytes).map(|j| (j * 7 % 13) as u8).collect();
        g.tensor(&format!("direction.{}", i + 1), &[32], ty, &data)
    });
    g.bytes()
}

fn vector_seed() -> Vec<u8> {
    let v = Vector { layers: (0..3).map(|l| (0..8).map(|i| (l * 8 + i) as f32 / 10.0).collect()).collect(), model: "tiny".into(), method: "pca".into(), injection: Injection::Icv, default_strength: 0.1, pairs: 4, signature: Default::default() };
    v.to_safetensors().unwrap()
}

/// A 1-layer BERT (hidden 4) with a 2-label head: (config.json, model.safetensors, tokenizer.json).
fn bert_seed() -> (Vec<u8>, Vec<u8>, Vec<u8>) {
    let (h, ffn, vocab) = (4usize, 8usize, 12usize);
    let mut tensors = Vec::new();
    let mut add = |name: &str, shape: Vec<usize>| {
        let n: usize = shape.iter().product();
        let v: Vec<f32> = (0..n).map(|i| ((i * 31 % 17) as f32 - 8.0) / 16.0 + if name.ends_with("LayerNorm.weight") { 1.0 } else { 0.0 }).collect();
        tensors.push(Stored::floats(name, shape, &v, OutDtype::F32));
    };
    add("embeddings.word_embeddings.weight", vec![vocab, h]);
    add("embeddings.position_embeddings.weight", vec![16, h]);
    add("embeddings.token_type_embeddings.weight", vec![2, h]);
    add("embeddings.LayerNorm.weight", vec![h]);
    add("embeddings.LayerNorm.bias", vec![h]);
    for (name, out, inp) in [("attention.self.query", h, h), ("attention.self.key", h, h), ("attention.self.value", h, h), ("attention.output.dense", h, h), ("intermediate.dense", ffn, h), ("output.dense", h, ffn)] {
        add(&format!("encoder.layer.0.{name}.weight"), vec![out, inp]);
        add(&format!("encoder.layer.0.{name}.bias"), vec![out]);
    }
    for name in ["attention.output.LayerNorm", "output.LayerNorm"] {
        add(&format!("encoder.layer.0.{name}.weight"), vec![h]);
        add(&format!("encoder.layer.0.{name}.bias"), vec![h]);
    }
    add("pooler.dense.weight", vec![h, h]);
    add("pooler.dense.bias", vec![h]);
    add("classifier.weight", vec![2, h]);
    add("classifier.bias", vec![2]);
    let weights = veer::io::safetensors::write(&tensors, Default::default(), "model.safetensors").unwrap();
    let config = serde_json::json!({
        "model_type": "bert", "architectures": ["BertForSequenceClassification"], "vocab_size": vocab, "hidden_size": h,
        "num_hidden_layers": 1, "num_attention_heads": 2, "intermediate_size": ffn, "max_position_embeddings": 16,
        "type_vocab_size": 2, "layer_norm_eps": 1e-12, "hidden_act": "gelu", "id2label": {"0": "no", "1": "yes"},
    });
    let words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "the", "cat", "sat", "on", "mat", "##s", ".", "a"];
    (serde_json::to_vec(&config).unwrap(), weights, common::synthetic::wordpiece_tokenizer(&words))
}

fn files(config: &[u8], weights: &[u8], tokenizer: &[u8]) -> ModelFiles {
    ModelFiles::new(config.to_vec(), weights.to_vec(), tokenizer.to_vec())
}

// --- targets ---------------------------------------------------------------------------------------------

#[test]
fn fuzz_gguf_parse_and_dequantize() {
    let seeds = vec![gguf_seed(&[(0, 128), (1, 64)]), gguf_seed(&[(8, 34), (2, 18), (3, 20)])];
    fuzz("gguf", &seeds, |data| {
        if let Ok(g) = veer::io::gguf::Gguf::parse(data, "fuzz.gguf") {
            for t in &g.tensors {
                let v = g.dequantize(t);
                assert_eq!(v.len(), t.num_elements(), "{}", t.name);
            }
        }
    });
}

#[test]
fn fuzz_vector_files_fit_round_trip_and_arithmetic() {
    let seeds = vec![vector_seed(), gguf_seed(&[(0, 128), (1, 64)])];
    fuzz_shaped("vector", Shape::SafetensorsHeader, &seeds, |data| {
        let Ok(mut v) = Vector::from_bytes(data, "fuzz.vec") else { return };
        let (layers, hidden) = (v.layers.len(), v.hidden());
        assert!(v.layers.iter().flatten().all(|x| x.is_finite()), "a loaded vector holds a non-finite value");
        if v.fit(layers.max(1), hidden, "fuzz.vec").is_ok() {
            let back = Vector::from_bytes(&v.to_safetensors().unwrap(), "round-trip").unwrap();
            assert_eq!(back.layers, v.layers);
            let _ = v.add(&back).and_then(|s| s.sub(&v));
            let _ = v.scale(2.0).map(|s| s.normalize());
        }
        let _ = v.fit(30, 576, "fuzz.vec");
    });
}

#[test]
fn fuzz_config_and_safetensors_to_encoder_load() {
    let (config, weights, tokenizer) = bert_seed();
    let device = backend::cpu().device;
    let options = EncoderOptions::default();
    // Mutate the config against the real weights, and the weights against the real config.
    fuzz_shaped("config", Shape::Json, std::slice::from_ref(&config), |data| {
        if let Ok(e) = Encoder::load(&files(data, &weights, &tokenizer), &options, &device) {
            let _ = backend::block_on(e.classify(&["the cat sat"]));
        }
    });
    fuzz_shaped("safetensors", Shape::SafetensorsHeader, std::slice::from_ref(&weights), |data| {
        if let Ok(e) = Encoder::load(&files(&config, data, &tokenizer), &options, &device) {
            let _ = backend::block_on(e.classify(&["the cats sat on a mat."]));
        }
    });
}

#[test]
fn fuzz_decoder_config_and_safetensors_to_generation() {
    let (weights, config, tokenizer) = common::synthetic::tiny_llama();
    let weights = weights.safetensors();
    let device = backend::cpu().device;
    let options = GenerateOptions { max_tokens: 4, ..Default::default() };
    let run = |config: &[u8], weights: &[u8]| {
        let Ok(m) = Model::load(&files(config, weights, &tokenizer), "fuzz", &device) else { return };
        let Ok(mut g) = backend::block_on(Generation::start(&m, "w5 w9 w3", &options, &Plain)) else { return };
        while let Ok(Some(_)) = backend::block_on(g.next(&m, &Plain)) {}
    };
    fuzz_shaped("decoder-config", Shape::Json, std::slice::from_ref(&config), |data| run(data, &weights));
    fuzz_shaped("decoder-safetensors", Shape::SafetensorsHeader, std::slice::from_ref(&weights), |data| run(&config, data));
}

#[test]
fn fuzz_tokenizer_json_load_and_encode() {
    let (config, weights, tokenizer) = bert_seed();
    let device = backend::cpu().device;
    let options = EncoderOptions::default();
    fuzz_shaped("tokenizer", Shape::Json, std::slice::from_ref(&tokenizer), |data| {
        if let Ok(e) = Encoder::load(&files(&config, &weights, data), &options, &device) {
            let _ = e.tokenize(&["The cats sat on a mat.", "", "ünïcödé ☃ 🐈"]);
        }
    });
}

#[test]
fn fuzz_chat_template_render() {
    let seeds = vec![
        b"{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\nYou are helpful.<|im_end|>\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}".to_vec(),
        b"{{ bos_token }}{% for m in messages %}{% if m.role == 'user' %}[INST] {{ m.content | trim }} [/INST]{% else %}{{ m.content }}{{ eos_token }}{% endif %}{% endfor %}".to_vec(),
    ];
    let messages = vec![Message { role: "user".into(), content: "hi".into() }, Message { role: "assistant".into(), content: "hello".into() }];
    fuzz("template", &seeds, |data| {
        if let Ok(t) = std::str::from_utf8(data) {
            let _ = render_chat_template(t, &messages, true, "<s>", "</s>");
        }
    });
}

#[test]
fn fuzz_sampler_on_arbitrary_logits() {
    let seeds: Vec<Vec<u8>> = vec![(0..64u8).collect(), vec![0xff; 48], [0x7fc0_0000u32.to_le_bytes(), 0x7f80_0000u32.to_le_bytes(), 1.5f32.to_le_bytes()].concat()];
    fuzz("sampler", &seeds, |data| {
        // The first bytes choose the options, the rest are the logits' bit patterns.
        let byte = |i: usize| data.get(i).copied().unwrap_or(0);
        let options = GenerateOptions {
            temperature: [0.0, 0.7, 1.0, 2.0][byte(0) as usize % 4],
            top_k: byte(1) as usize % 5,
            top_p: [1.0, 0.9, 0.5, 0.01][byte(2) as usize % 4],
            min_p: [0.0, 0.05, 1.0][byte(3) as usize % 3],
            repetition_penalty: [1.0, 1.3][byte(4) as usize % 2],
            seed: byte(5) as u64,
            ..Default::default()
        };
        let mut logits: Vec<f32> = data.get(6..).unwrap_or_default().chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect();
        if logits.is_empty() {
            return;
        }
        let n = logits.len();
        if let Ok(mut s) = Sampler::new(&options.sampler()) {
            let id = s.sample(&mut logits, &[0, 1, 2]) as usize;
            assert!(id < n, "sampled id {id} of {n}");
        }
    });
}
