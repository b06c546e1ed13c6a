//! GGUF reading and dequantisation (llama.cpp's file format, v2 and v3).
//!
//! veer runs HF-format folders; GGUF only enters through `veer convert-gguf` (and llama.cpp control
//! vectors), so this reads the metadata and dequantises to f32 and nothing more.

use std::collections::BTreeMap;

use half::f16;

use crate::base::error::{Error, Result};
use crate::base::limits::{MAX_ARRAY_DEPTH, MAX_METADATA_ELEMENTS};

const MAGIC: &[u8; 4] = b"GGUF";
const DEFAULT_ALIGNMENT: u64 = 32;

/// A metadata value. Arrays keep their element values (token lists are arrays of strings).
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    U64(u64),
    I64(i64),
    F64(f64),
    Bool(bool),
    Str(String),
    Array(Vec<Value>),
}

impl Value {
    pub fn as_u64(&self) -> Option<u64> {
        match *self {
            Value::U64(v) => Some(v),
            Value::I64(v) if v >= 0 => Some(v as u64),
            _ => None,
        }
    }
    pub fn as_f64(&self) -> Option<f64> {
        match *self {
            Value::F64(v) => Some(v),
            Value::U64(v) => Some(v as f64),
            Value::I64(v) => Some(v as f64),
            _ => None,
        }
    }
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }
    pub fn as_array(&self) -> Option<&[Value]> {
        match self {
            Value::Array(v) => Some(v),
            _ => None,
        }
    }
}

/// The ggml tensor types veer can dequantise.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GgmlType {
    F32,
    F16,
    Q4_0,
    Q4_1,
    Q8_0,
    BF16,
}

impl GgmlType {
    fn from_id(id: u32) -> Option<Self> {
        Some(match id {
            0 => Self::F32,
            1 => Self::F16,
            2 => Self::Q4_0,
            3 => Self::Q4_1,
            8 => Self::Q8_0,
            30 => Self::BF16,
            _ => return None,
        })
    }
    /// (elements per block, bytes per block)
    fn block(self) -> (usize, usize) {
        match self {
            Self::F32 => (1, 4),
            Self::F16 | Self::BF16 => (1, 2),
            Self::Q4_0 => (32, 18),
            Self::Q4_1 => (32, 20),
            Self::Q8_0 => (32, 34),
        }
    }
}

#[derive(Debug, Clone)]
pub struct TensorInfo {
    pub name: String,
    /// ggml order: `dims[0]` is the fastest-moving (input) axis; the PyTorch shape is the reverse.
    pub dims: Vec<u64>,
    pub ty: GgmlType,
    /// Absolute byte offset in the file.
    pub offset: usize,
    /// Elements and bytes, computed with checked arithmetic when the file was parsed: `offset + bytes`
    /// lies inside the file, so everything sized from these fits what is actually there.
    elements: usize,
    bytes: usize,
}

impl TensorInfo {
    pub fn num_elements(&self) -> usize {
        self.elements
    }
    /// Shape in PyTorch/HF order.
    pub fn hf_shape(&self) -> Vec<usize> {
        self.dims.iter().rev().map(|&d| d as usize).collect()
    }
}

pub struct Gguf<'a> {
    bytes: &'a [u8],
    pub metadata: BTreeMap<String, Value>,
    pub tensors: Vec<TensorInfo>,
    file: String,
}

struct Cursor<'a> {
    bytes: &'a [u8],
    pos: usize,
    file: &'a str,
    /// Metadata array elements read so far (bounded by `MAX_METADATA_ELEMENTS`).
    elements: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.bytes.len()).ok_or_else(|| {
            Error::file(self.file, format!("truncated: needed {n} bytes at offset {}", self.pos))
        })?;
        let s = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(s)
    }
    fn array<const N: usize>(&mut self) -> Result<[u8; N]> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }
    fn u32(&mut self) -> Result<u32> {
        Ok(u32::from_le_bytes(self.array()?))
    }
    fn u64(&mut self) -> Result<u64> {
        Ok(u64::from_le_bytes(self.array()?))
    }
    fn len(&mut self) -> Result<usize> {
        let n = self.u64()?;
        // Any length beyond the file is corruption; checking here avoids huge allocations.
        if n > self.bytes.len() as u64 {
            return Err(Error::file(self.file, format!("length {n} at offset {} exceeds file size", self.pos)));
        }
        Ok(n as usize)
    }
    fn string(&mut self) -> Result<String> {
        let n = self.len()?;
        let raw = self.take(n)?;
        String::from_utf8(raw.to_vec()).map_err(|_| Error::file(self.file, format!("invalid UTF-8 string at offset {}", self.pos - n)))
    }
    fn value(&mut self, ty: u32, depth: usize) -> Result<Value> {
        Ok(match ty {
            0 => Value::U64(self.array::<1>()?[0] as u64),
            1 => Value::I64(self.array::<1>()?[0] as i8 as i64),
            2 => Value::U64(u16::from_le_bytes(self.array()?) as u64),
            3 => Value::I64(i16::from_le_bytes(self.array()?) as i64),
            4 => Value::U64(self.u32()? as u64),
            5 => Value::I64(i32::from_le_bytes(self.array()?) as i64),
            6 => Value::F64(f32::from_le_bytes(self.array()?) as f64),
            7 => Value::Bool(self.array::<1>()?[0] != 0),
            8 => Value::Str(self.string()?),
            9 => {
                // Arrays of arrays exist (token merges are strings); deeper nesting is only a way to
                // exhaust the stack.
                if depth >= MAX_ARRAY_DEPTH {
                    return Err(Error::file(self.file, format!("metadata arrays nested more than {MAX_ARRAY_DEPTH} deep at offset {}", self.pos)));
                }
                let elem = self.u32()?;
                let n = self.len()?;
                self.elements = self.elements.saturating_add(n);
                if self.elements > MAX_METADATA_ELEMENTS {
                    return Err(Error::file(self.file, format!("more than {MAX_METADATA_ELEMENTS} metadata array elements (at offset {})", self.pos)));
                }
                let mut items = Vec::with_capacity(n.min(1 << 20));
                for _ in 0..n {
                    items.push(self.value(elem, depth + 1)?);
                }
                Value::Array(items)
            }
            10 => Value::U64(self.u64()?),
            11 => Value::I64(i64::from_le_bytes(self.array()?)),
            12 => Value::F64(f64::from_le_bytes(self.array()?)),
            other => return Err(Error::file(self.file, format!("unknown metadata value type {other} at offset {}", self.pos))),
        })
    }
}

impl<'a> Gguf<'a> {
    /// Parse the header, metadata and tensor table of a GGUF file held in memory.
    pub fn parse(bytes: &'a [u8], file: &str) -> Result<Self> {
        let mut c = Cursor { bytes, pos: 0, file, elements: 0 };
        if c.take(4)? != MAGIC {
            return Err(Error::file(file, "not a GGUF file (magic bytes are not `GGUF`)"));
        }
        let version = c.u32()?;
        if !(2..=3).contains(&version) {
            return Err(Error::file(file, format!("GGUF version {version}: veer reads versions 2 and 3")));
        }
        let n_tensors = c.len()?;
        let n_kv = c.len()?;
        let mut metadata = BTreeMap::new();
        for _ in 0..n_kv {
            let key = c.string()?;
            let ty = c.u32()?;
            let value = c.value(ty, 0)?;
            metadata.insert(key, value);
        }
        // Each tensor entry takes at least 24 bytes of header, so no more can be there than that allows.
        let mut raw = Vec::with_capacity(n_tensors.min((bytes.len() - c.pos) / 24));
        for _ in 0..n_tensors {
            let name = c.string()?;
            let n_dims = c.u32()? as usize;
            if n_dims > 4 {
                return Err(Error::tensor(name, format!("{n_dims} dimensions; GGUF allows at most 4")));
            }
            let dims = (0..n_dims).map(|_| c.u64()).collect::<Result<Vec<_>>>()?;
            let ty_id = c.u32()?;
            let ty = GgmlType::from_id(ty_id).ok_or_else(|| {
                Error::tensor(&name, format!("ggml type {ty_id} is not supported (veer reads F32, F16, BF16, Q4_0, Q4_1, Q8_0)"))
            })?;
            let rel = c.u64()?;
            raw.push((name, dims, ty, rel));
        }
        let alignment = metadata.get("general.alignment").and_then(Value::as_u64).unwrap_or(DEFAULT_ALIGNMENT);
        if alignment == 0 || alignment > 1 << 20 {
            return Err(Error::file(file, format!("general.alignment {alignment}: expected 1..=1048576")));
        }
        let data_start = (c.pos as u64).div_ceil(alignment) * alignment;
        let mut tensors = Vec::with_capacity(raw.len());
        for (name, dims, ty, rel) in raw {
            let (per_block, block_bytes) = ty.block();
            if let Some(d) = dims.iter().position(|&d| d == 0) {
                return Err(Error::tensor(&name, format!("dimension {d} is 0")));
            }
            // Checked: a product or offset that wraps would otherwise size an allocation or a slice.
            let elements = dims.iter().try_fold(1u64, |n, &d| n.checked_mul(d));
            let Some(elements) = elements.filter(|&n| n <= bytes.len() as u64 * 2) else {
                return Err(Error::tensor(&name, format!("dims {dims:?} hold more elements than {file} has bytes for")));
            };
            if elements % per_block as u64 != 0 {
                return Err(Error::tensor(&name, format!("{elements} elements is not a multiple of the {ty:?} block size {per_block}")));
            }
            let n_bytes = elements / per_block as u64 * block_bytes as u64;
            let end = data_start.checked_add(rel).and_then(|o| o.checked_add(n_bytes));
            if end.is_none_or(|e| e > bytes.len() as u64) {
                return Err(Error::tensor(&name, format!("data at offset {rel} (+{n_bytes} bytes) runs past the end of {file} (truncated download?)")));
            }
            let info = TensorInfo { offset: (data_start + rel) as usize, name, dims, ty, elements: elements as usize, bytes: n_bytes as usize };
            tensors.push(info);
        }
        Ok(Gguf { bytes, metadata, tensors, file: file.to_string() })
    }

    pub fn get(&self, key: &str) -> Result<&Value> {
        self.metadata.get(key).ok_or_else(|| Error::file(&self.file, format!("metadata key `{key}` is missing")))
    }

    pub fn tensor(&self, name: &str) -> Result<&TensorInfo> {
        self.tensors.iter().find(|t| t.name == name).ok_or_else(|| Error::tensor(name, format!("not found in {}", self.file)))
    }

    /// The tensor's raw bytes (still quantised). `parse` checked `offset + bytes ≤ len` for every
    /// tensor it lists; a `TensorInfo` edited by the caller (or from another file) gets no bytes.
    pub fn raw(&self, info: &TensorInfo) -> &'a [u8] {
        self.bytes.get(info.offset..info.offset.saturating_add(info.bytes)).unwrap_or_default()
    }

    /// All elements as f32, in ggml order (which is row-major for the HF shape).
    pub fn dequantize(&self, info: &TensorInfo) -> Vec<f32> {
        dequantize(info.ty, self.raw(info), info.num_elements())
    }
}

fn f16_at(b: &[u8], i: usize) -> f32 {
    f16::from_le_bytes([b[i], b[i + 1]]).to_f32()
}

/// Dequantise `n` elements of type `ty` from `raw` (exactly `n / block * block_bytes` long).
pub fn dequantize(ty: GgmlType, raw: &[u8], n: usize) -> Vec<f32> {
    // At most 32 elements per 18 bytes (Q4_0): a wrong `n` cannot size the allocation.
    let mut out = Vec::with_capacity(n.min(2 * raw.len()));
    match ty {
        GgmlType::F32 => out.extend(raw.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))),
        GgmlType::F16 => out.extend(raw.chunks_exact(2).map(|b| f16_at(b, 0))),
        GgmlType::BF16 => out.extend(raw.chunks_exact(2).map(|b| half::bf16::from_le_bytes([b[0], b[1]]).to_f32())),
        GgmlType::Q4_0 => {
            for block in raw.chunks_exact(18) {
                let d = f16_at(block, 0);
                let qs = &block[2..];
                out.extend(qs.iter().map(|&q| d * ((q & 0x0f) as f32 - 8.0)));
                out.extend(qs.iter().map(|&q| d * ((q >> 4) as f32 - 8.0)));
            }
        }
        GgmlType::Q4_1 => {
            // Element j < 16 is the low nibble of byte j, element j >= 16 the high nibble of byte j-16.
            for block in raw.chunks_exact(20) {
                let (d, m) = (f16_at(block, 0), f16_at(block, 2));
                let qs = &block[4..];
                out.extend(qs.iter().map(|&q| d * (q & 0x0f) as f32 + m));
                out.extend(qs.iter().map(|&q| d * (q >> 4) as f32 + m));
            }
        }
        GgmlType::Q8_0 => {
            for block in raw.chunks_exact(34) {
                let d = f16_at(block, 0);
                out.extend(block[2..].iter().map(|&q| d * (q as i8) as f32));
            }
        }
    }
    debug_assert_eq!(out.len(), n);
    out
}

/// Undo llama.cpp's row permutation of Q/K projections. Its converter interleaves the two rotate-half
/// halves of each head (HF rows [heads, 2, half] stored as [heads, half, 2]); the inverse views the GGUF
/// rows as [heads, half, 2] and swaps the last two axes back. Returns, for each HF row, the GGUF row it
/// comes from (so quantised rows can be moved whole).
pub fn unpermute_order(out: usize, heads: usize) -> Result<Vec<usize>> {
    match heads.checked_mul(2) {
        Some(group) if heads > 0 && out % group == 0 => {}
        _ => return Err(Error::Invalid(format!("cannot un-permute {out} rows over {heads} heads"))),
    }
    let half = out / heads / 2;
    let mut order = vec![0; out];
    for h in 0..heads {
        for two in 0..2 {
            for i in 0..half {
                order[h * 2 * half + two * half + i] = h * 2 * half + i * 2 + two; // HF row (h, two, i) ← GGUF row (h, i, two)
            }
        }
    }
    Ok(order)
}

/// `w` [out, cols] with its rows un-permuted (`unpermute_order`).
pub fn unpermute_rows(w: &[f32], out: usize, cols: usize, heads: usize) -> Result<Vec<f32>> {
    if out.checked_mul(cols) != Some(w.len()) {
        return Err(Error::Invalid(format!("cannot un-permute a [{out}, {cols}] matrix over {heads} heads")));
    }
    Ok(unpermute_order(out, heads)?.into_iter().flat_map(|src| w[src * cols..(src + 1) * cols].iter().copied()).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f16b(x: f32) -> [u8; 2] {
        f16::from_f32(x).to_le_bytes()
    }

    #[test]
    fn q4_1_block_by_hand() {
        let mut block = Vec::new();
        block.extend(f16b(0.5));
        block.extend(f16b(-1.0));
        // byte j holds element j (low nibble) and element j+16 (high nibble)
        block.extend((0..16u8).map(|j| j | ((15 - j) << 4)));
        let v = dequantize(GgmlType::Q4_1, &block, 32);
        for j in 0..16 {
            assert_eq!(v[j], 0.5 * j as f32 - 1.0);
            assert_eq!(v[16 + j], 0.5 * (15 - j) as f32 - 1.0);
        }
    }

    #[test]
    fn q8_0_block_by_hand() {
        let mut block = Vec::new();
        block.extend(f16b(0.25));
        block.extend((0..32).map(|j| (j as i8 - 16) as u8));
        let v = dequantize(GgmlType::Q8_0, &block, 32);
        for (j, x) in v.iter().enumerate() {
            assert_eq!(*x, 0.25 * (j as f32 - 16.0));
        }
    }

    #[test]
    fn unpermute_inverts_llama_cpp_permute() {
        // llama.cpp's permute of HF rows: reshape [heads, 2, half] → swap axes → [heads, half, 2].
        let (heads, half) = (2, 3);
        let hf: Vec<f32> = (0..heads * 2 * half).map(|r| r as f32).collect();
        let mut gguf = vec![0.0; hf.len()];
        for h in 0..heads {
            for two in 0..2 {
                for i in 0..half {
                    gguf[h * 2 * half + i * 2 + two] = hf[h * 2 * half + two * half + i];
                }
            }
        }
        assert_eq!(gguf[..6], [0., 3., 1., 4., 2., 5.]);
        assert_eq!(unpermute_rows(&gguf, heads * 2 * half, 1, heads).unwrap(), hf);
    }

    #[test]
    fn rejects_garbage() {
        assert!(Gguf::parse(b"<!DOCTYPE html>", "x.gguf").is_err());
        assert!(Gguf::parse(b"GGUF\x03\0\0\0", "x.gguf").is_err());
    }
}
