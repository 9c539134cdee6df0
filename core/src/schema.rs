//! The feature schema: which columns feed the model and how raw values become model inputs.
//!
//! A fitted schema (vocabularies and normalisation statistics from the training split) is
//! stored in the model bundle, so inference in the CLI and in the browser encodes features
//! exactly as training did.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

/// Which side of the request a field describes; the browser groups its inputs by it.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Side {
    /// User or query side (constant within one search).
    User,
    /// Item side.
    Item,
    /// Anything else (context, position, crosses).
    #[default]
    Context,
}

/// How a raw numeric value is transformed before it reaches the model.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "kebab-case")]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
pub enum NormKind {
    /// Pass through (AliExpress numerics are already in [0, 1]).
    #[default]
    None,
    /// (x - min) / (max - min) with the training min and max.
    MinMax,
    /// (x - mean) / std with the training mean and standard deviation.
    Standardize,
    /// ln(1 + max(x, 0)).
    Log1p,
}

/// A categorical field with its vocabulary. Id 0 is out-of-vocabulary / missing; the raw
/// value `vocab[i]` has id `i + 1`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct CategoricalField {
    pub name: String,
    #[serde(default)]
    pub side: Side,
    pub vocab: Vec<String>,
    #[serde(skip)]
    index: HashMap<String, u32>,
}

impl CategoricalField {
    pub fn new(name: impl Into<String>, side: Side, vocab: Vec<String>) -> Self {
        let mut f = Self { name: name.into(), side, vocab, index: HashMap::new() };
        f.rebuild_index();
        f
    }

    /// Rows in the embedding table: the vocabulary plus the OOV row.
    pub fn cardinality(&self) -> usize {
        self.vocab.len() + 1
    }

    /// The id of a raw value; unseen values map to 0 (OOV).
    pub fn encode(&self, raw: &str) -> u32 {
        if self.index.len() != self.vocab.len() {
            // Deserialised without the index: fall back to a scan rather than panic.
            return self.vocab.iter().position(|v| v == raw).map_or(0, |i| i as u32 + 1);
        }
        self.index.get(raw).copied().unwrap_or(0)
    }

    /// The raw value of an id, `None` for OOV or out of range.
    pub fn decode(&self, id: u32) -> Option<&str> {
        if id == 0 {
            return None;
        }
        self.vocab.get(id as usize - 1).map(String::as_str)
    }

    pub(crate) fn rebuild_index(&mut self) {
        self.index = self.vocab.iter().enumerate().map(|(i, v)| (v.clone(), i as u32 + 1)).collect();
    }
}

/// A numeric field with its normalisation and the raw training range (for UI sliders).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct NumericField {
    pub name: String,
    #[serde(default)]
    pub side: Side,
    pub norm: NormKind,
    /// Transform parameters: value = (f(x) - shift) / scale, with f = ln(1+x) for log1p.
    pub shift: f32,
    pub scale: f32,
    /// Raw minimum and maximum seen in training.
    pub min: f32,
    pub max: f32,
}

impl NumericField {
    pub fn identity(name: impl Into<String>, side: Side) -> Self {
        Self { name: name.into(), side, norm: NormKind::None, shift: 0.0, scale: 1.0, min: 0.0, max: 1.0 }
    }

    /// The model input for a raw value.
    pub fn normalize(&self, x: f32) -> f32 {
        let f = match self.norm {
            NormKind::Log1p => x.max(0.0).ln_1p(),
            _ => x,
        };
        (f - self.shift) / self.scale
    }

    /// The raw value of a model input (inverse of [`NumericField::normalize`] on its range).
    pub fn denormalize(&self, v: f32) -> f32 {
        let f = v * self.scale + self.shift;
        match self.norm {
            NormKind::Log1p => f.exp_m1(),
            _ => f,
        }
    }
}

/// The fitted schema of a model: categorical fields (each one embedding table), numeric
/// fields (together one extra field), the two label columns, and columns read but unused.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Schema {
    /// The detected or declared input format (`aliexpress`, `aliccp`, `explicit`).
    pub format: String,
    pub categorical: Vec<CategoricalField>,
    pub numeric: Vec<NumericField>,
    pub click: String,
    pub conversion: String,
    #[serde(default)]
    pub ignored: Vec<String>,
    /// Optional column used as the group key for GAUC (for example `search_id`).
    #[serde(default)]
    pub group: Option<String>,
}

impl Schema {
    /// Embedding table sizes, one per categorical field, OOV row included.
    pub fn cardinalities(&self) -> Vec<usize> {
        self.categorical.iter().map(CategoricalField::cardinality).collect()
    }

    pub fn num_categorical(&self) -> usize {
        self.categorical.len()
    }

    pub fn num_numeric(&self) -> usize {
        self.numeric.len()
    }

    /// Restores the lookup indices after deserialisation.
    pub fn rebuild_indices(&mut self) {
        for f in &mut self.categorical {
            f.rebuild_index();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn denormalize_inverts_normalize() {
        let mut f = NumericField::identity("x", Side::Item);
        for (norm, shift, scale) in [
            (NormKind::None, 0.0, 1.0),
            (NormKind::MinMax, 2.0, 8.0),
            (NormKind::Standardize, 1.5, 0.5),
            (NormKind::Log1p, 0.3, 2.0),
        ] {
            (f.norm, f.shift, f.scale) = (norm, shift, scale);
            for x in [0.0f32, 0.25, 3.0, 9.5] {
                let back = f.denormalize(f.normalize(x));
                assert!((back - x).abs() < 1e-4 * (1.0 + x), "{norm:?}: {x} -> {back}");
            }
        }
        let c = CategoricalField::new("c", Side::User, vec!["a".into(), "b".into()]);
        assert_eq!((c.encode("b"), c.encode("zzz"), c.decode(2), c.decode(0)), (2, 0, Some("b"), None));
    }
}
