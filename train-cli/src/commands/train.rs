//! `adaftr train`.

use std::path::{Path, PathBuf};
use std::sync::LazyLock;

use adaftr_core::config::{Backbone, ClMode, Config, TrainConfig};
use adaftr_core::data::{fit_schema, load_train, load_with_schema, BadRows, Dataset, LoadOptions, SchemaSpec};
use adaftr_core::relatedness;
use adaftr_core::schema::NormKind;
use adaftr_core::train::{Collective, CsvFile, InMemory, Streamed, Trainer, TrainingRows, ValidationRows};
use anyhow::{bail, Context, Result};
use clap::builder::PossibleValue;
use clap::ValueEnum;

use crate::device::{self, DeviceArg};
use crate::distributed;
use crate::files;
use crate::inputs::{self, DataReader};
use crate::progress::TrainObserver;

/// `--model`: AdaFTR as the config sets it, or one backbone as a plain baseline. The
/// backbones, their names and their help are core's [`Backbone`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ModelArg {
    Adaftr,
    Plain(Backbone),
}

impl ValueEnum for ModelArg {
    fn value_variants<'a>() -> &'a [Self] {
        static ALL: LazyLock<Vec<ModelArg>> =
            LazyLock::new(|| std::iter::once(ModelArg::Adaftr).chain(Backbone::ALL.map(ModelArg::Plain)).collect());
        &ALL
    }

    fn to_possible_value(&self) -> Option<PossibleValue> {
        match self {
            Self::Adaftr => {
                Some(PossibleValue::new("adaftr").help("AdaFTR: the config's backbone with its relatedness mode"))
            }
            Self::Plain(b) => b.to_possible_value(),
        }
    }
}

/// The settings the `--model` and `--cl` help describe, as `key value` pairs: what
/// `adaftr train` trains without a config file.
fn default_model() -> String {
    let d = Config::default();
    let projection = match d.model.projection.as_slice() {
        [] => "none".to_string(),
        w => format!("{w:?}"),
    };
    let input = serde_json::to_value(d.model.relatedness_input).ok().and_then(|v| v.as_str().map(str::to_string));
    let heads = if relatedness::model_hooks(d.loss.cl).aligns() {
        "The projection heads sit between each tower and the contrastive term."
    } else {
        "The default mode has no contrastive term, so the default model builds no projection heads; the \
         aligning modes (`transfer`, `joint`, `meta`, `fixed`) use them."
    };
    format!(
        "Default without --config: backbone {}, --cl {}, projection {projection}, relatedness_input {}.\n\n{heads}",
        d.model.backbone.name(),
        d.loss.cl.name(),
        input.unwrap_or_default()
    )
}

fn model_help() -> String {
    format!(
        "What to train. `adaftr` is AdaFTR as the config sets it; a backbone name trains that backbone as a plain \
         baseline (`--cl none`) unless `--cl` is also given.\n\n{}",
        default_model()
    )
}

fn cl_help() -> String {
    format!(
        "How the relatedness (the per-instance InfoNCE temperature tau) is learned; overrides the config's \
         `loss.cl`.\n\n{}",
        default_model()
    )
}

/// Help for a flag that overrides one `[train]` setting.
fn train_help(what: &str, key: &str, default: impl std::fmt::Display) -> String {
    format!("{what}; overrides the config's `train.{key}` (default without --config: {default})")
}

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Training data: CSV (.csv or .csv.gz) or Parquet (.parquet), or several read as one:
    /// a directory of them, or a quoted pattern such as 'logs/part-*.csv.gz'; vocabularies
    /// and normalisation are fitted on it.
    #[arg(long)]
    pub train: PathBuf,
    /// Validation CSV, for early stopping and per-epoch metrics.
    #[arg(long)]
    pub valid: PathBuf,
    /// Where to write the model bundle (.safetensors).
    #[arg(long)]
    pub out: PathBuf,
    /// TOML config with any of the [model], [loss], [train] settings; flags override it.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Explicit schema JSON for CSVs that are neither AliExpress nor Ali-CCP.
    #[arg(long)]
    pub schema: Option<PathBuf>,
    #[arg(long, value_enum, help = "`adaftr`, or a backbone as a plain baseline", long_help = model_help())]
    pub model: Option<ModelArg>,
    #[arg(long, value_enum, help = "How the relatedness (tau) is learned", long_help = cl_help())]
    pub cl: Option<ClMode>,
    #[arg(long, help = train_help("Epochs at most", "epochs", TrainConfig::default().epochs))]
    pub epochs: Option<usize>,
    #[arg(long, help = train_help("Rows per batch", "batch_size", TrainConfig::default().batch_size))]
    pub batch_size: Option<usize>,
    #[arg(long, help = train_help("Adam's learning rate", "lr", TrainConfig::default().lr))]
    pub lr: Option<f64>,
    #[arg(long, help = train_help("Seed of the initial weights, row order and negatives", "seed", TrainConfig::default().seed))]
    pub seed: Option<u64>,
    #[arg(long, value_enum, default_value_t = DeviceArg::Cpu)]
    pub device: DeviceArg,
    /// Append per-epoch validation metrics as JSON lines to this file.
    #[arg(long)]
    pub metrics_out: Option<PathBuf>,
    /// Directory for the resumable checkpoint (`checkpoint.safetensors`).
    #[arg(long)]
    pub checkpoint_dir: Option<PathBuf>,
    /// Also checkpoint every N batches (0: only at epoch ends).
    #[arg(long, default_value_t = 200)]
    pub checkpoint_every: usize,
    /// Continue from the checkpoint in --checkpoint-dir.
    #[arg(long, requires = "checkpoint_dir")]
    pub resume: bool,
    /// Drop vocabulary values seen fewer times than this in training (they become OOV).
    #[arg(long, default_value_t = 1)]
    pub min_count: u32,
    /// Keep at most this many values per categorical field, the most frequent (the rest
    /// become OOV). A streamed fit pass then holds at most 4 times as many per field while
    /// counting, so its memory stays bounded for id fields with millions of values; the
    /// bundle's schema records whether counts were exact.
    #[arg(long)]
    pub max_vocab: Option<usize>,
    /// Normalisation of numeric features, fitted on the training split.
    #[arg(long, value_enum, default_value_t = NormKind::default())]
    pub norm: NormKind,
    #[arg(long, value_enum, default_value_t = BadRows::default())]
    pub bad_rows: BadRows,
    /// Stream the data instead of loading it: one pass fits the schema, then every epoch
    /// reads the training file again through a shuffle buffer, and validation reads its file
    /// keeping only predictions and labels; memory is the buffer and the vocabularies,
    /// whatever the files' sizes. Chosen anyway for a file larger than --memory-budget-mib.
    #[arg(long)]
    pub stream: bool,
    /// Rows held for shuffling while streaming. A file of fewer rows is read once and
    /// trained on exactly as in memory; a file sorted by label or by user needs a buffer
    /// large enough to mix it (see docs/DATA.md).
    #[arg(long, default_value_t = 1_000_000)]
    pub shuffle_buffer: usize,
    /// Memory the training data may take when loaded, in MiB: a larger file is streamed
    /// (gzipped files are counted at 5 times their size, Parquet at 4). Default: half the
    /// memory available.
    #[arg(long)]
    pub memory_budget_mib: Option<u64>,
}

/// The config file (if any) with the flags applied on top.
pub fn resolve_config(a: &Args) -> Result<Config> {
    let mut cfg = match &a.config {
        Some(p) => {
            let text = std::fs::read_to_string(p).with_context(|| format!("cannot read {}", p.display()))?;
            toml::from_str::<Config>(&text).with_context(|| format!("invalid config {}", p.display()))?
        }
        None => Config::default(),
    };
    if let Some(ModelArg::Plain(b)) = a.model {
        cfg.model.backbone = b;
        cfg.loss.cl = ClMode::None;
    }
    if let Some(cl) = a.cl {
        cfg.loss.cl = cl;
    }
    if let Some(e) = a.epochs {
        cfg.train.epochs = e;
    }
    if let Some(b) = a.batch_size {
        cfg.train.batch_size = b;
    }
    if let Some(lr) = a.lr {
        cfg.train.lr = lr;
    }
    if let Some(s) = a.seed {
        cfg.train.seed = s;
    }
    cfg.validate()?;
    Ok(cfg)
}

/// An explicit schema (`--schema`) from its JSON file.
pub fn read_schema_spec(path: &Path) -> Result<SchemaSpec> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("invalid schema {}", path.display()))
}

fn load_options(a: &Args) -> Result<LoadOptions> {
    let spec = a.schema.as_deref().map(read_schema_spec).transpose()?;
    Ok(LoadOptions {
        bad_rows: a.bad_rows,
        min_count: a.min_count,
        max_vocab: a.max_vocab,
        norm: a.norm,
        spec,
        ..LoadOptions::default()
    })
}

/// The training rows: loaded, or read from the file every epoch.
enum TrainData {
    Loaded(Dataset),
    Streamed(Box<Streamed<DataReader>>),
}

/// Whether `path` is to be streamed: asked for, or larger than the budget once loaded.
fn streamed(a: &Args, path: &Path) -> Result<bool> {
    if a.stream {
        return Ok(true);
    }
    let estimate = inputs::loaded_size_estimate(path)?;
    let budget = match a.memory_budget_mib {
        Some(mib) => mib << 20,
        None => available_memory().map_or(u64::MAX, |b| b / 2),
    };
    let big = estimate > budget;
    if big {
        eprintln!(
            "{} is about {} MiB loaded, over the {} MiB budget: streaming it (--memory-budget-mib sets the budget)",
            path.display(),
            estimate >> 20,
            budget >> 20
        );
    }
    Ok(big)
}

/// The memory available to new allocations (Linux: `MemAvailable`), if known.
fn available_memory() -> Option<u64> {
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = info.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib << 10)
}

fn checkpoint_path(dir: &Path) -> PathBuf {
    dir.join("checkpoint.safetensors")
}

pub fn run(a: &Args) -> Result<()> {
    #[cfg(feature = "mpi")]
    if let Some((universe, group)) = distributed::join()? {
        use mpi::traits::Communicator;
        let (rank, size, time) = (group.rank(), group.size(), group.time.clone());
        let trained = device::select(a.device).and_then(|device| {
            let (group, over) = distributed::transport(group, &device)?;
            if rank == 0 {
                eprintln!("data-parallel: {size} ranks over {over} share each batch");
            }
            train(a, device, Some(group))
        });
        return match trained {
            Ok(()) => {
                if rank == 0 {
                    let t = *time.lock().unwrap_or_else(|p| p.into_inner());
                    eprintln!("data-parallel over {size} ranks, {}", t.describe());
                }
                Ok(())
            }
            // The other ranks may be waiting in a collective: end the whole job.
            Err(e) => {
                eprintln!("error (rank {rank} of {size}): {e:#}");
                universe.world().abort(1)
            }
        };
    }
    if let Some(n) = distributed::launched_size().filter(|&n| n > 1) {
        if !cfg!(feature = "mpi") {
            bail!(
                "this process is one of {n} MPI ranks, but this adaftr was built without the `mpi` feature, so each \
                 rank would train alone; build it with `--features mpi` (see docs/DISTRIBUTED.md)"
            );
        }
    }
    train(a, device::select(a.device)?, None)
}

/// Trains alone, or as one rank of `group`; only rank 0 writes (checkpoints, metrics, the
/// bundle) and reports.
fn train(a: &Args, device: candle_core::Device, group: Option<Box<dyn Collective>>) -> Result<()> {
    let rank = group.as_ref().map_or(0, |g| g.rank());
    // The other ranks say only what goes wrong.
    macro_rules! note {
        ($($t:tt)*) => { if rank == 0 { eprintln!($($t)*) } };
    }
    let cfg = resolve_config(a)?;
    let opts = load_options(a)?;
    let ckpt = a.checkpoint_dir.as_deref().map(checkpoint_path);

    let resumed = match (&ckpt, a.resume) {
        (Some(p), true) if p.exists() => {
            let bytes = files::read_model(p)?;
            let t = Trainer::from_checkpoint(&bytes, &device)
                .with_context(|| format!("cannot resume from {}", p.display()))?;
            if *t.config() != cfg {
                bail!(
                    "the checkpoint in {} was made with a different config; resume with the same flags and config, \
                     or remove the checkpoint to start over",
                    p.display()
                );
            }
            note!(
                "resuming from {} at epoch {}, batch {}",
                p.display(),
                t.state().epoch.saturating_add(1),
                t.state().step
            );
            Some(t)
        }
        (Some(p), true) => {
            note!("no checkpoint at {} yet; starting from scratch", p.display());
            None
        }
        _ => None,
    };

    note!("config:\n{}", toml::to_string(&cfg).unwrap_or_default());
    let label = files::label(&a.train);
    let (mut trainer, mut data) = if streamed(a, &a.train)? {
        let (trainer, rows) = match resumed {
            // The checkpoint carries the schema fitted on this file and its row count.
            Some(t) if t.state().train_rows > 0 => {
                let rows = t.state().train_rows;
                (t, rows)
            }
            resumed => {
                note!("streaming {label}: fitting the schema (one pass)");
                let (schema, report) = fit_schema(inputs::open(&a.train)?, &label, &opts)?;
                super::report_skipped(&a.train, report.skipped, &report.first_errors);
                let t = match resumed {
                    Some(t) => t,
                    None => Trainer::new(cfg.clone(), schema, &device)?,
                };
                (t, report.rows)
            }
        };
        let file = CsvFile::new(inputs::opener(&a.train), &label, &opts);
        let stream = Streamed::new(file, trainer.schema(), a.shuffle_buffer, rows);
        note!("streaming {label}: {rows} rows, shuffle buffer of {} rows", a.shuffle_buffer);
        (trainer, TrainData::Streamed(Box::new(stream)))
    } else {
        let (trainer, train) = match resumed {
            Some(t) => {
                // The checkpoint carries the schema fitted on this training file; reuse it.
                let (train, report) = load_with_schema(inputs::open(&a.train)?, &label, t.schema(), &opts)?;
                super::report_skipped(&a.train, report.skipped, &report.first_errors);
                (t, train)
            }
            None => {
                let (schema, train, report) = load_train(inputs::open(&a.train)?, &label, &opts)?;
                super::report_skipped(&a.train, report.skipped, &report.first_errors);
                (Trainer::new(cfg.clone(), schema, &device)?, train)
            }
        };
        note!("data: {} training rows ({} clicks, {} conversions)", train.len(), train.clicks(), train.conversions());
        (trainer, TrainData::Loaded(train))
    };
    let mut in_memory;
    let train: &mut dyn TrainingRows = match &mut data {
        TrainData::Loaded(d) => {
            in_memory = InMemory::new(d);
            &mut in_memory
        }
        TrainData::Streamed(s) => s.as_mut(),
    };
    let (mut valid_file, mut valid_memory, loaded_valid);
    let valid: &mut dyn ValidationRows = if streamed(a, &a.valid)? {
        let valid_opts = LoadOptions { bad_rows: a.bad_rows, ..LoadOptions::default() };
        note!("validation: streamed from {} after each epoch", a.valid.display());
        valid_file = CsvFile::new(inputs::opener(&a.valid), &files::label(&a.valid), &valid_opts);
        &mut valid_file
    } else {
        loaded_valid = super::load_encoded(&a.valid, trainer.schema(), a.bad_rows)?;
        note!("validation: {} rows", loaded_valid.len());
        valid_memory = InMemory::new(&loaded_valid);
        &mut valid_memory
    };
    note!(
        "model: {} categorical fields, {} numeric; {} parameters",
        trainer.schema().num_categorical(),
        trainer.schema().num_numeric(),
        trainer.params().numel()
    );

    if let Some(g) = group {
        trainer.join(g)?;
    }

    let mut obs = TrainObserver::new(trainer.steps_per_epoch(train.rows()), cfg.train.batch_size);
    if rank == 0 {
        obs.metrics_out = a.metrics_out.clone();
        obs.checkpoint = ckpt.clone();
        obs.checkpoint_every = a.checkpoint_every;
    } else {
        obs.quiet();
    }
    let fitted = trainer.fit_rows(train, valid, &mut obs);
    obs.finish();
    if let Err(e) = fitted {
        let kept = ckpt
            .filter(|p| p.exists())
            .map_or(String::new(), |p| format!("; the last good checkpoint is {}", p.display()));
        return Err(anyhow::Error::new(e).context(format!("training stopped{kept}")));
    }

    if rank != 0 {
        return Ok(());
    }
    let mut summary = trainer.summary();
    summary.notes.insert("train".into(), files::file_name(&a.train));
    summary.notes.insert("valid".into(), files::file_name(&a.valid));
    if let (_, ranks @ 2..) = trainer.rank() {
        summary.notes.insert("data_parallel_ranks".into(), ranks.to_string());
    }
    let bytes = trainer.bundle_bytes(&summary)?;
    files::write_atomic(&a.out, &bytes)?;
    let best = summary.best_valid.as_ref();
    note!(
        "wrote {} ({} bytes): best epoch {} of {}, valid AUC ctr {} ctcvr {}",
        a.out.display(),
        bytes.len(),
        summary.best_epoch.unwrap_or(0),
        summary.epochs_run,
        best.and_then(|v| v.auc_ctr).map_or("n/a".into(), |x| format!("{x:.4}")),
        best.and_then(|v| v.auc_ctcvr).map_or("n/a".into(), |x| format!("{x:.4}")),
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: Args,
    }

    fn config_of(flags: &[&str]) -> Config {
        let argv = ["adaftr", "--train", "t.csv", "--valid", "v.csv", "--out", "m.safetensors"];
        let cli = Cli::try_parse_from(argv.iter().chain(flags)).unwrap();
        resolve_config(&cli.args).unwrap()
    }

    #[test]
    fn no_flags_train_the_default_config() {
        assert_eq!(config_of(&[]), Config::default());
        assert_eq!(config_of(&["--model", "adaftr"]), Config::default());
    }

    #[test]
    fn a_backbone_is_a_plain_baseline_unless_cl_is_given() {
        let c = config_of(&["--model", "ple"]);
        assert_eq!((c.model.backbone, c.loss.cl), (Backbone::Ple, ClMode::None));
        let c = config_of(&["--model", "single-task", "--cl", "transfer"]);
        assert_eq!((c.model.backbone, c.loss.cl), (Backbone::SingleTask, ClMode::Transfer));
        let c = config_of(&["--cl", "meta", "--epochs", "3", "--lr", "0.01"]);
        assert_eq!((c.model.backbone, c.loss.cl), (Config::default().model.backbone, ClMode::Meta));
        assert_eq!((c.train.epochs, c.train.lr), (3, 0.01));
    }

    #[test]
    fn the_options_are_cores_enums() {
        let names = |v: Vec<PossibleValue>| v.iter().map(|p| p.get_name().to_string()).collect::<Vec<_>>();
        let models = names(ModelArg::value_variants().iter().filter_map(ValueEnum::to_possible_value).collect());
        let mut expected = vec!["adaftr".to_string()];
        expected.extend(Backbone::ALL.map(|b| b.name().to_string()));
        assert_eq!(models, expected);
        let modes = names(ClMode::value_variants().iter().filter_map(ValueEnum::to_possible_value).collect());
        assert_eq!(modes, ClMode::ALL.map(|c| c.name().to_string()));
        for m in ClMode::ALL {
            assert!(m
                .to_possible_value()
                .and_then(|p| p.get_help().map(|h| h.to_string()))
                .is_some_and(|h| h.len() > 20));
        }
    }
}
