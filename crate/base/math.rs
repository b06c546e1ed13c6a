//! Small helpers on host rows that several floors need.

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

/// A one-hot target row (all zeros when `c` ≥ `classes`).
pub fn one_hot(c: usize, classes: usize) -> Vec<f32> {
    let mut v = vec![0.0; classes];
    if let Some(x) = v.get_mut(c) {
        *x = 1.0;
    }
    v
}
