//! Throughput measurement shared by `veer bench` and the browser benchmark, so both report the same
//! quantity. Measures; never asserts.

use serde::Serialize;

use crate::encoder::Encoder;
use crate::error::Result;

#[derive(Debug, Clone, Serialize)]
pub struct Throughput {
    pub batch: usize,
    pub tokens_per_text: usize,
    pub runs: usize,
    pub ms_per_batch: f64,
    pub texts_per_s: f64,
}

/// A text long enough to be truncated to any max length, varied so no token repeats trivially.
const PASSAGE: &str = "The harbour town woke slowly: fishermen mended nets, a baker opened early, and children ran \
    along the sea wall while gulls argued over scraps. Later the wind rose, clouds gathered over the \
    hills, and the ferry to the island left twenty minutes late with a cargo of bicycles and bread.";

/// Embed `batch` texts of exactly `encoder.max_len()` tokens repeatedly for at least `min_ms`
/// (after one warm-up run, which pays for shader compilation and allocation).
pub async fn encoder_throughput(encoder: &Encoder, batch: usize, min_ms: f64, now_ms: impl Fn() -> f64) -> Result<Throughput> {
    let texts: Vec<String> = (0..batch).map(|i| format!("{i}. {PASSAGE} {PASSAGE}")).collect();
    let tokens = encoder.tokenize(&texts[..1])?[0].len();
    encoder.embed(&texts).await?;
    let (start, mut runs) = (now_ms(), 0);
    while runs < 3 || now_ms() - start < min_ms {
        encoder.embed(&texts).await?;
        runs += 1;
    }
    let ms = (now_ms() - start) / runs as f64;
    Ok(Throughput { batch, tokens_per_text: tokens, runs, ms_per_batch: ms, texts_per_s: batch as f64 * 1000.0 / ms })
}
