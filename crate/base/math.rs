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

/// Symmetric quantisation of one group: the scale (largest magnitude / `max`) and the values divided by
/// it, rounded to the nearest integer in [-max, max], ties to even: one wasm instruction
/// (`f32.nearest`), where `round` (ties away from zero) is a libm call per value (it made SmolLM2's int8
/// load ≈ 2 s slower in the browser). A group of zeros gets scale 0. Non-finite inputs give a NaN scale,
/// so the outputs that use it are NaN, as with f32 weights (`as` saturates: no panic).
/// The one definition both the kernels (activations, weights quantised at load) and the file writer use.
pub fn quantise_symmetric<T: Copy>(values: &[f32], max: f32, out: &mut [T], cast: impl Fn(f32) -> T) -> f32 {
    let amax = values.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    let amax = if values.iter().all(|v| v.is_finite()) { amax } else { f32::NAN };
    let scale = amax / max;
    let inv = if scale > 0.0 { 1.0 / scale } else { 0.0 };
    for (o, &v) in out.iter_mut().zip(values) {
        *o = cast((v * inv).round_ties_even());
    }
    scale
}
