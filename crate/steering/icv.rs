//! Computing in-context vectors from demonstration pairs (x → y), as Liu et al.: the last-token
//! residual stream after the embeddings and after every block, for x and y separately; the rank-1 PCA
//! of the flattened differences (centred, sign fixed), plus their mean; the embedding row dropped.

use crate::base::backend::read_f32;
use crate::base::limits::MAX_PAIRS;
use crate::base::error::{Error, Result};
use crate::models::llama::Llama;
use crate::models::llama::cache::Cache;
use crate::models::llama::hook::Plain;
use crate::steering::vector::Vector;
use crate::base::options::Injection;

/// One demonstration: the text as it is (`from`) and as it should be (`to`). JSONL lines on the CLI,
/// `[{from, to}]` in JS.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Pair {
    pub from: String,
    pub to: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Method {
    /// First principal component of the differences + their mean (the paper).
    Pca,
    /// Mean difference per layer.
    Mean,
}

impl std::str::FromStr for Method {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        crate::base::error::parse_name(s, "vector method")
    }
}

/// Last-token residual streams of `ids`: [(layers + 1) * hidden], embeddings first.
async fn residuals(model: &Llama, ids: &[u32]) -> Result<Vec<f32>> {
    let out = model.forward(ids, &mut Cache::default(), &Plain, true)?;
    let r = out.residuals.ok_or_else(|| Error::Invalid("forward did not capture residuals".into()))?;
    read_f32(r).await
}

/// `pairs`: token ids of (x, y). `model_name` is recorded in the vector's metadata.
pub async fn compute(model: &Llama, pairs: &[(Vec<u32>, Vec<u32>)], method: Method, model_name: &str) -> Result<Vector> {
    let (layers, hidden) = (model.config.num_hidden_layers, model.config.hidden_size);
    if pairs.is_empty() {
        return Err(Error::Invalid("no demonstration pairs".into()));
    }
    if pairs.len() > MAX_PAIRS {
        return Err(Error::Invalid(format!("{} demonstration pairs: at most {MAX_PAIRS} (the paper uses tens)", pairs.len())));
    }
    if method == Method::Pca && pairs.len() < 2 {
        return Err(Error::Invalid("PCA needs at least 2 pairs (use method `mean` for one)".into()));
    }
    let width = (layers + 1) * hidden;
    let mut diffs: Vec<Vec<f64>> = Vec::with_capacity(pairs.len());
    for (i, (x, y)) in pairs.iter().enumerate() {
        if x.is_empty() || y.is_empty() {
            return Err(Error::Invalid(format!("pair {i}: an empty text has no last token")));
        }
        let (hx, hy) = (residuals(model, x).await?, residuals(model, y).await?);
        diffs.push(hy.iter().zip(&hx).map(|(b, a)| *b as f64 - *a as f64).collect());
    }
    let n = diffs.len() as f64;
    // Every diff is (layers + 1) × hidden = width long: `forward(capture)` returns that many residuals.
    let mean: Vec<f64> = (0..width).map(|j| diffs.iter().map(|d| d[j]).sum::<f64>() / n).collect();
    let flat: Vec<f64> = match method {
        Method::Mean => mean,
        Method::Pca => {
            let centred: Vec<Vec<f64>> = diffs.iter().map(|d| d.iter().zip(&mean).map(|(x, m)| x - m).collect()).collect();
            let component = first_component(&centred)?;
            component.iter().zip(&mean).map(|(c, m)| c + m).collect()
        }
    };
    Ok(Vector {
        layers: flat.chunks_exact(hidden).skip(1).map(|row| row.iter().map(|&x| x as f32).collect()).collect(),
        model: model_name.to_string(),
        signature: model.signature.clone(),
        method: match method {
            Method::Pca => "icv-pca".into(),
            Method::Mean => "mean".into(),
        },
        injection: Injection::Icv,
        default_strength: 0.1,
        pairs: pairs.len(),
    })
}

/// First right singular vector of the centred rows (unit length), signed so that the largest-|u| entry
/// of the first left singular vector is positive (scikit-learn's svd_flip). Through the n×n Gram
/// matrix: n (pairs) is small, the width is (layers + 1) · hidden.
fn first_component(rows: &[Vec<f64>]) -> Result<Vec<f64>> {
    let n = rows.len();
    let dot = |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(x, y)| x * y).sum::<f64>();
    let gram: Vec<Vec<f64>> = (0..n).map(|i| (0..n).map(|j| dot(&rows[i], &rows[j])).collect()).collect();
    // Power iteration; the start vector is not orthogonal to any eigenvector in practice.
    let mut u: Vec<f64> = (0..n).map(|i| 1.0 + i as f64 / n as f64).collect();
    let mut eig = 0.0;
    for _ in 0..10_000 {
        let next: Vec<f64> = gram.iter().map(|row| dot(row, &u)).collect();
        let norm = dot(&next, &next).sqrt();
        if norm == 0.0 {
            return Err(Error::Invalid("all pair differences are identical: PCA has no direction (use method `mean`)".into()));
        }
        let next: Vec<f64> = next.iter().map(|x| x / norm).collect();
        let change = next.iter().zip(&u).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
        u = next;
        eig = norm;
        if change < 1e-14 {
            break;
        }
    }
    let sigma = eig.sqrt();
    let k = (0..n).fold(0, |b, i| if u[i].abs() > u[b].abs() { i } else { b });
    let sign = if u[k] < 0.0 { -1.0 } else { 1.0 };
    let width = rows[0].len();
    Ok((0..width).map(|j| sign * rows.iter().zip(&u).map(|(r, ui)| r[j] * ui).sum::<f64>() / sigma).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_component_of_a_known_matrix() {
        // Rows spread along (3, 4)/5 with small noise along (-4, 3)/5, already centred.
        let rows = vec![vec![3.0, 4.0], vec![-3.0, -4.0], vec![-0.4, 0.3], vec![0.4, -0.3]];
        let c = first_component(&rows).unwrap();
        assert!((c[0].abs() - 0.6).abs() < 1e-12 && (c[1].abs() - 0.8).abs() < 1e-12, "{c:?}");
        // u = rows·c / σ is largest in magnitude at row 0 or 1; svd_flip makes that entry positive.
        let u0 = rows[0][0] * c[0] + rows[0][1] * c[1];
        assert!(u0 > 0.0);
    }
}
