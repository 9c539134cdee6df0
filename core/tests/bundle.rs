//! Bundle round trip, and one typed error for each way a bundle can be malformed.

mod common;

use std::collections::HashMap;

use adaftr_core::bundle::{self, TrainingSummary};
use adaftr_core::config::Backbone;
use adaftr_core::error::SchemaProblem;
use adaftr_core::train::Trainer;
use adaftr_core::Error;
use candle_core::{DType, Device, Tensor};
use common::*;
use safetensors::SafeTensors;

fn trained_bundle() -> (Vec<u8>, Trainer) {
    let schema = tiny_schema();
    let ds = learnable_dataset(&schema, 128, 4);
    let mut t = Trainer::new(small_config(Backbone::Mmoe), schema, &Device::Cpu).unwrap();
    let b = ds.range_batch(0, 128, &Device::Cpu).unwrap();
    t.train_step(&b).unwrap();
    let bytes = t.bundle_bytes(&t.summary()).unwrap();
    (bytes, t)
}

/// The bundle's tensors and metadata, to be altered and re-serialised.
fn parts(bytes: &[u8]) -> (Vec<(String, Tensor)>, HashMap<String, String>) {
    let (_, md) = SafeTensors::read_metadata(bytes).unwrap();
    let st = SafeTensors::deserialize(bytes).unwrap();
    let tensors = st
        .tensors()
        .into_iter()
        .map(|(n, v)| (n, Tensor::from_raw_buffer(v.data(), DType::F32, v.shape(), &Device::Cpu).unwrap()))
        .collect();
    (tensors, md.metadata().clone().unwrap())
}

fn rebuild(tensors: Vec<(String, Tensor)>, meta: HashMap<String, String>) -> Vec<u8> {
    safetensors::tensor::serialize(tensors, Some(meta)).unwrap()
}

fn load_err(bytes: &[u8]) -> Error {
    match bundle::load(bytes, &Device::Cpu) {
        Ok(_) => panic!("malformed bundle loaded"),
        Err(e) => e,
    }
}

#[test]
fn round_trip_gives_identical_predictions_and_metadata() {
    let (bytes, t) = trained_bundle();
    let loaded = bundle::load(&bytes, &Device::Cpu).unwrap();
    assert_eq!(&loaded.config, t.config());
    assert_eq!(&loaded.schema, t.schema());
    assert_eq!(loaded.schema.categorical[1].encode("v3"), 3);
    assert_eq!(loaded.summary, t.summary());
    let ds = learnable_dataset(t.schema(), 40, 5);
    let b = ds.range_batch(0, 40, &Device::Cpu).unwrap();
    let (a, c) = (t.model().forward(&b.cat, &b.num).unwrap(), loaded.model.forward(&b.cat, &b.num).unwrap());
    for (x, y) in [(&a.pctr, &c.pctr), (&a.pcvr, &c.pcvr), (&a.tau.clone().unwrap(), &c.tau.clone().unwrap())] {
        assert_eq!(x.to_vec1::<f32>().unwrap(), y.to_vec1::<f32>().unwrap());
    }
    // Saving what was loaded gives the same bytes: the header's keys are written sorted
    // (safetensors keeps metadata in a HashMap, whose order differs from map to map, so a
    // few saves would catch an unsorted header).
    for _ in 0..4 {
        let again = bundle::save(&loaded.params, &loaded.config, &loaded.schema, &loaded.summary).unwrap();
        assert!(again == bytes, "saving the same bundle again gave other bytes");
    }
    let again = bundle::save(&loaded.params, &loaded.config, &loaded.schema, &loaded.summary).unwrap();
    let (t1, m1) = parts(&bytes);
    let (t2, m2) = parts(&again);
    assert_eq!(m1, m2);
    let flat = |ts: Vec<(String, Tensor)>| {
        let mut v: Vec<(String, Vec<f32>)> =
            ts.into_iter().map(|(n, t)| (n, t.flatten_all().unwrap().to_vec1().unwrap())).collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    };
    assert_eq!(flat(t1), flat(t2));
}

#[test]
fn missing_tensor() {
    let (bytes, _) = trained_bundle();
    let (mut tensors, meta) = parts(&bytes);
    tensors.retain(|(n, _)| n != "head_cvr.weight");
    assert!(matches!(load_err(&rebuild(tensors, meta)), Error::MissingTensor(n) if n == "head_cvr.weight"));
}

#[test]
fn shape_mismatch() {
    let (bytes, _) = trained_bundle();
    let (mut tensors, meta) = parts(&bytes);
    for (n, t) in tensors.iter_mut() {
        if n == "tower_ctr.0.weight" {
            *t = Tensor::zeros((3, 3), DType::F32, &Device::Cpu).unwrap();
        }
    }
    let e = load_err(&rebuild(tensors, meta));
    assert!(
        matches!(&e, Error::ShapeMismatch { name, found, .. } if name == "tower_ctr.0.weight" && found == &vec![3, 3]),
        "{e}"
    );
}

#[test]
fn unexpected_tensor() {
    let (bytes, _) = trained_bundle();
    let (mut tensors, meta) = parts(&bytes);
    tensors.push(("mystery.weight".into(), Tensor::zeros(2, DType::F32, &Device::Cpu).unwrap()));
    assert!(matches!(load_err(&rebuild(tensors, meta)), Error::UnexpectedTensor(n) if n == "mystery.weight"));
}

#[test]
fn wrong_dtype() {
    let (bytes, _) = trained_bundle();
    let (mut tensors, meta) = parts(&bytes);
    for (n, t) in tensors.iter_mut() {
        if n == "head_ctr.bias" {
            *t = t.to_dtype(DType::F16).unwrap();
        }
    }
    assert!(matches!(load_err(&rebuild(tensors, meta)), Error::DType { name, .. } if name == "head_ctr.bias"));
}

#[test]
fn unknown_version_bad_metadata_and_foreign_files() {
    let (bytes, _) = trained_bundle();
    let (tensors, meta) = parts(&bytes);
    let with = |k: &str, v: Option<&str>| {
        let mut m = meta.clone();
        match v {
            Some(v) => m.insert(k.to_string(), v.to_string()),
            None => m.remove(k),
        };
        rebuild(tensors.clone(), m)
    };
    assert!(matches!(load_err(&with("version", Some("2"))), Error::BundleVersion { found: 2, supported: 1 }));
    assert!(matches!(load_err(&with("version", Some("two"))), Error::BundleMetadata { key, .. } if key == "version"));
    assert!(
        matches!(load_err(&with("config", Some("{not json"))), Error::BundleMetadata { key, .. } if key == "config")
    );
    assert!(matches!(load_err(&with("schema", None)), Error::BundleMetadata { key, .. } if key == "schema"));
    assert!(matches!(load_err(&with("format", Some("other"))), Error::BundleMetadata { key, .. } if key == "format"));
    // A config that parses but is invalid.
    let bad_cfg = meta["config"].replace("\"tau_min\":0.05", "\"tau_min\":-1.0");
    assert!(matches!(load_err(&with("config", Some(&bad_cfg))), Error::BundleMetadata { key, .. } if key == "config"));
    // Config and weights disagree (another backbone): a missing tensor, not a panic.
    let other = meta["config"].replace("\"mmoe\"", "\"ple\"");
    assert!(matches!(load_err(&with("config", Some(&other))), Error::MissingTensor(_)));
    // No metadata at all.
    assert!(matches!(
        load_err(&safetensors::tensor::serialize(tensors.clone(), None).unwrap()),
        Error::BundleMetadata { .. }
    ));
}

#[test]
fn truncated_random_and_huge_header_bytes() {
    let (bytes, _) = trained_bundle();
    for cut in [0, 3, 8, 20, bytes.len() / 2, bytes.len() - 1] {
        assert!(matches!(load_err(&bytes[..cut]), Error::BundleFormat(_) | Error::BundleMetadata { .. }), "cut {cut}");
    }
    let mut huge = bytes.clone();
    huge[..8].copy_from_slice(&(u64::MAX / 2).to_le_bytes());
    assert!(matches!(load_err(&huge), Error::BundleFormat(_)));
    assert!(matches!(load_err(b"definitely not a model"), Error::BundleFormat(_)));
}

#[test]
fn metadata_reads_without_weights() {
    let (bytes, t) = trained_bundle();
    let (cfg, schema, summary) = bundle::read_metadata(&bytes).unwrap();
    assert_eq!(&cfg, t.config());
    assert_eq!(schema.num_categorical(), 3);
    assert_eq!(summary, TrainingSummary { ..t.summary() });
}

/// The trained bundle with its schema JSON edited.
fn with_schema(bytes: &[u8], edit: impl FnOnce(&mut serde_json::Value)) -> Vec<u8> {
    let (tensors, mut meta) = parts(bytes);
    let mut schema: serde_json::Value = serde_json::from_str(&meta["schema"]).unwrap();
    edit(&mut schema);
    meta.insert("schema".into(), schema.to_string());
    rebuild(tensors, meta)
}

/// Loading refuses `bytes` with a schema error naming `field`; returns the problem.
fn schema_err(bytes: &[u8], field: &str) -> SchemaProblem {
    match load_err(bytes) {
        Error::Schema { field: f, problem } => {
            assert_eq!(f, field, "{problem}");
            let text = Error::Schema { field: f, problem: problem.clone() }.to_string();
            assert!(text.contains(&format!("`{field}`")), "the message does not name the field: {text}");
            problem
        }
        other => panic!("expected a schema error naming `{field}`, got {other:?}"),
    }
}

/// Every way a hand-edited schema can disagree with itself or with the weights is refused
/// at load time with the field named, before anything is predicted.
#[test]
fn schema_that_would_encode_wrongly_is_refused() {
    use serde_json::json;
    let (bytes, _) = trained_bundle();
    let edit = |f: &dyn Fn(&mut serde_json::Value)| with_schema(&bytes, f);
    // tiny_schema: categorical a (v1..v3), b (v1..v5), c (v1, v2); numeric x, y (identity).

    // Vocabularies: a repeated value (the encoding would give it the later id), the empty
    // value (reserved for missing), the same count so the weights still fit.
    let p = schema_err(&edit(&|s| s["categorical"][1]["vocab"][3] = json!("v2")), "b");
    assert_eq!(p, SchemaProblem::DuplicateValue { value: "v2".into(), first: 2, second: 4 });
    let p = schema_err(&edit(&|s| s["categorical"][0]["vocab"][0] = json!("")), "a");
    assert_eq!(p, SchemaProblem::EmptyValue { id: 1 });

    // Normalisation: zero, negative and non-finite scales (1e39 overflows f32), a
    // non-finite shift, parameters on a transform that has none, a range out of order,
    // and a range whose ends do not normalise to finite numbers.
    for scale in [json!(0.0), json!(-2.0), json!(1e39)] {
        let b = edit(&|s| {
            s["numeric"][0]["norm"] = json!("min-max");
            s["numeric"][0]["scale"] = scale.clone();
        });
        assert!(matches!(schema_err(&b, "x"), SchemaProblem::Scale(_)));
    }
    let b = edit(&|s| {
        s["numeric"][1]["norm"] = json!("standardize");
        s["numeric"][1]["shift"] = json!(-1e39);
    });
    assert!(matches!(schema_err(&b, "y"), SchemaProblem::Shift(_)));
    let p = schema_err(&edit(&|s| s["numeric"][0]["scale"] = json!(2.0)), "x");
    assert_eq!(p, SchemaProblem::UnusedParameters { norm: "none", shift: 0.0, scale: 2.0 });
    let b = edit(&|s| {
        s["numeric"][1]["norm"] = json!("log1p");
        s["numeric"][1]["shift"] = json!(0.5);
    });
    assert!(matches!(schema_err(&b, "y"), SchemaProblem::UnusedParameters { norm: "log1p", .. }));
    let b = edit(&|s| {
        s["numeric"][0]["min"] = json!(2.0);
        s["numeric"][0]["max"] = json!(1.0);
    });
    assert_eq!(schema_err(&b, "x"), SchemaProblem::Range { min: 2.0, max: 1.0 });
    let b = edit(&|s| s["numeric"][0]["max"] = json!(1e39));
    assert!(matches!(schema_err(&b, "x"), SchemaProblem::Range { .. }));
    let b = edit(&|s| {
        s["numeric"][1]["norm"] = json!("standardize");
        s["numeric"][1]["scale"] = json!(1e-3);
        s["numeric"][1]["max"] = json!(3e38);
    });
    assert_eq!(schema_err(&b, "y"), SchemaProblem::RangeOverflows { value: 3e38 });

    // Names: empty, padded (headers are trimmed, so it could never match), with a control
    // character; the same column in two roles; labels that coincide; the group key as a
    // label or a numeric column.
    let p = schema_err(&edit(&|s| s["categorical"][2]["name"] = json!("")), "");
    assert_eq!(p, SchemaProblem::EmptyName { role: "categorical" });
    assert_eq!(
        schema_err(&edit(&|s| s["numeric"][0]["name"] = json!(" x")), " x"),
        SchemaProblem::OddName { role: "numeric" }
    );
    assert!(matches!(
        schema_err(&edit(&|s| s["click"] = json!("cl\u{7}ick")), "cl\u{7}ick"),
        SchemaProblem::OddName { .. }
    ));
    let p = schema_err(&edit(&|s| s["numeric"][1]["name"] = json!("a")), "a");
    assert_eq!(p, SchemaProblem::DuplicateName { first: "categorical", second: "numeric" });
    let p = schema_err(&edit(&|s| s["conversion"] = json!("click")), "click");
    assert_eq!(p, SchemaProblem::DuplicateName { first: "click label", second: "conversion label" });
    let p = schema_err(&edit(&|s| s["ignored"] = json!(["id", "y"])), "y");
    assert_eq!(p, SchemaProblem::DuplicateName { first: "numeric", second: "ignored" });
    let p = schema_err(&edit(&|s| s["group"] = json!("conversion")), "conversion");
    assert_eq!(p, SchemaProblem::GroupRole { role: "conversion label" });
    assert_eq!(schema_err(&edit(&|s| s["group"] = json!("x")), "x"), SchemaProblem::GroupRole { role: "numeric" });
    assert!(matches!(schema_err(&edit(&|s| s["group"] = json!("")), ""), SchemaProblem::EmptyName { role: "group" }));

    // The format must be one this build writes.
    let p = schema_err(&edit(&|s| s["format"] = json!("parquet")), "format");
    assert_eq!(p, SchemaProblem::UnknownFormat("parquet".into()));

    // Against the weights: a vocabulary with a value fewer than the embedding table has
    // rows, one numeric field more than the numeric projection takes.
    let b = edit(&|s| {
        s["categorical"][0]["vocab"].as_array_mut().unwrap().pop();
    });
    let p = schema_err(&b, "categorical");
    assert_eq!(p, SchemaProblem::EmbeddingRows { tensor: "embedding.table".into(), expected: 12, found: 13 });
    let b = edit(&|s| {
        s["numeric"]
            .as_array_mut()
            .unwrap()
            .push(json!({"name": "z", "norm": "none", "shift": 0.0, "scale": 1.0, "min": 0.0, "max": 1.0}))
    });
    let p = schema_err(&b, "numeric");
    assert_eq!(p, SchemaProblem::NumericWidth { tensor: "embedding.numeric.weight".into(), expected: 3, found: 2 });

    // What is allowed: the group key as a feature or an ignored column, an unnamed ignored
    // column (pandas writes its index so), a vocabulary value that only looks numeric.
    let ok = edit(&|s| {
        s["group"] = json!("a");
        s["ignored"] = json!(["", "session"]);
        s["categorical"][0]["vocab"][0] = json!("007");
    });
    let b = bundle::load(&ok, &Device::Cpu).unwrap();
    assert_eq!((b.schema.categorical[0].encode("007"), b.schema.categorical[0].encode("7")), (1, 0));
}

/// A checkpoint carries a schema too, and is held to the same rules; and a schema that
/// would not load is never written.
#[test]
fn checkpoints_and_saving_check_the_schema() {
    let (_, t) = trained_bundle();
    let ck = t.checkpoint_bytes().unwrap();
    let lying = with_schema(&ck, |s| s["categorical"][2]["vocab"][1] = serde_json::json!("v1"));
    match Trainer::from_checkpoint(&lying, &Device::Cpu) {
        Err(Error::Schema { field, problem: SchemaProblem::DuplicateValue { .. } }) => assert_eq!(field, "c"),
        Err(other) => panic!("expected a schema error, got {other:?}"),
        Ok(_) => panic!("a checkpoint with a repeated vocabulary value loaded"),
    }

    let mut schema = tiny_schema();
    schema.numeric[1].scale = 0.0;
    let bad = Trainer::new(small_config(Backbone::SharedBottom), schema, &Device::Cpu).unwrap();
    match bad.bundle_bytes(&bad.summary()) {
        Err(Error::Schema { field, problem: SchemaProblem::Scale(s) }) => assert_eq!((field.as_str(), s), ("y", 0.0)),
        other => panic!("an invalid schema was saved: {:?}", other.map(|b| b.len())),
    }
}

/// Describing a bundle's fields changes its schema's descriptions and nothing else: the
/// tensors, config and summary are the same bytes, so every prediction is the same.
#[test]
fn describing_fields_keeps_everything_else_byte_for_byte() {
    use adaftr_core::schema::FieldInfo;
    let (bytes, t) = trained_bundle();
    let info = FieldInfo { label: Some("Colour".into()), description: Some("What it looks like.".into()), group: None };
    let infos = std::collections::BTreeMap::from([("b".to_string(), info.clone())]);
    let described = bundle::describe(&bytes, &infos).unwrap();
    let ((tensors, meta), (tensors2, meta2)) = (parts(&bytes), parts(&described));
    for key in ["config", "summary", "format", "version"] {
        assert_eq!(meta[key], meta2[key], "{key}");
    }
    let raw = |ts: &[(String, Tensor)]| -> Vec<(String, Vec<f32>)> {
        let mut v: Vec<_> = ts.iter().map(|(n, t)| (n.clone(), t.flatten_all().unwrap().to_vec1().unwrap())).collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    };
    assert_eq!(raw(&tensors), raw(&tensors2));
    let loaded = bundle::load(&described, &Device::Cpu).unwrap();
    assert_eq!(loaded.schema.categorical[1].info, info);
    let mut expected = t.schema().clone();
    expected.categorical[1].info = info;
    assert_eq!(loaded.schema, expected);

    let unknown = std::collections::BTreeMap::from([("zz".to_string(), FieldInfo::default())]);
    let e = bundle::describe(&bytes, &unknown).unwrap_err().to_string();
    assert!(e.contains("`zz`"), "{e}");
    // A tampered description in a bundle is refused at load, naming the field.
    let tampered = with_schema(&described, |s| s["categorical"][1]["info"]["label"] = serde_json::json!("a\u{0}b"));
    let p = schema_err(&tampered, "b");
    assert_eq!(p, SchemaProblem::InfoNotText { part: "label" });
}
