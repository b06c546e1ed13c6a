//! Which teacher-labelled samples the student learns from, at a label budget.
//!
//! LLKD (Li et al., "Learning with Less", 2024): train in rounds; each round adds the samples on which
//! the teacher is confident *and* the current student is uncertain, judged against per-class adaptive
//! thresholds (the mean teacher confidence and mean student uncertainty of the samples the teacher puts
//! in that class, recomputed every round as the student learns). `random` draws the same number
//! uniformly; `all` takes the whole pool.

use std::str::FromStr;

use serde::Serialize;

use crate::apps::distill::data::shuffled;
use crate::base::math::argmax;
use crate::base::error::Error;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Method {
    All,
    Random,
    Llkd,
}

impl FromStr for Method {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        match s {
            "all" => Ok(Method::All),
            "random" => Ok(Method::Random),
            "llkd" => Ok(Method::Llkd),
            _ => Err(Error::Invalid(format!("--select `{s}`: expected llkd, all or random"))),
        }
    }
}

/// Samples to take for a budget fraction of a pool of `n`.
pub fn budget_count(n: usize, budget: f64) -> usize {
    ((budget.clamp(0.0, 1.0) * n as f64).round() as usize).clamp(1.min(n), n)
}

/// `k` distinct samples of 0..n, uniformly at random.
pub fn random(n: usize, k: usize, seed: u64) -> Vec<usize> {
    let mut idx = shuffled(n, seed);
    idx.truncate(k);
    idx
}

/// Normalised entropy in [0, 1]: 1 for a uniform distribution.
pub fn uncertainty(p: &[f32]) -> f32 {
    let h: f32 = p.iter().filter(|&&x| x > 0.0).map(|&x| -x * x.ln()).sum();
    h / (p.len() as f32).ln().max(f32::MIN_POSITIVE)
}

/// One LLKD round: up to `k` samples not yet `taken`, from teacher probabilities and the current
/// student's probabilities. Each class gets a share of `k` proportional to how often the teacher
/// predicts it among the untaken samples, so no class is starved; within a class, samples that clear
/// both thresholds come first, ranked by confidence × uncertainty; any shortfall is filled by the
/// next best of any class.
pub fn llkd_round(teacher: &[Vec<f32>], student: &[Vec<f32>], taken: &[bool], k: usize) -> Vec<usize> {
    let classes = teacher.first().map_or(0, Vec::len);
    let free: Vec<usize> = (0..teacher.len()).filter(|&i| !taken[i]).collect();
    let conf: Vec<f32> = teacher.iter().map(|p| p.iter().cloned().fold(0.0, f32::max)).collect();
    let unc: Vec<f32> = student.iter().map(|p| uncertainty(p)).collect();
    let class: Vec<usize> = teacher.iter().map(|p| argmax(p)).collect();

    let mut by_class: Vec<Vec<usize>> = vec![Vec::new(); classes];
    for &i in &free {
        by_class[class[i]].push(i);
    }
    let mut picked = Vec::with_capacity(k);
    let mut rest = Vec::new();
    for members in &by_class {
        if members.is_empty() {
            continue;
        }
        let mean = |v: &[f32]| members.iter().map(|&i| v[i]).sum::<f32>() / members.len() as f32;
        let (tau_t, tau_s) = (mean(&conf), mean(&unc));
        let mut ranked = members.clone();
        // Eligible first, then by confidence × uncertainty, ties by index for determinism.
        ranked.sort_by(|&a, &b| {
            let key = |i: usize| (conf[i] >= tau_t && unc[i] >= tau_s, conf[i] * unc[i]);
            let (ka, kb) = (key(a), key(b));
            kb.0.cmp(&ka.0).then(kb.1.total_cmp(&ka.1)).then(a.cmp(&b))
        });
        let share = ((k as f64) * members.len() as f64 / free.len() as f64).round() as usize;
        let take = share.min(ranked.len());
        picked.extend_from_slice(&ranked[..take]);
        rest.extend(ranked[take..].iter().map(|&i| (conf[i] * unc[i], i)));
    }
    picked.truncate(k);
    if picked.len() < k {
        rest.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
        picked.extend(rest.iter().take(k - picked.len()).map(|&(_, i)| i));
    }
    picked
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn llkd_prefers_confident_teacher_and_uncertain_student() {
        // Four samples of class 0: teacher confidence and student uncertainty vary.
        let teacher = vec![vec![0.99, 0.01], vec![0.6, 0.4], vec![0.95, 0.05], vec![0.9, 0.1], vec![0.1, 0.9], vec![0.2, 0.8]];
        let student = vec![vec![0.5, 0.5], vec![0.5, 0.5], vec![0.99, 0.01], vec![0.6, 0.4], vec![0.5, 0.5], vec![0.9, 0.1]];
        let taken = vec![false; 6];
        let picked = llkd_round(&teacher, &student, &taken, 3);
        // Class shares 4:2 of 3 → 2 and 1. Class 0: sample 0 (confident, uncertain student) clears both
        // thresholds; sample 2 is confident but already learnt, sample 1 unconfident.
        assert_eq!(picked.len(), 3);
        assert!(picked.contains(&0) && picked.contains(&4), "{picked:?}");
        assert!(!picked.contains(&1), "{picked:?}");
        let mut taken2 = taken.clone();
        for &i in &picked {
            taken2[i] = true;
        }
        let next = llkd_round(&teacher, &student, &taken2, 3);
        assert!(next.iter().all(|i| !picked.contains(i)), "{next:?} repeats {picked:?}");
        assert_eq!(uncertainty(&[0.5, 0.5]), 1.0);
        assert_eq!(budget_count(1000, 0.1), 100);
    }
}
