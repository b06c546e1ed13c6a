//! `head.safetensors`, the classifier head file `veer distill` and `trainClassifier` write and the encoder
//! loads: the head's tensors in HF layout, with metadata naming the format, the labels, how the head
//! reads the encoder (`veer_head`) and the encoder it was trained on.

use std::collections::HashMap;

use crate::base::error::{Error, Result};
use crate::base::options::PooledHead;
use crate::io::safetensors::Stored;

pub const HEAD_FORMAT: &str = "veer-head/1";

/// A head file of `tensors` (HF names and layout) with its metadata.
pub fn write(tensors: &[Stored], spec: &PooledHead, labels: &[String], encoder: &str) -> Result<Vec<u8>> {
    let json = |v: serde_json::Result<String>| v.map_err(|e| Error::file("head.safetensors", format!("metadata: {e}")));
    let meta: HashMap<String, String> = [
        ("format".to_string(), HEAD_FORMAT.to_string()),
        ("labels".to_string(), json(serde_json::to_string(labels))?),
        ("veer_head".to_string(), json(serde_json::to_string(spec))?),
        ("encoder".to_string(), encoder.to_string()),
    ]
    .into();
    crate::io::safetensors::write(tensors, meta, "head.safetensors")
}

/// A head file's metadata: its labels and how it reads the encoder.
pub fn read_head_metadata(bytes: &[u8], file: &str) -> Result<(Vec<String>, PooledHead)> {
    crate::base::error::reject_html(bytes, file, "a head file")?;
    let (_, meta) = safetensors::SafeTensors::read_metadata(bytes).map_err(|e| Error::file(file, format!("not a safetensors head file: {e}")))?;
    let meta = meta.metadata().clone().unwrap_or_default();
    if meta.get("format").map(String::as_str) != Some(HEAD_FORMAT) {
        return Err(Error::file(file, format!("not a {HEAD_FORMAT} file (written by `veer distill` or `trainClassifier`)")));
    }
    let labels: Vec<String> = serde_json::from_str(meta.get("labels").map_or("", String::as_str)).map_err(|e| Error::file(file, format!("metadata `labels`: {e}")))?;
    let spec: PooledHead = serde_json::from_str(meta.get("veer_head").map_or("", String::as_str)).map_err(|e| Error::file(file, format!("metadata `veer_head`: {e}")))?;
    Ok((labels, spec))
}
