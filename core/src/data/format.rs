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

use std::collections::{BTreeMap, HashMap, HashSet};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::schema::{FieldInfo, Schema, Side};

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
    /// What feature columns mean (label, description, group), by column name; carried
    /// into the fitted schema for the browser's editor.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub fields: BTreeMap<String, FieldInfo>,
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
            fields: BTreeMap::new(),
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

/// Ali-CCP's field ids: side, group, label and description. The public release (Tianchi
/// dataset 408, with the ESMM paper) documents each id; the wording follows the table that
/// NVIDIA Merlin Models keeps for it (`merlin/datasets/ecommerce/aliccp/dataset.py`). The
/// `_14` fields are multi-valued in the raw log; the sampled CSV keeps one value of each.
const ALICCP_FIELDS: [(&str, Side, &str, &str, &str); 23] = {
    const PROFILE: &str = "Profile";
    const HISTORY: &str = "Behaviour history";
    const CROSS: &str = "User x item";
    [
        ("101", Side::User, "Identity", "User ID", "The user, as an anonymised id."),
        ("121", Side::User, PROFILE, "User profile", "Categorical id of the user's profile."),
        ("122", Side::User, PROFILE, "User group", "Categorical group id of the user's profile."),
        ("124", Side::User, PROFILE, "Gender", "The user's gender, as an anonymised id."),
        ("125", Side::User, PROFILE, "Age", "The user's age bracket, as an anonymised id."),
        ("126", Side::User, PROFILE, "Consumption level I", "The user's consumption level (first kind)."),
        ("127", Side::User, PROFILE, "Consumption level II", "The user's consumption level (second kind)."),
        ("128", Side::User, PROFILE, "Occupation", "Whether the user works."),
        ("129", Side::User, PROFILE, "Geography", "Where the user is, as an anonymised id."),
        ("109_14", Side::User, HISTORY, "Categories in history", "A category in the user's behaviour history."),
        ("110_14", Side::User, HISTORY, "Shops in history", "A shop in the user's behaviour history."),
        ("127_14", Side::User, HISTORY, "Brands in history", "A brand in the user's behaviour history."),
        ("150_14", Side::User, HISTORY, "Intentions in history", "An intention node in the user's behaviour history."),
        ("205", Side::Item, "Identity", "Item ID", "The item, as an anonymised id."),
        ("206", Side::Item, "Item", "Category", "The category the item belongs to."),
        ("207", Side::Item, "Item", "Shop", "The shop that sells the item."),
        ("210", Side::Item, "Item", "Intention node", "The intention node the item belongs to."),
        ("216", Side::Item, "Item", "Brand", "The item's brand."),
        ("508", Side::Context, CROSS, "Category cross", "Category history (109_14) crossed with the category (206)."),
        ("509", Side::Context, CROSS, "Shop cross", "Shop history (110_14) crossed with the shop (207)."),
        ("702", Side::Context, CROSS, "Brand cross", "Brand history (127_14) crossed with the brand (216)."),
        ("853", Side::Context, CROSS, "Intention cross", "Intention history (150_14) crossed with the node (210)."),
        ("301", Side::Context, "Context", "Position", "Where (in which scenario) the item was shown."),
    ]
};

fn aliccp_field(id: &str) -> Option<&'static (&'static str, Side, &'static str, &'static str, &'static str)> {
    ALICCP_FIELDS.iter().find(|f| f.0 == id)
}

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
        // The public release publishes no meanings, only which side a column describes and
        // that numerics are scaled to [0, 1]: say that much rather than invent names.
        let describe = |kind: &str, group: &str, side: &str| FieldInfo {
            label: None,
            description: Some(format!(
                "{kind} {side} feature; the public AliExpress release anonymises it and does not say what it measures."
            )),
            group: Some(group.to_string()),
        };
        let fields = categorical
            .iter()
            .enumerate()
            .map(|(i, n)| {
                let side = if i < ALIEXPRESS_USER_CATEGORICAL { "user or query" } else { "item" };
                (n.clone(), describe("Categorical", "Categorical", side))
            })
            .chain(numeric.iter().enumerate().map(|(i, n)| {
                let side = if i < ALIEXPRESS_USER_NUMERIC { "user or query" } else { "item" };
                (n.clone(), describe("Numeric (0 to 1)", "Numeric", side))
            }))
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
            fields,
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
            let dense = name.strip_prefix('D').filter(|id| is_field_id(id));
            if !is_field_id(name) && dense.is_none() {
                unknown.push(name.as_str());
                continue;
            }
            // A dense column is the weight of its sparse field's value: the same side and group.
            let known = aliccp_field(dense.unwrap_or(name));
            match known.map_or(Side::Context, |f| f.1) {
                Side::User => spec.user_side.push(name.clone()),
                Side::Item => spec.item_side.push(name.clone()),
                Side::Context => {}
            }
            if let Some(&(id, _, group, label, description)) = known {
                let (label, description) = match dense {
                    None => (label.to_string(), description.to_string()),
                    Some(_) => (
                        format!("{label} (weight)"),
                        format!("The weight the raw log gives the value of field {id} ({label})."),
                    ),
                };
                let info = FieldInfo { label: Some(label), description: Some(description), group: Some(group.into()) };
                spec.fields.insert(name.clone(), info);
            }
            if dense.is_some() {
                spec.numeric.push(name.clone());
            } else {
                spec.categorical.push(name.clone());
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

    /// What a feature column means, as far as the spec says.
    pub fn info_of(&self, name: &str) -> FieldInfo {
        self.fields.get(name).cloned().unwrap_or_default()
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
        for (name, info) in &self.fields {
            if !self.categorical.contains(name) && !self.numeric.contains(name) {
                return Err(Error::Config(format!(
                    "schema spec describes `{name}` in `fields` but it is not a feature column"
                )));
            }
            info.check().map_err(|p| Error::Config(format!("schema spec `fields` entry `{name}`: {p}")))?;
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
        assert_eq!(spec.fields.len(), 79, "every feature is described");
        let (user, item) = (spec.info_of("categorical_1"), spec.info_of("numerical_24"));
        assert!(user.description.unwrap().contains("user or query"));
        assert!(item.description.unwrap().contains("item"));
        assert_eq!(item.group.as_deref(), Some("Numeric"));
        spec.validate().unwrap();
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
        assert_eq!(spec.side_of("109_14"), Side::User, "behaviour history is the user's");
        assert_eq!(spec.side_of("D109_14"), Side::User, "a weight is on its field's side");
        let item = spec.info_of("205");
        assert_eq!((item.label.as_deref(), item.group.as_deref()), (Some("Item ID"), Some("Identity")));
        let weight = spec.info_of("D109_14");
        assert_eq!(weight.label.as_deref(), Some("Categories in history (weight)"));
        assert_eq!(weight.group.as_deref(), Some("Behaviour history"));
        assert!(spec.fields.values().all(|i| i.check().is_ok()));
        // A well-formed id the public table does not list reads as before, undescribed.
        let (_, odd) = detect(&strings(&["click", "purchase", "999", "D999"]), "f").unwrap();
        assert!(odd.fields.is_empty() && odd.side_of("999") == Side::Context);
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
        let side = SchemaSpec { user_side: strings(&["nope"]), ..spec.clone() };
        assert!(matches!(side.validate(), Err(Error::Config(_))));
        assert!(serde_json::from_str::<SchemaSpec>(r#"{"categorcal":[]}"#).is_err());
    }

    #[test]
    fn explicit_spec_describes_its_columns() {
        let json = r#"{"categorical":["u"],"numeric":["x"],
            "fields":{"u":{"label":"User tier","description":"How long the user has been with us.","group":"Profile"}}}"#;
        let spec: SchemaSpec = serde_json::from_str(json).unwrap();
        spec.validate().unwrap();
        assert_eq!(spec.info_of("u").label.as_deref(), Some("User tier"));
        assert!(spec.info_of("x").is_empty());
        // Written back, a spec without descriptions has no `fields` key.
        let plain = SchemaSpec { fields: BTreeMap::new(), ..spec.clone() };
        assert!(!serde_json::to_string(&plain).unwrap().contains("fields"));

        let unknown: SchemaSpec =
            serde_json::from_str(r#"{"categorical":["u"],"fields":{"click":{"label":"Clicked"}}}"#).unwrap();
        let err = unknown.validate().unwrap_err().to_string();
        assert!(err.contains("`click`") && err.contains("not a feature column"), "{err}");
        let mut control = spec;
        control.fields.get_mut("u").unwrap().group = Some("a\tb".into());
        let err = control.validate().unwrap_err().to_string();
        assert!(err.contains("`u`") && err.contains("group"), "{err}");
    }
}
