//! Int8 weights for the decoder on the CPU (`DecoderOptions::weights = Int8`): what decode reads per
//! token drops from 4 bytes per weight (f32) to 1.125 (an i8 and a share of its group's f32 scale).
//!
//! Decoding one token is a matrix–vector product per layer, bound by the bytes read (docs/performance.md,
//! "The machine"), so the format is chosen for the cheapest inner loop in wasm SIMD128:
//! - weights: symmetric int8 per group of `GROUP` consecutive inputs of one output row (as GGUF's Q8_0,
//!   with an f32 scale);
//! - activations: symmetric int16 per group, quantised once per call (15 bits: their error, ≤ 1.5e-5 of
//!   the group's largest value, is far below the weights' ≤ 0.4 %);
//! - products summed exactly in i32 by `i32x4.dot_i16x8_s` (SSE2 `pmaddwd` natively); each group's
//!   integer sum converted once and scaled into its row's f32 sum.
//!
//! F16 weights were the other way to halve the bytes: but wasm has no f16 → f32 instruction, and the
//! conversion by integer ops costs more per weight than reading f32 (bench/results/f16-ab-*.json).
//!
//! Every implementation (wasm SIMD128, x86-64 SSE2, the portable one) computes the same exact integer
//! sums and the same f32 steps in the same order, so results are bitwise identical natively and in the
//! browser.

/// Inputs per quantisation group (both weights and activations).
pub const GROUP: usize = 32;

/// Output rows per block: the kernel computes eight outputs per pass over one row of x, and the
/// weights are stored in that order (see `Q8Matrix`).
pub(crate) const BLOCK: usize = 8;

/// An [rows, cols] matrix (HF `nn.Linear` layout: [out, in]) as int8 groups, stored in the order the
/// kernel reads it: for each block of 8 rows, group by group, the 8 rows' 32 weights (rows padded to a
/// whole number of blocks and columns to a whole number of groups, with zeros).
///
/// Why: decoding reads every weight once per token, so the read must be one sequential stream. Row by
/// row, four rows at a time, the kernel read four streams of one row's 576 bytes each, too short for
/// the hardware prefetcher: SmolLM2's int8 decode ran at 4 G multiply–adds/s (4.4 GB/s) against
/// 15–16 in this order (bench/results/int8-blocks-ab.json).
pub struct Q8Matrix {
    rows: usize,
    cols: usize,
    groups: usize,    // per row: ceil(cols / GROUP)
    q: Vec<i8>,       // [blocks, groups, BLOCK, GROUP]
    scales: Vec<f32>, // [blocks, groups, BLOCK]
}

/// `quantise_symmetric` to int8 (weights): in wasm SIMD128 for whole groups, since the browser quantises
/// all of a model's weights while loading it (134 M for SmolLM2).
fn quantise_weights(values: &[f32], out: &mut [i8]) -> f32 {
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    if values.len() == GROUP && out.len() == GROUP {
        // SAFETY: both hold GROUP values (checked just above).
        return unsafe { quantise_group_simd128::<true>(values, out.as_mut_ptr()) };
    }
    crate::base::math::quantise_symmetric(values, 127.0, out, |v| v as i8)
}

/// `quantise_symmetric` to int16 (activations, once per call): in wasm SIMD128 for whole groups, since
/// for the small matrices of a decoded token it is a fifth of the kernel's time when scalar.
fn quantise_activations(values: &[f32], out: &mut [i16]) -> f32 {
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    if values.len() == GROUP && out.len() == GROUP {
        // SAFETY: both hold GROUP values (checked just above).
        return unsafe { quantise_group_simd128::<false>(values, out.as_mut_ptr() as *mut i8) };
    }
    crate::base::math::quantise_symmetric(values, 32767.0, out, |v| v as i16)
}

/// `crate::base::math::quantise_symmetric(values, 127.0, out, |v| v as i8)` (`I8`) or `(values, 32767.0, out, |v| v as i16)`
/// for GROUP values at `out` (GROUP i8 or i16), with the same results: the largest magnitude is exact
/// in any order, `f32x4.nearest` rounds ties to even as `round_ties_even`, and the saturating
/// truncation then saturating narrowings clamp as `as` does (NaN → 0).
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
unsafe fn quantise_group_simd128<const I8: bool>(values: &[f32], out: *mut i8) -> f32 {
    use core::arch::wasm32::*;
    unsafe {
        let p = values.as_ptr() as *const v128;
        let v: [v128; GROUP / 4] = core::array::from_fn(|i| v128_load(p.add(i)));
        let (mut m, mut finite) = (f32x4_splat(0.0), i32x4_splat(-1));
        for &x in &v {
            let a = f32x4_abs(x);
            m = f32x4_pmax(m, a); // a NaN lane keeps m; `finite` catches it
            finite = v128_and(finite, f32x4_lt(a, f32x4_splat(f32::INFINITY)));
        }
        let lanes = [f32x4_extract_lane::<0>(m), f32x4_extract_lane::<1>(m), f32x4_extract_lane::<2>(m), f32x4_extract_lane::<3>(m)];
        let amax = if i32x4_all_true(finite) { lanes.into_iter().fold(0.0f32, f32::max) } else { f32::NAN };
        let scale = amax / if I8 { 127.0 } else { 32767.0 };
        let inv = f32x4_splat(if scale > 0.0 { 1.0 / scale } else { 0.0 });
        let o = out as *mut v128;
        let q = |x: v128| i32x4_trunc_sat_f32x4(f32x4_nearest(f32x4_mul(x, inv)));
        for (k, x) in v.chunks_exact(4).enumerate() {
            let (lo, hi) = (i16x8_narrow_i32x4(q(x[0]), q(x[1])), i16x8_narrow_i32x4(q(x[2]), q(x[3])));
            if I8 {
                v128_store(o.add(k), i8x16_narrow_i16x8(lo, hi));
            } else {
                v128_store(o.add(2 * k), lo);
                v128_store(o.add(2 * k + 1), hi);
            }
        }
        scale
    }
}

impl Q8Matrix {
    /// From row-major f32 values [rows, cols] (`values.len() == rows * cols`, checked by the caller's
    /// loader against the file's shape).
    pub fn from_f32(values: &[f32], rows: usize, cols: usize) -> Self {
        let groups = cols.div_ceil(GROUP);
        let blocks = rows.div_ceil(BLOCK);
        let mut q = vec![0i8; blocks * groups * BLOCK * GROUP];
        let mut scales = vec![0.0f32; blocks * groups * BLOCK];
        for (r, row) in values.chunks_exact(cols.max(1)).take(rows).enumerate() {
            for (g, part) in row.chunks(GROUP).enumerate() {
                let at = Self::at(groups, r, g);
                scales[at] = quantise_weights(part, &mut q[at * GROUP..][..part.len()]);
            }
        }
        Q8Matrix {
            rows,
            cols,
            groups,
            q,
            scales,
        }
    }

    /// From a file's int8 values [rows, cols] (bytes) and their scales [rows, cols / group] (io::quantised's
    /// q8 layout, checked by the loader: `group` divides `cols` and is `cols` or a multiple of GROUP):
    /// the same values, laid out for the kernel, with each group of GROUP inputs given its scale.
    pub fn from_packed(values: &[u8], scales: &[f32], group: usize, rows: usize, cols: usize) -> Self {
        let groups = cols.div_ceil(GROUP);
        let blocks = rows.div_ceil(BLOCK);
        let mut q = vec![0i8; blocks * groups * BLOCK * GROUP];
        let mut s = vec![0.0f32; blocks * groups * BLOCK];
        let per_row = cols / group.max(1);
        for (r, row) in values.chunks_exact(cols.max(1)).take(rows).enumerate() {
            for (g, part) in row.chunks(GROUP).enumerate() {
                let at = Self::at(groups, r, g);
                q[at * GROUP..][..part.len()].iter_mut().zip(part).for_each(|(o, &b)| *o = b as i8);
                s[at] = scales[r * per_row + g * GROUP / group.max(1)];
            }
        }
        Q8Matrix { rows, cols, groups, q, scales: s }
    }

    /// Where row `r`'s group `g` is: its scale's index, and its weights' index / GROUP.
    fn at(groups: usize, r: usize, g: usize) -> usize {
        ((r / BLOCK) * groups + g) * BLOCK + r % BLOCK
    }

    pub fn rows(&self) -> usize {
        self.rows
    }

    pub fn cols(&self) -> usize {
        self.cols
    }

    /// Bytes held (weights and scales).
    pub fn bytes(&self) -> usize {
        self.q.len() + 4 * self.scales.len()
    }

    /// Row `r` dequantised (embedding lookup). `r < rows`: the caller checked the id.
    pub fn row(&self, r: usize) -> Vec<f32> {
        (0..self.cols)
            .map(|j| {
                let at = Self::at(self.groups, r, j / GROUP);
                self.q[at * GROUP + j % GROUP] as f32 * self.scales[at]
            })
            .collect()
    }

    /// The whole matrix dequantised, transposed: [cols, rows] (for callers that need a dense tensor).
    pub fn dequantised_t(&self) -> Vec<f32> {
        let mut t = vec![0.0f32; self.rows * self.cols];
        for r in 0..self.rows {
            for (j, v) in self.row(r).into_iter().enumerate() {
                t[j * self.rows + r] = v;
            }
        }
        t
    }

    /// y = x · Wᵀ for `n` rows of x ([n, cols] row-major): y is [n, rows].
    pub fn matmul_t(&self, x: &[f32], n: usize) -> Vec<f32> {
        self.matmul_t_with(x, n, false)
    }

    /// `matmul_t` by the portable definition the SIMD kernels follow lane for lane: the same bits.
    /// For tests that check that in the browser (`tests/web.rs`), where the crate's unit tests do not run.
    #[doc(hidden)]
    pub fn matmul_t_portable(&self, x: &[f32], n: usize) -> Vec<f32> {
        self.matmul_t_with(x, n, true)
    }

    fn matmul_t_with(&self, x: &[f32], n: usize, portable: bool) -> Vec<f32> {
        let (g, stride) = (self.groups, self.groups * GROUP);
        let (xq, xs) = quantise_rows(x, n, self.cols);
        let mut y = vec![0.0f32; n * self.rows];
        // Blocks outermost: a block's weights (8 rows) are read from memory once and stay in L1 for
        // all n rows of x.
        for b in 0..self.rows.div_ceil(BLOCK) {
            let q = &self.q[b * g * BLOCK * GROUP..][..g * BLOCK * GROUP];
            let s = &self.scales[b * g * BLOCK..][..g * BLOCK];
            let k = (self.rows - b * BLOCK).min(BLOCK);
            for r in 0..n {
                let (xr, xsr) = (&xq[r * stride..][..stride], &xs[r * g..][..g]);
                let out = if portable { block_dot_portable(q, s, xr, xsr) } else { block_dot(q, s, xr, xsr) };
                y[r * self.rows + b * BLOCK..][..k].copy_from_slice(&out[..k]);
            }
        }
        y
    }
}

/// Activations [n, cols] as int16 groups: [n, groups * GROUP] values (padded with zeros) and [n, groups]
/// scales, once per product.
pub(crate) fn quantise_rows(x: &[f32], n: usize, cols: usize) -> (Vec<i16>, Vec<f32>) {
    let (g, stride) = (cols.div_ceil(GROUP), cols.div_ceil(GROUP) * GROUP);
    let mut xq = vec![0i16; n * stride];
    let mut xs = vec![0.0f32; n * g];
    for (r, row) in x.chunks_exact(cols.max(1)).take(n).enumerate() {
        for (k, part) in row.chunks(GROUP).enumerate() {
            xs[r * g + k] = quantise_activations(part, &mut xq[r * stride + k * GROUP..][..part.len()]);
        }
    }
    (xq, xs)
}

/// The definition every kernel follows: for each of a block's 8 rows, over groups in order,
/// acc += (the group's exact integer dot product, as f32) × (weight scale × activation scale).
/// `q`: [groups, BLOCK, GROUP], `s`: [groups, BLOCK], `x`: [groups * GROUP], `xs`: [groups].
/// The integer sums are exact (|Σ| ≤ 32 · 127 · 32767 < 2³¹), so kernels may add them in any order.
fn block_dot_portable(q: &[i8], s: &[f32], x: &[i16], xs: &[f32]) -> [f32; BLOCK] {
    let mut acc = [0.0f32; BLOCK];
    for (g, &xsg) in xs.iter().enumerate() {
        let xg = &x[g * GROUP..][..GROUP];
        for (k, a) in acc.iter_mut().enumerate() {
            let w = &q[(g * BLOCK + k) * GROUP..][..GROUP];
            let sum: i32 = w.iter().zip(xg).map(|(&w, &x)| w as i32 * x as i32).sum();
            *a += sum as f32 * (s[g * BLOCK + k] * xsg);
        }
    }
    acc
}

#[inline]
fn block_dot(q: &[i8], s: &[f32], x: &[i16], xs: &[f32]) -> [f32; BLOCK] {
    debug_assert!(q.len() == xs.len() * BLOCK * GROUP && s.len() == xs.len() * BLOCK && x.len() == xs.len() * GROUP);
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    {
        // SAFETY: the slices hold the lengths asserted above (`matmul_t_with` cuts whole blocks and
        // rows of x), so every load below is in bounds.
        unsafe { block_dot_simd128(q, s, x, xs) }
    }
    #[cfg(target_arch = "x86_64")]
    {
        // SAFETY: as above; SSE2 is part of the x86-64 baseline.
        unsafe { block_dot_sse2(q, s, x, xs) }
    }
    #[cfg(not(any(all(target_arch = "wasm32", target_feature = "simd128"), target_arch = "x86_64")))]
    {
        block_dot_portable(q, s, x, xs)
    }
}

/// Four rows' partial sums (4 lanes each) → [Σ row 0, Σ row 1, Σ row 2, Σ row 3]: interleave low/high
/// pairs and add, twice. Shared by the int8 and 4-bit kernels; the lane order of the additions is part
/// of their portable definitions (exact integer sums: any order gives the same bits).
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
#[inline]
pub(crate) fn sum4_simd128(t: [core::arch::wasm32::v128; 4]) -> core::arch::wasm32::v128 {
    use core::arch::wasm32::*;
    let a = i32x4_add(i32x4_shuffle::<0, 4, 1, 5>(t[0], t[1]), i32x4_shuffle::<2, 6, 3, 7>(t[0], t[1]));
    let c = i32x4_add(i32x4_shuffle::<0, 4, 1, 5>(t[2], t[3]), i32x4_shuffle::<2, 6, 3, 7>(t[2], t[3]));
    i32x4_add(i32x4_shuffle::<0, 1, 4, 5>(a, c), i32x4_shuffle::<2, 3, 6, 7>(a, c))
}

/// `sum4_simd128` in SSE2 (unpack low/high).
#[cfg(target_arch = "x86_64")]
#[inline]
pub(crate) fn sum4_sse2(t: [core::arch::x86_64::__m128i; 4]) -> core::arch::x86_64::__m128i {
    use core::arch::x86_64::*;
    // SAFETY: SSE2 is part of the x86-64 baseline; register operations only.
    unsafe {
        let a = _mm_add_epi32(_mm_unpacklo_epi32(t[0], t[1]), _mm_unpackhi_epi32(t[0], t[1]));
        let c = _mm_add_epi32(_mm_unpacklo_epi32(t[2], t[3]), _mm_unpackhi_epi32(t[2], t[3]));
        _mm_add_epi32(_mm_unpacklo_epi64(a, c), _mm_unpackhi_epi64(a, c))
    }
}

/// Each f32x4 lane is one row: the integer sums of four rows are transposed into one vector, so each
/// group costs one conversion, one scale and one add per four rows (not per row).
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
#[inline]
unsafe fn block_dot_simd128(q: &[i8], s: &[f32], x: &[i16], xs: &[f32]) -> [f32; BLOCK] {
    use core::arch::wasm32::*;
    // One row's group: 4 lanes of i32 partial sums. Eight weights at a time are loaded and
    // sign-extended by one instruction (x86: `pmovsxbw` from memory).
    let dot = |w: *const i8, xv: &[v128; 4]| unsafe {
        let mut l = i32x4_dot_i16x8(i16x8_load_extend_i8x8(w), xv[0]);
        l = i32x4_add(l, i32x4_dot_i16x8(i16x8_load_extend_i8x8(w.add(8)), xv[1]));
        l = i32x4_add(l, i32x4_dot_i16x8(i16x8_load_extend_i8x8(w.add(16)), xv[2]));
        i32x4_add(l, i32x4_dot_i16x8(i16x8_load_extend_i8x8(w.add(24)), xv[3]))
    };
    let four = |w: *const i8, xv: &[v128; 4]| unsafe { sum4_simd128([dot(w, xv), dot(w.add(GROUP), xv), dot(w.add(2 * GROUP), xv), dot(w.add(3 * GROUP), xv)]) };
    unsafe {
        let (mut lo, mut hi) = (f32x4_splat(0.0), f32x4_splat(0.0)); // rows 0–3, 4–7
        let (qp, sp, xp) = (q.as_ptr(), s.as_ptr() as *const v128, x.as_ptr() as *const v128);
        for (g, &xsg) in xs.iter().enumerate() {
            let xg = xp.add(4 * g);
            let xv = [v128_load(xg), v128_load(xg.add(1)), v128_load(xg.add(2)), v128_load(xg.add(3))];
            let (w, xsg) = (qp.add(g * BLOCK * GROUP), f32x4_splat(xsg));
            lo = f32x4_add(lo, f32x4_mul(f32x4_convert_i32x4(four(w, &xv)), f32x4_mul(v128_load(sp.add(2 * g)), xsg)));
            hi = f32x4_add(hi, f32x4_mul(f32x4_convert_i32x4(four(w.add(4 * GROUP), &xv)), f32x4_mul(v128_load(sp.add(2 * g + 1)), xsg)));
        }
        let mut out = [0.0f32; BLOCK];
        v128_store(out.as_mut_ptr() as *mut v128, lo);
        v128_store(out.as_mut_ptr().add(4) as *mut v128, hi);
        out
    }
}

/// Natively, the wasm kernel's steps in SSE2: `pmaddwd` partial sums, four rows' sums transposed into
/// one vector (unpack low/high), one conversion, scale and add per four rows.
#[cfg(target_arch = "x86_64")]
#[inline]
unsafe fn block_dot_sse2(q: &[i8], s: &[f32], x: &[i16], xs: &[f32]) -> [f32; BLOCK] {
    use core::arch::x86_64::*;
    // i8 → i16 sign extension in SSE2: interleave each byte with itself, shift right arithmetically.
    let lo = |v: __m128i| unsafe { _mm_srai_epi16::<8>(_mm_unpacklo_epi8(v, v)) };
    let hi = |v: __m128i| unsafe { _mm_srai_epi16::<8>(_mm_unpackhi_epi8(v, v)) };
    let dot = |w: *const __m128i, xv: &[__m128i; 4]| unsafe {
        let (w0, w1) = (_mm_loadu_si128(w), _mm_loadu_si128(w.add(1)));
        let mut l = _mm_madd_epi16(lo(w0), xv[0]);
        l = _mm_add_epi32(l, _mm_madd_epi16(hi(w0), xv[1]));
        l = _mm_add_epi32(l, _mm_madd_epi16(lo(w1), xv[2]));
        _mm_add_epi32(l, _mm_madd_epi16(hi(w1), xv[3]))
    };
    let four = |w: *const __m128i, xv: &[__m128i; 4]| unsafe { sum4_sse2([dot(w, xv), dot(w.add(2), xv), dot(w.add(4), xv), dot(w.add(6), xv)]) };
    unsafe {
        let (mut acc_lo, mut acc_hi) = (_mm_setzero_ps(), _mm_setzero_ps()); // rows 0–3, 4–7
        let (qp, sp, xp) = (q.as_ptr() as *const __m128i, s.as_ptr(), x.as_ptr() as *const __m128i);
        for (g, &xsg) in xs.iter().enumerate() {
            let xg = xp.add(4 * g);
            let xv = [_mm_loadu_si128(xg), _mm_loadu_si128(xg.add(1)), _mm_loadu_si128(xg.add(2)), _mm_loadu_si128(xg.add(3))];
            let (w, xsg) = (qp.add(2 * BLOCK * g), _mm_set1_ps(xsg));
            let scale = |k: usize| _mm_mul_ps(_mm_loadu_ps(sp.add(g * BLOCK + k)), xsg);
            acc_lo = _mm_add_ps(acc_lo, _mm_mul_ps(_mm_cvtepi32_ps(four(w, &xv)), scale(0)));
            acc_hi = _mm_add_ps(acc_hi, _mm_mul_ps(_mm_cvtepi32_ps(four(w.add(8), &xv)), scale(4)));
        }
        let mut out = [0.0f32; BLOCK];
        _mm_storeu_ps(out.as_mut_ptr(), acc_lo);
        _mm_storeu_ps(out.as_mut_ptr().add(4), acc_hi);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(n: usize, seed: u32) -> Vec<f32> {
        // A spread of magnitudes, a few outliers, exact zeros.
        (0..n as u32)
            .map(|i| {
                let h =
                    (i.wrapping_mul(2654435761) ^ seed.wrapping_mul(40503)).rotate_left(7) % 2001;
                let v = (h as f32 - 1000.0) / 1000.0;
                if i % 97 == 0 {
                    v * 40.0
                } else if i % 13 == 0 {
                    0.0
                } else {
                    v
                }
            })
            .collect()
    }

    #[test]
    fn simd_equals_the_portable_definition_bitwise() {
        // 11 rows: a whole block and a padded one; 165 columns: a padded last group; 3 rows of x.
        let (rows, cols, n) = (11, 5 * GROUP + 5, 3);
        let m = Q8Matrix::from_f32(&values(rows * cols, 1), rows, cols);
        let x = values(n * cols, 2);
        let bits = |y: Vec<f32>| y.into_iter().map(f32::to_bits).collect::<Vec<_>>();
        assert_eq!(bits(m.matmul_t(&x, n)), bits(m.matmul_t_portable(&x, n)));
    }

    #[test]
    fn int8_matmul_is_close_to_f32_and_handles_ragged_columns() {
        // 70 columns: two whole groups and a padded one.
        for (rows, cols, n) in [(9, 70, 3), (4, 576, 1), (3, 1, 2)] {
            let (w, x) = (values(rows * cols, 3), values(n * cols, 4));
            let y = Q8Matrix::from_f32(&w, rows, cols).matmul_t(&x, n);
            for r in 0..n {
                for o in 0..rows {
                    let exact: f32 = (0..cols).map(|j| x[r * cols + j] * w[o * cols + j]).sum();
                    // Bound: each weight within half a step (amax/254) of its value, times Σ|x|.
                    let bound: f32 =
                        (0..cols).map(|j| x[r * cols + j].abs()).sum::<f32>() * 40.0 / 254.0 + 1e-3;
                    assert!(
                        (y[r * rows + o] - exact).abs() <= bound,
                        "{rows}x{cols} row {r} out {o}: {} vs {exact}",
                        y[r * rows + o]
                    );
                }
            }
        }
    }

    #[test]
    fn rows_dequantise_and_zeros_and_non_finite_values_do_not_trap() {
        let m = Q8Matrix::from_f32(&[0.0, 0.0, 1.0, -0.5], 2, 2);
        assert_eq!(m.row(0), vec![0.0, 0.0]);
        // −0.5 is −63.5 steps of 1/127: it comes back as −64/127, within half a step.
        assert_eq!(m.row(1), vec![1.0, -64.0 / 127.0]);
        assert_eq!(m.dequantised_t(), vec![0.0, 1.0, 0.0, -64.0 / 127.0]);
        let bad = Q8Matrix::from_f32(&[f32::NAN, 1.0, f32::INFINITY, 2.0], 2, 2);
        assert!(bad.matmul_t(&[1.0, 1.0], 1).iter().all(|v| v.is_nan()));
        assert!(Q8Matrix::from_f32(&[1.0, 2.0], 1, 2).matmul_t(&[f32::NAN, 0.0], 1)[0].is_nan());
    }
}
