//! Steering vectors: the file format, arithmetic, and the hook that applies them inside the decoder.
//!
//! Two injections:
//! - `icv` (Liu et al., In-context Vectors): at each layer's MLP output m,
//!   y = λ·(1 + max(0, cos(m, −v)))·v/‖v‖ and m′ = ‖m‖·normalize(m/‖m‖ + y); several vectors average.
//! - `residual` (llama.cpp / repeng control vectors): the block output gets λ·v added.

use std::collections::HashMap;
use std::ops::Range;

use burn::tensor::{Device, Tensor, TensorData};
use safetensors::tensor::{Dtype, SafeTensors, TensorView};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::llama::{Site, Steer};

pub const FORMAT: &str = "veer-vector/1";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Injection {
    Icv,
    Residual,
}

impl std::str::FromStr for Injection {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "icv" => Ok(Injection::Icv),
            "residual" => Ok(Injection::Residual),
            other => Err(Error::Invalid(format!("injection mode `{other}`: expected `icv` or `residual`"))),
        }
    }
}

impl Injection {
    fn name(self) -> &'static str {
        match self {
            Injection::Icv => "icv",
            Injection::Residual => "residual",
        }
    }
}

/// A steering vector on the host: one row per decoder layer.
#[derive(Debug, Clone, PartialEq)]
pub struct Vector {
    pub layers: Vec<Vec<f32>>, // [num_layers][hidden]
    pub model: String,
    pub method: String,
    pub injection: Injection,
    pub default_strength: f32,
    pub pairs: usize,
}

impl Vector {
    pub fn hidden(&self) -> usize {
        self.layers.first().map_or(0, Vec::len)
    }

    /// Serialise as a veer vector file (safetensors, `layers.{i}` F32 [hidden], metadata).
    pub fn to_safetensors(&self) -> Result<Vec<u8>> {
        let bytes: Vec<Vec<u8>> = self.layers.iter().map(|l| l.iter().flat_map(|x| x.to_le_bytes()).collect()).collect();
        let views = bytes
            .iter()
            .enumerate()
            .map(|(i, b)| Ok((format!("layers.{i}"), TensorView::new(Dtype::F32, vec![self.hidden()], b).map_err(|e| Error::tensor(format!("layers.{i}"), e))?)))
            .collect::<Result<Vec<_>>>()?;
        let meta: HashMap<String, String> = [
            ("format", FORMAT.to_string()),
            ("model", self.model.clone()),
            ("hidden_size", self.hidden().to_string()),
            ("num_layers", self.layers.len().to_string()),
            ("method", self.method.clone()),
            ("injection", self.injection.name().to_string()),
            ("default_strength", self.default_strength.to_string()),
            ("pairs", self.pairs.to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        safetensors::serialize(views, Some(meta)).map_err(|e| Error::file("vector", e))
    }

    /// Read a veer vector file. Files without veer metadata (e.g. a bare `layers.{i}` export) load as
    /// `icv` vectors with strength 0.1.
    pub fn from_safetensors(bytes: &[u8], file: &str) -> Result<Self> {
        crate::error::reject_html(bytes, file, "a vector file")?;
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
            layers.push(t.data().chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect::<Vec<f32>>());
        }
        let hidden = layers[0].len();
        if layers.iter().any(|l| l.len() != hidden) {
            return Err(Error::file(file, "layer vectors differ in length"));
        }
        let get = |k: &str| meta.get(k).cloned();
        Ok(Vector {
            layers,
            model: get("model").unwrap_or_default(),
            method: get("method").unwrap_or_else(|| "unknown".into()),
            injection: get("injection").map(|s| s.parse()).transpose()?.unwrap_or(Injection::Icv),
            default_strength: get("default_strength").and_then(|s| s.parse().ok()).unwrap_or(0.1),
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
        let g = crate::gguf::Gguf::parse(bytes, file)?;
        let mut rows: Vec<(usize, Vec<f32>)> = Vec::new();
        for t in &g.tensors {
            let Some(n) = t.name.strip_prefix("direction.").and_then(|n| n.parse::<usize>().ok()) else { continue };
            if t.dims.len() != 1 {
                return Err(Error::tensor(&t.name, format!("shape {:?}; a direction is one vector", t.hf_shape())));
            }
            rows.push((n, g.dequantize(t)));
        }
        if rows.is_empty() {
            return Err(Error::file(file, "no `direction.{N}` tensors: not a control vector"));
        }
        let hidden = rows[0].1.len();
        if rows.iter().any(|(_, r)| r.len() != hidden) {
            return Err(Error::file(file, "directions differ in length"));
        }
        let count = rows.iter().map(|(n, _)| n + 1).max().unwrap_or(0);
        let mut layers = vec![vec![0.0; hidden]; count];
        for (n, r) in rows {
            layers[n] = r;
        }
        let hint = g.metadata.get("controlvector.model_hint").and_then(|v| v.as_str()).unwrap_or_default();
        Ok(Vector { layers, model: hint.to_string(), method: "control-vector".into(), injection: Injection::Residual, default_strength: 1.0, pairs: 0 })
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
        if self.injection != other.injection {
            return Err(Error::Invalid(format!("cannot {what} a `{}` vector and a `{}` vector", self.injection.name(), other.injection.name())));
        }
        let layers = self.layers.iter().zip(&other.layers).map(|(a, b)| a.iter().zip(b).map(|(x, y)| f(*x, *y)).collect()).collect();
        Ok(Vector { layers, method: format!("{what}({}, {})", self.method, other.method), pairs: self.pairs + other.pairs, ..self.clone() })
    }

    pub fn add(&self, other: &Vector) -> Result<Vector> {
        self.zip_with(other, |a, b| a + b, "add")
    }

    pub fn sub(&self, other: &Vector) -> Result<Vector> {
        self.zip_with(other, |a, b| a - b, "subtract")
    }

    pub fn scale(&self, k: f32) -> Vector {
        Vector { layers: self.layers.iter().map(|l| l.iter().map(|x| x * k).collect()).collect(), ..self.clone() }
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

/// Vectors with strengths, uploaded once, applied by the decoder's hook.
pub struct Steering {
    injection: Injection,
    layers: Range<usize>,
    /// Per term: strength and per-layer (unit direction [hidden] for icv, raw vector for residual).
    terms: Vec<(f32, Vec<Tensor<1>>)>,
}

impl Steering {
    /// `vectors`: (vector, strength). All must share the injection mode; `layers` limits where they act.
    pub fn new(vectors: &[(Vector, f32)], injection: Injection, layers: Range<usize>, device: &Device) -> Result<Self> {
        if vectors.is_empty() {
            return Err(Error::Invalid("steering needs at least one vector".into()));
        }
        let terms = vectors
            .iter()
            .map(|(v, strength)| {
                let rows = v
                    .layers
                    .iter()
                    .map(|l| {
                        let row = match injection {
                            Injection::Icv => {
                                let n = l.iter().map(|x| x * x).sum::<f32>().sqrt().max(f32::MIN_POSITIVE);
                                l.iter().map(|x| x / n).collect()
                            }
                            Injection::Residual => l.clone(),
                        };
                        Tensor::<1>::from_data(TensorData::new(row, [l.len()]), device)
                    })
                    .collect();
                (*strength, rows)
            })
            .collect();
        Ok(Steering { injection, layers, terms })
    }
}

impl Steer for Steering {
    fn steer(&self, layer: usize, site: Site, x: Tensor<3>) -> Tensor<3> {
        if !self.layers.contains(&layer) {
            return x;
        }
        match (self.injection, site) {
            (Injection::Icv, Site::MlpOut) => {
                let norm = x.clone().powi_scalar(2).sum_dim(2).sqrt().clamp_min(1e-12); // [b, s, 1]
                let unit = x / norm.clone(); // [b, s, h]
                let mut acc: Option<Tensor<3>> = None;
                for (lambda, rows) in &self.terms {
                    let Some(v) = rows.get(layer) else { continue };
                    let v = v.clone().unsqueeze::<3>(); // [1, 1, h], unit length
                    let cos_neg = (unit.clone() * v.clone()).sum_dim(2).neg(); // cos(m, −v): [b, s, 1]
                    let y = v * (cos_neg.clamp_min(0.0) + 1.0) * (*lambda as f64); // [b, s, h]
                    let u = unit.clone() + y;
                    let u_norm = u.clone().powi_scalar(2).sum_dim(2).sqrt().clamp_min(1e-12);
                    let steered = u / u_norm * norm.clone();
                    acc = Some(match acc {
                        Some(a) => a + steered,
                        None => steered,
                    });
                }
                match acc {
                    Some(a) => a / self.terms.len() as f64,
                    None => unit * norm,
                }
            }
            (Injection::Residual, Site::BlockOut) => {
                let mut x = x;
                for (lambda, rows) in &self.terms {
                    if let Some(v) = rows.get(layer) {
                        x = x + v.clone().unsqueeze::<3>() * (*lambda as f64);
                    }
                }
                x
            }
            _ => x,
        }
    }
}
