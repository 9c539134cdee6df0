//! The feature schema: which columns feed the model and how raw values become model inputs.
//!
//! A fitted schema (vocabularies and normalisation statistics from the training split) is
//! stored in the model bundle, so inference in the CLI and in the browser encodes features
//! exactly as training did. The encoding itself lives here, once: a categorical value
//! becomes an id through [`CategoricalField::encode`], a numeric value a model input
//! through [`NumericField::encode`] (normalised and checked finite); the training loader,
//! evaluation, `adaftr predict` and the browser all call these two.
//!
//! [`Schema::validate`] checks everything the encoding relies on; bundles, checkpoints and
//! freshly fitted schemas go through it, so a schema that loads encodes as training did.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::data::format::quoted_list;
use crate::data::vocab::ValueIndex;
use crate::error::{Error, Result, SchemaProblem};

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

/// What a field means to a person: the editor's label, its help text and the group it is
/// shown in. Every part is optional (bundles written before it was recorded have none); it
/// never changes what the model computes.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
#[serde(deny_unknown_fields)]
pub struct FieldInfo {
    /// A display name (`User segment`); the column name is shown where there is none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    /// One sentence on what the field holds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Fields with the same group are shown together within their side (`User profile`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
}

impl FieldInfo {
    /// The longest label, description and group, in characters: they are shown as they
    /// are, so a tampered bundle must not be able to fill the page.
    pub const MAX_LABEL: usize = 80;
    pub const MAX_DESCRIPTION: usize = 400;
    pub const MAX_GROUP: usize = 60;

    pub fn is_empty(&self) -> bool {
        self.label.is_none() && self.description.is_none() && self.group.is_none()
    }

    /// Each part present is one line of plain text, not empty and within its bound.
    pub fn check(&self) -> std::result::Result<(), SchemaProblem> {
        let parts = [
            ("label", &self.label, Self::MAX_LABEL),
            ("description", &self.description, Self::MAX_DESCRIPTION),
            ("group", &self.group, Self::MAX_GROUP),
        ];
        for (part, text, max) in parts {
            let Some(text) = text else { continue };
            let chars = text.chars().count();
            if chars > max {
                return Err(SchemaProblem::InfoTooLong { part, chars, max });
            }
            if text.trim().is_empty() || text.chars().any(char::is_control) {
                return Err(SchemaProblem::InfoNotText { part });
            }
        }
        Ok(())
    }
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

impl NormKind {
    /// The name used in configs, flags and the bundle.
    pub fn name(self) -> &'static str {
        match self {
            NormKind::None => "none",
            NormKind::MinMax => "min-max",
            NormKind::Standardize => "standardize",
            NormKind::Log1p => "log1p",
        }
    }
}

/// A categorical field with its vocabulary. Id 0 is out-of-vocabulary / missing; the raw
/// value `vocab()[i]` has id `i + 1`. The vocabulary is fixed at construction, so the
/// lookup index always agrees with it.
#[derive(Serialize, Deserialize, Clone, Debug)]
#[serde(from = "CategoricalRepr")]
pub struct CategoricalField {
    pub name: String,
    #[serde(default)]
    pub side: Side,
    #[serde(default, skip_serializing_if = "FieldInfo::is_empty")]
    pub info: FieldInfo,
    vocab: Vec<String>,
    #[serde(skip)]
    index: ValueIndex,
}

/// The stored form of a [`CategoricalField`]; the index is rebuilt from the vocabulary.
#[derive(Deserialize)]
struct CategoricalRepr {
    name: String,
    #[serde(default)]
    side: Side,
    #[serde(default)]
    info: FieldInfo,
    vocab: Vec<String>,
}

impl From<CategoricalRepr> for CategoricalField {
    fn from(r: CategoricalRepr) -> Self {
        Self::new(r.name, r.side, r.vocab).with_info(r.info)
    }
}

impl PartialEq for CategoricalField {
    fn eq(&self, other: &Self) -> bool {
        (&self.name, self.side, &self.info, &self.vocab) == (&other.name, other.side, &other.info, &other.vocab)
    }
}

impl CategoricalField {
    pub fn new(name: impl Into<String>, side: Side, vocab: Vec<String>) -> Self {
        let index = ValueIndex::from_vocab(&vocab);
        Self { name: name.into(), side, info: FieldInfo::default(), vocab, index }
    }

    pub fn with_info(self, info: FieldInfo) -> Self {
        Self { info, ..self }
    }

    /// The known values, in id order (id `i + 1` for `vocab()[i]`).
    pub fn vocab(&self) -> &[String] {
        &self.vocab
    }

    /// Rows in the embedding table: the vocabulary plus the OOV row.
    pub fn cardinality(&self) -> usize {
        self.vocab.len() + 1
    }

    /// The id of a raw value; unseen values and the empty (missing) value map to 0 (OOV).
    #[inline]
    pub fn encode(&self, raw: &str) -> u32 {
        self.index.get(raw)
    }

    /// The raw value of an id, `None` for OOV or out of range.
    pub fn decode(&self, id: u32) -> Option<&str> {
        if id == 0 {
            return None;
        }
        self.vocab.get(id as usize - 1).map(String::as_str)
    }

    /// Every value must encode to its own id: no value twice, none empty.
    fn validate(&self) -> std::result::Result<(), SchemaProblem> {
        if self.vocab.len() >= u32::MAX as usize {
            return Err(SchemaProblem::VocabularyTooLarge(self.vocab.len()));
        }
        for (i, v) in self.vocab.iter().enumerate() {
            let id = i as u32 + 1;
            if v.is_empty() {
                return Err(SchemaProblem::EmptyValue { id });
            }
            // The index keeps the last id of a repeated value, so the first occurrence
            // finds another id.
            let found = self.index.get(v);
            if found != id {
                return Err(SchemaProblem::DuplicateValue { value: v.clone(), first: id, second: found });
            }
        }
        Ok(())
    }
}

/// A numeric field with its normalisation and the raw training range (for UI sliders).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct NumericField {
    pub name: String,
    #[serde(default)]
    pub side: Side,
    #[serde(default, skip_serializing_if = "FieldInfo::is_empty")]
    pub info: FieldInfo,
    pub norm: NormKind,
    /// Transform parameters: value = (f(x) - shift) / scale, with f = ln(1 + max(x, 0)) for
    /// log1p and f(x) = x otherwise; `none` and `log1p` have shift 0 and scale 1.
    pub shift: f32,
    pub scale: f32,
    /// Raw minimum and maximum seen in training.
    pub min: f32,
    pub max: f32,
}

impl NumericField {
    pub fn identity(name: impl Into<String>, side: Side) -> Self {
        Self {
            name: name.into(),
            side,
            info: FieldInfo::default(),
            norm: NormKind::None,
            shift: 0.0,
            scale: 1.0,
            min: 0.0,
            max: 1.0,
        }
    }

    /// The model input for a raw value; `None` when the value, or its normalisation, is
    /// not finite. Callers word the error for their input (a CSV cell, an instance).
    #[inline]
    pub fn encode(&self, x: f32) -> Option<f32> {
        let f = match self.norm {
            NormKind::Log1p => x.max(0.0).ln_1p(),
            _ => x,
        };
        let y = (f - self.shift) / self.scale;
        (x.is_finite() && y.is_finite()).then_some(y)
    }

    /// The raw value of a model input (inverse of [`NumericField::encode`] on its range).
    pub fn denormalize(&self, v: f32) -> f32 {
        let f = v * self.scale + self.shift;
        match self.norm {
            NormKind::Log1p => f.exp_m1(),
            _ => f,
        }
    }

    fn validate(&self) -> std::result::Result<(), SchemaProblem> {
        if !(self.scale.is_finite() && self.scale > 0.0) {
            return Err(SchemaProblem::Scale(self.scale));
        }
        if !self.shift.is_finite() {
            return Err(SchemaProblem::Shift(self.shift));
        }
        if matches!(self.norm, NormKind::None | NormKind::Log1p) && (self.shift != 0.0 || self.scale != 1.0) {
            return Err(SchemaProblem::UnusedParameters {
                norm: self.norm.name(),
                shift: self.shift,
                scale: self.scale,
            });
        }
        if !(self.min.is_finite() && self.max.is_finite() && self.min <= self.max) {
            return Err(SchemaProblem::Range { min: self.min, max: self.max });
        }
        // Every value training saw must encode; the transform is monotone, so the ends do.
        for value in [self.min, self.max] {
            if self.encode(value).is_none() {
                return Err(SchemaProblem::RangeOverflows { value });
            }
        }
        Ok(())
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
    /// How the vocabularies were fitted (absent in bundles from before it was recorded).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vocabulary: Option<VocabularyFit>,
}

/// How the categorical vocabularies were chosen from the training data.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct VocabularyFit {
    /// Values seen fewer times were left out (they encode as OOV).
    pub min_count: u32,
    /// At most this many values per field, the most frequent.
    pub max_size: Option<usize>,
    /// `false`: every value was counted exactly. `true`: a streamed fit pass bounded its
    /// memory by dropping the rarest values of a field whenever it held more than
    /// [`PRUNE_FACTOR`] x `max_size` of them (down to half that), so a value's count may miss
    /// sightings from before its last drop; values frequent throughout the file are kept.
    pub approximate: bool,
}

/// A streamed fit pass keeps at most this many times `max_size` values per field.
pub const PRUNE_FACTOR: usize = 4;

/// The names [`crate::data::Format::name`] writes.
const FORMATS: [&str; 3] = ["aliexpress", "aliccp", "explicit"];

fn problem(field: &str, problem: SchemaProblem) -> Error {
    Error::Schema { field: field.to_string(), problem }
}

/// A name a trimmed CSV header cell can have (the empty name only where `may_be_empty`).
fn check_name(name: &str, role: &'static str, may_be_empty: bool) -> Result<()> {
    if name.is_empty() && !may_be_empty {
        return Err(problem(name, SchemaProblem::EmptyName { role }));
    }
    if name.trim() != name || name.chars().any(char::is_control) {
        return Err(problem(name, SchemaProblem::OddName { role }));
    }
    Ok(())
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

    /// Checks everything the encoding relies on: a known format; column names that a CSV
    /// header can carry, each in one role; vocabularies where every value has its own id;
    /// normalisations that are finite, invertible and finite over the training range.
    /// (The weights are checked against the schema when a bundle loads.)
    pub fn validate(&self) -> Result<()> {
        if !FORMATS.contains(&self.format.as_str()) {
            return Err(problem("format", SchemaProblem::UnknownFormat(self.format.clone())));
        }
        let roles = self
            .categorical
            .iter()
            .map(|f| (f.name.as_str(), "categorical"))
            .chain(self.numeric.iter().map(|f| (f.name.as_str(), "numeric")))
            .chain([(self.click.as_str(), "click label"), (self.conversion.as_str(), "conversion label")])
            .chain(self.ignored.iter().map(|n| (n.as_str(), "ignored")));
        let mut seen: std::collections::HashMap<&str, &'static str> = std::collections::HashMap::new();
        for (name, role) in roles {
            // An unused column may be the unnamed one (pandas writes its index so).
            check_name(name, role, role == "ignored")?;
            if let Some(first) = seen.insert(name, role) {
                return Err(problem(name, SchemaProblem::DuplicateName { first, second: role }));
            }
        }
        if let Some(g) = &self.group {
            check_name(g, "group", false)?;
            // The group key may be a feature or an ignored column, but not a label or a
            // number (it is compared as text).
            if let Some(&role) = seen.get(g.as_str()).filter(|r| !matches!(**r, "categorical" | "ignored")) {
                return Err(problem(g, SchemaProblem::GroupRole { role }));
            }
        }
        for f in &self.categorical {
            f.validate().and_then(|()| f.info.check()).map_err(|p| problem(&f.name, p))?;
        }
        for f in &self.numeric {
            f.validate().and_then(|()| f.info.check()).map_err(|p| problem(&f.name, p))?;
        }
        Ok(())
    }

    /// The meaning of a feature field by name, `None` for a name that is no feature.
    fn info_mut(&mut self, name: &str) -> Option<&mut FieldInfo> {
        let cat = self.categorical.iter_mut().find(|f| f.name == name).map(|f| &mut f.info);
        cat.or_else(|| self.numeric.iter_mut().find(|f| f.name == name).map(|f| &mut f.info))
    }

    /// Replaces the meaning of each named feature field (the others keep theirs) and checks
    /// the result. Names that are no feature of this schema are an error listing them, and
    /// leave the schema unchanged.
    pub fn describe(&mut self, infos: &BTreeMap<String, FieldInfo>) -> Result<()> {
        let is_feature =
            |n: &str| self.categorical.iter().any(|f| f.name == n) || self.numeric.iter().any(|f| f.name == n);
        let unknown: Vec<&str> = infos.keys().map(String::as_str).filter(|n| !is_feature(n)).collect();
        if !unknown.is_empty() {
            return Err(Error::Config(format!(
                "field descriptions name {}, but the model has no such feature column",
                quoted_list(&unknown)
            )));
        }
        for (name, info) in infos {
            info.check().map_err(|p| problem(name, p))?;
        }
        for (name, info) in infos {
            if let Some(slot) = self.info_mut(name) {
                *slot = info.clone();
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoding_is_finite_and_inverts() {
        let mut f = NumericField::identity("x", Side::Item);
        for (norm, shift, scale) in [
            (NormKind::None, 0.0, 1.0),
            (NormKind::MinMax, 2.0, 8.0),
            (NormKind::Standardize, 1.5, 0.5),
            (NormKind::Log1p, 0.0, 1.0),
        ] {
            (f.norm, f.shift, f.scale) = (norm, shift, scale);
            for x in [0.0f32, 0.25, 3.0, 9.5] {
                let back = f.denormalize(f.encode(x).unwrap());
                assert!((back - x).abs() < 1e-4 * (1.0 + x), "{norm:?}: {x} -> {back}");
            }
            assert_eq!(f.encode(f32::NAN), None);
            assert_eq!(f.encode(f32::INFINITY), None);
        }
        (f.norm, f.shift, f.scale) = (NormKind::Standardize, -3e38, 1e-3);
        assert_eq!(f.encode(3e38), None, "a normalisation that overflows is not an input");
        let c = CategoricalField::new("c", Side::User, vec!["a".into(), "b".into()]);
        assert_eq!(
            (c.encode("b"), c.encode("zzz"), c.encode(""), c.decode(2), c.decode(0)),
            (2, 0, 0, Some("b"), None)
        );
    }

    #[test]
    fn deserialising_builds_the_index() {
        let c = CategoricalField::new("c", Side::User, vec!["7".into(), "x".into(), "07".into()]);
        let back: CategoricalField = serde_json::from_str(&serde_json::to_string(&c).unwrap()).unwrap();
        assert_eq!(back, c);
        assert_eq!([back.encode("7"), back.encode("x"), back.encode("07"), back.encode("8")], [1, 2, 3, 0]);
        assert!(!serde_json::to_string(&c).unwrap().contains("index"));
    }

    fn small_schema() -> Schema {
        Schema {
            format: "explicit".into(),
            categorical: vec![CategoricalField::new("c", Side::User, vec!["a".into()])],
            numeric: vec![NumericField::identity("x", Side::Item)],
            click: "click".into(),
            conversion: "conversion".into(),
            ignored: vec![],
            group: None,
            vocabulary: None,
        }
    }

    fn info(label: &str) -> FieldInfo {
        FieldInfo { label: Some(label.into()), description: Some("What it is.".into()), group: None }
    }

    #[test]
    fn field_info_is_optional_and_round_trips() {
        // A field written before field info existed reads with none, and one without info
        // is written as before.
        let old = r#"{"name":"c","side":"user","vocab":["a"]}"#;
        let c: CategoricalField = serde_json::from_str(old).unwrap();
        assert!(c.info.is_empty());
        assert_eq!(serde_json::to_string(&c).unwrap(), old);
        let old = r#"{"name":"x","side":"item","norm":"none","shift":0.0,"scale":1.0,"min":0.0,"max":1.0}"#;
        let x: NumericField = serde_json::from_str(old).unwrap();
        assert_eq!(serde_json::to_string(&x).unwrap(), old);

        let c = c.with_info(info("Colour"));
        let back: CategoricalField = serde_json::from_str(&serde_json::to_string(&c).unwrap()).unwrap();
        assert_eq!(back.info, info("Colour"));
        assert_ne!(back, CategoricalField::new("c", Side::User, vec!["a".into()]), "info is part of the field");
        assert!(serde_json::from_str::<FieldInfo>(r#"{"lable":"x"}"#).is_err(), "a misspelt part is refused");
    }

    #[test]
    fn tampered_field_info_names_the_field() {
        let mut s = small_schema();
        let checks: [(FieldInfo, &str); 4] = [
            (FieldInfo { label: Some("a\u{7}b".into()), ..info("x") }, "label"),
            (FieldInfo { description: Some(" ".into()), ..info("x") }, "description"),
            (FieldInfo { group: Some("g\n".into()), ..info("x") }, "group"),
            (FieldInfo { label: Some("x".repeat(FieldInfo::MAX_LABEL + 1)), ..info("x") }, "81 characters"),
        ];
        for (bad, part) in checks {
            s.numeric[0].info = bad;
            let err = s.validate().unwrap_err().to_string();
            assert!(err.contains(&format!("`{}`", s.numeric[0].name)) && err.contains(part), "{err}");
        }
        s.numeric[0].info = info("fine");
        s.validate().unwrap();
    }

    #[test]
    fn describe_replaces_named_fields_and_refuses_unknown_names() {
        let mut s = small_schema();
        let (a, b) = (s.categorical[0].name.clone(), s.numeric[0].name.clone());
        let mut infos = BTreeMap::from([(a.clone(), info("A")), (b.clone(), info("B"))]);
        s.describe(&infos).unwrap();
        assert_eq!((&s.categorical[0].info, &s.numeric[0].info), (&info("A"), &info("B")));
        infos.insert("nope".into(), info("N"));
        infos.insert("never".into(), info("N"));
        let before = s.clone();
        let err = s.describe(&infos).unwrap_err().to_string();
        assert!(err.contains("`never`, `nope`") && !err.contains(&format!("`{a}`")), "{err}");
        assert_eq!(s, before, "a refused description changes nothing");
        let bad = BTreeMap::from([(a.clone(), FieldInfo { label: Some("".into()), ..Default::default() })]);
        assert!(s.describe(&bad).unwrap_err().to_string().contains(&format!("`{a}`")));
    }
}
