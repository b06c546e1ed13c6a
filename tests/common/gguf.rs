//! A GGUF writer for tests: well-formed control vectors (decoder tests), seeds (fuzz) and hostile
//! headers (hostile), from one layout. Tensor data is placed in order, each aligned to 32 bytes.

/// Builds a GGUF v3 file.
#[derive(Default)]
pub struct Gguf {
    meta: Vec<u8>,
    n_meta: u64,
    tensors: Vec<(String, Vec<u64>, u32, Option<u64>, Vec<u8>)>,
}

fn string(b: &mut Vec<u8>, t: &str) {
    b.extend((t.len() as u64).to_le_bytes());
    b.extend(t.as_bytes());
}

impl Gguf {
    pub fn string(mut self, key: &str, value: &str) -> Self {
        string(&mut self.meta, key);
        self.meta.extend(8u32.to_le_bytes());
        string(&mut self.meta, value);
        self.n_meta += 1;
        self
    }

    pub fn strings(mut self, key: &str, values: &[&str]) -> Self {
        string(&mut self.meta, key);
        self.meta.extend(9u32.to_le_bytes());
        self.meta.extend(8u32.to_le_bytes());
        self.meta.extend((values.len() as u64).to_le_bytes());
        values.iter().for_each(|v| string(&mut self.meta, v));
        self.n_meta += 1;
        self
    }

    /// Arrays nested `depth` deep (≥ 1) around one u32.
    pub fn nested(mut self, key: &str, depth: usize) -> Self {
        string(&mut self.meta, key);
        self.meta.extend(9u32.to_le_bytes());
        for _ in 1..depth.max(1) {
            self.meta.extend(9u32.to_le_bytes());
            self.meta.extend(1u64.to_le_bytes());
        }
        self.meta.extend(4u32.to_le_bytes());
        self.meta.extend(1u64.to_le_bytes());
        self.meta.extend(7u32.to_le_bytes());
        self.n_meta += 1;
        self
    }

    /// A tensor (ggml dims, type id) whose bytes go into the data section.
    pub fn tensor(mut self, name: &str, dims: &[u64], ty: u32, bytes: &[u8]) -> Self {
        self.tensors.push((name.to_string(), dims.to_vec(), ty, None, bytes.to_vec()));
        self
    }

    /// A tensor entry with the offset given as is and no bytes of its own (hostile headers).
    pub fn tensor_at(mut self, name: &str, dims: &[u64], ty: u32, offset: u64) -> Self {
        self.tensors.push((name.to_string(), dims.to_vec(), ty, Some(offset), Vec::new()));
        self
    }

    pub fn bytes(self) -> Vec<u8> {
        let mut b = Vec::new();
        b.extend(b"GGUF");
        b.extend(3u32.to_le_bytes());
        b.extend((self.tensors.len() as u64).to_le_bytes());
        b.extend(self.n_meta.to_le_bytes());
        b.extend(&self.meta);
        let mut data = Vec::new();
        for (name, dims, ty, offset, bytes) in &self.tensors {
            string(&mut b, name);
            b.extend((dims.len() as u32).to_le_bytes());
            dims.iter().for_each(|d| b.extend(d.to_le_bytes()));
            b.extend(ty.to_le_bytes());
            b.extend(offset.unwrap_or(data.len() as u64).to_le_bytes());
            data.extend(bytes);
            data.resize(data.len().div_ceil(32) * 32, 0);
        }
        b.resize(b.len().div_ceil(32) * 32, 0);
        b.extend(data);
        b
    }
}

/// f32 values as little-endian bytes (a GGUF F32 tensor's data).
pub fn f32_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}
