//! tokenizer.json loading and encoding through the `tokenizers` crate (identical natively and in wasm).

use tokenizers::Tokenizer;

use crate::error::{Error, Result};

/// Build a tokenizer from the bytes of an HF `tokenizer.json`; `file` names it in errors.
pub fn load(bytes: &[u8], file: &str) -> Result<Tokenizer> {
    crate::error::reject_html(bytes, file, "tokenizer.json")?;
    Tokenizer::from_bytes(bytes).map_err(|e| Error::file(file, format!("not a valid tokenizer.json: {e}")))
}

/// Token ids of `text`; `special` adds the model's special tokens ([CLS]/[SEP] for BERT).
pub fn encode(tokenizer: &Tokenizer, text: &str, special: bool) -> Result<Vec<u32>> {
    tokenizer
        .encode(text, special)
        .map(|e| e.get_ids().to_vec())
        // The message never quotes the text: pages report errors to their servers, and the text is the user's.
        .map_err(|e| Error::Tokenizer(format!("could not encode a text of {} bytes: {e}", text.len())))
}
