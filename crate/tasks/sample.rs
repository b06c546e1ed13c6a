//! Next-token choice from logits on the host: greedy, temperature, top-k, min-p, top-p, repetition penalty,
//! seeded so that a seed reproduces a generation on every device.

// StdRng (ChaCha12): SmallRng is another generator on 32-bit targets, and a seed must give the same
// sample in the browser (wasm32) as natively.
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::base::error::Result;
use crate::base::math::argmax;
use crate::base::options::SamplerOptions;

pub struct Sampler {
    options: SamplerOptions,
    rng: StdRng,
    /// Candidate ids, reused from token to token.
    kept: Vec<u32>,
}

impl Sampler {
    /// A sampler for one request (`GenerateOptions::sampler`); checks its numbers first.
    pub fn new(options: &SamplerOptions) -> Result<Self> {
        options.validate()?;
        Ok(Sampler { options: options.clone(), rng: StdRng::seed_from_u64(options.seed), kept: Vec::new() })
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
        self.draw(logits)
    }

    /// Temperature sampling with top-k, min-p and top-p, in weights e_i = exp((l_i − max) / T)
    /// (probabilities up to one common factor). Only the candidates that can matter are sorted
    /// (highest logit first, ties to the lower id): those above a logit floor, lowered until they hold
    /// the top k, the min-p set or the top-p mass. A full-vocabulary sort (49152 ids for SmolLM2) per
    /// token cost more than the rest of sampling together; the floor keeps it to tens of ids.
    fn draw(&mut self, logits: &[f32]) -> u32 {
        let p = &self.options;
        let (n, t) = (logits.len(), p.temperature);
        let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max); // NaN logits never win
        let weight = |l: f32| ((l - max) / t).exp();
        let all: f32 = logits.iter().map(|&l| weight(l)).sum();
        let kept = &mut self.kept;
        // Relative weight τ of the floor: min-p's own (nothing below it is ever kept), else 1e-4 and
        // lower (1e-8, …, 0 = every token) until enough is above it.
        let mut tau = if p.min_p > 0.0 { p.min_p } else { 1e-4 };
        let mut floor;
        loop {
            floor = if tau > 0.0 { max + t * tau.ln() } else { f32::NEG_INFINITY };
            kept.clear();
            kept.extend((0..n as u32).filter(|&i| logits[i as usize] >= floor));
            let enough = tau == 0.0
                || p.min_p > 0.0
                || if p.top_k > 0 {
                    kept.len() >= p.top_k
                } else if p.top_p < 1.0 {
                    kept.iter().map(|&i| weight(logits[i as usize])).sum::<f32>() >= p.top_p * all
                } else {
                    true // plain temperature: the tokens below the floor are drawn from too, in id order
                };
            if enough {
                break;
            }
            tau = if tau > 1e-30 { tau * 1e-4 } else { 0.0 };
        }
        kept.sort_unstable_by(|&a, &b| logits[b as usize].total_cmp(&logits[a as usize]).then(a.cmp(&b)));
        if kept.is_empty() {
            return argmax(logits) as u32; // every logit NaN
        }
        let truncated = p.top_k > 0 || p.min_p > 0.0;
        if p.top_k > 0 {
            kept.truncate(p.top_k);
        }
        if p.min_p > 0.0 {
            // The top token has weight 1 (it is the max), so min-p keeps weights ≥ min_p; kept[0] stays.
            let keep = kept.iter().take_while(|&&i| weight(logits[i as usize]) >= p.min_p).count().max(1);
            kept.truncate(keep);
        }
        let mut mass = if truncated { kept.iter().map(|&i| weight(logits[i as usize])).sum() } else { all };
        if p.top_p < 1.0 {
            // The smallest prefix reaching top_p of the mass (the floor guaranteed it lies in `kept`).
            let mut cum = 0.0;
            let keep = kept.iter().position(|&i| {
                cum += weight(logits[i as usize]);
                cum >= p.top_p * mass
            });
            kept.truncate(keep.map_or(kept.len(), |k| k + 1));
            mass = kept.iter().map(|&i| weight(logits[i as usize])).sum();
        }
        let tail = !truncated && p.top_p >= 1.0 && kept.len() < n;
        let mut r = self.rng.random::<f32>() * mass;
        for &id in kept.iter() {
            r -= weight(logits[id as usize]);
            if r <= 0.0 {
                return id;
            }
        }
        if tail {
            // Plain temperature: the rest of the vocabulary, below the floor, in id order.
            let mut last = kept[kept.len() - 1];
            for id in 0..n as u32 {
                let l = logits[id as usize];
                if !(l < floor) {
                    continue; // in `kept` already, or NaN
                }
                last = id;
                r -= weight(l);
                if r <= 0.0 {
                    return id;
                }
            }
            return last;
        }
        kept[kept.len() - 1] // rounding left r > 0: the last candidate
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::base::options::GenerateOptions;

    #[test]
    fn greedy_is_argmax_and_penalty_applies() {
        let mut s = Sampler::new(&GenerateOptions::default().sampler()).unwrap();
        assert_eq!(s.sample(&mut [0.1, 2.0, 2.0, -1.0], &[]), 1);
        let mut s = Sampler::new(&GenerateOptions { repetition_penalty: 2.0, ..Default::default() }.sampler()).unwrap();
        assert_eq!(s.sample(&mut [0.1, 2.0, 1.5, -1.0], &[1]), 2); // 2.0/2 = 1.0 < 1.5
    }

    #[test]
    fn top_k_one_and_tiny_top_p_are_greedy_and_seeds_reproduce() {
        let logits = [0.5f32, 1.0, 3.0, 2.9, -2.0];
        for params in [GenerateOptions { temperature: 1.0, top_k: 1, ..Default::default() }, GenerateOptions { temperature: 1.0, top_p: 0.01, ..Default::default() }] {
            let mut s = Sampler::new(&params.sampler()).unwrap();
            for _ in 0..20 {
                assert_eq!(s.sample(&mut logits.clone(), &[]), 2);
            }
        }
        let draw = |seed| {
            let mut s = Sampler::new(&GenerateOptions { temperature: 1.0, seed, ..Default::default() }.sampler()).unwrap();
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
            let mut s = Sampler::new(&GenerateOptions { temperature: 1.0, min_p, seed: 5, ..Default::default() }.sampler()).unwrap();
            (0..400).map(|_| s.sample(&mut logits.clone(), &[])).collect::<std::collections::BTreeSet<_>>()
        };
        assert_eq!(draw(0.0), [0, 1, 2, 3].into());
        assert_eq!(draw(0.5), [0, 1].into()); // 0.06 < 0.5 · 0.47
        assert_eq!(draw(1.0), [0].into());
    }

    /// The distribution each option leaves, computed the slow way (every id sorted, normalised).
    fn exact(logits: &[f32], o: &GenerateOptions) -> Vec<f64> {
        let mut order: Vec<usize> = (0..logits.len()).collect();
        order.sort_by(|&a, &b| logits[b].total_cmp(&logits[a]).then(a.cmp(&b)));
        if o.top_k > 0 {
            order.truncate(o.top_k);
        }
        let max = logits[order[0]] as f64;
        let w = |i: usize| ((logits[i] as f64 - max) / o.temperature as f64).exp();
        order.retain(|&i| w(i) >= o.min_p as f64);
        let total: f64 = order.iter().map(|&i| w(i)).sum();
        let mut cum = 0.0;
        let keep = order.iter().position(|&i| {
            cum += w(i) / total;
            cum >= o.top_p as f64
        });
        order.truncate(keep.map_or(order.len(), |k| k + 1));
        let total: f64 = order.iter().map(|&i| w(i)).sum();
        let mut p = vec![0.0; logits.len()];
        for &i in &order {
            p[i] = w(i) / total;
        }
        p
    }

    #[test]
    fn sampling_without_a_full_sort_draws_the_exact_distribution() {
        // 3000 ids: a few likely ones, a long tail, and a cliff (−30) that forces the floor lower when
        // top-k asks for more ids than stand above it.
        let logits: Vec<f32> = (0..3000u32)
            .map(|i| match i {
                7 => 4.0,
                1234 => 3.5,
                42 => 3.5,
                2999 => 2.0,
                _ if i % 3 == 0 => -30.0,
                _ => ((i.wrapping_mul(2654435761) >> 20) % 1000) as f32 / 250.0 - 4.0,
            })
            .collect();
        let draws = 6000;
        for o in [
            GenerateOptions { temperature: 1.0, ..Default::default() },
            GenerateOptions { temperature: 0.7, top_k: 1500, ..Default::default() },
            GenerateOptions { temperature: 1.0, top_p: 0.9, ..Default::default() },
            GenerateOptions { temperature: 1.3, min_p: 0.05, top_p: 0.95, ..Default::default() },
            GenerateOptions { temperature: 1.0, top_k: 3, ..Default::default() },
        ] {
            let want = exact(&logits, &o);
            let mut s = Sampler::new(&GenerateOptions { seed: 9, ..o.clone() }.sampler()).unwrap();
            let mut got = vec![0usize; logits.len()];
            for _ in 0..draws {
                got[s.sample(&mut logits.clone(), &[]) as usize] += 1;
            }
            for (i, (&g, &p)) in got.iter().zip(&want).enumerate() {
                // Never a token the options exclude; the likely ones within 5 binomial σ.
                assert!(p > 0.0 || g == 0, "{o:?}: id {i} drawn {g} times, probability 0");
                let sd = (draws as f64 * p * (1.0 - p)).sqrt();
                assert!((g as f64 - draws as f64 * p).abs() <= 5.0 * sd + 3.0, "{o:?}: id {i} drawn {g} times, expected {:.1}", draws as f64 * p);
            }
        }
    }

    #[test]
    fn bad_params_are_rejected() {
        assert!(Sampler::new(&GenerateOptions { top_p: 0.0, ..Default::default() }.sampler()).is_err());
        assert!(Sampler::new(&GenerateOptions { temperature: -1.0, ..Default::default() }.sampler()).is_err());
        assert!(Sampler::new(&GenerateOptions { min_p: -0.1, ..Default::default() }.sampler()).is_err());
    }
}
