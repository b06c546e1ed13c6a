//! Every cap on hostile input in one list: sizes read from a file or a request are checked against
//! these before anything is allocated from them. Each says why its value is what it is.

/// The attention scores one encoder batch may need (bytes): MiniLM at 256 tokens allows 170 texts.
pub const ATTENTION_BYTES: usize = 512 << 20;

/// The longest sequence veer runs, whatever `max_position_embeddings` says (see `Config::context`).
pub const MAX_CONTEXT: usize = 32768;

/// Blocks a vector file may address (SmolLM2-135M has 30; the largest Llama-family models ~128).
pub const MAX_LAYERS: usize = 1024;

/// Widest vector a file may hold: the decoder's own cap on `hidden_size` (no model it could steer is
/// wider). Bounded before the rows are allocated: a GGUF `direction.1023` of a quantised type would
/// otherwise size 1024 rows from a width that costs the file a fraction of a byte per value.
pub const MAX_HIDDEN: usize = 1 << 15;

/// Labels a classifier head may have (the size of its label list comes from the weights file).
pub const MAX_LABELS: usize = 1 << 16;

/// Most examples one training takes: each keeps its features on the host (1.5 KB for MiniLM), and a
/// page that passes more is better served by `veer distill`.
pub const MAX_EXAMPLES: usize = 50_000;

/// Most pairs one vector is computed from: each keeps a (layers + 1) × hidden row of f64 (143 KB for
/// SmolLM2) and PCA works on their n × n Gram matrix, so 1024 pairs stay near 150 MB.
pub const MAX_PAIRS: usize = 1024;

/// Template instructions one rendering may execute: SmolLM2's template spends a few thousand on a short
/// conversation; a template that loops for longer is stopped with an error instead of hanging the tab.
pub const TEMPLATE_FUEL: u64 = 2_000_000;

/// The longest prompt text a template may render (bytes).
pub const TEMPLATE_OUTPUT_MAX: usize = 1 << 20;

/// Metadata arrays of arrays of arrays at most.
pub const MAX_ARRAY_DEPTH: usize = 3;

/// Metadata array elements one file may hold in all: each costs a file as little as one byte but a
/// parsed `Value` 32, so a 50 MB file of u8 arrays would take 1.6 GB. 4 M is ten times the largest
/// tokenizer (vocabulary + merges) of a Llama-family model.
pub const MAX_METADATA_ELEMENTS: usize = 1 << 22;
