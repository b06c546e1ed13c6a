//! Labelled (or unlabelled) text from CSV files, label sets and seeded splits.

use std::collections::BTreeMap;
use std::path::Path;

use rand::rngs::SmallRng;
use rand::seq::SliceRandom;
use rand::SeedableRng;

use crate::base::error::{Error, Result};

/// Texts with optional gold labels (ids into `labels`).
#[derive(Debug, Clone, Default)]
pub struct Dataset {
    pub texts: Vec<String>,
    pub gold: Vec<Option<usize>>,
    pub labels: Vec<String>,
}

/// Which columns to read and how to rename label values (`great` → `positive`).
#[derive(Debug, Clone)]
pub struct Columns<'a> {
    pub text: &'a str,
    pub label: Option<&'a str>,
    pub rename: &'a BTreeMap<String, String>,
}

/// Rows of one CSV file: (text, label as written after renaming). Empty labels read as unlabelled.
pub fn read_csv(path: &Path, cols: &Columns) -> Result<Vec<(String, Option<String>)>> {
    let file = path.display().to_string();
    let mut reader = csv::Reader::from_path(path).map_err(|e| Error::file(&file, e))?;
    let headers = reader.headers().map_err(|e| Error::file(&file, e))?.clone();
    let find = |name: &str| {
        headers.iter().position(|h| h == name).ok_or_else(|| Error::file(&file, format!("no column `{name}` (columns: {})", headers.iter().collect::<Vec<_>>().join(", "))))
    };
    let text_at = find(cols.text)?;
    let label_at = cols.label.map(find).transpose()?;
    let mut rows = Vec::new();
    for (line, record) in reader.records().enumerate() {
        let record = record.map_err(|e| Error::file(&file, format!("row {}: {e}", line + 2)))?;
        let text = record.get(text_at).unwrap_or_default().to_string();
        let label = label_at.and_then(|i| record.get(i)).map(str::trim).filter(|l| !l.is_empty()).map(|l| cols.rename.get(l).cloned().unwrap_or_else(|| l.to_string()));
        rows.push((text, label));
    }
    if rows.is_empty() {
        return Err(Error::file(&file, "has no rows"));
    }
    Ok(rows)
}

impl Dataset {
    /// Index labels against `labels` (given, or the sorted distinct gold labels of all `parts`).
    pub fn from_rows(parts: &[&[(String, Option<String>)]], labels: Option<Vec<String>>) -> Result<Vec<Dataset>> {
        let labels = match labels {
            Some(l) => l,
            None => {
                let mut l: Vec<String> = parts.iter().flat_map(|p| p.iter().filter_map(|(_, l)| l.clone())).collect();
                l.sort();
                l.dedup();
                l
            }
        };
        if labels.len() < 2 {
            return Err(Error::Invalid(format!("need at least 2 labels, found {labels:?}: pass --labels or a --label-col with gold labels")));
        }
        parts
            .iter()
            .map(|rows| {
                let gold = rows
                    .iter()
                    .map(|(_, l)| match l {
                        None => Ok(None),
                        Some(l) => labels.iter().position(|x| x == l).map(Some).ok_or_else(|| Error::Invalid(format!("label `{l}` is not one of {labels:?} (rename it with --rename {l}=NAME)"))),
                    })
                    .collect::<Result<Vec<_>>>()?;
                Ok(Dataset { texts: rows.iter().map(|(t, _)| t.clone()).collect(), gold, labels: labels.clone() })
            })
            .collect()
    }

    pub fn len(&self) -> usize {
        self.texts.len()
    }

    pub fn is_empty(&self) -> bool {
        self.texts.is_empty()
    }

    pub fn subset(&self, idx: &[usize]) -> Dataset {
        Dataset { texts: idx.iter().map(|&i| self.texts[i].clone()).collect(), gold: idx.iter().map(|&i| self.gold[i]).collect(), labels: self.labels.clone() }
    }

    /// Gold label ids, or an error naming the first unlabelled row.
    pub fn gold_ids(&self, what: &str) -> Result<Vec<usize>> {
        self.gold.iter().enumerate().map(|(i, g)| g.ok_or_else(|| Error::Invalid(format!("{what}: row {i} has no gold label")))).collect()
    }
}

/// A seeded permutation of 0..n.
pub fn shuffled(n: usize, seed: u64) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..n).collect();
    idx.shuffle(&mut SmallRng::seed_from_u64(seed));
    idx
}

/// Split a seeded permutation into parts of the given fractions; the last part takes the rest.
pub fn split(n: usize, fractions: &[f64], seed: u64) -> Vec<Vec<usize>> {
    let idx = shuffled(n, seed);
    let mut parts = Vec::new();
    let mut start = 0;
    for f in fractions {
        let end = (start + (f * n as f64).round() as usize).min(n);
        parts.push(idx[start..end].to_vec());
        start = end;
    }
    parts.push(idx[start..].to_vec());
    parts
}
