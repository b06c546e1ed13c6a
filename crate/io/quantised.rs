//! Quantised matrices in safetensors files: the layout veer reads, and writes with `io::quantise`
//! (`veer pack --dtype q8`, `veer convert-gguf --dtype q8|q4`; docs/models.md, "Quantised files").
//!
//! A quantised `X.weight` of logical shape [out, in] is stored as plain safetensors tensors, so any
//! safetensors reader can open the file and the names stay HF's:
//! - **q8**: `X.weight` I8 [out, in] and `X.weight_scale` F32 or F16 [out, in / group]; value = q · scale.
//!   The group is `in` (one scale per output row: what `veer pack` writes for encoders, as
//!   compressed-tensors' "channel" strategy) or a multiple of 32 that divides `in` (GGUF's Q8_0 is 32).
//! - **q4**: `X.weight` U8 [out, in / 2], `X.weight_scale` and `X.weight_min` F32 or F16 [out, in / 32];
//!   each group of 32 inputs is 16 bytes, byte j holding element j in its low nibble and element j + 16
//!   in its high nibble (GGUF's Q4_1 order); value = q · scale + min, q in 0..=15.
//!
//! Everything else (norms, biases, position tables) stays a float tensor. A reader that runs on f32
//! (a GPU, `weights: 'f32'`) dequantises these on load; the CPU kernels use them as they are.

use safetensors::{Dtype, SafeTensors};

use crate::io::floats::floats;

/// Inputs per q4 group, and per q8 group where a file has groups (GGUF's block size).
pub const GROUP: usize = 32;

/// A quantised [out, in] matrix as its file holds it (`q` borrowed from the file's bytes).
pub enum Packed<'a> {
    /// `q`: out × in int8 (as bytes); `scales`: [out, in / group].
    Q8 { q: &'a [u8], scales: Vec<f32>, group: usize },
    /// `q`: out × in / 2 bytes, in GGUF Q4_1 nibble order; `scales`, `mins`: [out, in / 32].
    Q4 { q: &'a [u8], scales: Vec<f32>, mins: Vec<f32> },
}

impl Packed<'_> {
    /// The f32 values, row-major [out, inp] (the caller passes the shape `read` checked).
    pub fn dequantise(&self, out: usize, inp: usize) -> Vec<f32> {
        let mut v = Vec::with_capacity(out * inp);
        match self {
            Packed::Q8 { q, scales, group } => {
                let per_row = inp / group;
                for (r, row) in q.chunks_exact(inp).take(out).enumerate() {
                    v.extend(row.iter().enumerate().map(|(j, &b)| b as i8 as f32 * scales[r * per_row + j / group]));
                }
            }
            Packed::Q4 { q, scales, mins } => {
                for (g, block) in q.chunks_exact(GROUP / 2).take(out * inp / GROUP).enumerate() {
                    let (d, m) = (scales[g], mins[g]);
                    v.extend(block.iter().map(|&b| d * (b & 0x0f) as f32 + m));
                    v.extend(block.iter().map(|&b| d * (b >> 4) as f32 + m));
                }
            }
        }
        v
    }

    /// Element `i` (row-major, < out × inp) dequantised.
    pub fn at(&self, i: usize, inp: usize) -> f32 {
        match self {
            Packed::Q8 { q, scales, group } => q[i] as i8 as f32 * scales[(i / inp) * (inp / group) + (i % inp) / group],
            Packed::Q4 { q, scales, mins } => {
                let (g, j) = (i / GROUP, i % GROUP);
                let b = q[g * GROUP / 2 + j % (GROUP / 2)];
                scales[g] * (if j < GROUP / 2 { b & 0x0f } else { b >> 4 }) as f32 + mins[g]
            }
        }
    }
}

/// Whether the stored tensor `name` is quantised (an I8 or U8 weight with a `_scale` beside it).
pub fn is_packed(st: &SafeTensors, name: &str) -> bool {
    st.tensor(name).is_ok_and(|t| matches!(t.dtype(), Dtype::I8 | Dtype::U8)) && st.tensor(&format!("{name}_scale")).is_ok()
}

/// `name` as a quantised [out, inp] matrix: `Ok(None)` when it is stored as floats, `Err` (what is
/// wrong, for the loader's problem list) when its tensors do not make the layout above. `shape` was
/// bounded by the config before it gets here; every stored shape is compared with it before use.
pub fn read<'a>(st: &SafeTensors<'a>, name: &str, out: usize, inp: usize) -> Result<Option<Packed<'a>>, String> {
    let Ok(w) = st.tensor(name) else { return Ok(None) };
    if !matches!(w.dtype(), Dtype::I8 | Dtype::U8) {
        return Ok(None);
    }
    let side = |suffix: &str, cols: usize| -> Result<Vec<f32>, String> {
        let full = format!("{name}_{suffix}");
        let t = st.tensor(&full).map_err(|_| format!("`{name}` is {:?}, but `{full}` is missing", w.dtype()))?;
        if t.shape() != [out, cols] {
            return Err(format!("`{full}` has shape {:?}, expected [{out}, {cols}]", t.shape()));
        }
        match t.dtype() {
            Dtype::F32 | Dtype::F16 => floats(t.dtype(), t.data()).ok_or_else(|| format!("`{full}`: unreadable")),
            d => Err(format!("`{full}` has dtype {d:?}; expected F32 or F16")),
        }
    };
    match w.dtype() {
        Dtype::I8 => {
            if w.shape() != [out, inp] {
                return Err(format!("`{name}` (I8) has shape {:?}, expected [{out}, {inp}]", w.shape()));
            }
            let groups = st.tensor(&format!("{name}_scale")).ok().and_then(|t| t.shape().get(1).copied()).unwrap_or(0);
            if groups == 0 || inp % groups != 0 || (groups > 1 && (inp / groups) % GROUP != 0) {
                return Err(format!("`{name}_scale` has {groups} groups per row of {inp}: expected 1, or groups of a multiple of {GROUP} inputs"));
            }
            Ok(Some(Packed::Q8 { q: w.data(), scales: side("scale", groups)?, group: inp / groups }))
        }
        _ => {
            if inp % GROUP != 0 || w.shape() != [out, inp / 2] {
                return Err(format!("`{name}` (U8, q4) has shape {:?}, expected [{out}, {}] with {inp} a multiple of {GROUP}", w.shape(), inp / 2));
            }
            Ok(Some(Packed::Q4 { q: w.data(), scales: side("scale", inp / GROUP)?, mins: side("min", inp / GROUP)? }))
        }
    }
}
