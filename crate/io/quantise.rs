//! Writing quantised matrices (io::quantised's layout): from f32 values, or from a GGUF's own blocks.

use half::f16;
use safetensors::Dtype;

use crate::io::quantised::GROUP;
use crate::io::safetensors::Stored;

/// Whether `veer pack --dtype q8` quantises a tensor: the matrices that are multiplied or looked up
/// row by row (linear weights, word embeddings), not norms, biases or position and token-type tables
/// (small, and added to every token).
pub fn quantisable(name: &str, shape: &[usize]) -> bool {
    let skip = ["norm", "position_embeddings", "token_type_embeddings"];
    shape.len() == 2 && shape.iter().all(|&d| d >= 2) && name.ends_with(".weight") && !skip.iter().any(|s| name.to_ascii_lowercase().contains(s))
}

fn tensor(name: String, dtype: Dtype, shape: Vec<usize>, bytes: Vec<u8>) -> Stored {
    Stored { name, dtype, shape, bytes }
}

fn f16_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|&x| f16::from_f32(x).to_le_bytes()).collect()
}

/// q8 with one F32 scale per output row (what `veer pack` writes): `values` [out, inp] row-major.
pub fn q8_per_row(name: &str, out: usize, inp: usize, values: &[f32]) -> [Stored; 2] {
    let mut q = vec![0i8; out * inp];
    let scales: Vec<f32> = values
        .chunks_exact(inp)
        .zip(q.chunks_exact_mut(inp))
        .map(|(row, qr)| crate::base::math::quantise_symmetric(row, 127.0, qr, |v| v as i8))
        .collect();
    [
        tensor(name.into(), Dtype::I8, vec![out, inp], q.into_iter().map(|b| b as u8).collect()),
        tensor(format!("{name}_scale"), Dtype::F32, vec![out, 1], scales.iter().flat_map(|s| s.to_le_bytes()).collect()),
    ]
}

/// q8 in groups of `group` inputs (a multiple of 32 that divides inp) with F16 scales (GGUF Q8_0's
/// precision), from f32 values [out, inp]: each scale is rounded to f16 first and the values divided by
/// the rounded scale.
pub fn q8_groups(name: &str, out: usize, inp: usize, values: &[f32], group: usize) -> [Stored; 2] {
    let mut q = Vec::with_capacity(out * inp);
    let mut scales = Vec::with_capacity(out * inp / group);
    for g in values.chunks_exact(group) {
        let amax = g.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        let d = f16::from_f32(amax / 127.0).to_f32();
        let inv = if d > 0.0 { 1.0 / d } else { 0.0 };
        q.extend(g.iter().map(|&v| (v * inv).round_ties_even().clamp(-127.0, 127.0) as i8 as u8));
        scales.push(d);
    }
    [tensor(name.into(), Dtype::I8, vec![out, inp], q), tensor(format!("{name}_scale"), Dtype::F16, vec![out, inp / group], f16_bytes(&scales))]
}

/// q4 (GGUF Q4_1's arithmetic: per group of 32, min and (max − min) / 15 rounded to f16) from f32
/// values [out, inp] (inp a multiple of 32).
pub fn q4_groups(name: &str, out: usize, inp: usize, values: &[f32]) -> [Stored; 3] {
    let (mut q, mut scales, mut mins) = (Vec::with_capacity(out * inp / 2), Vec::new(), Vec::new());
    for g in values.chunks_exact(GROUP) {
        let (lo, hi) = g.iter().fold((f32::INFINITY, f32::NEG_INFINITY), |(a, b), &v| (a.min(v), b.max(v)));
        let (d, m) = (f16::from_f32((hi - lo) / 15.0).to_f32(), f16::from_f32(lo).to_f32());
        let inv = if d > 0.0 { 1.0 / d } else { 0.0 };
        let nib = |v: f32| ((v - m) * inv).round_ties_even().clamp(0.0, 15.0) as u8;
        q.extend((0..GROUP / 2).map(|j| nib(g[j]) | (nib(g[j + GROUP / 2]) << 4)));
        scales.push(d);
        mins.push(m);
    }
    let side = |suffix: &str, v: &[f32]| tensor(format!("{name}_{suffix}"), Dtype::F16, vec![out, inp / GROUP], f16_bytes(v));
    [tensor(name.into(), Dtype::U8, vec![out, inp / 2], q), side("scale", &scales), side("min", &mins)]
}

/// GGUF Q8_0 blocks (f16 d, 32 × i8) of an [out, inp] matrix, rows in `order` (`order[r]` = the stored
/// row that becomes row r), as q8 tensors: the file's own values, not quantised again.
pub fn q8_from_q8_0(name: &str, out: usize, inp: usize, raw: &[u8], order: &[usize]) -> [Stored; 2] {
    let per_row = inp / GROUP;
    let (mut q, mut d) = (Vec::with_capacity(out * inp), Vec::with_capacity(out * per_row * 2));
    for &r in order {
        for block in raw[r * per_row * 34..][..per_row * 34].chunks_exact(34) {
            d.extend_from_slice(&block[..2]);
            q.extend_from_slice(&block[2..]);
        }
    }
    [tensor(name.into(), Dtype::I8, vec![out, inp], q), tensor(format!("{name}_scale"), Dtype::F16, vec![out, per_row], d)]
}

/// GGUF Q4_1 blocks (f16 d, f16 m, 16 bytes) of an [out, inp] matrix, rows in `order`, as q4 tensors.
pub fn q4_from_q4_1(name: &str, out: usize, inp: usize, raw: &[u8], order: &[usize]) -> [Stored; 3] {
    let per_row = inp / GROUP;
    let (mut q, mut d, mut m) = (Vec::with_capacity(out * inp / 2), Vec::new(), Vec::new());
    for &r in order {
        for block in raw[r * per_row * 20..][..per_row * 20].chunks_exact(20) {
            d.extend_from_slice(&block[..2]);
            m.extend_from_slice(&block[2..4]);
            q.extend_from_slice(&block[4..]);
        }
    }
    let side = |suffix: &str, b: Vec<u8>| tensor(format!("{name}_{suffix}"), Dtype::F16, vec![out, per_row], b);
    [tensor(name.into(), Dtype::U8, vec![out, inp / 2], q), side("scale", d), side("min", m)]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::io::quantised::{is_packed, read};
    use safetensors::SafeTensors;

    fn file(tensors: &[Stored]) -> Vec<u8> {
        crate::io::safetensors::write(tensors, Default::default(), "t").unwrap()
    }

    fn values(n: usize) -> Vec<f32> {
        (0..n).map(|i| ((i * 7919 % 201) as f32 - 100.0) / 37.0).collect()
    }

    #[test]
    fn each_writer_reads_back_within_half_a_step() {
        let (out, inp) = (3, 64);
        let v = values(out * inp);
        for (tensors, step) in [(q8_per_row("w", out, inp, &v).into_iter().collect::<Vec<_>>(), 2.71 / 127.0), (q8_groups("w", out, inp, &v, 32).into_iter().collect::<Vec<_>>(), 2.71 / 127.0), (q4_groups("w", out, inp, &v).into_iter().collect::<Vec<_>>(), 5.41 / 15.0)] {
            let bytes = file(&tensors);
            let st = SafeTensors::deserialize(&bytes).unwrap();
            assert!(is_packed(&st, "w"));
            let back = read(&st, "w", out, inp).unwrap().unwrap().dequantise(out, inp);
            for (a, b) in v.iter().zip(&back) {
                assert!((a - b).abs() <= step / 2.0 + 1e-3, "{a} vs {b}");
            }
        }
    }

    #[test]
    fn gguf_blocks_are_copied_in_row_order() {
        // Two rows of one Q8_0 block each, stored swapped; and two Q4_1 rows.
        let block8 = |d: f32, q0: i8| [f16::from_f32(d).to_le_bytes().to_vec(), (0..32).map(|j| (q0 + j as i8) as u8).collect()].concat();
        let raw = [block8(0.5, -3), block8(0.25, 1)].concat();
        let t = q8_from_q8_0("w", 2, 32, &raw, &[1, 0]);
        let bytes = file(&t);
        let st = SafeTensors::deserialize(&bytes).unwrap();
        let v = read(&st, "w", 2, 32).unwrap().unwrap().dequantise(2, 32);
        assert_eq!((v[0], v[31], v[32]), (0.25, 0.25 * 32.0, -1.5));
        let block4 = |d: f32, m: f32| [f16::from_f32(d).to_le_bytes().to_vec(), f16::from_f32(m).to_le_bytes().to_vec(), (0..16u8).map(|j| j | ((15 - j) << 4)).collect()].concat();
        let t = q4_from_q4_1("w", 2, 32, &[block4(0.5, -1.0), block4(1.0, 0.0)].concat(), &[0, 1]);
        let bytes = file(&t);
        let st = SafeTensors::deserialize(&bytes).unwrap();
        let v = read(&st, "w", 2, 32).unwrap().unwrap().dequantise(2, 32);
        assert_eq!(v, crate::io::gguf::dequantize(crate::io::gguf::GgmlType::Q4_1, &[block4(0.5, -1.0), block4(1.0, 0.0)].concat(), 64));
    }

    #[test]
    fn malformed_layouts_are_named_not_trusted() {
        let v = values(2 * 64);
        let mut t: Vec<Stored> = q8_groups("w", 2, 64, &v, 32).into_iter().collect();
        t[1].shape = vec![2, 3]; // 3 groups do not divide 64 inputs
        t[1].bytes = vec![0; 12];
        let bytes = file(&t);
        let st = SafeTensors::deserialize(&bytes).unwrap();
        assert!(read(&st, "w", 2, 64).is_err());
        assert!(read(&st, "w", 2, 32).err().unwrap().contains("expected [2, 32]"));
        let bytes = file(&q4_groups("w", 2, 64, &v)[..2]); // no `_min`
        let st = SafeTensors::deserialize(&bytes).unwrap();
        assert!(read(&st, "w", 2, 64).err().unwrap().contains("w_min"));
        assert!(quantisable("encoder.layer.0.intermediate.dense.weight", &[1536, 384]));
        assert!(!quantisable("embeddings.LayerNorm.weight", &[384]) && !quantisable("embeddings.position_embeddings.weight", &[512, 384]));
    }
}
