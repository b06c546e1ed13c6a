//! What `--teacher openai:URL[,URL…][#MODEL]` and its flags say: the servers, the model and how to ask.

use crate::base::error::{Error, Result};

/// Where and how to reach the server(s).
#[derive(Debug, Clone)]
pub struct ServerOptions {
    /// Base URLs ending in the API version, e.g. `http://127.0.0.1:8080/v1`.
    pub urls: Vec<String>,
    /// The model to ask for; default: the first one the server lists at `/models`.
    pub model: Option<String>,
    /// Requests in flight at once, over all servers.
    pub concurrency: usize,
    /// Retries of one request (connection failures, 408/409/429/5xx) before the run stops.
    pub retries: u32,
    /// Requests per second over all servers (None: as fast as `concurrency` allows).
    pub rate: Option<f64>,
    /// The environment variable holding an API key, sent as a bearer token when set.
    pub api_key_env: String,
    /// Seconds one request may take.
    pub timeout_s: u64,
    /// `auto`: log-probabilities where the server gives them, generation otherwise.
    pub mode: ServerMode,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ServerMode {
    Auto,
    Logprobs,
    Generate,
}

impl std::str::FromStr for ServerMode {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        crate::base::error::parse_name(s, "--teacher-mode (auto, logprobs or generate)")
    }
}

impl ServerOptions {
    /// `URL[,URL…][#MODEL]` (after `openai:`). A URL without a path gets `/v1`.
    pub fn parse(spec: &str) -> Result<ServerOptions> {
        let (urls, model) = match spec.split_once('#') {
            Some((u, m)) if !m.trim().is_empty() => (u, Some(m.trim().to_string())),
            Some((u, _)) => (u, None),
            None => (spec, None),
        };
        let urls = urls
            .split(',')
            .map(|u| {
                let u = u.trim().trim_end_matches('/');
                let rest = u.strip_prefix("http://").or_else(|| u.strip_prefix("https://")).ok_or_else(|| Error::Invalid(format!("--teacher openai:{u}: expected an http:// or https:// URL")))?;
                if rest.is_empty() {
                    return Err(Error::Invalid("--teacher openai:: the URL has no host".into()));
                }
                Ok(if rest.contains('/') { u.to_string() } else { format!("{u}/v1") })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(ServerOptions { urls, model, concurrency: 4, retries: 6, rate: None, api_key_env: "OPENAI_API_KEY".into(), timeout_s: 120, mode: ServerMode::Auto })
    }
}
