//! tokenizer.json loading and encoding through the `tokenizers` crate (identical natively and in wasm).

use tokenizers::Tokenizer;

use crate::base::error::{Error, Result};

/// Build a tokenizer from the bytes of an HF `tokenizer.json`; `file` names it in errors.
pub fn load(bytes: &[u8], file: &str) -> Result<Tokenizer> {
    crate::base::error::reject_html(bytes, file, "tokenizer.json")?;
    // Parse the JSON first: tokenizers 0.23's decoder deserializer panics (`expect("Helper")`) on a
    // syntax error inside the `decoder` field, which a tree that is already valid JSON cannot have.
    // (Found by tests/fuzz.rs.)
    let json: serde_json::Value = serde_json::from_slice(bytes).map_err(|e| Error::file(file, format!("not valid JSON: {e}")))?;
    if let Some(normalizer) = json.get("normalizer") {
        check_charsmaps(normalizer, file)?;
    }
    serde_json::from_value(json).map_err(|e| Error::file(file, format!("not a valid tokenizer.json: {e}")))
}

/// Every `Precompiled` normalizer in `node` (alone or inside a `Sequence`) gets its charsmap checked.
fn check_charsmaps(node: &serde_json::Value, file: &str) -> Result<()> {
    match node {
        serde_json::Value::Object(o) => {
            if o.get("type").and_then(|t| t.as_str()) == Some("Precompiled") {
                let text = o.get("precompiled_charsmap").and_then(|c| c.as_str()).unwrap_or_default();
                let bytes = base64::Engine::decode(&base64::engine::general_purpose::STANDARD, text)
                    .map_err(|e| Error::file(file, format!("normalizer `Precompiled`: precompiled_charsmap is not base64: {e}")))?;
                check_charsmap(&bytes).map_err(|why| Error::file(file, format!("normalizer `Precompiled`: broken precompiled_charsmap: {why}")))?;
            }
            o.values().try_for_each(|v| check_charsmaps(v, file))
        }
        serde_json::Value::Array(a) => a.iter().try_for_each(|v| check_charsmaps(v, file)),
        _ => Ok(()),
    }
}

/// Longest key the normalizer looks up: a grapheme of fewer than 6 bytes (or one character).
const CHARSMAP_MAX_KEY: usize = 5;

/// SentencePiece's precompiled charsmap: a u32 trie length, a double-array trie of u32 units over UTF-8
/// bytes, then the replacement strings ('\0'-terminated). tokenizers (spm_precompiled) parses any such
/// bytes at load and indexes them unchecked at the first `encode`, so a broken charsmap panics on a
/// user's text (a trap in wasm). This walks every lookup a key of up to 5 bytes can make — every trie
/// position reachable from the root, each followed by every byte — with the unit fields decoded as
/// SentencePiece lays them out, and requires each index to be in bounds and each replacement to start
/// on a character boundary. A trie that darts-clone built passes: a node's 256 child slots lie in
/// its own 256-unit block.
fn check_charsmap(bytes: &[u8]) -> std::result::Result<(), String> {
    let head: [u8; 4] = bytes.get(..4).and_then(|b| b.try_into().ok()).ok_or("shorter than its 4-byte trie length")?;
    let units = u32::from_le_bytes(head) as usize / 4;
    // units * 4 ≤ the u32 just read, so it fits usize on wasm32 too; the slices are taken from the rest.
    let rest = &bytes[4..];
    let trie = rest.get(..units * 4).ok_or_else(|| format!("the trie claims {units} units, the charsmap holds {}", rest.len() / 4))?;
    let trie: Vec<usize> = trie.chunks_exact(4).map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]) as usize).collect();
    let normalized = std::str::from_utf8(&rest[units * 4..]).map_err(|_| "the replacements are not UTF-8".to_string())?;
    let root = *trie.first().ok_or("the trie is empty")?;
    let offset = |u: usize| (u >> 10) << ((u & (1 << 9)) >> 6);
    let label = |u: usize| u & ((1 << 31) | 0xFF);
    let has_leaf = |u: usize| (u >> 8) & 1 == 1;
    let value = |u: usize| u & ((1 << 31) - 1);
    let mut seen = std::collections::HashSet::new();
    let mut frontier = vec![offset(root)];
    for _ in 0..CHARSMAP_MAX_KEY {
        let mut next = Vec::new();
        for &p in &frontier {
            for c in 1..=255usize {
                let q = p ^ c;
                let unit = *trie.get(q).ok_or_else(|| format!("a key byte leads to unit {q} of {}", trie.len()))?;
                if label(unit) != c {
                    continue;
                }
                let child = q ^ offset(unit);
                if has_leaf(unit) {
                    let leaf = *trie.get(child).ok_or_else(|| format!("a leaf at unit {child} of {}", trie.len()))?;
                    let at = value(leaf);
                    if at > normalized.len() || !normalized.is_char_boundary(at) {
                        return Err(format!("a replacement starts at byte {at} of {} (not a character boundary)", normalized.len()));
                    }
                }
                if seen.insert(child) {
                    next.push(child);
                }
            }
        }
        frontier = next;
    }
    Ok(())
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
