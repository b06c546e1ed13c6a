//! Where the training labels come from: gold labels, a teacher classifier folder (soft labels), or the
//! decoder LM as a zero-shot labeller that scores each label's verbaliser after a prompt (TnT-LLM's
//! labelling step), optionally steered by a vector. Every teacher yields label probabilities per text.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use burn::tensor::Device;
use burn::tensor::activation::log_softmax;
use serde::{Deserialize, Serialize};

use crate::base::backend::{block_on, read_f32};
use crate::apps::distill::cache::{self, Hash, JsonLines};
use crate::apps::distill::data::Dataset;
use crate::apps::distill::prompt::{Labeller, LlmPrompt, Score, Via, calibrate, render};
use crate::apps::distill::server::ServerTeacher;
use crate::apps::distill::server::options::ServerOptions;
use crate::tasks::encode::Encoder;
use crate::base::error::{Error, Result};
use crate::base::math::one_hot;
use crate::io::files::ModelFiles;
use crate::tasks::generate::Model;
use crate::models::llama::cache::Cache;
use crate::base::options::EncoderOptions;
use crate::steering::vector::Vector;
use crate::steering::hook::Steering;
use crate::steering::spec::SteeringSpec;
use crate::base::options::SteerTerm;

pub enum Teacher {
    Gold,
    Classifier(PathBuf),
    Llm { dir: PathBuf, prompt: LlmPrompt },
    /// Any OpenAI-compatible server (`openai:URL[,URL…][#MODEL]`, `server.rs`).
    Server { options: ServerOptions, prompt: LlmPrompt },
}

/// A teacher's probabilities for one dataset, plus (LLM) the uncalibrated ones.
pub struct Labels {
    /// [n][labels], each row sums to 1.
    pub probs: Vec<Vec<f32>>,
    /// LLM only: before contextual calibration, for the report.
    pub raw: Option<Vec<Vec<f32>>>,
}

impl Teacher {
    pub fn parse(spec: &str, prompt: LlmPrompt) -> Result<Teacher> {
        Ok(match spec {
            "gold" => Teacher::Gold,
            s if s.starts_with("llm:") => Teacher::Llm { dir: PathBuf::from(&s[4..]), prompt },
            s if s.starts_with("openai:") => Teacher::Server { options: ServerOptions::parse(&s[7..])?, prompt },
            s => {
                let dir = PathBuf::from(s);
                if !dir.join("config.json").is_file() {
                    return Err(Error::Invalid(format!("--teacher `{s}`: expected gold, a classifier folder with config.json, llm:FOLDER or openai:URL[#MODEL]")));
                }
                Teacher::Classifier(dir)
            }
        })
    }

    pub fn name(&self) -> String {
        match self {
            Teacher::Gold => "gold".into(),
            Teacher::Classifier(d) => format!("classifier:{}", d.display()),
            Teacher::Llm { dir, .. } => format!("llm:{}", dir.display()),
            Teacher::Server { options, .. } => format!("openai:{}{}", options.urls.join(","), options.model.as_ref().map(|m| format!("#{m}")).unwrap_or_default()),
        }
    }

    /// Label every text of `sets` (cached under `cache_dir` for the slow teachers).
    pub fn label(&self, sets: &[&Dataset], cache_dir: &Path, device: &Device) -> Result<Vec<Labels>> {
        match self {
            Teacher::Gold => sets
                .iter()
                .map(|d| {
                    let probs = d.gold_ids("--teacher gold")?.iter().map(|&g| one_hot(g, d.labels.len())).collect();
                    Ok(Labels { probs, raw: None })
                })
                .collect(),
            Teacher::Classifier(dir) => {
                let enc = Encoder::load(&ModelFiles::from_dir(dir)?, &EncoderOptions::default(), device)?;
                sets.iter()
                    .map(|d| {
                        // The teacher's labels, reordered to ours by name.
                        let map = d
                            .labels
                            .iter()
                            .map(|l| enc.labels().iter().position(|t| t == l).ok_or_else(|| Error::Invalid(format!("teacher {} has labels {:?}, which lack `{l}`", dir.display(), enc.labels()))))
                            .collect::<Result<Vec<_>>>()?;
                        let bar = cache::bar(d.len(), "teacher");
                        let mut probs = Vec::with_capacity(d.len());
                        for chunk in d.texts.chunks(64) {
                            for c in block_on(enc.classify(chunk))? {
                                let row: Vec<f32> = map.iter().map(|&j| c.scores[j].1).collect();
                                let sum: f32 = row.iter().sum();
                                probs.push(row.iter().map(|p| p / sum.max(f32::MIN_POSITIVE)).collect());
                            }
                            bar.inc(chunk.len() as u64);
                        }
                        bar.finish_and_clear();
                        Ok(Labels { probs, raw: None })
                    })
                    .collect()
            }
            Teacher::Llm { dir, prompt } => {
                let labeller = LlmLabeller::load(dir, prompt, &sets[0].labels, device)?;
                label_cached(sets, cache_dir, &labeller)
            }
            Teacher::Server { options, prompt } => {
                let server = ServerTeacher::connect(options, prompt, &sets[0].labels)?;
                let out = label_cached(sets, cache_dir, &server);
                eprintln!("teacher {}: model `{}`, {} requests", self.name(), server.model(), server.requests.load(std::sync::atomic::Ordering::Relaxed));
                out
            }
        }
    }
}

/// LM teacher labels through the per-text cache `cache_dir/llm-KEY.jsonl`: texts already there are not
/// asked again, and each new answer is appended as it arrives, so an interrupted run resumes where it
/// stopped. The content-free input "N/A" is scored first, for contextual calibration (Zhao et al.,
/// 2021): log-probability rows are divided by its label prior; one-hot rows (generated answers) are not.
fn label_cached(sets: &[&Dataset], cache_dir: &Path, labeller: &dyn Labeller) -> Result<Vec<Labels>> {
    cache::ensure_dir(cache_dir)?;
    let mut store: JsonLines<Scored> = JsonLines::open(cache_dir.join(format!("llm-{}.jsonl", labeller.key().hex())))?;
    if !store.items.iter().any(|s| s.h == CONTENT_FREE) {
        let mut first = None;
        labeller.score_all(&["N/A"], &mut |_, s| {
            first = Some(s);
            Ok(())
        })?;
        let s = first.ok_or_else(|| Error::Invalid("the teacher gave no score for the content-free input".into()))?;
        store.push(Scored { h: CONTENT_FREE.into(), p: s.p, via: s.via })?;
    }
    let mut known: HashMap<String, Scored> = store.items.drain(..).map(|s| (s.h.clone(), s)).collect();
    let todo: Vec<&str> = {
        let mut seen = std::collections::HashSet::new();
        sets.iter().flat_map(|d| d.texts.iter()).filter(|t| !known.contains_key(&text_key(t)) && seen.insert(text_key(t))).map(String::as_str).collect()
    };
    if !todo.is_empty() {
        let bar = cache::bar(todo.len(), "llm labels");
        let result = labeller.score_all(&todo, &mut |i, s| {
            let scored = Scored { h: text_key(todo[i]), p: s.p, via: s.via };
            store.push(scored.clone())?;
            known.insert(scored.h.clone(), scored);
            bar.inc(1);
            Ok(())
        });
        bar.finish_and_clear();
        result?;
    }
    let prior = &known[CONTENT_FREE];
    let unparsed = known.values().filter(|s| s.via == Via::Unparsed).count();
    if unparsed > 0 {
        eprintln!("teacher: {unparsed} answer(s) named no label (equal probabilities)");
    }
    Ok(sets
        .iter()
        .map(|d| {
            let rows: Vec<&Scored> = d.texts.iter().map(|t| &known[&text_key(t)]).collect();
            let probs = rows.iter().map(|r| if r.via == Via::Logprobs && prior.via == Via::Logprobs { calibrate(&r.p, &prior.p) } else { r.p.clone() }).collect();
            Labels { probs, raw: Some(rows.iter().map(|r| r.p.clone()).collect()) }
        })
        .collect())
}

const CONTENT_FREE: &str = "content-free";

#[derive(Clone, Serialize, Deserialize)]
struct Scored {
    h: String,
    p: Vec<f32>,
    /// Absent in caches written before servers could be teachers: those are all log-probabilities.
    #[serde(default = "logprobs")]
    via: Via,
}

fn logprobs() -> Via {
    Via::Logprobs
}

fn text_key(t: &str) -> String {
    Hash::default().str(t).hex()
}

/// The decoder LM with its prompt, verbaliser token ids and optional steering.
struct LlmLabeller {
    model: Model,
    prompt: LlmPrompt,
    labels: Vec<String>,
    verbaliser_ids: Vec<Vec<u32>>,
    steering: Option<Steering>,
    /// Model weights and steering vector, hashed: with the prompt, the cache key of its labels.
    weights_id: Hash,
}

impl LlmLabeller {
    fn load(dir: &Path, prompt: &LlmPrompt, labels: &[String], device: &Device) -> Result<Self> {
        let files = ModelFiles::from_dir(dir)?;
        let weights = &files.weights.bytes;
        let mut weights_id = Hash::default().bytes(&files.config.bytes).bytes(&(weights.len() as u64).to_le_bytes()).bytes(&weights[..weights.len().min(1 << 20)]);
        // f32, as the committed distillation reports were labelled (int8 would label ≈ 1.7× faster,
        // with its own small disagreements: a change of teacher, not of speed).
        let f32 = crate::base::options::DecoderOptions { weights: crate::base::options::WeightFormat::F32 };
        let model = Model::load_with(&files, "teacher", device, &f32)?;
        if prompt.verbalisers.len() != labels.len() {
            return Err(Error::Invalid(format!("{} verbalisers for {} labels {labels:?}", prompt.verbalisers.len(), labels.len())));
        }
        // Completion prompts continue after "…:", so the answer starts with a space; chat answers do not.
        let verbaliser_ids = prompt
            .verbalisers
            .iter()
            .map(|v| {
                let ids = model.encode(&if prompt.chat { v.clone() } else { format!(" {v}") })?;
                if ids.is_empty() { Err(Error::Invalid(format!("verbaliser `{v}` encodes to no tokens"))) } else { Ok(ids) }
            })
            .collect::<Result<Vec<_>>>()?;
        let terms: Vec<SteerTerm> = prompt.vector.iter().cloned().collect();
        let spec = SteeringSpec::resolve_terms(&terms, |file| {
            let bytes = std::fs::read(file).map_err(|e| Error::file(file, e))?;
            let v = Vector::from_bytes(&bytes, file)?;
            // The cached labels depend on the vector and its strength too.
            let strength = terms[0].strength.unwrap_or(v.default_strength);
            weights_id = weights_id.bytes(&bytes).bytes(&strength.to_le_bytes());
            Ok(v)
        })?;
        let steering = spec.build(&model.llama)?;
        Ok(LlmLabeller { model, prompt: prompt.clone(), labels: labels.to_vec(), verbaliser_ids, steering, weights_id })
    }

    fn render(&self, text: &str) -> String {
        render(&self.prompt, &self.labels, text)
    }

    /// Softmax over labels of each verbaliser's total log-probability after the prompt.
    fn score(&self, text: &str) -> Result<Vec<f32>> {
        let ids = self.model.prompt_ids(&(&self.render(text)).into(), self.prompt.chat)?;
        let steer = crate::steering::hook::hook(self.steering.as_ref());
        let llama = &self.model.llama;
        let mut cache = Cache::default();
        let first = read_f32(log_softmax(llama.forward(&ids, &mut cache, steer, false)?.logits, 0));
        let first = block_on(first)?; // [vocab]
        let prompt_len = cache.len();
        let mut totals = Vec::with_capacity(self.verbaliser_ids.len());
        for v in &self.verbaliser_ids {
            let mut total = first[v[0] as usize];
            for w in v.windows(2) {
                let lp = block_on(read_f32(log_softmax(llama.forward(&w[..1], &mut cache, steer, false)?.logits, 0)))?;
                total += lp[w[1] as usize];
            }
            cache.truncate(prompt_len);
            totals.push(total);
        }
        let max = totals.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
        let exp: Vec<f32> = totals.iter().map(|t| (t - max).exp()).collect();
        let sum: f32 = exp.iter().sum();
        Ok(exp.iter().map(|e| e / sum).collect())
    }
}

impl Labeller for LlmLabeller {
    fn key(&self) -> Hash {
        let p = &self.prompt;
        self.weights_id.str(&p.template).str(&p.verbalisers.join("\u{1f}")).bytes(&(p.max_chars as u64).to_le_bytes()).bytes(&[p.chat as u8])
    }

    fn score_all(&self, texts: &[&str], done: &mut dyn FnMut(usize, Score) -> Result<()>) -> Result<()> {
        for (i, t) in texts.iter().enumerate() {
            done(i, Score { p: self.score(t)?, via: Via::Logprobs })?;
        }
        Ok(())
    }
}
