//! Floor 6: what a user asks for. Encode (embed, classify), generate (prompt, chat template, sampling,
//! streaming), train classifier heads, and measure throughput. The entry points call these.

pub mod bench;
pub mod encode;
pub mod generate;
pub mod heads;
pub mod sample;
