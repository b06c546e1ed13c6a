//! Text generation: chat template, prefill + one-token steps over the KV cache, sampling, stop
//! conditions and incremental detokenisation. Token by token (`next`), so a caller can stream each
//! piece and abort between tokens simply by not asking for the next one.

use burn::tensor::Device;
use serde::{Deserialize, Serialize};
use tokenizers::Tokenizer;

use crate::base::backend::read_f32;
use crate::base::limits::{TEMPLATE_FUEL, TEMPLATE_OUTPUT_MAX};
use crate::base::error::{Error, Result};
use crate::io::files::ModelFiles;
use crate::models::llama::Llama;
use crate::models::llama::cache::Cache;
use crate::models::llama::config::Config;
use crate::models::llama::hook::Steer;
use crate::base::options::{DecoderOptions, GenerateOptions};
use crate::tasks::sample::Sampler;

/// A decoder with its tokenizer and chat template: everything loaded from one HF folder.
pub struct Model {
    pub llama: Llama,
    pub tokenizer: Tokenizer,
    chat_template: Option<String>,
    bos_token: String,
    eos_token: String,
    eos_ids: Vec<u32>,
    pub name: String,
}

/// One turn of a conversation, OpenAI-style: `system`, `user` or `assistant`, and its text.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Message {
    pub role: String,
    pub content: String,
}

/// What a generation continues: a text, or a conversation (`[{role, content}]`) that the model's chat
/// template renders with the assistant's turn opened.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Prompt {
    Text(String),
    Messages(Vec<Message>),
}

impl From<&str> for Prompt {
    fn from(text: &str) -> Self {
        Prompt::Text(text.to_string())
    }
}

impl From<&String> for Prompt {
    fn from(text: &String) -> Self {
        Prompt::Text(text.clone())
    }
}

impl Prompt {
    /// A prompt from JSON: a string or `[{role, content}]`, roles checked.
    pub fn from_json(value: serde_json::Value) -> Result<Self> {
        let prompt: Prompt = serde_json::from_value(value).map_err(|_| Error::Invalid("prompt: expected a string or [{role, content}] messages".into()))?;
        if let Prompt::Messages(messages) = &prompt {
            if messages.is_empty() {
                return Err(Error::Invalid("prompt: no messages".into()));
            }
            if let Some((i, m)) = messages.iter().enumerate().find(|(_, m)| !["system", "user", "assistant"].contains(&m.role.as_str())) {
                return Err(Error::Invalid(format!("prompt: messages[{i}].role `{}`: expected system, user or assistant", m.role.chars().take(20).collect::<String>())));
            }
        }
        Ok(prompt)
    }
}

/// The subset of tokenizer_config.json that generation needs.
#[derive(Deserialize, Default)]
struct TokenizerConfig {
    chat_template: Option<serde_json::Value>,
    bos_token: Option<serde_json::Value>,
    eos_token: Option<serde_json::Value>,
}

fn token_text(v: &Option<serde_json::Value>) -> String {
    match v {
        Some(serde_json::Value::String(s)) => s.clone(),
        Some(serde_json::Value::Object(o)) => o.get("content").and_then(|c| c.as_str()).unwrap_or_default().to_string(),
        _ => String::new(),
    }
}

impl Model {
    /// From a model folder's files (tokenizer_config.json, when present, carries the chat template).
    /// `name` is recorded in the vectors computed with this model.
    pub fn load(files: &ModelFiles, name: &str, device: &Device) -> Result<Self> {
        Self::load_with(files, name, device, &DecoderOptions::default())
    }

    /// `load` with the weights' format in memory (`DecoderOptions`).
    pub fn load_with(files: &ModelFiles, name: &str, device: &Device, options: &DecoderOptions) -> Result<Self> {
        let config = Config::parse(&files.config.bytes, &files.config.name)?;
        let tokenizer = crate::io::tokenizer::load(&files.tokenizer.bytes, &files.tokenizer.name)?;
        let tc: TokenizerConfig = match &files.tokenizer_config {
            Some(f) => f.json("tokenizer_config.json")?,
            None => TokenizerConfig::default(),
        };
        let chat_template = match tc.chat_template {
            Some(serde_json::Value::String(s)) => Some(s),
            // A list of named templates: use "default".
            Some(serde_json::Value::Array(list)) => list
                .iter()
                .find(|t| t["name"] == "default")
                .and_then(|t| t["template"].as_str())
                .map(str::to_string),
            _ => None,
        };
        let (bos_token, eos_token) = (token_text(&tc.bos_token), token_text(&tc.eos_token));
        let mut eos_ids = config.eos_ids();
        if let Some(id) = tokenizer.token_to_id(&eos_token) {
            eos_ids.push(id);
        }
        eos_ids.sort_unstable();
        eos_ids.dedup();
        let llama = Llama::load(config, &files.weights.bytes, &files.weights.name, device, options)?;
        Ok(Model { llama, tokenizer, chat_template, bos_token, eos_token, eos_ids, name: name.to_string() })
    }

    /// Render messages with the model's chat template (minijinja, as `apply_chat_template`).
    pub fn apply_chat_template(&self, messages: &[Message], add_generation_prompt: bool) -> Result<String> {
        let template = self.chat_template.as_deref().ok_or_else(|| Error::file("tokenizer_config.json", "has no chat_template"))?;
        render_chat_template(template, messages, add_generation_prompt, &self.bos_token, &self.eos_token)
    }

    /// Token ids of `text` as the model continues it (no special tokens added: templates carry them).
    pub fn encode(&self, text: &str) -> Result<Vec<u32>> {
        crate::io::tokenizer::encode(&self.tokenizer, text, false)
    }

    pub fn eos_ids(&self) -> &[u32] {
        &self.eos_ids
    }

    /// Token ids of a prompt: a text as given, or (`chat`) wrapped as one user message by the chat
    /// template; messages always through the template, the assistant's turn opened.
    pub fn prompt_ids(&self, prompt: &Prompt, chat: bool) -> Result<Vec<u32>> {
        match prompt {
            Prompt::Text(text) if chat => self.encode(&self.apply_chat_template(&[Message { role: "user".into(), content: text.clone() }], true)?),
            Prompt::Text(text) => self.encode(text),
            Prompt::Messages(messages) => self.encode(&self.apply_chat_template(messages, true)?),
        }
    }
}

/// One generated token and the text it completes (empty while a UTF-8 character is still partial).
#[derive(Debug, Clone, Serialize)]
pub struct Piece {
    pub id: u32,
    pub text: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Finish {
    Eos,
    Stop,
    MaxTokens,
    /// The model's context is full (prompt + generated tokens reached `Config::context`).
    Length,
}

/// Prompt tokens per prefill forward (see `Llama::prefill`): bounds a long prompt's attention memory
/// at 9 heads × 512 × 8192 floats (151 MB) for SmolLM2; shorter prompts run in one pass.
pub const PREFILL_CHUNK: usize = 512;

/// One request in flight: owns its KV cache, so a new request starts from nothing. The model and the
/// steering hook are passed to each step rather than borrowed, so a wasm object can own both the
/// model and the request in progress.
pub struct Generation {
    options: GenerateOptions,
    sampler: Sampler,
    cache: Cache,
    prompt: Vec<u32>,
    /// Prompt tokens taken from the previous generation's cache.
    reused: usize,
    ids: Vec<u32>,
    /// Logits for the next position, waiting to be sampled.
    pending: Option<Vec<f32>>,
    text: String,
    /// Bytes of `text` already handed out.
    emitted: usize,
    pub finish: Option<Finish>,
    /// The model it ran on: `resume` uses only a cache of the same model (a cache of another shape
    /// would fail inside the attention's concatenation).
    signature: crate::models::llama::signature::Signature,
}

impl Generation {
    /// Prefill `prompt` (a text, chat-templated when `options.chat`, or messages). `steer` is applied
    /// at every layer of every step; `options.steer` must already be in it (see `SteeringSpec`).
    pub async fn start(model: &Model, prompt: impl Into<Prompt>, options: &GenerateOptions, steer: &dyn Steer) -> Result<Generation> {
        Generation::resume(None, model, prompt, options, steer).await
    }

    /// Like `start`, continuing from `previous` (a finished or stopped generation of the same model
    /// under the same steering): the keys and values of the longest run of tokens the new prompt
    /// shares with what `previous` read are kept, and only the rest is prefilled. In a chat, the next
    /// turn's prompt repeats the conversation so far, so only the new message is computed.
    /// `reused()` says how many prompt tokens came from the cache.
    pub async fn resume(previous: Option<Generation>, model: &Model, prompt: impl Into<Prompt>, options: &GenerateOptions, steer: &dyn Steer) -> Result<Generation> {
        let sampler = Sampler::new(&options.sampler())?;
        let prompt = model.prompt_ids(&prompt.into(), options.chat)?;
        if prompt.is_empty() {
            return Err(Error::Invalid("the prompt has no tokens".into()));
        }
        let (mut cache, reused) = match previous.filter(|p| p.signature == model.llama.signature) {
            Some(p) => {
                // The cache holds the tokens read so far: the prompt and every sampled token but the
                // last (whose forward has not run).
                let read = p.prompt.iter().chain(&p.ids).take(p.cache.len());
                let shared = read.zip(&prompt).take_while(|(a, b)| a == b).count();
                // At least one token must run, for the logits of the prompt's last position.
                let keep = shared.min(prompt.len() - 1);
                let mut cache = if keep == 0 { Cache::default() } else { p.cache };
                cache.truncate(keep);
                (cache, keep)
            }
            None => (Cache::default(), 0),
        };
        let out = model.llama.prefill(&prompt[reused..], &mut cache, steer, PREFILL_CHUNK)?;
        let pending = Some(read_f32(out.logits).await?);
        Ok(Generation { options: options.clone(), sampler, cache, prompt, reused, ids: Vec::new(), pending, text: String::new(), emitted: 0, finish: None, signature: model.llama.signature.clone() })
    }

    /// Prompt tokens whose keys and values came from the previous generation (see `resume`).
    pub fn reused(&self) -> usize {
        self.reused
    }

    /// The next piece, or `None` once finished (EOS, a stop string/id, or max tokens).
    /// `model` and `steer` must be the ones the generation started with.
    pub async fn next(&mut self, model: &Model, steer: &dyn Steer) -> Result<Option<Piece>> {
        if self.finish.is_some() {
            return Ok(None);
        }
        if self.ids.len() >= self.options.max_tokens {
            self.finish = Some(Finish::MaxTokens);
            return Ok(None);
        }
        // The last sampled token still has to run to produce the next logits: it must fit the context.
        if self.pending.is_none() && self.prompt.len() + self.ids.len() > model.llama.config.context() {
            self.finish = Some(Finish::Length);
            return Ok(None);
        }
        let mut logits = match self.pending.take() {
            Some(l) => l,
            None => {
                let last = *self.ids.last().ok_or_else(|| Error::Invalid("generation has no state".into()))?;
                let out = model.llama.forward(&[last], &mut self.cache, steer, false)?;
                read_f32(out.logits).await?
            }
        };
        // NaN (or +∞) logits mean broken weights or a runaway steering strength; sampling them would
        // silently pick token 0. -∞ is a legitimate "never".
        if let Some(i) = logits.iter().position(|x| x.is_nan() || *x == f32::INFINITY) {
            return Err(Error::Invalid(format!(
                "the model produced a non-finite logit ({} for token {i}) at step {}: check the weights and the steering strengths",
                logits[i],
                self.ids.len() + 1
            )));
        }
        let history: Vec<u32> = self.prompt.iter().chain(&self.ids).copied().collect();
        let id = self.sampler.sample(&mut logits, &history);
        self.ids.push(id);
        if model.eos_ids.contains(&id) || self.options.stop_ids.contains(&id) {
            self.finish = Some(Finish::Eos);
            return Ok(Some(Piece { id, text: String::new() }));
        }
        let mut piece = self.detokenize(&model.tokenizer)?;
        if let Some(cut) = self.options.stop.iter().filter_map(|s| self.text.find(s.as_str())).min() {
            // Hand out only what precedes the stop string.
            self.finish = Some(Finish::Stop);
            let already = self.emitted - piece.len();
            piece = self.text.get(already..cut.max(already)).unwrap_or_default().to_string();
            self.text.truncate(cut);
        }
        Ok(Some(Piece { id, text: piece }))
    }

    /// New complete text since the last call; holds back a trailing partial UTF-8 character, which
    /// byte-level tokenizers decode as U+FFFD until its last byte arrives.
    fn detokenize(&mut self, tokenizer: &Tokenizer) -> Result<String> {
        let text = tokenizer.decode(&self.ids, false).map_err(|e| Error::Tokenizer(format!("decode: {e}")))?;
        if text.ends_with('\u{FFFD}') || text.len() < self.emitted || !text.is_char_boundary(self.emitted) {
            return Ok(String::new());
        }
        let piece = text[self.emitted..].to_string();
        self.emitted = text.len();
        self.text = text;
        Ok(piece)
    }

    /// The prompt's token ids.
    pub fn prompt(&self) -> &[u32] {
        &self.prompt
    }

    /// Generated ids so far (EOS included when it ended the generation).
    pub fn ids(&self) -> &[u32] {
        &self.ids
    }

    /// Generated text so far (stop string excluded).
    pub fn text(&self) -> &str {
        &self.text
    }
}

/// Several prompts decoded together under one steering, each row sampled with its own options (its
/// own seed): what an evaluation over many prompts needs (`steer_eval`), since decoding reads every
/// weight per step whatever the batch. Same prefill, sampler and EOS/`stop_ids` rules as `Generation`
/// (no stop strings, no streaming); a row that ends is carried along, its tokens ignored. Returns each
/// row's generated ids (EOS included when it ended the row).
pub async fn generate_rows(model: &Model, prompts: &[Vec<u32>], options: &[GenerateOptions], steer: &dyn Steer) -> Result<Vec<Vec<u32>>> {
    if prompts.len() != options.len() {
        return Err(Error::Invalid(format!("{} prompts with {} option sets", prompts.len(), options.len())));
    }
    if prompts.is_empty() {
        return Ok(Vec::new());
    }
    let vocab = model.llama.config.vocab_size;
    let mut samplers = options.iter().map(|o| Sampler::new(&o.sampler())).collect::<Result<Vec<_>>>()?;
    let rows: Vec<&[u32]> = prompts.iter().map(|p| p.as_slice()).collect();
    let mut cache = Cache::default();
    let mut logits = read_f32(model.llama.forward_rows(&rows, &mut cache, steer, false)?).await?; // [b * vocab]
    let mut out: Vec<Vec<u32>> = vec![Vec::new(); prompts.len()];
    let mut done: Vec<bool> = options.iter().map(|o| o.max_tokens == 0).collect();
    loop {
        let mut next = Vec::with_capacity(prompts.len());
        for (r, row) in logits.chunks_mut(vocab).enumerate() {
            if done[r] {
                next.push(0); // any id: the row's result is complete
                continue;
            }
            if let Some(i) = row.iter().position(|x| x.is_nan() || *x == f32::INFINITY) {
                return Err(Error::Invalid(format!("the model produced a non-finite logit ({} for token {i}) in row {r}: check the weights and the steering strengths", row[i])));
            }
            let history: Vec<u32> = prompts[r].iter().chain(&out[r]).copied().collect();
            let id = samplers[r].sample(row, &history);
            out[r].push(id);
            done[r] = model.eos_ids.contains(&id) || options[r].stop_ids.contains(&id) || out[r].len() >= options[r].max_tokens;
            next.push(id);
        }
        if done.iter().all(|&d| d) || cache.len() + 1 > model.llama.config.context() {
            return Ok(out);
        }
        let step: Vec<[u32; 1]> = next.iter().map(|&id| [id]).collect();
        let rows: Vec<&[u32]> = step.iter().map(|s| s.as_slice()).collect();
        logits = read_f32(model.llama.forward_rows(&rows, &mut cache, steer, false)?).await?;
    }
}

/// A chat template (from a model's tokenizer_config.json, so untrusted) rendered with fuel and an
/// output cap. minijinja itself caps `range` at 100 000 items and repeated strings at 100 MB.
pub fn render_chat_template(template: &str, messages: &[Message], add_generation_prompt: bool, bos_token: &str, eos_token: &str) -> Result<String> {
    let mut env = minijinja::Environment::new();
    minijinja_contrib::add_to_environment(&mut env);
    env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
    env.set_fuel(Some(TEMPLATE_FUEL));
    env.add_function("raise_exception", |msg: String| -> std::result::Result<String, minijinja::Error> {
        Err(minijinja::Error::new(minijinja::ErrorKind::InvalidOperation, msg))
    });
    env.add_template("chat", template).map_err(|e| Error::file("tokenizer_config.json", format!("chat_template: {e}")))?;
    let tmpl = env.get_template("chat").map_err(|e| Error::file("tokenizer_config.json", format!("chat_template: {e}")))?;
    let text = tmpl
        .render(minijinja::context! {
            messages => minijinja::value::Serde(messages),
            add_generation_prompt => add_generation_prompt,
            bos_token => bos_token,
            eos_token => eos_token,
        })
        .map_err(|e| match e.kind() {
            minijinja::ErrorKind::OutOfFuel => Error::file("tokenizer_config.json", format!("chat_template ran more than {TEMPLATE_FUEL} instructions")),
            _ => Error::Invalid(format!("chat template: {e}")),
        })?;
    if text.len() > TEMPLATE_OUTPUT_MAX {
        return Err(Error::file("tokenizer_config.json", format!("chat_template rendered {} bytes; at most {TEMPLATE_OUTPUT_MAX}", text.len())));
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn messages() -> Vec<Message> {
        vec![Message { role: "user".into(), content: "hi".into() }]
    }

    #[test]
    fn chat_templates_render_and_hostile_ones_stop_with_an_error() {
        let plain = "{% for m in messages %}<|{{ m.role }}|>{{ m.content }}{% endfor %}{% if add_generation_prompt %}<|assistant|>{% endif %}";
        assert_eq!(render_chat_template(plain, &messages(), true, "<s>", "</s>").unwrap(), "<|user|>hi<|assistant|>");
        // 10^10 iterations: stopped by fuel, quickly (it ran for minutes before).
        let t0 = std::time::Instant::now();
        let loops = "{% for i in range(100000) %}{% for j in range(100000) %}{{ i }}{% endfor %}{% endfor %}";
        let e = render_chat_template(loops, &messages(), true, "", "").unwrap_err();
        assert_eq!(e.code(), "E_FILE");
        assert!(e.to_string().contains("tokenizer_config.json") && e.to_string().contains("instructions"), "{e}");
        assert!(t0.elapsed().as_secs() < 20, "fuel took {:?}", t0.elapsed());
        // Few instructions, a large output: the output cap.
        let e = render_chat_template("{{ 'x' * 5000000 }}", &messages(), true, "", "").unwrap_err();
        assert!(e.to_string().contains("rendered 5000000 bytes"), "{e}");
        // The template error does not end the ability to render.
        assert!(render_chat_template(plain, &messages(), false, "", "").is_ok());
    }
}
