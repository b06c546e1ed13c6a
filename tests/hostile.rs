//! Hostile vector files and tokenizer.json charsmaps: each gets a clean error naming the tensor or field, before any allocation
//! sized by the file (run under a 4 GiB address-space limit these cases used to abort or panic).

mod common;

use common::gguf::{Gguf, f32_bytes};
use veer::steering::vector::Vector;
use veer::base::options::Injection;

/// A control vector with the given tensor entries, after a nested metadata array `depth` deep.
fn file(depth: usize, build: impl FnOnce(Gguf) -> Gguf) -> Vec<u8> {
    build(Gguf::default().nested("nested", depth)).bytes()
}

/// The error's code and message.
fn err(bytes: &[u8]) -> (&'static str, String) {
    let e = Vector::from_bytes(bytes, "cv.gguf").expect_err("a hostile file must be rejected");
    (e.code(), e.to_string())
}

#[test]
fn a_well_formed_control_vector_loads() {
    let v = Vector::from_bytes(&file(2, |g| g.tensor("direction.2", &[4], 0, &f32_bytes(&[1.0, 2.0, 3.0, 4.0]))), "cv.gguf").unwrap();
    assert_eq!((v.layers.len(), v.hidden(), v.layers[2][3]), (3, 4, 4.0));
}

#[test]
fn sizes_from_the_file_are_checked_before_they_are_used() {
    let data = f32_bytes(&[1.0; 4]);
    // Element count that wraps u64 (2^33 × 2^33 × 4 bytes).
    let (code, msg) = err(&file(1, |g| g.tensor_at("direction.1", &[1 << 33, 1 << 33], 0, 0)));
    assert_eq!(code, "E_TENSOR");
    assert!(msg.contains("direction.1") && msg.contains("more elements"), "{msg}");
    // A count that fits u64 but not the file.
    let (_, msg) = err(&file(1, |g| g.tensor_at("direction.1", &[1 << 40], 0, 0)));
    assert!(msg.contains("direction.1"), "{msg}");
    // An offset that wraps past the data section.
    let (code, msg) = err(&file(1, |g| g.tensor_at("direction.1", &[4], 0, u64::MAX - 8)));
    assert_eq!(code, "E_TENSOR");
    assert!(msg.contains("runs past the end"), "{msg}");
    // A zero dimension.
    let (_, msg) = err(&file(1, |g| g.tensor_at("direction.1", &[0], 0, 0)));
    assert!(msg.contains("dimension 0 is 0"), "{msg}");
    // A block index that would size a 4-billion-row vector.
    let (code, msg) = err(&file(1, |g| g.tensor("direction.4294967295", &[4], 0, &data)));
    assert_eq!(code, "E_TENSOR");
    assert!(msg.contains("direction.4294967295") && msg.contains("at most 1024 blocks"), "{msg}");
    // The same block twice.
    let (_, msg) = err(&file(1, |g| g.tensor("direction.1", &[4], 0, &data).tensor("direction.1", &[4], 0, &data)));
    assert!(msg.contains("twice"), "{msg}");
    // A wide quantised direction in the last block: 1024 rows of 65536 values (256 MiB) from a 36 KiB
    // file, refused before the rows are allocated.
    let q4 = vec![0u8; 65536 / 32 * 18];
    let (code, msg) = err(&file(1, |g| g.tensor("direction.1023", &[65536], 2, &q4)));
    assert_eq!(code, "E_FILE");
    assert!(msg.contains("65536 values") && msg.contains("at most 32768"), "{msg}");
    // Metadata arrays whose elements cost one byte each in the file but 32 parsed: bounded in all.
    let many: Vec<String> = (0..(1 << 22) + 1).map(|_| String::new()).collect();
    let refs: Vec<&str> = many.iter().map(String::as_str).collect();
    let (code, msg) = err(&Gguf::default().strings("tokenizer.ggml.tokens", &refs).tensor("direction.1", &[4], 0, &data).bytes());
    assert_eq!(code, "E_FILE");
    assert!(msg.contains("metadata array elements"), "{msg}");
    // Metadata arrays nested beyond what any GGUF writer produces.
    let (code, msg) = err(&file(50, |g| g.tensor("direction.1", &[4], 0, &data)));
    assert_eq!(code, "E_FILE");
    assert!(msg.contains("nested"), "{msg}");
}

#[test]
fn vector_values_and_strengths_must_be_finite() {
    let (code, msg) = err(&file(1, |g| g.tensor("direction.1", &[4], 0, &f32_bytes(&[1.0, f32::NAN, 0.0, 0.0]))));
    assert_eq!(code, "E_INVALID");
    assert!(msg.contains("`direction.1`") && msg.contains("index 1"), "{msg}");
    let v = Vector { layers: vec![vec![1.0, f32::INFINITY]], model: String::new(), method: "mean".into(), injection: Injection::Icv, default_strength: 0.1, pairs: 1, signature: Default::default() };
    let e = Vector::from_bytes(&v.to_safetensors().unwrap(), "v.safetensors").unwrap_err();
    assert_eq!(e.code(), "E_INVALID");
    assert!(e.to_string().contains("`layers.0`"), "{e}");
    let v = Vector { layers: vec![vec![1.0, 2.0]], default_strength: f32::NAN, ..v };
    let e = Vector::from_bytes(&v.to_safetensors().unwrap(), "v.safetensors").unwrap_err();
    assert_eq!(e.code(), "E_INVALID");
    assert!(e.to_string().contains("default_strength"), "{e}");
    // Arithmetic: a factor that is not finite, or a result that overflows, is an error.
    let v = Vector { default_strength: 0.1, layers: vec![vec![1.0, 2.0], vec![3.0, 1e30]], ..v };
    for k in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
        let e = v.scale(k).unwrap_err();
        assert_eq!(e.code(), "E_INVALID");
        assert!(e.to_string().contains("not a finite number"), "{e}");
    }
    let e = v.scale(1e10).unwrap_err();
    assert!(e.to_string().contains("layer 1, index 1"), "{e}");
    let big = v.scale(2e8).unwrap(); // 2e38: finite, but twice it is not
    assert!(big.add(&big).unwrap_err().to_string().contains("add: the result overflows at layer 1, index 1"));
    assert_eq!(v.scale(2.0).unwrap().layers[1], [6.0, 2e30]);
}

// --- tokenizer.json: a SentencePiece charsmap (Precompiled normalizer) -------------------------------

/// A word-level tokenizer.json (vocabulary `A`, `b`) behind a Precompiled normalizer with `charsmap`.
fn precompiled_tokenizer(charsmap: &[u8]) -> Vec<u8> {
    let b64 = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, charsmap);
    serde_json::to_vec(&serde_json::json!({
        "version": "1.0", "truncation": null, "padding": null, "added_tokens": [],
        "normalizer": {"type": "Sequence", "normalizers": [{"type": "Precompiled", "precompiled_charsmap": b64}]},
        "pre_tokenizer": {"type": "WhitespaceSplit"}, "post_processor": null, "decoder": null,
        "model": {"type": "WordLevel", "vocab": {"[UNK]": 0, "A": 1, "b": 2}, "unk_token": "[UNK]"},
    }))
    .unwrap()
}

/// A charsmap: `units` (u32) then the replacement strings.
fn charsmap(units: &[u32], replacements: &str) -> Vec<u8> {
    let mut out = ((units.len() * 4) as u32).to_le_bytes().to_vec();
    units.iter().for_each(|u| out.extend_from_slice(&u.to_le_bytes()));
    out.extend_from_slice(replacements.as_bytes());
    out
}

/// 512 units mapping `a` to the replacement at byte `at`: the root (offset 0) has one child, unit
/// 0x61 (label `a`, has a leaf, offset 0x100), whose leaf is unit 0x61 ^ 0x100 = 0x161.
fn map_a(at: u32) -> Vec<u32> {
    let mut units = vec![0u32; 512];
    units[0x61] = 0x61 | (1 << 8) | (0x100 << 10);
    units[0x161] = at;
    units
}

#[test]
fn a_broken_precompiled_charsmap_is_a_load_error_not_a_panic_at_the_first_encode() {
    // A well-formed charsmap: `a` becomes `A` (so the unit layout read here is the one tokenizers reads).
    let t = veer::io::tokenizer::load(&precompiled_tokenizer(&charsmap(&map_a(0), "A\0")), "tokenizer.json").unwrap();
    assert_eq!(veer::io::tokenizer::encode(&t, "a b", false).unwrap(), [1, 2]);
    for (units, replacements, want) in [
        (vec![1000 << 10], "A\0", "a key byte leads to unit"), // the root's children lie outside the trie
        (vec![], "", "the trie is empty"),
        (map_a(5), "A\0", "a replacement starts at byte 5 of 2"),
        (map_a(1), "é\0", "a replacement starts at byte 1 of 3"), // inside a character
    ] {
        let e = veer::io::tokenizer::load(&precompiled_tokenizer(&charsmap(&units, replacements)), "tokenizer.json").unwrap_err();
        assert_eq!(e.code(), "E_FILE", "{e}");
        assert!(e.to_string().contains("tokenizer.json") && e.to_string().contains("precompiled_charsmap") && e.to_string().contains(want), "{e}");
    }
    let mut short = charsmap(&map_a(0), "A\0");
    short.truncate(100);
    assert!(veer::io::tokenizer::load(&precompiled_tokenizer(&short), "tokenizer.json").unwrap_err().to_string().contains("the trie claims 512 units, the charsmap holds 24"));
}
