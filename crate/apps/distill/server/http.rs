//! The transport: POST and GET with retries, backoff (honouring `Retry-After`) and a rate limit, each
//! attempt on the next server.

use std::io::Read;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use serde_json::Value;

use crate::apps::distill::server::{Failure, ServerTeacher};

impl ServerTeacher {
    /// POST `path` under one of the servers: the worker's own first, the next one on each retry. A
    /// `probe` (a request whose refusal tells what the server supports) is not retried on a 500.
    pub(super) fn post(&self, path: &str, body: &Value, worker: usize, probe: bool) -> std::result::Result<Value, Failure> {
        let body = serde_json::to_vec(body).map_err(|e| Failure { retry: false, after: None, status: None, message: e.to_string() })?;
        let attempt = AtomicUsize::new(0);
        self.attempts(|| {
            let a = attempt.fetch_add(1, Ordering::Relaxed);
            let url = format!("{}/{path}", self.options.urls[(worker + a) % self.options.urls.len()]);
            self.once(&url, Some(&body)).map_err(|f| if probe && f.status == Some(500) { Failure { retry: false, ..f } } else { f })
        })
    }

    /// `request` until it succeeds, fails for good, or `retries` are spent; backoff 0.25 s × 2^k (at
    /// most 20 s) scaled by a jitter in [0.5, 1.5), or the server's `Retry-After`.
    pub(super) fn attempts(&self, mut request: impl FnMut() -> std::result::Result<Value, Failure>) -> std::result::Result<Value, Failure> {
        let mut k = 0u32;
        loop {
            match request() {
                Err(f) if f.retry && k < self.options.retries => {
                    // Workers that failed together should not retry together: the clock's nanoseconds spread them.
                    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
                    let jitter = 0.5 + (nanos % 1000) as f64 / 1000.0;
                    let wait = f.after.unwrap_or_else(|| Duration::from_secs_f64((0.25 * 2f64.powi(k as i32)).min(20.0) * jitter));
                    std::thread::sleep(wait.min(Duration::from_secs(60)));
                    k += 1;
                }
                Err(f) if f.retry => return Err(Failure { message: format!("{} (gave up after {} retries)", f.message, k), ..f }),
                r => return r,
            }
        }
    }

    /// One HTTP request (GET when `body` is None), after waiting for a slot under the rate limit.
    pub(super) fn once(&self, url: &str, body: Option<&[u8]>) -> std::result::Result<Value, Failure> {
        if let Some(rate) = self.options.rate {
            let at = {
                let mut slot = self.next_slot.lock().unwrap_or_else(|e| e.into_inner());
                let at = (*slot).max(Instant::now());
                *slot = at + Duration::from_secs_f64(1.0 / rate);
                at
            };
            std::thread::sleep(at.saturating_duration_since(Instant::now()));
        }
        self.requests.fetch_add(1, Ordering::Relaxed);
        let auth = self.key.as_ref().map(|k| format!("Bearer {k}"));
        let result = match body {
            Some(b) => {
                let mut r = self.agent.post(url).content_type("application/json");
                if let Some(a) = &auth {
                    r = r.header("Authorization", a);
                }
                r.send(b)
            }
            None => {
                let mut r = self.agent.get(url);
                if let Some(a) = &auth {
                    r = r.header("Authorization", a);
                }
                r.call()
            }
        };
        let mut resp = result.map_err(|e| Failure { retry: true, after: None, status: None, message: format!("{url}: {e}") })?;
        let status = resp.status().as_u16();
        let after = resp.headers().get("retry-after").and_then(|h| h.to_str().ok()?.trim().parse::<f64>().ok()).filter(|s| s.is_finite() && *s >= 0.0).map(Duration::from_secs_f64);
        // Bounded: an answer of one token with 20 alternatives is a few KB.
        let mut bytes = Vec::new();
        let read = resp.body_mut().as_reader().take(8 << 20).read_to_end(&mut bytes);
        if (200..300).contains(&status) {
            read.map_err(|e| Failure { retry: true, after: None, status: Some(status), message: format!("{url}: reading the answer: {e}") })?;
            return serde_json::from_slice(&bytes).map_err(|e| Failure { retry: false, after: None, status: Some(status), message: format!("{url}: the answer is not JSON: {e}") });
        }
        // The server's error message may quote the prompt, so only its type/code is reported.
        let kind = serde_json::from_slice::<Value>(&bytes).ok().and_then(|v| {
            let e = &v["error"];
            e["type"].as_str().or(e["code"].as_str()).map(str::to_string)
        });
        let retry = matches!(status, 408 | 409 | 429 | 500..=599);
        Err(Failure { retry, after, status: Some(status), message: format!("{url}: HTTP {status}{}", kind.map(|k| format!(" ({k})")).unwrap_or_default()) })
    }
}
