//! The model bundle: one `.safetensors` file holding the weights and, in its
//! `__metadata__`, the format version, the config, the fitted schema and a training
//! summary. Reading and writing work on bytes only, so the browser shares this code.

use std::collections::HashMap;

use candle_core::{DType, Device, Tensor};
use safetensors::{Dtype, SafeTensors};
use serde::{de::DeserializeOwned, Deserialize, Serialize};

use crate::config::Config;
use crate::error::{Error, Result, SchemaProblem};
use crate::evaluate::Evaluation;
use crate::model::init::{strict_var_builder, Params};
use crate::model::AdaFtr;
use crate::schema::Schema;

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
    /// Free-form notes (data files, command line).
    pub notes: HashMap<String, String>,
}

/// A loaded bundle: the ready model plus everything needed to use it.
#[derive(Clone)]
pub struct Bundle {
    pub config: Config,
    pub schema: Schema,
    pub summary: TrainingSummary,
    pub model: AdaFtr,
    pub params: Params,
    /// Where the weights live; inference inputs are created there.
    pub device: Device,
}

pub(crate) fn to_json<T: Serialize>(v: &T) -> Result<String> {
    serde_json::to_string(v).map_err(|e| Error::BundleFormat(e.to_string()))
}

/// Serialises weights and metadata into one safetensors file. The schema is validated
/// first: a bundle that would not load is never written.
pub fn save(params: &Params, config: &Config, schema: &Schema, summary: &TrainingSummary) -> Result<Vec<u8>> {
    schema.validate()?;
    schema_matches_weights(schema, params)?;
    let meta = HashMap::from([
        ("format".to_string(), FORMAT_NAME.to_string()),
        ("version".to_string(), FORMAT_VERSION.to_string()),
        ("config".to_string(), to_json(config)?),
        ("schema".to_string(), to_json(schema)?),
        ("summary".to_string(), to_json(summary)?),
    ]);
    let tensors: Vec<(String, Tensor)> = params
        .sorted()
        .into_iter()
        .map(|(k, v)| Ok((k, v.as_tensor().to_device(&Device::Cpu)?)))
        .collect::<Result<_>>()?;
    safetensors::tensor::serialize(tensors, Some(meta)).map_err(|e| Error::BundleFormat(e.to_string()))
}

fn meta_json<T: DeserializeOwned>(meta: &HashMap<String, String>, key: &str) -> Result<T> {
    let raw = meta.get(key).ok_or_else(|| Error::BundleMetadata { key: key.into(), reason: "missing".into() })?;
    serde_json::from_str(raw).map_err(|e| Error::BundleMetadata { key: key.into(), reason: e.to_string() })
}

/// The `__metadata__` of a safetensors file, after checking that it is `format` at
/// `version` (shared by bundles and training checkpoints).
pub(crate) fn checked_metadata(bytes: &[u8], format: &str, version: u32) -> Result<HashMap<String, String>> {
    let (_, md) = SafeTensors::read_metadata(bytes).map_err(|e| Error::BundleFormat(e.to_string()))?;
    let meta = md
        .metadata()
        .clone()
        .ok_or_else(|| Error::BundleMetadata { key: "__metadata__".into(), reason: "missing".into() })?;
    match meta.get("format") {
        Some(f) if f == format => {}
        other => {
            return Err(Error::BundleMetadata {
                key: "format".into(),
                reason: format!("expected `{format}`, found {other:?} (is this the right kind of adaftr file?)"),
            })
        }
    }
    let found: u32 = meta
        .get("version")
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| Error::BundleMetadata { key: "version".into(), reason: "missing or not a number".into() })?;
    if found != version {
        return Err(Error::BundleVersion { found, supported: version });
    }
    Ok(meta)
}

/// The config and fitted schema stored under `config` and `schema`, validated.
pub(crate) fn config_and_schema(meta: &HashMap<String, String>) -> Result<(Config, Schema)> {
    let config: Config = meta_json(meta, "config")?;
    config.validate().map_err(|e| Error::BundleMetadata { key: "config".into(), reason: e.to_string() })?;
    let schema: Schema = meta_json(meta, "schema")?;
    schema.validate()?;
    Ok((config, schema))
}

/// Checks the schema against the weights that encode its fields, so a disagreement names
/// the schema rather than a tensor shape: the packed embedding table has one row per
/// vocabulary value plus one OOV row per field, and the numeric projection takes one input
/// per numeric field (single-task models have a second set under `embedding_cvr`).
fn schema_matches_weights(schema: &Schema, params: &Params) -> Result<()> {
    let rows: usize = schema.cardinalities().iter().sum();
    for prefix in ["embedding", "embedding_cvr"] {
        let dim = |name: &str, axis: usize| params.get(name).and_then(|v| v.dims().get(axis).copied());
        let table = format!("{prefix}.table");
        if let Some(found) = dim(&table, 0).filter(|&r| !schema.categorical.is_empty() && r != rows) {
            let problem = SchemaProblem::EmbeddingRows { tensor: table, expected: rows, found };
            return Err(Error::Schema { field: "categorical".into(), problem });
        }
        let numeric = format!("{prefix}.numeric.weight");
        let width = schema.num_numeric();
        if let Some(found) = dim(&numeric, 1).filter(|&w| width > 0 && w != width) {
            let problem = SchemaProblem::NumericWidth { tensor: numeric, expected: width, found };
            return Err(Error::Schema { field: "numeric".into(), problem });
        }
    }
    Ok(())
}

/// Reads only the metadata (config, schema, summary): cheap, for `inspect` and model cards.
pub fn read_metadata(bytes: &[u8]) -> Result<(Config, Schema, TrainingSummary)> {
    let meta = checked_metadata(bytes, FORMAT_NAME, FORMAT_VERSION)?;
    let (config, schema) = config_and_schema(&meta)?;
    let summary: TrainingSummary = meta_json(&meta, "summary")?;
    Ok((config, schema, summary))
}

/// Every tensor of a safetensors file, which must all be f32.
pub(crate) fn read_tensors(bytes: &[u8], device: &Device) -> Result<Vec<(String, Tensor)>> {
    let st = SafeTensors::deserialize(bytes).map_err(|e| Error::BundleFormat(e.to_string()))?;
    st.tensors()
        .into_iter()
        .map(|(name, view)| {
            if view.dtype() != Dtype::F32 {
                return Err(Error::DType { name, found: format!("{:?}", view.dtype()) });
            }
            // Non-finite weights would load and then predict NaN everywhere.
            let finite = view.data().chunks_exact(4).all(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]).is_finite());
            if !finite {
                return Err(Error::NonFinite { what: format!("weight in tensor `{name}`"), value: f64::NAN });
            }
            let t = Tensor::from_raw_buffer(view.data(), DType::F32, view.shape(), device)?;
            Ok((name, t))
        })
        .collect()
}

/// Builds the model of `config` and `schema` from exactly `params`: each parameter must be
/// present with its shape, and a parameter the model does not use is an error too (the
/// config and the weights disagree).
pub(crate) fn build_model(config: &Config, schema: &Schema, params: &Params, device: &Device) -> Result<AdaFtr> {
    schema_matches_weights(schema, params)?;
    let (vb, state) = strict_var_builder(params, device);
    let built = AdaFtr::new(&config.model, &config.loss, &schema.cardinalities(), schema.num_numeric(), vb);
    let mut state = state.lock().unwrap_or_else(|p| p.into_inner());
    let model = built.map_err(|e| state.first_error.take().unwrap_or(Error::Candle(e)))?;
    if let Some((extra, _)) = params.sorted().into_iter().find(|(n, _)| !state.used.contains(n)) {
        return Err(Error::UnexpectedTensor(extra));
    }
    Ok(model)
}

/// Loads and validates a bundle: metadata (the config, and the schema in itself and against
/// the weights), then every tensor's presence, dtype and shape against what the config and
/// schema require. Never panics on malformed bytes.
pub fn load(bytes: &[u8], device: &Device) -> Result<Bundle> {
    let (config, schema, summary) = read_metadata(bytes)?;
    let params = Params::from_tensors(read_tensors(bytes, device)?)?;
    let model = build_model(&config, &schema, &params, device)?;
    Ok(Bundle { config, schema, summary, model, params, device: device.clone() })
}
