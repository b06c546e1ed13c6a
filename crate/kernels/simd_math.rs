//! exp, erf, GELU, softmax and silu(gate) · up on f32 slices, written twice — scalar and wasm SIMD128 —
//! with the same f32 operations in the same order, so both give the same bits (tests/web.rs checks
//! that in the browser). burn's CPU ops call libm's scalar `expf`/`erf` per value in wasm.

// --- GELU ------------------------------------------------------------------------------------------

// erf by Abramowitz & Stegun 7.1.26 (absolute error ≤ 1.5e-7), with exp by Cephes' `expf` scheme
// (n = round(v·log₂e), r = v − n·ln 2 in two parts, a degree-5 polynomial, then 2ⁿ by exponent bits).
// Written twice, scalar and SIMD128, with the same f32 operations in the same order.
const P: f32 = 0.327_591_1;
const A: [f32; 5] = [0.254_829_6, -0.284_496_74, 1.421_413_7, -1.453_152, 1.061_405_4];
const LOG2E: f32 = std::f32::consts::LOG2_E;
const LN2_HI: f32 = 0.693_359_4;
const LN2_LO: f32 = -2.121_944_4e-4;
const EXP_POLY: [f32; 6] = [1.987_569_1e-4, 1.398_199_9e-3, 8.333_452e-3, 4.166_579_6e-2, 0.166_666_65, 0.5];
/// erf's argument is clamped to ±ERF_MAX: erf(4) is 1 − 1.5e−8, which rounds to 1 in f32, and no
/// value computed below it is ever subnormal (e^(−16) ≈ 1.1e−7). Subnormal products take x86 about
/// 100 cycles each: unclamped, a microbenchmark's large activations made this GELU 2.3× slower.
const ERF_MAX: f32 = 4.0;
/// 1.5 · 2²³: adding it to a small integer n puts n in the low mantissa bits.
const MAGIC: f32 = 12_582_912.0;

/// e^v for EXP_MIN ≤ v ≤ 0 (erf's e^(−x²), softmax's e^(x − max)): n ≥ −126, so 2ⁿ is normal.
#[inline]
fn exp_neg(v: f32) -> f32 {
    let n = (v * LOG2E).round_ties_even(); // −126 ..= 0
    let r = (v - n * LN2_HI) - n * LN2_LO;
    let mut p = EXP_POLY[0];
    for c in &EXP_POLY[1..] {
        p = p * r + c;
    }
    let e = (p * (r * r) + r) + 1.0;
    // 2ⁿ: n + MAGIC holds n + 127 in its low bits once MAGIC's own bits less 127 are taken away (an
    // integer add, where a float → int conversion is a long sequence in V8).
    let biased = ((n + MAGIC).to_bits() as i32).wrapping_sub(MAGIC.to_bits() as i32 - 127);
    e * f32::from_bits((biased << 23) as u32)
}

/// erf(x), absolute error ≤ 1.5e-7 plus rounding.
#[inline]
pub fn erf(x: f32) -> f32 {
    // As wasm's `f32x4.pmin(|x|, ERF_MAX)` (one `minps`), NaN included; `f32::min` is a longer sequence.
    let a = x.abs();
    let a = if ERF_MAX < a { ERF_MAX } else { a };
    let t = 1.0 / (1.0 + P * a);
    let mut poly = A[4];
    for c in A[..4].iter().rev() {
        poly = poly * t + c;
    }
    let y = 1.0 - (poly * t) * exp_neg(-(a * a));
    y.copysign(x)
}

/// HF `gelu`: 0.5 · x · (1 + erf(x / √2)).
#[inline]
pub fn gelu(x: f32) -> f32 {
    (0.5 * x) * (1.0 + erf(x * std::f32::consts::FRAC_1_SQRT_2))
}

pub fn gelu_in_place(v: &mut [f32], portable: bool) {
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    if !portable {
        // SAFETY: whole groups of 4 within `v`.
        unsafe { gelu_simd128(v) };
        let whole = v.len() / 4 * 4;
        for x in &mut v[whole..] {
            *x = gelu(*x);
        }
        return;
    }
    let _ = portable;
    for x in v {
        *x = gelu(*x);
    }
}

/// GELU of every whole group of 4 values in `v` (the caller does the rest): one loop, so that its
/// constants are built once, outside it.
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
#[inline(always)]
unsafe fn gelu_simd128(v: &mut [f32]) {
    use core::arch::wasm32::*;
    unsafe {
        let s = |v: f32| f32x4_splat(v);
        let (one, half, rsqrt2, p_, max) = (s(1.0), s(0.5), s(std::f32::consts::FRAC_1_SQRT_2), s(P), s(ERF_MAX));
        let sign = i32x4_splat(i32::MIN);
        let a_ = A.map(s);
        let p = v.as_mut_ptr() as *mut v128;
        for i in 0..v.len() / 4 {
            let x = v128_load(p.add(i));
            let z = f32x4_mul(x, rsqrt2);
            let a = f32x4_pmin(f32x4_abs(z), max);
            let t = f32x4_div(one, f32x4_add(one, f32x4_mul(p_, a)));
            let mut poly = a_[4];
            for k in (0..4).rev() {
                poly = f32x4_add(f32x4_mul(poly, t), a_[k]);
            }
            let e = exp_neg_simd128(f32x4_neg(f32x4_mul(a, a)));
            let y = f32x4_sub(one, f32x4_mul(f32x4_mul(poly, t), e));
            let erf = v128_or(v128_andnot(y, sign), v128_and(z, sign));
            v128_store(p.add(i), f32x4_mul(f32x4_mul(half, x), f32x4_add(one, erf)));
        }
    }
}

/// `exp_neg` of four lanes, with the same operations in the same order (the same bits). Its constants
/// are `v128.const`s, hoisted out of the callers' loops.
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
#[inline(always)]
unsafe fn exp_neg_simd128(w: core::arch::wasm32::v128) -> core::arch::wasm32::v128 {
    use core::arch::wasm32::*;
    let s = |v: f32| f32x4_splat(v);
    let n = f32x4_nearest(f32x4_mul(w, s(LOG2E)));
    let r = f32x4_sub(f32x4_sub(w, f32x4_mul(n, s(LN2_HI))), f32x4_mul(n, s(LN2_LO)));
    let mut e = s(EXP_POLY[0]);
    for &c in &EXP_POLY[1..] {
        e = f32x4_add(f32x4_mul(e, r), s(c));
    }
    let e = f32x4_add(f32x4_add(f32x4_mul(e, f32x4_mul(r, r)), r), s(1.0));
    f32x4_mul(e, i32x4_shl(i32x4_sub(f32x4_add(n, s(MAGIC)), i32x4_splat(MAGIC.to_bits() as i32 - 127)), 23))
}

// --- softmax ---------------------------------------------------------------------------------------

/// Below this, e^v is taken as 0: e^(−87) ≈ 1.6e−38 is about the smallest that stays normal, and
/// masked attention scores (−1e9) land here, where libm's `expf` gives 0 or a subnormal.
const EXP_MIN: f32 = -87.0;

/// e^v for v ≤ 0: 0 below EXP_MIN, NaN for NaN. The argument is clamped first, so that no lane of the
/// SIMD version computes with a garbage exponent (subnormal operands are slow).
#[inline]
fn exp_nonpos(v: f32) -> f32 {
    let e = exp_neg(if v < EXP_MIN { EXP_MIN } else { v });
    if v < EXP_MIN { 0.0 } else { e }
}

/// Softmax of each row of `width` values in `v`, in place: the attention probabilities on the
/// browser's CPU device, where burn's softmax calls libm's scalar `expf` per score (5.6 % of a
/// forward of 64-token texts in V8). Defined as: m = the row's largest value (NaN ignored, as by
/// `f32x4.pmax`); e = exp_nonpos(x − m); the sum over 4 lanes (lane l: the whole groups' values
/// 4j + l), then (s0 + s1) + (s2 + s3), then the ragged tail in order; each e divided by the sum.
/// A NaN score makes its row NaN.
pub fn softmax_rows(v: &mut [f32], width: usize, portable: bool) {
    if width == 0 {
        return;
    }
    for row in v.chunks_exact_mut(width) {
        #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
        if !portable {
            // SAFETY: `softmax_simd128` touches whole groups of 4 within `row` only.
            unsafe { softmax_simd128(row) };
            continue;
        }
        let _ = portable;
        let m = row.iter().fold(f32::NEG_INFINITY, |m, &x| if m < x { x } else { m });
        let whole = row.len() / 4 * 4;
        let mut lanes = [0.0f32; 4];
        for (i, x) in row[..whole].iter_mut().enumerate() {
            *x = exp_nonpos(*x - m);
            lanes[i % 4] += *x;
        }
        let mut sum = (lanes[0] + lanes[1]) + (lanes[2] + lanes[3]);
        for x in &mut row[whole..] {
            *x = exp_nonpos(*x - m);
            sum += *x;
        }
        for x in row.iter_mut() {
            *x /= sum;
        }
    }
}

#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
#[inline]
unsafe fn softmax_simd128(row: &mut [f32]) {
    use core::arch::wasm32::*;
    unsafe {
        let (groups, whole) = (row.len() / 4, row.len() / 4 * 4);
        let p = row.as_mut_ptr() as *mut v128;
        let mut m4 = f32x4_splat(f32::NEG_INFINITY);
        for i in 0..groups {
            m4 = f32x4_pmax(m4, v128_load(p.add(i)));
        }
        let lanes = [f32x4_extract_lane::<0>(m4), f32x4_extract_lane::<1>(m4), f32x4_extract_lane::<2>(m4), f32x4_extract_lane::<3>(m4)];
        let m = lanes.into_iter().chain(row[whole..].iter().copied()).fold(f32::NEG_INFINITY, |m, x| if m < x { x } else { m });
        let (mv, min, zero) = (f32x4_splat(m), f32x4_splat(EXP_MIN), f32x4_splat(0.0));
        let mut s4 = zero;
        for i in 0..groups {
            let w = f32x4_sub(v128_load(p.add(i)), mv);
            let e = exp_neg_simd128(f32x4_pmax(w, min)); // pmax(w, min): w < min ? min : w, NaN kept
            let e = v128_bitselect(zero, e, f32x4_lt(w, min));
            v128_store(p.add(i), e);
            s4 = f32x4_add(s4, e);
        }
        let mut sum = (f32x4_extract_lane::<0>(s4) + f32x4_extract_lane::<1>(s4)) + (f32x4_extract_lane::<2>(s4) + f32x4_extract_lane::<3>(s4));
        for x in &mut row[whole..] {
            *x = exp_nonpos(*x - m);
            sum += *x;
        }
        let sv = f32x4_splat(sum);
        for i in 0..groups {
            v128_store(p.add(i), f32x4_div(v128_load(p.add(i)), sv));
        }
        for x in &mut row[whole..] {
            *x /= sum;
        }
    }
}

// --- SiLU · up ---------------------------------------------------------------------------------------

/// silu(g) · u (Llama's MLP: silu(gate) · up), with σ(g) from e = e^(−|g|) so that exp's argument is
/// never positive: σ(g) = 1 / (1 + e) for g ≥ 0, e / (1 + e) for g < 0.
#[inline]
fn silu_mul_one(g: f32, u: f32) -> f32 {
    let e = exp_nonpos(-g.abs());
    let num = if g < 0.0 { e } else { 1.0 };
    (g * (num / (1.0 + e))) * u
}

/// `g[i] = silu(g[i]) · u[i]` in place, by the definition above (`silu_mul_one`; the SIMD lanes give
/// its bits): on the browser's CPU device, where burn's SiLU calls libm's scalar `expf`.
pub fn silu_mul(g: &mut [f32], u: &[f32], portable: bool) {
    let n = g.len().min(u.len());
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    // SAFETY: whole groups of 4 within the first n values of both.
    let done = if portable { 0 } else { unsafe { silu_mul_simd128(g, u, n / 4) } };
    #[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
    let done = {
        let _ = portable;
        0
    };
    for (g, &u) in g[done..n].iter_mut().zip(&u[done..n]) {
        *g = silu_mul_one(*g, u);
    }
}

/// `silu_mul_one` over the first `groups` × 4 values; returns how many it did.
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
unsafe fn silu_mul_simd128(g: &mut [f32], u: &[f32], groups: usize) -> usize {
    use core::arch::wasm32::*;
    unsafe {
        let (gp, up) = (g.as_mut_ptr() as *mut v128, u.as_ptr() as *const v128);
        let (one, zero, min) = (f32x4_splat(1.0), f32x4_splat(0.0), f32x4_splat(EXP_MIN));
        for i in 0..groups {
            let x = v128_load(gp.add(i));
            let w = f32x4_neg(f32x4_abs(x));
            let e = v128_bitselect(zero, exp_neg_simd128(f32x4_pmax(w, min)), f32x4_lt(w, min));
            let num = v128_bitselect(e, one, f32x4_lt(x, zero));
            let y = f32x4_mul(f32x4_mul(x, f32x4_div(num, f32x4_add(one, e))), v128_load(up.add(i)));
            v128_store(gp.add(i), y);
        }
    }
    groups * 4
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn softmax_rows_are_close_to_f64_and_masked_scores_are_zero() {
        // Ragged widths, masked entries (−1e9), a row of one value, and a wide spread of scores.
        for width in [1, 3, 4, 7, 16, 27, 64] {
            let mut v: Vec<f32> = (0..3 * width).map(|i| ((i * 37 % 29) as f32 - 14.0) * 0.9).collect();
            for i in (0..v.len()).filter(|i| i % 5 == 3) {
                v[i] = -1e9;
            }
            // (probability, x − max) per value, in f64.
            let want: Vec<(f64, f64)> = v
                .chunks(width)
                .flat_map(|r| {
                    let m = r.iter().fold(f64::NEG_INFINITY, |m, &x| m.max(x as f64));
                    let e: Vec<(f64, f64)> = r.iter().map(|&x| ((x as f64 - m).exp(), x as f64 - m)).collect();
                    let s: f64 = e.iter().map(|e| e.0).sum();
                    e.into_iter().map(move |(x, d)| (x / s, d))
                })
                .collect();
            softmax_rows(&mut v, width, true);
            for (i, (&got, &(want, d))) in v.iter().zip(&want).enumerate() {
                // Relative: a few ulps, plus the f32 rounding of x − max (half an ulp of |x − max|,
                // which e^(x − max) turns into a relative error of that size).
                let bound = want * (3e-7 + 6e-8 * d.abs()) + 1e-38;
                assert!((got as f64 - want).abs() <= bound, "width {width} [{i}]: {got} vs {want}");
                if want < 1e-30 {
                    assert_eq!(got, 0.0, "width {width} [{i}]");
                }
            }
        }
        let mut nan = vec![0.0, f32::NAN, 1.0];
        softmax_rows(&mut nan, 3, true);
        assert!(nan.iter().all(|x| x.is_nan()));
    }

    #[test]
    fn silu_mul_is_close_to_f64() {
        let g: Vec<f32> = (-4000..=4000).map(|i| i as f32 / 50.0).chain([0.0, -0.0, -1e4, 1e4]).collect();
        let u: Vec<f32> = (0..g.len()).map(|i| ((i * 37 % 29) as f32 - 14.0) * 0.25).collect();
        let mut y = g.clone();
        silu_mul(&mut y, &u, true);
        for ((&y, &g), &u) in y.iter().zip(&g).zip(&u) {
            let want = g as f64 / (1.0 + (-(g as f64)).exp()) * u as f64;
            assert!((y as f64 - want).abs() <= 4e-7 * want.abs() + 1e-30, "silu({g}) · {u}: {y} vs {want}");
        }
        let mut nan = vec![f32::NAN];
        silu_mul(&mut nan, &[1.0], true);
        assert!(nan[0].is_nan());
    }

    #[test]
    fn gelu_follows_the_erf_form_closely() {
        // Against erf in f64 (`erf_f64`, written independently below).
        for i in -4000..=4000 {
            let x = i as f32 / 400.0; // −10 … 10
            let want = 0.5 * x as f64 * (1.0 + erf_f64(x as f64 / std::f64::consts::SQRT_2));
            let got = gelu(x) as f64;
            assert!((got - want).abs() <= 4e-7 * (1.0 + x.abs() as f64), "gelu({x}) = {got}, want {want}");
        }
        assert_eq!(gelu(0.0), 0.0);
        assert!(gelu(-100.0) == 0.0 && gelu(100.0) == 100.0);
        assert!(gelu(f32::NAN).is_nan());
    }

    /// erf in f64, independent of the code under test: its Taylor series below 3, erfc's continued
    /// fraction above; far more precise than an f32 check needs.
    fn erf_f64(x: f64) -> f64 {
        let a = x.abs();
        let v = if a < 3.0 {
            // Taylor series: erf(a) = 2/√π Σ (−1)ⁿ a^(2n+1) / (n! (2n+1)).
            let (mut term, mut sum, mut n) = (a, a, 0.0);
            while term.abs() > 1e-17 * sum.abs() {
                n += 1.0;
                term *= -a * a / n;
                sum += term / (2.0 * n + 1.0);
            }
            sum * 2.0 / std::f64::consts::PI.sqrt()
        } else {
            // erfc by its continued fraction (converges fast for a ≥ 3).
            let mut f = 0.0;
            for k in (1..60).rev() {
                f = (k as f64 / 2.0) / (a + f);
            }
            1.0 - (-a * a).exp() / (std::f64::consts::PI.sqrt() * (a + f))
        };
        v.copysign(x)
    }
}
