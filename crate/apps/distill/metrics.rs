//! Accuracy and macro-F1 against gold labels.

use serde::Serialize;

#[derive(Debug, Clone, Copy, Serialize, PartialEq)]
pub struct Scores {
    pub accuracy: f64,
    pub macro_f1: f64,
    pub n: usize,
}

/// Predictions vs gold over `classes` classes; macro-F1 averages every class (an absent class with no
/// predictions counts as F1 = 0, as scikit-learn does with zero_division=0).
pub fn score(pred: &[usize], gold: &[usize], classes: usize) -> Scores {
    let n = pred.len().min(gold.len());
    let correct = pred.iter().zip(gold).filter(|(p, g)| p == g).count();
    let f1: f64 = (0..classes)
        .map(|c| {
            let tp = pred.iter().zip(gold).filter(|&(&p, &g)| p == c && g == c).count() as f64;
            let fp = pred.iter().zip(gold).filter(|&(&p, &g)| p == c && g != c).count() as f64;
            let fn_ = pred.iter().zip(gold).filter(|&(&p, &g)| p != c && g == c).count() as f64;
            if tp == 0.0 { 0.0 } else { 2.0 * tp / (2.0 * tp + fp + fn_) }
        })
        .sum::<f64>()
        / classes.max(1) as f64;
    Scores { accuracy: if n == 0 { 0.0 } else { correct as f64 / n as f64 }, macro_f1: f1, n }
}

/// The most frequent gold class: the majority-class baseline predicts it everywhere.
pub fn majority(gold: &[usize], classes: usize) -> usize {
    let mut counts = vec![0usize; classes];
    for &g in gold {
        counts[g] += 1;
    }
    (0..classes).max_by_key(|&c| (counts[c], std::cmp::Reverse(c))).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn macro_f1_by_hand() {
        // class 0: tp 2, fp 1, fn 0 → 0.8; class 1: tp 1, fp 0, fn 1 → 2/3.
        let s = score(&[0, 0, 0, 1], &[0, 0, 1, 1], 2);
        assert_eq!(s.accuracy, 0.75);
        assert!((s.macro_f1 - (0.8 + 2.0 / 3.0) / 2.0).abs() < 1e-12);
        assert_eq!(majority(&[1, 1, 0], 2), 1);
    }
}
