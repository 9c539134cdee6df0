//! What each generated column means, for people: the labels, descriptions and groups that
//! `adaftr synth` writes beside the data (`<name>.fields.json`) and `adaftr describe` puts
//! into a bundle trained on it, so the browser's editor can say what it shows.

use std::collections::BTreeMap;

use super::catalogue::{CARDINALITY, CATEGORY, CITY, FLAGS, ITEM, LEVELLED_NUMERICS, SEGMENT, TOP_CATEGORY, USER_FLAG};
use super::story::{INTENT_NUMS, LOGIT_RHO_NUMS};
use crate::data::format::{
    ALIEXPRESS_CATEGORICAL as N_CAT, ALIEXPRESS_NUMERIC as N_NUM, ALIEXPRESS_USER_CATEGORICAL as N_USER_CAT,
    ALIEXPRESS_USER_NUMERIC as N_USER_NUM,
};
use crate::schema::FieldInfo;

fn info(label: String, description: String, group: &str) -> FieldInfo {
    FieldInfo { label: Some(label), description: Some(description), group: Some(group.to_string()) }
}

/// The label and description of categorical field `f` (0-based).
fn categorical(f: usize) -> (String, String) {
    let n = CARDINALITY[f];
    let column = f + 1;
    let (label, what) = match f {
        SEGMENT => (
            "User segment".to_string(),
            format!("One of {n} user segments; in the `logit` and `interaction` worlds it helps set how related clicking and buying are."),
        ),
        USER_FLAG => ("User flag".to_string(), "A yes/no user attribute; it turns one click effect around.".to_string()),
        CITY => (
            "City".to_string(),
            format!("One of {n} cities; each city and item pair has its own conversion effect, too rare to learn."),
        ),
        ITEM => (
            "Item".to_string(),
            format!("One of {n} items; its hidden vector drives the item's numbers, and it fixes the category."),
        ),
        CATEGORY => (
            "Category".to_string(),
            format!("The item's category ({n} in all), which follows from the item; in the `logit` world it helps set how related clicking and buying are."),
        ),
        TOP_CATEGORY => (
            "Top category".to_string(),
            format!("The parent of the item's category ({n} in all); in the `interaction` and `latent` worlds it helps set how related clicking and buying are."),
        ),
        f if f < N_USER_CAT => (
            format!("User attribute {column}"),
            format!("A user attribute with {n} values; it shifts clicks, and through the user's hidden vector, its numbers."),
        ),
        _ => (format!("Item attribute {column}"), format!("An item attribute with {n} values; it shifts clicks.")),
    };
    (label, what)
}

/// The label and description of numeric field `j` (0-based).
fn numeric(j: usize) -> (String, String) {
    let column = j + 1;
    let mut what = if FLAGS.contains(&j) {
        "A 0/1 item flag drawn from the item's and its category's hidden vectors.".to_string()
    } else if j < N_USER_NUM {
        let levels = if j < LEVELLED_NUMERICS { ", in a few discrete levels" } else { "" };
        format!("A user/query number in [0, 1] computed from the user's hidden vector{levels}.")
    } else {
        "An item number in [0, 1] computed from the item's and its category's hidden vectors, with noise.".to_string()
    };
    if LOGIT_RHO_NUMS.contains(&column) {
        what.push_str(" In the `logit` world it also moves how related clicking and buying are.");
    }
    if INTENT_NUMS.contains(&column) {
        what.push_str(" In the `latent` world it carries part of the user's hidden intent.");
    }
    let label = match () {
        _ if FLAGS.contains(&j) => format!("Item flag {column}"),
        _ if j < N_USER_NUM => format!("User number {column}"),
        _ => format!("Item number {column}"),
    };
    (label, what)
}

/// The meaning of every feature column the generator writes (the AliExpress layout), by
/// column name; the same in every world and for every seed.
pub fn field_infos() -> BTreeMap<String, FieldInfo> {
    let cats = (0..N_CAT).map(|f| {
        let (label, what) = categorical(f);
        let group = if f < N_USER_CAT { "User profile" } else { "Item catalogue" };
        (format!("categorical_{}", f + 1), info(label, what, group))
    });
    let nums = (0..N_NUM).map(|j| {
        let (label, what) = numeric(j);
        let group = if j < N_USER_NUM { "User numbers" } else { "Item numbers" };
        (format!("numerical_{}", j + 1), info(label, what, group))
    });
    cats.chain(nums).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::format::SchemaSpec;

    #[test]
    fn every_generated_feature_is_described_validly() {
        let infos = field_infos();
        let spec = SchemaSpec::aliexpress();
        let features: Vec<&String> = spec.categorical.iter().chain(&spec.numeric).collect();
        assert_eq!(infos.keys().collect::<std::collections::BTreeSet<_>>(), features.into_iter().collect());
        for (name, i) in &infos {
            i.check().unwrap_or_else(|e| panic!("{name}: {e}"));
            assert!(i.label.is_some() && i.description.is_some() && i.group.is_some(), "{name}");
        }
        assert_eq!(infos["categorical_3"].label.as_deref(), Some("User segment"));
        assert_eq!(infos["categorical_13"].label.as_deref(), Some("Item"));
        assert_eq!(infos["numerical_58"].label.as_deref(), Some("Item flag 58"));
        assert!(infos["numerical_21"].description.as_deref().unwrap().contains("`logit` world"));
        // Labels tell fields apart.
        let labels: std::collections::BTreeSet<_> = infos.values().map(|i| i.label.clone()).collect();
        assert_eq!(labels.len(), infos.len());
    }
}
