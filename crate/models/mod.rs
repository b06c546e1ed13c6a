//! Floor 4: one model per architecture, each loading its own files: BERT-family encoders (with the
//! classifier head format they load) and Llama-family decoders (with the steering hook they call).

pub mod bert;
pub mod llama;
