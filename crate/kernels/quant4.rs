//! 4-bit weights for the decoder on the CPU (io::quantised's q4 layout, GGUF Q4_1's arithmetic): what
//! decode reads per token drops to 0.75 bytes a weight (half a byte, and an f32 scale and minimum per 32),
//! against 1.125 for int8 and 4 for f32. The matrix is multiplied as it is stored: never dequantised.
//!
//! A group of 32 weights is w_j = d·q_j + m (q_j in 0..=15); with the activations quantised as for int8
//! (`quant`: int16 per group of 32, scale s), Σ w_j·x_j = s·(d·Σ q_j·x_j + m·Σ x_j). The first sum is
//! exact in i32 (`i32x4.dot_i16x8_s` on the unpacked nibbles), the second is computed once per group of
//! the activations, not per row.
//!
//! As in `quant`, every implementation (wasm SIMD128, x86-64 SSE2, portable) computes the same exact
//! integer sums and the same f32 steps in the same order: the same bits natively and in the browser.

use crate::kernels::quant::{BLOCK, GROUP, quantise_rows};
#[cfg(target_arch = "x86_64")]
use crate::kernels::quant::sum4_sse2;
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
use crate::kernels::quant::sum4_simd128;

/// An [rows, cols] matrix (HF layout [out, in], cols a multiple of 32) as 4-bit groups, in the order the
/// kernel reads it: for each block of 8 rows, group by group, the 8 rows' 16 bytes (rows padded to a
/// whole block with zeros).
pub struct Q4Matrix {
    rows: usize,
    cols: usize,
    groups: usize,    // per row: cols / GROUP
    q: Vec<u8>,       // [blocks, groups, BLOCK, GROUP / 2]
    scales: Vec<f32>, // [blocks, groups, BLOCK]
    mins: Vec<f32>,   // [blocks, groups, BLOCK]
}

impl Q4Matrix {
    /// From a file's q4 tensors (checked by the loader): `values` [rows, cols / 2] bytes in GGUF Q4_1
    /// nibble order, `scales` and `mins` [rows, cols / 32].
    pub fn from_packed(values: &[u8], scales: &[f32], mins: &[f32], rows: usize, cols: usize) -> Self {
        let groups = cols / GROUP;
        let blocks = rows.div_ceil(BLOCK);
        let mut q = vec![0u8; blocks * groups * BLOCK * GROUP / 2];
        let (mut s, mut m) = (vec![0.0f32; blocks * groups * BLOCK], vec![0.0f32; blocks * groups * BLOCK]);
        for r in 0..rows {
            for g in 0..groups {
                let at = ((r / BLOCK) * groups + g) * BLOCK + r % BLOCK;
                q[at * GROUP / 2..][..GROUP / 2].copy_from_slice(&values[(r * groups + g) * GROUP / 2..][..GROUP / 2]);
                s[at] = scales[r * groups + g];
                m[at] = mins[r * groups + g];
            }
        }
        Q4Matrix { rows, cols, groups, q, scales: s, mins: m }
    }

    pub fn rows(&self) -> usize {
        self.rows
    }

    pub fn cols(&self) -> usize {
        self.cols
    }

    /// The whole matrix dequantised, transposed: [cols, rows] (for callers that need a dense tensor).
    pub fn dequantised_t(&self) -> Vec<f32> {
        let mut t = vec![0.0f32; self.rows * self.cols];
        for r in 0..self.rows {
            for g in 0..self.groups {
                let at = ((r / BLOCK) * self.groups + g) * BLOCK + r % BLOCK;
                for (j, &b) in self.q[at * GROUP / 2..][..GROUP / 2].iter().enumerate() {
                    let (d, m) = (self.scales[at], self.mins[at]);
                    t[(g * GROUP + j) * self.rows + r] = d * (b & 0x0f) as f32 + m;
                    t[(g * GROUP + j + GROUP / 2) * self.rows + r] = d * (b >> 4) as f32 + m;
                }
            }
        }
        t
    }

    /// y = x · Wᵀ for `n` rows of x ([n, cols] row-major): y is [n, rows].
    pub fn matmul_t(&self, x: &[f32], n: usize) -> Vec<f32> {
        self.matmul_t_with(x, n, false)
    }

    /// `matmul_t` by the portable definition the SIMD kernels follow: the same bits (for `tests/web.rs`).
    #[doc(hidden)]
    pub fn matmul_t_portable(&self, x: &[f32], n: usize) -> Vec<f32> {
        self.matmul_t_with(x, n, true)
    }

    fn matmul_t_with(&self, x: &[f32], n: usize, portable: bool) -> Vec<f32> {
        let g = self.groups;
        let (xq, xs) = quantise_rows(x, n, self.cols);
        // s · Σ x_j per group of each row of x: the minimums' share, once per call.
        let xm: Vec<f32> = xq.chunks_exact(GROUP).zip(&xs).map(|(v, &s)| s * v.iter().map(|&q| q as i32).sum::<i32>() as f32).collect();
        let mut y = vec![0.0f32; n * self.rows];
        for b in 0..self.rows.div_ceil(BLOCK) {
            let q = &self.q[b * g * BLOCK * GROUP / 2..][..g * BLOCK * GROUP / 2];
            let (s, m) = (&self.scales[b * g * BLOCK..][..g * BLOCK], &self.mins[b * g * BLOCK..][..g * BLOCK]);
            let k = (self.rows - b * BLOCK).min(BLOCK);
            for r in 0..n {
                let (xr, xsr, xmr) = (&xq[r * g * GROUP..][..g * GROUP], &xs[r * g..][..g], &xm[r * g..][..g]);
                let out = if portable { block_dot_portable(q, s, m, xr, xsr, xmr) } else { block_dot(q, s, m, xr, xsr, xmr) };
                y[r * self.rows + b * BLOCK..][..k].copy_from_slice(&out[..k]);
            }
        }
        y
    }
}

/// The definition every kernel follows: for each of a block's 8 rows, over groups in order,
/// acc += (exact Σ q·x, as f32) × (d × s) + m × (s · Σ x). `q`: [groups, BLOCK, 16], `d`, `m`:
/// [groups, BLOCK], `x`: [groups * GROUP], `xs`, `xm`: [groups].
fn block_dot_portable(q: &[u8], d: &[f32], m: &[f32], x: &[i16], xs: &[f32], xm: &[f32]) -> [f32; BLOCK] {
    let mut acc = [0.0f32; BLOCK];
    for (g, (&xsg, &xmg)) in xs.iter().zip(xm).enumerate() {
        let xg = &x[g * GROUP..][..GROUP];
        for (k, a) in acc.iter_mut().enumerate() {
            let w = &q[(g * BLOCK + k) * GROUP / 2..][..GROUP / 2];
            let sum: i32 = w.iter().enumerate().map(|(j, &b)| (b & 0x0f) as i32 * xg[j] as i32 + (b >> 4) as i32 * xg[j + GROUP / 2] as i32).sum();
            *a += sum as f32 * (d[g * BLOCK + k] * xsg) + m[g * BLOCK + k] * xmg;
        }
    }
    acc
}

#[inline]
fn block_dot(q: &[u8], d: &[f32], m: &[f32], x: &[i16], xs: &[f32], xm: &[f32]) -> [f32; BLOCK] {
    debug_assert!(q.len() == xs.len() * BLOCK * GROUP / 2 && d.len() == xs.len() * BLOCK && m.len() == d.len() && x.len() == xs.len() * GROUP && xm.len() == xs.len());
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    {
        // SAFETY: the slices hold the lengths asserted above (`matmul_t_with` cuts whole blocks).
        unsafe { block_dot_simd128(q, d, m, x, xs, xm) }
    }
    #[cfg(target_arch = "x86_64")]
    {
        // SAFETY: as above; SSE2 is part of the x86-64 baseline.
        unsafe { block_dot_sse2(q, d, m, x, xs, xm) }
    }
    #[cfg(not(any(all(target_arch = "wasm32", target_feature = "simd128"), target_arch = "x86_64")))]
    {
        block_dot_portable(q, d, m, x, xs, xm)
    }
}

/// As `quant`'s kernel, with one load, a mask and a shift unpacking a row's 32 nibbles into four i16x8
/// (zero-extended); four rows' sums transposed into one vector before the f32 steps.
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
#[inline]
unsafe fn block_dot_simd128(q: &[u8], d: &[f32], m: &[f32], x: &[i16], xs: &[f32], xm: &[f32]) -> [f32; BLOCK] {
    use core::arch::wasm32::*;
    let dot = |w: *const u8, xv: &[v128; 4]| unsafe {
        let v = v128_load(w as *const v128);
        let (lo, hi) = (v128_and(v, u8x16_splat(0x0f)), u8x16_shr(v, 4));
        let mut l = i32x4_dot_i16x8(u16x8_extend_low_u8x16(lo), xv[0]);
        l = i32x4_add(l, i32x4_dot_i16x8(u16x8_extend_high_u8x16(lo), xv[1]));
        l = i32x4_add(l, i32x4_dot_i16x8(u16x8_extend_low_u8x16(hi), xv[2]));
        i32x4_add(l, i32x4_dot_i16x8(u16x8_extend_high_u8x16(hi), xv[3]))
    };
    let h = GROUP / 2;
    let four = |w: *const u8, xv: &[v128; 4]| unsafe { sum4_simd128([dot(w, xv), dot(w.add(h), xv), dot(w.add(2 * h), xv), dot(w.add(3 * h), xv)]) };
    unsafe {
        let (mut lo, mut hi) = (f32x4_splat(0.0), f32x4_splat(0.0)); // rows 0–3, 4–7
        let (qp, dp, mp, xp) = (q.as_ptr(), d.as_ptr() as *const v128, m.as_ptr() as *const v128, x.as_ptr() as *const v128);
        for (g, (&xsg, &xmg)) in xs.iter().zip(xm).enumerate() {
            let xg = xp.add(4 * g);
            let xv = [v128_load(xg), v128_load(xg.add(1)), v128_load(xg.add(2)), v128_load(xg.add(3))];
            let (w, xsg, xmg) = (qp.add(g * BLOCK * GROUP / 2), f32x4_splat(xsg), f32x4_splat(xmg));
            let step = |sum: v128, k: usize| f32x4_add(f32x4_mul(f32x4_convert_i32x4(sum), f32x4_mul(v128_load(dp.add(2 * g + k)), xsg)), f32x4_mul(v128_load(mp.add(2 * g + k)), xmg));
            lo = f32x4_add(lo, step(four(w, &xv), 0));
            hi = f32x4_add(hi, step(four(w.add(4 * GROUP / 2), &xv), 1));
        }
        let mut out = [0.0f32; BLOCK];
        v128_store(out.as_mut_ptr() as *mut v128, lo);
        v128_store(out.as_mut_ptr().add(4) as *mut v128, hi);
        out
    }
}

/// Natively, the wasm kernel's steps in SSE2 (`pmaddwd` on nibbles unpacked against zero).
#[cfg(target_arch = "x86_64")]
#[inline]
unsafe fn block_dot_sse2(q: &[u8], d: &[f32], m: &[f32], x: &[i16], xs: &[f32], xm: &[f32]) -> [f32; BLOCK] {
    use core::arch::x86_64::*;
    let dot = |w: *const u8, xv: &[__m128i; 4]| unsafe {
        let v = _mm_loadu_si128(w as *const __m128i);
        let (mask, zero) = (_mm_set1_epi8(0x0f), _mm_setzero_si128());
        let (lo, hi) = (_mm_and_si128(v, mask), _mm_and_si128(_mm_srli_epi16::<4>(v), mask));
        let mut l = _mm_madd_epi16(_mm_unpacklo_epi8(lo, zero), xv[0]);
        l = _mm_add_epi32(l, _mm_madd_epi16(_mm_unpackhi_epi8(lo, zero), xv[1]));
        l = _mm_add_epi32(l, _mm_madd_epi16(_mm_unpacklo_epi8(hi, zero), xv[2]));
        _mm_add_epi32(l, _mm_madd_epi16(_mm_unpackhi_epi8(hi, zero), xv[3]))
    };
    let h = GROUP / 2;
    let four = |w: *const u8, xv: &[__m128i; 4]| unsafe { sum4_sse2([dot(w, xv), dot(w.add(h), xv), dot(w.add(2 * h), xv), dot(w.add(3 * h), xv)]) };
    unsafe {
        let (mut lo, mut hi) = (_mm_setzero_ps(), _mm_setzero_ps()); // rows 0–3, 4–7
        let (qp, dp, mp, xp) = (q.as_ptr(), d.as_ptr(), m.as_ptr(), x.as_ptr() as *const __m128i);
        for (g, (&xsg, &xmg)) in xs.iter().zip(xm).enumerate() {
            let xg = xp.add(4 * g);
            let xv = [_mm_loadu_si128(xg), _mm_loadu_si128(xg.add(1)), _mm_loadu_si128(xg.add(2)), _mm_loadu_si128(xg.add(3))];
            let (w, xsg, xmg) = (qp.add(g * BLOCK * GROUP / 2), _mm_set1_ps(xsg), _mm_set1_ps(xmg));
            let step = |sum: __m128i, k: usize| {
                let at = g * BLOCK + 4 * k;
                _mm_add_ps(_mm_mul_ps(_mm_cvtepi32_ps(sum), _mm_mul_ps(_mm_loadu_ps(dp.add(at)), xsg)), _mm_mul_ps(_mm_loadu_ps(mp.add(at)), xmg))
            };
            lo = _mm_add_ps(lo, step(four(w, &xv), 0));
            hi = _mm_add_ps(hi, step(four(w.add(4 * GROUP / 2), &xv), 1));
        }
        let mut out = [0.0f32; BLOCK];
        _mm_storeu_ps(out.as_mut_ptr(), lo);
        _mm_storeu_ps(out.as_mut_ptr().add(4), hi);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Random-looking q4 tensors for [rows, cols]: bytes, scales, minimums (some negative).
    fn packed(rows: usize, cols: usize) -> (Vec<u8>, Vec<f32>, Vec<f32>) {
        let q = (0..rows * cols / 2).map(|i| (i.wrapping_mul(2654435761) >> 7) as u8).collect();
        let s = (0..rows * cols / GROUP).map(|i| 0.01 + (i % 7) as f32 * 0.003).collect();
        let m = (0..rows * cols / GROUP).map(|i| -0.05 + (i % 5) as f32 * 0.02).collect();
        (q, s, m)
    }

    #[test]
    fn simd_equals_the_portable_definition_bitwise_and_is_close_to_f32() {
        let (rows, cols, n) = (11, 4 * GROUP, 3); // a whole block and a padded one
        let (q, s, m) = packed(rows, cols);
        let w = Q4Matrix::from_packed(&q, &s, &m, rows, cols);
        let x: Vec<f32> = (0..n * cols).map(|i| ((i * 37 % 101) as f32 - 50.0) / 25.0).collect();
        let bits = |y: Vec<f32>| y.into_iter().map(f32::to_bits).collect::<Vec<_>>();
        let y = w.matmul_t(&x, n);
        assert_eq!(bits(y.clone()), bits(w.matmul_t_portable(&x, n)));
        // Against the f32 product of the dequantised matrix (io::quantised's definition of the values).
        let dense = crate::io::quantised::Packed::Q4 { q: &q, scales: s.clone(), mins: m.clone() }.dequantise(rows, cols);
        let t = w.dequantised_t();
        assert!((0..rows).all(|o| (0..cols).all(|j| t[j * rows + o] == dense[o * cols + j])));
        for r in 0..n {
            for o in 0..rows {
                let exact: f32 = (0..cols).map(|j| x[r * cols + j] * dense[o * cols + j]).sum();
                assert!((y[r * rows + o] - exact).abs() <= 1e-3 * (1.0 + exact.abs()), "row {r} out {o}: {} vs {exact}", y[r * rows + o]);
            }
        }
    }
}
