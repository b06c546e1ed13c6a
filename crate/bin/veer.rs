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
    /// Report the device that `--device` resolves to and check that it computes.
    Device {
        #[arg(long, default_value = "cpu")]
        device: String,
    },
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
            let dtype = match dtype {
                Dtype::F16 => OutDtype::F16,
                Dtype::F32 => OutDtype::F32,
            };
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
