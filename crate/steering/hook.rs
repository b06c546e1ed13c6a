//! The decoder's steering hook. Two injections:
//! - `icv` (Liu et al., In-context Vectors): at each layer's MLP output m,
//!   y = λ·(1 + max(0, cos(m, −v)))·v/‖v‖ and m′ = ‖m‖·normalize(m/‖m‖ + y); several vectors average.
//! - `residual` (llama.cpp / repeng control vectors): the block output gets λ·v added.

use std::ops::Range;

use burn::tensor::{Device, Tensor, TensorData};

use crate::base::error::{Error, Result};
use crate::base::options::Injection;
use crate::models::llama::hook::{Plain, Site, Steer};
use crate::steering::vector::Vector;

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

