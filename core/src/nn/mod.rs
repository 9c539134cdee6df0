//! Generic building blocks that know nothing about AdaFTR: the dense layer, ReLU, MLP, a
//! bank of experts evaluated together and a softmax-gated mixture (each with a fused CPU kernel where candle's op-by-op graph is slow), and the trainable
//! parameters with their deterministic, name-keyed initialisation. `model` and
//! `relatedness` compose them; the optimiser, bundles and checkpoints read [`Params`].

pub mod bank;
mod gemv;
pub mod init;
pub mod linear;
pub mod mix;
pub mod mlp;
pub mod relu;
mod shared_rows;

pub use init::Params;
