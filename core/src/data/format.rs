//! Input formats: which column plays which role.
//!
//! Two public layouts are recognised from their header (AliExpress as processed by MTReclib,
//! and the common sampled Ali-CCP CSV); anything else needs an explicit [`SchemaSpec`]. The
//! result is a `Layout`: one role per header column, so the row parser never looks a
//! name up.
//!
//! Over 400 lines with its tests: the two detected layouts, the explicit spec and the
//! `Layout` built from any of them are one concept (which column is what), kept together so
//! a new format is written beside the ones it must not be confused with.

use std::collections::{HashMap, HashSet};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::schema::{Schema, Side};

/// Which columns are what, for a CSV whose layout is not detected (or to override
/// detection). Serialised as the schema spec JSON file.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct SchemaSpec {
    /// Categorical feature columns, in the order their embedding tables will have.
    #[serde(default)]
    pub categorical: Vec<String>,
    /// Numeric feature columns.
    #[serde(default)]
    pub numeric: Vec<String>,
    #[serde(default = "default_click")]
    pub click: String,
    #[serde(default = "default_conversion")]
    pub conversion: String,
    /// Columns present in the file but not used.
    #[serde(default)]
    pub ignored: Vec<String>,
    /// Group key for GAUC (may also be listed as categorical or ignored, or stand alone).
    #[serde(default)]
    pub group: Option<String>,
    /// Feature columns on the user/query side; others are item side if listed in
    /// `item_side`, context otherwise.
    #[serde(default)]
    pub user_side: Vec<String>,
    #[serde(default)]
    pub item_side: Vec<String>,
}

fn default_click() -> String {
    "click".into()
}

fn default_conversion() -> String {
    "conversion".into()
}

impl Default for SchemaSpec {
    fn default() -> Self {
        Self {
            categorical: Vec::new(),
            numeric: Vec::new(),
            click: default_click(),
            conversion: default_conversion(),
            ignored: Vec::new(),
            group: None,
            user_side: Vec::new(),
            item_side: Vec::new(),
        }
    }
}

/// A layout the loader knows.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum Format {
    AliExpress,
    AliCcp,
    Explicit,
}

impl Format {
    /// The name stored in [`Schema::format`].
    pub fn name(self) -> &'static str {
        match self {
            Format::AliExpress => "aliexpress",
            Format::AliCcp => "aliccp",
            Format::Explicit => "explicit",
        }
    }
}

/// Number of categorical and numeric columns in the AliExpress layout.
pub const ALIEXPRESS_CATEGORICAL: usize = 16;
pub const ALIEXPRESS_NUMERIC: usize = 63;
/// categorical_1..=9 and numerical_1..=23 describe the user/query.
pub const ALIEXPRESS_USER_CATEGORICAL: usize = 9;
pub const ALIEXPRESS_USER_NUMERIC: usize = 23;

impl SchemaSpec {
    /// The AliExpress layout: `search_id` (group key, not a feature), `categorical_1..16`,
    /// `numerical_1..63`, `click`, `conversion`.
    pub fn aliexpress() -> Self {
        let categorical: Vec<String> = (1..=ALIEXPRESS_CATEGORICAL).map(|i| format!("categorical_{i}")).collect();
        let numeric: Vec<String> = (1..=ALIEXPRESS_NUMERIC).map(|i| format!("numerical_{i}")).collect();
        let user_side = categorical[..ALIEXPRESS_USER_CATEGORICAL]
            .iter()
            .chain(&numeric[..ALIEXPRESS_USER_NUMERIC])
            .cloned()
            .collect();
        let item_side = categorical[ALIEXPRESS_USER_CATEGORICAL..]
            .iter()
            .chain(&numeric[ALIEXPRESS_USER_NUMERIC..])
            .cloned()
            .collect();
        Self {
            categorical,
            numeric,
            click: "click".into(),
            conversion: "conversion".into(),
            ignored: Vec::new(),
            group: Some("search_id".into()),
            user_side,
            item_side,
        }
    }

    /// The AliExpress header, in file order.
    pub fn aliexpress_header() -> Vec<String> {
        let s = Self::aliexpress();
        std::iter::once("search_id".to_string())
            .chain(s.categorical)
            .chain(s.numeric)
            .chain(["click".to_string(), "conversion".to_string()])
            .collect()
    }

    /// The Ali-CCP layout for a given header: `D*` columns are dense (numeric), field-id
    /// columns (`205`, `109_14`, ...) are sparse (categorical), in header order.
    pub fn aliccp(header: &[String]) -> std::result::Result<Self, String> {
        let mut spec = Self { click: "click".into(), conversion: "purchase".into(), ..Self::default() };
        let mut unknown = Vec::new();
        for name in header {
            if name == "click" || name == "purchase" {
                continue;
            }
            if name.starts_with('D') && is_field_id(&name[1..]) {
                spec.numeric.push(name.clone());
            } else if is_field_id(name) {
                let side = aliccp_side(name);
                match side {
                    Side::User => spec.user_side.push(name.clone()),
                    Side::Item => spec.item_side.push(name.clone()),
                    Side::Context => {}
                }
                spec.categorical.push(name.clone());
            } else {
                unknown.push(name.as_str());
            }
        }
        if !unknown.is_empty() {
            return Err(format!(
                "column(s) {} are neither Ali-CCP field ids (`205`, `109_14`) nor dense weights (`D508`); pass an explicit schema spec",
                quoted_list(&unknown)
            ));
        }
        Ok(spec)
    }

    /// The side of a feature column.
    pub fn side_of(&self, name: &str) -> Side {
        if self.user_side.iter().any(|n| n == name) {
            Side::User
        } else if self.item_side.iter().any(|n| n == name) {
            Side::Item
        } else {
            Side::Context
        }
    }

    /// Checks the spec on its own: no column with two roles, sides name features.
    pub fn validate(&self) -> Result<()> {
        let mut seen: HashMap<&str, &str> = HashMap::new();
        let roles = self
            .categorical
            .iter()
            .map(|n| (n, "categorical"))
            .chain(self.numeric.iter().map(|n| (n, "numeric")))
            .chain(self.ignored.iter().map(|n| (n, "ignored")))
            .chain([(&self.click, "click"), (&self.conversion, "conversion")]);
        for (name, role) in roles {
            if let Some(prev) = seen.insert(name, role) {
                return Err(Error::Config(format!(
                    "schema spec lists column `{name}` twice (as {prev} and as {role})"
                )));
            }
        }
        if let Some(g) = &self.group {
            if g == &self.click || g == &self.conversion || self.numeric.contains(g) {
                return Err(Error::Config(format!(
                    "schema spec group column `{g}` cannot be a label or numeric column"
                )));
            }
        }
        for name in self.user_side.iter().chain(&self.item_side) {
            if !self.categorical.contains(name) && !self.numeric.contains(name) {
                return Err(Error::Config(format!(
                    "schema spec puts `{name}` on a side but it is not a feature column"
                )));
            }
        }
        if let Some(name) = self.user_side.iter().find(|n| self.item_side.contains(n)) {
            return Err(Error::Config(format!("schema spec puts `{name}` on both the user and the item side")));
        }
        Ok(())
    }
}

/// `205`, `109_14`: digits, optionally `_` and digits.
fn is_field_id(s: &str) -> bool {
    let mut parts = s.splitn(2, '_');
    let digits = |p: &str| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit());
    parts.next().is_some_and(digits) && parts.next().is_none_or(digits)
}

/// Ali-CCP sides: 101 (user id) and 12x (user profile) are the user, 205/206/207/210/216
/// (item, category, shop, intention, brand) the item, everything else context.
fn aliccp_side(name: &str) -> Side {
    match name {
        "101" => Side::User,
        "205" | "206" | "207" | "210" | "216" => Side::Item,
        n if n.len() == 3 && n.starts_with("12") => Side::User,
        _ => Side::Context,
    }
}

pub(crate) fn quoted_list(names: &[&str]) -> String {
    const SHOW: usize = 8;
    let mut s = names.iter().take(SHOW).map(|n| format!("`{n}`")).collect::<Vec<_>>().join(", ");
    if names.len() > SHOW {
        s.push_str(&format!(" and {} more", names.len() - SHOW));
    }
    s
}

/// Infers the format of a header. Errors are `Error::Input` that say what was expected.
pub fn detect(header: &[String], file: &str) -> Result<(Format, SchemaSpec)> {
    let input = |reason: String| Error::Input { file: file.to_string(), reason };
    let has = |n: &str| header.iter().any(|h| h == n);
    if !has("click") {
        return Err(input(format!(
            "no `click` column, so this is neither the AliExpress layout ({}) nor Ali-CCP (`click, purchase, 101, ...`); pass an explicit schema spec",
            "`search_id, categorical_1..16, numerical_1..63, click, conversion`"
        )));
    }
    if has("purchase") {
        let spec = SchemaSpec::aliccp(header).map_err(input)?;
        return Ok((Format::AliCcp, spec));
    }
    let looks_aliexpress =
        header.iter().any(|h| h == "search_id" || h.starts_with("categorical_") || h.starts_with("numerical_"));
    if !looks_aliexpress {
        return Err(input(
            "has a `click` column but neither `purchase` (Ali-CCP) nor `categorical_*`/`numerical_*` (AliExpress) columns; pass an explicit schema spec".into(),
        ));
    }
    let expected = SchemaSpec::aliexpress_header();
    let missing: Vec<&str> = expected.iter().filter(|e| !has(e)).map(String::as_str).collect();
    if !missing.is_empty() {
        return Err(input(format!("AliExpress layout is missing column(s) {}", quoted_list(&missing))));
    }
    let extra: Vec<&str> = header.iter().filter(|h| !expected.contains(h)).map(String::as_str).collect();
    if !extra.is_empty() {
        return Err(input(format!(
            "unexpected column(s) {} for the AliExpress layout; pass an explicit schema spec to use them",
            quoted_list(&extra)
        )));
    }
    Ok((Format::AliExpress, SchemaSpec::aliexpress()))
}

/// What the row parser does with one header column.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Role {
    Cat(usize),
    Num(usize),
    Click,
    Conversion,
    Ignored,
}

/// Header column index -> role, plus where the group key is.
#[derive(Clone, Debug)]
pub(crate) struct Layout {
    pub roles: Vec<Role>,
    pub n_cat: usize,
    pub n_num: usize,
    pub group: Option<usize>,
}

impl Layout {
    /// The layout of `header` under a spec (training: fitting a schema). Every header
    /// column must be in the spec and every spec column in the header.
    pub fn from_spec(header: &[String], spec: &SchemaSpec, file: &str) -> Result<Self> {
        spec.validate()?;
        let listed: HashSet<&str> = spec
            .categorical
            .iter()
            .chain(&spec.numeric)
            .chain(&spec.ignored)
            .chain([&spec.click, &spec.conversion])
            .chain(&spec.group)
            .map(String::as_str)
            .collect();
        let unlisted: Vec<&str> = header.iter().map(String::as_str).filter(|h| !listed.contains(h)).collect();
        if !unlisted.is_empty() {
            return Err(Error::Input {
                file: file.to_string(),
                reason: format!(
                    "column(s) {} are not in the schema spec (list each as categorical, numeric or ignored)",
                    quoted_list(&unlisted)
                ),
            });
        }
        let labels = Some((spec.click.as_str(), spec.conversion.as_str()));
        let cats: Vec<&str> = spec.categorical.iter().map(String::as_str).collect();
        let nums: Vec<&str> = spec.numeric.iter().map(String::as_str).collect();
        Self::build(header, &cats, &nums, labels, spec.group.as_deref(), file, "schema spec")
    }

    /// The layout of `header` under a fitted schema (encoding labelled data). Columns the
    /// schema does not use are ignored, so a test file may carry extra columns.
    pub fn from_schema(header: &[String], schema: &Schema, file: &str) -> Result<Self> {
        let (cats, nums) = feature_names(schema);
        let labels = Some((schema.click.as_str(), schema.conversion.as_str()));
        Self::build(header, &cats, &nums, labels, schema.group.as_deref(), file, "schema")
    }

    /// The layout of `header` for scoring with a fitted schema: only the feature columns
    /// are required. Labels and the group key, present or not, are not read.
    pub fn for_scoring(header: &[String], schema: &Schema, file: &str) -> Result<Self> {
        let (cats, nums) = feature_names(schema);
        Self::build(header, &cats, &nums, None, None, file, "model")
    }

    fn build(
        header: &[String],
        cats: &[&str],
        nums: &[&str],
        labels: Option<(&str, &str)>,
        group: Option<&str>,
        file: &str,
        what: &str,
    ) -> Result<Self> {
        let position: HashMap<&str, usize> = header.iter().enumerate().map(|(i, h)| (h.as_str(), i)).collect();
        let mut roles = vec![Role::Ignored; header.len()];
        let mut missing = Vec::new();
        let wanted = cats
            .iter()
            .enumerate()
            .map(|(k, &n)| (n, Role::Cat(k)))
            .chain(nums.iter().enumerate().map(|(k, &n)| (n, Role::Num(k))))
            .chain(labels.into_iter().flat_map(|(click, conv)| [(click, Role::Click), (conv, Role::Conversion)]));
        for (name, role) in wanted {
            match position.get(name) {
                Some(&i) => roles[i] = role,
                None => missing.push(name),
            }
        }
        let group_col = match group {
            Some(g) => match position.get(g) {
                Some(&i) => Some(i),
                None => {
                    missing.push(g);
                    None
                }
            },
            None => None,
        };
        let is_label = |m: &str| labels.is_some_and(|(click, conv)| m == click || m == conv);
        let labels_missing: Vec<&str> = missing.iter().copied().filter(|m| is_label(m)).collect();
        if !labels_missing.is_empty() {
            return Err(Error::Input {
                file: file.to_string(),
                reason: format!("missing label column(s) {}", quoted_list(&labels_missing)),
            });
        }
        if !missing.is_empty() {
            return Err(Error::Input {
                file: file.to_string(),
                reason: format!("missing column(s) {} required by the {what}", quoted_list(&missing)),
            });
        }
        Ok(Self { roles, n_cat: cats.len(), n_num: nums.len(), group: group_col })
    }
}

/// The schema's categorical and numeric column names, in field order.
fn feature_names(schema: &Schema) -> (Vec<&str>, Vec<&str>) {
    (
        schema.categorical.iter().map(|f| f.name.as_str()).collect(),
        schema.numeric.iter().map(|f| f.name.as_str()).collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(xs: &[&str]) -> Vec<String> {
        xs.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn detects_aliexpress_in_any_order() {
        let mut header = SchemaSpec::aliexpress_header();
        header.reverse();
        let (format, spec) = detect(&header, "f").unwrap();
        assert_eq!(format, Format::AliExpress);
        assert_eq!(spec.categorical.len(), 16);
        assert_eq!(spec.numeric.len(), 63);
        assert_eq!(spec.side_of("categorical_9"), Side::User);
        assert_eq!(spec.side_of("categorical_10"), Side::Item);
        assert_eq!(spec.side_of("numerical_23"), Side::User);
        assert_eq!(spec.side_of("numerical_24"), Side::Item);
        let layout = Layout::from_spec(&header, &spec, "f").unwrap();
        assert_eq!(layout.group, Some(header.len() - 1));
        assert_eq!(layout.roles[0], Role::Conversion);
        assert_eq!(layout.roles[header.len() - 2], Role::Cat(0));
    }

    #[test]
    fn aliexpress_header_errors_name_columns() {
        let mut header = SchemaSpec::aliexpress_header();
        header.retain(|h| h != "numerical_7");
        let err = detect(&header, "f").unwrap_err().to_string();
        assert!(err.contains("`numerical_7`") && err.contains("missing"), "{err}");
        let mut header = SchemaSpec::aliexpress_header();
        header.push("extra".into());
        let err = detect(&header, "f").unwrap_err().to_string();
        assert!(err.contains("`extra`"), "{err}");
        let err = detect(&strings(&["a", "b"]), "f").unwrap_err().to_string();
        assert!(err.contains("no `click` column"), "{err}");
    }

    #[test]
    fn detects_aliccp() {
        let header = strings(&["click", "purchase", "101", "121", "205", "301", "109_14", "D109_14"]);
        let (format, spec) = detect(&header, "f").unwrap();
        assert_eq!(format, Format::AliCcp);
        assert_eq!(spec.categorical, strings(&["101", "121", "205", "301", "109_14"]));
        assert_eq!(spec.numeric, strings(&["D109_14"]));
        assert_eq!(spec.side_of("121"), Side::User);
        assert_eq!(spec.side_of("205"), Side::Item);
        assert_eq!(spec.side_of("301"), Side::Context);
        let bad = strings(&["click", "purchase", "101", "weird"]);
        assert!(detect(&bad, "f").unwrap_err().to_string().contains("`weird`"));
    }

    #[test]
    fn explicit_spec_checks() {
        let spec: SchemaSpec =
            serde_json::from_str(r#"{"categorical":["u"],"numeric":["x"],"ignored":["id"]}"#).unwrap();
        assert_eq!(spec.click, "click");
        let header = strings(&["id", "u", "x", "click", "conversion"]);
        let layout = Layout::from_spec(&header, &spec, "f").unwrap();
        assert_eq!(layout.roles, [Role::Ignored, Role::Cat(0), Role::Num(0), Role::Click, Role::Conversion]);
        let header2 = strings(&["id", "u", "x", "y", "click", "conversion"]);
        let err = Layout::from_spec(&header2, &spec, "f").unwrap_err().to_string();
        assert!(err.contains("`y`") && err.contains("not in the schema spec"), "{err}");
        let header3 = strings(&["id", "u", "x", "click"]);
        let err = Layout::from_spec(&header3, &spec, "f").unwrap_err().to_string();
        assert!(err.contains("missing label column(s) `conversion`"), "{err}");
        let dup = SchemaSpec { numeric: strings(&["u"]), ..spec.clone() };
        assert!(matches!(dup.validate(), Err(Error::Config(_))));
        let side = SchemaSpec { user_side: strings(&["nope"]), ..spec };
        assert!(matches!(side.validate(), Err(Error::Config(_))));
        assert!(serde_json::from_str::<SchemaSpec>(r#"{"categorcal":[]}"#).is_err());
    }
}
