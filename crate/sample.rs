//! Next-token choice from logits on the host: greedy, temperature, top-k, min-p, top-p, repetition penalty,
//! seeded so that a seed reproduces a generation on every device.

// StdRng (ChaCha12): SmallRng is another generator on 32-bit targets, and a seed must give the same
// sample in the browser (wasm32) as natively.
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::error::Result;
use crate::options::GenerateOptions;

pub struct Sampler {
    options: GenerateOptions,
    rng: StdRng,
}

impl Sampler {
    /// A sampler for one request; checks the request's numbers first.
    pub fn new(options: &GenerateOptions) -> Result<Self> {
        options.validate()?;
        Ok(Sampler { options: options.clone(), rng: StdRng::seed_from_u64(options.seed) })
    }

    /// Choose the next token. `history`: prompt and generated ids (for the repetition penalty).
    pub fn sample(&mut self, logits: &mut [f32], history: &[u32]) -> u32 {
        let p = &self.options;
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
        if p.temperature == 0.0 || logits.is_empty() {
            return argmax(logits) as u32; // 0 for no logits (a model has ≥ 1: `vocab_size` is checked)
        }
        // Candidates sorted by logit, highest first; ties keep the lower id first.
        let mut order: Vec<u32> = (0..logits.len() as u32).collect();
        order.sort_by(|&a, &b| logits[b as usize].total_cmp(&logits[a as usize]).then(a.cmp(&b)));
        if p.top_k > 0 {
            order.truncate(p.top_k);
        }
        let max = logits[order[0] as usize]; // order is not empty: logits are not, top_k > 0 keeps ≥ 1
        let mut probs: Vec<f32> = order.iter().map(|&i| ((logits[i as usize] - max) / p.temperature).exp()).collect();
        let total: f32 = probs.iter().sum();
        probs.iter_mut().for_each(|x| *x /= total);
        if p.min_p > 0.0 {
            // Sorted descending, so the kept tokens are a prefix; the first (probs[0]) always stays.
            let floor = p.min_p * probs[0];
            let keep = probs.iter().take_while(|&&x| x >= floor).count().max(1);
            if keep < probs.len() {
                probs.truncate(keep);
                order.truncate(keep);
                let total: f32 = probs.iter().sum();
                probs.iter_mut().for_each(|x| *x /= total);
            }
        }
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
        order[probs.len() - 1] // min_p and top_p each keep ≥ 1 candidate, and probs is order's length
    }
}

/// Index of the largest value; the first one on ties (as numpy's argmax). 0 for an empty slice.
pub fn argmax(v: &[f32]) -> usize {
    let mut best = 0;
    for (i, &x) in v.iter().enumerate() {
        if x > v[best] {
            best = i;
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn greedy_is_argmax_and_penalty_applies() {
        let mut s = Sampler::new(&GenerateOptions::default()).unwrap();
        assert_eq!(s.sample(&mut [0.1, 2.0, 2.0, -1.0], &[]), 1);
        let mut s = Sampler::new(&GenerateOptions { repetition_penalty: 2.0, ..Default::default() }).unwrap();
        assert_eq!(s.sample(&mut [0.1, 2.0, 1.5, -1.0], &[1]), 2); // 2.0/2 = 1.0 < 1.5
    }

    #[test]
    fn top_k_one_and_tiny_top_p_are_greedy_and_seeds_reproduce() {
        let logits = [0.5f32, 1.0, 3.0, 2.9, -2.0];
        for params in [GenerateOptions { temperature: 1.0, top_k: 1, ..Default::default() }, GenerateOptions { temperature: 1.0, top_p: 0.01, ..Default::default() }] {
            let mut s = Sampler::new(&params).unwrap();
            for _ in 0..20 {
                assert_eq!(s.sample(&mut logits.clone(), &[]), 2);
            }
        }
        let draw = |seed| {
            let mut s = Sampler::new(&GenerateOptions { temperature: 1.0, seed, ..Default::default() }).unwrap();
            (0..32).map(|_| s.sample(&mut logits.clone(), &[])).collect::<Vec<_>>()
        };
        assert_eq!(draw(7), draw(7));
        assert_ne!(draw(7), draw(8));
        // With temperature 1, both near-equal top tokens appear.
        let d = draw(3);
        assert!(d.contains(&2) && d.contains(&3), "{d:?}");
    }

    #[test]
    fn min_p_drops_tokens_below_its_share_of_the_top_probability() {
        // Probabilities at temperature 1: softmax([2, 1.9, 0, -1]) ≈ [0.47, 0.43, 0.06, 0.02].
        let logits = [2.0f32, 1.9, 0.0, -1.0];
        let draw = |min_p| {
            let mut s = Sampler::new(&GenerateOptions { temperature: 1.0, min_p, seed: 5, ..Default::default() }).unwrap();
            (0..400).map(|_| s.sample(&mut logits.clone(), &[])).collect::<std::collections::BTreeSet<_>>()
        };
        assert_eq!(draw(0.0), [0, 1, 2, 3].into());
        assert_eq!(draw(0.5), [0, 1].into()); // 0.06 < 0.5 · 0.47
        assert_eq!(draw(1.0), [0].into());
    }

    #[test]
    fn bad_params_are_rejected() {
        assert!(Sampler::new(&GenerateOptions { top_p: 0.0, ..Default::default() }).is_err());
        assert!(Sampler::new(&GenerateOptions { temperature: -1.0, ..Default::default() }).is_err());
        assert!(Sampler::new(&GenerateOptions { min_p: -0.1, ..Default::default() }).is_err());
    }
}
