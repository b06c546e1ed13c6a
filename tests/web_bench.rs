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
    let options = veer::encoder::Options { max_len: Some(32), ..Default::default() };
    let mut lines = Vec::new();
    for device in [veer::backend::cpu(), veer::backend::gpu().await.unwrap()] {
        let enc = veer::encoder::Encoder::load(&config, &weights, &tokenizer, options.clone(), &device.device).unwrap();
        for batch in [1, 8] {
            let t = veer::bench::encoder_throughput(&enc, batch, 3000.0, || perf.now()).await.unwrap();
            lines.push(format!(
                "browser {:>6} batch {batch}: {:>7.1} texts/s ({:.1} ms/batch, {} tokens/text, {} runs)",
                device.kind.name(), t.texts_per_s, t.ms_per_batch, t.tokens_per_text, t.runs
            ));
            web_sys::console::log_1(&lines.last().unwrap().into());
        }
    }
}
