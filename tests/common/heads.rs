// Classifier folders built from all-MiniLM-L6-v2 with heads whose logits can be computed by hand from
// the reference [CLS] hidden state (`cls_hidden_first16` in bert.json): the pooler (or DistilBERT's
// pre_classifier) is the identity and the classifier reads only the first 16 features.

use safetensors::tensor::{Dtype, SafeTensors, TensorView};
use serde_json::json;

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Arch {
    Bert,
    DistilBert,
}

pub const LABELS: [&str; 3] = ["negative", "neutral", "positive"];

pub struct Synthetic {
    pub config: Vec<u8>,
    pub weights: Vec<u8>,
    pub arch: Arch,
    pub multi_label: bool,
    w: Vec<[f32; 16]>,
    b: Vec<f32>,
}

fn f32_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

fn to_f32(data: &[u8]) -> Vec<f32> {
    data.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect()
}

/// BERT names → DistilBERT names (the blocks are the same computation).
fn distil_name(name: &str) -> Option<String> {
    if let Some(rest) = name.strip_prefix("encoder.layer.") {
        let (i, part) = rest.split_once('.')?;
        let (module, suffix) = part.rsplit_once('.')?;
        let m = match module {
            "attention.self.query" => "attention.q_lin",
            "attention.self.key" => "attention.k_lin",
            "attention.self.value" => "attention.v_lin",
            "attention.output.dense" => "attention.out_lin",
            "attention.output.LayerNorm" => "sa_layer_norm",
            "intermediate.dense" => "ffn.lin1",
            "output.dense" => "ffn.lin2",
            "output.LayerNorm" => "output_layer_norm",
            _ => return None,
        };
        return Some(format!("distilbert.transformer.layer.{i}.{m}.{suffix}"));
    }
    match name {
        "embeddings.word_embeddings.weight" | "embeddings.LayerNorm.weight" | "embeddings.LayerNorm.bias" => Some(format!("distilbert.{name}")),
        _ => None,
    }
}

pub fn build(config: &[u8], weights: &[u8], arch: Arch, multi_label: bool) -> Synthetic {
    let cfg: serde_json::Value = serde_json::from_slice(config).unwrap();
    let st = SafeTensors::deserialize(weights).unwrap();
    let hidden = cfg["hidden_size"].as_u64().unwrap() as usize;
    let mut tensors: Vec<(String, Vec<usize>, Vec<u8>)> = Vec::new();
    for (name, view) in st.tensors() {
        if view.dtype() != Dtype::F32 {
            continue; // position_ids
        }
        let out = match arch {
            Arch::Bert => Some(name.clone()),
            Arch::DistilBert => distil_name(&name),
        };
        if let Some(out) = out {
            tensors.push((out, view.shape().to_vec(), view.data().to_vec()));
        }
    }
    if arch == Arch::DistilBert {
        // DistilBERT has no token types: fold BERT's type-0 embedding into the positions.
        let pos = st.tensor("embeddings.position_embeddings.weight").unwrap();
        let tt = to_f32(st.tensor("embeddings.token_type_embeddings.weight").unwrap().data());
        let mut p = to_f32(pos.data());
        for row in p.chunks_exact_mut(hidden) {
            for (x, t) in row.iter_mut().zip(&tt[..hidden]) {
                *x += t;
            }
        }
        tensors.push(("distilbert.embeddings.position_embeddings.weight".into(), pos.shape().to_vec(), f32_bytes(&p)));
    }
    let identity: Vec<f32> = (0..hidden * hidden).map(|i| if i / hidden == i % hidden { 1.0 } else { 0.0 }).collect();
    let pool_name = match arch {
        Arch::Bert => "pooler.dense",
        Arch::DistilBert => "pre_classifier",
    };
    tensors.retain(|(n, _, _)| !n.starts_with("pooler."));
    tensors.push((format!("{pool_name}.weight"), vec![hidden, hidden], f32_bytes(&identity)));
    tensors.push((format!("{pool_name}.bias"), vec![hidden], f32_bytes(&vec![0.0; hidden])));
    let w: Vec<[f32; 16]> = (0..3).map(|l| std::array::from_fn(|j| (((l * 16 + j) * 7 % 13) as f32 - 6.0) / 3.0)).collect();
    let b = vec![0.1, -0.2, 0.05];
    let mut cw = vec![0.0f32; 3 * hidden];
    for (l, row) in w.iter().enumerate() {
        cw[l * hidden..l * hidden + 16].copy_from_slice(row);
    }
    tensors.push(("classifier.weight".into(), vec![3, hidden], f32_bytes(&cw)));
    tensors.push(("classifier.bias".into(), vec![3], f32_bytes(&b)));
    let views: Vec<(String, TensorView)> =
        tensors.iter().map(|(n, s, d)| (n.clone(), TensorView::new(Dtype::F32, s.clone(), d).unwrap())).collect();
    let weights = safetensors::serialize(views, None).unwrap();

    let id2label: serde_json::Map<String, serde_json::Value> = LABELS.iter().enumerate().map(|(i, l)| (i.to_string(), json!(l))).collect();
    let mut config = match arch {
        Arch::Bert => {
            let mut c = cfg.clone();
            c["architectures"] = json!(["BertForSequenceClassification"]);
            c
        }
        Arch::DistilBert => json!({
            "model_type": "distilbert", "architectures": ["DistilBertForSequenceClassification"],
            "vocab_size": cfg["vocab_size"], "dim": hidden, "n_layers": cfg["num_hidden_layers"],
            "n_heads": cfg["num_attention_heads"], "hidden_dim": cfg["intermediate_size"],
            "max_position_embeddings": cfg["max_position_embeddings"], "activation": "gelu",
        }),
    };
    config["id2label"] = json!(id2label);
    if multi_label {
        config["problem_type"] = json!("multi_label_classification");
    }
    Synthetic { config: serde_json::to_vec(&config).unwrap(), weights, arch, multi_label, w, b }
}

impl Synthetic {
    /// Scores computed by hand from the reference [CLS] hidden state's first 16 values.
    pub fn expected(&self, cls_first16: &[f32]) -> Vec<f32> {
        let act = |x: f32| match self.arch {
            Arch::Bert => x.tanh(),
            Arch::DistilBert => x.max(0.0),
        };
        let logits: Vec<f32> =
            self.w.iter().zip(&self.b).map(|(row, b)| row.iter().zip(cls_first16).map(|(w, x)| w * act(*x)).sum::<f32>() + b).collect();
        if self.multi_label {
            logits.iter().map(|z| 1.0 / (1.0 + (-z).exp())).collect()
        } else {
            let m = logits.iter().cloned().fold(f32::MIN, f32::max);
            let e: Vec<f32> = logits.iter().map(|z| (z - m).exp()).collect();
            let s: f32 = e.iter().sum();
            e.iter().map(|x| x / s).collect()
        }
    }
}
