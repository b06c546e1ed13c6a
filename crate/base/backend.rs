//! The only module that names concrete compute devices. Everything else takes a `&Device`.
//!
//! - CPU: burn's `flex` backend (pure Rust, builds for wasm32; 0.22's recommended CPU backend).
//! - GPU: burn's wgpu runtime, WebGPU in the browser (initialised asynchronously, as browsers require)
//!   and Vulkan/Metal natively when the `wgpu` cargo feature is on.

use burn::tensor::{Device, Tensor, TensorData};

use crate::base::error::{Error, Result};

/// Which device a caller asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceChoice {
    Cpu,
    Gpu,
    /// GPU where one can be had, CPU otherwise.
    Auto,
}

impl std::str::FromStr for DeviceChoice {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "cpu" => Ok(Self::Cpu),
            "gpu" | "wgpu" | "webgpu" => Ok(Self::Gpu),
            "auto" => Ok(Self::Auto),
            other => Err(Error::Invalid(format!(
                "device `{other}`: expected one of cpu, wgpu (alias webgpu, gpu), auto"
            ))),
        }
    }
}

/// A device ready for tensors, with the name users see and, for `Auto`, why the GPU was skipped.
#[derive(Debug, Clone)]
pub struct Backend {
    pub device: Device,
    pub kind: BackendKind,
    /// Set when `Auto` fell back to CPU: the reason the GPU could not be used.
    pub fallback_reason: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackendKind {
    Cpu,
    Gpu,
}

impl BackendKind {
    /// `"webgpu"` in the browser, `"wgpu"` natively, `"cpu"` otherwise.
    pub fn name(self) -> &'static str {
        match self {
            BackendKind::Cpu => "cpu",
            BackendKind::Gpu if cfg!(target_arch = "wasm32") => "webgpu",
            BackendKind::Gpu => "wgpu",
        }
    }
}

pub fn cpu() -> Backend {
    Backend { device: Device::flex(), kind: BackendKind::Cpu, fallback_reason: None }
}

/// Run the module's static constructors (cubecl's `inventory` registrations, which its WebGPU
/// compiler looks up), once. wasm32 only: natively the loader runs them.
///
/// Called at instantiation (`wasm::start`) and before the GPU is first used (test harnesses do not
/// call `start`). Without an explicit call wasm-ld links the module as a "command" and wraps every
/// export (each call from JS: allocations and promise callbacks included) in a call to all of them:
/// 15 % of one short text's embedding (V8's profile, `make bench-profile`).
pub fn run_static_constructors() {
    #[cfg(target_arch = "wasm32")]
    {
        unsafe extern "C" {
            fn __wasm_call_ctors();
        }
        static ONCE: std::sync::Once = std::sync::Once::new();
        // SAFETY: the linker's constructor function, run exactly once (`Once`).
        ONCE.call_once(|| unsafe { __wasm_call_ctors() });
    }
}

/// Acquire the GPU once per process/page; later calls reuse the same runtime.
#[cfg(feature = "wgpu")]
pub async fn gpu() -> Result<Backend> {
    use std::sync::Mutex;
    run_static_constructors();
    // burn refuses to initialise the same wgpu runtime twice, so keep the first device.
    static GPU: Mutex<Option<Device>> = Mutex::new(None);
    if let Some(device) = GPU.lock().map_err(|e| Error::Device(e.to_string()))?.clone() {
        return Ok(Backend { device, kind: BackendKind::Gpu, fallback_reason: None });
    }
    // wgpu panics (a trap) where it cannot reach `navigator.gpu`: Node, Deno, shared and service workers.
    #[cfg(target_arch = "wasm32")]
    if let Some(why) = no_webgpu_here() {
        return Err(Error::Device(why));
    }
    let device = Device::wgpu_options()
        .init_async()
        .await
        .map_err(|e| Error::Device(format!("no usable WebGPU/wgpu adapter: {e}")))?;
    // Prove the device computes before anyone relies on it (lavapipe and some browsers hand out
    // adapters that fail on first dispatch).
    let probe = Tensor::<1>::from_data(TensorData::new(vec![1.0f32, 2.0], [2]), &device).sum();
    probe.into_data_async().await.map_err(|e| Error::Device(format!("GPU probe failed: {e}")))?;
    *GPU.lock().map_err(|e| Error::Device(e.to_string()))? = Some(device.clone());
    Ok(Backend { device, kind: BackendKind::Gpu, fallback_reason: None })
}

#[cfg(not(feature = "wgpu"))]
pub async fn gpu() -> Result<Backend> {
    let why = if cfg!(target_arch = "wasm32") { "this is veer's CPU-only wasm build (no WebGPU)" } else { "this build of veer has no GPU support: rebuild with `--features wgpu`" };
    Err(Error::Device(why.into()))
}

pub async fn select(choice: DeviceChoice) -> Result<Backend> {
    match choice {
        DeviceChoice::Cpu => Ok(cpu()),
        DeviceChoice::Gpu => gpu().await,
        DeviceChoice::Auto => {
            if let Some(why) = software_adapter().await {
                return Ok(Backend { fallback_reason: Some(why), ..cpu() });
            }
            match gpu().await {
                Ok(backend) => Ok(backend),
                Err(e) => Ok(Backend { fallback_reason: Some(e.to_string()), ..cpu() }),
            }
        }
    }
}

/// Why `auto` must not take the browser's WebGPU adapter: it is a software fallback (SwiftShader on a
/// machine without a usable GPU, `isFallbackAdapter`), which runs veer's models 50–100× slower than the
/// wasm CPU path. `None` when the adapter is real hardware, or when the browser has none (the GPU path
/// then reports its own error). Asked through JS reflection: it works in workers and needs no web-sys
/// feature.
#[cfg(target_arch = "wasm32")]
async fn software_adapter() -> Option<String> {
    use wasm_bindgen::{JsCast, JsValue};
    let get = js_prop;
    let gpu = get(&get(&js_sys::global(), "navigator")?, "gpu")?;
    let request: js_sys::Function = get(&gpu, "requestAdapter")?.dyn_into().ok()?;
    let promise: js_sys::Promise = request.call0(&gpu).ok()?.dyn_into().ok()?;
    let adapter = wasm_bindgen_futures::JsFuture::from(promise).await.ok().filter(|a| !a.is_null() && !a.is_undefined())?;
    // `info.isFallbackAdapter` (Chrome 136+), formerly `adapter.isFallbackAdapter`.
    let info = get(&adapter, "info");
    let flag = |o: &JsValue| get(o, "isFallbackAdapter").and_then(|v| v.as_bool());
    if !info.as_ref().and_then(flag).or_else(|| flag(&adapter)).unwrap_or(false) {
        return None;
    }
    let describe = |k: &str| info.as_ref().and_then(|i| get(i, k)).and_then(|v| v.as_string()).filter(|s| !s.is_empty());
    let name = [describe("vendor"), describe("architecture"), describe("description")].into_iter().flatten().collect::<Vec<_>>().join(" ");
    Some(format!(
        "the browser's WebGPU adapter{} is a software fallback (isFallbackAdapter), far slower than the CPU path; ask for device \"webgpu\" to use it anyway",
        if name.is_empty() { String::new() } else { format!(" ({name})") }
    ))
}

/// `o[k]` through JS reflection, `None` when it is missing, undefined or null.
#[cfg(target_arch = "wasm32")]
fn js_prop(o: &wasm_bindgen::JsValue, k: &str) -> Option<wasm_bindgen::JsValue> {
    js_sys::Reflect::get(o, &wasm_bindgen::JsValue::from_str(k)).ok().filter(|v| !v.is_undefined() && !v.is_null())
}

/// Why wgpu's WebGPU backend cannot start in this JS realm: it needs a window or a worker global
/// (`Window`, `WorkerGlobalScope`) with `navigator.gpu`, and panics without them.
#[cfg(all(target_arch = "wasm32", feature = "wgpu"))]
fn no_webgpu_here() -> Option<String> {
    let global = js_sys::global();
    let has = js_prop;
    if has(&global, "Window").is_none() && has(&global, "WorkerGlobalScope").is_none() {
        return Some("no WebGPU here: this JavaScript runtime is neither a page nor a dedicated worker".into());
    }
    if has(&global, "navigator").and_then(|n| has(&n, "gpu")).is_none() {
        return Some("no WebGPU here (navigator.gpu is undefined)".into());
    }
    None
}

/// Natively a wgpu adapter is what the machine has (lavapipe is chosen knowingly with `--device wgpu`).
#[cfg(not(target_arch = "wasm32"))]
async fn software_adapter() -> Option<String> {
    None
}

/// Read a float tensor back to the host. Always async: browsers cannot block on GPU readback.
pub async fn read_f32<const D: usize>(tensor: Tensor<D>) -> Result<Vec<f32>> {
    let data = tensor.into_data_async().await.map_err(|e| Error::Device(format!("readback: {e}")))?;
    data.convert::<f32>().try_into_vec::<f32>().map_err(|e| Error::Device(format!("readback: {e:?}")))
}

/// Whether `device` is the CPU device (`cpu()`).
pub fn is_cpu(device: &Device) -> bool {
    *device == Device::flex()
}

/// A CPU tensor's values, read at once. Only for tensors on the CPU device: flex finishes every
/// operation before it returns, so the read is ready when first polled, in the browser too (where
/// nothing may block; a GPU tensor there would panic: use `read_f32`).
pub fn read_now<const D: usize>(tensor: Tensor<D>) -> Vec<f32> {
    tensor.into_data().convert::<f32>().try_into_vec::<f32>().unwrap_or_default()
}

/// Block on a future natively (the CLI and native tests); the browser awaits instead.
#[cfg(not(target_arch = "wasm32"))]
pub use pollster::block_on;

/// Check that `backend` computes: a fixed matmul + softmax on it and on the CPU, returning the largest
/// absolute difference. Cheap enough to run at start-up; the demo shows it, tests bound it.
pub async fn self_check(backend: &Backend) -> Result<f32> {
    let (m, k, n) = (16, 64, 8);
    let a: Vec<f32> = (0..m * k).map(|i| ((i * 37 % 101) as f32 - 50.0) / 50.0).collect();
    let b: Vec<f32> = (0..k * n).map(|i| ((i * 53 % 97) as f32 - 48.0) / 48.0).collect();
    let run = |device: &Device| {
        let a = Tensor::<2>::from_data(TensorData::new(a.clone(), [m, k]), device); // [m, k]
        let b = Tensor::<2>::from_data(TensorData::new(b.clone(), [k, n]), device); // [k, n]
        burn::tensor::activation::softmax(a.matmul(b), 1) // [m, n]
    };
    let got = read_f32(run(&backend.device)).await?;
    let want = read_f32(run(&cpu().device)).await?;
    Ok(got.iter().zip(&want).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max))
}
