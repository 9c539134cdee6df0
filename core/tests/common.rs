//! Shared helpers for the core integration tests: a tiny schema and a random dataset.
#![allow(dead_code)]

use adaftr_core::config::{Backbone, Config};
use adaftr_core::data::Dataset;
use adaftr_core::rng::Rng;
use adaftr_core::schema::{CategoricalField, NumericField, Schema, Side};

/// Three categorical fields (cardinalities 4, 6, 3 with OOV) and two numerics.
pub fn tiny_schema() -> Schema {
    let cat =
        |name: &str, n: usize| CategoricalField::new(name, Side::User, (1..=n).map(|i| format!("v{i}")).collect());
    Schema {
        format: "explicit".into(),
        categorical: vec![cat("a", 3), cat("b", 5), cat("c", 2)],
        numeric: vec![NumericField::identity("x", Side::Item), NumericField::identity("y", Side::Item)],
        click: "click".into(),
        conversion: "conversion".into(),
        ignored: vec![],
        group: None,
        vocabulary: None,
    }
}

/// Rows whose click and conversion depend on the features, so a model can learn them.
pub fn learnable_dataset(schema: &Schema, rows: usize, seed: u64) -> Dataset {
    let mut rng = Rng::new(seed);
    let cards = schema.cardinalities();
    let mut ds = Dataset::new(cards.len(), schema.num_numeric());
    for _ in 0..rows {
        let cat: Vec<u32> = cards.iter().map(|&c| rng.below(c as u64) as u32).collect();
        let num: Vec<f32> = (0..schema.num_numeric()).map(|_| rng.next_f32()).collect();
        let logit = -1.0 + 1.5 * (cat[0] as f64 - 1.5) / 1.5 + 2.0 * (num[0] as f64 - 0.5);
        let click = rng.bernoulli(1.0 / (1.0 + (-logit).exp()));
        let conv = click && rng.bernoulli(if cat[1].is_multiple_of(2) { 0.7 } else { 0.15 });
        ds.push(&cat, &num, click, conv);
    }
    ds
}

/// A small config of each backbone that trains in well under a second per step, in the
/// literal spec (the independent Python forward reference implements exactly that).
pub fn small_config(backbone: Backbone) -> Config {
    let mut c = Config::literal_spec();
    c.model.backbone = backbone;
    c.model.embedding_dim = 4;
    c.model.bottom = vec![16, 8];
    c.model.tower = vec![8, 6];
    c.model.mmoe_experts = 3;
    c.model.relatedness_hidden = 5;
    c.train.batch_size = 64;
    c
}
