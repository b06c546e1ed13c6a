//! The one error type of veer. Every message names the file, tensor or field at fault and what was
//! expected, because in the browser this text is all a page author gets.

use thiserror::Error;

#[derive(Debug, Error)]
pub enum Error {
    /// A file that could not be read or parsed (`file` names it as the user gave it).
    #[error("{file}: {message}")]
    File { file: String, message: String },

    /// A tensor missing from, or of the wrong shape/dtype in, a weights file.
    #[error("tensor `{tensor}`: {message}")]
    Tensor { tensor: String, message: String },

    /// A config field that is absent, out of range or names something veer does not support.
    #[error("config `{field}`: {message}")]
    Config { field: String, message: String },

    /// The tokenizer rejected a text or could not be built.
    #[error("tokenizer: {0}")]
    Tokenizer(String),

    /// The compute device failed (WebGPU adapter missing, device lost, readback failed).
    #[error("device: {0}")]
    Device(String),

    /// A caller passed an argument the operation cannot use.
    #[error("invalid argument: {0}")]
    Invalid(String),
}

impl Error {
    pub fn file(file: impl Into<String>, message: impl std::fmt::Display) -> Self {
        Error::File { file: file.into(), message: message.to_string() }
    }
    pub fn tensor(tensor: impl Into<String>, message: impl std::fmt::Display) -> Self {
        Error::Tensor { tensor: tensor.into(), message: message.to_string() }
    }
    pub fn config(field: impl Into<String>, message: impl std::fmt::Display) -> Self {
        Error::Config { field: field.into(), message: message.to_string() }
    }
    /// Short stable code for JS (`err.code`), so pages can branch without parsing messages.
    pub fn code(&self) -> &'static str {
        match self {
            Error::File { .. } => "E_FILE",
            Error::Tensor { .. } => "E_TENSOR",
            Error::Config { .. } => "E_CONFIG",
            Error::Tokenizer(_) => "E_TOKENIZER",
            Error::Device(_) => "E_DEVICE",
            Error::Invalid(_) => "E_INVALID",
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Static hosts answer a missing file with an HTML page (often with status 200); catch that before a
/// parser reports something obscure. `what` names the file kind expected, e.g. "safetensors".
pub fn reject_html(bytes: &[u8], file: &str, what: &str) -> Result<()> {
    if bytes.first() == Some(&b'<') {
        return Err(Error::file(file, format!("starts with `<`: an HTML page (wrong URL or server error page), not {what}")));
    }
    Ok(())
}

/// A name (`"mean"`, `"icv"`, …) as one of the unit variants of a lowercase serde enum; the error says
/// which names are accepted. The `FromStr` of veer's small enums (CLI flags, JS strings) is this.
pub fn parse_name<T: serde::de::DeserializeOwned>(name: &str, what: &str) -> Result<T> {
    serde_json::from_value(serde_json::Value::String(name.to_string())).map_err(|e| Error::Invalid(format!("{what}: {e}")))
}

/// A size read from a config file: at least 1 and at most `max`. The caps sit far above any model veer
/// runs; they exist so that a hostile file cannot size an allocation or a loop.
pub fn check_size(field: &str, value: usize, max: usize) -> Result<()> {
    if value == 0 || value > max {
        return Err(Error::config(field, format!("{value}: expected 1..={max}")));
    }
    Ok(())
}

/// A constant such as an epsilon or a RoPE base: finite and positive.
pub fn check_positive(field: &str, value: f64) -> Result<()> {
    if !(value.is_finite() && value > 0.0) {
        return Err(Error::config(field, format!("{value}: expected a finite number above 0")));
    }
    Ok(())
}
