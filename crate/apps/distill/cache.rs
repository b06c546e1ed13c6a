//! Resumable on-disk caches for the slow steps (embeddings, teacher outputs), keyed by content hashes
//! so a changed model, prompt or text set never reuses stale numbers.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use crate::base::error::{Error, Result};

/// FNV-1a, 64 bit: stable across builds and platforms (std's hasher is not guaranteed to be).
#[derive(Clone, Copy)]
pub struct Hash(u64);

impl Default for Hash {
    fn default() -> Self {
        Hash(0xcbf2_9ce4_8422_2325)
    }
}

impl Hash {
    pub fn bytes(mut self, data: &[u8]) -> Self {
        for &b in data {
            self.0 = (self.0 ^ b as u64).wrapping_mul(0x0100_0000_01b3);
        }
        // Length as a separator so ("ab","c") and ("a","bc") differ.
        for b in (data.len() as u64).to_le_bytes() {
            self.0 = (self.0 ^ b as u64).wrapping_mul(0x0100_0000_01b3);
        }
        self
    }
    pub fn str(self, s: &str) -> Self {
        self.bytes(s.as_bytes())
    }
    pub fn hex(self) -> String {
        format!("{:016x}", self.0)
    }
}

/// Rows of f32 of a fixed width, appended as they are computed; a rerun continues after the last
/// complete row.
pub struct RowFile {
    path: PathBuf,
    width: usize,
    pub rows: Vec<f32>,
}

impl RowFile {
    pub fn open(path: PathBuf, width: usize) -> Result<Self> {
        let mut rows = Vec::new();
        if let Ok(mut f) = File::open(&path) {
            let mut bytes = Vec::new();
            f.read_to_end(&mut bytes).map_err(|e| Error::file(path.display().to_string(), e))?;
            let complete = bytes.len() / (4 * width) * 4 * width;
            rows = bytes[..complete].chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
        }
        Ok(RowFile { path, width, rows })
    }

    pub fn len(&self) -> usize {
        self.rows.len() / self.width
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    pub fn append(&mut self, values: &[f32]) -> Result<()> {
        let err = |e: std::io::Error| Error::file(self.path.display().to_string(), e);
        let done = self.len() * self.width * 4;
        let f = OpenOptions::new().create(true).write(true).truncate(false).open(&self.path).map_err(err)?;
        // Drop a partial row left by an interrupted run before appending.
        f.set_len(done as u64).map_err(err)?;
        let mut f = OpenOptions::new().append(true).open(&self.path).map_err(err)?;
        let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        f.write_all(&bytes).map_err(err)?;
        self.rows.extend_from_slice(values);
        Ok(())
    }
}

/// Lines of JSON appended one per finished item (teacher outputs), read back into memory on open.
pub struct JsonLines<T> {
    path: PathBuf,
    pub items: Vec<T>,
}

impl<T: serde::Serialize + serde::de::DeserializeOwned> JsonLines<T> {
    pub fn open(path: PathBuf) -> Result<Self> {
        let err = |e: std::io::Error| Error::file(path.display().to_string(), e);
        let mut items = Vec::new();
        if let Ok(mut f) = File::open(&path) {
            let mut bytes = Vec::new();
            f.read_to_end(&mut bytes).map_err(err)?;
            // Complete lines up to the first that does not parse: a torn last line from an interrupted
            // run is cut off, so the next append starts a fresh line (appending after it would join
            // the two, and every line after that would be lost on the next read).
            let mut good = 0;
            for line in bytes.split_inclusive(|&b| b == b'\n') {
                match (line.last() == Some(&b'\n')).then(|| serde_json::from_slice(line).ok()).flatten() {
                    Some(item) => {
                        items.push(item);
                        good += line.len();
                    }
                    None => break,
                }
            }
            if good < bytes.len() {
                OpenOptions::new().write(true).open(&path).and_then(|f| f.set_len(good as u64)).map_err(err)?;
            }
        }
        Ok(JsonLines { path, items })
    }

    pub fn push(&mut self, item: T) -> Result<()> {
        let err = |e: std::io::Error| Error::file(self.path.display().to_string(), e);
        let mut f = OpenOptions::new().create(true).append(true).open(&self.path).map_err(err)?;
        let line = serde_json::to_string(&item).map_err(|e| Error::file(self.path.display().to_string(), e))?;
        writeln!(f, "{line}").map_err(err)?;
        self.items.push(item);
        Ok(())
    }
}

pub fn ensure_dir(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| Error::file(dir.display().to_string(), e))
}

/// A progress bar on stderr (hidden when stderr is not a terminal, e.g. in CI logs).
pub fn bar(len: usize, what: &str) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new(len as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{msg:>12} [{bar:30}] {pos}/{len} {per_sec} eta {eta}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    bar.set_message(what.to_string());
    bar
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq)]
    struct Item {
        h: String,
    }

    #[test]
    fn a_torn_last_line_is_cut_off_so_later_appends_survive() {
        let path = std::env::temp_dir().join(format!("veer-jsonlines-{}.jsonl", std::process::id()));
        std::fs::write(&path, "{\"h\":\"a\"}\n{\"h\":\"b\"}\n{\"h\":\"c").unwrap(); // killed mid-write
        let mut store: JsonLines<Item> = JsonLines::open(path.clone()).unwrap();
        assert_eq!(store.items, [Item { h: "a".into() }, Item { h: "b".into() }]);
        store.push(Item { h: "c".into() }).unwrap();
        store.push(Item { h: "d".into() }).unwrap();
        let again: JsonLines<Item> = JsonLines::open(path.clone()).unwrap();
        assert_eq!(again.items.iter().map(|i| i.h.as_str()).collect::<Vec<_>>(), ["a", "b", "c", "d"]);
        let _ = std::fs::remove_file(&path);
    }
}
