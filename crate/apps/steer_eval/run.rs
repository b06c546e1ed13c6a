//! Loading the model, judges and vectors once, and answering every cell.

use std::path::{Path, PathBuf};
use std::time::Instant;

use burn::tensor::activation::log_softmax;
use burn::tensor::{Int, Tensor, TensorData};
use serde_json::json;

use crate::base::backend::{block_on, read_f32};
use crate::tasks::encode::Encoder;
use crate::base::error::{Error, Result};
use crate::io::files::{File, Labelled, ModelFiles, read_jsonl};
use crate::tasks::generate::{Generation, Message, Model, Prompt, generate_rows};
use crate::steering::icv::{self, Method, Pair};
use crate::models::llama::cache::Cache;
use crate::models::llama::hook::{Plain, Steer};
use crate::base::options::{EncoderOptions, GenerateOptions};
use crate::steering::vector::Vector;
use crate::steering::spec::SteeringSpec;
use crate::base::options::Injection;
use crate::apps::steer_eval::config::{AttributeSpec, Cell, Config, Decoding, EvalPrompt};
use crate::apps::steer_eval::score::{Answer, CellResult, cosine, degenerate};

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
        // f32: the committed figures (docs/steering.md) were measured so; quantised steering is checked
        // by tests/decoder.rs (the q4 folder steers as the reference).
        let f32 = crate::base::options::DecoderOptions { weights: crate::base::options::WeightFormat::F32 };
        let model = Model::load_with(&ModelFiles::from_dir(&model_dir)?, &config.model, device, &f32)?;
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
