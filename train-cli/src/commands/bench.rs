//! `adaftr bench`: the Rust half of the side-by-side benchmarks in `bench/`.
//!
//! `bench/run.sh` drives everything: `adaftr bench prepare` writes the data, the initial
//! weights (as ordinary model bundles) and our reference outputs; then `bench/compare.py`
//! alternates `adaftr bench train|infer|latency` runs with the same measurements in PyTorch
//! (`bench/torch_ref.py`) in one process, round after round, and takes medians. Each
//! measurement prints one JSON object on stdout. `adaftr bench --smoke` runs every step at a
//! tiny size (seconds), which is what the test suite checks; timings never fail a test.
//! One file of about 400 lines: the measurements share the prepared files' layout, and
//! reading them side by side is how one checks that each measures what its PyTorch twin does.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use adaftr_core::bundle::{self, Bundle};
use adaftr_core::config::{ClMode, Config};
use adaftr_core::data::{generate, load_train, Dataset, LoadOptions, SynthConfig};
use adaftr_core::inference::Instance;
use adaftr_core::train::Trainer;
use anyhow::{bail, Context, Result};
use candle_core::{Device, Tensor};
use serde_json::{json, Value};

use crate::files;

#[derive(clap::Args, Debug)]
#[command(args_conflicts_with_subcommands = true)]
pub struct Args {
    #[command(subcommand)]
    pub cmd: Option<Cmd>,
    /// Run every measurement once at a tiny size in a temporary folder (a check that the
    /// benchmark runs, not a measurement).
    #[arg(long)]
    pub smoke: bool,
}

#[derive(clap::Subcommand, Debug)]
pub enum Cmd {
    /// Generate the data and initial weights, and our reference outputs for parity.
    Prepare {
        #[arg(long)]
        out_dir: PathBuf,
        /// Rows of generated AliExpress-shaped training data.
        #[arg(long, default_value_t = 16384)]
        rows: usize,
        #[arg(long, default_value_t = 2048)]
        batch: usize,
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
    /// Training throughput (samples/s) of the full AdaFTR loss, or of the plain backbone.
    Train {
        #[arg(long)]
        dir: PathBuf,
        /// Train the plain backbone (`cl = none`) instead of the full AdaFTR loss.
        #[arg(long)]
        plain: bool,
        #[arg(long, default_value_t = 2048)]
        batch: usize,
        #[arg(long, default_value_t = 10)]
        steps: usize,
        #[arg(long, default_value_t = 2)]
        warmup: usize,
    },
    /// Batch inference throughput (samples/s), outputs copied back to host memory.
    Infer {
        #[arg(long)]
        dir: PathBuf,
        #[arg(long, default_value_t = 2048)]
        batch: usize,
        #[arg(long, default_value_t = 20)]
        reps: usize,
    },
    /// Single-instance latency through `Bundle::predict` (the browser's path).
    Latency {
        #[arg(long)]
        dir: PathBuf,
        #[arg(long, default_value_t = 2000)]
        calls: usize,
    },
    /// CSV ingest (schema fitting and encoding, as `adaftr train` loads its training file).
    Ingest {
        #[arg(long)]
        file: PathBuf,
    },
}

pub fn run(a: &Args) -> Result<()> {
    match (&a.cmd, a.smoke) {
        (_, true) => {
            let dir = std::env::temp_dir().join(format!("adaftr-bench-smoke-{}", std::process::id()));
            let r = smoke(&dir);
            let _ = std::fs::remove_dir_all(&dir);
            println!("{}", r?);
            Ok(())
        }
        (Some(cmd), false) => {
            println!("{}", run_cmd(cmd)?);
            Ok(())
        }
        (None, false) => bail!("give a subcommand (prepare, train, infer, latency, ingest) or --smoke"),
    }
}

/// Every step at a tiny size; returns the results as one JSON object.
pub fn smoke(dir: &Path) -> Result<Value> {
    let mut all = serde_json::Map::new();
    let steps = [
        ("prepare", Cmd::Prepare { out_dir: dir.to_path_buf(), rows: 600, batch: 128, seed: 3 }),
        ("train_full", Cmd::Train { dir: dir.to_path_buf(), plain: false, batch: 128, steps: 2, warmup: 1 }),
        ("train_plain", Cmd::Train { dir: dir.to_path_buf(), plain: true, batch: 128, steps: 2, warmup: 1 }),
        ("infer", Cmd::Infer { dir: dir.to_path_buf(), batch: 128, reps: 2 }),
        ("latency", Cmd::Latency { dir: dir.to_path_buf(), calls: 5 }),
        ("ingest", Cmd::Ingest { file: dir.join("train.csv") }),
    ];
    for (name, cmd) in steps {
        all.insert(name.to_string(), run_cmd(&cmd).with_context(|| format!("bench step `{name}`"))?);
    }
    Ok(Value::Object(all))
}

fn run_cmd(cmd: &Cmd) -> Result<Value> {
    match cmd {
        Cmd::Prepare { out_dir, rows, batch, seed } => prepare(out_dir, *rows, *batch, *seed),
        Cmd::Train { dir, plain, batch, steps, warmup } => train(dir, *plain, *batch, *steps, *warmup),
        Cmd::Infer { dir, batch, reps } => infer(dir, *batch, *reps),
        Cmd::Latency { dir, calls } => latency(dir, *calls),
        Cmd::Ingest { file } => ingest(file),
    }
}

fn threads() -> usize {
    candle_core::utils::get_num_threads()
}

fn write(path: &Path, bytes: &[u8]) -> Result<()> {
    std::fs::write(path, bytes).with_context(|| format!("writing {}", path.display()))
}

fn save_tensors(path: &Path, tensors: Vec<(String, Tensor)>) -> Result<()> {
    let map: HashMap<String, Tensor> = tensors.into_iter().collect();
    candle_core::safetensors::save(&map, path).with_context(|| format!("writing {}", path.display()))
}

/// The encoded dataset as tensors (`cat` u32 (N, F), `num` f32 (N, D), labels f32 (N,)).
fn dataset_tensors(ds: &Dataset) -> Result<Vec<(String, Tensor)>> {
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

fn load_dataset(dir: &Path) -> Result<Dataset> {
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

fn load_bundle(dir: &Path, name: &str) -> Result<Bundle> {
    let path = dir.join(name);
    bundle::load(&files::read_model(&path)?, &Device::Cpu).with_context(|| format!("loading {}", path.display()))
}

fn prepare(dir: &Path, rows: usize, batch: usize, seed: u64) -> Result<Value> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let csv = dir.join("train.csv");
    let cfg = SynthConfig { rows, seed, compute_auc: false, ..SynthConfig::default() };
    generate(&cfg, files::create(&csv)?, std::io::sink())?;
    let (schema, ds, _) = load_train(files::open(&csv)?, &files::label(&csv), &LoadOptions::default())?;
    if ds.len() < batch {
        bail!("{} rows is fewer than one batch of {batch}", ds.len());
    }
    let dev = Device::Cpu;
    // The literal spec: bench/torch_ref.py implements joint, fixed and none modes (the
    // default `transfer` mode's extra term costs about as much as joint's gradient in tau).
    let mut config = Config::literal_spec();
    config.train.batch_size = batch;
    let mut plain = config.clone();
    plain.loss.cl = ClMode::None;
    let mut trainer = Trainer::new(config, schema.clone(), &dev)?;
    write(&dir.join("model.safetensors"), &trainer.bundle_bytes(&trainer.summary())?)?;
    let plain_trainer = Trainer::new(plain, schema, &dev)?;
    write(&dir.join("plain.safetensors"), &plain_trainer.bundle_bytes(&plain_trainer.summary())?)?;
    save_tensors(&dir.join("data.safetensors"), dataset_tensors(&ds)?)?;

    // Parity references for the first batch: the bundle's predictions and loss terms, and
    // the predictions after one Adam step on that batch.
    let b = load_bundle(dir, "model.safetensors")?;
    let first = ds.range_batch(0, batch, &dev)?;
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
    write(&dir.join("parity.json"), losses.to_string().as_bytes())?;
    let after = trainer.model().forward(&first.cat, &first.num)?;
    tensors.push(("pctr_after_step".to_string(), after.pctr));
    tensors.push(("pcvr_after_step".to_string(), after.pcvr));
    save_tensors(&dir.join("parity.safetensors"), tensors)?;
    Ok(json!({ "rows": ds.len(), "batch": batch, "params": b.params.numel(), "threads": threads() }))
}

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
    if s.is_empty() {
        return f64::NAN;
    }
    let m = s.len() / 2;
    if s.len() % 2 == 1 {
        s[m]
    } else {
        (s[m - 1] + s[m]) / 2.0
    }
}

/// Steps through consecutive batches of the prepared data, as `Trainer::fit` does (the batch
/// is gathered from the columnar dataset inside the timed step).
fn train(dir: &Path, plain: bool, batch: usize, steps: usize, warmup: usize) -> Result<Value> {
    let ds = load_dataset(dir)?;
    let b = load_bundle(dir, if plain { "plain.safetensors" } else { "model.safetensors" })?;
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
        "what": if plain { "train_plain" } else { "train_full" },
        "batch": batch, "steps": secs.len(), "threads": threads(),
        "samples_per_s": (batch * secs.len()) as f64 / total,
        "median_step_ms": 1e3 * median(&secs),
    }))
}

fn infer(dir: &Path, batch: usize, reps: usize) -> Result<Value> {
    let ds = load_dataset(dir)?;
    let b = load_bundle(dir, "model.safetensors")?;
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
        "what": "infer", "batch": batch, "reps": secs.len(), "threads": threads(),
        "samples_per_s": (batch * secs.len()) as f64 / total,
        "median_batch_ms": 1e3 * median(&secs),
    }))
}

fn latency(dir: &Path, calls: usize) -> Result<Value> {
    let ds = load_dataset(dir)?;
    let b = load_bundle(dir, "model.safetensors")?;
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
        "what": "latency", "calls": secs.len(), "threads": threads(),
        "median_us": 1e6 * median(&secs), "p90_us": 1e6 * p90,
    }))
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

fn ingest(file: &Path) -> Result<Value> {
    let bytes = std::fs::metadata(file).with_context(|| format!("reading {}", file.display()))?.len();
    // Reset the peak-RSS counter (Linux), so the peak is this load's.
    let _ = std::fs::write("/proc/self/clear_refs", "5");
    let before = memory();
    let cpu0 = cpu_seconds();
    let t = Instant::now();
    let (schema, ds, report) = load_train(files::open(file)?, &files::label(file), &LoadOptions::default())?;
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The benchmark's every step runs (tiny sizes; no timing is checked).
    #[test]
    fn bench_smoke_runs() {
        let dir = std::env::temp_dir().join(format!("adaftr-bench-smoke-test-{}", std::process::id()));
        let r = smoke(&dir);
        let parity = dir.join("parity.safetensors").exists();
        let _ = std::fs::remove_dir_all(&dir);
        let r = r.unwrap();
        assert!(parity);
        for k in ["train_full", "train_plain", "infer"] {
            assert!(r[k]["samples_per_s"].as_f64().unwrap() > 0.0, "{k}: {r}");
        }
        assert!(r["ingest"]["rows"].as_u64().unwrap() > 500, "{r}");
    }
}
