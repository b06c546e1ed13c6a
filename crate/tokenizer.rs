//! tokenizer.json loading and encoding through the `tokenizers` crate (identical natively and in wasm).

use tokenizers::Tokenizer;

use crate::error::{Error, Result};

/// Build a tokenizer from the bytes of an HF `tokenizer.json`; `file` names it in errors.
pub fn load(bytes: &[u8], file: &str) -> Result<Tokenizer> {
    crate::error::reject_html(bytes, file, "tokenizer.json")?;
    // Parse the JSON first: tokenizers 0.23's decoder deserializer panics (`expect("Helper")`) on a
    // syntax error inside the `decoder` field, which a tree that is already valid JSON cannot have.
    // (Found by tests/fuzz.rs.)
    let json: serde_json::Value = serde_json::from_slice(bytes).map_err(|e| Error::file(file, format!("not valid JSON: {e}")))?;
    serde_json::from_value(json).map_err(|e| Error::file(file, format!("not a valid tokenizer.json: {e}")))
}

/// Token ids of `text`; `special` adds the model's special tokens ([CLS]/[SEP] for BERT).
pub fn encode(tokenizer: &Tokenizer, text: &str, special: bool) -> Result<Vec<u32>> {
    tokenizer
        .encode(text, special)
        .map(|e| e.get_ids().to_vec())
        // The message never quotes the text: pages report errors to their servers, and the text is the
        // user's. The tokenizer's own message is withheld too: some quote the piece they failed on
        // (BPE: "Unk token `…` not found").
        .map_err(|_| Error::Tokenizer(format!("could not encode a text of {} bytes with this tokenizer.json", text.len())))
}
