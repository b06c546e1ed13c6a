//! The student as files: `head.safetensors` (the trained head alone, with its labels and pooling in the
//! metadata: small enough to commit) and a complete HF folder (encoder + head) that the encoder runtime
//! and the browser load directly.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use safetensors::SafeTensors;
use serde_json::{Value as Json, json};

use crate::base::error::{Error, Result};
use crate::models::bert::head_file::read_head_metadata;
use crate::io::floats::floats;
use crate::io::safetensors::{OutDtype, Stored};

/// A tensor's shape and its values as f32, row-major.
type Dense = (Vec<usize>, Vec<f32>);

/// The head file's LoRA factors as dense updates of the encoder's weights: `X.lora_A` [r, in] and
/// `X.lora_B` [out, r] (PEFT's layout) give `X.weight` += lora_B · lora_A, keyed by `X.weight`.
fn lora_deltas(head: &SafeTensors, file: &str) -> Result<HashMap<String, Dense>> {
    let mut out = HashMap::new();
    // A lone lora_B would otherwise be dropped silently with the other factors.
    if let Some(b_name) = head.names().into_iter().find(|n| n.strip_suffix(".lora_B").is_some_and(|stem| head.tensor(&format!("{stem}.lora_A")).is_err())) {
        return Err(Error::tensor(b_name, format!("{file}: no matching lora_A (LoRA factors come in pairs)")));
    }
    for a_name in head.names().into_iter().filter(|n| n.ends_with(".lora_A")) {
        let stem = &a_name[..a_name.len() - ".lora_A".len()];
        let b_name = format!("{stem}.lora_B");
        let read = |name: &str| -> Result<Dense> {
            let t = head.tensor(name).map_err(|e| Error::tensor(name, format!("{file}: {e} (LoRA factors come in pairs)")))?;
            let v = floats(t.dtype(), t.data()).ok_or_else(|| Error::tensor(name, format!("{file}: dtype {:?}: expected F32, F16 or BF16", t.dtype())))?;
            Ok((t.shape().to_vec(), v))
        };
        let ((sa, a), (sb, b)) = (read(a_name)?, read(&b_name)?);
        let (&[r, cols], &[rows, r2]) = (sa.as_slice(), sb.as_slice()) else {
            return Err(Error::tensor(a_name, format!("{file}: LoRA factors must be matrices, found {sa:?} and {sb:?}")));
        };
        if r != r2 {
            return Err(Error::tensor(a_name, format!("{file}: rank {r} does not match {b_name}'s {r2}")));
        }
        let mut delta = vec![0f32; rows * cols]; // [out, in]
        for (o, row) in delta.chunks_exact_mut(cols).enumerate() {
            for k in 0..r {
                let bk = b[o * r + k];
                row.iter_mut().zip(&a[k * cols..(k + 1) * cols]).for_each(|(d, &ak)| *d += bk * ak);
            }
        }
        out.insert(format!("{stem}.weight"), (vec![rows, cols], delta));
    }
    Ok(out)
}

/// What `pack` wrote.
#[derive(Debug, serde::Serialize)]
pub struct Packed {
    pub labels: Vec<String>,
    pub head_params: usize,
    pub model_bytes: usize,
}

/// encoder folder + head.safetensors → a classifier folder (config.json with `id2label` and
/// `veer_head`, model.safetensors, tokenizer files); without a head, the encoder folder again in
/// `dtype`. `dtype` applies to the encoder weights (q8: its matrices int8, io::quantised); the head
/// stays F32 (it is tiny, and its rounding would be the only change to the scores).
pub fn pack(encoder_dir: &Path, head_file: Option<&Path>, out: &Path, dtype: OutDtype) -> Result<Packed> {
    if dtype == OutDtype::Q4 {
        return Err(Error::Invalid("--dtype q4 is for decoders (veer convert-gguf); encoders pack as f16, f32 or q8".into()));
    }
    let read = |p: &Path| std::fs::read(p).map_err(|e| Error::file(p.display().to_string(), e));
    let head_bytes = match head_file {
        Some(f) => read(f)?,
        None => [&2u64.to_le_bytes()[..], b"{}"].concat(), // a safetensors file of no tensors: nothing replaced
    };
    let head_name = head_file.map(|f| f.display().to_string()).unwrap_or_default();
    let head = SafeTensors::deserialize(&head_bytes).map_err(|e| Error::file(&head_name, e))?;
    let config_path = encoder_dir.join("config.json");
    let mut config: Json = serde_json::from_slice(&read(&config_path)?).map_err(|e| Error::file(config_path.display().to_string(), e))?;
    let mut labels = Vec::new();
    if head_file.is_some() {
        labels = head_config(&mut config, &head, &head_bytes, &head_name, &config_path)?;
    }
    let obj = config.as_object_mut().ok_or_else(|| Error::file(config_path.display().to_string(), "not a JSON object"))?;
    obj.insert("torch_dtype".into(), json!(dtype.torch_name()));
    if dtype == OutDtype::Q8 {
        // Informational (veer reads the layout from the tensors' types): docs/models.md, "Quantised files".
        obj.insert("quantization_config".into(), json!({"quant_method": "veer", "format": "q8", "group_size": Q8_GROUP, "embeddings": "row"}));
    }

    let weights_path = encoder_dir.join("model.safetensors");
    let weights = read(&weights_path)?;
    let enc = SafeTensors::deserialize(&weights).map_err(|e| Error::file(weights_path.display().to_string(), e))?;
    let mut tensors = encoder_tensors(&enc, &head, &head_name, &weights_path.display().to_string(), dtype)?;
    let mut head_params = 0;
    for name in head.names() {
        let t = head.tensor(name).map_err(|e| Error::tensor(name, e))?;
        head_params += t.shape().iter().product::<usize>();
        if name.ends_with(".lora_A") || name.ends_with(".lora_B") {
            continue; // merged above
        }
        tensors.push(Stored { name: name.to_string(), dtype: t.dtype(), shape: t.shape().to_vec(), bytes: t.data().to_vec() });
    }
    let model = crate::io::safetensors::write(&tensors, [("format".to_string(), "pt".to_string())].into(), "model.safetensors")?;

    std::fs::create_dir_all(out).map_err(|e| Error::file(out.display().to_string(), e))?;
    let write = |name: &str, bytes: &[u8]| std::fs::write(out.join(name), bytes).map_err(|e| Error::file(out.join(name).display().to_string(), e));
    let config = serde_json::to_string_pretty(&config).map_err(|e| Error::file("config.json", e))?;
    write("config.json", config.as_bytes())?;
    write("model.safetensors", &model)?;
    // The tokenizer, and sentence-transformers' settings for embeddings (truncation, pooling), which
    // the packed folder shares with its encoder.
    for f in ["tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt", "sentence_bert_config.json", "1_Pooling/config.json"] {
        if let Ok(bytes) = std::fs::read(encoder_dir.join(f)) {
            if let Some(parent) = out.join(f).parent() {
                std::fs::create_dir_all(parent).map_err(|e| Error::file(parent.display().to_string(), e))?;
            }
            write(f, &bytes)?;
        }
    }
    if let Some(f) = head_file.filter(|f| f.parent() != Some(out)) {
        write("head.safetensors", &read(f)?)?;
    }
    Ok(Packed { labels, head_params, model_bytes: model.len() })
}

/// The head's labels and pooling into the encoder's config.json (checked against the encoder's width).
fn head_config(config: &mut Json, head: &SafeTensors, head_bytes: &[u8], head_name: &str, config_path: &Path) -> Result<Vec<String>> {
    let (labels, spec) = read_head_metadata(head_bytes, head_name)?;
    let hidden = config["hidden_size"].as_u64().or(config["dim"].as_u64()).unwrap_or(0) as usize;
    let head_in = head.tensor(if head.names().contains(&"pre_classifier.weight") { "pre_classifier.weight" } else { "classifier.weight" });
    let width = hidden * spec.layers.len().max(1);
    match head_in {
        Ok(t) if t.shape().get(1) == Some(&width) => {}
        Ok(t) => return Err(Error::tensor("classifier.weight", format!("{head_name}: input width {:?}, but the encoder's hidden_size {hidden} × {} pooled layers is {width}", t.shape().get(1), spec.layers.len().max(1)))),
        Err(e) => return Err(Error::file(head_name, e)),
    }
    let id2label: BTreeMap<String, String> = labels.iter().enumerate().map(|(i, l)| (i.to_string(), l.clone())).collect();
    let label2id: BTreeMap<String, usize> = labels.iter().enumerate().map(|(i, l)| (l.clone(), i)).collect();
    let obj = config.as_object_mut().ok_or_else(|| Error::file(config_path.display().to_string(), "not a JSON object"))?;
    obj.insert("architectures".into(), json!(["BertModel"]));
    obj.insert("id2label".into(), json!(id2label));
    obj.insert("label2id".into(), json!(label2id));
    obj.insert("veer_head".into(), json!(spec));
    Ok(labels)
}

/// Inputs per scale of an encoder's q8 linear weights.
const Q8_GROUP: usize = 64;

/// The encoder's tensors in `dtype` as the packed folder keeps them: without a head of its own, with the
/// head file's fine-tuned tensors left to it, and with its LoRA updates merged.
fn encoder_tensors(enc: &SafeTensors, head: &SafeTensors, head_name: &str, weights_name: &str, dtype: OutDtype) -> Result<Vec<Stored>> {
    let mut adapters = lora_deltas(head, head_name)?;
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
        let mut values = match floats(t.dtype(), t.data()) {
            Some(v) => v,
            // Integer buffers (e.g. position_ids) are not weights the runtime reads.
            None if name.ends_with("position_ids") => continue,
            None => return Err(Error::tensor(name, format!("dtype {:?}: expected F32, F16 or BF16", t.dtype()))),
        };
        if let Some((shape, delta)) = adapters.remove(name) {
            if t.shape() != shape.as_slice() {
                return Err(Error::tensor(name, format!("{head_name}: its LoRA update is {shape:?}, the encoder's tensor {:?}", t.shape())));
            }
            values.iter_mut().zip(&delta).for_each(|(w, d)| *w += d);
        }
        match t.shape() {
            &[out, inp] if dtype == OutDtype::Q8 && crate::io::quantise::quantisable(name, t.shape()) => {
                // Word embeddings one scale per row (a token's row is looked up, never summed over); linear
                // weights one per 64 inputs: MiniLM's embeddings within cos 0.9994 of F16 (per row
                // only: 0.9964) in 23.3 MB (docs/models.md, "Quantised files").
                if name.contains("word_embeddings") || inp % Q8_GROUP != 0 {
                    tensors.extend(crate::io::quantise::q8_per_row(name, out, inp, &values));
                } else {
                    tensors.extend(crate::io::quantise::q8_groups(name, out, inp, &values, Q8_GROUP));
                }
            }
            shape => tensors.push(Stored::floats(name, shape.to_vec(), &values, dtype)),
        }
    }
    if let Some(name) = adapters.keys().next() {
        return Err(Error::tensor(name, format!("{head_name} has a LoRA update for it, but {} has no such tensor", weights_name)));
    }
    Ok(tensors)
}
