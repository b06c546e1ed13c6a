//! The one safetensors module: the loader (bytes → f32 tensors on a device, every problem reported at
//! once), the float decoding it shares with `veer pack`, and the one writer (`OutDtype`, `write`) used
//! by the converter, vector files and distillation exports.
//!
//! Models ask for tensors by HF name and expected shape. A missing or mis-shaped tensor does not stop
//! loading at the first one; the loader records it, and `finish` returns one error that lists them all,
//! so a user fixing a checkpoint sees every problem in a single message.

use std::cell::RefCell;

use burn::tensor::{Device, Tensor, TensorData};
use half::f16;
use safetensors::tensor::TensorView;
use safetensors::{Dtype, SafeTensors};

use crate::base::error::{Error, Result};
use crate::io::floats::floats;

pub struct Loader<'a> {
    st: SafeTensors<'a>,
    file: String,
    prefix: String,
    device: Device,
    problems: RefCell<Vec<String>>,
}

impl<'a> Loader<'a> {
    /// Parse a safetensors file held in memory (`file` names it in errors).
    pub fn new(bytes: &'a [u8], file: &str, device: &Device) -> Result<Self> {
        crate::base::error::reject_html(bytes, file, "safetensors")?;
        let st = SafeTensors::deserialize(bytes).map_err(|e| Error::file(file, format!("not a valid safetensors file: {e}")))?;
        Ok(Loader { st, file: file.to_string(), prefix: String::new(), device: device.clone(), problems: RefCell::default() })
    }

    /// Use the first of `prefixes` under which `probe` exists (HF heads wrap the base model in `bert.`,
    /// `distilbert.` …). Decided once from the names, so later errors name the real missing key.
    pub fn detect_prefix(&mut self, prefixes: &[&str], probe: &str) -> Result<()> {
        let names = self.st.names();
        match prefixes.iter().find(|p| names.iter().any(|n| **n == format!("{p}{probe}"))) {
            Some(p) => {
                self.prefix = p.to_string();
                Ok(())
            }
            None => Err(Error::tensor(
                probe,
                format!("not found in {} under any of the prefixes {prefixes:?}; is this the right model type?", self.file),
            )),
        }
    }

    /// The stored shape of `name`, if present.
    pub fn shape(&self, name: &str) -> Option<Vec<usize>> {
        self.st.tensor(&self.full(name)).ok().map(|v| v.shape().to_vec())
    }

    /// `name` within the detected prefix; names starting with `/` are taken from the root instead
    /// (heads such as `/classifier.weight` sit outside the base model).
    fn full(&self, name: &str) -> String {
        match name.strip_prefix('/') {
            Some(root) => root.to_string(),
            None => format!("{}{name}", self.prefix),
        }
    }

    /// The tensor's values as f32 (F16/BF16 upcast), or `None` after recording what is wrong.
    fn values(&self, name: &str, shape: &[usize]) -> Option<Vec<f32>> {
        let full = self.full(name);
        let view = match self.st.tensor(&full) {
            Ok(v) => v,
            Err(_) => {
                self.problems.borrow_mut().push(format!("`{full}` is missing (expected shape {shape:?})"));
                return None;
            }
        };
        if let (Dtype::I8 | Dtype::U8, [out, inp]) = (view.dtype(), shape) {
            // A quantised matrix (io::quantised, which checks its shapes), for a reader that runs on f32.
            return self.packed(name, *out, *inp).map(|p| p.dequantise(*out, *inp));
        }
        if view.shape() != shape {
            self.problems.borrow_mut().push(format!("`{full}` has shape {:?}, expected {shape:?}", view.shape()));
            return None;
        }
        if shape.contains(&0) {
            self.problems.borrow_mut().push(format!("`{full}` has a zero dimension {shape:?}"));
            return None;
        }
        let values = floats(view.dtype(), view.data());
        if values.is_none() {
            self.problems.borrow_mut().push(format!("`{full}` has dtype {:?}; veer reads F32, F16 and BF16 (and I8/U8 matrices with scales)", view.dtype()));
        }
        values
    }

    /// Whether `name` is stored quantised (io::quantised): the CPU keeps such a matrix as it is.
    pub fn is_packed(&self, name: &str) -> bool {
        crate::io::quantised::is_packed(&self.st, &self.full(name))
    }

    /// `name` as the quantised [out, inp] matrix the file holds, without converting it; `None` after
    /// recording what is wrong (missing, another shape, a scale that does not fit, or stored as floats:
    /// callers ask only after `is_packed`).
    pub fn packed(&self, name: &str, out: usize, inp: usize) -> Option<crate::io::quantised::Packed<'a>> {
        let full = self.full(name);
        match crate::io::quantised::read(&self.st, &full, out, inp) {
            Ok(Some(p)) => Some(p),
            Ok(None) => {
                self.problems.borrow_mut().push(format!("`{full}` is missing or not quantised (expected [{out}, {inp}])"));
                None
            }
            Err(e) => {
                self.problems.borrow_mut().push(e);
                None
            }
        }
    }

    /// A tensor of the given shape on the device. On a problem, records it and returns a one-element
    /// placeholder so that loading can go on to find the others; `finish` then fails. (Never zeros of
    /// the expected shape: that shape comes from config.json, and a hostile one would size the
    /// allocation.)
    pub fn tensor<const D: usize>(&self, name: &str, shape: [usize; D]) -> Tensor<D> {
        match self.values(name, &shape) {
            // v.len() == Π shape: `values` checked the stored shape equals `shape`, and safetensors
            // checked the data length against the stored shape and dtype.
            Some(v) => Tensor::from_data(TensorData::new(v, shape), &self.device),
            None => Tensor::zeros([1; D], &self.device),
        }
    }

    /// An HF `nn.Linear` weight stored [out, in], returned transposed as [in, out] so that forward is a
    /// plain `x.matmul(w)`. Transposed once here, on the host, not on every call.
    pub fn linear_t(&self, name: &str, out: usize, inp: usize) -> Tensor<2> {
        match self.values(name, &[out, inp]) {
            Some(v) => {
                let mut t = vec![0.0f32; v.len()];
                for (o, row) in v.chunks_exact(inp).enumerate() {
                    for (i, &x) in row.iter().enumerate() {
                        t[i * out + o] = x; // i < inp, o < out: v is [out, inp] (see `tensor`)
                    }
                }
                Tensor::from_data(TensorData::new(t, [inp, out]), &self.device)
            }
            None => Tensor::zeros([1, 1], &self.device),
        }
    }

    /// An HF `nn.Linear` weight stored [out, in] (or an embedding table [rows, width]) as f32 on the
    /// host, in its stored layout, for a layer that packs it for a kernel. On a problem, records it and
    /// returns `None` (see `tensor`).
    pub fn host_matrix(&self, name: &str, out: usize, inp: usize) -> Option<Vec<f32>> {
        self.values(name, &[out, inp])
    }

    pub fn device(&self) -> &Device {
        &self.device
    }

    /// `count` values of `name` at evenly spaced positions (every tensor element is as likely to be
    /// read), decoded to f32; empty when the tensor is missing or not a float type (loading reports
    /// that). Reads only those elements: no copy of the tensor.
    pub fn sample(&self, name: &str, count: usize) -> Vec<f32> {
        let Ok(view) = self.st.tensor(&self.full(name)) else { return Vec::new() };
        if let (true, [out, inp]) = (self.is_packed(name), view.shape()) {
            // Quantised: those elements dequantised (not the matrix: wasm memory never shrinks again).
            let Ok(Some(p)) = crate::io::quantised::read(&self.st, &self.full(name), *out, *inp) else { return Vec::new() };
            let n = out * inp;
            return (0..count.min(n)).map(|k| p.at(k * (n / count.min(n).max(1)), *inp)).collect();
        }
        let size = match view.dtype() {
            Dtype::F32 => 4,
            Dtype::F16 | Dtype::BF16 => 2,
            _ => return Vec::new(),
        };
        let n = view.data().len() / size;
        (0..count.min(n))
            .filter_map(|k| {
                let i = k * (n / count.min(n).max(1)); // < n: k < count ≤ n
                floats(view.dtype(), view.data().get(i * size..(i + 1) * size)?).and_then(|v| v.first().copied())
            })
            .collect()
    }

    /// Fails with every recorded problem (the first 20 spelled out), or succeeds if there were none.
    pub fn finish(self) -> Result<()> {
        let problems = self.problems.into_inner();
        if problems.is_empty() {
            return Ok(());
        }
        let shown = problems.iter().take(20).cloned().collect::<Vec<_>>().join("; ");
        let more = if problems.len() > 20 { format!("; and {} more", problems.len() - 20) } else { String::new() };
        Err(Error::file(&self.file, format!("{} tensor problem(s): {shown}{more}", problems.len())))
    }
}

/// The type veer writes model weights in (the converter's, `veer pack`'s and distillation's output):
/// a float type, or a quantised layout (io::quantised) for the matrices with F16 for everything else.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
pub enum OutDtype {
    F16,
    F32,
    /// Int8 matrices with their scales (io::quantised), other tensors F16.
    Q8,
    /// 4-bit matrices (io::quantised; decoders, from GGUF), embeddings int8, other tensors F16.
    Q4,
}

impl OutDtype {
    /// The float type of the tensors that are not quantised.
    fn float(self) -> OutDtype {
        match self {
            OutDtype::F32 => OutDtype::F32,
            _ => OutDtype::F16,
        }
    }

    /// Little-endian bytes of `values` in this type (the float type for q8/q4).
    pub fn encode(self, values: &[f32]) -> Vec<u8> {
        match self.float() {
            OutDtype::F32 => values.iter().flat_map(|&x| x.to_le_bytes()).collect(),
            _ => values.iter().flat_map(|&x| f16::from_f32(x).to_le_bytes()).collect(),
        }
    }

    pub fn safetensors(self) -> Dtype {
        match self.float() {
            OutDtype::F32 => Dtype::F32,
            _ => Dtype::F16,
        }
    }

    /// HF's `torch_dtype` name (of the float tensors).
    pub fn torch_name(self) -> &'static str {
        match self.float() {
            OutDtype::F32 => "float32",
            _ => "float16",
        }
    }

    /// As the CLI and config.json's `quantization_config` spell it.
    pub fn name(self) -> &'static str {
        match self {
            OutDtype::F16 => "f16",
            OutDtype::F32 => "f32",
            OutDtype::Q8 => "q8",
            OutDtype::Q4 => "q4",
        }
    }
}

/// One tensor to write: its name, stored type, shape and little-endian bytes.
pub struct Stored {
    pub name: String,
    pub dtype: Dtype,
    pub shape: Vec<usize>,
    pub bytes: Vec<u8>,
}

impl Stored {
    /// f32 values stored as `dtype`.
    pub fn floats(name: impl Into<String>, shape: Vec<usize>, values: &[f32], dtype: OutDtype) -> Self {
        Stored { name: name.into(), dtype: dtype.safetensors(), shape, bytes: dtype.encode(values) }
    }
}

/// The one safetensors writer: `tensors` with `metadata`; `file` names the output in errors.
pub fn write(tensors: &[Stored], metadata: std::collections::HashMap<String, String>, file: &str) -> Result<Vec<u8>> {
    let views = tensors
        .iter()
        .map(|t| TensorView::new(t.dtype, t.shape.clone(), &t.bytes).map(|v| (t.name.clone(), v)).map_err(|e| Error::tensor(&t.name, e)))
        .collect::<Result<Vec<_>>>()?;
    let mut bytes = safetensors::serialize(views, Some(metadata)).map_err(|e| Error::file(file, e))?;
    sort_metadata(&mut bytes);
    Ok(bytes)
}

/// Rewrite the header's `__metadata__` with its keys sorted: safetensors writes them in `HashMap`
/// order, which differs between processes and wasm instances, and the same head or vector must be the
/// same bytes every time (a page compares, caches and hashes them). Same keys and values, so the
/// header keeps its length; a header that does not parse is left as it is.
fn sort_metadata(bytes: &mut [u8]) {
    let Some(len) = bytes.get(..8).map(|b| u64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]) as usize) else { return };
    let Some(header) = bytes.get(8..8usize.saturating_add(len)) else { return };
    let Ok(serde_json::Value::Object(mut top)) = serde_json::from_slice::<serde_json::Value>(header) else { return };
    let Some(serde_json::Value::Object(meta)) = top.remove("__metadata__") else { return };
    let mut sorted: Vec<(String, serde_json::Value)> = meta.into_iter().collect();
    sorted.sort_by(|a, b| a.0.cmp(&b.0));
    let mut out = serde_json::Map::new();
    out.insert("__metadata__".into(), serde_json::Value::Object(sorted.into_iter().collect()));
    out.extend(top);
    match serde_json::to_vec(&serde_json::Value::Object(out)) {
        Ok(json) if json.len() <= len => {
            bytes[8..8 + json.len()].copy_from_slice(&json);
            bytes[8 + json.len()..8 + len].fill(b' '); // safetensors pads headers with spaces
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn written_files_are_the_same_bytes_whatever_the_metadata_order() {
        let tensors = [Stored::floats("b.weight", vec![2], &[1.0, 2.0], OutDtype::F32), Stored::floats("a.bias", vec![3], &[0.5, -1.0, 3.0], OutDtype::F16)];
        let pairs: Vec<(String, String)> = (0..12).map(|i| (format!("key{i}"), format!("value {i}"))).collect();
        let first = write(&tensors, pairs.iter().cloned().collect(), "x").unwrap();
        // A HashMap built in another order (and with another random state) iterates differently.
        for _ in 0..8 {
            let again = write(&tensors, pairs.iter().rev().cloned().collect(), "x").unwrap();
            assert_eq!(again, first);
        }
        let st = SafeTensors::deserialize(&first).unwrap();
        assert_eq!(floats(Dtype::F16, st.tensor("a.bias").unwrap().data()).unwrap(), [0.5, -1.0, 3.0]);
        let (_, header) = SafeTensors::read_metadata(&first).unwrap();
        assert_eq!(header.metadata().as_ref().unwrap().get("key7").map(String::as_str), Some("value 7"));
    }
}
