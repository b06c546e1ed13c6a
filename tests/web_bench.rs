//! Browser benchmark (not part of `make test`; run with `make bench-browser`): MiniLM-L6 texts/s at
//! ~32 tokens, batch 1 and 8, on the CPU backend and on WebGPU in the same browser session.
#![cfg(target_arch = "wasm32")]

use wasm_bindgen_futures::JsFuture;
use wasm_bindgen::JsCast;
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

async fn fetch_bytes(path: &str) -> Vec<u8> {
    let url = format!("{}{path}", option_env!("VEER_TEST_MODELS_URL").unwrap_or("http://127.0.0.1:8787/models/"));
    let resp: web_sys::Response = JsFuture::from(web_sys::window().unwrap().fetch_with_str(&url)).await.unwrap().dyn_into().unwrap();
    assert!(resp.ok(), "{url}: HTTP {}", resp.status());
    js_sys::Uint8Array::new(&JsFuture::from(resp.array_buffer().unwrap()).await.unwrap()).to_vec()
}

#[wasm_bindgen_test]
async fn minilm_throughput_cpu_vs_webgpu() {
    let dir = "all-minilm-l6-v2/";
    let (config, weights, tokenizer) = (
        fetch_bytes(&format!("{dir}config.json")).await,
        fetch_bytes(&format!("{dir}model.safetensors")).await,
        fetch_bytes(&format!("{dir}tokenizer.json")).await,
    );
    let perf = web_sys::window().unwrap().performance().unwrap();
    let options = veer::base::options::EncoderOptions { max_length: Some(32), ..Default::default() };
    let files = veer::io::files::ModelFiles::new(config, weights, tokenizer);
    let mut lines = Vec::new();
    for device in [veer::base::backend::cpu(), veer::base::backend::gpu().await.unwrap()] {
        let enc = veer::tasks::encode::Encoder::load(&files, &options, &device.device).unwrap();
        for batch in [1, 8] {
            let t = veer::tasks::bench::encoder_throughput(&enc, batch, 3000.0, || perf.now()).await.unwrap();
            lines.push(format!(
                "browser {:>6} batch {batch}: {:>7.1} texts/s ({:.1} ms/batch, {} tokens/text, {} runs)",
                device.kind.name(), t.texts_per_s, t.ms_per_batch, t.tokens_per_text, t.runs
            ));
            web_sys::console::log_1(&lines.last().unwrap().into());
        }
    }
}

#[wasm_bindgen_test]
async fn smollm_prefill_and_decode_cpu_vs_webgpu() {
    use veer::tasks::generate::{Generation, Model};
    let dir = "smollm2-135m-instruct/";
    let (config, weights, tokenizer, tc) = (
        fetch_bytes(&format!("{dir}config.json")).await,
        fetch_bytes(&format!("{dir}model.safetensors")).await,
        fetch_bytes(&format!("{dir}tokenizer.json")).await,
        fetch_bytes(&format!("{dir}tokenizer_config.json")).await,
    );
    let perf = web_sys::window().unwrap().performance().unwrap();
    let mut files = veer::io::files::ModelFiles::new(config, weights, tokenizer);
    files.tokenizer_config = Some(veer::io::files::File { name: "tokenizer_config.json".into(), bytes: tc });
    let text = "The harbour town woke slowly: fishermen mended nets, a baker opened early, and children ran along the sea wall while gulls argued over scraps.";
    for device in [veer::base::backend::cpu(), veer::base::backend::gpu().await.unwrap()] {
        let m = Model::load(&files, "smollm2", &device.device).unwrap();
        let prompt = m.encode(text).unwrap();
        for round in 0..2 {
            // Round 0 warms up (shader compilation, allocation); round 1 is reported.
            // Software WebGPU (no GPU on the machine) manages well under one token per second.
            let max_tokens = if device.kind == veer::base::backend::BackendKind::Cpu { 32 } else { 8 };
            let options = veer::base::options::GenerateOptions { max_tokens, ..Default::default() };
            let t0 = perf.now();
            let mut g = Generation::start(&m, text, &options, &veer::models::llama::hook::Plain).await.unwrap();
            let t1 = perf.now();
            while g.next(&m, &veer::models::llama::hook::Plain).await.unwrap().is_some() {}
            let t2 = perf.now();
            if round == 1 {
                let line = format!(
                    "browser {:>6} SmolLM2-135M: prefill {} tokens {:.1} tokens/s, decode {:.1} tokens/s",
                    device.kind.name(),
                    prompt.len(),
                    prompt.len() as f64 * 1000.0 / (t1 - t0),
                    (g.ids().len() - 1) as f64 * 1000.0 / (t2 - t1)
                );
                web_sys::console::log_1(&line.into());
            }
        }
    }
}
