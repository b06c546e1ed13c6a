//! Floor 7 (native CLI only): the applications built on the tasks: `veer distill` (labelling with a
//! teacher, training small classifiers), `veer train` (a head from labelled JSONL) and `veer
//! steer-eval` (does steering steer?).

pub mod distill;
pub mod steer_eval;
pub mod train;
