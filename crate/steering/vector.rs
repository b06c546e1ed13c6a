//! A steering vector on the host: its file format (safetensors or a llama.cpp control-vector GGUF) and
//! arithmetic. `spec` turns a request's terms into the decoder's hook (`hook`).

use std::collections::HashMap;
use safetensors::tensor::{Dtype, SafeTensors};

use crate::base::error::{Error, Result};
use crate::base::limits::{MAX_HIDDEN, MAX_LAYERS};
use crate::base::options::Injection;
use crate::models::llama::signature::Signature;
use crate::io::safetensors::{OutDtype, Stored};

pub const FORMAT: &str = "veer-vector/1";

/// Vector values must be finite: one NaN would turn every steered activation, then every logit, to NaN.
fn check_finite(row: &[f32], tensor: &str, file: &str) -> Result<()> {
    match row.iter().position(|v| !v.is_finite()) {
        Some(i) => Err(Error::Invalid(format!("{file}: tensor `{tensor}`: value {} at index {i}; vector values must be finite", row[i]))),
        None => Ok(()),
    }
}

/// A steering vector on the host: one row per decoder layer.
#[derive(Debug, Clone, PartialEq)]
pub struct Vector {
    /// [num_layers][hidden]: every row one length (checked by both readers, kept by `compute` and the
    /// arithmetic); `fit` checks it against the model before steering broadcasts a row over [b, s, hidden].
    pub layers: Vec<Vec<f32>>,
    pub model: String,
    pub method: String,
    pub injection: Injection,
    pub default_strength: f32,
    pub pairs: usize,
    /// The signature of the model it was computed with (empty: unknown, e.g. a GGUF control vector).
    pub signature: Signature,
}

impl Vector {
    pub fn hidden(&self) -> usize {
        self.layers.first().map_or(0, Vec::len)
    }

    /// Serialise as a veer vector file (safetensors, `layers.{i}` F32 [hidden], metadata).
    pub fn to_safetensors(&self) -> Result<Vec<u8>> {
        let tensors: Vec<Stored> = self.layers.iter().enumerate().map(|(i, l)| Stored::floats(format!("layers.{i}"), vec![l.len()], l, OutDtype::F32)).collect();
        let meta: HashMap<String, String> = [
            ("format", FORMAT.to_string()),
            ("model", self.model.clone()),
            ("hidden_size", self.hidden().to_string()),
            ("num_layers", self.layers.len().to_string()),
            ("method", self.method.clone()),
            ("injection", self.injection.name().to_string()),
            ("default_strength", self.default_strength.to_string()),
            ("pairs", self.pairs.to_string()),
            ("model_signature", self.signature.to_metadata()),
        ]
        .into_iter()
        .filter(|(k, v)| *k != "model_signature" || !v.is_empty())
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        crate::io::safetensors::write(&tensors, meta, "vector")
    }

    /// Read a veer vector file. Files without veer metadata (e.g. a bare `layers.{i}` export) load as
    /// `icv` vectors with strength 0.1.
    pub fn from_safetensors(bytes: &[u8], file: &str) -> Result<Self> {
        crate::base::error::reject_html(bytes, file, "a vector file")?;
        let (_, header) = SafeTensors::read_metadata(bytes).map_err(|e| Error::file(file, format!("not a safetensors vector file: {e}")))?;
        let st = SafeTensors::deserialize(bytes).map_err(|e| Error::file(file, format!("not a safetensors vector file: {e}")))?;
        let meta = header.metadata().clone().unwrap_or_default();
        if let Some(f) = meta.get("format").filter(|f| *f != FORMAT) {
            return Err(Error::file(file, format!("format `{f}`; veer reads `{FORMAT}`")));
        }
        let n = st.names().iter().filter(|n| n.starts_with("layers.")).count();
        if n == 0 {
            return Err(Error::file(file, "no `layers.{i}` tensors"));
        }
        let mut layers = Vec::with_capacity(n);
        for i in 0..n {
            let name = format!("layers.{i}");
            let t = st.tensor(&name).map_err(|_| Error::tensor(&name, format!("missing from {file} ({n} layer tensors present)")))?;
            if t.dtype() != Dtype::F32 || t.shape().len() != 1 {
                return Err(Error::tensor(&name, format!("{:?} {:?}; expected F32 [hidden]", t.dtype(), t.shape())));
            }
            let row = t.data().chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect::<Vec<f32>>();
            check_finite(&row, &name, file)?;
            layers.push(row);
        }
        let hidden = layers[0].len();
        if layers.iter().any(|l| l.len() != hidden) {
            return Err(Error::file(file, "layer vectors differ in length"));
        }
        let get = |k: &str| meta.get(k).cloned();
        let default_strength = match get("default_strength") {
            None => 0.1,
            Some(s) => s.parse::<f32>().ok().filter(|v| v.is_finite()).ok_or_else(|| Error::Invalid(format!("{file}: metadata `default_strength` {s:?} is not a finite number")))?,
        };
        let signature = match get("model_signature") {
            None => Signature::default(),
            Some(s) => Signature::parse(&s).ok_or_else(|| Error::Invalid(format!("{file}: metadata `model_signature` is not a list of at most 64 finite numbers")))?,
        };
        Ok(Vector {
            signature,
            layers,
            model: get("model").unwrap_or_default(),
            method: get("method").unwrap_or_else(|| "unknown".into()),
            injection: get("injection").map(|s| s.parse()).transpose()?.unwrap_or(Injection::Icv),
            default_strength,
            pairs: get("pairs").and_then(|s| s.parse().ok()).unwrap_or(0),
        })
    }

    /// Read a vector file of either kind: veer's safetensors, or a llama.cpp / repeng GGUF control
    /// vector (recognised by its magic bytes).
    pub fn from_bytes(bytes: &[u8], file: &str) -> Result<Self> {
        if bytes.starts_with(b"GGUF") { Self::from_gguf(bytes, file) } else { Self::from_safetensors(bytes, file) }
    }

    /// Import a llama.cpp control vector: tensors `direction.{N}` ([hidden]) added, times the strength,
    /// to the output of block N (0-based; llama.cpp never steers block 0). Becomes a `residual` vector
    /// with strength 1; blocks without a direction get zeros.
    pub fn from_gguf(bytes: &[u8], file: &str) -> Result<Self> {
        let g = crate::io::gguf::Gguf::parse(bytes, file)?;
        let mut rows: Vec<(usize, Vec<f32>)> = Vec::new();
        for t in &g.tensors {
            let Some(n) = t.name.strip_prefix("direction.").and_then(|n| n.parse::<usize>().ok()) else { continue };
            if t.dims.len() != 1 {
                return Err(Error::tensor(&t.name, format!("shape {:?}; a direction is one vector", t.hf_shape())));
            }
            // The block index sizes the vector: bound it before anything is allocated from it.
            if n >= MAX_LAYERS {
                return Err(Error::tensor(&t.name, format!("block {n}: veer steers models of at most {MAX_LAYERS} blocks")));
            }
            if rows.iter().any(|(m, _)| *m == n) {
                return Err(Error::tensor(&t.name, format!("appears twice in {file}")));
            }
            let row = g.dequantize(t);
            check_finite(&row, &t.name, file)?;
            rows.push((n, row));
        }
        if rows.is_empty() {
            return Err(Error::file(file, "no `direction.{N}` tensors: not a control vector"));
        }
        let hidden = rows[0].1.len(); // rows is not empty (checked above)
        if rows.iter().any(|(_, r)| r.len() != hidden) {
            return Err(Error::file(file, "directions differ in length"));
        }
        if hidden > MAX_HIDDEN {
            return Err(Error::file(file, format!("directions of {hidden} values: veer steers models of at most {MAX_HIDDEN}")));
        }
        let count = rows.iter().map(|(n, _)| n + 1).max().unwrap_or(0);
        let mut layers = vec![vec![0.0; hidden]; count];
        for (n, r) in rows {
            layers[n] = r; // n < count = max(n) + 1
        }
        let hint = g.metadata.get("controlvector.model_hint").and_then(|v| v.as_str()).unwrap_or_default();
        Ok(Vector { layers, model: hint.to_string(), method: "control-vector".into(), injection: Injection::Residual, default_strength: 1.0, pairs: 0, signature: Signature::default() })
    }

    /// Check the vector fits a model with `num_layers` blocks of width `hidden`. Control vectors may
    /// stop before the last block (they omit blocks they do not steer): those are padded with zeros.
    pub fn fit(&mut self, num_layers: usize, hidden: usize, file: &str) -> Result<()> {
        if self.injection == Injection::Residual && self.hidden() == hidden && self.layers.len() < num_layers {
            self.layers.resize(num_layers, vec![0.0; hidden]);
        }
        if self.hidden() != hidden || self.layers.len() != num_layers {
            return Err(Error::file(
                file,
                format!("vector is {} layers × {} (model `{}`), the model has {num_layers} layers × {hidden}", self.layers.len(), self.hidden(), self.model),
            ));
        }
        Ok(())
    }

    fn zip_with(&self, other: &Vector, f: impl Fn(f32, f32) -> f32, what: &str) -> Result<Vector> {
        if self.layers.len() != other.layers.len() || self.hidden() != other.hidden() {
            return Err(Error::Invalid(format!("cannot {what} vectors of {}×{} and {}×{}", self.layers.len(), self.hidden(), other.layers.len(), other.hidden())));
        }
        if !self.signature.0.is_empty() && !other.signature.0.is_empty() && !self.signature.matches(&other.signature) {
            return Err(Error::Invalid(format!("cannot {what} vectors computed with different models (`{}` and `{}`: their model signatures differ)", self.model, other.model)));
        }
        if self.injection != other.injection {
            return Err(Error::Invalid(format!("cannot {what} a `{}` vector and a `{}` vector", self.injection.name(), other.injection.name())));
        }
        let layers = self.layers.iter().zip(&other.layers).map(|(a, b)| a.iter().zip(b).map(|(x, y)| f(*x, *y)).collect()).collect();
        Vector { layers, method: format!("{what}({}, {})", self.method, other.method), pairs: self.pairs + other.pairs, ..self.clone() }.finite(what)
    }

    /// Arithmetic on finite values can still overflow to ±inf: a result that is not finite everywhere
    /// is an error, as a file holding it would be.
    fn finite(self, what: &str) -> Result<Vector> {
        for (i, row) in self.layers.iter().enumerate() {
            if let Some(j) = row.iter().position(|v| !v.is_finite()) {
                return Err(Error::Invalid(format!("{what}: the result overflows at layer {i}, index {j}")));
            }
        }
        Ok(self)
    }

    pub fn add(&self, other: &Vector) -> Result<Vector> {
        self.zip_with(other, |a, b| a + b, "add")
    }

    pub fn sub(&self, other: &Vector) -> Result<Vector> {
        self.zip_with(other, |a, b| a - b, "subtract")
    }

    pub fn scale(&self, k: f32) -> Result<Vector> {
        if !k.is_finite() {
            return Err(Error::Invalid(format!("scale: the factor {k} is not a finite number")));
        }
        Vector { layers: self.layers.iter().map(|l| l.iter().map(|x| x * k).collect()).collect(), ..self.clone() }.finite("scale")
    }

    /// Each layer's row scaled to unit L2 norm (zero rows stay zero).
    pub fn normalize(&self) -> Vector {
        let layers = self
            .layers
            .iter()
            .map(|l| {
                let n = l.iter().map(|x| x * x).sum::<f32>().sqrt();
                l.iter().map(|x| if n > 0.0 { x / n } else { 0.0 }).collect()
            })
            .collect();
        Vector { layers, ..self.clone() }
    }
}
