//! Steering as a request describes it (vectors by handle, strengths, mode, layers), checked against a
//! model and turned into the decoder's hook: the one place where a request becomes steering.

use crate::base::error::{Error, Result};
use crate::base::options::{GenerateOptions, Injection, LayerRange, SteerTerm};
use crate::models::llama::Llama;
use crate::models::llama::signature::Signature;
use crate::steering::hook::Steering;
use crate::steering::vector::Vector;
use burn::tensor::Device;

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
    pub fn resolve(options: &GenerateOptions, resolve: impl FnMut(&str) -> Result<Vector>) -> Result<Self> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    use burn::tensor::{Tensor, TensorData};

    use crate::io::safetensors::{OutDtype, Stored};
    use crate::models::llama::hook::{Site, Steer};
    use crate::steering::vector::FORMAT;

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
        let device = crate::base::backend::cpu().device;
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
        let got = crate::base::backend::block_on(crate::base::backend::read_f32(steering.steer(0, Site::MlpOut, x))).unwrap();
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
        let same = crate::base::backend::block_on(crate::base::backend::read_f32(steering.steer(0, Site::BlockOut, x))).unwrap();
        assert_eq!(same, rows.concat());
    }

    #[test]
    fn residual_vectors_add_with_their_strengths_in_the_layer_range() {
        let device = crate::base::backend::cpu().device;
        let spec = SteeringSpec {
            vectors: vec![("r".into(), vector(vec![vec![1.0, 2.0], vec![3.0, 4.0], vec![5.0, 6.0]], Injection::Residual), Some(2.0))],
            layers: Some(LayerRange([1, 2])),
            ..Default::default()
        };
        let s = spec.build_for(3, 2, &Signature::default(), &device).unwrap().unwrap();
        let run = |layer| crate::base::backend::block_on(crate::base::backend::read_f32(s.steer(layer, Site::BlockOut, Tensor::<3>::zeros([1, 1, 2], &device)))).unwrap();
        assert_eq!(run(0), [0.0, 0.0]);
        assert_eq!(run(1), [6.0, 8.0]);
        assert_eq!(run(2), [0.0, 0.0]);
    }

    #[test]
    fn steering_requests_are_checked_before_anything_is_uploaded() {
        let device = crate::base::backend::cpu().device;
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
        let device = crate::base::backend::cpu().device;
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
        let bad = crate::io::safetensors::write(&[Stored::floats("layers.0", vec![2], &[1.0, 0.0], OutDtype::F32)], meta, "v").unwrap();
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
