//! The data path: CSV formats, schema fitting, columnar datasets, batching, and the
//! ground-truth generator.
//!
//! Everything reads from `std::io::Read` and writes to `std::io::Write`; core never opens
//! files (the browser build shares it). Gzip input is detected and decompressed on the fly.
//! See docs/DATA.md for formats, memory use and the generator's generative story.

pub(crate) mod chunks;
pub mod csv;
pub mod dataset;
pub mod format;
pub mod holdout;
pub mod load;
#[cfg(feature = "parquet")]
pub mod parquet;
pub mod rows;
pub mod score;
pub mod stream;
pub mod synth;
pub(crate) mod vocab;

pub use csv::{maybe_gunzip, MaybeGz, MAX_LINE_BYTES};
pub use dataset::{Batch, BitVec, Dataset};
pub use format::{detect, Format, SchemaSpec};
pub use holdout::{holdout, Holdout};
pub use load::{fit_schema, load_train, load_with_schema, read_with_schema};
pub use rows::{BadRows, LoadOptions, LoadReport};
pub use score::{ScoreBatch, ScoreReader};
pub use stream::ShuffleStream;
pub use synth::{generate, SynthConfig, SynthSummary, World};
