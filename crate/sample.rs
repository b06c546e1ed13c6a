//! Next-token choice from logits on the host: greedy, temperature, top-k, top-p, repetition penalty,
//! seeded so that a seed reproduces a generation on every device.

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use serde::Deserialize;

use crate::error::{Error, Result};

#[derive(Debug, Clone, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct SamplingParams {
    /// 0 = greedy (argmax).
    pub temperature: f32,
    /// Keep only the k most likely tokens (0 = off).
    pub top_k: usize,
    /// Keep the smallest set of tokens whose probability reaches p (1 = off).
    pub top_p: f32,
    /// HF-style: logits of tokens already seen are divided (if positive) or multiplied by this (1 = off).
    pub repetition_penalty: f32,
    pub seed: u64,
}

impl Default for SamplingParams {
    fn default() -> Self {
        SamplingParams { temperature: 0.0, top_k: 0, top_p: 1.0, repetition_penalty: 1.0, seed: 0 }
    }
}

impl SamplingParams {
    pub fn validate(&self) -> Result<()> {
        if !(self.temperature >= 0.0 && self.temperature.is_finite()) {
            return Err(Error::Invalid(format!("temperature {}: expected a finite number ≥ 0", self.temperature)));
        }
        if !(self.top_p > 0.0 && self.top_p <= 1.0) {
            return Err(Error::Invalid(format!("top_p {}: expected 0 < top_p ≤ 1", self.top_p)));
        }
        if !(self.repetition_penalty > 0.0 && self.repetition_penalty.is_finite()) {
            return Err(Error::Invalid(format!("repetition_penalty {}: expected a positive number", self.repetition_penalty)));
        }
        Ok(())
    }
}

pub struct Sampler {
    params: SamplingParams,
    rng: SmallRng,
}

impl Sampler {
    pub fn new(params: SamplingParams) -> Result<Self> {
        params.validate()?;
        let rng = SmallRng::seed_from_u64(params.seed);
        Ok(Sampler { params, rng })
    }

    /// Choose the next token. `history`: prompt and generated ids (for the repetition penalty).
    pub fn sample(&mut self, logits: &mut [f32], history: &[u32]) -> u32 {
        let p = &self.params;
        if p.repetition_penalty != 1.0 {
            let mut seen = history.to_vec();
            seen.sort_unstable();
            seen.dedup();
            for &id in &seen {
                if let Some(l) = logits.get_mut(id as usize) {
                    *l = if *l > 0.0 { *l / p.repetition_penalty } else { *l * p.repetition_penalty };
                }
            }
        }
        if p.temperature == 0.0 {
            return argmax(logits);
        }
        // Candidates sorted by logit, highest first; ties keep the lower id first.
        let mut order: Vec<u32> = (0..logits.len() as u32).collect();
        order.sort_by(|&a, &b| logits[b as usize].total_cmp(&logits[a as usize]).then(a.cmp(&b)));
        if p.top_k > 0 {
            order.truncate(p.top_k);
        }
        let max = logits[order[0] as usize];
        let mut probs: Vec<f32> = order.iter().map(|&i| ((logits[i as usize] - max) / p.temperature).exp()).collect();
        let total: f32 = probs.iter().sum();
        probs.iter_mut().for_each(|x| *x /= total);
        if p.top_p < 1.0 {
            let mut cum = 0.0;
            let keep = probs.iter().position(|&x| {
                cum += x;
                cum >= p.top_p
            });
            let keep = keep.map_or(probs.len(), |k| k + 1);
            probs.truncate(keep);
            order.truncate(keep);
        }
        let total: f32 = probs.iter().sum();
        let mut r = self.rng.random::<f32>() * total;
        for (&id, &prob) in order.iter().zip(&probs) {
            r -= prob;
            if r <= 0.0 {
                return id;
            }
        }
        order[probs.len() - 1]
    }
}

/// Index of the largest value; the first one on ties (as numpy's argmax).
pub fn argmax(v: &[f32]) -> u32 {
    let mut best = 0;
    for (i, &x) in v.iter().enumerate() {
        if x > v[best] {
            best = i;
        }
    }
    best as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn greedy_is_argmax_and_penalty_applies() {
        let mut s = Sampler::new(SamplingParams::default()).unwrap();
        assert_eq!(s.sample(&mut [0.1, 2.0, 2.0, -1.0], &[]), 1);
        let mut s = Sampler::new(SamplingParams { repetition_penalty: 2.0, ..Default::default() }).unwrap();
        assert_eq!(s.sample(&mut [0.1, 2.0, 1.5, -1.0], &[1]), 2); // 2.0/2 = 1.0 < 1.5
    }

    #[test]
    fn top_k_one_and_tiny_top_p_are_greedy_and_seeds_reproduce() {
        let logits = [0.5f32, 1.0, 3.0, 2.9, -2.0];
        for params in [SamplingParams { temperature: 1.0, top_k: 1, ..Default::default() }, SamplingParams { temperature: 1.0, top_p: 0.01, ..Default::default() }] {
            let mut s = Sampler::new(params).unwrap();
            for _ in 0..20 {
                assert_eq!(s.sample(&mut logits.clone(), &[]), 2);
            }
        }
        let draw = |seed| {
            let mut s = Sampler::new(SamplingParams { temperature: 1.0, seed, ..Default::default() }).unwrap();
            (0..32).map(|_| s.sample(&mut logits.clone(), &[])).collect::<Vec<_>>()
        };
        assert_eq!(draw(7), draw(7));
        assert_ne!(draw(7), draw(8));
        // With temperature 1, both near-equal top tokens appear.
        let d = draw(3);
        assert!(d.contains(&2) && d.contains(&3), "{d:?}");
    }

    #[test]
    fn bad_params_are_rejected() {
        assert!(Sampler::new(SamplingParams { top_p: 0.0, ..Default::default() }).is_err());
        assert!(Sampler::new(SamplingParams { temperature: -1.0, ..Default::default() }).is_err());
    }
}
