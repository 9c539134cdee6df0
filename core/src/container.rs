//! The safetensors container that model bundles (`bundle.rs`) and training checkpoints
//! (`train/checkpoint.rs`) share: f32 tensors plus a `__metadata__` map of strings that
//! names the kind of file (`format`) and its `version`. One writer and one reader, so both
//! kinds of file are checked the same way: the right format, a supported version, finite
//! weights, readable JSON fields.

use std::collections::HashMap;

use candle_core::{DType, Device, Tensor};
use safetensors::{Dtype, SafeTensors};
use serde::{de::DeserializeOwned, Serialize};

use crate::config::Config;
use crate::error::{Error, Result};
use crate::schema::Schema;

/// A metadata value as JSON.
pub(crate) fn to_json<T: Serialize>(v: &T) -> Result<String> {
    serde_json::to_string(v).map_err(|e| Error::BundleFormat(e.to_string()))
}

/// Serialises `tensors` (moved to the CPU) and `meta`, stamped with `format` and `version`.
pub(crate) fn write(
    format: &str,
    version: u32,
    meta: impl IntoIterator<Item = (&'static str, String)>,
    tensors: Vec<(String, Tensor)>,
) -> Result<Vec<u8>> {
    let mut all =
        HashMap::from([("format".to_string(), format.to_string()), ("version".to_string(), version.to_string())]);
    all.extend(meta.into_iter().map(|(k, v)| (k.to_string(), v)));
    let tensors: Vec<(String, Tensor)> =
        tensors.into_iter().map(|(k, t)| Ok((k, t.to_device(&Device::Cpu)?))).collect::<Result<_>>()?;
    let bytes = safetensors::tensor::serialize(tensors, Some(all)).map_err(|e| Error::BundleFormat(e.to_string()))?;
    sorted_header(bytes)
}

/// The same file with its header's keys in sorted order. safetensors writes the metadata
/// from a `HashMap`, whose order changes from map to map, so the same weights and metadata
/// would give different bytes; sorted, a file is reproducible byte for byte. The header
/// keeps its length (the same compact JSON, reordered), so no offset moves.
fn sorted_header(mut bytes: Vec<u8>) -> Result<Vec<u8>> {
    let bad = |why: &str| Error::BundleFormat(format!("writing the header: {why}"));
    let len = bytes.get(..8).map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes")) as usize);
    let len = len.filter(|&n| bytes.len() >= 8 + n).ok_or_else(|| bad("too short"))?;
    let header = &bytes[8..8 + len];
    // serde_json's maps are ordered by key (no `preserve_order`).
    let value: serde_json::Value = serde_json::from_slice(header.trim_ascii_end()).map_err(|e| bad(&e.to_string()))?;
    let sorted = serde_json::to_vec(&value).map_err(|e| bad(&e.to_string()))?;
    if sorted.len() > len {
        return Err(bad("the sorted header is longer"));
    }
    bytes[8..8 + sorted.len()].copy_from_slice(&sorted);
    bytes[8 + sorted.len()..8 + len].fill(b' ');
    Ok(bytes)
}

/// The `__metadata__` of a container, checked to be of the expected format and version.
pub(crate) struct Metadata(HashMap<String, String>);

impl Metadata {
    /// Reads only the header (cheap): refuses another kind of file, and another version
    /// with [`Error::BundleVersion`].
    pub(crate) fn read(bytes: &[u8], format: &str, version: u32) -> Result<Self> {
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
        Ok(Self(meta))
    }

    /// The raw value of `key`; missing is an error naming it.
    pub(crate) fn get(&self, key: &str) -> Result<&str> {
        self.0
            .get(key)
            .map(String::as_str)
            .ok_or_else(|| Error::BundleMetadata { key: key.into(), reason: "missing".into() })
    }

    /// The value of `key` parsed as JSON.
    pub(crate) fn json<T: DeserializeOwned>(&self, key: &str) -> Result<T> {
        serde_json::from_str(self.get(key)?)
            .map_err(|e| Error::BundleMetadata { key: key.into(), reason: e.to_string() })
    }

    /// The config and fitted schema stored under `config` and `schema`, validated.
    pub(crate) fn config_and_schema(&self) -> Result<(Config, Schema)> {
        let config: Config = self.json("config")?;
        config.validate().map_err(|e| Error::BundleMetadata { key: "config".into(), reason: e.to_string() })?;
        let schema: Schema = self.json("schema")?;
        schema.validate()?;
        Ok((config, schema))
    }
}

/// Every tensor of a container, which must all be f32 and finite.
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
