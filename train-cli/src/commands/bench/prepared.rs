//! The prepared files: the data, the initial weights of each benchmarked model (ordinary
//! bundles) and the first-batch parity references, written by `prepare` and read by every
//! measurement here and by `bench/torch_ref.py`.

use std::collections::HashMap;
use std::path::Path;

use adaftr_core::bundle::{self, Bundle};
use adaftr_core::data::{generate, load_train, Dataset, LoadOptions, SynthConfig};
use adaftr_core::train::Trainer;
use anyhow::{bail, Context, Result};
use candle_core::{Device, Tensor};
use serde_json::{json, Value};

use super::{threads, BenchModel};
use crate::files;
use crate::inputs;

pub(super) fn write(path: &Path, bytes: &[u8]) -> Result<()> {
    std::fs::write(path, bytes).with_context(|| format!("writing {}", path.display()))
}

pub(super) fn save_tensors(path: &Path, tensors: Vec<(String, Tensor)>) -> Result<()> {
    let map: HashMap<String, Tensor> = tensors.into_iter().collect();
    candle_core::safetensors::save(&map, path).with_context(|| format!("writing {}", path.display()))
}

/// The encoded dataset as tensors (`cat` u32 (N, F), `num` f32 (N, D), labels f32 (N,)).
pub(super) fn dataset_tensors(ds: &Dataset) -> Result<Vec<(String, Tensor)>> {
    let n = ds.len();
    let bits = |b: &adaftr_core::data::BitVec| (0..n).map(|i| if b.get(i) { 1f32 } else { 0. }).collect::<Vec<_>>();
    let dev = Device::Cpu;
    Ok(vec![
        ("cat".into(), Tensor::from_vec(ds.cat.clone(), (n, ds.n_cat), &dev)?),
        ("num".into(), Tensor::from_vec(ds.num.clone(), (n, ds.n_num), &dev)?),
        ("click".into(), Tensor::from_vec(bits(&ds.click), n, &dev)?),
        ("conversion".into(), Tensor::from_vec(bits(&ds.conversion), n, &dev)?),
    ])
}

pub(super) fn load_dataset(dir: &Path) -> Result<Dataset> {
    let path = dir.join("data.safetensors");
    let bytes = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
    let st = candle_core::safetensors::load_buffer(&bytes, &Device::Cpu)?;
    let get = |k: &str| st.get(k).cloned().with_context(|| format!("{} has no `{k}`", path.display()));
    let cat = get("cat")?;
    let (n, f) = cat.dims2()?;
    let num = get("num")?;
    let d = num.dim(1)?;
    let cat: Vec<u32> = cat.flatten_all()?.to_vec1()?;
    let num: Vec<f32> = num.flatten_all()?.to_vec1()?;
    let click: Vec<f32> = get("click")?.to_vec1()?;
    let conversion: Vec<f32> = get("conversion")?.to_vec1()?;
    let mut ds = Dataset::new(f, d);
    for i in 0..n {
        ds.push(&cat[i * f..(i + 1) * f], &num[i * d..(i + 1) * d], click[i] > 0.5, conversion[i] > 0.5);
    }
    Ok(ds)
}

pub(super) fn load_bundle(dir: &Path, model: BenchModel) -> Result<Bundle> {
    let path = dir.join(model.bundle_file());
    bundle::load(&files::read_model(&path)?, &Device::Cpu).with_context(|| format!("loading {}", path.display()))
}

pub(super) fn prepare(dir: &Path, rows: usize, batch: usize, seed: u64) -> Result<Value> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let csv = dir.join("train.csv");
    let cfg = SynthConfig { rows, seed, compute_auc: false, ..SynthConfig::default() };
    generate(&cfg, files::create(&csv)?, std::io::sink())?;
    let (schema, ds, _) = load_train(inputs::open(&csv)?, &files::label(&csv), &LoadOptions::default())?;
    if ds.len() < batch {
        bail!("{} rows is fewer than one batch of {batch}", ds.len());
    }
    save_tensors(&dir.join("data.safetensors"), dataset_tensors(&ds)?)?;
    let dev = Device::Cpu;
    let first = ds.range_batch(0, batch, &dev)?;
    let mut params = serde_json::Map::new();
    for model in BenchModel::ALL {
        let mut config = model.config();
        config.train.batch_size = batch;
        let mut trainer = Trainer::new(config, schema.clone(), &dev)?;
        write(&dir.join(model.bundle_file()), &trainer.bundle_bytes(&trainer.summary())?)?;

        // Parity references for the first batch: the saved bundle's predictions and the
        // loss terms, and the predictions after one Adam step on that batch.
        let b = load_bundle(dir, model)?;
        let out = b.model.forward(&first.cat, &first.num)?;
        let mut tensors = vec![
            ("pctr".to_string(), out.pctr.clone()),
            ("pcvr".to_string(), out.pcvr.clone()),
            ("pctcvr".to_string(), out.pctcvr.clone()),
        ];
        if let Some(t) = &out.tau {
            tensors.push(("tau".to_string(), t.clone()));
        }
        // The step returns the loss terms at the initial weights, then updates them.
        let losses = trainer.train_step(&first)?;
        let mut losses = serde_json::to_value(losses)?;
        losses["batch"] = json!(batch);
        let name = model.name();
        write(&dir.join(format!("parity-{name}.json")), losses.to_string().as_bytes())?;
        let after = trainer.model().forward(&first.cat, &first.num)?;
        tensors.push(("pctr_after_step".to_string(), after.pctr));
        tensors.push(("pcvr_after_step".to_string(), after.pcvr));
        // The weights after the step, to name the tensor where a difference comes from.
        tensors.extend(trainer.params().snapshot()?.into_iter().map(|(k, t)| (format!("after_step.{k}"), t)));
        save_tensors(&dir.join(format!("parity-{name}.safetensors")), tensors)?;
        params.insert(name.to_string(), json!(b.params.numel()));
    }
    Ok(json!({ "rows": ds.len(), "batch": batch, "params": params, "threads": threads() }))
}
