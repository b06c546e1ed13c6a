//! `veer distill` end to end, and the default classifiers it made (www/heads/, packed by `make assets`).

mod common;

use std::path::Path;
use std::process::Command;

use veer::base::backend::{block_on, cpu};
use veer::apps::distill::data::{self, Columns, Dataset};
use veer::tasks::encode::Encoder;
use veer::io::files::ModelFiles;
use veer::base::options::EncoderOptions;

fn load(dir: &Path) -> Encoder {
    Encoder::load(&ModelFiles::from_dir(dir).unwrap(), &EncoderOptions::default(), &cpu().device).unwrap()
}

fn f32s(st: &safetensors::SafeTensors, name: &str) -> (Vec<usize>, Vec<f32>) {
    let t = st.tensor(name).unwrap_or_else(|e| panic!("{name}: {e}"));
    (t.shape().to_vec(), t.data().chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect())
}

/// y = W x + b with W [out, in] (HF layout), in f64.
fn affine(w: &(Vec<usize>, Vec<f32>), b: &(Vec<usize>, Vec<f32>), x: &[f64]) -> Vec<f64> {
    let (out, inp) = (w.0[0], w.0[1]);
    assert_eq!(inp, x.len());
    (0..out).map(|o| b.1[o] as f64 + (0..inp).map(|i| w.1[o * inp + i] as f64 * x[i]).sum::<f64>()).collect()
}

/// One column of a CSV file with a header row.
fn csv_column(path: &Path, column: &str) -> Vec<String> {
    let mut r = csv::Reader::from_path(path).unwrap();
    let i = r.headers().unwrap().iter().position(|h| h == column).unwrap();
    r.records().map(|rec| rec.unwrap()[i].to_string()).collect()
}

/// `veer distill` on the vendored Amazon reviews (gold labels) with MiniLM, plus `args`.
fn distill(args: &[&str], tmp: &Path, out: &Path) -> std::process::Output {
    let fixtures = common::root().join("tests/fixtures/data/amazon_fine_foods");
    Command::new(env!("CARGO_BIN_EXE_veer"))
        .args(["distill", "--text-col", "review", "--label-col", "score", "--rename", "great=positive", "--rename", "other=negative"])
        .args(["--labels", "positive,negative", "--teacher", "gold"])
        .args(args)
        .arg("--data").arg(fixtures.join("train.csv"))
        .arg("--test").arg(fixtures.join("test.csv"))
        .arg("--encoder").arg(common::model("all-minilm-l6-v2"))
        .arg("--cache").arg(tmp.join("cache"))
        .arg("--out").arg(out)
        .output()
        .unwrap()
}

#[test]
fn distill_trains_exports_and_the_runtime_reproduces_the_head() {
    let tmp = std::env::temp_dir().join(format!("veer-distill-{}", std::process::id()));
    let out = tmp.join("out");
    let minilm = common::model("all-minilm-l6-v2");
    let run = || {
        let args = ["--select", "llkd", "--budget", "0.5", "--rounds", "3", "--limit", "240", "--test-limit", "120", "--val-fraction", "0.05"];
        distill(&[&args[..], &["--layers", "4,6", "--hidden", "16", "--dtype", "f32", "--max-len", "128"]].concat(), &tmp, &out)
    };
    let first = run();
    assert!(first.status.success(), "{}", String::from_utf8_lossy(&first.stderr));
    let report: serde_json::Value = serde_json::from_slice(&std::fs::read(out.join("report.json")).unwrap()).unwrap();
    assert_eq!(report["student"]["samples"], 120, "LLKD at budget 0.5 of a 240-text pool: {report}");
    assert_eq!(report["data"]["test_size"], 120);
    assert_eq!(report["student"]["head"]["params"], 16 * 768 + 16 + 2 * 16 + 2);
    // Better than always answering the majority class (65.8 % `great` in test.csv) by a clear margin:
    // a head that learned nothing cannot pass, one that learned something does (≈ 0.8 here).
    let acc = report["student"]["test"]["accuracy"].as_f64().unwrap();
    let gold: Vec<String> = csv_column(&common::root().join("tests/fixtures/data/amazon_fine_foods/test.csv"), "score");
    let majority = gold.iter().filter(|g| *g == "great").count().max(gold.iter().filter(|g| *g != "great").count()) as f64 / gold.len() as f64;
    assert!(acc >= majority + 0.05, "student accuracy {acc} against the majority class's {majority:.3}");

    // The exported folder loads as a classifier with the labels in order.
    let clf = load(&out);
    assert_eq!(clf.labels(), ["positive", "negative"]);
    let config: serde_json::Value = serde_json::from_slice(&std::fs::read(out.join("config.json")).unwrap()).unwrap();
    assert_eq!(config["veer_head"]["layers"], serde_json::json!([4, 6]));
    assert_eq!(config["veer_head"]["activation"], "relu");

    // Its scores are the head applied on the host to the encoder's own pooled layers 4 and 6.
    let texts = ["Lovely tea, will buy again.", "Arrived broken, very disappointed.", "ok"];
    let got = block_on(clf.classify(&texts)).unwrap();
    let feats = block_on(load(&minilm).embed_layers(&texts, &[4, 6])).unwrap();
    let head_bytes = std::fs::read(out.join("head.safetensors")).unwrap();
    let head = safetensors::SafeTensors::deserialize(&head_bytes).unwrap();
    let (w1, b1, w2, b2) = (f32s(&head, "pre_classifier.weight"), f32s(&head, "pre_classifier.bias"), f32s(&head, "classifier.weight"), f32s(&head, "classifier.bias"));
    for (g, x) in got.iter().zip(&feats) {
        let x: Vec<f64> = x.iter().map(|&v| v as f64).collect();
        let h: Vec<f64> = affine(&w1, &b1, &x).into_iter().map(|v| v.max(0.0)).collect();
        let logits = affine(&w2, &b2, &h);
        let m = logits.iter().cloned().fold(f64::MIN, f64::max);
        let z: f64 = logits.iter().map(|l| (l - m).exp()).sum();
        for ((label, score), l) in g.scores.iter().zip(&logits) {
            let want = (l - m).exp() / z;
            assert!((*score as f64 - want).abs() < 1e-5, "{label}: runtime {score} vs host {want}");
        }
    }

    // A second run reuses the cached embeddings (resumable caches) and gives the same head.
    let second = run();
    assert!(second.status.success(), "{}", String::from_utf8_lossy(&second.stderr));
    let again = std::fs::read(out.join("head.safetensors")).unwrap();
    let again = safetensors::SafeTensors::deserialize(&again).unwrap();
    for name in ["pre_classifier.weight", "pre_classifier.bias", "classifier.weight", "classifier.bias"] {
        assert_eq!(f32s(&again, name), f32s(&head, name), "same seed, same data: {name} differs");
    }

    // pack refuses a file that is not a head, naming it.
    let bad = Command::new(env!("CARGO_BIN_EXE_veer")).args(["pack", "--out"]).arg(tmp.join("bad")).arg("--encoder").arg(&minilm).arg("--head").arg(minilm.join("model.safetensors")).output().unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("not a veer-head/1 file"), "{}", String::from_utf8_lossy(&bad.stderr));
    let _ = std::fs::remove_dir_all(&tmp);
}

/// y = a · b for row-major a [n, k], b [k, m].
fn matmul(a: &(Vec<usize>, Vec<f32>), b: &(Vec<usize>, Vec<f32>)) -> Vec<f64> {
    let (n, k, m) = (a.0[0], a.0[1], b.0[1]);
    assert_eq!(b.0[0], k);
    (0..n * m).map(|x| (0..k).map(|j| a.1[(x / m) * k + j] as f64 * b.1[j * m + x % m] as f64).sum()).collect()
}

#[test]
fn lora_finetuning_stores_adapters_and_pack_merges_them() {
    let tmp = std::env::temp_dir().join(format!("veer-lora-{}", std::process::id()));
    let out = tmp.join("out");
    let minilm = common::model("all-minilm-l6-v2");
    let args = ["--limit", "96", "--test-limit", "32", "--val-fraction", "0.1", "--layers", "6", "--dtype", "f32", "--max-len", "48"];
    let lora = ["--finetune-layers", "1", "--finetune-rank", "2", "--finetune-epochs", "1", "--finetune-lr", "1e-2"];
    let run = distill(&[&args[..], &lora[..]].concat(), &tmp, &out);
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    let report: serde_json::Value = serde_json::from_slice(&std::fs::read(out.join("report.json")).unwrap()).unwrap();
    // Rank 2 on the six matrices of a 384-wide MiniLM layer (4 of 384×384, 384×1536, 1536×384), plus
    // its 10 bias and LayerNorm vectors, plus the 2×384 head.
    let adapters = 4 * 2 * (384 + 384) + 2 * 2 * (384 + 1536);
    let vectors = 4 * 384 + 1536 + 384 + 4 * 384;
    assert_eq!(report["student"]["finetune"]["stats"]["trainable"], adapters + vectors + 2 * 384 + 2, "{report}");

    // The head file keeps the factors (PEFT layout), not the dense matrices.
    let head_bytes = std::fs::read(out.join("head.safetensors")).unwrap();
    let head = safetensors::SafeTensors::deserialize(&head_bytes).unwrap();
    let q = "encoder.layer.5.attention.self.query";
    assert!(head.tensor(&format!("{q}.weight")).is_err(), "a LoRA run stores no dense matrix");
    let a = f32s(&head, &format!("{q}.lora_A"));
    assert_eq!((a.0.as_slice(), head.tensor(&format!("{q}.lora_B")).unwrap().shape()), ([2, 384].as_slice(), [384, 2].as_slice()));
    assert!(head.tensor("encoder.layer.5.output.LayerNorm.weight").is_ok(), "LayerNorm parameters are trained directly");

    // pack merges base + lora_B · lora_A. lora_B starts at zero (and stays there if early stopping
    // kept the initial state), so the check sets it to known values and packs that head file.
    let b = (vec![384, 2], (0..768).map(|i| ((i % 7) as f32 - 3.0) * 0.01).collect::<Vec<f32>>());
    let b_bytes: Vec<u8> = b.1.iter().flat_map(|v| v.to_le_bytes()).collect();
    let b_name = format!("{q}.lora_B");
    let mut views = Vec::new();
    for name in head.names() {
        let t = head.tensor(name).unwrap();
        let view = if *name == b_name { safetensors::tensor::TensorView::new(safetensors::Dtype::F32, b.0.clone(), &b_bytes).unwrap() } else { t };
        views.push((name.to_string(), view));
    }
    let (_, meta) = safetensors::SafeTensors::read_metadata(&head_bytes).unwrap();
    let edited = tmp.join("edited.safetensors");
    std::fs::write(&edited, safetensors::serialize(views, meta.metadata().clone()).unwrap()).unwrap();
    let packed = tmp.join("packed");
    let pack = Command::new(env!("CARGO_BIN_EXE_veer")).args(["pack", "--dtype", "f32", "--head"]).arg(&edited).arg("--encoder").arg(&minilm).arg("--out").arg(&packed).output().unwrap();
    assert!(pack.status.success(), "{}", String::from_utf8_lossy(&pack.stderr));
    let model_bytes = std::fs::read(packed.join("model.safetensors")).unwrap();
    let model = safetensors::SafeTensors::deserialize(&model_bytes).unwrap();
    let base_bytes = std::fs::read(minilm.join("model.safetensors")).unwrap();
    let base = safetensors::SafeTensors::deserialize(&base_bytes).unwrap();
    let name = format!("{q}.weight");
    let base_w = base.tensor(&name).unwrap();
    let base_w: Vec<f32> = match base_w.dtype() {
        safetensors::Dtype::F32 => f32s(&base, &name).1,
        _ => base_w.data().chunks_exact(2).map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32()).collect(),
    };
    let merged = f32s(&model, &name);
    let delta = matmul(&b, &a);
    assert!(delta.iter().any(|d| d.abs() > 1e-4), "the check needs a non-zero update");
    let worst = merged.1.iter().zip(&base_w).zip(&delta).map(|((m, w), d)| (*m as f64 - (*w as f64 + d)).abs()).fold(0.0, f64::max);
    assert!(worst < 1e-5, "merged {name} differs from base + B·A by {worst}");
    assert!(model.names().iter().all(|n| !n.contains("lora_")), "factors leaked into model.safetensors");
    // The trained vectors replace the encoder's.
    assert_eq!(f32s(&model, "encoder.layer.5.output.LayerNorm.weight"), f32s(&head, "encoder.layer.5.output.LayerNorm.weight"));

    // A factor without its partner is an error naming the tensor, not a silently unmerged model.
    let views: Vec<_> = head.names().into_iter().filter(|n| **n != b_name).map(|n| (n.to_string(), head.tensor(n).unwrap())).collect();
    std::fs::write(&edited, safetensors::serialize(views, meta.metadata().clone()).unwrap()).unwrap();
    let bad = Command::new(env!("CARGO_BIN_EXE_veer")).args(["pack", "--head"]).arg(&edited).arg("--encoder").arg(&minilm).arg("--out").arg(tmp.join("bad")).output().unwrap();
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(!bad.status.success() && err.contains(&b_name) && err.contains("pairs"), "{err}");
    // And the folder still loads and classifies.
    assert_eq!(block_on(load(&out).classify(&["Lovely tea."])).unwrap()[0].scores.len(), 2);
    let _ = std::fs::remove_dir_all(&tmp);
}

fn accuracy(clf: &Encoder, set: &Dataset) -> f64 {
    let gold = set.gold_ids("test").unwrap();
    let pred = block_on(clf.classify(&set.texts)).unwrap();
    let correct = pred.iter().zip(&gold).filter(|(p, g)| p.label == set.labels[**g]).count();
    correct as f64 / gold.len() as f64
}

fn recorded(name: &str) -> f64 {
    let path = common::root().join(format!("www/heads/{name}/report.json"));
    let r: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    r["student"]["test"]["accuracy"].as_f64().unwrap()
}

#[test]
fn default_classifiers_reach_their_accuracy_on_held_out_data() {
    let rename = [("great".to_string(), "positive".to_string()), ("other".to_string(), "negative".to_string()), ("sports".to_string(), "sport".to_string())].into();
    // Sentiment: the Amazon test file, never seen in training.
    let cols = Columns { text: "review", label: Some("score"), rename: &rename };
    let rows = data::read_csv(&common::root().join("tests/fixtures/data/amazon_fine_foods/test.csv"), &cols).unwrap();
    let clf = load(&common::model("sentiment"));
    assert_eq!(clf.dtype(), "int8", "the default classifiers are q8 folders, int8 in memory");
    let test = Dataset::from_rows(&[&rows], Some(clf.labels().to_vec())).unwrap().remove(0);
    let acc = accuracy(&clf, &test);
    eprintln!("sentiment: accuracy {acc:.4} on {} reviews (recorded at training: {:.4})", test.len(), recorded("sentiment"));
    assert!(acc >= 0.85, "sentiment accuracy {acc}, below 0.85");
    assert!((acc - recorded("sentiment")).abs() <= 0.005, "the q8 export changed the accuracy: {acc} vs {} (F16, at training)", recorded("sentiment"));

    // Topic: the held-out 20 % of BBC news, split exactly as `veer distill --seed 0` split it.
    let path = common::cache().join("data/bbc_news.csv");
    assert!(path.is_file(), "{} is missing: run `make assets`", path.display());
    let cols = Columns { text: "text", label: Some("label"), rename: &rename };
    let clf = load(&common::model("topic"));
    let all = Dataset::from_rows(&[&data::read_csv(&path, &cols).unwrap()], Some(clf.labels().to_vec())).unwrap().remove(0);
    let parts = data::split(all.len(), &[0.2], 0x7e57);
    let test = all.subset(&parts[0]);
    let acc = accuracy(&clf, &test);
    eprintln!("topic: accuracy {acc:.4} on {} articles (recorded at training: {:.4})", test.len(), recorded("topic"));
    assert!(acc >= 0.95, "topic accuracy {acc}");
    assert!((acc - recorded("topic")).abs() <= 0.005, "the q8 export changed the accuracy: {acc} vs {} (F16, at training)", recorded("topic"));
}
