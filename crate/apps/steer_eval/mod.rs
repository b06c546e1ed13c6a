//! `veer steer-eval`: does steering do what a user wants, at what cost? The In-context Vectors paper's
//! evaluation (Liu et al.: style-transfer success, fluency, similarity against prompting and in-context
//! learning) for veer's vectors on a committed prompt set.
//!
//! For each attribute (a vector's demonstration pairs plus a judge classifier) and each method — no
//! steering; an instruction in the prompt; the pairs shown as demonstrations (the paper's ICL
//! baseline); ICV from PCA and from the mean at several strengths; the mean vector added to the
//! residual stream (a control vector) — every prompt is answered under every decoding (greedy, and
//! sampled with fixed seeds). Each answer is scored by:
//! - the judge: the probability of the target label (a MiniLM head trained on labelled data that has
//!   nothing to do with the vector's pairs; its accuracy on held-out sets is reported beside it);
//! - fluency: its perplexity under the unsteered model, given the plain prompt, and whether it is
//!   degenerate (empty, or looping);
//! - content: MiniLM cosine similarity to the prompt (or, for rewrites, to the source sentence) and
//!   to the unsteered answer of the same prompt and decoding: the drift a vector causes.
//!
//! A negative strength means the opposite direction: the vector negated (−v) at that strength.
//! Rows of one cell are decoded together (`generate::generate_rows`).

use std::path::{Path, PathBuf};
use std::time::Instant;

use burn::tensor::activation::log_softmax;
use burn::tensor::{Int, Tensor, TensorData};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::base::backend::{block_on, read_f32};
use crate::tasks::encode::Encoder;
use crate::base::error::{Error, Result};
use crate::io::files::{File, Labelled, ModelFiles, read_jsonl};
use crate::tasks::generate::{Generation, Message, Model, Prompt, generate_rows};
use crate::steering::icv::{self, Method, Pair};
use crate::models::llama::{Cache, Plain, Steer};
use crate::base::options::{EncoderOptions, GenerateOptions};
use crate::steering::vector::Vector;
use crate::steering::spec::SteeringSpec;
use crate::base::options::Injection;

/// One prompt of the set (JSONL): `kind` is question, describe, review or rewrite; a rewrite carries the
/// `source` sentence its text asks to rewrite.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct EvalPrompt {
    pub kind: String,
    pub text: String,
    #[serde(default)]
    pub source: Option<String>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Decoding {
    pub temperature: f32,
    pub seed: u64,
}

/// An attribute to steer towards, as the config file names it (paths relative to the config's folder).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AttributeSpec {
    pub name: String,
    /// The vector's demonstration pairs (JSONL `{from, to}`).
    pub pairs: String,
    /// The judge: a head.safetensors for the encoder, and the label that means "steered".
    pub judge: String,
    pub target: String,
    /// Labelled JSONL sets (`{text, label}`) the judge's accuracy is measured on; a missing file is
    /// reported as missing (the held-out split of the training data exists after `make steer-eval`).
    #[serde(default)]
    pub validation: Vec<String>,
    /// The prompting baseline's instruction, appended to the user's message.
    pub instruction: String,
    /// Strengths per vector method (`icv-pca`, `icv-mean`, `residual`); negative = −v.
    pub strengths: std::collections::BTreeMap<String, Vec<f32>>,
    /// `--quick`: the `icv-pca` strengths to run (none: the attribute is left out).
    pub quick: Vec<f32>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub model: String,
    pub encoder: String,
    pub prompts: String,
    pub max_tokens: usize,
    /// Rows decoded together.
    pub batch: usize,
    pub decodings: Vec<Decoding>,
    pub attributes: Vec<AttributeSpec>,
    /// Prompts timed one at a time per method for the latency table.
    pub latency_prompts: usize,
    /// `--quick`: prompts of each kind (every decoding).
    pub quick_per_kind: usize,
}

/// What one cell is: a method and, for vectors, a strength.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Cell {
    /// None for the unsteered cell, which every attribute's judge scores.
    pub attribute: Option<String>,
    pub method: String,
    pub strength: Option<f32>,
}

/// One answer and its scores.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Answer {
    pub prompt: usize,
    pub kind: String,
    pub decoding: usize,
    pub text: String,
    pub tokens: usize,
    /// Judge probability of each attribute's target label.
    pub judge: std::collections::BTreeMap<String, f32>,
    /// Perplexity under the unsteered model given the plain prompt (greedy answers only; None: a sampled
    /// answer, or no tokens but EOS).
    pub perplexity: Option<f64>,
    pub degenerate: bool,
    /// Cosine similarity to the prompt (open prompts) or the source sentence (rewrites).
    pub similarity_prompt: f32,
    /// Cosine similarity to the unsteered answer of the same prompt and decoding.
    pub similarity_unsteered: f32,
}

/// A cell's answers and how long they took.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CellResult {
    pub cell: Cell,
    pub seconds: f64,
    pub answers: Vec<Answer>,
}

/// Success counts with a 95 % Wilson interval.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Rate {
    pub k: usize,
    pub n: usize,
    pub rate: f64,
    pub low: f64,
    pub high: f64,
}

impl Rate {
    pub fn of(k: usize, n: usize) -> Rate {
        if n == 0 {
            return Rate { k, n, rate: 0.0, low: 0.0, high: 1.0 };
        }
        let (p, n_f, z) = (k as f64 / n as f64, n as f64, 1.959964);
        let centre = (p + z * z / (2.0 * n_f)) / (1.0 + z * z / n_f);
        let half = z / (1.0 + z * z / n_f) * (p * (1.0 - p) / n_f + z * z / (4.0 * n_f * n_f)).sqrt();
        Rate { k, n, rate: p, low: (centre - half).max(0.0), high: (centre + half).min(1.0) }
    }
}

/// Degenerate: nothing but punctuation, a word trigram said three times or more (the loops strong
/// vectors fall into: "A time is a physical state." ×3), or a long answer of few distinct words.
pub fn degenerate(text: &str) -> bool {
    // Words are runs of letters and digits: "lol,l,l,l" is four words, not one.
    let words: Vec<String> = text.split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty()).map(str::to_lowercase).collect();
    if words.is_empty() {
        return true;
    }
    let mut trigrams = std::collections::HashMap::new();
    for t in words.windows(3) {
        let n = trigrams.entry(t.to_vec()).or_insert(0usize);
        *n += 1;
        if *n >= 3 {
            return true;
        }
    }
    let distinct = words.iter().collect::<std::collections::HashSet<_>>().len();
    words.len() >= 8 && (distinct as f64) < 0.35 * words.len() as f64
}

fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let (na, nb) = (a.iter().map(|x| x * x).sum::<f32>().sqrt(), b.iter().map(|x| x * x).sum::<f32>().sqrt());
    if na == 0.0 || nb == 0.0 { 0.0 } else { dot / (na * nb) }
}

/// An attribute loaded: its pairs as token ids, its vectors, its judge.
struct Attribute {
    spec: AttributeSpec,
    pairs: Vec<Pair>,
    pca: Vector,
    mean: Vector,
    judge: Encoder,
}

/// Everything a run needs, loaded once.
pub struct Eval {
    config: Config,
    model: Model,
    encoder: Encoder,
    prompts: Vec<EvalPrompt>,
    attributes: Vec<Attribute>,
    quick: bool,
}

impl Eval {
    /// Load the config (paths relative to its folder), the models, the prompts; compute the vectors.
    pub fn load(config_path: &Path, quick: bool, device: &burn::tensor::Device) -> Result<Eval> {
        let name = config_path.display().to_string();
        let config: Config = serde_json::from_slice(&std::fs::read(config_path).map_err(|e| Error::file(&name, e))?).map_err(|e| Error::file(&name, e))?;
        let base = config_path.parent().unwrap_or(Path::new("."));
        let path = |p: &str| -> PathBuf { base.join(p) };
        let model_dir = path(&config.model);
        let model = Model::load(&ModelFiles::from_dir(&model_dir)?, &config.model, device)?;
        let encoder = Encoder::load(&ModelFiles::from_dir(&path(&config.encoder))?, &EncoderOptions::default(), device)?;
        let mut prompts: Vec<EvalPrompt> = read_jsonl(&path(&config.prompts))?;
        if quick {
            let mut seen = std::collections::HashMap::new();
            prompts.retain(|p| {
                let n = seen.entry(p.kind.clone()).or_insert(0usize);
                *n += 1;
                *n <= config.quick_per_kind
            });
        }
        let mut attributes = Vec::new();
        for spec in &config.attributes {
            let pairs: Vec<Pair> = read_jsonl(&path(&spec.pairs))?;
            let ids = pairs.iter().map(|p| Ok((model.encode(&p.from)?, model.encode(&p.to)?))).collect::<Result<Vec<_>>>()?;
            let pca = block_on(icv::compute(&model.llama, &ids, Method::Pca, &model.name))?;
            let mean = block_on(icv::compute(&model.llama, &ids, Method::Mean, &model.name))?;
            let mut files = ModelFiles::from_dir(&path(&config.encoder))?;
            let judge_path = path(&spec.judge);
            files.head = Some(File { name: judge_path.display().to_string(), bytes: std::fs::read(&judge_path).map_err(|e| Error::file(judge_path.display().to_string(), e))? });
            let judge = Encoder::load(&files, &EncoderOptions::default(), device)?;
            if !judge.labels().contains(&spec.target) {
                return Err(Error::file(judge_path.display().to_string(), format!("labels {:?} lack the target `{}`", judge.labels(), spec.target)));
            }
            attributes.push(Attribute { spec: spec.clone(), pairs, pca, mean, judge });
        }
        Ok(Eval { config, model, encoder, prompts, attributes, quick })
    }

    /// The cells to run: unsteered first, then per attribute prompting, ICL and each vector strength
    /// (`--quick`: unsteered and the `quick` ICV strengths).
    pub fn cells(&self) -> Vec<Cell> {
        let mut cells = vec![Cell { attribute: None, method: "unsteered".into(), strength: None }];
        for a in &self.attributes {
            let name = Some(a.spec.name.clone());
            if self.quick {
                // Only attributes with quick strengths; their other cells are left out.
                cells.extend(a.spec.quick.iter().map(|&s| Cell { attribute: name.clone(), method: "icv-pca".into(), strength: Some(s) }));
                continue;
            }
            for m in ["prompt", "icl"] {
                cells.push(Cell { attribute: name.clone(), method: m.into(), strength: None });
            }
            for (method, strengths) in &a.spec.strengths {
                cells.extend(strengths.iter().map(|&s| Cell { attribute: name.clone(), method: method.clone(), strength: Some(s) }));
            }
        }
        cells
    }

    fn decodings(&self) -> &[Decoding] {
        &self.config.decodings
    }

    fn attribute(&self, cell: &Cell) -> Option<&Attribute> {
        cell.attribute.as_ref().and_then(|n| self.attributes.iter().find(|a| &a.spec.name == n))
    }

    /// The conversation a method sends for one prompt.
    fn messages(&self, cell: &Cell, prompt: &EvalPrompt) -> Vec<Message> {
        let user = |content: String| vec![Message { role: "user".into(), content }];
        match (cell.method.as_str(), self.attribute(cell)) {
            ("prompt", Some(a)) => user(format!("{}\n\n{}", prompt.text, a.spec.instruction)),
            ("icl", Some(a)) => {
                let demos: Vec<String> = a.pairs.iter().map(|p| format!("Instead of: {}\nWrite: {}", p.from, p.to)).collect();
                user(format!("Examples of the style to write in:\n\n{}\n\n{}", demos.join("\n\n"), prompt.text))
            }
            _ => user(prompt.text.clone()),
        }
    }

    /// The steering a cell decodes under (None: unsteered, prompting, ICL).
    fn steering(&self, cell: &Cell) -> Result<Option<crate::steering::hook::Steering>> {
        let (Some(a), Some(strength)) = (self.attribute(cell), cell.strength) else { return Ok(None) };
        let (vector, mode) = match cell.method.as_str() {
            "icv-pca" => (&a.pca, Injection::Icv),
            "icv-mean" => (&a.mean, Injection::Icv),
            "residual" => (&a.mean, Injection::Residual),
            other => return Err(Error::Invalid(format!("method `{other}`: expected icv-pca, icv-mean or residual"))),
        };
        // −v at |strength| for a negative strength (for `residual` the same as a negative strength).
        let vector = if strength < 0.0 { vector.scale(-1.0)? } else { vector.clone() };
        let spec = SteeringSpec { vectors: vec![(format!("{} {}", a.spec.name, cell.method), vector, Some(strength.abs()))], mode: Some(mode), ..Default::default() };
        spec.build(&self.model.llama)
    }

    /// Decode every (prompt, decoding) of a cell, `batch` rows at a time, rows sorted by length so a
    /// batch pads little. Returns (prompt, decoding, ids) in prompt order.
    fn decode(&self, cell: &Cell) -> Result<Vec<(usize, usize, Vec<u32>)>> {
        let steering = self.steering(cell)?;
        let steer = crate::steering::hook::hook(steering.as_ref());
        let mut rows = Vec::new();
        for (i, p) in self.prompts.iter().enumerate() {
            let ids = self.model.prompt_ids(&Prompt::Messages(self.messages(cell, p)), false)?;
            for (d, dec) in self.decodings().iter().enumerate() {
                let options = GenerateOptions { max_tokens: self.config.max_tokens, temperature: dec.temperature, seed: dec.seed, ..Default::default() };
                rows.push((i, d, ids.clone(), options));
            }
        }
        rows.sort_by_key(|r| r.2.len());
        let mut out = Vec::with_capacity(rows.len());
        for chunk in rows.chunks(self.config.batch.max(1)) {
            let prompts: Vec<Vec<u32>> = chunk.iter().map(|r| r.2.clone()).collect();
            let options: Vec<GenerateOptions> = chunk.iter().map(|r| r.3.clone()).collect();
            let ids = block_on(generate_rows(&self.model, &prompts, &options, steer))?;
            out.extend(chunk.iter().zip(ids).map(|(r, ids)| (r.0, r.1, ids)));
        }
        out.sort_by_key(|r| (r.0, r.1));
        Ok(out)
    }

    /// Mean negative log-likelihood per answer token under the unsteered model, each answer after its
    /// plain prompt (the same context whatever the method). Rows in batches; logits [b, s, vocab].
    fn perplexities(&self, answers: &[(Vec<u32>, Vec<u32>)]) -> Result<Vec<Option<f64>>> {
        let mut out = vec![None; answers.len()];
        // An answer needs a token before it to be predicted from (chat-templated prompts always have some).
        let todo: Vec<usize> = (0..answers.len()).filter(|&i| !answers[i].0.is_empty() && !answers[i].1.is_empty()).collect();
        for chunk in todo.chunks(8) {
            let seqs: Vec<Vec<u32>> = chunk.iter().map(|&i| [answers[i].0.as_slice(), answers[i].1.as_slice()].concat()).collect();
            let s = seqs.iter().map(|q| q.len()).max().unwrap_or(0);
            let rows: Vec<&[u32]> = seqs.iter().map(|q| q.as_slice()).collect();
            let logits = self.model.llama.forward_rows(&rows, &mut Cache::default(), &Plain, true)?; // [b, s, vocab]
            // Row r (left padding p) holds its token j at position p + j; position t predicts t + 1.
            let targets: Vec<i32> = seqs.iter().flat_map(|q| (0..s).map(move |t| (t + 1 + q.len()).checked_sub(s).and_then(|j| q.get(j)).map_or(0, |&id| id as i32))).collect();
            let targets = Tensor::<3, Int>::from_data(TensorData::new(targets, [seqs.len(), s, 1]), self.model.llama.device());
            let picked = block_on(read_f32(log_softmax(logits, 2).gather(2, targets)))?; // [b, s]
            for (r, &i) in chunk.iter().enumerate() {
                let (plen, alen, pad) = (answers[i].0.len(), answers[i].1.len(), s - seqs[r].len());
                // Answer token k sits at pad + plen + k and is predicted at the position before it.
                let nll: f64 = (0..alen).map(|k| -(picked[r * s + pad + plen + k - 1] as f64)).sum();
                out[i] = Some((nll / alen as f64).exp());
            }
        }
        Ok(out)
    }

    /// Run every cell; `progress` hears each cell as it finishes.
    pub fn run(&self, mut progress: impl FnMut(&CellResult)) -> Result<Vec<CellResult>> {
        let plain_ids: Vec<Vec<u32>> = self.prompts.iter().map(|p| self.model.prompt_ids(&Prompt::Messages(vec![Message { role: "user".into(), content: p.text.clone() }]), false)).collect::<Result<_>>()?;
        let refs: Vec<String> = self.prompts.iter().map(|p| p.source.clone().unwrap_or_else(|| p.text.clone())).collect();
        let ref_embeddings = block_on(self.encoder.embed(&refs))?;
        let mut unsteered: Vec<Vec<f32>> = Vec::new();
        let mut results = Vec::new();
        for cell in self.cells() {
            let t0 = Instant::now();
            let decoded = self.decode(&cell)?;
            let seconds = t0.elapsed().as_secs_f64();
            let eos = self.model.eos_ids();
            let answer_ids: Vec<Vec<u32>> = decoded.iter().map(|(_, _, ids)| ids.iter().copied().filter(|i| !eos.contains(i)).collect()).collect();
            let texts: Vec<String> = answer_ids.iter().map(|ids| self.model.tokenizer.decode(ids, true).map(|t| t.trim().to_string()).map_err(|e| Error::Tokenizer(format!("decode: {e}")))).collect::<Result<_>>()?;
            // Perplexity of the greedy answers only: it costs a forward over prompt and answer, as
            // much again as decoding, and sampled answers are less likely by design.
            let greedy = |d: usize| self.decodings()[d].temperature == 0.0;
            let ppl = self.perplexities(&decoded.iter().zip(&answer_ids).map(|((p, d, _), a)| (plain_ids[*p].clone(), if greedy(*d) { a.clone() } else { Vec::new() })).collect::<Vec<_>>())?;
            let embeddings = block_on(self.encoder.embed(&texts))?;
            if unsteered.is_empty() {
                unsteered = embeddings.clone();
            }
            let mut judged = Vec::new();
            for a in &self.attributes {
                let scores = block_on(a.judge.classify(&texts))?;
                judged.push(scores.iter().map(|c| c.scores.iter().find(|(l, _)| *l == a.spec.target).map_or(0.0, |s| s.1)).collect::<Vec<f32>>());
            }
            let answers = decoded
                .iter()
                .enumerate()
                .map(|(j, (p, d, ids))| Answer {
                    prompt: *p,
                    kind: self.prompts[*p].kind.clone(),
                    decoding: *d,
                    text: texts[j].clone(),
                    tokens: ids.len(),
                    judge: self.attributes.iter().zip(&judged).map(|(a, s)| (a.spec.name.clone(), s[j])).collect(),
                    perplexity: ppl[j],
                    degenerate: degenerate(&texts[j]),
                    similarity_prompt: cosine(&embeddings[j], &ref_embeddings[*p]),
                    similarity_unsteered: cosine(&embeddings[j], &unsteered[j]),
                })
                .collect();
            let result = CellResult { cell, seconds, answers };
            progress(&result);
            results.push(result);
        }
        Ok(results)
    }

    /// The judges' accuracy on their validation sets: (attribute, file, n, accuracy); n = 0 when the
    /// file is absent.
    pub fn validate_judges(&self, base: &Path) -> Result<Vec<serde_json::Value>> {
        let mut out = Vec::new();
        for a in &self.attributes {
            for file in &a.spec.validation {
                let path = base.join(file);
                if !path.is_file() {
                    out.push(json!({"attribute": a.spec.name, "file": file, "n": 0, "accuracy": null}));
                    continue;
                }
                let set: Vec<Labelled> = read_jsonl(&path)?;
                let got = block_on(a.judge.classify(&set.iter().map(|l| &l.text).collect::<Vec<_>>()))?;
                let correct = got.iter().zip(&set).filter(|(g, l)| g.label == l.label).count();
                out.push(json!({"attribute": a.spec.name, "file": file, "n": set.len(), "accuracy": correct as f64 / set.len().max(1) as f64}));
            }
        }
        Ok(out)
    }

    /// Single-stream cost of each method family, as a page sees it (`Generation`, one prompt at a
    /// time, greedy): prompt tokens, prefill time, decode time per token.
    pub fn latency(&self) -> Result<Vec<serde_json::Value>> {
        let Some(a) = self.attributes.first() else { return Ok(Vec::new()) };
        let name = Some(a.spec.name.clone());
        let strength = |m: &str| a.spec.strengths.get(m).and_then(|s| s.iter().copied().find(|&x| x > 0.0));
        let cells = [
            Cell { attribute: None, method: "unsteered".into(), strength: None },
            Cell { attribute: name.clone(), method: "prompt".into(), strength: None },
            Cell { attribute: name.clone(), method: "icl".into(), strength: None },
            Cell { attribute: name.clone(), method: "icv-pca".into(), strength: strength("icv-pca").or(Some(0.1)) },
            Cell { attribute: name.clone(), method: "residual".into(), strength: strength("residual").or(Some(0.1)) },
        ];
        let n = self.config.latency_prompts.min(self.prompts.len());
        let mut out = Vec::new();
        // Interleaved: each prompt runs every method before the next prompt, so drift in the machine's
        // speed hits all methods alike.
        let mut totals = vec![(0usize, 0f64, 0usize, 0f64); cells.len()];
        for p in self.prompts.iter().take(n) {
            for (c, cell) in cells.iter().enumerate() {
                let steering = self.steering(cell)?;
                let steer: &dyn Steer = crate::steering::hook::hook(steering.as_ref());
                let options = GenerateOptions { max_tokens: 32, stop_ids: Vec::new(), ..Default::default() };
                let t0 = Instant::now();
                let mut g = block_on(Generation::start(&self.model, Prompt::Messages(self.messages(cell, p)), &options, steer))?;
                let prefill = t0.elapsed().as_secs_f64();
                let t0 = Instant::now();
                while block_on(g.next(&self.model, steer))?.is_some() {}
                let t = &mut totals[c];
                *t = (t.0 + g.prompt().len(), t.1 + prefill, t.2 + g.ids().len().saturating_sub(1), t.3 + t0.elapsed().as_secs_f64());
            }
        }
        let base = totals[0].3 / totals[0].2.max(1) as f64;
        for (cell, (ptok, pre, dtok, dec)) in cells.iter().zip(totals) {
            let per_token = dec / dtok.max(1) as f64;
            out.push(json!({"method": cell.method, "strength": cell.strength, "prompts": n, "prompt_tokens": ptok as f64 / n.max(1) as f64,
                "prefill_ms": pre * 1000.0 / n.max(1) as f64, "decode_ms_per_token": per_token * 1000.0, "extra_ms_per_token": (per_token - base) * 1000.0}));
        }
        Ok(out)
    }

    pub fn attributes(&self) -> Vec<(String, String)> {
        self.attributes.iter().map(|a| (a.spec.name.clone(), a.spec.target.clone())).collect()
    }
}

/// Per-cell summary for one attribute's judge.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub attribute: String,
    pub method: String,
    pub strength: Option<f32>,
    pub n: usize,
    pub success: Rate,
    /// Judged the target and not degenerate: what a user would accept.
    pub fluent_success: Rate,
    pub mean_target_probability: f64,
    pub median_perplexity: Option<f64>,
    pub degenerate: Rate,
    /// Mean similarity to the prompt (open prompts) and to the source sentence (rewrites).
    pub similarity_prompt: f64,
    pub similarity_source: f64,
    pub similarity_unsteered: f64,
    pub seconds: f64,
    pub tokens: usize,
}

/// Success: the judge's most likely label is the target (threshold 0.5 for two labels) and the answer
/// is not empty.
pub fn summarize(results: &[CellResult], attribute: &str) -> Vec<Summary> {
    let mean = |v: Vec<f64>| if v.is_empty() { f64::NAN } else { v.iter().sum::<f64>() / v.len() as f64 };
    results
        .iter()
        .filter(|r| r.cell.attribute.as_deref().is_none_or(|a| a == attribute))
        .map(|r| {
            let a = &r.answers;
            let success = a.iter().filter(|x| !x.text.is_empty() && x.judge.get(attribute).is_some_and(|&p| p > 0.5)).count();
            let mut ppl: Vec<f64> = a.iter().filter_map(|x| x.perplexity).collect();
            ppl.sort_by(f64::total_cmp);
            Summary {
                attribute: attribute.to_string(),
                method: r.cell.method.clone(),
                strength: r.cell.strength,
                n: a.len(),
                success: Rate::of(success, a.len()),
                fluent_success: Rate::of(a.iter().filter(|x| !x.text.is_empty() && !x.degenerate && x.judge.get(attribute).is_some_and(|&p| p > 0.5)).count(), a.len()),
                mean_target_probability: mean(a.iter().map(|x| x.judge.get(attribute).copied().unwrap_or(0.0) as f64).collect()),
                median_perplexity: (!ppl.is_empty()).then(|| ppl[ppl.len() / 2]),
                degenerate: Rate::of(a.iter().filter(|x| x.degenerate).count(), a.len()),
                similarity_prompt: mean(a.iter().filter(|x| x.kind != "rewrite").map(|x| x.similarity_prompt as f64).collect()),
                similarity_source: mean(a.iter().filter(|x| x.kind == "rewrite").map(|x| x.similarity_prompt as f64).collect()),
                similarity_unsteered: mean(a.iter().map(|x| x.similarity_unsteered as f64).collect()),
                seconds: r.seconds,
                tokens: a.iter().map(|x| x.tokens).sum(),
            }
        })
        .collect()
}

fn strength_label(s: &Summary) -> String {
    match s.strength {
        Some(x) if x < 0.0 => format!("−v {}", -x),
        Some(x) => format!("{x}"),
        None => "–".into(),
    }
}

/// The README's table for one attribute.
pub fn markdown(summaries: &[Summary]) -> String {
    let mut t = String::from("| method | strength | n | success (95 % CI) | … and not degenerate | mean P(target) | median perplexity (greedy) | degenerate | sim. prompt | sim. source (rewrites) | sim. unsteered |\n|---|---|---|---|---|---|---|---|---|---|---|\n");
    for s in summaries {
        t += &format!(
            "| {} | {} | {} | {:.2} ({:.2}–{:.2}) | {:.2} ({:.2}–{:.2}) | {:.2} | {} | {:.2} | {:.2} | {:.2} | {} |\n",
            s.method,
            strength_label(s),
            s.n,
            s.success.rate,
            s.success.low,
            s.success.high,
            s.fluent_success.rate,
            s.fluent_success.low,
            s.fluent_success.high,
            s.mean_target_probability,
            s.median_perplexity.map_or("–".into(), |p| format!("{p:.1}")),
            s.degenerate.rate,
            s.similarity_prompt,
            s.similarity_source,
            if s.method == "unsteered" { "1".into() } else { format!("{:.2}", s.similarity_unsteered) },
        );
    }
    t
}

/// Success against drift (1 − MiniLM similarity to the unsteered answer of the same prompt and
/// decoding), one panel per attribute: each vector method a line through its strengths (−v dashed), the
/// baselines single points; a ring marks a cell where ≥ 10 % of the answers are degenerate.
pub fn svg(panels: &[(String, Vec<Summary>)]) -> String {
    let (w, h, pad) = (420.0, 320.0, 48.0);
    let colors = [("unsteered", "#555"), ("prompt", "#1b9e77"), ("icl", "#7570b3"), ("icv-pca", "#d95f02"), ("icv-mean", "#e7298a"), ("residual", "#1f78b4")];
    let color = |m: &str| colors.iter().find(|c| c.0 == m).map_or("#000", |c| c.1);
    let drift = |r: &Summary| if r.method == "unsteered" { 0.0 } else { (1.0 - r.similarity_unsteered).clamp(0.0, 1.0) };
    let mut s = format!("<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{}\" height=\"{}\" font-family=\"sans-serif\" font-size=\"11\">\n", w * panels.len() as f64, h + 40.0);
    for (i, (name, rows)) in panels.iter().enumerate() {
        let ox = i as f64 * w;
        let x = |v: f64| ox + pad + v * (w - 2.0 * pad);
        let y = |v: f64| h - pad + 20.0 - v * (h - 2.0 * pad);
        s += &format!("<text x=\"{}\" y=\"16\" font-weight=\"bold\">{name}: judge success vs drift from the unsteered answer</text>\n", ox + pad);
        s += &format!("<line x1=\"{}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"#999\"/><line x1=\"{}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"#999\"/>\n", x(0.0), y(0.0), x(1.0), y(0.0), x(0.0), y(0.0), x(0.0), y(1.0));
        for t in [0.0, 0.25, 0.5, 0.75, 1.0] {
            s += &format!("<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">{t}</text><text x=\"{}\" y=\"{}\" text-anchor=\"end\">{t}</text>\n", x(t), y(0.0) + 14.0, x(0.0) - 4.0, y(t) + 4.0);
        }
        s += &format!("<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">drift: 1 − similarity to the unsteered answer</text>\n", x(0.5), y(0.0) + 28.0);
        s += &format!("<text transform=\"translate({},{}) rotate(-90)\" text-anchor=\"middle\">success rate</text>\n", ox + 12.0, y(0.5));
        for (m, c) in colors {
            for sign in [1.0f32, -1.0] {
                let mut pts: Vec<&Summary> = rows.iter().filter(|r| r.method == m && r.strength.unwrap_or(0.0) * sign >= 0.0).collect();
                pts.sort_by(|a, b| a.strength.unwrap_or(0.0).abs().total_cmp(&b.strength.unwrap_or(0.0).abs()));
                if pts.len() > 1 {
                    let line: Vec<String> = pts.iter().map(|p| format!("{:.1},{:.1}", x(drift(p)), y(p.success.rate))).collect();
                    let dash = if sign < 0.0 { " stroke-dasharray=\"4 3\"" } else { "" };
                    s += &format!("<polyline points=\"{}\" fill=\"none\" stroke=\"{c}\"{dash}/>\n", line.join(" "));
                }
            }
        }
        for r in rows {
            let c = color(&r.method);
            s += &format!("<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"3.5\" fill=\"{c}\"><title>{} {}: success {:.2}, drift {:.2}, degenerate {:.2}</title></circle>\n", x(drift(r)), y(r.success.rate), r.method, strength_label(r), r.success.rate, drift(r), r.degenerate.rate);
            if r.degenerate.rate >= 0.1 {
                s += &format!("<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"7\" fill=\"none\" stroke=\"#c00\"/>\n", x(drift(r)), y(r.success.rate));
            }
            let label = if r.strength.is_some() { strength_label(r) } else { r.method.clone() };
            s += &format!("<text x=\"{:.1}\" y=\"{:.1}\" fill=\"{c}\" font-size=\"9\">{label}</text>\n", x(drift(r)) + 5.0, y(r.success.rate) - 4.0);
        }
        for (k, (m, c)) in colors.iter().enumerate() {
            s += &format!("<rect x=\"{}\" y=\"{}\" width=\"10\" height=\"10\" fill=\"{c}\"/><text x=\"{}\" y=\"{}\">{m}</text>\n", ox + w - 110.0, 170.0 + k as f64 * 14.0, ox + w - 96.0, 179.0 + k as f64 * 14.0);
        }
        s += &format!("<circle cx=\"{}\" cy=\"{}\" r=\"5\" fill=\"none\" stroke=\"#c00\"/><text x=\"{}\" y=\"{}\">≥ 10 % degenerate</text>\n", ox + w - 105.0, 175.0 + colors.len() as f64 * 14.0, ox + w - 96.0, 179.0 + colors.len() as f64 * 14.0);
    }
    s + "</svg>\n"
}
