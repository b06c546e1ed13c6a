//! `veer`: the native command-line tool. Every command prints one JSON object on stdout, so it doubles
//! as the test oracle for the browser build.

mod args;

use std::path::Path;
use std::process::ExitCode;

use clap::Parser;
use serde_json::json;
use veer::base::backend::{self, Backend};
use veer::apps::distill::finetune::FineTuneOptions;
use veer::base::options::{DecoderOptions, GenerateOptions};
use veer::io::files::ModelFiles;
use veer::io::safetensors::OutDtype;
use veer::io::{convert, gguf, tokenizer};
use veer::steering::icv;
use veer::steering::spec::SteeringSpec;
use veer::steering::vector::Vector;
use veer::tasks::encode::Encoder;
use veer::tasks::generate::{self, Generation, Prompt};
use veer::{Error, Result};
use args::{Cli, Command, DistillArgs, EncoderArgs};

fn device(name: &str) -> Result<Backend> {
    backend::block_on(backend::select(name.parse()?))
}

/// Load an encoder folder as the browser does: the same files, the same defaults.
fn encoder(args: &EncoderArgs) -> Result<Encoder> {
    let mut files = ModelFiles::from_dir(&args.model)?;
    if let Some(head) = &args.head {
        files.head = Some(veer::io::files::File { name: head.display().to_string(), bytes: read(head)? });
    }
    Encoder::load(&files, &args.options, &device(&args.device)?.device)
}

fn decoder(dir: &Path, device: &burn::tensor::Device, options: &DecoderOptions) -> Result<generate::Model> {
    let name = dir.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
    generate::Model::load_with(&ModelFiles::from_dir(dir)?, &name, device, options)
}

fn read_vector(path: &Path) -> Result<Vector> {
    Vector::from_bytes(&read(path)?, &path.display().to_string())
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
        Command::ConvertGguf { input, out_dir, dtype } => convert_gguf(&input, &out_dir, dtype),
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
            Ok(json!({"embeddings": embeddings, "input_ids": model.tokenize(&texts)?, "max_length": model.max_len(), "pooling": model.pooling()}))
        }
        Command::Classify { enc, texts: args } => {
            let results = backend::block_on(encoder(&enc)?.classify(&texts(args)?))?;
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
                .map(|&b| backend::block_on(veer::tasks::bench::encoder_throughput(&model, b, seconds * 1000.0, now)))
                .collect::<Result<Vec<_>>>()?;
            Ok(json!({"device": enc.device, "model": enc.model, "results": results}))
        }
        Command::Roofline => {
            let clock = std::time::Instant::now();
            Ok(serde_json::to_value(veer::tasks::bench::roofline(|| clock.elapsed().as_secs_f64() * 1000.0)?).unwrap_or_default())
        }
        Command::Generate { model, prompt, messages, options, load, device, stream } => {
            let prompt = match (prompt, messages) {
                (Some(text), _) => Prompt::Text(text),
                (None, Some(file)) => {
                    let json = serde_json::from_slice(&read(&file)?).map_err(|e| Error::file(&file.display().to_string(), format!("not JSON: {e}")))?;
                    Prompt::from_json(json).map_err(|e| Error::file(&file.display().to_string(), e.to_string()))?
                }
                (None, None) => return Err(Error::Invalid("--prompt or --messages is required".into())),
            };
            generate(&model, prompt, &options, &load, &device, stream)
        }
        Command::Vector { model, pairs, out, method, default_strength, device } => vector(&model, &pairs, &out, &method, default_strength, &device),
        Command::VectorOp { op, a, b, out } => {
            let va = read_vector(&a)?;
            let need = || b.clone().ok_or_else(|| Error::Invalid(format!("`{op}` needs a second argument")));
            let result = match op.as_str() {
                "add" => va.add(&read_vector(Path::new(&need()?))?)?,
                "sub" => va.sub(&read_vector(Path::new(&need()?))?)?,
                "scale" => va.scale(need()?.parse().map_err(|_| Error::Invalid("scale factor must be a number".into()))?)?,
                _ => va.normalize(),
            };
            write(&out, &result.to_safetensors()?)?;
            Ok(json!({"out": out, "method": result.method}))
        }
        Command::Distill(a) => distill(*a),
        Command::Train { encoder, data, out, test, options, labels, device: name } => {
            veer::apps::train::train_head(&encoder, &data, &out, test.as_deref(), &veer::base::options::from_json(&options, "options")?, labels, &device(&name)?.device)
        }
        Command::Pack { encoder, head, out, dtype } => {
            let packed = veer::apps::distill::export::pack(&encoder, head.as_deref(), &out, dtype)?;
            Ok(json!({"out_dir": out, "labels": packed.labels, "head_params": packed.head_params, "model_bytes": packed.model_bytes}))
        }
        Command::SteerEval { config, out, quick, replot, device: name } => veer::apps::steer_eval::report::steer_eval(&config, &out, quick, replot, || Ok(device(&name)?.device)),
        Command::Device { device: name } => {
            let b = device(&name)?;
            let max_diff = backend::block_on(backend::self_check(&b))?;
            Ok(json!({"device": b.kind.name(), "fallback_reason": b.fallback_reason, "self_check_max_abs_diff": max_diff}))
        }
    }
}

fn convert_gguf(input: &Path, out_dir: &Path, dtype: OutDtype) -> Result<serde_json::Value> {
    let bytes = read(input)?;
    let file = gguf::Gguf::parse(&bytes, &input.display().to_string())?;
    let folder = convert::convert(&file, dtype)?;
    std::fs::create_dir_all(out_dir).map_err(|e| Error::file(out_dir.display().to_string(), e))?;
    write(&out_dir.join("config.json"), folder.config_json.as_bytes())?;
    write(&out_dir.join("model.safetensors"), &folder.model_safetensors)?;
    write(&out_dir.join("tokenizer.json"), folder.tokenizer_json.as_bytes())?;
    write(&out_dir.join("tokenizer_config.json"), folder.tokenizer_config_json.as_bytes())?;
    Ok(json!({"out_dir": out_dir, "tensors": file.tensors.len(), "safetensors_bytes": folder.model_safetensors.len()}))
}

fn generate(model: &Path, prompt: Prompt, options: &GenerateOptions, load: &DecoderOptions, device_name: &str, stream: bool) -> Result<serde_json::Value> {
    let backend = device(device_name)?;
    let m = decoder(model, &backend.device, load)?;
    let steering = SteeringSpec::resolve(options, |file| read_vector(Path::new(file)))?.build(&m.llama)?;
    let hook = veer::steering::hook::hook(steering.as_ref());
    let t0 = std::time::Instant::now();
    let mut g = backend::block_on(Generation::start(&m, prompt, options, hook))?;
    let prefill_s = t0.elapsed().as_secs_f64();
    let t1 = std::time::Instant::now();
    while let Some(piece) = backend::block_on(g.next(&m, hook))? {
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
        "ids": g.ids(), "text": g.text(), "prompt_ids": g.prompt(), "finish": g.finish,
        "prefill_tokens_per_s": g.prompt().len() as f64 / prefill_s,
        "tokens_per_s": steps as f64 / decode_s,
    }))
}

fn vector(model: &Path, pairs: &Path, out: &Path, method: &str, default_strength: Option<f32>, device_name: &str) -> Result<serde_json::Value> {
    let backend = device(device_name)?;
    // f32: a vector file is made once and shipped, from the model's exact weights (then used on any
    // copy of the model: q4, int8 or f32, whose signatures match).
    let m = decoder(model, &backend.device, &DecoderOptions { weights: veer::base::options::WeightFormat::F32 })?;
    let pairs: Vec<icv::Pair> = veer::io::files::read_jsonl(pairs)?;
    let ids = pairs.iter().map(|p| Ok((m.encode(&p.from)?, m.encode(&p.to)?))).collect::<Result<Vec<_>>>()?;
    let mut vector = backend::block_on(icv::compute(&m.llama, &ids, method.parse()?, &m.name))?;
    if let Some(s) = default_strength {
        if !s.is_finite() {
            return Err(Error::Invalid(format!("--default-strength {s}: expected a finite number")));
        }
        vector.default_strength = s;
    }
    write(out, &vector.to_safetensors()?)?;
    let norms: Vec<f32> = vector.layers.iter().map(|l| l.iter().map(|x| x * x).sum::<f32>().sqrt()).collect();
    Ok(json!({"out": out, "pairs": ids.len(), "method": vector.method, "layer_norms": norms}))
}

fn distill(a: DistillArgs) -> Result<serde_json::Value> {
    use veer::apps::distill::{self, prompt::LlmPrompt, teacher::Teacher};
    let rename = a
        .rename
        .iter()
        .map(|r| r.split_once('=').map(|(k, v)| (k.to_string(), v.to_string())).ok_or_else(|| Error::Invalid(format!("--rename `{r}`: expected OLD=NEW"))))
        .collect::<Result<_>>()?;
    let prompt = LlmPrompt {
        template: a.prompt.clone(),
        verbalisers: a.verbalisers.clone().or(a.labels.clone()).unwrap_or_default(),
        max_chars: a.prompt_chars,
        chat: !a.no_chat,
        vector: a.teacher_vector.clone(),
    };
    if (a.teacher.starts_with("llm:") || a.teacher.starts_with("openai:")) && prompt.verbalisers.is_empty() {
        return Err(Error::Invalid("--teacher llm:… / openai:… needs --labels (or --verbalisers) so the prompt can name them".into()));
    }
    let mut teacher = Teacher::parse(&a.teacher, prompt)?;
    if let Teacher::Server { options, .. } = &mut teacher {
        options.concurrency = a.concurrency;
        options.retries = a.retries;
        options.rate = a.rate;
        options.timeout_s = a.request_timeout;
        options.api_key_env = a.api_key_env.clone();
        options.mode = a.teacher_mode;
    }
    let backend = device(&a.device)?;
    if let Some(why) = &backend.fallback_reason {
        eprintln!("distill: on the CPU ({why})");
    }
    let seed = a.train.seed;
    let finetune = (a.finetune.layers > 0).then_some(FineTuneOptions { seed, ..a.finetune });
    let options = distill::Options {
        teacher,
        select: a.select.parse()?,
        data: a.data,
        test: a.test,
        text_col: a.text_col,
        label_col: a.label_col,
        rename,
        labels: a.labels,
        budget: a.budget,
        rounds: a.rounds,
        encoder: a.encoder,
        max_len: a.max_len,
        layers: a.layers,
        out: a.out,
        cache: a.cache,
        dtype: a.dtype,
        train: a.train,
        seed,
        test_fraction: a.test_fraction,
        val_fraction: a.val_fraction,
        limit: a.limit,
        test_limit: a.test_limit,
        compare: a.compare,
        seeds: a.seeds,
        finetune,
        device: backend.device,
    };
    distill::run(&options)
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
