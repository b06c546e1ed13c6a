//! `veer distill --teacher openai:URL` against a real OpenAI-compatible server started here on
//! 127.0.0.1: llama-cpp-python's (PyPI `llama-cpp-python[server]`, built from source, ≈ 14 min on 2
//! cores, so these run under `make test-server`, not `make test`) with the SmolLM2-135M-Instruct GGUF
//! from `make assets`. Labels by first-token log-probabilities (compared with the in-process teacher),
//! and by generation constrained with a JSON schema (`--teacher-mode generate`; the server refuses
//! OpenAI's `json_schema` form with a 500 and takes llama.cpp's `json_object` + `schema`, which the
//! teacher finds by itself).
//!
//! Each kills its server mid-run: the run fails naming the server, every label already received is in
//! the cache exactly once, and after a restart the rerun asks only for the rest and ends with the same
//! labels as an uninterrupted run.

mod common;

use std::collections::{BTreeMap, HashSet};
use std::io::{BufRead, BufReader};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const GGUF: &str = "SmolLM2-135M-Instruct.Q4_1.gguf";
const PROMPT: &str = "Is the following product review positive or negative?\n\nReview: {text}\n\nAnswer with one word: positive or negative.";

/// A Python with llama-cpp-python's server installed, from the environment variable the Makefile sets.
fn python() -> PathBuf {
    let p = std::env::var_os("VEER_TEST_LLAMACPP_PYTHON").map(PathBuf::from).unwrap_or_else(|| panic!("VEER_TEST_LLAMACPP_PYTHON is not set: run these tests through `make test-server`"));
    assert!(p.exists(), "{}: missing; run `make test-server`", p.display());
    p
}

struct Server {
    child: Child,
}

impl Server {
    fn start(python: &Path, port: u16) -> Server {
        let gguf = common::cache().join(GGUF);
        assert!(gguf.is_file(), "{} is missing: run `make assets`", gguf.display());
        let child = Command::new(python)
            .args(["-m", "llama_cpp.server", "--host", "127.0.0.1", "--n_ctx", "2048", "--n_threads", "2", "--model_alias", "smollm2-135m-instruct-q4_1", "--port"])
            .arg(port.to_string())
            .arg("--model")
            .arg(&gguf)
            .stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
        let t0 = Instant::now();
        // Ready when /v1/models answers.
        while !models_answer(port) {
            assert!(t0.elapsed() < Duration::from_secs(120), "server on port {port} did not start in 120 s");
            std::thread::sleep(Duration::from_millis(250));
        }
        Server { child }
    }

    fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn models_answer(port: u16) -> bool {
    use std::io::{Read, Write};
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else { return false };
    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
    if s.write_all(format!("GET /v1/models HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n").as_bytes()).is_err() {
        return false;
    }
    let mut answer = String::new();
    let _ = s.read_to_string(&mut answer);
    answer.starts_with("HTTP/1.") && answer.contains(" 200 ")
}

/// 24 training and 8 test reviews from the fixture, as small CSV files.
fn data(dir: &Path) -> (PathBuf, PathBuf, Vec<String>) {
    let fixtures = common::root().join("tests/fixtures/data/amazon_fine_foods");
    let mut texts = Vec::new();
    let mut write = |from: &str, to: &str, n: usize| {
        let mut r = csv::Reader::from_path(fixtures.join(from)).unwrap();
        let mut out = String::from("review,score\n");
        for row in r.records().take(n) {
            let row = row.unwrap();
            texts.push(row[1].to_string());
            out += &format!("\"{}\",{}\n", row[1].replace('"', "\"\""), &row[2]);
        }
        let path = dir.join(to);
        std::fs::write(&path, out).unwrap();
        path
    };
    let (train, test) = (write("train.csv", "train.csv", 24), write("test.csv", "test.csv", 8));
    (train, test, texts)
}

fn distill(teacher: &str, extra: &[&str], train: &Path, test: &Path, cache: &Path, out: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_veer"));
    c.args(["distill", "--text-col", "review", "--label-col", "score", "--rename", "great=positive", "--rename", "other=negative"])
        .args(["--labels", "positive,negative", "--val-fraction", "0.25", "--prompt-chars", "300", "--prompt", PROMPT])
        .args(["--teacher", teacher])
        .args(extra)
        .arg("--data")
        .arg(train)
        .arg("--test")
        .arg(test)
        .arg("--encoder")
        .arg(common::model("all-minilm-l6-v2"))
        .arg("--cache")
        .arg(cache)
        .arg("--out")
        .arg(out);
    c
}

/// The labels cache: (text hash → (probabilities, how)), asserting every line parses and no text is
/// recorded twice.
fn cached(cache: &Path) -> BTreeMap<String, (Vec<f64>, String)> {
    let files: Vec<PathBuf> = std::fs::read_dir(cache).unwrap().map(|e| e.unwrap().path()).filter(|p| p.file_name().unwrap().to_string_lossy().starts_with("llm-")).collect();
    assert_eq!(files.len(), 1, "one labels cache in {}: {files:?}", cache.display());
    let mut out = BTreeMap::new();
    for line in BufReader::new(std::fs::File::open(&files[0]).unwrap()).lines() {
        let v: serde_json::Value = serde_json::from_str(&line.unwrap()).expect("every cached line is complete JSON");
        let p = v["p"].as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect();
        let h = v["h"].as_str().unwrap().to_string();
        assert!(out.insert(h.clone(), (p, v["via"].as_str().unwrap_or("logprobs").to_string())).is_none(), "text {h} recorded twice");
    }
    out
}

fn cache_lines(cache: &Path) -> usize {
    std::fs::read_dir(cache)
        .ok()
        .into_iter()
        .flatten()
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with("llm-"))
        .map(|p| std::fs::read_to_string(p).unwrap().lines().count())
        .sum()
}

/// "teacher …: model `M`, N requests" from distill's stderr.
fn requests(stderr: &str) -> usize {
    let line = stderr.lines().find(|l| l.starts_with("teacher openai:")).unwrap_or_else(|| panic!("no request count in:\n{stderr}"));
    line.rsplit(", ").next().unwrap().trim_end_matches(" requests").parse().unwrap()
}

/// Kill the server once `kill_after` labels are cached, check the failure, restart, resume, and compare
/// with an uninterrupted run. Returns the final labels. `extra_requests`: requests beyond one per text
/// that a resumed run may make (probes of what the server supports, one per worker at most).
fn kill_and_resume(python: &Path, port: u16, dir: &Path, extra: &[&str], extra_requests: usize) -> BTreeMap<String, (Vec<f64>, String)> {
    let (train, test, texts) = data(dir);
    let url = format!("openai:http://127.0.0.1:{port}");
    let unique: HashSet<&String> = texts.iter().collect();
    let total = unique.len() + 1; // + the content-free input

    // Uninterrupted.
    let server = Server::start(python, port);
    let whole = dir.join("whole");
    let out = distill(&url, extra, &train, &test, &whole, &dir.join("out-whole")).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(out.status.success(), "{stderr}");
    let reference = cached(&whole);
    assert_eq!(reference.len(), total);
    let report: serde_json::Value = serde_json::from_slice(&std::fs::read(dir.join("out-whole/report.json")).unwrap()).unwrap();
    assert!(report["teacher"].as_str().unwrap().starts_with("openai:"), "{report}");

    // Killed after some labels: the run fails with an error that names the server and no review.
    let cache = dir.join("resumed");
    let mut run = distill(&url, &[extra, &["--retries", "1"]].concat(), &train, &test, &cache, &dir.join("out")).stderr(Stdio::piped()).stdout(Stdio::null()).spawn().unwrap();
    let t0 = Instant::now();
    while cache_lines(&cache) < 8 {
        assert!(t0.elapsed() < Duration::from_secs(300), "no labels cached in 300 s");
        assert!(run.try_wait().unwrap().is_none(), "distill ended before the server was killed");
        std::thread::sleep(Duration::from_millis(50));
    }
    server.kill();
    let failed = run.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&failed.stderr).to_string();
    assert!(!failed.status.success(), "distill succeeded without its server:\n{stderr}");
    assert!(stderr.contains(&format!("127.0.0.1:{port}")) && stderr.contains("gave up after 1 retries"), "{stderr}");
    for t in &texts {
        let words: Vec<&str> = t.split_whitespace().take(6).collect();
        assert!(words.len() < 6 || !stderr.contains(&words.join(" ")), "the error quotes a review:\n{stderr}");
    }
    let before = cached(&cache);
    assert!(before.len() >= 8 && before.len() < total, "{} of {total} labels cached at the kill", before.len());

    // Restarted: only the rest is asked for, and the labels are the uninterrupted run's.
    let _server = Server::start(python, port);
    let out = distill(&url, extra, &train, &test, &cache, &dir.join("out")).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(out.status.success(), "{stderr}");
    let rest = total - before.len();
    let asked = requests(&stderr);
    assert!(asked >= rest && asked <= rest + extra_requests, "resumed run: {asked} requests for {rest} texts\n{stderr}");
    let after = cached(&cache);
    for (h, v) in &before {
        assert_eq!(&after[h], v, "a label cached before the kill changed");
    }
    assert_eq!(after.len(), total);
    for (h, (p, via)) in &after {
        let (q, via_ref) = &reference[h];
        assert_eq!(via, via_ref, "text {h}");
        assert!(p.iter().zip(q).all(|(a, b)| (a - b).abs() < 1e-5), "text {h}: resumed {p:?} vs uninterrupted {q:?}");
    }
    after
}

fn tmp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("veer-teacher-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
#[ignore = "needs llama-cpp-python's server, built from source (≈ 14 min): `make test-server`"]
fn constrained_generation_labels_and_resumes_after_a_kill() {
    let dir = tmp("generate");
    // Extra requests on resuming: listing the model, and each worker's first try of OpenAI's schema form.
    let labels = kill_and_resume(&python(), 18933, &dir, &["--concurrency", "2", "--teacher-mode", "generate"], 3);
    for (h, (p, via)) in &labels {
        assert_eq!(via, "schema", "text {h}: every answer follows the label schema");
        assert_eq!(p.iter().filter(|&&x| x == 1.0).count(), 1, "text {h}: {p:?}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
#[ignore = "needs llama-cpp-python's server, built from source (≈ 14 min): `make test-server`"]
fn logprobs_label_like_the_in_process_teacher_and_resume_after_a_kill() {
    let dir = tmp("logprobs");
    // The one extra request on resuming lists the server's model.
    let labels = kill_and_resume(&python(), 18932, &dir, &["--concurrency", "4"], 1);
    assert!(labels.values().all(|(p, via)| via == "logprobs" && (p.iter().sum::<f64>() - 1.0).abs() < 1e-4), "{labels:?}");

    // The in-process teacher on veer's F16 conversion of the same GGUF, same prompt: the server runs
    // the Q4_1 weights with 8-bit activations and sees only first tokens, so the two agree on most texts,
    // not all.
    let (train, test, _) = data(&dir);
    let cache = dir.join("in-process");
    let teacher = format!("llm:{}", common::model("smollm2-135m-instruct").display());
    let run = distill(&teacher, &[], &train, &test, &cache, &dir.join("out-in-process")).output().unwrap();
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    let local = cached(&cache);
    let argmax = |p: &[f64]| (0..p.len()).max_by(|&a, &b| p[a].total_cmp(&p[b])).unwrap();
    let agree = labels.iter().filter(|(h, (p, _))| argmax(p) == argmax(&local[*h].0)).count();
    eprintln!("server vs in-process teacher: {agree} of {} texts agree", labels.len());
    assert!(agree * 10 >= labels.len() * 8, "server and in-process teacher agree on {agree} of {}", labels.len());
    let _ = std::fs::remove_dir_all(&dir);
}
