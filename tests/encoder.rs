//! Encoder runtime against the independent reference (bert.json: numpy implementation of HF BertModel),
//! natively on the CPU backend.

mod common;

use common::heads::{self, Arch};
use veer::base::backend::{self, block_on};
use veer::base::options::Pooling;
use veer::tasks::encode::Encoder;
use veer::io::files::ModelFiles;
use veer::base::options::EncoderOptions;

struct Minilm {
    config: Vec<u8>,
    weights: Vec<u8>,
    tokenizer: Vec<u8>,
}

fn minilm() -> Minilm {
    let dir = common::model("all-minilm-l6-v2");
    let read = |f: &str| std::fs::read(dir.join(f)).unwrap();
    Minilm { config: read("config.json"), weights: read("model.safetensors"), tokenizer: read("tokenizer.json") }
}

fn floats(v: &serde_json::Value) -> Vec<f32> {
    v.as_array().unwrap().iter().map(|x| x.as_f64().unwrap() as f32).collect()
}

fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let dot: f64 = a.iter().zip(b).map(|(x, y)| *x as f64 * *y as f64).sum();
    let na: f64 = a.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
    let nb: f64 = b.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
    dot / (na * nb)
}

fn max_abs(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

fn options(batch_size: usize) -> EncoderOptions {
    // bert.json truncates at 256 tokens (the sentence-transformers setting for this model).
    EncoderOptions { max_length: Some(256), batch_size, ..EncoderOptions::default() }
}

/// An encoder from bytes (config, weights, tokenizer), as a page that holds them would build it.
fn load(config: &[u8], weights: &[u8], tokenizer: &[u8], options: &EncoderOptions) -> veer::Result<Encoder> {
    Encoder::load(&ModelFiles::new(config.to_vec(), weights.to_vec(), tokenizer.to_vec()), options, &backend::cpu().device)
}

#[test]
fn minilm_embeddings_match_reference_on_cpu() {
    let m = minilm();
    let fixture = common::fixture("bert.json");
    let cases = fixture["cases"].as_array().unwrap();
    let texts: Vec<&str> = cases.iter().map(|c| c["text"].as_str().unwrap()).collect();
    assert!(texts.contains(&"") && texts.iter().any(|t| t.split(' ').count() >= 300), "the empty and the long text are covered");
    let device = backend::cpu().device;
    let enc = Encoder::load(&ModelFiles::new(m.config.clone(), m.weights.clone(), m.tokenizer.clone()), &options(8), &device).unwrap();

    let ids = enc.tokenize(&texts).unwrap();
    let got = block_on(enc.embed(&texts)).unwrap();
    for ((case, ids), emb) in cases.iter().zip(&ids).zip(&got) {
        let want_ids: Vec<u32> = serde_json::from_value(case["input_ids"].clone()).unwrap();
        assert_eq!(ids, &want_ids, "input ids of {:?}", case["text"]);
        let want = floats(&case["mean_pooled_normalized"]);
        let (cos, diff) = (cosine(emb, &want), max_abs(emb, &want));
        println!("{:>4} tokens: cosine {cos:.8}, max |Δ| {diff:.2e}", ids.len());
        assert!(cos >= 0.99999 && diff <= 1e-4, "{:?}: cosine {cos}, max |Δ| {diff}", case["text"]);
    }
}

#[test]
fn padded_batches_equal_one_text_at_a_time() {
    let m = minilm();
    let device = backend::cpu().device;
    let texts = common::fixture("cases.json")["bert_texts"].as_array().unwrap().iter().map(|t| t.as_str().unwrap().to_string()).collect::<Vec<_>>();
    let _ = device;
    let batched = block_on(load(&m.config, &m.weights, &m.tokenizer, &options(8)).unwrap().embed(&texts)).unwrap();
    let single = block_on(load(&m.config, &m.weights, &m.tokenizer, &options(1)).unwrap().embed(&texts)).unwrap();
    for (a, b) in batched.iter().zip(&single) {
        assert!(max_abs(a, b) <= 1e-5, "padding changed an embedding by {}", max_abs(a, b));
    }
}

#[test]
fn cls_pooling_matches_reference_hidden_state() {
    let m = minilm();
    let fixture = common::fixture("bert.json");
    let opts = EncoderOptions { pooling: Some(Pooling::Cls), normalize: false, ..options(8) };
    let enc = load(&m.config, &m.weights, &m.tokenizer, &opts).unwrap();
    for case in fixture["cases"].as_array().unwrap() {
        let got = block_on(enc.embed(&[case["text"].as_str().unwrap()])).unwrap().remove(0);
        let want = floats(&case["cls_hidden_first16"]);
        assert!(max_abs(&got[..16], &want) <= 1e-4, "{:?}: {}", case["text"], max_abs(&got[..16], &want));
    }
}

#[test]
fn classification_heads_give_hand_computed_scores() {
    let m = minilm();
    let fixture = common::fixture("bert.json");
    let cases = fixture["cases"].as_array().unwrap();
    let texts: Vec<&str> = cases.iter().map(|c| c["text"].as_str().unwrap()).collect();
    for (arch, multi) in [(Arch::Bert, false), (Arch::Bert, true), (Arch::DistilBert, false)] {
        let s = heads::build(&m.config, &m.weights, arch, multi);
        let enc = load(&s.config, &s.weights, &m.tokenizer, &options(4)).unwrap();
        assert_eq!(enc.labels(), heads::LABELS);
        let results = block_on(enc.classify(&texts)).unwrap();
        for (case, r) in cases.iter().zip(&results) {
            let want = s.expected(&floats(&case["cls_hidden_first16"]));
            let got: Vec<f32> = r.scores.iter().map(|(_, v)| *v).collect();
            assert!(max_abs(&got, &want) <= 1e-4, "{arch:?} multi={multi}: {got:?} vs {want:?}");
            let best = veer::base::math::argmax(&want);
            assert_eq!(r.label, heads::LABELS[best]);
        }
    }
}

#[test]
fn loading_errors_name_what_is_wrong() {
    let m = minilm();
    let err = |config: &[u8], weights: &[u8], tok: &[u8]| load(config, weights, tok, &EncoderOptions::default()).err().unwrap().to_string();

    let e = err(b"<!doctype html>", &m.weights, &m.tokenizer);
    assert!(e.contains("config.json") && e.contains("HTML"), "{e}");
    let e = err(&m.config, b"not safetensors", &m.tokenizer);
    assert!(e.contains("model.safetensors"), "{e}");
    let e = err(&m.config, &m.weights, b"{}");
    assert!(e.contains("tokenizer.json"), "{e}");
    // A config that does not match the weights: every mismatch listed, with expected and found shapes.
    let mut cfg: serde_json::Value = serde_json::from_slice(&m.config).unwrap();
    cfg["intermediate_size"] = serde_json::json!(1024);
    let e = err(&serde_json::to_vec(&cfg).unwrap(), &m.weights, &m.tokenizer);
    assert!(e.contains("encoder.layer.0.intermediate.dense.weight") && e.contains("[1536, 384]") && e.contains("[1024, 384]"), "{e}");
    assert!(e.contains("18 tensor problem(s)"), "{e}");
    cfg["model_type"] = serde_json::json!("gpt2");
    assert!(err(&serde_json::to_vec(&cfg).unwrap(), &m.weights, &m.tokenizer).contains("model_type"));
    // No head: classify says so instead of failing obscurely.
    let enc = load(&m.config, &m.weights, &m.tokenizer, &EncoderOptions::default()).unwrap();
    assert!(block_on(enc.classify(&["x"])).err().unwrap().to_string().contains("no classification head"));
}

#[test]
fn cli_embed_and_classify_print_json() {
    let dir = common::model("all-minilm-l6-v2");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_veer"))
        .args(["embed", "--model"]).arg(&dir).args(["--max-len", "256", "I love this product, it works great!", ""])
        .output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let fixture = common::fixture("bert.json");
    let want = floats(&fixture["cases"][0]["mean_pooled_normalized"]);
    assert!(max_abs(&floats(&v["embeddings"][0]), &want) <= 1e-4);
    assert_eq!(v["input_ids"][1], serde_json::json!([101, 102]));

    let m = minilm();
    let s = heads::build(&m.config, &m.weights, Arch::Bert, false);
    let tmp = std::env::temp_dir().join(format!("veer-clf-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).unwrap();
    std::fs::write(tmp.join("config.json"), &s.config).unwrap();
    std::fs::write(tmp.join("model.safetensors"), &s.weights).unwrap();
    std::fs::write(tmp.join("tokenizer.json"), &m.tokenizer).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_veer")).args(["classify", "--model"]).arg(&tmp).arg("-")
        .stdin(std::process::Stdio::piped()).stdout(std::process::Stdio::piped()).spawn()
        .and_then(|mut c| {
            use std::io::Write;
            c.stdin.take().unwrap().write_all(b"I love this product, it works great!\nThis is the worst purchase I have ever made.\n")?;
            c.wait_with_output()
        })
        .unwrap();
    let _ = std::fs::remove_dir_all(&tmp);
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let results = v["results"].as_array().unwrap();
    assert_eq!(results.len(), 2);
    for (i, r) in results.iter().enumerate() {
        let want = s.expected(&floats(&fixture["cases"][i]["cls_hidden_first16"]));
        for (l, label) in heads::LABELS.iter().enumerate() {
            assert!((r["scores"][label].as_f64().unwrap() as f32 - want[l]).abs() <= 1e-4);
        }
    }
}

/// The folder's own settings (sentence_bert_config.json: 256 tokens; 1_Pooling: mean) apply without
/// any option, on the CLI as in the browser (both load a `ModelFiles`): a 300+-token text gets the
/// sentence-transformers embedding, which a 512-token truncation would not.
#[test]
fn folder_defaults_follow_sentence_transformers() {
    let dir = common::model("all-minilm-l6-v2");
    let files = ModelFiles::from_dir(&dir).unwrap();
    assert!(files.sentence_bert.is_some() && files.pooling.is_some(), "the MiniLM folder ships its sentence-transformers configs");
    let enc = Encoder::load(&files, &EncoderOptions::default(), &backend::cpu().device).unwrap();
    assert_eq!((enc.max_len(), enc.pooling()), (256, Pooling::Mean));
    let fixture = common::fixture("bert.json");
    let long = fixture["cases"].as_array().unwrap().iter().find(|c| c["input_ids"].as_array().unwrap().len() == 256).expect("a case truncated at 256");
    let text = long["text"].as_str().unwrap();
    let got = block_on(enc.embed(&[text])).unwrap().remove(0);
    let want = floats(&long["mean_pooled_normalized"]);
    assert!(cosine(&got, &want) >= 0.99999 && max_abs(&got, &want) <= 1e-4, "max |Δ| {}", max_abs(&got, &want));
    // What the browser did before it read the folder's settings: 512 tokens, a different embedding.
    let wide = Encoder::load(&files, &EncoderOptions { max_length: Some(512), ..Default::default() }, &backend::cpu().device).unwrap();
    let other = block_on(wide.embed(&[text])).unwrap().remove(0);
    assert!(cosine(&other, &want) < 0.9999, "the long case must tell 256 from 512 tokens ({})", cosine(&other, &want));
    // The CLI prints the settings it used.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_veer")).args(["embed", "--model"]).arg(&dir).arg(text).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!((v["max_length"].as_u64(), v["pooling"].as_str()), (Some(256), Some("mean")));
    assert!(max_abs(&floats(&v["embeddings"][0]), &got) <= 1e-6);
}

/// veer.d.ts declares the options the library accepts, no more and no fewer: each options interface
/// against the Rust request type it becomes (the ones the JS reads itself against the JS's own list of
/// known names), and veer.js fetches the files `ModelFiles` knows, by the same roles and paths.
#[test]
fn js_declarations_match_the_rust_request_types() {
    use veer::base::options::{DecoderOptions, GenerateOptions, HeadOptions, field_names};
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let read = |f: &str| std::fs::read_to_string(root.join(f)).unwrap_or_else(|e| panic!("{f}: {e}"));
    let dts = read("www/lib/veer.d.ts");
    // The interface's own fields (not inherited ones): `export interface Name … {` up to its `}`.
    let fields = |iface: &str| -> Vec<String> {
        let start = dts.find(&format!("export interface {iface} ")).unwrap_or_else(|| panic!("interface {iface} in veer.d.ts"));
        let body = &dts[start..][..dts[start..].find("\n}").unwrap()];
        let mut names: Vec<String> = body.lines().skip(1).filter_map(|l| l.trim().split_once('?').map(|(n, _)| n.to_string())).filter(|n| !n.starts_with('*') && !n.starts_with('/')).collect();
        names.sort();
        names
    };
    let sorted = |mut v: Vec<String>| {
        v.sort();
        v
    };
    let without = |v: Vec<String>, js_only: &[&str]| v.into_iter().filter(|n| !js_only.contains(&n.as_str())).collect::<Vec<_>>();
    // The JS's own lists of the option names it takes (`const NAME = ['a', 'b', …];`).
    let js_list = |file: &str, name: &str| -> Vec<String> {
        let text = read(file);
        let start = text.find(&format!("const {name} = [")).unwrap_or_else(|| panic!("{file} declares {name}"));
        let list = &text[start..][..text[start..].find("];").unwrap()];
        sorted(list.split('\'').skip(1).step_by(2).map(String::from).collect())
    };
    let checks = [
        ("EncoderOptions", fields("EncoderOptions"), sorted(field_names::<EncoderOptions>())),
        ("GenerateOptions", fields("GenerateOptions"), sorted(field_names::<GenerateOptions>())),
        // `name` is the JS's own (what vectors computed with the model record).
        ("GeneratorOptions", without(fields("GeneratorOptions"), &["name"]), sorted(field_names::<DecoderOptions>())),
        // `labels` and `onProgress` are read by the JS; the rest is the trainer's `HeadOptions`.
        ("TrainOptions", without(fields("TrainOptions"), &["labels", "onProgress"]), sorted(field_names::<HeadOptions>())),
        ("TrainOptions (veer-classifier.js)", without(fields("TrainOptions"), &["onProgress"]), js_list("www/lib/veer-classifier.js", "TRAIN_OPTIONS")),
        ("LoadOptions (veer-sources.js)", fields("LoadOptions"), js_list("www/lib/veer-sources.js", "LOAD_OPTIONS")),
    ];
    for (iface, declared, known) in checks {
        assert_eq!(declared, known, "veer.d.ts `{iface}` against what the library reads");
    }
    let js = read("www/lib/veer-sources.js");
    for (role, path, required) in veer::io::files::ROLES {
        let entry = format!("{role}: {{ name: '{path}'");
        let line = js.lines().find(|l| l.trim_start().starts_with(&entry)).unwrap_or_else(|| panic!("veer-sources.js FILES has `{entry}`"));
        assert_eq!(line.contains("optional: true"), !required, "{role}: optional in veer-sources.js as in ModelFiles");
    }
}
