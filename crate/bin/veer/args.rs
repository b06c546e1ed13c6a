//! The command line: clap derives every flag, with defaults read from the library's `Default`s.

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use veer::apps::distill::finetune::FineTuneOptions;
use veer::base::options::{DecoderOptions, EncoderOptions, GenerateOptions, SteerTerm, TrainOptions};
use veer::io::safetensors::OutDtype;

#[derive(Parser)]
#[command(name = "veer", version, about = "Language models in the browser, and natively")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Convert a llama.cpp GGUF file into an HF folder (config.json, model.safetensors, tokenizer files).
    ConvertGguf {
        input: PathBuf,
        out_dir: PathBuf,
        /// f16 (default), f32, q8 (the GGUF's Q8_0 blocks or int8 groups of 32) or q4 (its Q4_1 blocks
        /// or 4-bit groups; embeddings int8): docs/models.md, "Quantised files".
        #[arg(long, value_enum, default_value = "f16")]
        dtype: OutDtype,
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
    /// This machine's single-thread bounds: read bandwidth, f32 and int8-kernel throughput (JSON).
    Roofline,
    /// Generate text with a Llama-family folder, optionally steered by vectors.
    Generate {
        #[arg(long)]
        model: PathBuf,
        /// The text to continue (with --chat: one user message).
        #[arg(long, required_unless_present = "messages", conflicts_with = "messages")]
        prompt: Option<String>,
        /// A JSON file of OpenAI-style messages, `[{"role": "system"|"user"|"assistant", "content": …}]`,
        /// rendered by the model's chat template with the assistant's turn opened.
        #[arg(long)]
        messages: Option<PathBuf>,
        #[command(flatten)]
        options: GenerateOptions,
        #[command(flatten)]
        load: DecoderOptions,
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
        /// The strength the file suggests (`defaultStrength`): what `make steer-eval` supports for this
        /// vector (see www/vectors/defaults.json). Default 0.1.
        #[arg(long)]
        default_strength: Option<f32>,
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
    /// Train a classifier head on an encoder from labelled examples, JSONL lines `{"text", "label"}`:
    /// the code path of the browser's `trainClassifier` (same options, same head for the same data and
    /// seed). Writes head.safetensors; with --test (same format), reports accuracy and scores.
    Train {
        #[arg(long)]
        encoder: PathBuf,
        #[arg(long)]
        data: PathBuf,
        #[arg(long)]
        out: PathBuf,
        #[arg(long)]
        test: Option<PathBuf>,
        /// `trainClassifier`'s options as JSON: `{"epochs", "seed", "hidden", "learningRate",
        /// "batchSize", "patience", "holdout", "classWeights"}`.
        #[arg(long, default_value = "{}")]
        options: String,
        /// Label order (default: order of first appearance in --data).
        #[arg(long, value_delimiter = ',')]
        labels: Vec<String>,
        #[arg(long, default_value = "cpu")]
        device: String,
    },
    /// Encoder folder (+ head.safetensors from `veer distill`) → a complete classifier folder, or
    /// without --head the encoder folder again (e.g. `--dtype q8`: int8 matrices, docs/models.md).
    Pack {
        #[arg(long)]
        encoder: PathBuf,
        #[arg(long)]
        head: Option<PathBuf>,
        #[arg(long)]
        out: PathBuf,
        #[arg(long, value_enum, default_value = "f16")]
        dtype: OutDtype,
    },
    /// Steering efficacy (bench/steer/eval.json): every method and strength on the prompt set, scored
    /// by a judge classifier, perplexity, degenerate rate and MiniLM similarity. Writes OUT.json,
    /// OUT.md and OUT.svg.
    SteerEval {
        #[arg(long)]
        config: PathBuf,
        /// Output path without extension.
        #[arg(long)]
        out: PathBuf,
        /// A few prompts of each kind, unsteered and each attribute's `quick` ICV strengths.
        #[arg(long)]
        quick: bool,
        /// Render OUT.md and OUT.svg again from an earlier run's OUT.json instead of running.
        #[arg(long)]
        replot: bool,
        #[arg(long, default_value = "cpu")]
        device: String,
    },
    /// Report the device that `--device` resolves to and check that it computes.
    Device {
        #[arg(long, default_value = "cpu")]
        device: String,
    },
}

#[derive(clap::Args)]
pub struct DistillArgs {
    /// CSV file with a header row.
    #[arg(long)]
    pub data: PathBuf,
    /// A separate CSV test split (default: --test-fraction of --data is held out).
    #[arg(long)]
    pub test: Option<PathBuf>,
    #[arg(long, default_value = "text")]
    pub text_col: String,
    /// Gold labels (needed for --teacher gold and for test scores).
    #[arg(long)]
    pub label_col: Option<String>,
    /// Rename label values, OLD=NEW (repeatable), e.g. great=positive.
    #[arg(long)]
    pub rename: Vec<String>,
    /// Label names in id order, comma-separated (default: the sorted gold labels).
    #[arg(long, value_delimiter = ',')]
    pub labels: Option<Vec<String>>,
    /// gold | a classifier folder | llm:FOLDER (decoder LM, zero-shot) | openai:URL[,URL…][#MODEL] (an
    /// OpenAI-compatible server, zero-shot).
    #[arg(long, default_value = "gold")]
    pub teacher: String,
    /// openai teacher: requests in flight at once, over all its servers.
    #[arg(long, default_value_t = 4)]
    pub concurrency: usize,
    /// openai teacher: retries of a failed request (connection, 408/409/429/5xx), with backoff.
    #[arg(long, default_value_t = 6)]
    pub retries: u32,
    /// openai teacher: at most this many requests per second.
    #[arg(long)]
    pub rate: Option<f64>,
    /// openai teacher: seconds one request may take.
    #[arg(long, default_value_t = 120)]
    pub request_timeout: u64,
    /// openai teacher: the environment variable with an API key (sent as a bearer token when set).
    #[arg(long, default_value = "OPENAI_API_KEY")]
    pub api_key_env: String,
    /// openai teacher: auto (log-probabilities where the server gives them), logprobs or generate.
    #[arg(long, default_value = "auto")]
    pub teacher_mode: veer::apps::distill::server::options::ServerMode,
    /// llkd | all | random
    #[arg(long, default_value = "all")]
    pub select: String,
    /// Fraction of the pool the student learns from (random, llkd).
    #[arg(long, default_value_t = 1.0)]
    pub budget: f64,
    #[arg(long, default_value_t = 5)]
    pub rounds: usize,
    /// The student's frozen sentence encoder.
    #[arg(long, default_value = "www/models/all-minilm-l6-v2")]
    pub encoder: PathBuf,
    #[arg(long, default_value_t = 256)]
    pub max_len: usize,
    /// Encoder states the head reads, pooled and concatenated (0 = embeddings … N = last layer).
    #[arg(long, value_delimiter = ',')]
    pub layers: Vec<usize>,
    #[arg(long)]
    pub out: PathBuf,
    /// Embeddings and LM labels are cached here (resumable).
    #[arg(long, default_value = ".cache/distill")]
    pub cache: PathBuf,
    #[arg(long, value_enum, default_value = "f16")]
    pub dtype: OutDtype,
    #[command(flatten)]
    pub train: TrainOptions,
    #[arg(long, default_value_t = 0.2)]
    pub test_fraction: f64,
    #[arg(long, default_value_t = 0.1)]
    pub val_fraction: f64,
    /// Use at most this many pool texts (bounds the LM teacher's cost).
    #[arg(long)]
    pub limit: Option<usize>,
    #[arg(long)]
    pub test_limit: Option<usize>,
    /// Also compare selections at these budgets (comma-separated), written to report.json.
    #[arg(long, value_delimiter = ',')]
    pub compare: Vec<f64>,
    /// Seeds per randomised comparison cell.
    #[arg(long, default_value_t = 3)]
    pub seeds: u64,
    /// LM teacher: the prompt ({text}, {labels} are filled in).
    #[arg(long, default_value = veer::apps::distill::prompt::DEFAULT_TEMPLATE)]
    pub prompt: String,
    /// LM teacher: the answer scored for each label, comma-separated, in label order (default: the labels).
    #[arg(long, value_delimiter = ',')]
    pub verbalisers: Option<Vec<String>>,
    /// LM teacher: characters of each text put in the prompt.
    #[arg(long, default_value_t = 600)]
    pub prompt_chars: usize,
    /// LM teacher: a plain completion prompt instead of the chat template.
    #[arg(long)]
    pub no_chat: bool,
    /// LM teacher: steer it with a vector, FILE[:STRENGTH].
    #[arg(long)]
    pub teacher_vector: Option<SteerTerm>,
    /// cpu, wgpu (native GPU, needs the `wgpu` feature) or auto.
    #[arg(long, default_value = "cpu")]
    pub device: String,
    #[command(flatten)]
    pub finetune: FineTuneOptions,
}

#[derive(clap::Args)]
pub struct EncoderArgs {
    /// An HF folder with config.json, model.safetensors and tokenizer.json.
    #[arg(long)]
    pub model: PathBuf,
    /// A head.safetensors (from `veer distill`/`veer train`/the browser's `trainClassifier`) to
    /// classify with instead of the folder's own head.
    #[arg(long)]
    pub head: Option<PathBuf>,
    #[arg(long, default_value = "cpu")]
    pub device: String,
    #[command(flatten)]
    pub options: EncoderOptions,
}
