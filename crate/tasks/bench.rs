//! Throughput measurement shared by `veer bench` and the browser benchmark, so both report the same
//! quantity. Measures; never asserts.

use serde::Serialize;

use crate::tasks::encode::Encoder;
use crate::base::error::Result;

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

/// This machine's bounds for one thread, measured with the instructions veer's CPU kernels use (in
/// the browser: wasm SIMD128), so each result can be put as a fraction of what it could reach.
#[derive(Debug, Clone, Serialize)]
pub struct Roofline {
    /// Reading a 64 MB buffer that no cache holds (decoding reads its weights so): GB/s.
    pub read_gb_s: f64,
    /// f32 GFLOP/s of veer's f32 kernel on weights in cache: in wasm the SIMD128 `panels` kernel (16
    /// rows × 384 → 384, 590 KB of weights); natively (where burn's gemm does veer's f32 matmuls) a
    /// multiply + add loop, 4 lanes × 8 independent chains, which latency bounds.
    pub f32_gflop_s: f64,
    /// The int8 kernel (`quant`) on weights in cache (256 × 576, one row of x, its quantisation
    /// included): multiply–adds per second, in G.
    pub int8_gmac_s: f64,
}

/// Best of three of each (about a second in all). Measures; never asserts. Fails, instead of aborting
/// the instance, when its 64 MB buffer cannot be had (a worker near wasm32's memory limit).
pub fn roofline(now_ms: impl Fn() -> f64) -> Result<Roofline> {
    use std::hint::black_box;
    let best = |f: &mut dyn FnMut() -> f64| (0..3).map(|_| f()).fold(0.0, f64::max);

    let len = 16 << 20; // 64 MB of f32, touched once
    let mut buf: Vec<f32> = Vec::new();
    buf.try_reserve_exact(len).map_err(|_| crate::Error::Invalid("roofline: no memory for its 64 MB buffer".into()))?;
    buf.extend((0..len).map(|i| (i & 1023) as f32));
    let read_gb_s = best(&mut || {
        let t = now_ms();
        let mut acc = [0.0f32; 16];
        for chunk in black_box(&buf).chunks_exact(16) {
            for (a, x) in acc.iter_mut().zip(chunk) {
                *a += x;
            }
        }
        black_box(acc);
        (buf.len() * 4) as f64 / ((now_ms() - t).max(1e-3) * 1e6)
    });

    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    let f32_gflop_s = {
        use crate::kernels::panels::{Epilogue, Panels};
        let (rows, inp, out) = (16, 384, 384);
        let w: Vec<f32> = (0..out * inp).map(|i| ((i * 37 % 255) as f32 - 127.0) / 127.0).collect();
        let x: Vec<f32> = (0..rows * inp).map(|i| (i % 17) as f32 / 17.0).collect();
        let m = Panels::new(&w, out, inp, None);
        best(&mut || {
            let reps = 100;
            let t = now_ms();
            for _ in 0..reps {
                black_box(m.forward(black_box(&x), rows, Epilogue::None));
            }
            (reps * rows * inp * out * 2) as f64 / ((now_ms() - t).max(1e-3) * 1e6)
        })
    };
    #[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
    let f32_gflop_s = best(&mut || {
        let iters = 2_000_000;
        let (m, c) = (black_box(0.999_999f32), black_box(1e-6f32));
        let mut acc = [1.0f32; 32];
        let t = now_ms();
        for _ in 0..iters {
            for a in acc.iter_mut() {
                *a = *a * m + c;
            }
        }
        black_box(acc);
        (iters * 32 * 2) as f64 / ((now_ms() - t).max(1e-3) * 1e6)
    });

    let (cols, rows) = (576, 256); // 144 KB of int8: in L2, re-read 200 times
    let w: Vec<f32> = (0..rows * cols).map(|i| ((i * 37 % 255) as f32 - 127.0) / 127.0).collect();
    let m = crate::kernels::quant::Q8Matrix::from_f32(&w, rows, cols);
    let x: Vec<f32> = (0..cols).map(|i| (i % 17) as f32 / 17.0).collect();
    let int8_gmac_s = best(&mut || {
        let reps = 200;
        let t = now_ms();
        for _ in 0..reps {
            black_box(m.matmul_t(black_box(&x), 1));
        }
        (reps * rows * cols) as f64 / ((now_ms() - t).max(1e-3) * 1e6)
    });
    Ok(Roofline { read_gb_s, f32_gflop_s, int8_gmac_s })
}
