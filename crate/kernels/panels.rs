//! f32 `nn.Linear` layers for the CPU device in the browser: the weights packed once, at load, into
//! column panels for a wasm SIMD128 kernel. In V8 MiniLM's linear layers (GELU included) take
//! 0.67× the time they took with gemm's kernel and libm's erf (bench/results/panels-ab*.json, A/Bs in
//! one Chromium session).
//!
//! The profile of MiniLM in V8 put 82 % of a forward in gemm's SIMD128 matmul, at about 26 GFLOP/s.
//! Its microkernel keeps 12 accumulators (3 × 4 rows × 4 columns) plus its operands live:
//! more vector registers than V8 allocates on x86-64 (15), so it spills on every step. This kernel
//! keeps 8 accumulators (4 rows × 8 columns), two weight vectors and one broadcast x, and reads the
//! weights in the order it uses them: `PANEL` columns at a time, contiguous over the inputs.
//!
//! It also fuses what follows the product: the bias starts the accumulators and GELU (the encoder's
//! FFN) is applied while the rows are in L1; GELU was 14 % of the forward as libm's scalar `erf`.
//!
//! Every output is defined as: acc = bias; acc = acc + x[k] · w[k] for k in order (a multiply, then an
//! add: no fused multiply–add); then the activation. The SIMD lanes compute exactly that, so results are
//! bitwise the portable definition's (`tests/web.rs` checks in the browser, where the kernel runs).
//!
//! GELU, the attention softmax and Llama's silu(gate) · up share one SIMD exp (`simd_math`).

use crate::kernels::simd_math::gelu_in_place;

/// Output columns per panel: two f32x4 vectors.
pub const PANEL: usize = 8;
/// Rows of x per block: with `PANEL` columns, 8 accumulators.
const ROWS: usize = 4;

/// What is applied to each output after the bias.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Epilogue {
    None,
    /// HF `gelu` (erf form), with erf from `erf` below.
    Gelu,
}

/// An [out, in] weight (HF layout) and its bias, as panels: panel p holds columns p·PANEL.. of Wᵀ,
/// [in, PANEL] row-major; the last panel and the bias padded with zeros.
pub struct Panels {
    inp: usize,
    out: usize,
    w: Vec<f32>,    // [ceil(out / PANEL), in, PANEL]
    bias: Vec<f32>, // [ceil(out / PANEL) * PANEL]
}

impl Panels {
    /// `w`: [out, inp] row-major (`w.len() == out * inp`); `bias`: [out] or none (zeros).
    pub fn new(w: &[f32], out: usize, inp: usize, bias: Option<&[f32]>) -> Self {
        debug_assert_eq!(w.len(), out * inp);
        let panels = out.div_ceil(PANEL);
        let mut packed = vec![0.0f32; panels * inp * PANEL];
        for (o, row) in w.chunks_exact(inp.max(1)).take(out).enumerate() {
            let (p, j) = (o / PANEL, o % PANEL);
            let base = p * inp * PANEL + j;
            for (i, &v) in row.iter().enumerate() {
                packed[base + i * PANEL] = v;
            }
        }
        let mut b = vec![0.0f32; panels * PANEL];
        if let Some(bias) = bias {
            b[..out.min(bias.len())].copy_from_slice(&bias[..out.min(bias.len())]);
        }
        Panels { inp, out, w: packed, bias: b }
    }

    pub fn inp(&self) -> usize {
        self.inp
    }

    pub fn out(&self) -> usize {
        self.out
    }

    /// The weight as [in, out] row-major and the bias [out]: what the f32 tensor path holds (training).
    pub fn unpacked_t(&self) -> (Vec<f32>, Vec<f32>) {
        let mut t = vec![0.0f32; self.inp * self.out];
        for o in 0..self.out {
            let (p, j) = (o / PANEL, o % PANEL);
            for i in 0..self.inp {
                t[i * self.out + o] = self.w[(p * self.inp + i) * PANEL + j];
            }
        }
        (t, self.bias[..self.out].to_vec())
    }

    /// y = epilogue(x · Wᵀ + bias) for `n` rows of x ([n, in] row-major) → [n, out].
    pub fn forward(&self, x: &[f32], n: usize, epilogue: Epilogue) -> Vec<f32> {
        self.forward_with(x, n, epilogue, false)
    }

    /// `forward` by the portable definition the SIMD kernel follows lane for lane: the same bits.
    /// For tests that check that in the browser (`tests/web.rs`), where the crate's unit tests do not run.
    #[doc(hidden)]
    pub fn forward_portable(&self, x: &[f32], n: usize, epilogue: Epilogue) -> Vec<f32> {
        self.forward_with(x, n, epilogue, true)
    }

    fn forward_with(&self, x: &[f32], n: usize, epilogue: Epilogue, portable: bool) -> Vec<f32> {
        let (inp, out) = (self.inp, self.out);
        assert!(x.len() >= n * inp, "panels: {} values for {n} rows of {inp}", x.len());
        let mut y = vec![0.0f32; n * out];
        // A block's outputs for one panel, then copied out: `out` need not be a multiple of PANEL.
        let mut tile = [0.0f32; ROWS * PANEL];
        let mut r = 0;
        while r < n {
            let rows = (n - r).min(ROWS);
            let xs = &x[r * inp..(r + rows) * inp];
            for (p, panel) in self.w.chunks_exact((inp * PANEL).max(1)).enumerate() {
                let bias = &self.bias[p * PANEL..(p + 1) * PANEL];
                block(xs, rows, inp, panel, bias, &mut tile, portable);
                let cols = (out - p * PANEL).min(PANEL);
                for k in 0..rows {
                    let at = (r + k) * out + p * PANEL;
                    y[at..at + cols].copy_from_slice(&tile[k * PANEL..k * PANEL + cols]);
                }
            }
            if epilogue == Epilogue::Gelu {
                gelu_in_place(&mut y[r * out..(r + rows) * out], portable);
            }
            r += rows;
        }
        y
    }
}

/// One block: `rows` (≤ ROWS) rows of x ([rows, inp]) against one panel ([inp, PANEL]) into `tile`
/// ([rows, PANEL]).
#[inline]
fn block(x: &[f32], rows: usize, inp: usize, panel: &[f32], bias: &[f32], tile: &mut [f32; ROWS * PANEL], portable: bool) {
    debug_assert!(x.len() == rows * inp && panel.len() == inp * PANEL && bias.len() == PANEL);
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    if !portable {
        // SAFETY: the lengths asserted above, which `forward_with` guarantees by its slicing.
        unsafe {
            match rows {
                4 => block_simd128::<4>(x, inp, panel, bias, tile),
                3 => block_simd128::<3>(x, inp, panel, bias, tile),
                2 => block_simd128::<2>(x, inp, panel, bias, tile),
                _ => block_simd128::<1>(x, inp, panel, bias, tile),
            }
        }
        return;
    }
    let _ = portable;
    for r in 0..rows {
        for j in 0..PANEL {
            let mut acc = bias[j];
            for k in 0..inp {
                acc += x[r * inp + k] * panel[k * PANEL + j];
            }
            tile[r * PANEL + j] = acc;
        }
    }
}

#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
#[inline(always)]
unsafe fn block_simd128<const R: usize>(x: &[f32], inp: usize, panel: &[f32], bias: &[f32], tile: &mut [f32; ROWS * PANEL]) {
    use core::arch::wasm32::*;
    unsafe {
        let bp = bias.as_ptr() as *const v128;
        let mut acc = [[v128_load(bp), v128_load(bp.add(1))]; R];
        let (xp, wp) = (x.as_ptr(), panel.as_ptr());
        for k in 0..inp {
            let w0 = v128_load(wp.add(k * PANEL) as *const v128);
            let w1 = v128_load(wp.add(k * PANEL + 4) as *const v128);
            for (r, a) in acc.iter_mut().enumerate() {
                let b = f32x4_splat(*xp.add(r * inp + k));
                a[0] = f32x4_add(a[0], f32x4_mul(b, w0));
                a[1] = f32x4_add(a[1], f32x4_mul(b, w1));
            }
        }
        let tp = tile.as_mut_ptr();
        for (r, a) in acc.iter().enumerate() {
            v128_store(tp.add(r * PANEL) as *mut v128, a[0]);
            v128_store(tp.add(r * PANEL + 4) as *mut v128, a[1]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(n: usize, seed: u32) -> Vec<f32> {
        (0..n as u32).map(|i| ((i.wrapping_mul(2654435761) ^ seed.wrapping_mul(40503)).rotate_left(7) % 2001) as f32 / 1000.0 - 1.0).collect()
    }

    #[test]
    fn forward_is_the_product_plus_bias_for_ragged_shapes() {
        // 9 rows: two blocks of four and one; 13 outputs: a padded panel; 1 input.
        for (out, inp, n) in [(13, 70, 9), (8, 384, 4), (3, 1, 2), (16, 5, 1)] {
            let (w, x, b) = (values(out * inp, 1), values(n * inp, 2), values(out, 3));
            let m = Panels::new(&w, out, inp, Some(&b));
            let y = m.forward(&x, n, Epilogue::None);
            assert_eq!(y.len(), n * out);
            for r in 0..n {
                for o in 0..out {
                    let exact: f64 = b[o] as f64 + (0..inp).map(|k| x[r * inp + k] as f64 * w[o * inp + k] as f64).sum::<f64>();
                    assert!((y[r * out + o] as f64 - exact).abs() < 1e-5 * (inp as f64).sqrt(), "{out}x{inp}: {} vs {exact}", y[r * out + o]);
                }
            }
            let (t, bias) = m.unpacked_t();
            assert_eq!(bias, b);
            assert!((0..out).all(|o| (0..inp).all(|k| t[k * out + o] == w[o * inp + k])));
        }
    }
}
