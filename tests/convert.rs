//! `veer convert-gguf` against the spec and the reference tokenizer: run on the real SmolLM2 GGUF
//! that `make assets` fetched and converted.

mod common;

use half::f16;
use safetensors::SafeTensors;
use veer::io::gguf::{GgmlType, Gguf};

/// The block layouts written out independently of `veer::io::gguf`, element by element, from the spec.
fn reference_value(ty: GgmlType, raw: &[u8], index: usize) -> f32 {
    let h = |b: &[u8]| f16::from_le_bytes([b[0], b[1]]).to_f32();
    match ty {
        GgmlType::F32 => f32::from_le_bytes(raw[index * 4..index * 4 + 4].try_into().unwrap()),
        GgmlType::Q8_0 => {
            let block = &raw[index / 32 * 34..][..34];
            h(&block[0..2]) * (block[2 + index % 32] as i8) as f32
        }
        GgmlType::Q4_1 => {
            let block = &raw[index / 32 * 20..][..20];
            let j = index % 32;
            let q = if j < 16 { block[4 + j] & 0xf } else { block[4 + j - 16] >> 4 };
            h(&block[0..2]) * q as f32 + h(&block[2..4])
        }
        other => panic!("no reference for {other:?}"),
    }
}

fn st_value(st: &SafeTensors, name: &str, index: usize) -> f32 {
    let view = st.tensor(name).unwrap();
    let b = &view.data()[index * 2..index * 2 + 2];
    f16::from_le_bytes([b[0], b[1]]).to_f32()
}

#[test]
fn tensors_dequantise_exactly_as_specified() {
    let gguf_path = common::cache().join("SmolLM2-135M-Instruct.Q4_1.gguf");
    let bytes = std::fs::read(&gguf_path).unwrap_or_else(|e| panic!("{}: {e} (run `make assets`)", gguf_path.display()));
    let g = Gguf::parse(&bytes, "smollm2.gguf").unwrap();
    let st_bytes = std::fs::read(common::model("smollm2-135m-instruct").join("model.safetensors")).unwrap();
    let st = SafeTensors::deserialize(&st_bytes).unwrap();

    // (gguf name, hf name, heads for the Q/K un-permutation)
    let cases = [
        ("token_embd.weight", "model.embed_tokens.weight", None),
        ("blk.0.ffn_down.weight", "model.layers.0.mlp.down_proj.weight", None),
        ("blk.17.attn_v.weight", "model.layers.17.self_attn.v_proj.weight", None),
        ("blk.29.ffn_gate.weight", "model.layers.29.mlp.gate_proj.weight", None),
        ("blk.3.attn_q.weight", "model.layers.3.self_attn.q_proj.weight", Some(9)),
        ("blk.11.attn_k.weight", "model.layers.11.self_attn.k_proj.weight", Some(3)),
        ("output_norm.weight", "model.norm.weight", None),
        ("blk.4.attn_norm.weight", "model.layers.4.input_layernorm.weight", None),
    ];
    let mut seen = std::collections::BTreeSet::new();
    for (gname, hname, heads) in cases {
        let info = g.tensor(gname).unwrap();
        seen.insert(format!("{:?}", info.ty));
        let shape = info.hf_shape();
        assert_eq!(st.tensor(hname).unwrap().shape(), shape.as_slice(), "{hname}");
        let cols = *shape.last().unwrap();
        let n = info.num_elements();
        let raw = g.raw(info);
        // First, second, a middle and the last block of each tensor, every element of each.
        let blocks = [0, 1, n / 32 / 2, n / 32 - 1];
        for block in blocks {
            for index in block * 32..(block + 1) * 32 {
                let want = f16::from_f32(reference_value(info.ty, raw, index)).to_f32();
                let (row, col) = (index / cols, index % cols);
                let hf_row = match heads {
                    // GGUF row (h, i, two) holds HF row (h, two, i): llama.cpp interleaved the halves.
                    Some(h) => {
                        let half = shape[0] / h / 2;
                        let (head, rest) = (row / (2 * half), row % (2 * half));
                        let (i, two) = (rest / 2, rest % 2);
                        head * 2 * half + two * half + i
                    }
                    None => row,
                };
                let got = st_value(&st, hname, hf_row * cols + col);
                assert_eq!(got.to_bits(), want.to_bits(), "{gname} element {index}: {got} vs {want}");
            }
        }
    }
    assert_eq!(seen.into_iter().collect::<Vec<_>>(), ["F32", "Q4_1", "Q8_0"]);
    // Tied embeddings: no lm_head in the file, and the config says so.
    assert!(st.tensor("lm_head.weight").is_err());
    assert_eq!(st.len(), 2 + 30 * 9);
}

#[test]
fn converted_config_matches_reference() {
    let dir = common::model("smollm2-135m-instruct");
    let got: serde_json::Value = serde_json::from_slice(&std::fs::read(dir.join("config.json")).unwrap()).unwrap();
    let want = common::fixture("smollm2/config.json");
    for (key, value) in want.as_object().unwrap() {
        if key == "torch_dtype" {
            continue;
        }
        let g = &got[key];
        match (g.as_f64(), value.as_f64()) {
            (Some(a), Some(b)) => assert!((a - b).abs() <= 1e-9 * b.abs(), "{key}: {a} vs {b}"),
            _ => assert_eq!(g, value, "{key}"),
        }
    }
    let tc: serde_json::Value = serde_json::from_slice(&std::fs::read(dir.join("tokenizer_config.json")).unwrap()).unwrap();
    let want_tc = common::fixture("smollm2/tokenizer_config.json");
    for key in ["chat_template", "bos_token", "eos_token", "pad_token", "additional_special_tokens", "add_bos_token"] {
        assert_eq!(tc[key], want_tc[key], "tokenizer_config.json `{key}`");
    }
}

#[test]
fn converted_tokenizer_reproduces_reference_ids() {
    let dir = common::model("smollm2-135m-instruct");
    let tok = veer::io::tokenizer::load(&std::fs::read(dir.join("tokenizer.json")).unwrap(), "tokenizer.json").unwrap();
    let fixture = common::fixture("llama.json");
    for case in fixture["cases"].as_array().unwrap() {
        let prompt = case["prompt"].as_str().unwrap();
        let want: Vec<u32> = serde_json::from_value(case["input_ids"].clone()).unwrap();
        assert_eq!(veer::io::tokenizer::encode(&tok, prompt, false).unwrap(), want, "{prompt:?}");
    }
    // And agrees with the reference tokenizer.json on every other text we have (digits, unicode, chat).
    let reference = veer::io::tokenizer::load(&std::fs::read(common::root().join("tests/fixtures/smollm2/tokenizer.json")).unwrap(), "ref").unwrap();
    let cases = common::fixture("cases.json");
    let mut texts: Vec<String> = cases["bert_texts"].as_array().unwrap().iter().map(|t| t.as_str().unwrap().to_string()).collect();
    for pair in cases["icv"]["pairs"].as_array().unwrap() {
        texts.extend(pair.as_array().unwrap().iter().map(|t| t.as_str().unwrap().to_string()));
    }
    texts.push("Call 0800-123-4567 before 12:30, or pay $1,234.56 <|im_end|> ok".into());
    for text in &texts {
        for special in [false, true] {
            assert_eq!(
                veer::io::tokenizer::encode(&tok, text, special).unwrap(),
                veer::io::tokenizer::encode(&reference, text, special).unwrap(),
                "{text:?}"
            );
        }
    }
    let ids = veer::io::tokenizer::encode(&tok, "<|im_start|>user", false).unwrap();
    assert_eq!(ids[0], 1, "<|im_start|> must stay one special token");
}

#[test]
fn cli_reports_bad_files_clearly() {
    let tmp = std::env::temp_dir().join(format!("veer-bad-{}", std::process::id()));
    std::fs::write(&tmp, b"<!DOCTYPE html><html>Not found</html>").unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_veer")).args(["convert-gguf"]).arg(&tmp).arg(tmp.with_extension("out")).output().unwrap();
    let _ = std::fs::remove_file(&tmp);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("not a GGUF file") && err.contains(&*tmp.display().to_string()), "{err}");
}
