//! Paths shared by the native tests. Models come from `make assets`; a missing folder is a failure with
//! the command to run, never a silent skip.
#![allow(dead_code)]

use std::path::PathBuf;

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn models() -> PathBuf {
    std::env::var_os("VEER_MODELS").map(PathBuf::from).unwrap_or_else(|| root().join("www/models"))
}

pub fn model(name: &str) -> PathBuf {
    let dir = models().join(name);
    assert!(dir.join("config.json").is_file(), "{} is missing: run `make assets` first", dir.display());
    dir
}

pub fn cache() -> PathBuf {
    std::env::var_os("VEER_CACHE").map(PathBuf::from).unwrap_or_else(|| root().join(".cache"))
}

pub fn fixture(name: &str) -> serde_json::Value {
    let path = root().join("tests/fixtures").join(name);
    serde_json::from_slice(&std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))).unwrap()
}
pub mod gguf;
pub mod heads;
pub mod rng;
pub mod synthetic;
