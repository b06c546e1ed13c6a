//! Int8 weights for the decoder on the CPU (`DecoderOptions::weights = Int8`): what decode reads per
//! token drops from 4 bytes per weight (f32) to 1.125 (an i8 and a share of its group's f32 scale).
//!
//! Decoding one token is a matrix–vector product per layer, bound by the bytes read (README,
//! "Measurements"), so the format is chosen for the cheapest inner loop in wasm SIMD128:
//! - weights: symmetric int8 per group of `GROUP` consecutive inputs of one output row (as GGUF's Q8_0,
//!   with an f32 scale);
//! - activations: symmetric int16 per group, quantised once per call (15 bits: their error, ≤ 1.5e-5 of
//!   the group's largest value, is far below the weights' ≤ 0.4 %);
//! - products summed exactly in i32 by `i32x4.dot_i16x8_s` (SSE2 `pmaddwd` natively), then per group
//!   scaled into four f32 lanes.
//!
//! F16 weights were the other way to halve the bytes: but wasm has no f16 → f32 instruction, and the
//! conversion by integer ops costs more per weight than reading f32 (README, "Int8 decoder weights").
//!
//! Every implementation (wasm SIMD128, x86-64 SSE2, the portable one) sums the same integers into the
//! same lanes in the same order, so results are bitwise identical natively and in the browser.

/// Inputs per quantisation group (both weights and activations).
pub const GROUP: usize = 32;

/// An [rows, cols] matrix (HF `nn.Linear` layout: [out, in]) as int8 groups; each row padded with
/// zeros to a whole number of groups.
pub struct Q8Matrix {
    rows: usize,
    cols: usize,
    groups: usize,    // per row: ceil(cols / GROUP)
    q: Vec<i8>,       // [rows, groups * GROUP]
    scales: Vec<f32>, // [rows, groups]
}

/// Symmetric quantisation of one group: the scale and the values divided by it, rounded to the
/// nearest integer in [-max, max], ties to even: one wasm instruction (`f32.nearest`), where `round`
/// (ties away from zero) is a libm call per value (it made SmolLM2's int8 load ≈ 2 s slower in the
/// browser). A group of zeros gets scale 0. Non-finite inputs give a NaN scale, so the outputs that
/// use it are NaN, as with f32 weights (`as` saturates: no panic).
fn quantise_group<T: Copy>(
    values: &[f32],
    max: f32,
    out: &mut [T],
    cast: impl Fn(f32) -> T,
) -> f32 {
    let amax = values.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    let amax = if values.iter().all(|v| v.is_finite()) {
        amax
    } else {
        f32::NAN
    };
    let scale = amax / max;
    let inv = if scale > 0.0 { 1.0 / scale } else { 0.0 };
    for (o, &v) in out.iter_mut().zip(values) {
        *o = cast((v * inv).round_ties_even());
    }
    scale
}

/// `quantise_group` to int8 (weights): in wasm SIMD128 for whole groups, since the browser quantises
/// all of a model's weights while loading it (134 M for SmolLM2).
fn quantise_weights(values: &[f32], out: &mut [i8]) -> f32 {
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    if values.len() == GROUP && out.len() == GROUP {
        // SAFETY: both hold GROUP values (checked just above).
        return unsafe { quantise_group_simd128(values, out) };
    }
    quantise_group(values, 127.0, out, |v| v as i8)
}

/// `quantise_group(values, 127.0, out, |v| v as i8)` for GROUP values, with the same results: the
/// largest magnitude is exact in any order, `f32x4.nearest` rounds ties to even as `round_ties_even`,
/// and the saturating truncation then two saturating narrowings clamp to i8 as `as i8` does (NaN → 0).
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
unsafe fn quantise_group_simd128(values: &[f32], out: &mut [i8]) -> f32 {
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
        let scale = amax / 127.0;
        let inv = f32x4_splat(if scale > 0.0 { 1.0 / scale } else { 0.0 });
        let o = out.as_mut_ptr() as *mut v128;
        let q = |x: v128| i32x4_trunc_sat_f32x4(f32x4_nearest(f32x4_mul(x, inv)));
        for (k, x) in v.chunks_exact(4).enumerate() {
            v128_store(o.add(k), i8x16_narrow_i16x8(i16x8_narrow_i32x4(q(x[0]), q(x[1])), i16x8_narrow_i32x4(q(x[2]), q(x[3]))));
        }
        scale
    }
}

impl Q8Matrix {
    /// From row-major f32 values [rows, cols] (`values.len() == rows * cols`, checked by the caller's
    /// loader against the file's shape).
    pub fn from_f32(values: &[f32], rows: usize, cols: usize) -> Self {
        let groups = cols.div_ceil(GROUP);
        let mut q = vec![0i8; rows * groups * GROUP];
        let mut scales = vec![0.0f32; rows * groups];
        for (r, row) in values.chunks_exact(cols.max(1)).take(rows).enumerate() {
            for (g, part) in row.chunks(GROUP).enumerate() {
                let at = (r * groups + g) * GROUP;
                let out = &mut q[at..at + part.len()];
                scales[r * groups + g] = quantise_weights(part, out);
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
        let w = &self.q[r * self.groups * GROUP..][..self.cols];
        w.iter()
            .enumerate()
            .map(|(j, &v)| v as f32 * self.scales[r * self.groups + j / GROUP])
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
        let stride = self.groups * GROUP;
        // Activations: [n, groups * GROUP] int16 and [n, groups] scales, once per call.
        let mut xq = vec![0i16; n * stride];
        let mut xs = vec![0.0f32; n * self.groups];
        for (r, row) in x.chunks_exact(self.cols.max(1)).take(n).enumerate() {
            for (g, part) in row.chunks(GROUP).enumerate() {
                let at = r * stride + g * GROUP;
                xs[r * self.groups + g] =
                    quantise_group(part, 32767.0, &mut xq[at..at + part.len()], |v| v as i16);
            }
        }
        let mut y = vec![0.0f32; n * self.rows];
        let g = self.groups;
        let mut combined = vec![0.0f32; 4 * g]; // [4, groups]: weight scale × activation scale
        // Weight rows outermost, four at a time: they are read from memory once and stay in L1 for
        // all n rows of x, and four rows share each load of x (`row_dot4`).
        let mut o = 0;
        while o < self.rows {
            let k = (self.rows - o).min(4);
            for r in 0..n {
                let xsr = &xs[r * g..(r + 1) * g];
                for (j, c) in combined.chunks_exact_mut(g).take(k).enumerate() {
                    for ((c, &a), &b) in c.iter_mut().zip(&self.scales[(o + j) * g..(o + j + 1) * g]).zip(xsr) {
                        *c = a * b;
                    }
                }
                let xr = &xq[r * stride..(r + 1) * stride];
                let w = |j: usize| &self.q[(o + j) * stride..(o + j + 1) * stride];
                if portable {
                    for j in 0..k {
                        y[r * self.rows + o + j] = row_dot_portable(w(j), xr, &combined[j * g..(j + 1) * g]);
                    }
                } else if k == 4 {
                    let c = |j: usize| &combined[j * g..(j + 1) * g];
                    let out = row_dot4([w(0), w(1), w(2), w(3)], xr, [c(0), c(1), c(2), c(3)]);
                    y[r * self.rows + o..r * self.rows + o + 4].copy_from_slice(&out);
                } else {
                    for j in 0..k {
                        y[r * self.rows + o + j] = row_dot(w(j), xr, &combined[j * g..(j + 1) * g]);
                    }
                }
            }
            o += k;
        }
        y
    }
}

/// `row_dot` of four weight rows against one x, each row with the same lanes in the same order (the
/// same bits); in wasm the four share each load of x and run as four independent chains.
#[inline]
fn row_dot4(w: [&[i8]; 4], x: &[i16], scale: [&[f32]; 4]) -> [f32; 4] {
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    {
        // SAFETY: as `row_dot`: each row and x hold `scale[k].len() * GROUP` values, all of one length.
        unsafe { row_dot4_simd128(w, x, scale) }
    }
    #[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
    {
        [0, 1, 2, 3].map(|k| row_dot(w[k], x, scale[k]))
    }
}

#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
#[inline]
unsafe fn row_dot4_simd128(w: [&[i8]; 4], x: &[i16], scale: [&[f32]; 4]) -> [f32; 4] {
    use core::arch::wasm32::*;
    unsafe {
        let mut acc = [f32x4_splat(0.0); 4];
        let xp = x.as_ptr() as *const v128;
        let wp = w.map(|r| r.as_ptr() as *const v128);
        for g in 0..scale[0].len() {
            let xg = xp.add(4 * g);
            let xv = [v128_load(xg), v128_load(xg.add(1)), v128_load(xg.add(2)), v128_load(xg.add(3))];
            for k in 0..4 {
                acc[k] = f32x4_add(acc[k], group_simd128(wp[k].add(2 * g), xv, scale[k][g]));
            }
        }
        acc.map(sum_lanes_simd128)
    }
}

/// One group's 4 i32 lanes (32 weights at `wp`: two v128 of i8; 32 activations: four v128 of i16),
/// converted and scaled: the step both wasm kernels share, so that they give the same bits.
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
#[inline]
unsafe fn group_simd128(wp: *const core::arch::wasm32::v128, xv: [core::arch::wasm32::v128; 4], scale: f32) -> core::arch::wasm32::v128 {
    use core::arch::wasm32::*;
    unsafe {
        // Eight weights at a time loaded and sign-extended by one instruction (x86: `pmovsxbw` from
        // memory), where a v128 load and extend_low / extend_high took four.
        let w = wp as *const i8;
        let mut lanes = i32x4_dot_i16x8(i16x8_load_extend_i8x8(w), xv[0]);
        lanes = i32x4_add(lanes, i32x4_dot_i16x8(i16x8_load_extend_i8x8(w.add(8)), xv[1]));
        lanes = i32x4_add(lanes, i32x4_dot_i16x8(i16x8_load_extend_i8x8(w.add(16)), xv[2]));
        lanes = i32x4_add(lanes, i32x4_dot_i16x8(i16x8_load_extend_i8x8(w.add(24)), xv[3]));
        f32x4_mul(f32x4_convert_i32x4(lanes), f32x4_splat(scale))
    }
}

/// (a0 + a1) + (a2 + a3).
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
#[inline]
fn sum_lanes_simd128(a: core::arch::wasm32::v128) -> f32 {
    use core::arch::wasm32::f32x4_extract_lane;
    (f32x4_extract_lane::<0>(a) + f32x4_extract_lane::<1>(a)) + (f32x4_extract_lane::<2>(a) + f32x4_extract_lane::<3>(a))
}

/// Σ over groups g of scale[g] × (w_g · x_g), with `w`, `x` of `scale.len() * GROUP` values. The sum
/// of each group is kept in 4 i32 lanes (lane l: pairs l, l+4, l+8, l+12 of the group's 16 pairs), each
/// lane converted, scaled and added into its own f32 accumulator; at the end (a0 + a1) + (a2 + a3).
#[inline]
fn row_dot(w: &[i8], x: &[i16], scale: &[f32]) -> f32 {
    debug_assert!(w.len() == scale.len() * GROUP && x.len() == w.len());
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    {
        // SAFETY: `w` and `x` hold `scale.len() * GROUP` values (asserted by every caller's layout:
        // `matmul_t` slices whole padded rows), so each group's 32 bytes of `w` and 64 of `x` are in bounds.
        unsafe { row_dot_simd128(w, x, scale) }
    }
    #[cfg(target_arch = "x86_64")]
    {
        // SAFETY: as above; SSE2 is part of the x86-64 baseline.
        unsafe { row_dot_sse2(w, x, scale) }
    }
    #[cfg(not(any(
        all(target_arch = "wasm32", target_feature = "simd128"),
        target_arch = "x86_64"
    )))]
    {
        row_dot_portable(w, x, scale)
    }
}

/// The definition the SIMD versions follow, lane for lane.
fn row_dot_portable(w: &[i8], x: &[i16], scale: &[f32]) -> f32 {
    let mut acc = [0.0f32; 4];
    for (g, &s) in scale.iter().enumerate() {
        let mut lanes = [0i32; 4];
        for p in 0..GROUP / 2 {
            let j = g * GROUP + 2 * p;
            lanes[p % 4] += w[j] as i32 * x[j] as i32 + w[j + 1] as i32 * x[j + 1] as i32;
        }
        for l in 0..4 {
            acc[l] += lanes[l] as f32 * s;
        }
    }
    (acc[0] + acc[1]) + (acc[2] + acc[3])
}

#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
#[inline]
unsafe fn row_dot_simd128(w: &[i8], x: &[i16], scale: &[f32]) -> f32 {
    use core::arch::wasm32::*;
    unsafe {
        let mut acc = f32x4_splat(0.0);
        let (wp, xp) = (w.as_ptr() as *const v128, x.as_ptr() as *const v128);
        for (g, &s) in scale.iter().enumerate() {
            let xg = xp.add(4 * g);
            let xv = [v128_load(xg), v128_load(xg.add(1)), v128_load(xg.add(2)), v128_load(xg.add(3))];
            acc = f32x4_add(acc, group_simd128(wp.add(2 * g), xv, s));
        }
        sum_lanes_simd128(acc)
    }
}

#[cfg(target_arch = "x86_64")]
#[inline]
unsafe fn row_dot_sse2(w: &[i8], x: &[i16], scale: &[f32]) -> f32 {
    use core::arch::x86_64::*;
    // i8 → i16 sign extension in SSE2: interleave each byte with itself, shift right arithmetically.
    let lo = |v: __m128i| unsafe { _mm_srai_epi16::<8>(_mm_unpacklo_epi8(v, v)) };
    let hi = |v: __m128i| unsafe { _mm_srai_epi16::<8>(_mm_unpackhi_epi8(v, v)) };
    unsafe {
        let mut acc = _mm_setzero_ps();
        let (wp, xp) = (w.as_ptr() as *const __m128i, x.as_ptr() as *const __m128i);
        for (g, &s) in scale.iter().enumerate() {
            let (w0, w1) = (
                _mm_loadu_si128(wp.add(2 * g)),
                _mm_loadu_si128(wp.add(2 * g + 1)),
            );
            let xg = xp.add(4 * g);
            let mut lanes = _mm_madd_epi16(lo(w0), _mm_loadu_si128(xg));
            lanes = _mm_add_epi32(lanes, _mm_madd_epi16(hi(w0), _mm_loadu_si128(xg.add(1))));
            lanes = _mm_add_epi32(lanes, _mm_madd_epi16(lo(w1), _mm_loadu_si128(xg.add(2))));
            lanes = _mm_add_epi32(lanes, _mm_madd_epi16(hi(w1), _mm_loadu_si128(xg.add(3))));
            acc = _mm_add_ps(acc, _mm_mul_ps(_mm_cvtepi32_ps(lanes), _mm_set1_ps(s)));
        }
        let mut a = [0.0f32; 4];
        _mm_storeu_ps(a.as_mut_ptr(), acc);
        (a[0] + a[1]) + (a[2] + a[3])
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
        let (g, w, x) = (5, values(5 * GROUP, 1), values(5 * GROUP, 2));
        let m = Q8Matrix::from_f32(&w, 1, 5 * GROUP);
        let mut xq = vec![0i16; 5 * GROUP];
        let scales: Vec<f32> = x
            .chunks(GROUP)
            .zip(xq.chunks_mut(GROUP))
            .map(|(p, o)| quantise_group(p, 32767.0, o, |v| v as i16) * 0.75)
            .collect();
        assert_eq!(scales.len(), g);
        let combined: Vec<f32> = scales.iter().zip(&m.scales).map(|(a, b)| a * b).collect();
        assert_eq!(
            row_dot(&m.q, &xq, &combined).to_bits(),
            row_dot_portable(&m.q, &xq, &combined).to_bits()
        );
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
