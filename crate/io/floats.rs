//! Tensor bytes as f32: the float decoding the loader, the quantised layout and `veer pack` share.

use half::{bf16, f16};
use safetensors::Dtype;

/// Little-endian F32/F16/BF16 tensor bytes as f32; `None` for any other dtype.
pub fn floats(dtype: Dtype, data: &[u8]) -> Option<Vec<f32>> {
    Some(match dtype {
        Dtype::F32 => data.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect(),
        Dtype::F16 => f16_to_f32(data),
        Dtype::BF16 => data.chunks_exact(2).map(|b| bf16::from_le_bytes([b[0], b[1]]).to_f32()).collect(),
        _ => return None,
    })
}

/// Little-endian F16 bytes as f32, exactly as `half` converts them. In wasm, 8 at a time in SIMD128:
/// wasm has no f16 instruction, and `half`'s portable conversion branches per value (this took about
/// 10 % off creating a model from an F16 file in the browser: bench/results/f16-ab-*.json).
fn f16_to_f32(data: &[u8]) -> Vec<f32> {
    let scalar = |b: &[u8]| f16::from_le_bytes([b[0], b[1]]).to_f32();
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    {
        use core::arch::wasm32::{v128, v128_store};
        let mut out = vec![0.0f32; data.len() / 2];
        let blocks = data.chunks_exact(16);
        let rest = blocks.remainder();
        let (whole, tail) = out.split_at_mut(data.len() / 16 * 8);
        for (b, o) in blocks.zip(whole.chunks_exact_mut(8)) {
            // SAFETY: `b` is 16 bytes and `o` 8 f32 (chunks_exact); unaligned access is allowed in wasm.
            unsafe {
                let [lo, hi] = f16x8_to_f32_simd128(b.as_ptr());
                v128_store(o.as_mut_ptr() as *mut v128, lo);
                v128_store(o.as_mut_ptr().add(4) as *mut v128, hi);
            }
        }
        for (b, o) in rest.chunks_exact(2).zip(tail) {
            *o = scalar(b);
        }
        out
    }
    #[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
    data.chunks_exact(2).map(scalar).collect()
}

/// Eight little-endian f16 at `p` as two f32x4. Finite values: the exponent and mantissa bits moved
/// into f32 position give the value × 2⁻¹¹², so one exact multiply by 2¹¹² rebiases normals and
/// normalises subnormals (wasm keeps subnormals). Infinities keep an all-ones exponent; NaNs also get
/// the quiet bit, their payload kept (as `half` does). The sign is put back last.
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
unsafe fn f16x8_to_f32_simd128(p: *const u8) -> [core::arch::wasm32::v128; 2] {
    use core::arch::wasm32::*;
    let h = unsafe { v128_load(p as *const v128) };
    [u32x4_extend_low_u16x8(h), u32x4_extend_high_u16x8(h)].map(|h| {
        let em = v128_and(h, u32x4_splat(0x7fff));
        let finite = f32x4_mul(i32x4_shl(em, 13), f32x4_splat(f32::from_bits(0x7780_0000))); // × 2¹¹²
        let special = v128_or(v128_or(i32x4_shl(em, 13), u32x4_splat(0x7f80_0000)), v128_and(u32x4_gt(em, u32x4_splat(0x7c00)), u32x4_splat(0x0040_0000)));
        let value = v128_bitselect(special, finite, u32x4_ge(em, u32x4_splat(0x7c00)));
        v128_or(value, i32x4_shl(v128_and(h, u32x4_splat(0x8000)), 16))
    })
}
