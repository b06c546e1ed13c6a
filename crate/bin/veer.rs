//! `veer`: the native command-line tool. Every command prints one JSON object on stdout, so it doubles
//! as the test oracle for the browser build.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use serde_json::json;
use veer::backend::{self, DeviceChoice};
use veer::bert::Pooling;
use veer::convert::{self, OutDtype};
use veer::encoder::{self, Encoder};
use veer::generate::{self, GenerateParams, Generation, Message};
use veer::icv;
use veer::llama::{Plain, Steer};
use veer::sample::SamplingParams;
use veer::steer::{Injection, Steering, Vector};
use veer::{Error, Result, gguf, tokenizer};

#[derive(Parser)]
#[command(name = "veer", version, about = "Language models in the browser, and natively")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum Dtype {
    F16,
    F32,
}

impl From<Dtype> for OutDtype {
    fn from(d: Dtype) -> Self {
        match d {
            Dtype::F16 => OutDtype::F16,
            Dtype::F32 => OutDtype::F32,
        }
    }
}

#[derive(Subcommand)]
enum Command {
    /// Convert a llama.cpp GGUF file into an HF folder (config.json, model.safetensors, tokenizer files).
    ConvertGguf {
        input: PathBuf,
        out_dir: PathBuf,
        #[arg(long, value_enum, default_value = "f16")]
        dtype: Dtype,
    },
    /// Token ids of each text with a folder's tokenizer.json.
    Tokenize {
        #[arg(long)]
        model: PathBuf,
        /// Add the model's special tokens ([CLS]/[SEP] for BERT).
        #[arg(long)]
        special: bool,
        /// Texts; `-` reads one text per line from stdin.
        texts: Vec<String>,
    },
    /// Sentence embeddings from a BERT-family folder (mean pooling, L2-normalised by default).
    Embed {
        #[command(flatten)]
        enc: EncoderArgs,
        /// Texts; `-` reads one text per line from stdin.
        texts: Vec<String>,
    },
    /// Label scores from a BERT/DistilBERT sequence-classification folder.
    Classify {
        #[command(flatten)]
        enc: EncoderArgs,
        /// Texts; `-` reads one text per line from stdin.
        texts: Vec<String>,
    },
    /// Encoder throughput (texts/s) for each batch size, texts of exactly --max-len tokens.
    Bench {
        #[command(flatten)]
        enc: EncoderArgs,
        /// Batch sizes to measure.
        #[arg(long = "batch", default_values_t = [1, 8])]
        batches: Vec<usize>,
        /// Minimum measuring time per batch size, in seconds.
        #[arg(long, default_value_t = 3.0)]
        seconds: f64,
    },
    /// Generate text with a Llama-family folder, optionally steered by vectors.
    Generate {
        #[arg(long)]
        model: PathBuf,
        #[arg(long)]
        prompt: String,
        /// Wrap the prompt as one user message with the model's chat template.
        #[arg(long)]
        chat: bool,
        #[arg(long, default_value_t = 64)]
        max_tokens: usize,
        /// 0 = greedy.
        #[arg(long, default_value_t = 0.0)]
        temperature: f32,
        #[arg(long, default_value_t = 1.0)]
        top_p: f32,
        #[arg(long, default_value_t = 0)]
        top_k: usize,
        #[arg(long, default_value_t = 1.0)]
        repetition_penalty: f32,
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Stop strings (repeatable).
        #[arg(long)]
        stop: Vec<String>,
        /// Steering vector file, optionally with a strength: FILE[:STRENGTH] (repeatable).
        #[arg(long)]
        vector: Vec<String>,
        /// How vectors act: icv (at MLP outputs) or residual (added to block outputs).
        #[arg(long)]
        mode: Option<String>,
        /// Layers that vectors act on, as START..END (default all).
        #[arg(long)]
        layers: Option<String>,
        #[arg(long, default_value = "cpu")]
        device: String,
        /// Print each piece to stderr as it is generated.
        #[arg(long)]
        stream: bool,
    },
    /// Compute an in-context vector from demonstration pairs (JSONL lines `{"from": x, "to": y}`).
    Vector {
        #[arg(long)]
        model: PathBuf,
        #[arg(long)]
        pairs: PathBuf,
        #[arg(long)]
        out: PathBuf,
        #[arg(long, default_value = "pca")]
        method: String,
        #[arg(long, default_value = "cpu")]
        device: String,
    },
    /// Vector arithmetic: add A B, sub A B, scale A K, normalize A.
    VectorOp {
        #[arg(value_parser = ["add", "sub", "scale", "normalize"])]
        op: String,
        a: PathBuf,
        /// The second vector file (add, sub) or the factor (scale).
        b: Option<String>,
        #[arg(long)]
        out: PathBuf,
    },
    /// Train a small classifier from gold labels, a teacher classifier or the LM (zero-shot), and export
    /// it as a folder the browser loads (plus head.safetensors and report.json).
    Distill(Box<DistillArgs>),
    /// Encoder folder + head.safetensors (from `veer distill`) → a complete classifier folder.
    Pack {
        #[arg(long)]
        encoder: PathBuf,
        #[arg(long)]
        head: PathBuf,
        #[arg(long)]
        out: PathBuf,
        #[arg(long, value_enum, default_value = "f16")]
        dtype: Dtype,
    },
    /// Report the device that `--device` resolves to and check that it computes.
    Device {
        #[arg(long, default_value = "cpu")]
        device: String,
    },
}

#[derive(clap::Args)]
struct DistillArgs {
    /// CSV file with a header row.
    #[arg(long)]
    data: PathBuf,
    /// A separate CSV test split (default: --test-fraction of --data is held out).
    #[arg(long)]
    test: Option<PathBuf>,
    #[arg(long, default_value = "text")]
    text_col: String,
    /// Gold labels (needed for --teacher gold and for test scores).
    #[arg(long)]
    label_col: Option<String>,
    /// Rename label values, OLD=NEW (repeatable), e.g. great=positive.
    #[arg(long)]
    rename: Vec<String>,
    /// Label names in id order, comma-separated (default: the sorted gold labels).
    #[arg(long, value_delimiter = ',')]
    labels: Option<Vec<String>>,
    /// gold | a classifier folder | llm:FOLDER (decoder LM, zero-shot).
    #[arg(long, default_value = "gold")]
    teacher: String,
    /// llkd | all | random
    #[arg(long, default_value = "all")]
    select: String,
    /// Fraction of the pool the student learns from (random, llkd).
    #[arg(long, default_value_t = 1.0)]
    budget: f64,
    #[arg(long, default_value_t = 5)]
    rounds: usize,
    /// The student's frozen sentence encoder.
    #[arg(long, default_value = "www/models/all-minilm-l6-v2")]
    encoder: PathBuf,
    #[arg(long, default_value_t = 256)]
    max_len: usize,
    /// Encoder states the head reads, pooled and concatenated (0 = embeddings … N = last layer).
    #[arg(long, value_delimiter = ',')]
    layers: Vec<usize>,
    #[arg(long)]
    out: PathBuf,
    /// Embeddings and LM labels are cached here (resumable).
    #[arg(long, default_value = ".cache/distill")]
    cache: PathBuf,
    #[arg(long, value_enum, default_value = "f16")]
    dtype: Dtype,
    /// Hidden units of an MLP head (0: linear head).
    #[arg(long, default_value_t = 0)]
    hidden: usize,
    #[arg(long, default_value_t = 3e-3)]
    lr: f64,
    #[arg(long, default_value_t = 1e-4)]
    weight_decay: f64,
    #[arg(long, default_value_t = 200)]
    epochs: usize,
    #[arg(long, default_value_t = 15)]
    patience: usize,
    #[arg(long, default_value_t = 32)]
    batch_size: usize,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    #[arg(long, default_value_t = 0.2)]
    test_fraction: f64,
    #[arg(long, default_value_t = 0.1)]
    val_fraction: f64,
    /// Use at most this many pool texts (bounds the LM teacher's cost).
    #[arg(long)]
    limit: Option<usize>,
    #[arg(long)]
    test_limit: Option<usize>,
    /// Also compare selections at these budgets (comma-separated), written to report.json.
    #[arg(long, value_delimiter = ',')]
    compare: Vec<f64>,
    /// Seeds per randomised comparison cell.
    #[arg(long, default_value_t = 3)]
    seeds: u64,
    /// LM teacher: the prompt ({text}, {labels} are filled in).
    #[arg(long, default_value = veer::distill::teacher::DEFAULT_TEMPLATE)]
    prompt: String,
    /// LM teacher: the answer scored for each label, comma-separated, in label order (default: the labels).
    #[arg(long, value_delimiter = ',')]
    verbalisers: Option<Vec<String>>,
    /// LM teacher: characters of each text put in the prompt.
    #[arg(long, default_value_t = 600)]
    prompt_chars: usize,
    /// LM teacher: a plain completion prompt instead of the chat template.
    #[arg(long)]
    no_chat: bool,
    /// LM teacher: steer it with a vector, FILE[:STRENGTH].
    #[arg(long)]
    teacher_vector: Option<String>,
    /// cpu, wgpu (native GPU, needs the `wgpu` feature) or auto.
    #[arg(long, default_value = "cpu")]
    device: String,
    /// Student size (b): also fine-tune this many top encoder layers with the head.
    #[arg(long, default_value_t = 0)]
    finetune_layers: usize,
    #[arg(long, default_value_t = 5e-5)]
    finetune_lr: f64,
    #[arg(long, default_value_t = 1e-3)]
    finetune_head_lr: f64,
    #[arg(long, default_value_t = 3)]
    finetune_epochs: usize,
    /// Train the layers' weight matrices as LoRA adapters of this rank (0: the matrices themselves).
    /// Adapters keep the head file small; `veer pack` merges them into the encoder.
    #[arg(long, default_value_t = 0, requires = "finetune_layers")]
    finetune_rank: usize,
}

#[derive(clap::Args)]
struct EncoderArgs {
    /// An HF folder with config.json, model.safetensors and tokenizer.json.
    #[arg(long)]
    model: PathBuf,
    #[arg(long, default_value = "cpu")]
    device: String,
    /// Tokens per text including special tokens (default min(512, max_position_embeddings)).
    #[arg(long)]
    max_len: Option<usize>,
    /// Pooling for embed (default: the folder's 1_Pooling/config.json, else mean).
    #[arg(long, value_enum)]
    pooling: Option<PoolingArg>,
    /// Skip L2 normalisation of embeddings.
    #[arg(long)]
    no_normalize: bool,
    #[arg(long, default_value_t = 16)]
    batch_size: usize,
}

#[derive(Clone, Copy, ValueEnum)]
enum PoolingArg {
    Mean,
    Cls,
}

/// Load an encoder folder; pooling defaults follow sentence-transformers' `1_Pooling/config.json`.
fn encoder(args: &EncoderArgs) -> Result<Encoder> {
    let dir = &args.model;
    let pooling = match args.pooling {
        Some(PoolingArg::Mean) => Pooling::Mean,
        Some(PoolingArg::Cls) => Pooling::Cls,
        None => match std::fs::read(dir.join("1_Pooling/config.json")) {
            Ok(bytes) => {
                let v: serde_json::Value = serde_json::from_slice(&bytes).map_err(|e| Error::file("1_Pooling/config.json", e))?;
                if v["pooling_mode_cls_token"] == true { Pooling::Cls } else { Pooling::Mean }
            }
            Err(_) => Pooling::Mean,
        },
    };
    let options = encoder::Options { max_len: args.max_len, pooling, normalize: !args.no_normalize, batch_size: args.batch_size };
    let backend = backend::block_on(backend::select(args.device.parse()?))?;
    Encoder::load(
        &read(&dir.join("config.json"))?,
        &read(&dir.join("model.safetensors"))?,
        &read(&dir.join("tokenizer.json"))?,
        options,
        &backend.device,
    )
}

fn decoder(dir: &Path, device: &burn::tensor::Device) -> Result<generate::Model> {
    let tokenizer_config = std::fs::read(dir.join("tokenizer_config.json")).ok();
    let name = dir.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
    generate::Model::load(
        &read(&dir.join("config.json"))?,
        &read(&dir.join("model.safetensors"))?,
        &read(&dir.join("tokenizer.json"))?,
        tokenizer_config.as_deref(),
        &name,
        device,
    )
}

fn read_vector(path: &Path) -> Result<Vector> {
    Vector::from_bytes(&read(path)?, &path.display().to_string())
}

fn parse_layers(spec: &str, n: usize) -> Result<std::ops::Range<usize>> {
    let bad = || Error::Invalid(format!("--layers `{spec}`: expected START..END within 0..{n}"));
    let (a, b) = spec.split_once("..").ok_or_else(bad)?;
    let a: usize = if a.is_empty() { 0 } else { a.parse().map_err(|_| bad())? };
    let b: usize = if b.is_empty() { n } else { b.parse().map_err(|_| bad())? };
    if a >= b || b > n {
        return Err(bad());
    }
    Ok(a..b)
}

fn read(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| Error::file(path.display().to_string(), e))
}

fn write(path: &Path, bytes: &[u8]) -> Result<()> {
    std::fs::write(path, bytes).map_err(|e| Error::file(path.display().to_string(), e))
}

fn texts(args: Vec<String>) -> Result<Vec<String>> {
    if args.len() == 1 && args[0] == "-" {
        let mut input = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut input).map_err(|e| Error::file("<stdin>", e))?;
        return Ok(input.lines().map(str::to_string).collect());
    }
    Ok(args)
}

fn run(command: Command) -> Result<serde_json::Value> {
    match command {
        Command::ConvertGguf { input, out_dir, dtype } => {
            let bytes = read(&input)?;
            let file = gguf::Gguf::parse(&bytes, &input.display().to_string())?;
            let dtype = dtype.into();
            let folder = convert::convert(&file, dtype)?;
            std::fs::create_dir_all(&out_dir).map_err(|e| Error::file(out_dir.display().to_string(), e))?;
            write(&out_dir.join("config.json"), folder.config_json.as_bytes())?;
            write(&out_dir.join("model.safetensors"), &folder.model_safetensors)?;
            write(&out_dir.join("tokenizer.json"), folder.tokenizer_json.as_bytes())?;
            write(&out_dir.join("tokenizer_config.json"), folder.tokenizer_config_json.as_bytes())?;
            Ok(json!({"out_dir": out_dir, "tensors": file.tensors.len(), "safetensors_bytes": folder.model_safetensors.len()}))
        }
        Command::Tokenize { model, special, texts: args } => {
            let path = model.join("tokenizer.json");
            let tok = tokenizer::load(&read(&path)?, &path.display().to_string())?;
            let ids = texts(args)?.iter().map(|t| tokenizer::encode(&tok, t, special)).collect::<Result<Vec<_>>>()?;
            Ok(json!({"input_ids": ids}))
        }
        Command::Embed { enc, texts: args } => {
            let model = encoder(&enc)?;
            let texts = texts(args)?;
            let embeddings = backend::block_on(model.embed(&texts))?;
            Ok(json!({"embeddings": embeddings, "input_ids": model.tokenize(&texts)?}))
        }
        Command::Classify { enc, texts: args } => {
            let model = encoder(&enc)?;
            let results = backend::block_on(model.classify(&texts(args)?))?;
            let results: Vec<_> = results
                .into_iter()
                .map(|r| json!({"label": r.label, "score": r.score, "scores": r.scores.into_iter().map(|(k, v)| (k, json!(v))).collect::<serde_json::Map<_, _>>()}))
                .collect();
            Ok(json!({"results": results}))
        }
        Command::Bench { enc, batches, seconds } => {
            let model = encoder(&enc)?;
            let clock = std::time::Instant::now();
            let now = || clock.elapsed().as_secs_f64() * 1000.0;
            let results = batches
                .iter()
                .map(|&b| backend::block_on(veer::bench::encoder_throughput(&model, b, seconds * 1000.0, now)))
                .collect::<Result<Vec<_>>>()?;
            Ok(json!({"device": enc.device, "model": enc.model, "results": results}))
        }
        Command::Generate {
            model, prompt, chat, max_tokens, temperature, top_p, top_k, repetition_penalty, seed, stop, vector, mode, layers, device, stream,
        } => {
            let backend = backend::block_on(backend::select(device.parse()?))?;
            let m = decoder(&model, &backend.device)?;
            let c = &m.llama.config;
            let text = if chat {
                m.apply_chat_template(&[Message { role: "user".into(), content: prompt }], true)?
            } else {
                prompt
            };
            let prompt_ids = m.encode(&text)?;
            let mut vectors = Vec::new();
            for spec in &vector {
                let (file, strength) = match spec.rsplit_once(':') {
                    Some((f, s)) if s.parse::<f32>().is_ok() => (f.to_string(), s.parse::<f32>().ok()),
                    _ => (spec.clone(), None),
                };
                let mut v = read_vector(Path::new(&file))?;
                v.fit(c.num_hidden_layers, c.hidden_size, &file)?;
                let s = strength.unwrap_or(v.default_strength);
                vectors.push((v, s));
            }
            let steering = match vectors.first() {
                Some((first, _)) => {
                    let injection: Injection = match &mode {
                        Some(m) => m.parse()?,
                        None => first.injection,
                    };
                    let range = match &layers {
                        Some(spec) => parse_layers(spec, c.num_hidden_layers)?,
                        None => 0..c.num_hidden_layers,
                    };
                    Some(Steering::new(&vectors, injection, range, &backend.device)?)
                }
                None => None,
            };
            let steer: &dyn Steer = match &steering {
                Some(s) => s,
                None => &Plain,
            };
            let params = GenerateParams {
                max_tokens,
                sampling: SamplingParams { temperature, top_k, top_p, repetition_penalty, seed },
                stop,
                stop_ids: Vec::new(),
            };
            let t0 = std::time::Instant::now();
            let mut g = backend::block_on(Generation::start(&m, prompt_ids.clone(), params, steer))?;
            let prefill_s = t0.elapsed().as_secs_f64();
            let t1 = std::time::Instant::now();
            while let Some(piece) = backend::block_on(g.next(&m, steer))? {
                if stream {
                    eprint!("{}", piece.text);
                }
            }
            let decode_s = t1.elapsed().as_secs_f64();
            if stream {
                eprintln!();
            }
            // The first token comes from the prefill's logits; the rest are one forward each.
            let steps = g.ids().len().saturating_sub(1).max(1);
            Ok(json!({
                "ids": g.ids(), "text": g.text(), "prompt_ids": prompt_ids, "finish": g.finish,
                "prefill_tokens_per_s": prompt_ids.len() as f64 / prefill_s,
                "tokens_per_s": steps as f64 / decode_s,
            }))
        }
        Command::Vector { model, pairs, out, method, device } => {
            let backend = backend::block_on(backend::select(device.parse()?))?;
            let m = decoder(&model, &backend.device)?;
            let text = String::from_utf8(read(&pairs)?).map_err(|e| Error::file(pairs.display().to_string(), e))?;
            let mut ids = Vec::new();
            for (n, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
                let v: serde_json::Value = serde_json::from_str(line).map_err(|e| Error::file(pairs.display().to_string(), format!("line {}: {e}", n + 1)))?;
                let field = |k: &str| {
                    v[k].as_str().map(str::to_string).ok_or_else(|| Error::file(pairs.display().to_string(), format!("line {}: needs string field `{k}`", n + 1)))
                };
                ids.push((m.encode(&field("from")?)?, m.encode(&field("to")?)?));
            }
            let vector = backend::block_on(icv::compute(&m.llama, &ids, method.parse()?, &m.name))?;
            write(&out, &vector.to_safetensors()?)?;
            let norms: Vec<f32> = vector.layers.iter().map(|l| l.iter().map(|x| x * x).sum::<f32>().sqrt()).collect();
            Ok(json!({"out": out, "pairs": ids.len(), "method": vector.method, "layer_norms": norms}))
        }
        Command::VectorOp { op, a, b, out } => {
            let va = read_vector(&a)?;
            let need = || b.clone().ok_or_else(|| Error::Invalid(format!("`{op}` needs a second argument")));
            let result = match op.as_str() {
                "add" => va.add(&read_vector(Path::new(&need()?))?)?,
                "sub" => va.sub(&read_vector(Path::new(&need()?))?)?,
                "scale" => va.scale(need()?.parse().map_err(|_| Error::Invalid("scale factor must be a number".into()))?),
                _ => va.normalize(),
            };
            write(&out, &result.to_safetensors()?)?;
            Ok(json!({"out": out, "method": result.method}))
        }
        Command::Distill(a) => {
            let rename = a
                .rename
                .iter()
                .map(|r| r.split_once('=').map(|(k, v)| (k.to_string(), v.to_string())).ok_or_else(|| Error::Invalid(format!("--rename `{r}`: expected OLD=NEW"))))
                .collect::<Result<_>>()?;
            let vector = match &a.teacher_vector {
                Some(spec) => Some(match spec.rsplit_once(':') {
                    Some((f, s)) if s.parse::<f32>().is_ok() => (PathBuf::from(f), s.parse().unwrap_or(0.1)),
                    _ => {
                        let v = read_vector(Path::new(spec))?;
                        (PathBuf::from(spec), v.default_strength)
                    }
                }),
                None => None,
            };
            let labels_for_verbalisers = a.labels.clone();
            let prompt = veer::distill::teacher::LlmPrompt {
                template: a.prompt.clone(),
                verbalisers: a.verbalisers.clone().or(labels_for_verbalisers).unwrap_or_default(),
                max_chars: a.prompt_chars,
                chat: !a.no_chat,
                vector,
            };
            if a.teacher.starts_with("llm:") && prompt.verbalisers.is_empty() {
                return Err(Error::Invalid("--teacher llm:… needs --labels (or --verbalisers) so the prompt can name them".into()));
            }
            let options = veer::distill::Options {
                data: a.data,
                test: a.test,
                text_col: a.text_col,
                label_col: a.label_col,
                rename,
                labels: a.labels,
                teacher: veer::distill::teacher::Teacher::parse(&a.teacher, prompt)?,
                select: a.select.parse()?,
                budget: a.budget,
                rounds: a.rounds,
                encoder: a.encoder,
                max_len: a.max_len,
                layers: a.layers,
                out: a.out,
                cache: a.cache,
                dtype: a.dtype.into(),
                train: veer::distill::train::TrainOptions {
                    hidden: a.hidden,
                    lr: a.lr,
                    weight_decay: a.weight_decay,
                    batch: a.batch_size,
                    epochs: a.epochs,
                    patience: a.patience,
                    seed: a.seed,
                    ..Default::default()
                },
                seed: a.seed,
                test_fraction: a.test_fraction,
                val_fraction: a.val_fraction,
                limit: a.limit,
                test_limit: a.test_limit,
                compare: a.compare,
                seeds: a.seeds,
                finetune: (a.finetune_layers > 0).then(|| veer::distill::finetune::FineTuneOptions {
                    layers: a.finetune_layers,
                    lr: a.finetune_lr,
                    head_lr: a.finetune_head_lr,
                    weight_decay: 0.01,
                    epochs: a.finetune_epochs,
                    batch: 16,
                    seed: a.seed,
                    rank: a.finetune_rank,
                }),
                device: {
                    let b = backend::block_on(backend::select(a.device.parse()?))?;
                    if let Some(why) = &b.fallback_reason {
                        eprintln!("distill: on the CPU ({why})");
                    }
                    b.device
                },
            };
            veer::distill::run(&options)
        }
        Command::Pack { encoder, head, out, dtype } => {
            let dtype = dtype.into();
            let packed = veer::distill::export::pack(&encoder, &head, &out, dtype)?;
            Ok(json!({"out_dir": out, "labels": packed.labels, "head_params": packed.head_params, "model_bytes": packed.model_bytes}))
        }
        Command::Device { device } => {
            let choice: DeviceChoice = device.parse()?;
            let b = backend::block_on(backend::select(choice))?;
            let max_diff = backend::block_on(backend::self_check(&b))?;
            Ok(json!({"device": b.kind.name(), "fallback_reason": b.fallback_reason, "self_check_max_abs_diff": max_diff}))
        }
    }
}

fn main() -> ExitCode {
    match run(Cli::parse().command) {
        Ok(out) => {
            println!("{out}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("veer: {e}");
            ExitCode::FAILURE
        }
    }
}
