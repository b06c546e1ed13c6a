//! The student as files: `head.safetensors` (the trained head alone, with its labels and pooling in the
//! metadata: small enough to commit) and a complete HF folder (encoder + head) that the encoder runtime
//! and the browser load directly.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use half::{bf16, f16};
use safetensors::tensor::{Dtype, TensorView};
use safetensors::SafeTensors;
use serde_json::{Value as Json, json};

use burn::tensor::Tensor;

use crate::backend::{block_on, read_f32};
use crate::bert::PooledHead;
use crate::convert::OutDtype;
use crate::distill::train::Head;
use crate::error::{Error, Result};

pub const HEAD_FORMAT: &str = "veer-head/1";

/// The head in HF layout ([out, in] weights): `pre_classifier.*` (when there is a hidden layer) and
/// `classifier.*`, F32; plus any fine-tuned encoder layers under their HF names, in `dtype` (they
/// replace the base encoder's tensors when packed).
pub fn head_safetensors(head: &Head, layers: &[(String, Tensor<2>, bool)], dtype: OutDtype, spec: &PooledHead, labels: &[String], encoder: &str) -> Result<Vec<u8>> {
    let names: &[&str] = if head.has_hidden() { &["pre_classifier.weight", "pre_classifier.bias", "classifier.weight", "classifier.bias"] } else { &["classifier.weight", "classifier.bias"] };
    let mut tensors: Vec<(String, Vec<usize>, Vec<u8>)> = Vec::new();
    for (name, p) in names.iter().zip(&head.params) {
        let [i, o] = p.dims();
        let values = block_on(read_f32(p.clone().transpose()))?; // [out, in]
        let shape = if name.ends_with(".bias") { vec![o * i] } else { vec![o, i] };
        tensors.push((name.to_string(), shape, values.iter().flat_map(|v| v.to_le_bytes()).collect()));
    }
    for (name, p, transposed) in layers {
        let [i, o] = p.dims();
        let (value, shape) = if *transposed { (p.clone().transpose(), vec![o, i]) } else { (p.clone(), vec![i * o]) };
        let values = block_on(read_f32(value))?;
        let bytes = match dtype {
            OutDtype::F16 => values.iter().flat_map(|&x| f16::from_f32(x).to_le_bytes()).collect(),
            OutDtype::F32 => values.iter().flat_map(|v| v.to_le_bytes()).collect(),
        };
        tensors.push((name.clone(), shape, bytes));
    }
    let meta: HashMap<String, String> = [
        ("format".to_string(), HEAD_FORMAT.to_string()),
        ("labels".to_string(), serde_json::to_string(labels).unwrap_or_default()),
        ("veer_head".to_string(), serde_json::to_string(spec).unwrap_or_default()),
        ("encoder".to_string(), encoder.to_string()),
    ]
    .into();
    serialize(&tensors, meta, "head.safetensors")
}

fn serialize(tensors: &[(String, Vec<usize>, Vec<u8>)], meta: HashMap<String, String>, file: &str) -> Result<Vec<u8>> {
    let views = tensors
        .iter()
        .map(|(name, shape, bytes)| {
            let dtype = if bytes.len() == 2 * shape.iter().product::<usize>() { Dtype::F16 } else { Dtype::F32 };
            TensorView::new(dtype, shape.clone(), bytes).map(|v| (name.clone(), v)).map_err(|e| Error::tensor(name, e))
        })
        .collect::<Result<Vec<_>>>()?;
    safetensors::serialize(views, Some(meta)).map_err(|e| Error::file(file, e))
}

/// What `pack` wrote.
#[derive(Debug, serde::Serialize)]
pub struct Packed {
    pub labels: Vec<String>,
    pub head_params: usize,
    pub model_bytes: usize,
}

/// encoder folder + head.safetensors → a classifier folder (config.json with `id2label` and
/// `veer_head`, model.safetensors, tokenizer files). `dtype` applies to the encoder weights; the head
/// stays F32 (it is tiny, and its rounding would be the only change to the scores).
pub fn pack(encoder_dir: &Path, head_file: &Path, out: &Path, dtype: OutDtype) -> Result<Packed> {
    let read = |p: &Path| std::fs::read(p).map_err(|e| Error::file(p.display().to_string(), e));
    let head_bytes = read(head_file)?;
    let head_name = head_file.display().to_string();
    let (_, meta) = SafeTensors::read_metadata(&head_bytes).map_err(|e| Error::file(&head_name, e))?;
    let meta = meta.metadata().clone().unwrap_or_default();
    if meta.get("format").map(String::as_str) != Some(HEAD_FORMAT) {
        return Err(Error::file(&head_name, format!("not a {HEAD_FORMAT} file (written by `veer distill`)")));
    }
    let labels: Vec<String> = serde_json::from_str(meta.get("labels").map_or("", String::as_str)).map_err(|e| Error::file(&head_name, format!("metadata `labels`: {e}")))?;
    let spec: PooledHead = serde_json::from_str(meta.get("veer_head").map_or("", String::as_str)).map_err(|e| Error::file(&head_name, format!("metadata `veer_head`: {e}")))?;
    let head = SafeTensors::deserialize(&head_bytes).map_err(|e| Error::file(&head_name, e))?;

    let config_path = encoder_dir.join("config.json");
    let mut config: Json = serde_json::from_slice(&read(&config_path)?).map_err(|e| Error::file(config_path.display().to_string(), e))?;
    let hidden = config["hidden_size"].as_u64().or(config["dim"].as_u64()).unwrap_or(0) as usize;
    let head_in = head.tensor(if head.names().iter().any(|n| *n == "pre_classifier.weight") { "pre_classifier.weight" } else { "classifier.weight" });
    let width = hidden * spec.layers.len().max(1);
    match head_in {
        Ok(t) if t.shape().get(1) == Some(&width) => {}
        Ok(t) => return Err(Error::tensor("classifier.weight", format!("{head_name}: input width {:?}, but the encoder's hidden_size {hidden} × {} pooled layers is {width}", t.shape().get(1), spec.layers.len().max(1)))),
        Err(e) => return Err(Error::file(&head_name, e)),
    }
    let id2label: BTreeMap<String, String> = labels.iter().enumerate().map(|(i, l)| (i.to_string(), l.clone())).collect();
    let label2id: BTreeMap<String, usize> = labels.iter().enumerate().map(|(i, l)| (l.clone(), i)).collect();
    let obj = config.as_object_mut().ok_or_else(|| Error::file(config_path.display().to_string(), "not a JSON object"))?;
    obj.insert("architectures".into(), json!(["BertModel"]));
    obj.insert("id2label".into(), json!(id2label));
    obj.insert("label2id".into(), json!(label2id));
    obj.insert("veer_head".into(), json!(spec));
    obj.insert("torch_dtype".into(), json!(if dtype == OutDtype::F16 { "float16" } else { "float32" }));

    let weights_path = encoder_dir.join("model.safetensors");
    let weights = read(&weights_path)?;
    let enc = SafeTensors::deserialize(&weights).map_err(|e| Error::file(weights_path.display().to_string(), e))?;
    let mut tensors = Vec::new();
    let mut names = enc.names();
    names.sort();
    let replaced: std::collections::HashSet<&str> = head.names().into_iter().collect();
    for name in names {
        if replaced.contains(name) {
            continue; // fine-tuned in the head file
        }
        if name.starts_with("classifier.") || name.starts_with("pre_classifier.") || name.starts_with("pooler.") {
            continue; // a head of the encoder's own would be dead weight
        }
        let t = enc.tensor(name).map_err(|e| Error::tensor(name, e))?;
        let values: Vec<f32> = match t.dtype() {
            Dtype::F32 => t.data().chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect(),
            Dtype::F16 => t.data().chunks_exact(2).map(|c| f16::from_le_bytes([c[0], c[1]]).to_f32()).collect(),
            Dtype::BF16 => t.data().chunks_exact(2).map(|c| bf16::from_le_bytes([c[0], c[1]]).to_f32()).collect(),
            other => {
                // Integer buffers (e.g. position_ids) are not weights the runtime reads.
                if name.ends_with("position_ids") {
                    continue;
                }
                return Err(Error::tensor(name, format!("dtype {other:?}: expected F32, F16 or BF16")));
            }
        };
        let bytes: Vec<u8> = match dtype {
            OutDtype::F16 => values.iter().flat_map(|&x| f16::from_f32(x).to_le_bytes()).collect(),
            OutDtype::F32 => values.iter().flat_map(|&x| x.to_le_bytes()).collect(),
        };
        tensors.push((name.to_string(), t.shape().to_vec(), bytes));
    }
    let mut head_params = 0;
    for name in head.names() {
        let t = head.tensor(name).map_err(|e| Error::tensor(name, e))?;
        head_params += t.shape().iter().product::<usize>();
        tensors.push((name.to_string(), t.shape().to_vec(), t.data().to_vec()));
    }
    let model = serialize(&tensors, [("format".to_string(), "pt".to_string())].into(), "model.safetensors")?;

    std::fs::create_dir_all(out).map_err(|e| Error::file(out.display().to_string(), e))?;
    let write = |name: &str, bytes: &[u8]| std::fs::write(out.join(name), bytes).map_err(|e| Error::file(out.join(name).display().to_string(), e));
    write("config.json", serde_json::to_string_pretty(&config).unwrap_or_default().as_bytes())?;
    write("model.safetensors", &model)?;
    for f in ["tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt"] {
        if let Ok(bytes) = std::fs::read(encoder_dir.join(f)) {
            write(f, &bytes)?;
        }
    }
    if head_file.parent() != Some(out) {
        write("head.safetensors", &head_bytes)?;
    }
    Ok(Packed { labels, head_params, model_bytes: model.len() })
}
