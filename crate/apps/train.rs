//! `veer train`: a classifier head from labelled JSONL examples, on the host trainer the browser uses.

use std::path::Path;

use burn::tensor::Device;
use serde_json::json;

use crate::base::backend::block_on;
use crate::base::error::{Error, Result};
use crate::base::options::{EncoderOptions, HeadOptions};
use crate::io::files::ModelFiles;
use crate::tasks::encode::Encoder;
use crate::tasks::heads::trainer::HeadTraining;

/// JSONL `{"text": …, "label": …}` lines.
fn examples(path: &Path) -> Result<Vec<(String, String)>> {
    Ok(crate::io::files::read_jsonl::<crate::io::files::Labelled>(path)?.into_iter().map(|e| (e.text, e.label)).collect())
}

/// `veer train`: a head on `encoder_dir` from JSONL examples, written to `out`; with `test`, its accuracy
/// there. The same `HeadTraining` as the browser's `trainClassifier`, so the same head for the same data.
pub fn train_head(encoder_dir: &Path, data: &Path, out: &Path, test: Option<&Path>, opts: &HeadOptions, mut labels: Vec<String>, device: &Device) -> Result<serde_json::Value> {
    let train = examples(data)?;
    for (_, l) in &train {
        if !labels.contains(l) {
            labels.push(l.clone());
        }
    }
    let ids: Vec<usize> = train.iter().map(|(_, l)| labels.iter().position(|x| x == l).unwrap_or(labels.len())).collect();
    let enc = Encoder::load(&ModelFiles::from_dir(encoder_dir)?, &EncoderOptions::default(), device)?;
    let spec = opts.spec(enc.max_len());
    let t0 = std::time::Instant::now();
    let features = block_on(enc.features(&train.iter().map(|(t, _)| t).collect::<Vec<_>>(), &spec))?;
    let embed_s = t0.elapsed().as_secs_f64();
    let t0 = std::time::Instant::now();
    let mut training = block_on(HeadTraining::new(features, &ids, labels.clone(), spec, opts, device))?;
    let progress = loop {
        let p = block_on(training.epochs(10))?;
        if p.done {
            break p;
        }
    };
    let name = encoder_dir.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
    let bytes = block_on(training.head_file(&name))?;
    let train_s = t0.elapsed().as_secs_f64();
    std::fs::write(out, &bytes).map_err(|e| Error::file(out.display().to_string(), e))?;
    let (n_train, held_out) = training.sizes();
    let mut report = json!({"out": out, "labels": labels, "train": n_train, "held_out": held_out, "progress": progress, "seconds": {"embed": embed_s, "train": train_s}});
    if let Some(test) = test {
        let mut files = ModelFiles::from_dir(encoder_dir)?;
        files.head = Some(crate::io::files::File { name: out.display().to_string(), bytes });
        let enc = Encoder::load(&files, &EncoderOptions::default(), device)?;
        let test = examples(test)?;
        let results = block_on(enc.classify(&test.iter().map(|(t, _)| t).collect::<Vec<_>>()))?;
        let correct = results.iter().zip(&test).filter(|(r, (_, l))| r.label == *l).count();
        report["test"] = json!({"n": test.len(), "accuracy": correct as f64 / test.len().max(1) as f64, "scores": results.iter().map(|r| r.scores.iter().map(|s| s.1).collect::<Vec<f32>>()).collect::<Vec<_>>()});
    }
    Ok(report)
}
