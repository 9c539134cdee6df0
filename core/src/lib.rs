//! AdaFTR: Adaptive Fine-grained Task Relatedness for joint CTR-CVR estimation.
//!
//! The crate holds everything that is not I/O: the model (candle), losses, metrics, the
//! data path (parsing from any reader, columnar datasets, batching, the ground-truth
//! generator), training and the single-file model bundle. It compiles for
//! `wasm32-unknown-unknown`; the browser demo and the CLI share its inference code.
//!
//! Dependencies run one way, from the bottom up: settings and data (`config`, `schema`,
//! `data`), generic layers (`nn`), loss functions (`loss`), the relatedness modes
//! (`relatedness`), the model (`model`), files and inference (`container`, `bundle`,
//! `inference`), and training on top (`train`). docs/ARCHITECTURE.md has the map.

pub mod bundle;
pub mod config;
mod container;
mod cpu_kernel;
pub mod data;
pub mod error;
pub mod evaluate;
pub mod inference;
pub mod loss;
pub mod metrics;
pub mod model;
pub mod nce;
pub mod nn;
pub mod optim;
pub mod relatedness;
pub mod rng;
pub mod schema;
pub mod train;

pub use error::{Error, Result};
