//! A model's identity as far as steering vectors care.

use crate::io::safetensors::Loader;

/// A model's identity as far as steering vectors care: 48 evenly spaced values of the token embeddings
/// and 16 of the final norm, as f32. Two copies of one model agree within the rounding of their storage
/// type (F32, F16 and BF16 files of the same weights match); independently trained models of the same
/// shape do not. A fine-tune that barely moves these weights counts as the same model. Folder names
/// and URLs cannot serve: the same model is served from many places under many names.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Signature(pub Vec<f32>);

impl Signature {
    pub(crate) fn of(w: &Loader) -> Self {
        Signature([w.sample("model.embed_tokens.weight", 48), w.sample("model.norm.weight", 16)].concat())
    }

    /// Same model: as many values, each within 1 % (BF16 keeps 8 significant bits, 0.4 %) plus 3 % of
    /// the values' RMS (int8 and 4-bit files round each weight by up to half a step of its group's
    /// scale, which is absolute, not relative). Another model's values differ by about their RMS.
    pub fn matches(&self, other: &Signature) -> bool {
        let rms = (self.0.iter().map(|a| a * a).sum::<f32>() / self.0.len().max(1) as f32).sqrt();
        self.0.len() == other.0.len() && self.0.iter().zip(&other.0).all(|(a, b)| (a - b).abs() <= 0.01 * a.abs().max(b.abs()) + 0.03 * rms + 1e-6)
    }

    /// As vector files store it: the values, comma-separated (shortest round-trip form).
    pub fn to_metadata(&self) -> String {
        self.0.iter().map(|v| v.to_string()).collect::<Vec<_>>().join(",")
    }

    /// The metadata form back; `None` unless every value is a finite number (at most 64 of them).
    pub fn parse(s: &str) -> Option<Signature> {
        let values = s.split(',').take(65).map(|v| v.trim().parse::<f32>().ok().filter(|v| v.is_finite())).collect::<Option<Vec<f32>>>()?;
        (values.len() <= 64).then_some(Signature(values))
    }
}
