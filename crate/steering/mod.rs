//! Floor 5: steering vectors: the file format and arithmetic, how a request's terms become the
//! decoder's hook, and computing vectors from demonstration pairs (ICV, mean difference, PCA).

pub mod hook;
pub mod icv;
pub mod spec;
pub mod vector;
