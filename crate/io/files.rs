//! The files of an HF model folder as one bundle: their bytes and the names they were fetched as (so
//! an error names `x-f16.safetensors`, not a role). The CLI reads a directory, the browser fetches the
//! same files; both hand this bundle to the same loaders, so sentence-transformers' settings
//! (1_Pooling/config.json, sentence_bert_config.json) mean the same on both.

use serde::Deserialize;

use crate::base::options::Pooling;
use crate::base::error::{Error, Result};

/// One file: its bytes and the name errors call it by (a path or URL as the user gave it).
#[derive(Debug, Clone)]
pub struct File {
    pub name: String,
    pub bytes: Vec<u8>,
}

impl File {
    /// The file as JSON of type `T`; `what` says what was expected (an HTML error page is named as such).
    pub fn json<T: serde::de::DeserializeOwned>(&self, what: &str) -> Result<T> {
        crate::base::error::reject_html(&self.bytes, &self.name, what)?;
        serde_json::from_slice(&self.bytes).map_err(|e| Error::file(&self.name, e))
    }
}

/// The roles a folder's files play, with their path inside the folder and whether a model needs them.
/// veer.js fetches by this table (a test checks that its copy agrees).
pub const ROLES: [(&str, &str, bool); 6] = [
    ("config", "config.json", true),
    ("weights", "model.safetensors", true),
    ("tokenizer", "tokenizer.json", true),
    ("tokenizerConfig", "tokenizer_config.json", false),
    ("pooling", "1_Pooling/config.json", false),
    ("sentenceBert", "sentence_bert_config.json", false),
];

#[derive(Debug, Clone)]
pub struct ModelFiles {
    pub config: File,
    pub weights: File,
    pub tokenizer: File,
    /// Chat template and special tokens (decoders).
    pub tokenizer_config: Option<File>,
    /// sentence-transformers' pooling module config.
    pub pooling: Option<File>,
    /// sentence-transformers' `max_seq_length`.
    pub sentence_bert: Option<File>,
    /// A separate classifier head (`head.safetensors` from `veer distill` or `trainClassifier`):
    /// only when the caller names one (role `head`), never looked for in a folder.
    pub head: Option<File>,
}

/// The parts of sentence-transformers' configs that change an embedding.
#[derive(Deserialize)]
struct PoolingConfig {
    #[serde(default)]
    pooling_mode_cls_token: bool,
    #[serde(default)]
    pooling_mode_mean_tokens: bool,
}

#[derive(Deserialize)]
struct SentenceBertConfig {
    max_seq_length: Option<usize>,
}

impl ModelFiles {
    /// The three files every model has, named by their usual file names (code and tests that hold bytes).
    pub fn new(config: Vec<u8>, weights: Vec<u8>, tokenizer: Vec<u8>) -> Self {
        let file = |name: &str, bytes| File { name: name.to_string(), bytes };
        ModelFiles {
            config: file("config.json", config),
            weights: file("model.safetensors", weights),
            tokenizer: file("tokenizer.json", tokenizer),
            tokenizer_config: None,
            pooling: None,
            sentence_bert: None,
            head: None,
        }
    }

    /// From `(role, file)` pairs (the browser's fetches); roles as in `ROLES`.
    pub fn from_parts(parts: Vec<(String, File)>) -> Result<Self> {
        let mut slots: [Option<File>; 6] = Default::default();
        let mut head = None;
        for (role, file) in parts {
            if role == "head" {
                head = Some(file);
                continue;
            }
            let i = ROLES.iter().position(|(r, _, _)| *r == role).ok_or_else(|| {
                Error::Invalid(format!("model file role `{role}`: expected one of {}, head", ROLES.iter().map(|r| r.0).collect::<Vec<_>>().join(", ")))
            })?;
            slots[i] = Some(file);
        }
        let [config, weights, tokenizer, tokenizer_config, pooling, sentence_bert] = slots;
        let need = |f: Option<File>, i: usize| f.ok_or_else(|| Error::file(ROLES[i].1, "is missing: every model folder needs it"));
        Ok(ModelFiles { config: need(config, 0)?, weights: need(weights, 1)?, tokenizer: need(tokenizer, 2)?, tokenizer_config, pooling, sentence_bert, head })
    }

    /// Read a model folder: the required files, and the optional ones that exist.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn from_dir(dir: &std::path::Path) -> Result<Self> {
        let mut parts = Vec::new();
        for (role, path, required) in ROLES {
            let full = dir.join(path);
            let name = full.display().to_string();
            match std::fs::read(&full) {
                Ok(bytes) => parts.push((role.to_string(), File { name, bytes })),
                Err(e) if required || e.kind() != std::io::ErrorKind::NotFound => return Err(Error::file(name, e)),
                Err(_) => {}
            }
        }
        Self::from_parts(parts)
    }

    /// Pooling that sentence-transformers applies for this folder, if it says.
    pub fn pooling(&self) -> Result<Option<Pooling>> {
        let Some(f) = &self.pooling else { return Ok(None) };
        let c: PoolingConfig = f.json("a pooling config")?;
        Ok(match (c.pooling_mode_cls_token, c.pooling_mode_mean_tokens) {
            (true, _) => Some(Pooling::Cls),
            (false, true) => Some(Pooling::Mean),
            (false, false) => return Err(Error::file(&f.name, "pools neither by [CLS] nor by mean; veer supports those two")),
        })
    }

    /// sentence-transformers' truncation length for this folder, if it says.
    pub fn max_seq_length(&self) -> Result<Option<usize>> {
        let Some(f) = &self.sentence_bert else { return Ok(None) };
        Ok(f.json::<SentenceBertConfig>("sentence_bert_config.json")?.max_seq_length)
    }
}

/// One labelled text, as `veer train` and `veer steer-eval` read them (JSONL `{"text", "label"}`).
#[derive(Debug, Clone, Deserialize)]
pub struct Labelled {
    pub text: String,
    pub label: String,
}

/// A JSONL file: one value per non-blank line; an error names the file and the line. Bytes that are not
/// UTF-8 are replaced rather than refused (data files from the wild).
#[cfg(not(target_arch = "wasm32"))]
pub fn read_jsonl<T: serde::de::DeserializeOwned>(path: &std::path::Path) -> Result<Vec<T>> {
    let name = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|e| Error::file(&name, e))?;
    String::from_utf8_lossy(&bytes)
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| serde_json::from_str(l).map_err(|e| Error::file(&name, format!("line {}: {e}", i + 1))))
        .collect()
}
