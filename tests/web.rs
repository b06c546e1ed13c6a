//! Browser tests: wasm-bindgen-test in headless Chromium with WebGPU (flags in webdriver.json).
#![cfg(target_arch = "wasm32")]

use veer::base::backend::{self, BackendKind};
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

const SMOLLM_TOKENIZER: &[u8] = include_bytes!("fixtures/smollm2/tokenizer.json");
const LLAMA_FIXTURE: &str = include_str!("fixtures/llama.json");

#[wasm_bindgen_test]
async fn webgpu_adapter_is_found_and_matches_cpu() {
    let gpu = backend::gpu().await.expect("WebGPU adapter (is --enable-unsafe-webgpu in webdriver.json?)");
    assert_eq!(gpu.kind, BackendKind::Gpu);
    assert_eq!(gpu.kind.name(), "webgpu");
    let diff = backend::self_check(&gpu).await.expect("matmul on WebGPU");
    // Same matmul + softmax on both devices; f32 reassociation only.
    assert!(diff <= 1e-5, "WebGPU vs CPU max |diff| = {diff}");
}

/// `navigator.gpu.requestAdapter()`'s `isFallbackAdapter`, asked by the test itself.
async fn adapter_is_software() -> bool {
    use wasm_bindgen::JsCast;
    let get = |o: &wasm_bindgen::JsValue, k: &str| js_sys::Reflect::get(o, &k.into()).unwrap();
    let gpu = get(&get(&js_sys::global(), "navigator"), "gpu");
    let request: js_sys::Function = get(&gpu, "requestAdapter").dyn_into().unwrap();
    let adapter = wasm_bindgen_futures::JsFuture::from(js_sys::Promise::from(request.call0(&gpu).unwrap())).await.unwrap();
    let info = get(&adapter, "info");
    get(&info, "isFallbackAdapter").as_bool().or_else(|| get(&adapter, "isFallbackAdapter").as_bool()).unwrap_or(false)
}

#[wasm_bindgen_test]
async fn auto_takes_webgpu_only_on_a_hardware_adapter_and_says_why_not() {
    let rt = veer::wasm::runtime::Runtime::create("auto".into()).await.map_err(|_| "create").unwrap();
    if adapter_is_software().await {
        // Headless Chromium without a GPU: SwiftShader. The CPU path is 50–100× faster.
        assert_eq!(rt.device(), "cpu");
        let why = rt.fallback_reason().unwrap_or_default();
        assert!(why.contains("software fallback") && why.contains("webgpu"), "{why}");
    } else {
        assert_eq!(rt.device(), "webgpu", "fallback: {:?}", rt.fallback_reason());
    }
    // Asked for explicitly, the software adapter is still used.
    let gpu = veer::wasm::runtime::Runtime::create("webgpu".into()).await.map_err(|_| "create").unwrap();
    assert_eq!(gpu.device(), "webgpu");
    let cpu = veer::wasm::runtime::Runtime::create("cpu".into()).await.map_err(|_| "create").unwrap();
    assert_eq!(cpu.device(), "cpu");
    assert_eq!(cpu.self_check().await.map_err(|_| "check").unwrap(), 0.0);
}

#[wasm_bindgen_test]
fn tokenizer_from_bytes_encodes_like_the_reference() {
    let tok = veer::wasm::runtime::Tokenizer::new(SMOLLM_TOKENIZER).map_err(|_| "load").unwrap();
    let fixture: serde_json::Value = serde_json::from_str(LLAMA_FIXTURE).unwrap();
    let cases = fixture["cases"].as_array().unwrap();
    assert!(cases.len() >= 4);
    for case in cases {
        let prompt = case["prompt"].as_str().unwrap();
        let want: Vec<u32> = serde_json::from_value(case["input_ids"].clone()).unwrap();
        let got = tok.encode(prompt, false).map_err(|_| "encode").unwrap();
        assert_eq!(got, want, "prompt {prompt:?}");
    }
}

/// F16 weights convert in the browser (SIMD128, 8 at a time) exactly as `half` does: every one of the
/// 65536 bit patterns (zeros, subnormals, infinities, NaNs with payloads), and a tail that is not a
/// whole block.
#[wasm_bindgen_test]
fn f16_weights_convert_exactly_as_half_does() {
    let bytes: Vec<u8> = (0..=u16::MAX).flat_map(|h| h.to_le_bytes()).collect();
    let want = |b: &[u8]| b.chunks_exact(2).map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32().to_bits()).collect::<Vec<_>>();
    for len in [bytes.len(), 2 * 65531] {
        let got = veer::io::floats::floats(safetensors::Dtype::F16, &bytes[..len]).unwrap();
        assert_eq!(got.iter().map(|v| v.to_bits()).collect::<Vec<_>>(), want(&bytes[..len]), "{} values", len / 2);
    }
}

/// Deterministic values with a spread of magnitudes, outliers and zeros.
fn int8_test_values(n: usize, seed: u32) -> Vec<f32> {
    (0..n as u32)
        .map(|i| {
            let v = ((i.wrapping_mul(2654435761) ^ seed.wrapping_mul(40503)).rotate_left(7) % 2001) as f32 / 1000.0 - 1.0;
            if i % 97 == 0 { v * 40.0 } else if i % 13 == 0 { 0.0 } else { v }
        })
        .collect()
}

/// Weights quantised in the browser (SIMD128 for whole groups of 32) follow the definition, written
/// out here: scale = max |w| / 127 per group, q = w / scale rounded half to even; a group with a
/// non-finite value gets a NaN scale. Checked through the dequantised rows, bit for bit.
#[wasm_bindgen_test]
fn int8_weights_quantise_as_defined() {
    use veer::kernels::quant::GROUP; // 32: the positions below are for groups of 32
    let mut w = int8_test_values(3 * 70, 5);
    // Exact ties: with a largest magnitude of 127 the scale is 1, so 2.5 and -3.5 are halfway.
    w[32..36].copy_from_slice(&[127.0, 2.5, -3.5, 0.5]);
    w[140] = f32::NAN; // row 2, group 0
    w[205] = f32::INFINITY; // row 2, group 2 (ragged: 6 values)
    let m = veer::kernels::quant::Q8Matrix::from_f32(&w, 3, 70);
    for r in 0..3 {
        let got = m.row(r);
        for (g, part) in w[r * 70..(r + 1) * 70].chunks(GROUP).enumerate() {
            let amax = if part.iter().all(|v| v.is_finite()) { part.iter().fold(0.0f32, |a, v| a.max(v.abs())) } else { f32::NAN };
            let scale = amax / 127.0;
            let inv = if scale > 0.0 { 1.0 / scale } else { 0.0 };
            for (j, &v) in part.iter().enumerate() {
                let q = (v * inv).round_ties_even() as i8 as f32; // saturating; NaN → 0; no −0
                assert_eq!(got[g * GROUP + j].to_bits(), (q * scale).to_bits(), "row {r} group {g} value {j}");
            }
        }
    }
    assert_eq!(&m.row(0)[32..36], &[127.0, 2.0, -4.0, 0.0]); // ties to even
}

/// The int8 kernel in wasm SIMD128 (blocks of eight rows) gives the bits of the portable definition,
/// so browser and native int8 outputs agree exactly (the crate's unit test checks SSE2).
#[wasm_bindgen_test]
fn int8_simd_kernels_equal_the_portable_definition_bitwise() {
    let values = int8_test_values;
    // 9 and 19 rows: padded blocks; 70 columns: a padded last group.
    for (rows, cols, n) in [(9, 70, 3), (8, 576, 2), (1, 1536, 1), (19, 576, 1)] {
        let m = veer::kernels::quant::Q8Matrix::from_f32(&values(rows * cols, 1), rows, cols);
        let x = values(n * cols, 2);
        let bits = |y: Vec<f32>| y.into_iter().map(f32::to_bits).collect::<Vec<_>>();
        assert_eq!(bits(m.matmul_t(&x, n)), bits(m.matmul_t_portable(&x, n)), "{rows}x{cols}, {n} rows of x");
    }
}

/// The same for the 4-bit kernel (`quant4`): the browser's nibble unpacking and sums give the portable
/// definition's bits, so the q4 folder decodes the same ids in the browser as natively.
#[wasm_bindgen_test]
fn q4_simd_kernel_equals_the_portable_definition_bitwise() {
    for (rows, cols, n) in [(11, 128, 3), (576, 576, 1), (8, 1536, 2)] {
        let q: Vec<u8> = (0..rows * cols / 2).map(|i: usize| (i.wrapping_mul(2654435761) >> 7) as u8).collect();
        let s: Vec<f32> = (0..rows * cols / 32).map(|i| 0.01 + (i % 7) as f32 * 0.003).collect();
        let mins: Vec<f32> = (0..rows * cols / 32).map(|i| -0.05 + (i % 5) as f32 * 0.02).collect();
        let m = veer::kernels::quant4::Q4Matrix::from_packed(&q, &s, &mins, rows, cols);
        let x = int8_test_values(n * cols, 2);
        let bits = |y: Vec<f32>| y.into_iter().map(f32::to_bits).collect::<Vec<_>>();
        assert_eq!(bits(m.matmul_t(&x, n)), bits(m.matmul_t_portable(&x, n)), "{rows}x{cols}, {n} rows of x");
    }
}

/// The browser's f32 kernel (`panels`: SIMD128, bias and GELU fused) gives the bits of its portable
/// definition for every block height (9 rows: 4 + 4 + 1; 7: 4 + 3; 2), a padded last panel (13 and 3
/// outputs) and MiniLM's FFN width; GELU over a range that passes erf's clamp (|x| > 4·√2) both ways;
/// and so do its softmax, over ragged rows with masked and NaN scores, and its silu(gate) · up.
#[wasm_bindgen_test]
fn f32_panel_kernel_equals_the_portable_definition_bitwise() {
    use veer::kernels::panels::{Epilogue, Panels};
    let values = int8_test_values;
    let bits = |y: Vec<f32>| y.into_iter().map(f32::to_bits).collect::<Vec<_>>();
    for (out, inp, n) in [(13, 70, 9), (384, 1536, 7), (3, 384, 2), (1536, 384, 1)] {
        let m = Panels::new(&values(out * inp, 1), out, inp, Some(&values(out, 3)));
        let x = values(n * inp, 2);
        for e in [Epilogue::None, Epilogue::Gelu] {
            assert_eq!(bits(m.forward(&x, n, e)), bits(m.forward_portable(&x, n, e)), "{out}x{inp}, {n} rows, {e:?}");
        }
    }
    // Softmax rows: ragged widths, masked scores (−1e9), one-value rows and a NaN row.
    for width in [1, 3, 4, 7, 16, 27, 64] {
        let mut v: Vec<f32> = values(5 * width, 4).into_iter().map(|x| x * 8.0).collect();
        for i in (0..v.len()).filter(|i| i % 5 == 3) {
            v[i] = -1e9;
        }
        if width == 7 {
            v[9] = f32::NAN;
        }
        let mut p = v.clone();
        veer::kernels::simd_math::softmax_rows(&mut v, width, false);
        veer::kernels::simd_math::softmax_rows(&mut p, width, true);
        assert_eq!(bits(v), bits(p), "softmax, width {width}");
    }
    // silu(gate) · up over −80 … 80, ±0 and NaN, with a ragged tail.
    let g: Vec<f32> = (-4000..=4000).map(|i| i as f32 / 50.0).chain([0.0, -0.0, f32::NAN]).collect();
    let u = values(g.len(), 5);
    let (mut a, mut b) = (g.clone(), g);
    veer::kernels::simd_math::silu_mul(&mut a, &u, false);
    veer::kernels::simd_math::silu_mul(&mut b, &u, true);
    assert_eq!(bits(a), bits(b), "silu · up");
    // GELU alone: one input row of 1 (weights = the values, no bias), −20 … 20 and ±0.
    let g: Vec<f32> = (-4000..=4000).map(|i| i as f32 / 200.0).chain([0.0, -0.0, 1e-30, -1e-30]).collect();
    let m = Panels::new(&g, g.len(), 1, None);
    assert_eq!(bits(m.forward(&[1.0], 1, Epilogue::Gelu)), bits(m.forward_portable(&[1.0], 1, Epilogue::Gelu)));
}

#[wasm_bindgen_test]
fn bad_input_is_an_error_not_a_panic() {
    assert!(veer::wasm::runtime::Tokenizer::new(b"<!DOCTYPE html><html>404</html>").is_err());
    assert!(veer::wasm::runtime::Tokenizer::new(b"{\"truncated\":").is_err());
    // The module still works after the errors.
    assert!(veer::wasm::runtime::Tokenizer::new(SMOLLM_TOKENIZER).is_ok());
}

#[wasm_bindgen_test]
async fn unknown_device_name_is_rejected_with_the_choices() {
    let err = veer::wasm::runtime::Runtime::create("tpu".into()).await.err().expect("tpu is not a device");
    let msg = String::from(js_sys::Error::from(wasm_bindgen::JsValue::from(err)).message());
    assert!(msg.starts_with("[E_INVALID]") && msg.contains("cpu"), "{msg}");
}

// --- encoder runtime in the browser: weights fetched from the local static server (`make test-browser`)

mod common;
use common::heads::{Arch, LABELS};
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;

const BERT_FIXTURE: &str = include_str!("fixtures/bert.json");

fn models_url() -> &'static str {
    option_env!("VEER_TEST_MODELS_URL").unwrap_or("http://127.0.0.1:8787/models/")
}

async fn fetch_bytes(path: &str) -> Vec<u8> {
    let url = format!("{}{path}", models_url());
    let window = web_sys::window().expect("tests run in a page");
    let resp: web_sys::Response = JsFuture::from(window.fetch_with_str(&url)).await.expect(&url).dyn_into().unwrap();
    assert!(resp.ok(), "{url}: HTTP {} (is the model server running? `make test-browser` starts it)", resp.status());
    let buf = JsFuture::from(resp.array_buffer().unwrap()).await.unwrap();
    js_sys::Uint8Array::new(&buf).to_vec()
}

struct Minilm {
    config: Vec<u8>,
    weights: Vec<u8>,
    tokenizer: Vec<u8>,
    pooling: Vec<u8>,
    sentence_bert: Vec<u8>,
}

async fn minilm() -> Minilm {
    Minilm {
        config: fetch_bytes("all-minilm-l6-v2/config.json").await,
        weights: fetch_bytes("all-minilm-l6-v2/model.safetensors").await,
        tokenizer: fetch_bytes("all-minilm-l6-v2/tokenizer.json").await,
        pooling: fetch_bytes("all-minilm-l6-v2/1_Pooling/config.json").await,
        sentence_bert: fetch_bytes("all-minilm-l6-v2/sentence_bert_config.json").await,
    }
}

/// A model folder's files as the JS library hands them over: `(role, bytes)`, named after their role.
fn bundle(parts: &[(&str, &[u8])]) -> veer::wasm::ModelFiles {
    let mut files = veer::wasm::ModelFiles::new();
    for (role, bytes) in parts {
        files.add(role.to_string(), format!("{role}.file"), bytes.to_vec());
    }
    files
}

fn encoder_files(config: &[u8], weights: &[u8], tokenizer: &[u8]) -> veer::wasm::ModelFiles {
    bundle(&[("config", config), ("weights", weights), ("tokenizer", tokenizer)])
}

fn floats(v: &serde_json::Value) -> Vec<f32> {
    v.as_array().unwrap().iter().map(|x| x.as_f64().unwrap() as f32).collect()
}

fn max_abs(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let dot: f64 = a.iter().zip(b).map(|(x, y)| *x as f64 * *y as f64).sum();
    let n = |v: &[f32]| v.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
    dot / (n(a) * n(b))
}

async fn embeddings_match_reference(device: &str, tol: f32, min_cos: f64) {
    let m = minilm().await;
    let rt = veer::wasm::runtime::Runtime::create(device.into()).await.map_err(|_| "runtime").unwrap();
    // No options: truncation (256) and pooling (mean) come from the folder's sentence-transformers
    // files, as natively (`ModelFiles`), so the reference's long text matches.
    let mut files = bundle(&[("config", &m.config), ("weights", &m.weights), ("tokenizer", &m.tokenizer), ("pooling", &m.pooling), ("sentenceBert", &m.sentence_bert)]);
    let clf = veer::wasm::classifier::Classifier::create(&rt, &mut files, wasm_bindgen::JsValue::UNDEFINED).map_err(|_| "load").unwrap();
    assert_eq!((clf.max_length(), clf.pooling().as_str()), (256, "mean"));
    let fixture: serde_json::Value = serde_json::from_str(BERT_FIXTURE).unwrap();
    let mut cases = fixture["cases"].as_array().unwrap().clone();
    // Chromium's software WebGPU (the only one on a machine without a GPU) takes minutes over the
    // 256-token text padded into the batch; the short cases run the same kernels. The CPU takes all.
    if device != "cpu" {
        cases.retain(|c| c["input_ids"].as_array().unwrap().len() <= 32);
    }
    let texts: Vec<String> = cases.iter().map(|c| c["text"].as_str().unwrap().to_string()).collect();
    let ids = clf.tokenize(texts.clone()).map_err(|_| "tokenize").unwrap();
    let got = clf.embed(texts).await.map_err(|_| "embed").unwrap();
    for ((case, ids), emb) in cases.iter().zip(ids).zip(got) {
        let want_ids: Vec<u32> = serde_json::from_value(case["input_ids"].clone()).unwrap();
        assert_eq!(ids.to_vec(), want_ids);
        let (emb, want) = (emb.to_vec(), floats(&case["mean_pooled_normalized"]));
        let (cos, diff) = (cosine(&emb, &want), max_abs(&emb, &want));
        web_sys::console::log_1(&format!("{device}: {} tokens: cosine {cos:.8}, max |Δ| {diff:.2e}", want_ids.len()).into());
        assert!(cos >= min_cos && diff <= tol, "{device} {:?}: cosine {cos}, max |Δ| {diff}", case["text"]);
    }
}

#[wasm_bindgen_test]
async fn minilm_embeddings_match_reference_on_cpu() {
    embeddings_match_reference("cpu", 1e-4, 0.99999).await;
}

#[wasm_bindgen_test]
async fn minilm_embeddings_match_reference_on_webgpu() {
    embeddings_match_reference("webgpu", 1e-3, 0.9999).await;
}

#[wasm_bindgen_test]
async fn classification_heads_give_hand_computed_scores_on_both_devices() {
    let m = minilm().await;
    let fixture: serde_json::Value = serde_json::from_str(BERT_FIXTURE).unwrap();
    let cases = &fixture["cases"].as_array().unwrap()[..4];
    let texts: Vec<String> = cases.iter().map(|c| c["text"].as_str().unwrap().to_string()).collect();
    for device in ["cpu", "webgpu"] {
        let rt = veer::wasm::runtime::Runtime::create(device.into()).await.map_err(|_| "runtime").unwrap();
        for (arch, multi) in [(Arch::Bert, false), (Arch::DistilBert, false), (Arch::Bert, true)] {
            let s = common::heads::build(&m.config, &m.weights, arch, multi);
            let clf = veer::wasm::classifier::Classifier::create(&rt, &mut encoder_files(&s.config, &s.weights, &m.tokenizer), wasm_bindgen::JsValue::UNDEFINED)
                .map_err(|_| "load")
                .unwrap();
            assert_eq!(clf.labels(), LABELS);
            let results = clf.classify(texts.clone()).await.map_err(|_| "classify").unwrap();
            let results: Vec<serde_json::Value> = serde_wasm_bindgen::from_value(results).unwrap();
            let tol = if device == "cpu" { 1e-4 } else { 1e-3 };
            for (case, r) in cases.iter().zip(&results) {
                let want = s.expected(&floats(&case["cls_hidden_first16"]));
                let got: Vec<f32> = LABELS.iter().map(|l| r["scores"][l].as_f64().unwrap() as f32).collect();
                assert!(max_abs(&got, &want) <= tol, "{device} {arch:?} multi={multi}: {got:?} vs {want:?}");
            }
        }
    }
}

#[wasm_bindgen_test]
async fn bad_weights_are_an_error_and_the_module_survives() {
    let m = minilm().await;
    let rt = veer::wasm::runtime::Runtime::create("cpu".into()).await.map_err(|_| "runtime").unwrap();
    // The error names the file as it was fetched.
    let mut files = encoder_files(&m.config, b"<html>404</html>", &m.tokenizer);
    files.add("weights".into(), "https://host/x-f16.safetensors".into(), b"<html>404</html>".to_vec());
    let err = veer::wasm::classifier::Classifier::create(&rt, &mut files, wasm_bindgen::JsValue::UNDEFINED).err().unwrap();
    let msg = String::from(js_sys::Error::from(wasm_bindgen::JsValue::from(err)).message());
    assert!(msg.contains("x-f16.safetensors") && msg.contains("HTML"), "{msg}");
    for (options, want) in [("{\"maxLenght\": 3}", "maxLenght"), ("{\"pooling\": \"max\"}", "max"), ("{\"batchSize\": 0}", "batchSize")] {
        let err = veer::wasm::classifier::Classifier::create(&rt, &mut encoder_files(&m.config, &m.weights, &m.tokenizer), js_sys::JSON::parse(options).unwrap()).err().unwrap();
        let msg = String::from(js_sys::Error::from(wasm_bindgen::JsValue::from(err)).message());
        assert!(msg.starts_with("[E_INVALID]") && msg.contains(want), "{options}: {msg}");
    }
    let clf = veer::wasm::classifier::Classifier::create(&rt, &mut encoder_files(&m.config, &m.weights, &m.tokenizer), wasm_bindgen::JsValue::UNDEFINED).map_err(|_| "load").unwrap();
    let err = clf.classify(vec!["x".into()]).await.err().unwrap();
    let msg = String::from(js_sys::Error::from(wasm_bindgen::JsValue::from(err)).message());
    assert!(msg.contains("no classification head"), "{msg}");
    assert_eq!(clf.embed(vec!["still works".into()]).await.map_err(|_| "embed").unwrap().len(), 1);
}

/// Sizes from a file that fit u64 but not wasm32's 32-bit usize (element counts of 2^32, byte lengths
/// of 2^33) are errors here too, and the module keeps working after each.
#[wasm_bindgen_test]
fn sizes_that_overflow_32_bits_are_errors_and_the_module_survives() {
    use common::gguf::{Gguf, f32_bytes};
    let hostile: [(&str, &[u64]); 4] = [("wraps u64", &[1 << 33, 1 << 33]), ("2^32 elements", &[1 << 16, 1 << 16]), ("2^33 bytes", &[1 << 31]), ("2^40 elements", &[1 << 40])];
    for (what, dims) in hostile {
        let bytes = Gguf::default().tensor_at("direction.1", dims, 0, 0).bytes();
        let err = veer::wasm::vector::Vector::from_bytes(&bytes).err().unwrap_or_else(|| panic!("{what}: accepted"));
        let msg = String::from(js_sys::Error::from(wasm_bindgen::JsValue::from(err)).message());
        assert!(msg.starts_with("[E_TENSOR]") && msg.contains("direction.1"), "{what}: {msg}");
        // The same instance still parses a good file.
        let good = Gguf::default().tensor("direction.1", &[4], 0, &f32_bytes(&[1.0, 2.0, 3.0, 4.0])).bytes();
        assert_eq!(veer::wasm::vector::Vector::from_bytes(&good).map_err(|_| "good").unwrap().hidden(), 4);
    }
    // A safetensors vector claiming [65536, 65536] floats over a few bytes.
    let header = br#"{"layers.0":{"dtype":"F32","shape":[65536,65536],"data_offsets":[0,16]}}"#;
    let mut file = (header.len() as u64).to_le_bytes().to_vec();
    file.extend_from_slice(header);
    file.extend_from_slice(&[0; 16]);
    let err = veer::wasm::vector::Vector::from_bytes(&file).err().unwrap();
    let msg = String::from(js_sys::Error::from(wasm_bindgen::JsValue::from(err)).message());
    assert!(msg.starts_with("[E_"), "{msg}");
}

// --- decoder in the browser ---------------------------------------------------------------------------

use serde::Serialize;

const ICV_FIXTURE: &str = include_str!("fixtures/icv.json");

/// The F16 folder in f32 (`weights: 'f32'`; the CPU's default would quantise it), as the references
/// computed it.
async fn smollm(rt: &veer::wasm::runtime::Runtime) -> veer::wasm::generator::Generator {
    let dir = "smollm2-135m-instruct/";
    let config = fetch_bytes(&format!("{dir}config.json")).await;
    let weights = fetch_bytes(&format!("{dir}model.safetensors")).await;
    let tokenizer = fetch_bytes(&format!("{dir}tokenizer.json")).await;
    let tc = fetch_bytes(&format!("{dir}tokenizer_config.json")).await;
    let mut files = bundle(&[("config", &config), ("weights", &weights), ("tokenizer", &tokenizer), ("tokenizerConfig", &tc)]);
    let f32 = serde_json::json!({"weights": "f32"}).serialize(&serde_wasm_bindgen::Serializer::json_compatible()).unwrap();
    veer::wasm::generator::Generator::create(rt, &mut files, Some("smollm2-135m-instruct".into()), f32).map_err(|_| "load").unwrap()
}

async fn greedy(g: &mut veer::wasm::generator::Generator, prompt: &str, n: usize) -> Vec<u32> {
    greedy_with(g, prompt, &format!("{{\"maxTokens\": {n}}}")).await
}

/// Greedy ids with `options` (JSON text of a `GenerateOptions`).
async fn greedy_with(g: &mut veer::wasm::generator::Generator, prompt: &str, options: &str) -> Vec<u32> {
    let opts = js_sys::JSON::parse(options).unwrap();
    g.start(prompt.into(), opts).await.map_err(|_| "start").unwrap();
    let mut ids = Vec::new();
    loop {
        let piece = g.next().await.map_err(|_| "next").unwrap();
        if piece.is_undefined() {
            return ids;
        }
        let piece: serde_json::Value = serde_wasm_bindgen::from_value(piece).unwrap();
        ids.push(piece["id"].as_u64().unwrap() as u32);
    }
}

/// Greedy ids for the reference prompts on `device`: equal to the reference on the CPU; on WebGPU
/// equal, or the first divergence is logged (float reassociation can flip a near-tie).
async fn decoder_greedy_matches(device: &str) {
    let rt = veer::wasm::runtime::Runtime::create(device.into()).await.map_err(|_| "runtime").unwrap();
    let mut g = smollm(&rt).await;
    let fixture: serde_json::Value = serde_json::from_str(LLAMA_FIXTURE).unwrap();
    // WebGPU on a machine without a GPU is Chromium's software renderer: fewer tokens there.
    let (prompts, n) = if device == "cpu" { (2, 16) } else { (2, 8) };
    for case in fixture["cases"].as_array().unwrap().iter().take(prompts) {
        let mut want: Vec<u32> = serde_json::from_value(case["greedy_ids"].clone()).unwrap();
        want.truncate(n);
        let perf = web_sys::window().unwrap().performance().unwrap();
        let t0 = perf.now();
        let got = greedy(&mut g, case["prompt"].as_str().unwrap(), want.len()).await;
        let ms = perf.now() - t0;
        web_sys::console::log_1(&format!("{device}: {} tokens in {ms:.0} ms ({:.1} tokens/s incl. prefill)", got.len(), got.len() as f64 * 1000.0 / ms).into());
        if device == "cpu" {
            assert_eq!(got, want, "{:?}", case["prompt"]);
        } else if got != want {
            let i = got.iter().zip(&want).position(|(a, b)| a != b).unwrap_or(got.len().min(want.len()));
            web_sys::console::log_1(&format!("{device}: first divergence at token {i}: {:?} vs {:?}", got.get(i), want.get(i)).into());
            assert!(i >= 4, "{device} diverges at token {i} of {:?}", case["prompt"]);
        }
    }
}

#[wasm_bindgen_test]
async fn decoder_greedy_ids_match_reference_on_cpu() {
    decoder_greedy_matches("cpu").await;
}

/// SmolLM2 itself on WebGPU: many minutes on Chromium's software renderer, so `make test` leaves it to
/// `make test-webgpu-full` (and runs the tiny decoder on both devices below).
#[wasm_bindgen_test]
#[ignore = "minutes on software WebGPU; make test-webgpu-full"]
async fn decoder_greedy_ids_match_reference_on_webgpu() {
    decoder_greedy_matches("webgpu").await;
}

#[wasm_bindgen_test]
async fn icv_computed_in_the_browser_steers_generation() {
    let rt = veer::wasm::runtime::Runtime::create("cpu".into()).await.map_err(|_| "runtime").unwrap();
    let mut g = smollm(&rt).await;
    let fixture: serde_json::Value = serde_json::from_str(ICV_FIXTURE).unwrap();
    let pairs: Vec<serde_json::Value> =
        fixture["pairs"].as_array().unwrap().iter().map(|p| serde_json::json!({"from": p[0], "to": p[1]})).collect();
    let pairs = pairs.serialize(&serde_wasm_bindgen::Serializer::json_compatible()).unwrap();
    let v = g.compute_vector(pairs, None).await.map_err(|_| "compute").unwrap();
    assert_eq!((v.num_layers(), v.hidden()), (30, 576));
    // Same vector as the reference file (per-layer cosine).
    let reference = veer::steering::vector::Vector::from_safetensors(include_bytes!("fixtures/icv.safetensors"), "icv").unwrap();
    for (i, want) in reference.layers.iter().enumerate() {
        let got = v.layer(i).map_err(|_| "layer").unwrap().to_vec();
        assert!(cosine(&got, want) >= 0.9999, "layer {i}");
    }
    let round_trip = veer::wasm::vector::Vector::from_bytes(&v.to_bytes().map_err(|_| "bytes").unwrap()).map_err(|_| "parse").unwrap();
    // Steering is part of the request: vectors by id, each with its strength.
    g.put_vector("icv".into(), &round_trip);
    let want: Vec<u32> = serde_json::from_value(fixture["greedy_steered_ids"].clone()).unwrap();
    let steered = format!("{{\"maxTokens\": 12, \"steer\": [{{\"vector\": \"icv\", \"strength\": {}}}]}}", fixture["lam"]);
    let got = greedy_with(&mut g, fixture["prompt"].as_str().unwrap(), &steered).await;
    assert_eq!(got, want[..12]);
    let want: Vec<u32> = serde_json::from_value(fixture["greedy_plain_ids"].clone()).unwrap();
    assert_eq!(greedy(&mut g, fixture["prompt"].as_str().unwrap(), 12).await, want[..12]);
    // A vector for another model, an unknown id or a strength that is not a number are refused at
    // `start`; the generator keeps working.
    let small = veer::steering::vector::Vector { layers: vec![vec![0.0; 8]; 2], ..reference.clone() };
    g.put_vector("small".into(), &veer::wasm::vector::Vector::from_bytes(&small.to_safetensors().unwrap()).map_err(|_| "parse").unwrap());
    for options in [r#"{"steer": [{"vector": "small"}]}"#, r#"{"steer": [{"vector": "nope"}]}"#, r#"{"steer": [{"vector": "icv", "strength": {}}]}"#, r#"{"minp": 0.1}"#] {
        let err = g.start("x".into(), js_sys::JSON::parse(options).unwrap()).await.err().unwrap();
        let msg = String::from(js_sys::Error::from(wasm_bindgen::JsValue::from(err)).message());
        assert!(msg.starts_with("[E_FILE]") || msg.starts_with("[E_INVALID]"), "{options}: {msg}");
    }
    assert_eq!(greedy(&mut g, "Once upon a time, there was a little", 1).await, [8180]);
}

/// The decoder on WebGPU against the CPU on the tiny random Llama of tests/common/synthetic.rs: every
/// kernel of prefill and of 20 decoding steps (RMSNorm, RoPE, grouped-query attention over a growing KV
/// cache, SwiGLU, the tied head) in seconds on Chromium's software WebGPU, which takes many minutes
/// for SmolLM2 (`make test-webgpu-full` runs that). The CPU path is checked against the SmolLM2
/// reference above, and natively against an f64 reference (tests/tiny.rs).
#[wasm_bindgen_test]
async fn tiny_decoder_gives_the_same_greedy_ids_on_webgpu_and_cpu() {
    let (w, config, tokenizer) = common::synthetic::tiny_llama();
    let weights = w.safetensors();
    // The random model says its eos (w1) early; w23 it does not say in these 20 steps.
    let mut config: serde_json::Value = serde_json::from_slice(&config).unwrap();
    config["eos_token_id"] = 23.into();
    let config = serde_json::to_vec(&config).unwrap();
    let mut runs = Vec::new();
    for device in ["cpu", "webgpu"] {
        let rt = veer::wasm::runtime::Runtime::create(device.into()).await.map_err(|_| "runtime").unwrap();
        let mut files = bundle(&[("config", &config), ("weights", &weights), ("tokenizer", &tokenizer)]);
        let mut g = veer::wasm::generator::Generator::create(&rt, &mut files, None, wasm_bindgen::JsValue::UNDEFINED).map_err(|_| "load").unwrap();
        runs.push(greedy(&mut g, "w3 w5 w7 w11 w2", 20).await);
    }
    assert_eq!(runs[0].len(), 20);
    assert_eq!(runs[0], runs[1], "cpu vs webgpu");
}
