//! `adaftr bench`: the Rust half of the side-by-side benchmarks in `bench/`.
//!
//! `bench/run.sh` drives everything: `adaftr bench prepare` writes the data, the initial
//! weights of every benchmarked model (as ordinary model bundles) and our reference outputs;
//! then `bench/compare.py` alternates `adaftr bench train|infer|latency` runs with the same
//! measurements in PyTorch (`bench/torch_ref.py`) in one process, round after round, and
//! takes medians. Each measurement prints one JSON object on stdout. `adaftr bench --smoke`
//! runs every step at a tiny size (seconds), which is what the test suite checks; timings
//! never fail a test.
//!
//! `adaftr bench trace` is the training-parity half: it trains a fresh model over a batch
//! order it writes down, and records everything `bench/train_parity.py` needs to train the
//! same model in PyTorch from the same weights over the same batches and compare.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use adaftr_core::bundle::{self, Bundle};
use adaftr_core::config::{Backbone, ClMode, Config};
use adaftr_core::data::{generate, load_train, BadRows, Dataset, LoadOptions, SynthConfig};
use adaftr_core::evaluate::predict;
use adaftr_core::inference::Instance;
use adaftr_core::rng::Rng;
use adaftr_core::train::Trainer;
use anyhow::{bail, Context, Result};
use candle_core::{Device, Tensor};
use serde_json::{json, Value};

use crate::files;

/// The models the benchmark compares with PyTorch. Each is a config; `prepare` writes its
/// initial weights to `<name>.safetensors`.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum BenchModel {
    /// MODEL.md read literally (`Config::literal_spec()`: `joint`, relatedness on the towers,
    /// no projection heads).
    Literal,
    /// The default configuration (`transfer`, projection heads, relatedness on the embeddings).
    Default,
    /// The plain shared-bottom backbone (`cl = none`).
    Plain,
    /// The plain PLE backbone.
    Ple,
}

impl BenchModel {
    pub const ALL: [BenchModel; 4] = [Self::Literal, Self::Default, Self::Plain, Self::Ple];

    pub fn name(self) -> &'static str {
        match self {
            Self::Literal => "literal",
            Self::Default => "default",
            Self::Plain => "plain",
            Self::Ple => "ple",
        }
    }

    pub fn config(self) -> Config {
        let mut c = match self {
            Self::Literal => Config::literal_spec(),
            _ => Config::default(),
        };
        if matches!(self, Self::Plain | Self::Ple) {
            c.loss.cl = ClMode::None;
        }
        if self == Self::Ple {
            c.model.backbone = Backbone::Ple;
        }
        c
    }

    fn bundle_file(self) -> String {
        format!("{}.safetensors", self.name())
    }
}

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
    /// Generate the data and the initial weights of every benchmarked model, and our
    /// reference outputs for parity.
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
    /// Training throughput (samples/s) of one of the benchmarked models.
    Train {
        #[arg(long)]
        dir: PathBuf,
        #[arg(long, value_enum, default_value_t = BenchModel::Literal)]
        model: BenchModel,
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
        #[arg(long, value_enum, default_value_t = BenchModel::Literal)]
        model: BenchModel,
        #[arg(long, default_value_t = 2048)]
        batch: usize,
        #[arg(long, default_value_t = 20)]
        reps: usize,
    },
    /// Single-instance latency through `Bundle::predict` (the browser's path).
    Latency {
        #[arg(long)]
        dir: PathBuf,
        #[arg(long, value_enum, default_value_t = BenchModel::Literal)]
        model: BenchModel,
        #[arg(long, default_value_t = 2000)]
        calls: usize,
    },
    /// CSV ingest (schema fitting and encoding, as `adaftr train` loads its training file).
    Ingest {
        #[arg(long)]
        file: PathBuf,
    },
    /// f32 GEMM throughput (GFLOP/s) at given shapes, through the dense layer the models use
    /// (x W^T + b, adaftr's CPU kernel; the InfoNCE similarity u v^T is the same product).
    Gemm {
        /// `MxKxN` products, comma-separated: x (M, K) times W^T, W (N, K).
        #[arg(long, value_delimiter = ',', required = true)]
        shapes: Vec<String>,
        #[arg(long, default_value_t = 20)]
        reps: usize,
    },
    /// Train a fresh model for a fixed number of epochs (no early stopping) over a batch
    /// order drawn here, and write what bench/train_parity.py needs to replay the run in
    /// PyTorch: `init.safetensors` (the untrained bundle), `train.safetensors` and
    /// `valid.safetensors` (the encoded data), `order.safetensors` (each epoch's row order),
    /// `steps.jsonl` (every step's loss terms), `epochs.jsonl` (each epoch's validation
    /// metrics) and `valid_pred.safetensors` (each epoch's validation predictions).
    Trace {
        /// Training CSV; the schema is fitted on it as `adaftr train` does.
        #[arg(long)]
        train: PathBuf,
        #[arg(long)]
        valid: PathBuf,
        #[arg(long, value_enum, default_value_t = BenchModel::Literal)]
        model: BenchModel,
        /// The seed of the initial weights and of the batch order.
        #[arg(long, default_value_t = 42)]
        seed: u64,
        #[arg(long, default_value_t = 3)]
        epochs: usize,
        #[arg(long)]
        out_dir: PathBuf,
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
        (None, false) => bail!("give a subcommand (prepare, train, infer, latency, ingest, gemm, trace) or --smoke"),
    }
}

/// Every step at a tiny size; returns the results as one JSON object.
pub fn smoke(dir: &Path) -> Result<Value> {
    let mut all = serde_json::Map::new();
    let d = || dir.to_path_buf();
    let mut steps = vec![("prepare".to_string(), Cmd::Prepare { out_dir: d(), rows: 600, batch: 128, seed: 3 })];
    for model in BenchModel::ALL {
        let name = model.name();
        steps.push((format!("train_{name}"), Cmd::Train { dir: d(), model, batch: 128, steps: 2, warmup: 1 }));
        steps.push((format!("infer_{name}"), Cmd::Infer { dir: d(), model, batch: 128, reps: 2 }));
        steps.push((format!("latency_{name}"), Cmd::Latency { dir: d(), model, calls: 5 }));
    }
    steps.push(("ingest".into(), Cmd::Ingest { file: dir.join("train.csv") }));
    steps.push(("gemm".into(), Cmd::Gemm { shapes: vec!["64x32x16".into()], reps: 2 }));
    let (train, valid) = (dir.join("train.csv"), dir.join("valid.csv"));
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    generate(
        &SynthConfig { rows: 300, seed: 4, compute_auc: false, ..SynthConfig::default() },
        files::create(&valid)?,
        std::io::sink(),
    )?;
    let trace = Cmd::Trace { train, valid, model: BenchModel::Literal, seed: 5, epochs: 2, out_dir: dir.join("trace") };
    steps.push(("trace".into(), trace));
    for (name, cmd) in steps {
        let r = run_cmd(&cmd).with_context(|| format!("bench step `{name}`"))?;
        all.insert(name, r);
    }
    Ok(Value::Object(all))
}

fn run_cmd(cmd: &Cmd) -> Result<Value> {
    match cmd {
        Cmd::Prepare { out_dir, rows, batch, seed } => prepare(out_dir, *rows, *batch, *seed),
        Cmd::Train { dir, model, batch, steps, warmup } => train(dir, *model, *batch, *steps, *warmup),
        Cmd::Infer { dir, model, batch, reps } => infer(dir, *model, *batch, *reps),
        Cmd::Latency { dir, model, calls } => latency(dir, *model, *calls),
        Cmd::Ingest { file } => ingest(file),
        Cmd::Gemm { shapes, reps } => gemm(shapes, *reps),
        Cmd::Trace { train, valid, model, seed, epochs, out_dir } => {
            trace(train, valid, *model, *seed, *epochs, out_dir)
        }
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

fn load_bundle(dir: &Path, model: BenchModel) -> Result<Bundle> {
    let path = dir.join(model.bundle_file());
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
        let after = trainer.model.forward(&first.cat, &first.num)?;
        tensors.push(("pctr_after_step".to_string(), after.pctr));
        tensors.push(("pcvr_after_step".to_string(), after.pcvr));
        // The weights after the step, to name the tensor where a difference comes from.
        tensors.extend(trainer.params.snapshot()?.into_iter().map(|(k, t)| (format!("after_step.{k}"), t)));
        save_tensors(&dir.join(format!("parity-{name}.safetensors")), tensors)?;
        params.insert(name.to_string(), json!(b.params.numel()));
    }
    Ok(json!({ "rows": ds.len(), "batch": batch, "params": params, "threads": threads() }))
}

/// The trace's batch order: a stream of its own (not `Trainer::fit`'s), written to
/// `order.safetensors` so that both sides read the same one.
const TRACE_ORDER_STREAM: u64 = 0x7ACE_0001;

fn trace(train_csv: &Path, valid_csv: &Path, model: BenchModel, seed: u64, epochs: usize, dir: &Path) -> Result<Value> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let (schema, train, _) = load_train(files::open(train_csv)?, &files::label(train_csv), &LoadOptions::default())?;
    let valid = super::load_encoded(valid_csv, &schema, BadRows::Error)?;
    let mut config = model.config();
    config.train.seed = seed;
    config.train.epochs = epochs;
    let dev = Device::Cpu;
    let mut trainer = Trainer::new(config, schema, &dev)?;
    write(&dir.join("init.safetensors"), &trainer.bundle_bytes(&trainer.summary())?)?;
    save_tensors(&dir.join("train.safetensors"), dataset_tensors(&train)?)?;
    save_tensors(&dir.join("valid.safetensors"), dataset_tensors(&valid)?)?;

    let n = train.len();
    let orders: Vec<Vec<usize>> = (0..epochs)
        .map(|e| {
            let mut order: Vec<usize> = (0..n).collect();
            Rng::derive(seed ^ TRACE_ORDER_STREAM, e as u64).shuffle(&mut order);
            order
        })
        .collect();
    let flat: Vec<u32> = orders.iter().flatten().map(|&i| i as u32).collect();
    save_tensors(&dir.join("order.safetensors"), vec![("order".into(), Tensor::from_vec(flat, (epochs, n), &dev)?)])?;

    let create = |name: &str| files::create(&dir.join(name));
    let (mut steps_out, mut epochs_out) = (create("steps.jsonl")?, create("epochs.jsonl")?);
    let bs = trainer.config.train.batch_size;
    let steps = trainer.steps_per_epoch(n);
    let mut preds = Vec::new();
    let started = Instant::now();
    for (e, order) in orders.iter().enumerate() {
        trainer.state.epoch = e;
        for s in 0..steps {
            trainer.state.step = s;
            let batch = train.batch(&order[s * bs..((s + 1) * bs).min(n)], &dev)?;
            let losses = trainer.train_step(&batch)?;
            let mut line = serde_json::to_value(losses)?;
            line["epoch"] = json!(e + 1);
            line["step"] = json!(e * steps + s + 1);
            writeln!(steps_out, "{line}")?;
        }
        let p = predict(&trainer.model, &valid, bs.max(256), &dev)?;
        let eval = adaftr_core::evaluate::Evaluation::compute(&p, &valid);
        writeln!(epochs_out, "{}", json!({ "epoch": e + 1, "valid": eval }))?;
        for (k, v) in [("pctr", &p.pctr), ("pcvr", &p.pcvr), ("pctcvr", &p.pctcvr), ("tau", &p.tau)] {
            if !v.is_empty() {
                preds.push((format!("e{}.{k}", e + 1), Tensor::from_vec(v.clone(), v.len(), &dev)?));
            }
        }
    }
    steps_out.flush()?;
    epochs_out.flush()?;
    save_tensors(&dir.join("valid_pred.safetensors"), preds)?;
    Ok(json!({
        "what": "trace", "model": model.name(), "rows": n, "valid_rows": valid.len(), "epochs": epochs,
        "steps_per_epoch": steps, "seconds": started.elapsed().as_secs_f64(), "threads": threads(),
    }))
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
fn train(dir: &Path, model: BenchModel, batch: usize, steps: usize, warmup: usize) -> Result<Value> {
    let ds = load_dataset(dir)?;
    let b = load_bundle(dir, model)?;
    let mut config = b.config.clone();
    config.train.batch_size = batch;
    let dev = Device::Cpu;
    let mut trainer = Trainer::new(config, b.schema.clone(), &dev)?;
    trainer.params.restore(&b.params.snapshot()?)?;
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

fn infer(dir: &Path, model: BenchModel, batch: usize, reps: usize) -> Result<Value> {
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

fn latency(dir: &Path, model: BenchModel, calls: usize) -> Result<Value> {
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

fn parse_shape(s: &str) -> Result<[usize; 3]> {
    let dims: Vec<usize> = s.split('x').map(str::parse).collect::<Result<_, _>>().ok().unwrap_or_default();
    match dims[..] {
        [m, k, n] if m * k * n > 0 => Ok([m, k, n]),
        _ => bail!("shape `{s}`: expected MxKxN with three positive integers, e.g. 2048x272x256"),
    }
}

/// GFLOP/s (2 M K N per product) of each shape: the median of `reps` timed products after
/// two untimed ones, the output read back to force completion.
fn gemm(shapes: &[String], reps: usize) -> Result<Value> {
    use adaftr_core::model::linear::linear;
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

    /// The benchmark's every step runs (tiny sizes; no timing is checked), and the trace
    /// writes one line per step and per epoch.
    #[test]
    fn bench_smoke_runs() {
        let dir = std::env::temp_dir().join(format!("adaftr-bench-smoke-test-{}", std::process::id()));
        let r = smoke(&dir);
        let parity: Vec<bool> =
            BenchModel::ALL.iter().map(|m| dir.join(format!("parity-{}.safetensors", m.name())).exists()).collect();
        let read = |f: &str| std::fs::read_to_string(dir.join("trace").join(f)).unwrap_or_default();
        let (steps, epochs) = (read("steps.jsonl"), read("epochs.jsonl"));
        let _ = std::fs::remove_dir_all(&dir);
        let r = r.unwrap();
        assert_eq!(parity, [true; 4]);
        for m in BenchModel::ALL {
            for k in ["train", "infer"] {
                let k = format!("{k}_{}", m.name());
                assert!(r[&k]["samples_per_s"].as_f64().unwrap() > 0.0, "{k}: {r}");
            }
        }
        assert!(r["ingest"]["rows"].as_u64().unwrap() > 500, "{r}");
        assert!(r["gemm"]["gflops"]["64x32x16"].as_f64().unwrap() > 0.0, "{r}");
        assert!(parse_shape("2048x0x3").is_err() && parse_shape("2x3").is_err() && parse_shape("2x3x4").is_ok());
        // 600 rows in batches of 2048: one step per epoch, two epochs.
        assert_eq!(r["trace"]["steps_per_epoch"], 1, "{r}");
        assert_eq!(steps.lines().count(), 2, "{steps}");
        assert_eq!(epochs.lines().count(), 2, "{epochs}");
        let last: Value = serde_json::from_str(steps.lines().last().unwrap()).unwrap();
        assert!(last["cl"].as_f64().is_some_and(f64::is_finite) && last["step"] == 2, "{last}");
    }

    /// `--model literal` is what `study/literal-spec.toml` sets, and the four models differ.
    #[test]
    fn bench_models_are_the_documented_configs() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../study/literal-spec.toml");
        let file: Config = toml::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        assert_eq!(BenchModel::Literal.config(), file);
        assert_eq!(BenchModel::Default.config(), Config::default());
        let c = |m: BenchModel| m.config();
        assert_eq!((c(BenchModel::Plain).loss.cl, c(BenchModel::Ple).model.backbone), (ClMode::None, Backbone::Ple));
        for (i, a) in BenchModel::ALL.iter().enumerate() {
            for b in &BenchModel::ALL[i + 1..] {
                assert_ne!(a.config(), b.config(), "{a:?} {b:?}");
            }
        }
    }
}
