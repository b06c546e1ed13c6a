//! A trained head as a `head.safetensors` (the format itself: `models::bert::head_file`).

use burn::tensor::Tensor;
// StdRng (ChaCha12) rather than SmallRng: SmallRng is a different generator on 32-bit targets, and the
// browser (wasm32) must train the same head as the CLI for the same seed.

use crate::base::backend::read_f32;
use crate::nn::linear::NamedParam;
use crate::base::options::PooledHead;
use crate::base::error::Result;
use crate::io::safetensors::{OutDtype, Stored};
use crate::tasks::heads::tensor::Head;

/// The head in HF layout ([out, in] weights): `pre_classifier.*` (when there is a hidden layer) and
/// `classifier.*`, F32; plus any fine-tuned encoder layers under their HF names, in `dtype` (they
/// replace the base encoder's tensors when packed).
pub async fn head_safetensors(head: &Head, layers: &[NamedParam], dtype: OutDtype, spec: &PooledHead, labels: &[String], encoder: &str) -> Result<Vec<u8>> {
    let names: &[&str] = if head.has_hidden() { &["pre_classifier.weight", "pre_classifier.bias", "classifier.weight", "classifier.bias"] } else { &["classifier.weight", "classifier.bias"] };
    // HF layout: linear weights [out, in]; biases and norm parameters flat.
    async fn hf(name: &str, p: &Tensor<2>, transposed: bool, dtype: OutDtype) -> Result<Stored> {
        let [i, o] = p.dims();
        let (value, shape) = if transposed { (p.clone().transpose(), vec![o, i]) } else { (p.clone(), vec![i * o]) };
        Ok(Stored::floats(name, shape, &read_f32(value).await?, dtype))
    }
    let mut tensors = Vec::new();
    for (name, p) in names.iter().zip(&head.params()) {
        tensors.push(hf(name, p, name.ends_with(".weight"), OutDtype::F32).await?);
    }
    for p in layers {
        tensors.push(hf(&p.name, &p.value, p.transposed, dtype).await?);
    }
    crate::models::bert::head_file::write(&tensors, spec, labels, encoder)
}
