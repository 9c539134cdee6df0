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

use std::path::{Path, PathBuf};

use adaftr_core::config::{Backbone, ClMode, Config};
use adaftr_core::data::{generate, SynthConfig};
use anyhow::{bail, Context, Result};
use serde_json::Value;

use crate::files;

mod measure;
mod prepared;
mod trace;

use measure::{gemm, infer, ingest, latency, stream, train};
use prepared::prepare;
use trace::trace;

/// The models the benchmark compares with PyTorch. Each is a config; `prepare` writes its
/// initial weights to `<name>.safetensors`.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum BenchModel {
    /// MODEL.md read literally (`Config::literal_spec()`: `joint`, relatedness on the towers,
    /// no projection heads).
    Literal,
    /// The default configuration (`Config::default()`: PLE with `readout`, the plain PLE plus
    /// the relatedness network and its transfer loss).
    Default,
    /// The full AdaFTR loss at this project's settings: shared-bottom, `transfer`, projection
    /// heads, relatedness on the embeddings (the default before `readout`).
    Transfer,
    /// The plain shared-bottom backbone (`cl = none`).
    Plain,
    /// The plain PLE backbone.
    Ple,
}

impl BenchModel {
    pub const ALL: [BenchModel; 5] = [Self::Literal, Self::Default, Self::Transfer, Self::Plain, Self::Ple];

    pub fn name(self) -> &'static str {
        match self {
            Self::Literal => "literal",
            Self::Default => "default",
            Self::Transfer => "transfer",
            Self::Plain => "plain",
            Self::Ple => "ple",
        }
    }

    pub fn config(self) -> Config {
        let mut c = match self {
            Self::Literal => Config::literal_spec(),
            _ => Config::default(),
        };
        match self {
            Self::Literal | Self::Default => {}
            Self::Transfer => (c.model.backbone, c.loss.cl) = (Backbone::SharedBottom, ClMode::Transfer),
            Self::Plain => (c.model.backbone, c.loss.cl) = (Backbone::SharedBottom, ClMode::None),
            Self::Ple => (c.model.backbone, c.loss.cl) = (Backbone::Ple, ClMode::None),
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

/// Where `bench stream` trains from.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum StreamMode {
    Memory,
    Stream,
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
    /// Training throughput over a CSV, loaded (`--mode memory`, as `adaftr train` does by
    /// default) or streamed (`--mode stream`, as `adaftr train --stream`), with the whole
    /// process's peak memory: one process per mode, so that peaks do not mix.
    Stream {
        #[arg(long)]
        file: PathBuf,
        #[arg(long, value_enum)]
        mode: StreamMode,
        #[arg(long, value_enum, default_value_t = BenchModel::Default)]
        model: BenchModel,
        #[arg(long, default_value_t = 2048)]
        batch: usize,
        #[arg(long, default_value_t = 100)]
        steps: usize,
        /// Rows in the shuffle buffer (stream mode).
        #[arg(long, default_value_t = 1_000_000)]
        shuffle_buffer: usize,
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
        Cmd::Stream { file, mode, model, batch, steps, shuffle_buffer } => {
            stream(file, *mode, *model, *batch, *steps, *shuffle_buffer)
        }
        Cmd::Gemm { shapes, reps } => gemm(shapes, *reps),
        Cmd::Trace { train, valid, model, seed, epochs, out_dir } => {
            trace(train, valid, *model, *seed, *epochs, out_dir)
        }
    }
}

fn threads() -> usize {
    candle_core::utils::get_num_threads()
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
        assert_eq!(parity, [true; BenchModel::ALL.len()]);
        for m in BenchModel::ALL {
            for k in ["train", "infer"] {
                let k = format!("{k}_{}", m.name());
                assert!(r[&k]["samples_per_s"].as_f64().unwrap() > 0.0, "{k}: {r}");
            }
        }
        assert!(r["ingest"]["rows"].as_u64().unwrap() > 500, "{r}");
        assert!(r["gemm"]["gflops"]["64x32x16"].as_f64().unwrap() > 0.0, "{r}");
        use super::measure::parse_shape;
        assert!(parse_shape("2048x0x3").is_err() && parse_shape("2x3").is_err() && parse_shape("2x3x4").is_ok());
        // 600 rows in batches of 2048: one step per epoch, two epochs.
        assert_eq!(r["trace"]["steps_per_epoch"], 1, "{r}");
        assert_eq!(steps.lines().count(), 2, "{steps}");
        assert_eq!(epochs.lines().count(), 2, "{epochs}");
        let last: Value = serde_json::from_str(steps.lines().last().unwrap()).unwrap();
        assert!(last["cl"].as_f64().is_some_and(f64::is_finite) && last["step"] == 2, "{last}");
    }

    /// `--model literal` is what `study/literal-spec.toml` sets, and the five models differ.
    #[test]
    fn bench_models_are_the_documented_configs() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../study/literal-spec.toml");
        let file: Config = toml::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        assert_eq!(BenchModel::Literal.config(), file);
        assert_eq!(BenchModel::Default.config(), Config::default());
        let c = |m: BenchModel| m.config();
        assert_eq!(
            (c(BenchModel::Plain).model.backbone, c(BenchModel::Plain).loss.cl),
            (Backbone::SharedBottom, ClMode::None)
        );
        assert_eq!((c(BenchModel::Ple).model.backbone, c(BenchModel::Ple).loss.cl), (Backbone::Ple, ClMode::None));
        let t = c(BenchModel::Transfer);
        assert_eq!(
            (t.model.backbone, t.loss.cl, t.model.projection.as_slice()),
            (Backbone::SharedBottom, ClMode::Transfer, &[32, 32][..])
        );
        for (i, a) in BenchModel::ALL.iter().enumerate() {
            for b in &BenchModel::ALL[i + 1..] {
                assert_ne!(a.config(), b.config(), "{a:?} {b:?}");
            }
        }
    }
}
