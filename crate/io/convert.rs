//! GGUF (llama.cpp) → HF folder: config.json, model.safetensors, tokenizer.json, tokenizer_config.json.
//!
//! The output is an ordinary `LlamaForCausalLM` folder, so the one HF loader of veer reads it like any
//! other, and `transformers` could read it too.

use std::collections::BTreeMap;

use serde_json::{Value as Json, json};

use crate::base::error::{Error, Result};
use crate::io::gguf::{GgmlType, Gguf, TensorInfo, Value, unpermute_order};
use crate::io::{quantise, quantised};
use crate::io::safetensors::{OutDtype, Stored};

/// The files of an HF model folder, as bytes ready to write.
pub struct HfFolder {
    pub config_json: String,
    pub model_safetensors: Vec<u8>,
    pub tokenizer_json: String,
    pub tokenizer_config_json: String,
}

/// GGUF name → HF name for the Llama family.
fn hf_name(gguf: &str) -> Option<String> {
    let fixed = match gguf {
        "token_embd.weight" => Some("model.embed_tokens.weight"),
        "output_norm.weight" => Some("model.norm.weight"),
        "output.weight" => Some("lm_head.weight"),
        _ => None,
    };
    if let Some(n) = fixed {
        return Some(n.to_string());
    }
    let rest = gguf.strip_prefix("blk.")?;
    let (layer, part) = rest.split_once('.')?;
    let layer: usize = layer.parse().ok()?;
    let (module, suffix) = part.rsplit_once('.')?;
    let hf = match module {
        "attn_q" => "self_attn.q_proj",
        "attn_k" => "self_attn.k_proj",
        "attn_v" => "self_attn.v_proj",
        "attn_output" => "self_attn.o_proj",
        "ffn_gate" => "mlp.gate_proj",
        "ffn_up" => "mlp.up_proj",
        "ffn_down" => "mlp.down_proj",
        "attn_norm" => "input_layernorm",
        "ffn_norm" => "post_attention_layernorm",
        _ => return None,
    };
    Some(format!("model.layers.{layer}.{hf}.{suffix}"))
}

struct Arch {
    hidden: u64,
    layers: u64,
    ffn: u64,
    heads: u64,
    kv_heads: u64,
    eps: f64,
    rope_theta: f64,
    context: u64,
}

fn arch(g: &Gguf) -> Result<Arch> {
    let name = g.get("general.architecture")?.as_str().unwrap_or_default().to_string();
    if name != "llama" {
        return Err(Error::config("general.architecture", format!("`{name}`: convert-gguf handles `llama` (Llama, SmolLM, Mistral-style) files")));
    }
    let u = |k: &str| -> Result<u64> {
        g.get(&format!("llama.{k}"))?.as_u64().ok_or_else(|| Error::config(format!("llama.{k}"), "expected an integer"))
    };
    let f = |k: &str, default: f64| -> f64 { g.metadata.get(&format!("llama.{k}")).and_then(Value::as_f64).unwrap_or(default) };
    let heads = u("attention.head_count")?;
    if heads == 0 {
        return Err(Error::config("llama.attention.head_count", "0: expected at least 1"));
    }
    Ok(Arch {
        hidden: u("embedding_length")?,
        layers: u("block_count")?,
        ffn: u("feed_forward_length")?,
        heads,
        kv_heads: g.metadata.get("llama.attention.head_count_kv").and_then(Value::as_u64).unwrap_or(heads),
        eps: f("attention.layer_norm_rms_epsilon", 1e-5),
        rope_theta: f("rope.freq_base", 10000.0),
        context: g.metadata.get("llama.context_length").and_then(Value::as_u64).unwrap_or(2048),
    })
}

fn strings<'g>(g: &'g Gguf, key: &str) -> Result<Vec<&'g str>> {
    let arr = g.get(key)?.as_array().ok_or_else(|| Error::config(key, "expected an array"))?;
    arr.iter().map(|v| v.as_str().ok_or_else(|| Error::config(key, "expected an array of strings"))).collect()
}

fn token_id(g: &Gguf, key: &str) -> Option<u64> {
    g.metadata.get(key).and_then(Value::as_u64)
}

/// Convert a parsed GGUF file into an HF folder. `model_name` goes into the safetensors metadata.
pub fn convert(g: &Gguf, dtype: OutDtype) -> Result<HfFolder> {
    let a = arch(g)?;
    let tokens = strings(g, "tokenizer.ggml.tokens")?;
    let vocab = tokens.len() as u64;
    let tied = g.tensor("output.weight").is_err();
    let head_dim = a.hidden / a.heads;

    // Weights: un-permute Q/K, store with HF names and shapes as F16/F32, or quantised (io::quantised:
    // the GGUF's own Q8_0/Q4_1 blocks where they are what `dtype` asks for, quantised here otherwise).
    let mut tensors: BTreeMap<String, Vec<Stored>> = BTreeMap::new();
    for info in &g.tensors {
        let name = hf_name(&info.name).ok_or_else(|| {
            Error::tensor(&info.name, "no HF equivalent known to convert-gguf (supported: token_embd, output_norm, output, blk.N.attn_*/ffn_*)")
        })?;
        let shape = info.hf_shape();
        let n_heads = match info.name.rsplit('.').nth(1) {
            Some("attn_q") => Some(a.heads),
            Some("attn_k") => Some(a.kv_heads),
            _ => None,
        };
        let order = match (n_heads, shape.as_slice()) {
            (Some(n), [out, _]) => Some(unpermute_order(*out, n as usize).map_err(|e| Error::tensor(&info.name, e))?),
            _ => None,
        };
        tensors.insert(name.clone(), stored(g, info, &name, &shape, order, dtype)?);
    }
    for l in 0..a.layers {
        let q = format!("model.layers.{l}.self_attn.q_proj.weight");
        if !tensors.contains_key(&q) {
            return Err(Error::tensor(q, "missing from the GGUF file (blk.N.attn_q.weight)"));
        }
    }
    let meta: std::collections::HashMap<String, String> = [("format".to_string(), "pt".to_string())].into();
    let tensors: Vec<Stored> = tensors.into_values().flatten().collect();
    let model_safetensors = crate::io::safetensors::write(&tensors, meta, "model.safetensors")?;

    let bos = token_id(g, "tokenizer.ggml.bos_token_id");
    let eos = token_id(g, "tokenizer.ggml.eos_token_id");
    let pad = token_id(g, "tokenizer.ggml.padding_token_id").or(eos);
    let config = json!({
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "attention_bias": false,
        "attention_dropout": 0.0,
        "mlp_bias": false,
        "bos_token_id": bos,
        "eos_token_id": eos,
        "pad_token_id": pad,
        "hidden_act": "silu",
        "hidden_size": a.hidden,
        "head_dim": head_dim,
        "intermediate_size": a.ffn,
        "max_position_embeddings": a.context,
        "num_attention_heads": a.heads,
        "num_hidden_layers": a.layers,
        "num_key_value_heads": a.kv_heads,
        "rms_norm_eps": a.eps,
        "rope_theta": a.rope_theta,
        "rope_scaling": null,
        "tie_word_embeddings": tied,
        "torch_dtype": dtype.torch_name(),
        "vocab_size": vocab,
        "use_cache": true,
    });
    let mut config = config;
    if matches!(dtype, OutDtype::Q8 | OutDtype::Q4) {
        // Informational (veer reads the layout from the tensors' types): docs/models.md, "Quantised files".
        config["quantization_config"] = json!({"quant_method": "veer", "format": dtype.name(), "group_size": crate::io::quantised::GROUP});
    }

    let (tokenizer_json, tokenizer_config_json) = tokenizer_files(g, &tokens, bos, eos, pad, a.context)?;
    Ok(HfFolder {
        config_json: pretty(&config),
        model_safetensors,
        tokenizer_json,
        tokenizer_config_json,
    })
}

/// One GGUF tensor as the output stores it (`order`: the HF rows' source rows, for Q/K).
fn stored(g: &Gguf, info: &TensorInfo, name: &str, shape: &[usize], order: Option<Vec<usize>>, dtype: OutDtype) -> Result<Vec<Stored>> {
    let &[out, cols] = shape else { return Ok(vec![Stored::floats(name, shape.to_vec(), &g.dequantize(info), dtype)]) };
    let order = order.unwrap_or_else(|| (0..out).collect());
    let floats = || -> Vec<f32> {
        let values = g.dequantize(info);
        // A short tensor (a malformed file) gives a short vector, which the writer rejects by its shape.
        order.iter().flat_map(|&src| values.get(src * cols..(src + 1) * cols).unwrap_or_default().iter().copied()).collect()
    };
    if !matches!(dtype, OutDtype::Q8 | OutDtype::Q4) || !quantise::quantisable(name, shape) {
        return Ok(vec![Stored::floats(name, shape.to_vec(), &floats(), dtype)]);
    }
    let raw = g.raw(info);
    let whole = cols % quantised::GROUP == 0;
    // Embeddings (and an untied head) stay int8 in a q4 file: the CPU looks their rows up as int8, and
    // the logits are the most sensitive product.
    let table = name == "model.embed_tokens.weight" || name == "lm_head.weight";
    Ok(match (dtype, info.ty) {
        (OutDtype::Q4, GgmlType::Q4_1) if !table && whole && raw.len() == out * cols / 32 * 20 => quantise::q4_from_q4_1(name, out, cols, raw, &order).into(),
        (OutDtype::Q4, _) if !table && whole => quantise::q4_groups(name, out, cols, &floats()).into(),
        (_, GgmlType::Q8_0) if whole && raw.len() == out * cols / 32 * 34 => quantise::q8_from_q8_0(name, out, cols, raw, &order).into(),
        _ if whole => quantise::q8_groups(name, out, cols, &floats(), quantised::GROUP).into(),
        _ => quantise::q8_per_row(name, out, cols, &floats()).into(),
    })
}

fn pretty(v: &Json) -> String {
    serde_json::to_string_pretty(v).unwrap_or_default()
}

/// Build tokenizer.json (byte-level BPE, as HF's GPT2/SmolLM tokenizers) and tokenizer_config.json.
fn tokenizer_files(g: &Gguf, tokens: &[&str], bos: Option<u64>, eos: Option<u64>, pad: Option<u64>, context: u64) -> Result<(String, String)> {
    let model = g.get("tokenizer.ggml.model")?.as_str().unwrap_or_default();
    if model != "gpt2" {
        return Err(Error::config("tokenizer.ggml.model", format!("`{model}`: convert-gguf builds byte-level BPE (`gpt2`) tokenizers only")));
    }
    let merges = strings(g, "tokenizer.ggml.merges")?;
    let types: Vec<u64> = match g.metadata.get("tokenizer.ggml.token_type").and_then(Value::as_array) {
        Some(arr) => arr.iter().map(|v| v.as_u64().unwrap_or(1)).collect(),
        None => vec![1; tokens.len()],
    };
    let pre = g.metadata.get("tokenizer.ggml.pre").and_then(Value::as_str).unwrap_or("default");
    let byte_level = json!({"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true});
    let pre_tokenizer = match pre {
        // SmolLM splits every digit on its own before the GPT-2 regex.
        "smollm" => json!({"type": "Sequence", "pretokenizers": [{"type": "Digits", "individual_digits": true}, byte_level]}),
        "default" | "gpt2" | "gpt-2" => byte_level,
        other => {
            return Err(Error::config("tokenizer.ggml.pre", format!("pre-tokenizer `{other}` is not supported (supported: smollm, gpt2, default)")));
        }
    };
    // Token type 3 is llama.cpp's CONTROL: these must never be split by BPE.
    let specials: Vec<(usize, &str)> = tokens.iter().enumerate().filter(|(i, _)| types.get(*i) == Some(&3)).map(|(i, t)| (i, *t)).collect();
    let added: Vec<Json> = specials
        .iter()
        .map(|(id, content)| {
            json!({"id": id, "content": content, "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true})
        })
        .collect();
    let vocab: serde_json::Map<String, Json> = tokens.iter().enumerate().map(|(i, t)| (t.to_string(), json!(i))).collect();
    let tokenizer = json!({
        "version": "1.0",
        "truncation": null,
        "padding": null,
        "added_tokens": added,
        "normalizer": null,
        "pre_tokenizer": pre_tokenizer,
        "post_processor": {"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": false, "use_regex": true},
        "decoder": {"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": true},
        "model": {
            "type": "BPE", "dropout": null, "unk_token": null, "continuing_subword_prefix": null,
            "end_of_word_suffix": null, "fuse_unk": false, "byte_fallback": false, "ignore_merges": false,
            "vocab": vocab, "merges": merges,
        },
    });
    let tok = |id: Option<u64>| id.and_then(|i| tokens.get(i as usize)).map(|s| s.to_string());
    let unk = token_id(g, "tokenizer.ggml.unknown_token_id");
    let add_bos = g.metadata.get("tokenizer.ggml.add_bos_token").map(|v| *v == Value::Bool(true)).unwrap_or(false);
    let chat_template = g.metadata.get("tokenizer.chat_template").and_then(Value::as_str);
    let config = json!({
        "add_bos_token": add_bos,
        "bos_token": tok(bos),
        "eos_token": tok(eos),
        "pad_token": tok(pad),
        "unk_token": tok(unk),
        "additional_special_tokens": specials.iter().map(|(_, t)| *t).collect::<Vec<_>>(),
        "chat_template": chat_template,
        "clean_up_tokenization_spaces": false,
        "model_max_length": context,
        "tokenizer_class": "GPT2Tokenizer",
    });
    let tokenizer_json = serde_json::to_string(&tokenizer).map_err(|e| Error::file("tokenizer.json", e))?;
    // Prove the file loads before anyone ships it.
    tokenizers::Tokenizer::from_bytes(tokenizer_json.as_bytes()).map_err(|e| Error::Tokenizer(format!("generated tokenizer.json does not load: {e}")))?;
    Ok((tokenizer_json, pretty(&config)))
}
