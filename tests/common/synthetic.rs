//! Tiny random checkpoints made by the tests (a few KB; no `make assets`): the native tests check them
//! against a plain f64 reference (tests/tiny.rs); the browser tests run them on both devices
//! (tests/web.rs).

use std::collections::HashMap;

use super::rng::Rng;
use veer::io::safetensors::{OutDtype, Stored};

// --- a seeded source of weights ----------------------------------------------------------------------

/// Named tensors (HF layout, row-major) kept in f64 for the reference and written as F32.
#[derive(Default)]
pub struct Weights(pub HashMap<String, (Vec<usize>, Vec<f64>)>);

impl Weights {
    pub fn add(&mut self, rng: &mut Rng, name: &str, shape: &[usize], scale: f64, offset: f64) {
        let v = rng.values(shape.iter().product(), scale).into_iter().map(|x| x + offset).collect();
        self.0.insert(name.to_string(), (shape.to_vec(), v));
    }

    pub fn get(&self, name: &str) -> &[f64] {
        &self.0.get(name).unwrap_or_else(|| panic!("{name}")).1
    }

    pub fn safetensors(&self) -> Vec<u8> {
        self.safetensors_in(OutDtype::F32)
    }

    pub fn safetensors_in(&self, dtype: OutDtype) -> Vec<u8> {
        let mut names: Vec<&String> = self.0.keys().collect();
        names.sort();
        let tensors: Vec<Stored> = names
            .iter()
            .map(|n| {
                let (shape, v) = &self.0[*n];
                Stored::floats(n.as_str(), shape.clone(), &v.iter().map(|&x| x as f32).collect::<Vec<_>>(), dtype)
            })
            .collect();
        veer::io::safetensors::write(&tensors, HashMap::new(), "model.safetensors").unwrap()
    }
}

pub const BERT_WORDS: [&str; 16] = ["the", "cat", "sat", "on", "mat", "dog", "ran", "far", "a", "big", "red", "sun", "is", "hot", "##s", "."];
pub const BH: usize = 8; // hidden
pub const BHEADS: usize = 2;
pub const BFFN: usize = 16;
pub const BLAYERS: usize = 2;
pub const BPOS: usize = 16;

pub fn bert_vocab() -> Vec<&'static str> {
    ["[PAD]", "[UNK]", "[CLS]", "[SEP]"].into_iter().chain(BERT_WORDS).collect()
}

/// A 2-layer BERT (hidden 8) with a WordPiece tokenizer over a 20-word vocabulary: weights, config.json,
/// tokenizer.json.
pub fn tiny_bert() -> (Weights, Vec<u8>, Vec<u8>) {
    let mut rng = Rng(7);
    let mut w = Weights::default();
    let v = bert_vocab().len();
    w.add(&mut rng, "embeddings.word_embeddings.weight", &[v, BH], 1.0, 0.0);
    w.add(&mut rng, "embeddings.position_embeddings.weight", &[BPOS, BH], 0.5, 0.0);
    w.add(&mut rng, "embeddings.token_type_embeddings.weight", &[2, BH], 0.5, 0.0);
    w.add(&mut rng, "embeddings.LayerNorm.weight", &[BH], 0.2, 1.0);
    w.add(&mut rng, "embeddings.LayerNorm.bias", &[BH], 0.1, 0.0);
    for l in 0..BLAYERS {
        let p = |s: &str| format!("encoder.layer.{l}.{s}");
        for (name, out, inp) in [("attention.self.query", BH, BH), ("attention.self.key", BH, BH), ("attention.self.value", BH, BH), ("attention.output.dense", BH, BH), ("intermediate.dense", BFFN, BH), ("output.dense", BH, BFFN)] {
            w.add(&mut rng, &p(&format!("{name}.weight")), &[out, inp], 0.6, 0.0);
            w.add(&mut rng, &p(&format!("{name}.bias")), &[out], 0.1, 0.0);
        }
        for name in ["attention.output.LayerNorm", "output.LayerNorm"] {
            w.add(&mut rng, &p(&format!("{name}.weight")), &[BH], 0.2, 1.0);
            w.add(&mut rng, &p(&format!("{name}.bias")), &[BH], 0.1, 0.0);
        }
    }
    let config = serde_json::json!({
        "model_type": "bert", "architectures": ["BertModel"], "vocab_size": v, "hidden_size": BH,
        "num_hidden_layers": BLAYERS, "num_attention_heads": BHEADS, "intermediate_size": BFFN,
        "max_position_embeddings": BPOS, "type_vocab_size": 2, "layer_norm_eps": 1e-12, "hidden_act": "gelu",
    });
    (w, serde_json::to_vec(&config).unwrap(), wordpiece_tokenizer(&bert_vocab()))
}

/// A BERT tokenizer.json (lower-casing normalizer, WordPiece, [CLS]/[SEP] added) over `words`, which
/// must start with [PAD], [UNK], [CLS], [SEP].
pub fn wordpiece_tokenizer(words: &[&str]) -> Vec<u8> {
    assert_eq!(words[..4], ["[PAD]", "[UNK]", "[CLS]", "[SEP]"]);
    let vocab: serde_json::Map<String, serde_json::Value> = words.iter().enumerate().map(|(i, t)| (t.to_string(), i.into())).collect();
    let tokenizer = serde_json::json!({
        "version": "1.0", "truncation": null, "padding": null, "added_tokens": [],
        "normalizer": {"type": "BertNormalizer", "clean_text": true, "handle_chinese_chars": true, "strip_accents": null, "lowercase": true},
        "pre_tokenizer": {"type": "BertPreTokenizer"},
        "post_processor": {"type": "BertProcessing", "sep": ["[SEP]", 3], "cls": ["[CLS]", 2]},
        "decoder": null,
        "model": {"type": "WordPiece", "unk_token": "[UNK]", "continuing_subword_prefix": "##", "max_input_chars_per_word": 100, "vocab": vocab},
    });
    serde_json::to_vec(&tokenizer).unwrap()
}

pub const LV: usize = 24; // vocab
pub const LH: usize = 8; // hidden
pub const LHEADS: usize = 2;
pub const LKV: usize = 1;
pub const LDH: usize = 4; // head_dim
pub const LFFN: usize = 12;
pub const LLAYERS: usize = 3;
pub const THETA: f64 = 10000.0;
pub const EPS: f64 = 1e-5;
pub const EOS: u32 = 1;

/// A 3-layer Llama (hidden 8, 2 heads sharing 1 KV head, tied embeddings) with a word-level tokenizer
/// (`w0` … `w23`): weights, config.json, tokenizer.json.
pub fn tiny_llama() -> (Weights, Vec<u8>, Vec<u8>) {
    let mut rng = Rng(11);
    let mut w = Weights::default();
    w.add(&mut rng, "model.embed_tokens.weight", &[LV, LH], 1.0, 0.0);
    w.add(&mut rng, "model.norm.weight", &[LH], 0.2, 1.0);
    for l in 0..LLAYERS {
        let p = |s: &str| format!("model.layers.{l}.{s}.weight");
        for (name, out, inp) in [
            ("self_attn.q_proj", LHEADS * LDH, LH),
            ("self_attn.k_proj", LKV * LDH, LH),
            ("self_attn.v_proj", LKV * LDH, LH),
            ("self_attn.o_proj", LH, LHEADS * LDH),
            ("mlp.gate_proj", LFFN, LH),
            ("mlp.up_proj", LFFN, LH),
            ("mlp.down_proj", LH, LFFN),
        ] {
            w.add(&mut rng, &p(name), &[out, inp], 0.7, 0.0);
        }
        w.add(&mut rng, &p("input_layernorm"), &[LH], 0.2, 1.0);
        w.add(&mut rng, &p("post_attention_layernorm"), &[LH], 0.2, 1.0);
    }
    let config = serde_json::json!({
        "model_type": "llama", "architectures": ["LlamaForCausalLM"], "vocab_size": LV, "hidden_size": LH,
        "intermediate_size": LFFN, "num_hidden_layers": LLAYERS, "num_attention_heads": LHEADS,
        "num_key_value_heads": LKV, "head_dim": LDH, "rms_norm_eps": EPS, "rope_theta": THETA,
        "tie_word_embeddings": true, "max_position_embeddings": 64, "hidden_act": "silu",
        "bos_token_id": 0, "eos_token_id": EOS,
    });
    let vocab: serde_json::Map<String, serde_json::Value> = (0..LV).map(|i| (format!("w{i}"), i.into())).collect();
    let tokenizer = serde_json::json!({
        "version": "1.0", "truncation": null, "padding": null, "added_tokens": [], "normalizer": null,
        "pre_tokenizer": {"type": "WhitespaceSplit"}, "post_processor": null, "decoder": null,
        "model": {"type": "WordLevel", "vocab": vocab, "unk_token": "w0"},
    });
    (w, serde_json::to_vec(&config).unwrap(), serde_json::to_vec(&tokenizer).unwrap())
}

