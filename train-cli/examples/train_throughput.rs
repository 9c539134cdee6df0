//! Training throughput of the default AdaFTR model on one device, for scripts/gpu-check.sh.
//!
//!     cargo run --release -p adaftr-cli --features cuda --example train_throughput -- \
//!         --data train.csv --device cuda --batch 8192 [--steps 10] [--warmup 3]
//!
//! Loads the CSV once (as `adaftr train` does), builds the default model on the device with
//! the given batch size, runs `warmup` untimed and then `steps` timed `Trainer::train_step`
//! calls on consecutive batches (the batch is gathered from the in-memory dataset and copied
//! to the device inside the timed step, and each step reads its loss values back to the
//! host, exactly as `Trainer::fit` does), and prints one JSON line:
//! `{"device", "batch", "steps", "samples_per_s", "median_step_ms", ...}`.
//! An error (out of device memory, say) is printed as `{"device", "batch", "error"}` with
//! exit status 2, so a caller can record it and carry on.

use std::path::PathBuf;
use std::time::Instant;

use adaftr_core::config::Config;
use adaftr_core::data::{load_train, LoadOptions};
use adaftr_core::train::Trainer;
use anyhow::{bail, Context, Result};
use candle_core::Device;

struct Args {
    data: PathBuf,
    device: String,
    batch: usize,
    steps: usize,
    warmup: usize,
}

fn parse() -> Result<Args> {
    let mut a = Args { data: PathBuf::new(), device: "cpu".into(), batch: 2048, steps: 10, warmup: 3 };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut val = || it.next().with_context(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--data" => a.data = PathBuf::from(val()?),
            "--device" => a.device = val()?,
            "--batch" => a.batch = val()?.parse().context("--batch")?,
            "--steps" => a.steps = val()?.parse().context("--steps")?,
            "--warmup" => a.warmup = val()?.parse().context("--warmup")?,
            _ => bail!("unknown flag {flag} (use --data, --device cpu|cuda, --batch, --steps, --warmup)"),
        }
    }
    if a.data.as_os_str().is_empty() {
        bail!("--data CSV is required");
    }
    Ok(a)
}

fn device(name: &str) -> Result<Device> {
    match name {
        "cpu" => Ok(Device::Cpu),
        "cuda" => Device::new_cuda(0)
            .context("cannot open CUDA device 0 (built with --features cuda? GPU and driver present?)"),
        other => bail!("unknown device {other}"),
    }
}

fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let m = s.len() / 2;
    if s.len() % 2 == 1 {
        s[m]
    } else {
        (s[m - 1] + s[m]) / 2.0
    }
}

fn run(a: &Args) -> Result<serde_json::Value> {
    let dev = device(&a.device)?;
    let file = std::fs::File::open(&a.data).with_context(|| format!("cannot read {}", a.data.display()))?;
    let (schema, ds, _) =
        load_train(std::io::BufReader::new(file), &a.data.display().to_string(), &LoadOptions::default())?;
    if ds.len() < a.batch {
        bail!("{} has {} rows, fewer than one batch of {}", a.data.display(), ds.len(), a.batch);
    }
    let mut config = Config::default();
    config.train.batch_size = a.batch;
    let mut trainer = Trainer::new(config, schema, &dev)?;
    let n_batches = ds.len() / a.batch;
    let mut k = 0usize;
    let mut step = || -> Result<f64> {
        let start = (k % n_batches) * a.batch;
        k += 1;
        let rows: Vec<usize> = (start..start + a.batch).collect();
        let t = Instant::now();
        let batch = ds.batch(&rows, &dev)?;
        let losses = trainer.train_step(&batch)?;
        if !losses.total.is_finite() {
            bail!("non-finite loss");
        }
        Ok(t.elapsed().as_secs_f64())
    };
    for _ in 0..a.warmup {
        step()?;
    }
    let secs = (0..a.steps.max(1)).map(|_| step()).collect::<Result<Vec<f64>>>()?;
    let total: f64 = secs.iter().sum();
    Ok(serde_json::json!({
        "device": a.device, "batch": a.batch, "steps": secs.len(), "warmup": a.warmup,
        "threads": candle_core::utils::get_num_threads(),
        "samples_per_s": (a.batch * secs.len()) as f64 / total,
        "median_step_ms": 1e3 * median(&secs),
    }))
}

fn main() {
    let a = match parse() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::exit(1);
        }
    };
    match run(&a) {
        Ok(v) => println!("{v}"),
        Err(e) => {
            println!("{}", serde_json::json!({ "device": a.device, "batch": a.batch, "error": format!("{e:#}") }));
            std::process::exit(2);
        }
    }
}
