//! The LM teacher behind any OpenAI-compatible server (llama.cpp, llama-cpp-python, vLLM, TGI, Ollama, a
//! hosted API): `--teacher openai:URL[,URL…][#MODEL]`.
//!
//! Each text is asked once, with the prompt the in-process teacher uses, for one answer token and its
//! `top_logprobs`; every label collects the probability of the listed tokens that begin its verbaliser
//! (" Sport", "sport", "spor" all count for `sport`; a token that could begin two verbalisers counts for
//! neither). A label none of whose tokens is listed gets the mass left outside the list shared among such
//! labels, capped by the least listed probability (an unlisted token is no likelier than a listed one).
//! The in-process teacher scores whole verbalisers; over the API only the first answer token is visible
//! to every server, so for verbalisers that differ in their first letters the two agree.
//!
//! Where the server gives no log-probabilities (it refuses the request or omits them), or none of the
//! listed tokens begins a verbaliser, the text is labelled by generation instead: the answer constrained
//! by a JSON schema whose only field is an enum of the labels (OpenAI's `response_format`, which
//! llama.cpp, vLLM and hosted APIs honour), or, where the server rejects that, a short free answer
//! matched against the verbalisers. Those labels are one-hot and not calibrated.
//!
//! Requests run `concurrency` at a time over the listed servers, under an optional rate limit; a
//! connection failure, 408, 409, 429 or 5xx is retried with exponential backoff (honouring
//! `Retry-After`) on the next server. Every answer is appended to the per-text cache by one thread as it
//! arrives, so a run killed at any point resumes with nothing relabelled (only requests then in flight
//! are asked again) and no text recorded twice.

use std::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Mutex, mpsc};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::apps::distill::cache::Hash;
use crate::apps::distill::prompt::{Labeller, LlmPrompt, Score, Via};
use crate::apps::distill::server::options::{ServerMode, ServerOptions};
use crate::base::error::{Error, Result};

pub mod http;
pub mod options;

const TOP_LOGPROBS: usize = 20;
const MODE_UNKNOWN: u8 = 0;
const MODE_LOGPROBS: u8 = 1;
const MODE_GENERATE: u8 = 2;
const SCHEMA_UNKNOWN: u8 = 0;
/// OpenAI's `{"type": "json_schema", "json_schema": {"schema": …}}` (vLLM, llama.cpp's server, hosted APIs).
const SCHEMA_OPENAI: u8 = 1;
/// `{"type": "json_object", "schema": …}` (llama-cpp-python, llama.cpp's server).
const SCHEMA_OBJECT: u8 = 2;
const SCHEMA_NONE: u8 = 3;

/// A request's failure: `retry` when another attempt may succeed.
pub(crate) struct Failure {
    retry: bool,
    after: Option<Duration>,
    status: Option<u16>,
    message: String,
}

pub struct ServerTeacher {
    options: ServerOptions,
    model: String,
    prompt: LlmPrompt,
    labels: Vec<String>,
    agent: ureq::Agent,
    key: Option<String>,
    mode: AtomicU8,
    /// Which `response_format` the server takes (`SCHEMA_*`), found on the first generated answer.
    schema_form: AtomicU8,
    /// `schema_form` has been answered once.
    schema_known: AtomicBool,
    /// When the next request may start, under `rate`.
    next_slot: Mutex<Instant>,
    /// Requests sent, retries included (for the report and the tests).
    pub requests: AtomicUsize,
}

impl ServerTeacher {
    pub fn connect(options: &ServerOptions, prompt: &LlmPrompt, labels: &[String]) -> Result<ServerTeacher> {
        if options.urls.is_empty() || options.concurrency == 0 || options.timeout_s == 0 {
            return Err(Error::Invalid("--teacher openai: needs a URL, --concurrency ≥ 1 and a timeout ≥ 1 s".into()));
        }
        if let Some(r) = options.rate
            && !(r > 0.0 && r.is_finite())
        {
            return Err(Error::Invalid(format!("--rate {r}: expected requests per second > 0")));
        }
        if prompt.vector.is_some() {
            return Err(Error::Invalid("--teacher-vector steers the in-process teacher (llm:FOLDER); a server's model cannot be steered".into()));
        }
        if prompt.verbalisers.len() != labels.len() {
            return Err(Error::Invalid(format!("{} verbalisers for {} labels {labels:?}", prompt.verbalisers.len(), labels.len())));
        }
        let agent = ureq::Agent::config_builder().timeout_global(Some(Duration::from_secs(options.timeout_s))).http_status_as_error(false).build().new_agent();
        let key = std::env::var(&options.api_key_env).ok().filter(|k| !k.is_empty());
        let mut t = ServerTeacher {
            options: options.clone(),
            model: String::new(),
            prompt: prompt.clone(),
            labels: labels.to_vec(),
            agent,
            key,
            mode: AtomicU8::new(match options.mode {
                ServerMode::Auto => MODE_UNKNOWN,
                ServerMode::Logprobs => MODE_LOGPROBS,
                ServerMode::Generate => MODE_GENERATE,
            }),
            schema_form: AtomicU8::new(SCHEMA_UNKNOWN),
            schema_known: AtomicBool::new(false),
            next_slot: Mutex::new(Instant::now()),
            requests: AtomicUsize::new(0),
        };
        t.model = match &options.model {
            Some(m) => m.clone(),
            None => t.first_model()?,
        };
        Ok(t)
    }

    pub fn model(&self) -> &str {
        &self.model
    }

    /// One text's label probabilities. `index` names the text in errors (never its content).
    fn score_with(&self, text: &str, index: usize, worker: usize) -> Result<Score> {
        let prompt = self.render(text);
        let mode = self.mode.load(Ordering::Relaxed);
        if mode != MODE_GENERATE {
            // The first request of an `auto` run (the content-free input, asked alone) finds out whether
            // the server gives log-probabilities: a refusal, even as a 500, means generation from now on.
            let probe = mode == MODE_UNKNOWN;
            match self.logprobs(&prompt, worker, probe) {
                Ok(Some(tokens)) => {
                    self.mode.store(MODE_LOGPROBS, Ordering::Relaxed);
                    if let Some(p) = self.label_probs(&tokens) {
                        return Ok(Score { p, via: Via::Logprobs });
                    }
                }
                Ok(None) | Err(Failure { retry: false, status: Some(400..=500), .. }) if probe => self.mode.store(MODE_GENERATE, Ordering::Relaxed),
                Ok(None) => return Err(self.fail(index, "the server returned no logprobs (try --teacher-mode generate)")),
                Err(f) => return Err(self.fail(index, &f.message)),
            }
        }
        self.generate(&prompt, index, worker)
    }

    fn fail(&self, index: usize, why: &str) -> Error {
        Error::file(self.options.urls.join(","), format!("text {index}: {why}"))
    }

    fn render(&self, text: &str) -> String {
        crate::apps::distill::prompt::render(&self.prompt, &self.labels, text)
    }

    /// The first answer token's top log-probabilities, or None when the server sends none.
    fn logprobs(&self, prompt: &str, worker: usize, probe: bool) -> std::result::Result<Option<Vec<(String, f32)>>, Failure> {
        let v = if self.prompt.chat {
            let body = json!({"model": self.model, "messages": [{"role": "user", "content": prompt}], "max_tokens": 1, "temperature": 0.0, "logprobs": true, "top_logprobs": TOP_LOGPROBS});
            self.post("chat/completions", &body, worker, probe)?
        } else {
            let body = json!({"model": self.model, "prompt": prompt, "max_tokens": 1, "temperature": 0.0, "logprobs": TOP_LOGPROBS});
            self.post("completions", &body, worker, probe)?
        };
        let choice = &v["choices"][0]["logprobs"];
        // Chat: content[0].top_logprobs = [{token, logprob}]; completions: top_logprobs[0] = {token: logprob}.
        let tokens: Vec<(String, f32)> = if let Some(list) = choice["content"][0]["top_logprobs"].as_array() {
            list.iter().filter_map(|t| Some((t["token"].as_str()?.to_string(), t["logprob"].as_f64()? as f32))).collect()
        } else if let Some(map) = choice["top_logprobs"][0].as_object() {
            map.iter().filter_map(|(k, lp)| Some((k.clone(), lp.as_f64()? as f32))).collect()
        } else {
            Vec::new()
        };
        Ok((!tokens.is_empty()).then_some(tokens))
    }

    /// Label probabilities from the listed first tokens, or None when no token begins a verbaliser.
    fn label_probs(&self, tokens: &[(String, f32)]) -> Option<Vec<f32>> {
        let verbs: Vec<String> = self.prompt.verbalisers.iter().map(|v| v.trim().to_lowercase()).collect();
        let n = verbs.len();
        let mut mass = vec![0f32; n];
        let (mut listed, mut least) = (0f32, 1f32);
        for (tok, lp) in tokens {
            if !lp.is_finite() {
                continue;
            }
            let p = lp.exp();
            listed += p;
            least = least.min(p);
            let t = tok.trim_start().to_lowercase();
            if t.is_empty() {
                continue;
            }
            let hits: Vec<usize> = (0..n).filter(|&i| verbs[i].starts_with(&t) || t.starts_with(&verbs[i])).collect();
            if let [i] = hits[..] {
                mass[i] += p;
            }
        }
        if mass.iter().all(|&m| m == 0.0) {
            return None;
        }
        let unmatched = mass.iter().filter(|&&m| m == 0.0).count();
        if unmatched > 0 {
            let share = ((1.0 - listed).max(0.0) / unmatched as f32).min(least);
            for m in mass.iter_mut().filter(|m| **m == 0.0) {
                *m = share;
            }
        }
        let sum: f32 = mass.iter().sum();
        Some(mass.iter().map(|m| m / sum).collect())
    }

    /// A generated answer, constrained to the labels where the server supports JSON schemas. Which
    /// `response_format` it takes is found on the first such request (asked alone: the content-free
    /// input), trying OpenAI's form, then llama.cpp's, then none.
    fn generate(&self, prompt: &str, index: usize, worker: usize) -> Result<Score> {
        let messages = json!([{"role": "user", "content": prompt}]);
        let schema = json!({"type": "object", "properties": {"label": {"type": "string", "enum": self.labels}}, "required": ["label"], "additionalProperties": false});
        // Chat only: `/completions` has no response_format.
        while self.prompt.chat && self.schema_form.load(Ordering::Relaxed) != SCHEMA_NONE {
            let form = self.schema_form.load(Ordering::Relaxed);
            let format = match form {
                SCHEMA_UNKNOWN | SCHEMA_OPENAI => json!({"type": "json_schema", "json_schema": {"name": "label", "strict": true, "schema": schema}}),
                SCHEMA_OBJECT => json!({"type": "json_object", "schema": schema}),
                _ => break,
            };
            let body = json!({"model": self.model, "messages": messages, "max_tokens": 64, "temperature": 0.0, "response_format": format});
            let probe = !self.schema_known.load(Ordering::Relaxed);
            match self.post("chat/completions", &body, worker, probe) {
                Ok(v) => {
                    if form == SCHEMA_UNKNOWN {
                        self.schema_form.store(SCHEMA_OPENAI, Ordering::Relaxed);
                    }
                    self.schema_known.store(true, Ordering::Relaxed);
                    let answer = v["choices"][0]["message"]["content"].as_str().unwrap_or_default();
                    let label = serde_json::from_str::<Value>(answer).ok().and_then(|a| a["label"].as_str().and_then(|l| self.labels.iter().position(|x| x == l)));
                    return Ok(match label {
                        Some(i) => Score { p: crate::base::math::one_hot(i, self.labels.len()), via: Via::Schema },
                        None => self.match_answer(answer),
                    });
                }
                // Refused (llama-cpp-python answers an unknown form with a 500): try the next form.
                Err(Failure { retry: false, status: Some(400..=500), .. }) if probe => {
                    self.schema_form.store(if form == SCHEMA_UNKNOWN { SCHEMA_OBJECT } else { SCHEMA_NONE }, Ordering::Relaxed);
                }
                Err(f) => return Err(self.fail(index, &f.message)),
            }
        }
        let v = if self.prompt.chat {
            self.post("chat/completions", &json!({"model": self.model, "messages": messages, "max_tokens": 16, "temperature": 0.0}), worker, false)
        } else {
            self.post("completions", &json!({"model": self.model, "prompt": prompt, "max_tokens": 16, "temperature": 0.0}), worker, false)
        }
        .map_err(|f| self.fail(index, &f.message))?;
        let c = &v["choices"][0];
        let answer = c["message"]["content"].as_str().or(c["text"].as_str()).unwrap_or_default();
        Ok(self.match_answer(answer))
    }

    /// A free answer → the verbaliser it starts with (else the first one it names as a word); an
    /// answer naming none gives equal probabilities, marked `unparsed`.
    fn match_answer(&self, answer: &str) -> Score {
        let a = answer.trim().trim_start_matches(|c: char| !c.is_alphanumeric()).to_lowercase();
        let verbs: Vec<String> = self.prompt.verbalisers.iter().map(|v| v.trim().to_lowercase()).collect();
        let n = verbs.len();
        let starts = (0..n).filter(|&i| !verbs[i].is_empty() && a.starts_with(&verbs[i])).max_by_key(|&i| verbs[i].len());
        let named = || {
            let words: Vec<&str> = a.split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty()).collect();
            words.iter().find_map(|w| verbs.iter().position(|v| v == w))
        };
        match starts.or_else(named) {
            Some(i) => Score { p: crate::base::math::one_hot(i, n), via: Via::Generate },
            None => Score { p: vec![1.0 / n as f32; n], via: Via::Unparsed },
        }
    }

    fn first_model(&self) -> Result<String> {
        let url = format!("{}/models", self.options.urls[0]);
        let v = self.attempts(|| self.once(&url, None)).map_err(|f| Error::file(&url, f.message))?;
        v["data"][0]["id"].as_str().map(str::to_string).ok_or_else(|| Error::file(&url, "lists no model: name one with --teacher openai:URL#MODEL"))
    }

}

impl Labeller for ServerTeacher {
    /// What the cached scores depend on: the model's name, not the URL, so the same job can move to
    /// other servers of the same model and keep its labels.
    fn key(&self) -> Hash {
        let p = &self.prompt;
        Hash::default()
            .str("openai")
            .str(&self.model)
            .str(&p.template)
            .str(&p.verbalisers.join("\u{1f}"))
            .bytes(&(p.max_chars as u64).to_le_bytes())
            .bytes(&[p.chat as u8])
            .str(&self.labels.join("\u{1f}"))
    }

    /// Every text of `texts` scored, `concurrency` at a time; `done(i, score)` runs on this thread in the
    /// order answers arrive. After a failure no new request starts, answers already in flight are still
    /// passed to `done`, and the first error is returned.
    fn score_all(&self, texts: &[&str], done: &mut dyn FnMut(usize, Score) -> Result<()>) -> Result<()> {
        let next = AtomicUsize::new(0);
        let stop = AtomicBool::new(false);
        let (tx, rx) = mpsc::channel::<(usize, Result<Score>)>();
        std::thread::scope(|s| {
            for worker in 0..self.options.concurrency.min(texts.len()) {
                let (tx, next, stop) = (tx.clone(), &next, &stop);
                s.spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        if i >= texts.len() {
                            break;
                        }
                        let r = self.score_with(texts[i], i, worker);
                        let failed = r.is_err();
                        if tx.send((i, r)).is_err() || failed {
                            stop.store(true, Ordering::Relaxed);
                            break;
                        }
                    }
                });
            }
            drop(tx);
            let mut first: Option<Error> = None;
            for (i, r) in rx {
                let r = r.and_then(|score| done(i, score));
                if let Err(e) = r {
                    stop.store(true, Ordering::Relaxed);
                    first.get_or_insert(e);
                }
            }
            first.map_or(Ok(()), Err)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn teacher(verbs: &[&str]) -> ServerTeacher {
        let prompt = LlmPrompt { template: "{text}".into(), verbalisers: verbs.iter().map(|s| s.to_string()).collect(), max_chars: 100, chat: true, vector: None };
        let agent = ureq::Agent::config_builder().build().new_agent();
        ServerTeacher {
            options: ServerOptions::parse("http://127.0.0.1:1").unwrap(),
            model: "m".into(),
            labels: verbs.iter().map(|s| s.to_string()).collect(),
            prompt,
            agent,
            key: None,
            mode: AtomicU8::new(MODE_UNKNOWN),
            schema_form: AtomicU8::new(SCHEMA_UNKNOWN),
            schema_known: AtomicBool::new(false),
            next_slot: Mutex::new(Instant::now()),
            requests: AtomicUsize::new(0),
        }
    }

    #[test]
    fn urls_models_and_modes_parse() {
        let o = ServerOptions::parse("http://a:8080,https://b.example/openai/v1/#m1").unwrap();
        assert_eq!(o.urls, ["http://a:8080/v1", "https://b.example/openai/v1"]);
        assert_eq!(o.model.as_deref(), Some("m1"));
        assert!(ServerOptions::parse("ftp://a").is_err());
        assert!(ServerOptions::parse("http://").is_err());
        assert_eq!("generate".parse::<ServerMode>().unwrap(), ServerMode::Generate);
        assert!("x".parse::<ServerMode>().is_err());
    }

    #[test]
    fn first_tokens_become_label_probabilities() {
        let t = teacher(&["positive", "negative", "neutral"]);
        let lp = |p: f32| p.ln();
        // "ne" could begin two verbalisers: it counts for neither.
        let p = t.label_probs(&[("Positive".into(), lp(0.5)), (" positive".into(), lp(0.1)), ("Neg".into(), lp(0.2)), ("ne".into(), lp(0.1))]).unwrap();
        // neutral is unlisted: the 0.1 outside the list, capped by the least listed (0.1).
        let expect = [0.6, 0.2, 0.1];
        let sum: f32 = expect.iter().sum();
        for (a, e) in p.iter().zip(expect) {
            assert!((a - e / sum).abs() < 1e-6, "{p:?}");
        }
        assert!(t.label_probs(&[("The".into(), lp(0.9))]).is_none());
    }

    #[test]
    fn free_answers_match_verbalisers() {
        let t = teacher(&["sport", "business", "tech"]);
        assert_eq!(t.match_answer("Sport.").p, vec![1.0, 0.0, 0.0]);
        assert_eq!(t.match_answer("The category is business").p, vec![0.0, 1.0, 0.0]);
        let s = t.match_answer("I cannot tell");
        assert_eq!(s.via, Via::Unparsed);
        assert!((s.p.iter().sum::<f32>() - 1.0).abs() < 1e-6);
    }
}
