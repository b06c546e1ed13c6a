//! Steering vectors: the file format, arithmetic, and the hook that applies them inside the decoder.
//!
//! Two injections:
//! - `icv` (Liu et al., In-context Vectors): at each layer's MLP output m,
//!   y = λ·(1 + max(0, cos(m, −v)))·v/‖v‖ and m′ = ‖m‖·normalize(m/‖m‖ + y); several vectors average.
//! - `residual` (llama.cpp / repeng control vectors): the block output gets λ·v added.

use std::collections::HashMap;
use std::ops::Range;

use burn::tensor::{Device, Tensor, TensorData};
use safetensors::tensor::{Dtype, SafeTensors};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::llama::{Llama, Plain, Signature, Site, Steer};
use crate::weights::{OutDtype, Stored};

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
        crate::error::parse_name(s, "injection mode")
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

/// Blocks a vector file may address (SmolLM2-135M has 30; the largest Llama-family models ~128).
pub const MAX_LAYERS: usize = 1024;
/// Widest vector a file may hold: the decoder's own cap on `hidden_size` (no model it could steer is
/// wider). Bounded before the rows are allocated: a GGUF `direction.1023` of a quantised type would
/// otherwise size 1024 rows from a width that costs the file a fraction of a byte per value.
pub const MAX_HIDDEN: usize = 1 << 15;

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
        crate::weights::write(&tensors, meta, "vector")
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
        let g = crate::gguf::Gguf::parse(bytes, file)?;
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

/// One steering term of a request: a vector by handle (a file path on the CLI, a vector id in the
/// browser) and its strength (default: the vector's `default_strength`). CLI form: `FILE[:STRENGTH]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SteerTerm {
    pub vector: String,
    #[serde(default)]
    pub strength: Option<f32>,
}

impl std::str::FromStr for SteerTerm {
    type Err = Error;
    /// `FILE` or `FILE:STRENGTH`; a suffix that is not a number is part of the file name (`C:\v.gguf`).
    fn from_str(spec: &str) -> Result<Self> {
        match spec.rsplit_once(':') {
            Some((file, s)) if !file.is_empty() && s.parse::<f32>().is_ok() => Ok(SteerTerm { vector: file.to_string(), strength: s.parse().ok() }),
            _ => Ok(SteerTerm { vector: spec.to_string(), strength: None }),
        }
    }
}

/// Blocks `[start, end)` that steering acts on. JSON `[start, end]`, CLI `START..END`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct LayerRange(pub [usize; 2]);

impl std::str::FromStr for LayerRange {
    type Err = Error;
    fn from_str(spec: &str) -> Result<Self> {
        let bad = || Error::Invalid(format!("layers `{spec}`: expected START..END, e.g. 10..20"));
        let (a, b) = spec.split_once("..").ok_or_else(bad)?;
        Ok(LayerRange([a.trim().parse().map_err(|_| bad())?, b.trim().parse().map_err(|_| bad())?]))
    }
}

impl LayerRange {
    /// The range, checked against a model of `n` blocks.
    pub fn within(self, n: usize) -> Result<Range<usize>> {
        let [a, b] = self.0;
        if a < b && b <= n { Ok(a..b) } else { Err(Error::Invalid(format!("layers [{a}, {b}]: expected start < end ≤ {n} (the model's blocks)"))) }
    }
}

/// Steering as a request describes it: vectors (named for errors) with optional strengths, the mode
/// and the layer range. `build` is the one place they become the decoder's hook.
#[derive(Debug, Clone, Default)]
pub struct SteeringSpec {
    pub vectors: Vec<(String, Vector, Option<f32>)>,
    pub mode: Option<Injection>,
    pub layers: Option<LayerRange>,
    /// Accept vectors whose model signature differs from the model's.
    pub force: bool,
}

impl SteeringSpec {
    /// A request's steering (`options.steer`, `mode`, `layers`, `force_vectors`), each term's vector
    /// looked up by its handle with `resolve`.
    pub fn resolve(options: &crate::options::GenerateOptions, resolve: impl FnMut(&str) -> Result<Vector>) -> Result<Self> {
        Self::resolve_terms(&options.steer, resolve).map(|s| SteeringSpec { mode: options.mode, layers: options.layers, force: options.force_vectors, ..s })
    }

    /// Steering by `terms` alone (mode and layers from the vectors).
    pub fn resolve_terms(terms: &[SteerTerm], mut resolve: impl FnMut(&str) -> Result<Vector>) -> Result<Self> {
        let vectors = terms.iter().map(|t| Ok((t.vector.clone(), resolve(&t.vector)?, t.strength))).collect::<Result<_>>()?;
        Ok(SteeringSpec { vectors, ..Default::default() })
    }

    /// The steering hook for `model`, on its device (see `build_for`).
    pub fn build(self, model: &Llama) -> Result<Option<Steering>> {
        let c = &model.config;
        self.build_for(c.num_hidden_layers, c.hidden_size, &model.signature, model.device())
    }

    /// Check every vector against the model (`num_layers` blocks of width `hidden`, weights
    /// `signature`) and upload them; `None` when there is nothing to steer with. Without an explicit
    /// mode the vectors' own modes must agree: an icv and a residual vector cannot share one hook.
    pub fn build_for(self, num_layers: usize, hidden: usize, signature: &Signature, device: &Device) -> Result<Option<Steering>> {
        let Some((_, first, _)) = self.vectors.first() else { return Ok(None) };
        let injection = match self.mode {
            Some(m) => m,
            None => {
                if let Some((name, v, _)) = self.vectors.iter().find(|(_, v, _)| v.injection != first.injection) {
                    return Err(Error::Invalid(format!(
                        "vector {name} is a `{}` vector and the first one `{}`: set the mode explicitly to combine them",
                        v.injection.name(),
                        first.injection.name()
                    )));
                }
                first.injection
            }
        };
        let range = self.layers.map_or(Ok(0..num_layers), |r| r.within(num_layers))?;
        let mut terms = Vec::with_capacity(self.vectors.len());
        for (name, mut v, strength) in self.vectors {
            v.fit(num_layers, hidden, &name)?;
            if !self.force && !v.signature.0.is_empty() && !signature.0.is_empty() && !v.signature.matches(signature) {
                return Err(Error::Invalid(format!(
                    "vector {name} was computed with another model (`{}`: its weights signature differs from this model's); it would steer this one somewhere meaningless. Force it with `forceVectors` (CLI --force-vectors)",
                    v.model
                )));
            }
            let strength = strength.unwrap_or(v.default_strength);
            if !strength.is_finite() {
                return Err(Error::Invalid(format!("vector {name}: strength {strength} is not a finite number")));
            }
            terms.push((v, strength));
        }
        Steering::new(&terms, injection, range, device).map(Some)
    }
}

/// The decoder's hook for optional steering: the steering itself, or the no-op.
pub fn hook(steering: Option<&Steering>) -> &dyn Steer {
    match steering {
        Some(s) => s,
        None => &Plain,
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
    /// `vectors`: (vector, strength), already fitted to the model. All act in `injection` mode on
    /// `layers`.
    fn new(vectors: &[(Vector, f32)], injection: Injection, layers: Range<usize>, device: &Device) -> Result<Self> {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn vector(rows: Vec<Vec<f32>>, injection: Injection) -> Vector {
        Vector { layers: rows, model: "m".into(), method: "test".into(), injection, default_strength: 0.25, pairs: 0, signature: Signature::default() }
    }

    /// The paper's injection written out on the host in f64: m′ = ‖m‖·normalize(m/‖m‖ + y),
    /// y = λ·(1 + max(0, cos(m, −v)))·v/‖v‖.
    fn icv_host(m: &[f64], v: &[f64], lambda: f64) -> Vec<f64> {
        let norm = |x: &[f64]| x.iter().map(|a| a * a).sum::<f64>().sqrt();
        let (nm, nv) = (norm(m), norm(v));
        let cos_neg = -m.iter().zip(v).map(|(a, b)| a * b).sum::<f64>() / (nm * nv);
        let u: Vec<f64> = m.iter().zip(v).map(|(a, b)| a / nm + lambda * (1.0 + cos_neg.max(0.0)) * b / nv).collect();
        let nu = norm(&u);
        u.iter().map(|x| x / nu * nm).collect()
    }

    #[test]
    fn several_icv_vectors_average_their_steered_outputs() {
        let device = crate::backend::cpu().device;
        let h = 4;
        let v1 = vec![vec![1.0, 0.0, -2.0, 0.5]];
        let v2 = vec![vec![-0.3, 2.0, 0.0, 1.0]];
        let spec = SteeringSpec {
            vectors: vec![("a".into(), vector(v1.clone(), Injection::Icv), Some(0.5)), ("b".into(), vector(v2.clone(), Injection::Icv), None)],
            ..Default::default()
        };
        let steering = spec.build_for(1, h, &Signature::default(), &device).unwrap().unwrap();
        let rows = [[0.2f32, -1.0, 0.7, 3.0], [-2.0, 0.1, 0.4, -0.6]];
        let x = Tensor::<3>::from_data(TensorData::new(rows.concat(), [1, 2, h]), &device); // [batch, seq, hidden]
        let got = crate::backend::block_on(crate::backend::read_f32(steering.steer(0, Site::MlpOut, x))).unwrap();
        let f = |v: &[f32]| v.iter().map(|&a| a as f64).collect::<Vec<f64>>();
        for (i, m) in rows.iter().enumerate() {
            // Strength 0.5 given for the first; the second takes its file's default (0.25).
            let (a, b) = (icv_host(&f(m), &f(&v1[0]), 0.5), icv_host(&f(m), &f(&v2[0]), 0.25));
            for j in 0..h {
                let want = (a[j] + b[j]) / 2.0;
                assert!((got[i * h + j] as f64 - want).abs() < 1e-5, "row {i} dim {j}: {} vs {want}", got[i * h + j]);
            }
        }
        // Sites and layers it does not act on pass through unchanged.
        let x = Tensor::<3>::from_data(TensorData::new(rows.concat(), [1, 2, h]), &device);
        let same = crate::backend::block_on(crate::backend::read_f32(steering.steer(0, Site::BlockOut, x))).unwrap();
        assert_eq!(same, rows.concat());
    }

    #[test]
    fn residual_vectors_add_with_their_strengths_in_the_layer_range() {
        let device = crate::backend::cpu().device;
        let spec = SteeringSpec {
            vectors: vec![("r".into(), vector(vec![vec![1.0, 2.0], vec![3.0, 4.0], vec![5.0, 6.0]], Injection::Residual), Some(2.0))],
            layers: Some(LayerRange([1, 2])),
            ..Default::default()
        };
        let s = spec.build_for(3, 2, &Signature::default(), &device).unwrap().unwrap();
        let run = |layer| crate::backend::block_on(crate::backend::read_f32(s.steer(layer, Site::BlockOut, Tensor::<3>::zeros([1, 1, 2], &device)))).unwrap();
        assert_eq!(run(0), [0.0, 0.0]);
        assert_eq!(run(1), [6.0, 8.0]);
        assert_eq!(run(2), [0.0, 0.0]);
    }

    #[test]
    fn steering_requests_are_checked_before_anything_is_uploaded() {
        let device = crate::backend::cpu().device;
        let icv = vector(vec![vec![1.0, 0.0]], Injection::Icv);
        let residual = vector(vec![vec![0.0, 1.0]], Injection::Residual);
        let err = |spec: SteeringSpec| spec.build_for(1, 2, &Signature::default(), &device).err().map(|e| e.to_string()).unwrap_or_default();
        let mixed = SteeringSpec { vectors: vec![("a".into(), icv.clone(), None), ("b".into(), residual.clone(), None)], ..Default::default() };
        assert!(err(mixed.clone()).contains("vector b is a `residual` vector"), "{}", err(mixed.clone()));
        assert!(SteeringSpec { mode: Some(Injection::Icv), ..mixed }.build_for(1, 2, &Signature::default(), &device).is_ok(), "an explicit mode combines them");
        let nan = SteeringSpec { vectors: vec![("a".into(), icv.clone(), Some(f32::NAN))], ..Default::default() };
        assert!(err(nan).contains("not a finite number"));
        let wide = SteeringSpec { vectors: vec![("a".into(), icv.clone(), None)], layers: Some(LayerRange([0, 2])), ..Default::default() };
        assert!(err(wide).contains("layers [0, 2]"));
        assert!(err(SteeringSpec { vectors: vec![("v.safetensors".into(), icv, None)], ..Default::default() }.clone()).is_empty());
        assert!(SteeringSpec::default().build_for(1, 2, &Signature::default(), &device).unwrap().is_none());
    }

    #[test]
    fn a_vector_from_another_model_of_the_same_shape_is_refused_unless_forced() {
        let device = crate::backend::cpu().device;
        let ours = Signature(vec![0.02, -0.013, 1.0, 0.0]);
        // The same weights stored as BF16 (within 0.4 %) are the same model; other weights are not.
        let as_bf16 = Signature(ours.0.iter().map(|&x| half::bf16::from_f32(x).to_f32()).collect());
        let theirs = Signature(vec![-0.05, 0.02, 0.9, 0.01]);
        let with = |signature: &Signature| Vector { signature: signature.clone(), model: "other-135m".into(), ..vector(vec![vec![1.0, 0.0]], Injection::Icv) };
        let spec = |v: Vector, force: bool| SteeringSpec { vectors: vec![("v.safetensors".into(), v, None)], force, ..Default::default() };
        let build = |s: SteeringSpec| s.build_for(1, 2, &ours, &device).map(|_| ()).map_err(|e| (e.code(), e.to_string()));
        assert_eq!(build(spec(with(&ours), false)), Ok(()));
        assert_eq!(build(spec(with(&as_bf16), false)), Ok(()));
        assert_eq!(build(spec(with(&Signature::default()), false)), Ok(()), "a vector without a signature (GGUF) is checked by shape only");
        let (code, msg) = build(spec(with(&theirs), false)).unwrap_err();
        assert_eq!(code, "E_INVALID");
        assert!(msg.contains("v.safetensors") && msg.contains("other-135m") && msg.contains("forceVectors"), "{msg}");
        assert_eq!(build(spec(with(&theirs), true)), Ok(()), "forced");
        // The signature survives the file round trip; a malformed one is a load error.
        let v = with(&ours);
        assert_eq!(Vector::from_safetensors(&v.to_safetensors().unwrap(), "v").unwrap().signature, ours);
        let mut meta: HashMap<String, String> = [("model_signature".to_string(), "1,NaN".to_string())].into();
        meta.insert("format".into(), FORMAT.into());
        let bad = crate::weights::write(&[Stored::floats("layers.0", vec![2], &[1.0, 0.0], OutDtype::F32)], meta, "v").unwrap();
        assert!(Vector::from_safetensors(&bad, "bad.safetensors").unwrap_err().to_string().contains("model_signature"));
        // Arithmetic across models is refused too.
        assert!(with(&ours).add(&with(&theirs)).unwrap_err().to_string().contains("different models"));
    }

    #[test]
    fn layer_ranges_and_cli_terms_parse() {
        assert_eq!("3..7".parse::<LayerRange>().unwrap(), LayerRange([3, 7]));
        for bad in ["3", "..7", "a..b", "3..", "-1..2"] {
            assert!(bad.parse::<LayerRange>().is_err(), "{bad}");
        }
        assert_eq!(LayerRange([3, 7]).within(30).unwrap(), 3..7);
        for bad in [[7, 3], [3, 3], [0, 31]] {
            assert!(LayerRange(bad).within(30).is_err(), "{bad:?}");
        }
        let term = |s: &str| s.parse::<SteerTerm>().unwrap();
        assert_eq!(term("v.safetensors:0.2"), SteerTerm { vector: "v.safetensors".into(), strength: Some(0.2) });
        assert_eq!(term("v.safetensors:-1"), SteerTerm { vector: "v.safetensors".into(), strength: Some(-1.0) });
        assert_eq!(term("v.safetensors"), SteerTerm { vector: "v.safetensors".into(), strength: None });
        assert_eq!(term("C:\\v.gguf"), SteerTerm { vector: "C:\\v.gguf".into(), strength: None });
    }
}
