//! Small trained bundles for development and tests, built with core's own `Trainer`.
//!
//! The shipped default (`web/assets/default-model.safetensors`) is meant to come from
//! `scripts/make-default-model.sh` (`adaftr train` on generator data); until then
//! `cargo run -p adaftr-web --example make_default_model` writes one made here. The
//! end-to-end test also trains a bundle here to upload.

use adaftr_core::config::Config;
use adaftr_core::data::Dataset;
use adaftr_core::inference::{Inputs, Instance};
use adaftr_core::rng::Rng;
use adaftr_core::schema::{CategoricalField, NormKind, NumericField, Schema, Side};
use adaftr_core::train::{Silent, Trainer};
use candle_core::Device;

use crate::editor::{example_from_instance, random_instance, Example};

fn cat(name: &str, side: Side, values: &[&str]) -> CategoricalField {
    CategoricalField::new(name, side, values.iter().map(|v| v.to_string()).collect())
}

fn minmax(name: &str, side: Side, min: f32, max: f32) -> NumericField {
    NumericField {
        norm: NormKind::MinMax,
        shift: min,
        scale: max - min,
        min,
        max,
        ..NumericField::identity(name, side)
    }
}

/// A small e-commerce-like schema with fields on every side.
pub fn demo_schema() -> Schema {
    Schema {
        format: "explicit".into(),
        categorical: vec![
            cat("user_segment", Side::User, &["new", "casual", "regular", "loyal", "vip"]),
            cat("query_intent", Side::User, &["browse", "compare", "buy-now"]),
            cat("item_category", Side::Item, &["phones", "fashion", "home", "toys", "beauty", "sports"]),
            cat("brand_tier", Side::Item, &["unbranded", "mid", "premium"]),
            cat("slot", Side::Context, &["top", "middle", "bottom"]),
        ],
        numeric: vec![
            minmax("user_ctr_30d", Side::User, 0.0, 0.3),
            minmax("item_price", Side::Item, 1.0, 500.0),
            minmax("item_rating", Side::Item, 1.0, 5.0),
            minmax("position", Side::Context, 1.0, 50.0),
        ],
        click: "click".into(),
        conversion: "conversion".into(),
        ignored: vec![],
        group: None,
        vocabulary: None,
    }
}

/// A different, smaller schema (to check that a model switch rebuilds the editor).
pub fn other_schema() -> Schema {
    Schema {
        format: "explicit".into(),
        categorical: vec![
            cat("device", Side::User, &["ios", "android", "desktop"]),
            cat("shop_type", Side::Item, &["flagship", "marketplace"]),
        ],
        numeric: vec![minmax("discount", Side::Item, 0.0, 0.8), minmax("hour", Side::Context, 0.0, 23.0)],
        click: "click".into(),
        conversion: "conversion".into(),
        ignored: vec![],
        group: None,
        vocabulary: None,
    }
}

/// A small model configuration that trains in seconds on CPU.
pub fn demo_config(seed: u64) -> Config {
    let mut c = Config::default();
    c.model.embedding_dim = 8;
    c.model.bottom = vec![64, 32];
    c.model.tower = vec![32, 16];
    c.model.relatedness_hidden = 16;
    c.train.batch_size = 256;
    c.train.epochs = 3;
    c.train.patience = 3;
    c.train.lr = 1e-3;
    c.train.seed = seed;
    c
}

/// Rows (normalised as training sees them) whose labels depend on every field, with a
/// per-row coupling between click and purchase, so the model has something to learn.
pub fn demo_dataset(schema: &Schema, rows: usize, seed: u64) -> Dataset {
    let mut rng = Rng::new(seed);
    let mut ds = Dataset::new(schema.num_categorical(), schema.num_numeric());
    for r in 0..rows {
        let inst = random_instance(schema, seed.wrapping_mul(1_000_003).wrapping_add(r as u64));
        // Encoded as training and the browser encode it (the instance is in range).
        let inputs = Inputs::from_instances(schema, std::slice::from_ref(&inst)).expect("a random instance encodes");
        let num = inputs.num();
        let c: f64 = inst.cat.iter().enumerate().map(|(i, &id)| (id as f64 * (i as f64 + 1.3)).sin()).sum();
        let n: f64 = num.iter().enumerate().map(|(i, &x)| if i % 2 == 0 { x as f64 } else { -(x as f64) }).sum();
        let click_logit = -1.2 + 0.8 * c + 1.5 * n;
        let click = rng.bernoulli(1.0 / (1.0 + (-click_logit).exp()));
        let cvr_logit = -0.5 + 0.9 * (inst.cat[0] as f64 - 2.0) - 1.2 * num[1.min(num.len() - 1)] as f64;
        let conv = click && rng.bernoulli(1.0 / (1.0 + (-cvr_logit).exp()));
        ds.push(&inst.cat, num, click, conv);
    }
    ds
}

/// Trains a small model on demo data with `Trainer::fit` and returns its bundle bytes.
pub fn train_bundle(schema: Schema, config: Config, rows: usize) -> adaftr_core::Result<Vec<u8>> {
    let seed = config.train.seed;
    let train = demo_dataset(&schema, rows, seed);
    let valid = demo_dataset(&schema, rows / 4, seed ^ 0xA5A5);
    let mut t = Trainer::new(config, schema, &Device::Cpu)?;
    t.fit(&train, &valid, &mut Silent)?;
    let mut summary = t.summary();
    summary.notes.insert("data".into(), format!("adaftr-web demo generator, {rows} rows, seed {seed}"));
    t.bundle_bytes(&summary)
}

/// A handful of labelled example instances for a schema.
pub fn demo_examples(schema: &Schema, n: usize, seed: u64) -> Vec<Example> {
    (0..n)
        .map(|i| {
            let inst: Instance = random_instance(schema, seed + i as u64);
            example_from_instance(schema, &format!("Example {}", i + 1), &inst)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn demo_bundle_loads_and_predicts() {
        let schema = demo_schema();
        let mut cfg = demo_config(1);
        cfg.train.epochs = 1;
        let bytes = train_bundle(schema.clone(), cfg, 600).unwrap();
        let b = adaftr_core::bundle::load(&bytes, &Device::Cpu).unwrap();
        assert_eq!(b.schema, schema);
        assert_eq!(b.summary.epochs_run, 1);
        let p = b.predict(&[crate::editor::default_instance(&schema)]).unwrap();
        assert!(p[0].pctr > 0.0 && p[0].pctr < 1.0 && p[0].tau.is_some());
    }
}
