//! Floor 0: what every other floor speaks. Errors, the hostile-input limits, small math, the request
//! vocabulary (plain serde types, no tensors) and the backend (the one place that names a device).

pub mod backend;
pub mod error;
pub mod limits;
pub mod math;
pub mod options;
