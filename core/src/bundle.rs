//! The model bundle: one `.safetensors` file holding the weights and, in its
//! `__metadata__`, the format version, the config, the fitted schema and a training
//! summary. Reading and writing work on bytes only, so the browser shares this code. The
//! container itself (format, version, finite f32 tensors) is `container.rs`, shared with
//! training checkpoints; building the model from the weights is `AdaFtr::for_inference`
//! (training from a bundle's weights starts from `Bundle::params`).

use std::collections::BTreeMap;

use candle_core::Device;
use serde::{Deserialize, Serialize};

use crate::config::Config;
use crate::container::{self, to_json, Metadata};
use crate::error::Result;
use crate::evaluate::Evaluation;
use crate::model::AdaFtr;
use crate::nn::Params;
use crate::schema::{FieldInfo, Schema};

/// Written in `__metadata__["format"]`.
pub const FORMAT_NAME: &str = "adaftr-bundle";
/// Bumped whenever tensor names or metadata change incompatibly.
pub const FORMAT_VERSION: u32 = 1;

/// Per-epoch record kept in the summary (and printed by `adaftr inspect`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct EpochRecord {
    pub epoch: usize,
    pub train_loss: f64,
    pub valid: Evaluation,
}

/// What training left behind for the user to read.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct TrainingSummary {
    pub adaftr_version: String,
    pub train_rows: usize,
    pub epochs_run: usize,
    /// 1-based epoch whose weights the bundle holds.
    pub best_epoch: Option<usize>,
    pub best_valid: Option<Evaluation>,
    pub history: Vec<EpochRecord>,
    /// Free-form notes (data files, command line), in key order (so a bundle is
    /// reproducible byte for byte).
    pub notes: BTreeMap<String, String>,
}

/// A loaded bundle: the ready model plus everything needed to use it.
#[derive(Clone)]
pub struct Bundle {
    pub config: Config,
    pub schema: Schema,
    pub summary: TrainingSummary,
    /// For inference only: built from a line-aligned copy of `params` that records no
    /// backward graph (changing `params` afterwards does not change it).
    pub model: AdaFtr,
    pub params: Params,
    /// Where the weights live; inference inputs are created there.
    pub device: Device,
}

/// Serialises weights and metadata into one safetensors file. The schema is validated
/// first, in itself and against the weights: a bundle that would not load is never written.
pub fn save(params: &Params, config: &Config, schema: &Schema, summary: &TrainingSummary) -> Result<Vec<u8>> {
    schema.validate()?;
    crate::model::schema_matches_weights(schema, params)?;
    let meta = [("config", to_json(config)?), ("schema", to_json(schema)?), ("summary", to_json(summary)?)];
    let tensors = params.sorted().into_iter().map(|(k, v)| (k, v.as_tensor().clone())).collect();
    container::write(FORMAT_NAME, FORMAT_VERSION, meta, tensors)
}

/// Reads only the metadata (config, schema, summary): cheap, for `inspect` and model cards.
pub fn read_metadata(bytes: &[u8]) -> Result<(Config, Schema, TrainingSummary)> {
    let meta = Metadata::read(bytes, FORMAT_NAME, FORMAT_VERSION)?;
    let (config, schema) = meta.config_and_schema()?;
    let summary: TrainingSummary = meta.json("summary")?;
    Ok((config, schema, summary))
}

/// The bundle `bytes` with its fields described (`Schema::describe`: each named feature's
/// label, description and group replaced), and everything else as it was, byte for byte:
/// the weights, the config and the training summary are copied, not re-serialised, so the
/// predictions cannot change. Unknown field names and bad descriptions are errors naming
/// them.
pub fn describe(bytes: &[u8], infos: &BTreeMap<String, FieldInfo>) -> Result<Vec<u8>> {
    let meta = Metadata::read(bytes, FORMAT_NAME, FORMAT_VERSION)?;
    let (_, mut schema) = meta.config_and_schema()?;
    schema.describe(infos)?;
    let tensors = container::read_tensors(bytes, &Device::Cpu)?;
    let kept = |key: &'static str| meta.get(key).map(|v| (key, v.to_string()));
    container::write(
        FORMAT_NAME,
        FORMAT_VERSION,
        [kept("config")?, ("schema", to_json(&schema)?), kept("summary")?],
        tensors,
    )
}

/// Loads and validates a bundle: metadata (the config, and the schema in itself and against
/// the weights), then every tensor's presence, dtype and shape against what the config and
/// schema require. Never panics on malformed bytes.
pub fn load(bytes: &[u8], device: &Device) -> Result<Bundle> {
    let (config, schema, summary) = read_metadata(bytes)?;
    let params = Params::from_tensors(container::read_tensors(bytes, device)?)?;
    let model = AdaFtr::for_inference(&config, &schema, &params, device)?;
    Ok(Bundle { config, schema, summary, model, params, device: device.clone() })
}
