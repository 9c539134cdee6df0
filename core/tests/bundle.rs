//! Bundle round trip, and one typed error for each way a bundle can be malformed.

mod common;

use std::collections::HashMap;

use adaftr_core::bundle::{self, TrainingSummary};
use adaftr_core::config::Backbone;
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
    // Saving what was loaded gives the same content (the header's key order may differ:
    // safetensors keeps metadata in a HashMap).
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
