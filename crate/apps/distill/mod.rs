//! `veer distill`: make a small classifier from labelled or unlabelled text.
//!
//! Labels come from gold data, a teacher classifier, or the decoder LM zero-shot (TnT-LLM: an LLM
//! labels, a light supervised model serves). Samples are selected LLKD-style (or `all`/`random`), a head
//! is trained on frozen sentence embeddings by the host trainer the browser uses (`tasks::heads`;
//! optionally the encoder's top layers fine-tuned with it, with burn autodiff: `finetune`), and the
//! result is exported as an HF folder the browser loads. Slow steps (embeddings, LM labels) are cached and resumable.

pub mod cache;
pub mod data;
pub mod export;
pub mod features;
pub mod finetune;
pub mod metrics;
pub mod prompt;
pub mod select;
pub mod server;
pub mod teacher;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Instant;

use serde::Serialize;
use serde_json::json;

use burn::tensor::Device;

use crate::base::backend::block_on;
use crate::base::options::{PooledHead, Pooling};
use crate::tasks::encode::Encoder;
use crate::io::files::ModelFiles;
use crate::base::options::EncoderOptions;
use crate::io::safetensors::OutDtype;
use crate::base::error::{Error, Result};
use cache::Hash;
use data::{Columns, Dataset};
use crate::base::math::argmax;
use metrics::Scores;
use select::Method;
use teacher::{Labels, Teacher};
use finetune::FineTuneOptions;
use crate::nn::linear::NamedParam;
use crate::tasks::heads::tensor::Head;
use crate::base::options::TrainOptions;
use crate::tasks::heads::trainer::{Split, Trainer};

pub struct Options {
    pub data: PathBuf,
    /// A separate test file; otherwise `test_fraction` of `data` is held out.
    pub test: Option<PathBuf>,
    pub text_col: String,
    pub label_col: Option<String>,
    pub rename: BTreeMap<String, String>,
    pub labels: Option<Vec<String>>,
    pub teacher: Teacher,
    pub select: Method,
    pub budget: f64,
    /// LLKD selection rounds.
    pub rounds: usize,
    pub encoder: PathBuf,
    pub max_len: usize,
    /// Encoder states the head reads (see `PooledHead::layers`); empty: the last.
    pub layers: Vec<usize>,
    pub out: PathBuf,
    pub cache: PathBuf,
    pub dtype: OutDtype,
    pub train: TrainOptions,
    pub seed: u64,
    pub test_fraction: f64,
    pub val_fraction: f64,
    /// Cap on the training pool / test split (after shuffling): bounds the LM teacher's cost.
    pub limit: Option<usize>,
    pub test_limit: Option<usize>,
    /// Budgets for the comparison grid in report.json (empty: only the exported run).
    pub compare: Vec<f64>,
    /// Seeds per randomised grid cell (random and LLKD selection).
    pub seeds: u64,
    /// Also fine-tune the encoder's top layers (student size b), starting from the trained head.
    pub finetune: Option<finetune::FineTuneOptions>,
    /// Where everything runs: the CPU by default, a wgpu device when asked for and available.
    pub device: Device,
}

#[derive(Debug, Clone, Serialize)]
pub struct Run {
    pub name: String,
    pub labels_from: String,
    pub select: Option<Method>,
    pub budget: Option<f64>,
    pub samples: usize,
    pub test: Scores,
    /// Over `seeds` runs for randomised selections.
    pub accuracy_std: Option<f64>,
    pub seconds: f64,
}

/// Features and teacher targets of one split.
impl Part {
    fn split(&self) -> Split<'_> {
        Split { x: &self.x, y: &self.y }
    }
}

struct Part {
    data: Dataset,
    x: Vec<f32>,
    y: Vec<Vec<f32>>,
}

/// Train, export and report: the student on the teacher's labels (`o.out`: the HF folder, head.safetensors,
/// report.json), with the comparison grid when `o.compare` asks for one.
pub fn run(o: &Options) -> Result<serde_json::Value> {
    let clock = Instant::now();
    let (pool, val, test) = splits(o)?;
    let labels = pool.labels.clone();
    let classes = labels.len();
    eprintln!("distill: {} labels {:?}; pool {}, val {}, test {}", classes, labels, pool.len(), val.len(), test.len());
    let t0 = Instant::now();
    let mut f = Features::embed(o, &pool, &val, &test)?;
    let embed_seconds = t0.elapsed().as_secs_f64();

    // Teacher labels (the test split's only for the report: the student never sees them).
    let t0 = Instant::now();
    let has_test_gold = test.gold.iter().all(Option::is_some) && !test.is_empty();
    let label_test = has_test_gold && !matches!(o.teacher, Teacher::Gold);
    let mut sets = vec![&pool, &val];
    if label_test {
        sets.push(&test);
    }
    let mut teacher_labels = o.teacher.label(&sets, &o.cache, &o.device)?.into_iter();
    let mut next = || teacher_labels.next().ok_or_else(|| Error::Invalid("the teacher labelled fewer sets than it was given".into()));
    let (pool_t, val_t) = (next()?, next()?);
    let test_t = if label_test { Some(next()?) } else { None };
    let teacher_seconds = t0.elapsed().as_secs_f64();
    // The head's features move into the splits that train and score on them (no copy).
    let pool = Part { data: pool, x: std::mem::take(&mut f.pool_x), y: pool_t.probs };
    let val = Part { data: val, x: std::mem::take(&mut f.val_x), y: val_t.probs };
    let scoring = if has_test_gold { Some(Scoring { gold: test.gold_ids("test")?, x: std::mem::take(&mut f.test_x), classes }) } else { None };
    let eval = |t: &Trainer| scoring.as_ref().map(|s| s.of(t)).transpose();

    // The exported student.
    let t0 = Instant::now();
    let students = Students { dim: f.dim, classes, rounds: o.rounds, opts: &o.train, device: &o.device };
    let (student, chosen) = students.train(o.select, o.budget, o.seed, &pool.split(), &val.split())?;
    let train_seconds = t0.elapsed().as_secs_f64();
    let frozen_test = eval(&student)?;
    if let Some(s) = &frozen_test {
        eprintln!("distill: student ({:?}, budget {}) test accuracy {:.4}, macro-F1 {:.4}", o.select, o.budget, s.accuracy, s.macro_f1);
    }
    let (head, tuned_layers, student_test, tuned_report) = match &o.finetune {
        Some(ft) => finetuned(ft, &f, &student, &chosen, &pool, &val, &test, scoring.as_ref(), frozen_test)?,
        None => (student.head.clone(), Vec::new(), frozen_test, serde_json::Value::Null),
    };
    let encoder_name = o.encoder.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
    std::fs::create_dir_all(&o.out).map_err(|e| Error::file(o.out.display().to_string(), e))?;
    let head_bytes = block_on(crate::tasks::heads::file::head_safetensors(&head, &tuned_layers, o.dtype, &f.spec, &labels, &encoder_name))?;
    let head_file = o.out.join("head.safetensors");
    std::fs::write(&head_file, &head_bytes).map_err(|e| Error::file(head_file.display().to_string(), e))?;
    let packed = export::pack(&o.encoder, Some(&head_file), &o.out, o.dtype)?;

    let runs = match (&scoring, o.compare.is_empty()) {
        (Some(scoring), false) => comparison(o, &students, scoring, &pool, &val, test_t.as_ref(), teacher_seconds)?,
        _ => Vec::new(),
    };
    let report = json!({
        "data": {"train": o.data, "test": o.test, "labels": labels, "pool": pool.data.len(), "val": val.data.len(), "test_size": test.len()},
        "teacher": o.teacher.name(),
        "student": {
            "encoder": encoder_name,
            "head": {"hidden": o.train.hidden, "activation": f.spec.activation, "params": head.num_params(), "bytes": head_bytes.len()},
            "finetune": tuned_report,
            "encoder_params": encoder_params(&f.files.weights.bytes),
            "model_bytes": packed.model_bytes,
            "dtype": o.dtype.name(),
            "select": o.select, "budget": o.budget, "samples": chosen.len(),
            "test": student_test,
        },
        "seconds": {"embed": embed_seconds, "teacher": teacher_seconds, "train": train_seconds, "total": clock.elapsed().as_secs_f64()},
        "train_options": {"lr": o.train.lr, "weight_decay": o.train.weight_decay, "batch": o.train.batch, "epochs": o.train.epochs, "patience": o.train.patience, "rounds": o.rounds, "seed": o.seed, "max_len": o.max_len, "layers": o.layers},
        "comparison": runs,
    });
    let path = o.out.join("report.json");
    let text = serde_json::to_string_pretty(&report).map_err(|e| Error::file("report.json", e))?;
    std::fs::write(&path, text).map_err(|e| Error::file(path.display().to_string(), e))?;
    Ok(report)
}

/// The labelled pool (after `limit`), the validation split and the test split (a separate file, or
/// `test_fraction` held out; after `test_limit`).
fn splits(o: &Options) -> Result<(Dataset, Dataset, Dataset)> {
    let cols = Columns { text: &o.text_col, label: o.label_col.as_deref(), rename: &o.rename };
    let train_rows = data::read_csv(&o.data, &cols)?;
    let (all_train, mut test) = match &o.test {
        Some(t) => {
            let test_rows = data::read_csv(t, &cols)?;
            let mut sets = Dataset::from_rows(&[&train_rows, &test_rows], o.labels.clone())?.into_iter();
            (sets.next().unwrap_or_default(), sets.next().unwrap_or_default())
        }
        None => {
            let all = Dataset::from_rows(&[&train_rows], o.labels.clone())?.remove(0);
            let parts = data::split(all.len(), &[o.test_fraction], o.seed ^ 0x7e57);
            (all.subset(&parts[1]), all.subset(&parts[0]))
        }
    };
    if let Some(n) = o.test_limit {
        let idx = data::shuffled(test.len(), o.seed ^ 0x7e57);
        test = test.subset(&idx[..n.min(idx.len())]);
    }
    let parts = data::split(all_train.len(), &[o.val_fraction], o.seed);
    let val = all_train.subset(&parts[0]);
    let mut pool_idx = parts[1].clone();
    if let Some(n) = o.limit {
        pool_idx.truncate(n);
    }
    Ok((all_train.subset(&pool_idx), val, test))
}

/// The student encoder and what it reads of each split: every hidden state (`*_all`, [n, states ×
/// hidden], for fine-tuning) and the head's features (`*_x`, [n, dim]).
struct Features {
    files: ModelFiles,
    spec: PooledHead,
    enc: Encoder,
    hidden: usize,
    states: usize,
    dim: usize,
    pool_all: Vec<f32>,
    val_all: Vec<f32>,
    test_all: Vec<f32>,
    pool_x: Vec<f32>,
    val_x: Vec<f32>,
    test_x: Vec<f32>,
}

impl Features {
    fn embed(o: &Options, pool: &Dataset, val: &Dataset, test: &Dataset) -> Result<Features> {
        let files = ModelFiles::from_dir(&o.encoder)?;
        let spec = PooledHead { pooling: Pooling::Mean, normalize: true, activation: (o.train.hidden > 0).then_some(o.train.activation), layers: o.layers.clone(), max_length: Some(o.max_len) };
        let enc_options = EncoderOptions { max_length: Some(o.max_len), pooling: Some(spec.pooling), normalize: spec.normalize, ..Default::default() };
        let enc = Encoder::load(&files, &enc_options, &o.device)?;
        let enc_id = Hash::default().bytes(&files.config.bytes).bytes(&files.weights.bytes).bytes(&files.tokenizer.bytes);
        let (hidden, states) = (enc.config().hidden_size, enc.config().num_hidden_layers + 1);
        if let Some(&l) = o.layers.iter().find(|&&l| l >= states) {
            return Err(Error::Invalid(format!("--layers {l}: the encoder has states 0..={}", states - 1)));
        }
        let feats = |d: &Dataset, what: &str| features::embed_all(&enc, enc_id, &d.texts, &o.cache, what);
        let (pool_all, val_all, test_all) = (feats(pool, "embed pool")?, feats(val, "embed val")?, feats(test, "embed test")?);
        let pick = |all: &[f32]| features::select(all, hidden, states, &o.layers);
        let (pool_x, val_x, test_x) = (pick(&pool_all), pick(&val_all), pick(&test_all));
        let dim = hidden * o.layers.len().max(1);
        Ok(Features { files, spec, enc, hidden, states, dim, pool_all, val_all, test_all, pool_x, val_x, test_x })
    }
}

/// The test split's gold labels and features: what every student is scored on.
struct Scoring {
    gold: Vec<usize>,
    x: Vec<f32>,
    classes: usize,
}

impl Scoring {
    fn of(&self, t: &Trainer) -> Result<Scores> {
        let pred: Vec<usize> = block_on(t.predict(&self.x))?.iter().map(|p| argmax(p)).collect();
        Ok(metrics::score(&pred, &self.gold, self.classes))
    }
}

/// Student size (b): the top layers fine-tuned with the head, on the samples the student saw. The head,
/// the layers to store, its test scores and the report's `finetune` entry.
#[allow(clippy::too_many_arguments)]
fn finetuned(ft: &FineTuneOptions, f: &Features, student: &Trainer, chosen: &[usize], pool: &Part, val: &Part, test: &Dataset, scoring: Option<&Scoring>, frozen_test: Option<Scores>) -> Result<(Head, Vec<NamedParam>, Option<Scores>, serde_json::Value)> {
    let width = f.hidden * f.states;
    let rows = |all: &[f32], idx: &[usize]| idx.iter().flat_map(|&i| all[i * width..(i + 1) * width].iter().copied()).collect::<Vec<f32>>();
    let texts: Vec<String> = chosen.iter().map(|&i| pool.data.texts[i].clone()).collect();
    let ys: Vec<Vec<f32>> = chosen.iter().map(|&i| pool.y[i].clone()).collect();
    let (tuned, stats) = finetune::finetune(&f.enc, &f.spec, &student.head, (&texts, &rows(&f.pool_all, chosen), &ys), (&val.data.texts, &f.val_all, &val.y), ft)?;
    let scores = match scoring {
        Some(sc) => {
            let pred: Vec<usize> = finetune::predict(&f.enc, &f.spec, &tuned, &test.texts, &f.test_all)?.iter().map(|p| argmax(p)).collect();
            let s = metrics::score(&pred, &sc.gold, sc.classes);
            eprintln!("distill: fine-tuned top {} layers: test accuracy {:.4}, macro-F1 {:.4}", ft.layers, s.accuracy, s.macro_f1);
            Some(s)
        }
        None => None,
    };
    let report = json!({"layers": ft.layers, "rank": ft.rank, "lr": ft.lr, "head_lr": ft.head_lr, "epochs": ft.epochs, "batch": ft.batch, "stats": stats, "frozen_test": frozen_test});
    Ok((tuned.head, tuned.stored, scores, report))
}

/// The comparison grid of report.json: the majority class, the teacher itself, and students on gold
/// and on teacher labels at each budget of `o.compare`.
fn comparison(o: &Options, students: &Students, scoring: &Scoring, pool: &Part, val: &Part, test_t: Option<&Labels>, teacher_seconds: f64) -> Result<Vec<Run>> {
    let (gold, classes) = (&scoring.gold, scoring.classes);
    let mut runs = Vec::new();
    let baseline = |name: &str, from: String, samples: usize, pred: &[usize], seconds: f64| Run { name: name.into(), labels_from: from, select: None, budget: None, samples, test: metrics::score(pred, gold, classes), accuracy_std: None, seconds };
    let pool_gold = pool.data.gold_ids("pool").ok();
    if let Some(g) = &pool_gold {
        runs.push(baseline("majority class", "gold".into(), g.len(), &vec![metrics::majority(g, classes); gold.len()], 0.0));
    }
    if let Some(t) = test_t {
        let pred: Vec<usize> = t.probs.iter().map(|p| argmax(p)).collect();
        let name = if t.raw.is_some() { "teacher zero-shot (calibrated)" } else { "teacher" };
        runs.push(baseline(name, o.teacher.name(), 0, &pred, teacher_seconds));
        if let Some(raw) = &t.raw {
            let pred: Vec<usize> = raw.iter().map(|p| argmax(p)).collect();
            runs.push(baseline("teacher zero-shot (raw)", o.teacher.name(), 0, &pred, teacher_seconds));
        }
    }
    let cell = |name: &str, from: &str, part: &Split, valp: &Split, method: Method, budget: f64| grid_cell(o, students, scoring, (name, from), (part, valp), method, budget);
    if let Some(g) = &pool_gold {
        let hot = |ids: Vec<usize>| -> Vec<Vec<f32>> { ids.iter().map(|&c| crate::base::math::one_hot(c, classes)).collect() };
        let gold_y = hot(g.clone());
        let gold_val_y = val.data.gold_ids("val").map(hot).unwrap_or_else(|_| val.y.clone());
        let (gold_part, gold_val) = (Split { x: &pool.x, y: &gold_y }, Split { x: &val.x, y: &gold_val_y });
        runs.push(cell("student, gold labels", "gold", &gold_part, &gold_val, Method::All, 1.0)?);
    }
    let from = o.teacher.name();
    for &b in &o.compare {
        if b >= 1.0 {
            runs.push(cell("student, teacher labels", &from, &pool.split(), &val.split(), Method::All, 1.0)?);
        }
        for method in [Method::Random, Method::Llkd] {
            runs.push(cell("student, teacher labels", &from, &pool.split(), &val.split(), method, b)?);
        }
    }
    Ok(runs)
}

/// One cell of the grid: students by `method` at `budget`, over `o.seeds` seeds for the randomised
/// methods; mean test scores and the accuracy's spread.
fn grid_cell(o: &Options, students: &Students, scoring: &Scoring, (name, from): (&str, &str), (part, valp): (&Split, &Split), method: Method, budget: f64) -> Result<Run> {
    let seeds = if method == Method::All { 1 } else { o.seeds.max(1) };
    let t0 = Instant::now();
    let mut accs = Vec::new();
    let mut last = None;
    for s in 0..seeds {
        let (t, chosen) = students.train(method, budget, o.seed + s, part, valp)?;
        accs.push(scoring.of(&t)?);
        last = Some(chosen.len());
    }
    let n = accs.len().max(1) as f64;
    let mean_acc = accs.iter().map(|s| s.accuracy).sum::<f64>() / n;
    let mean_f1 = accs.iter().map(|s| s.macro_f1).sum::<f64>() / n;
    let std = (accs.iter().map(|s| (s.accuracy - mean_acc).powi(2)).sum::<f64>() / n).sqrt();
    eprintln!("distill: {name:<28} {method:?} budget {budget:<5} accuracy {mean_acc:.4} ± {std:.4}  macro-F1 {mean_f1:.4}");
    Ok(Run {
        name: name.into(),
        labels_from: from.into(),
        select: Some(method),
        budget: Some(budget),
        samples: last.unwrap_or(0),
        test: Scores { accuracy: mean_acc, macro_f1: mean_f1, n: scoring.gold.len() },
        accuracy_std: (seeds > 1).then_some(std),
        seconds: t0.elapsed().as_secs_f64() / seeds as f64,
    })
}

fn encoder_params(weights: &[u8]) -> usize {
    safetensors::SafeTensors::deserialize(weights).map(|st| st.tensors().iter().map(|(_, t)| t.shape().iter().product::<usize>()).sum()).unwrap_or(0)
}

/// What every student of one run shares: feature width, classes, LLKD rounds, training options, device.
struct Students<'a> {
    dim: usize,
    classes: usize,
    rounds: usize,
    opts: &'a TrainOptions,
    device: &'a Device,
}

impl Students<'_> {
    /// Train a student with one selection method at one budget; returns it and the samples it saw.
    fn train(&self, method: Method, budget: f64, seed: u64, train: &Split, valid: &Split) -> Result<(Trainer, Vec<usize>)> {
        let (dim, classes, rounds, device) = (self.dim, self.classes, self.rounds, self.device);
        let opts = TrainOptions { seed, ..self.opts.clone() };
        let mut trainer = Trainer::new(dim, classes, opts, device);
        let n = train.y.len();
        let k = select::budget_count(n, budget);
        match method {
            Method::All => {
                let idx: Vec<usize> = (0..n).collect();
                block_on(trainer.fit(train, &idx, valid))?;
                Ok((trainer, idx))
            }
            Method::Random => {
                let idx = select::random(n, k, seed);
                block_on(trainer.fit(train, &idx, valid))?;
                Ok((trainer, idx))
            }
            Method::Llkd => {
                let rounds = rounds.max(1);
                let mut taken = vec![false; n];
                let mut chosen = Vec::with_capacity(k);
                for r in 0..rounds {
                    let quota = k * (r + 1) / rounds - chosen.len();
                    let student = block_on(trainer.predict(train.x))?;
                    for i in select::llkd_round(train.y, &student, &taken, quota) {
                        taken[i] = true;
                        chosen.push(i);
                    }
                    block_on(trainer.fit(train, &chosen, valid))?;
                }
                Ok((trainer, chosen))
            }
        }
    }
}
