//! The timed measurements: training steps, batch inference, single-instance latency, GEMM
//! throughput at the models' shapes, CSV ingest, training from a loaded or a streamed file.

use std::path::Path;
use std::time::Instant;

use adaftr_core::data::{fit_schema, load_train, LoadOptions};
use adaftr_core::inference::Instance;
use adaftr_core::train::{CsvFile, InMemory, Streamed, Trainer, TrainingRows};
use anyhow::{bail, Context, Result};
use candle_core::{Device, Tensor};
use serde_json::{json, Value};

use super::prepared::{load_bundle, load_dataset};
use super::{threads, BenchModel, StreamMode};
use crate::files;
use crate::inputs;

/// Seconds of each of `reps` calls of `f`.
fn time_each(reps: usize, mut f: impl FnMut() -> Result<()>) -> Result<Vec<f64>> {
    (0..reps)
        .map(|_| {
            let t = Instant::now();
            f()?;
            Ok(t.elapsed().as_secs_f64())
        })
        .collect()
}

fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    adaftr_core::metrics::quantile(&s, 0.5)
}

/// Steps through consecutive batches of the prepared data, as `Trainer::fit` does (the batch
/// is gathered from the columnar dataset inside the timed step).
pub(super) fn train(dir: &Path, model: BenchModel, batch: usize, steps: usize, warmup: usize) -> Result<Value> {
    let ds = load_dataset(dir)?;
    let b = load_bundle(dir, model)?;
    let mut config = b.config.clone();
    config.train.batch_size = batch;
    let dev = Device::Cpu;
    let mut trainer = Trainer::new(config, b.schema.clone(), &dev)?;
    trainer.params().restore(&b.params.snapshot()?)?;
    let n_batches = (ds.len() / batch).max(1);
    let mut k = 0usize;
    let mut step = || -> Result<()> {
        let start = (k % n_batches) * batch;
        let rows: Vec<usize> = (start..(start + batch).min(ds.len())).collect();
        k += 1;
        let bt = ds.batch(&rows, &dev)?;
        trainer.train_step(&bt)?;
        Ok(())
    };
    time_each(warmup, &mut step)?;
    let secs = time_each(steps.max(1), &mut step)?;
    let total: f64 = secs.iter().sum();
    Ok(json!({
        "what": "train", "model": model.name(),
        "batch": batch, "steps": secs.len(), "threads": threads(),
        "samples_per_s": (batch * secs.len()) as f64 / total,
        "median_step_ms": 1e3 * median(&secs),
    }))
}

pub(super) fn infer(dir: &Path, model: BenchModel, batch: usize, reps: usize) -> Result<Value> {
    let ds = load_dataset(dir)?;
    let b = load_bundle(dir, model)?;
    let dev = Device::Cpu;
    let n_batches = (ds.len() / batch).max(1);
    let mut k = 0usize;
    let mut sink = 0f32;
    let mut once = || -> Result<()> {
        let bt = ds.range_batch((k % n_batches) * batch, batch, &dev)?;
        k += 1;
        let out = b.model.forward(&bt.cat, &bt.num)?;
        for t in [&out.pctr, &out.pcvr, &out.pctcvr].into_iter().chain(out.tau.as_ref()) {
            sink += t.to_vec1::<f32>()?[0];
        }
        Ok(())
    };
    time_each(2, &mut once)?;
    let secs = time_each(reps.max(1), &mut once)?;
    let total: f64 = secs.iter().sum();
    std::hint::black_box(sink);
    Ok(json!({
        "what": "infer", "model": model.name(), "batch": batch, "reps": secs.len(), "threads": threads(),
        "samples_per_s": (batch * secs.len()) as f64 / total,
        "median_batch_ms": 1e3 * median(&secs),
    }))
}

pub(super) fn latency(dir: &Path, model: BenchModel, calls: usize) -> Result<Value> {
    let ds = load_dataset(dir)?;
    let b = load_bundle(dir, model)?;
    let inst = Instance { cat: ds.cat_row(0).to_vec(), num: ds.num_row(0).to_vec() };
    let one = std::slice::from_ref(&inst);
    let mut once = || -> Result<()> {
        std::hint::black_box(b.predict(one)?);
        Ok(())
    };
    time_each(20, &mut once)?;
    let secs = time_each(calls.max(1), &mut once)?;
    let mut sorted = secs.clone();
    sorted.sort_by(f64::total_cmp);
    let p90 = sorted[(sorted.len() * 9 / 10).min(sorted.len() - 1)];
    Ok(json!({
        "what": "latency", "model": model.name(), "calls": secs.len(), "threads": threads(),
        "median_us": 1e6 * median(&secs), "p90_us": 1e6 * p90,
    }))
}

pub(super) fn parse_shape(s: &str) -> Result<[usize; 3]> {
    let dims: Vec<usize> = s.split('x').map(str::parse).collect::<Result<_, _>>().ok().unwrap_or_default();
    match dims[..] {
        [m, k, n] if m * k * n > 0 => Ok([m, k, n]),
        _ => bail!("shape `{s}`: expected MxKxN with three positive integers, e.g. 2048x272x256"),
    }
}

/// GFLOP/s (2 M K N per product) of each shape: the median of `reps` timed products after
/// two untimed ones, the output read back to force completion.
pub(super) fn gemm(shapes: &[String], reps: usize) -> Result<Value> {
    use adaftr_core::nn::linear::linear;
    use candle_core::Module;
    let dev = Device::Cpu;
    let mut out = serde_json::Map::new();
    for s in shapes {
        let [m, k, n] = parse_shape(s)?;
        let varmap = candle_nn::VarMap::new();
        let vb = candle_nn::VarBuilder::from_varmap(&varmap, candle_core::DType::F32, &dev);
        let layer = linear(k, n, vb)?;
        let x = Tensor::randn(0f32, 1.0, (m, k), &dev)?;
        let mut once = || -> Result<()> {
            std::hint::black_box(layer.forward(&x)?.flatten_all()?.get(0)?.to_scalar::<f32>()?);
            Ok(())
        };
        time_each(2, &mut once)?;
        let secs = time_each(reps.max(1), &mut once)?;
        out.insert(s.clone(), json!(2.0 * (m * k * n) as f64 / median(&secs) / 1e9));
    }
    Ok(json!({ "what": "gemm", "threads": threads(), "gflops": out }))
}

/// Peak resident memory (VmHWM) and current (VmRSS) in bytes, on Linux.
fn memory() -> Option<(u64, u64)> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let field = |k: &str| -> Option<u64> {
        let line = s.lines().find(|l| l.starts_with(k))?;
        Some(line.split_whitespace().nth(1)?.parse::<u64>().ok()? * 1024)
    };
    Some((field("VmHWM:")?, field("VmRSS:")?))
}

/// CPU seconds (user + system) this process has used so far, on Linux (100 ticks/s).
fn cpu_seconds() -> Option<f64> {
    let s = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let rest = s.rsplit_once(')')?.1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?;
    Some(ticks / 100.0)
}

pub(super) fn ingest(file: &Path) -> Result<Value> {
    let bytes = std::fs::metadata(file).with_context(|| format!("reading {}", file.display()))?.len();
    // Reset the peak-RSS counter (Linux), so the peak is this load's.
    let _ = std::fs::write("/proc/self/clear_refs", "5");
    let before = memory();
    let cpu0 = cpu_seconds();
    let t = Instant::now();
    let (schema, ds, report) = load_train(inputs::open(file)?, &files::label(file), &LoadOptions::default())?;
    let secs = t.elapsed().as_secs_f64();
    let cpu = cpu_seconds().zip(cpu0).map(|(b, a)| b - a);
    let after = memory();
    let rows = ds.len();
    let per_m = |b: f64| b * 1e6 / rows.max(1) as f64 / (1 << 20) as f64;
    let dataset_bytes = (ds.cat.capacity() * 4 + ds.num.capacity() * 4 + rows / 4) as f64
        + ds.group.as_ref().map_or(0.0, |g| (g.capacity() * 4) as f64);
    let peak = match (before, after) {
        (Some((_, rss0)), Some((hwm, _))) => Some(hwm.saturating_sub(rss0) as f64),
        _ => None,
    };
    std::hint::black_box((&schema, report.rows));
    Ok(json!({
        "what": "ingest", "rows": rows, "bytes": bytes, "seconds": secs,
        "rows_per_s": rows as f64 / secs,
        "mb_per_s": bytes as f64 / 1e6 / secs,
        "cpu_seconds": cpu,
        "mb_per_cpu_s": cpu.filter(|c| *c > 0.0).map(|c| bytes as f64 / 1e6 / c),
        "peak_mib_per_m_rows": peak.map(per_m),
        "dataset_mib_per_m_rows": per_m(dataset_bytes),
        "file_mib_per_m_rows": per_m(bytes as f64),
    }))
}

/// Training from a CSV as `adaftr train` does, loaded or streamed: the time to get ready
/// (load, or the schema's fit pass), then `steps` steps of epoch 0 (the streamed ones parse
/// their rows inside the timed steps), and the process's peak memory.
pub(super) fn stream(
    file: &Path,
    mode: StreamMode,
    model: BenchModel,
    batch: usize,
    steps: usize,
    shuffle_buffer: usize,
) -> Result<Value> {
    let bytes = std::fs::metadata(file).with_context(|| format!("reading {}", file.display()))?.len();
    let (label, opts, dev) = (files::label(file), LoadOptions::default(), Device::Cpu);
    let mut config = model.config();
    config.train.batch_size = batch;
    let seed = config.train.seed;
    let t = Instant::now();
    let loaded;
    let (trainer, mut rows): (Trainer, Box<dyn TrainingRows + '_>) = match mode {
        StreamMode::Memory => {
            let (schema, ds, _) = load_train(inputs::open(file)?, &label, &opts)?;
            loaded = ds;
            (Trainer::new(config, schema, &dev)?, Box::new(InMemory::new(&loaded)))
        }
        StreamMode::Stream => {
            let (schema, report) = fit_schema(inputs::open(file)?, &label, &opts)?;
            let csv = CsvFile::new(inputs::opener(file), &label, &opts);
            let stream = Streamed::new(csv, &schema, shuffle_buffer, report.rows);
            (Trainer::new(config, schema, &dev)?, Box::new(stream))
        }
    };
    let mut trainer = trainer;
    let ready = t.elapsed().as_secs_f64();
    let t = Instant::now();
    rows.start_epoch(seed, 0, 0)?;
    let start_epoch = t.elapsed().as_secs_f64();
    let steps = steps.min(rows.rows() / batch).max(1);
    let mut step = || -> Result<()> {
        let b = rows.next_batch(batch, &dev)?;
        trainer.train_step(&b)?;
        Ok(())
    };
    time_each(2, &mut step)?;
    let secs = time_each(steps, &mut step)?;
    let total: f64 = secs.iter().sum();
    Ok(json!({
        "what": "stream", "mode": format!("{mode:?}").to_lowercase(), "model": model.name(),
        "rows": rows.rows(), "bytes": bytes, "batch": batch, "steps": secs.len(), "threads": threads(),
        "shuffle_buffer": (mode == StreamMode::Stream).then_some(shuffle_buffer),
        "ready_seconds": ready, "start_epoch_seconds": start_epoch,
        "samples_per_s": (batch * secs.len()) as f64 / total,
        "peak_rss_mib": memory().map(|(hwm, _)| hwm as f64 / (1 << 20) as f64),
    }))
}
