//! `adaftr bench trace`: a training run recorded step by step for `bench/train_parity.py`.

use std::io::Write;
use std::path::Path;
use std::time::Instant;

use adaftr_core::data::{load_train, BadRows, Dataset, LoadOptions};
use adaftr_core::evaluate::predict;
use adaftr_core::train::Trainer;
use anyhow::{Context, Result};
use candle_core::{Device, Tensor};
use serde_json::{json, Value};

use super::prepared::{dataset_tensors, save_tensors, write};
use super::{threads, BenchModel};
use crate::files;
use crate::inputs;

pub(super) fn trace(
    train_csv: &Path,
    valid_csv: &Path,
    model: BenchModel,
    seed: u64,
    epochs: usize,
    dir: &Path,
) -> Result<Value> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let (schema, train, _) = load_train(inputs::open(train_csv)?, &files::label(train_csv), &LoadOptions::default())?;
    let valid = crate::commands::load_encoded(valid_csv, &schema, BadRows::Error)?;
    let mut config = model.config();
    config.train.seed = seed;
    config.train.epochs = epochs;
    // Every epoch runs: the replay compares each one.
    config.train.patience = epochs;
    let dev = Device::Cpu;
    let mut trainer = Trainer::new(config, schema, &dev)?;
    write(&dir.join("init.safetensors"), &trainer.bundle_bytes(&trainer.summary())?)?;
    save_tensors(&dir.join("train.safetensors"), dataset_tensors(&train)?)?;
    save_tensors(&dir.join("valid.safetensors"), dataset_tensors(&valid)?)?;

    // `fit`'s own batch order, written down so that the PyTorch side replays it.
    let n = train.len();
    let orders: Vec<Vec<usize>> = (0..epochs).map(|e| trainer.epoch_order(e, n)).collect();
    let flat: Vec<u32> = orders.iter().flatten().map(|&i| i as u32).collect();
    save_tensors(&dir.join("order.safetensors"), vec![("order".into(), Tensor::from_vec(flat, (epochs, n), &dev)?)])?;

    let steps = trainer.steps_per_epoch(n);
    let mut recorder = TraceRecorder {
        dir,
        steps_out: files::create(&dir.join("steps.jsonl"))?,
        epochs_out: files::create(&dir.join("epochs.jsonl"))?,
        valid: &valid,
        steps,
        preds: Vec::new(),
    };
    let started = Instant::now();
    trainer.fit(&train, &valid, &mut recorder)?;
    recorder.steps_out.flush()?;
    recorder.epochs_out.flush()?;
    save_tensors(&dir.join("valid_pred.safetensors"), recorder.preds)?;
    Ok(json!({
        "what": "trace", "model": model.name(), "rows": n, "valid_rows": valid.len(), "epochs": epochs,
        "steps_per_epoch": steps, "seconds": started.elapsed().as_secs_f64(), "threads": threads(),
    }))
}

/// Writes each step's loss terms and each epoch's validation metrics and predictions as
/// `Trainer::fit` runs the trace.
struct TraceRecorder<'a> {
    dir: &'a Path,
    steps_out: std::io::BufWriter<std::fs::File>,
    epochs_out: std::io::BufWriter<std::fs::File>,
    valid: &'a Dataset,
    steps: usize,
    preds: Vec<(String, Tensor)>,
}

impl TraceRecorder<'_> {
    fn io_error(&self, file: &str, source: std::io::Error) -> adaftr_core::Error {
        adaftr_core::Error::Io { file: self.dir.join(file).display().to_string(), source }
    }
}

impl adaftr_core::train::Observer for TraceRecorder<'_> {
    fn on_step(&mut self, trainer: &Trainer, losses: &adaftr_core::train::StepLosses) -> adaftr_core::Result<()> {
        let st = trainer.state();
        // Plain numbers: serialising them cannot fail.
        let mut line = json!(losses);
        line["epoch"] = json!(st.epoch + 1);
        line["step"] = json!(st.epoch * self.steps + st.step);
        writeln!(self.steps_out, "{line}").map_err(|e| self.io_error("steps.jsonl", e))
    }

    fn on_epoch(
        &mut self,
        trainer: &Trainer,
        record: &adaftr_core::bundle::EpochRecord,
        _improved: bool,
    ) -> adaftr_core::Result<()> {
        writeln!(self.epochs_out, "{}", json!({ "epoch": record.epoch, "valid": record.valid }))
            .map_err(|e| self.io_error("epochs.jsonl", e))?;
        let bs = trainer.config().train.batch_size.max(256);
        let p = predict(trainer.model(), self.valid, bs, trainer.device())?;
        for (k, v) in [("pctr", &p.pctr), ("pcvr", &p.pcvr), ("pctcvr", &p.pctcvr), ("tau", &p.tau)] {
            if !v.is_empty() {
                let t = Tensor::from_vec(v.clone(), v.len(), trainer.device())?;
                self.preds.push((format!("e{}.{k}", record.epoch), t));
            }
        }
        Ok(())
    }
}
