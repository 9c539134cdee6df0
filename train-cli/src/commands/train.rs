//! `adaftr train`.

use std::path::{Path, PathBuf};

use adaftr_core::config::{Backbone, ClMode, Config};
use adaftr_core::data::{load_train, load_with_schema, LoadOptions, SchemaSpec};
use adaftr_core::schema::NormKind;
use adaftr_core::train::Trainer;
use anyhow::{bail, Context, Result};
use clap::ValueEnum;

use super::BadRowsArg;
use crate::device::{self, DeviceArg};
use crate::files;
use crate::progress::TrainObserver;

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum ModelArg {
    /// The default backbone with the AdaFTR contrastive term.
    Adaftr,
    SingleTask,
    SharedBottom,
    Esmm,
    Mmoe,
    Ple,
    Aitm,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClArg {
    Joint,
    Meta,
    Fixed,
    None,
    Transfer,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum NormArg {
    None,
    MinMax,
    Standardize,
    Log1p,
}

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Training CSV (.csv or .csv.gz); vocabularies and normalisation are fitted on it.
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
    /// `adaftr` is the config's backbone with its contrastive mode (default: shared-bottom,
    /// joint). Naming a backbone selects it as a plain baseline (`--cl none`) unless `--cl`
    /// is also given.
    #[arg(long, value_enum)]
    pub model: Option<ModelArg>,
    /// How the relatedness (InfoNCE temperature) is learned: `joint` through the contrastive
    /// loss, `meta` from the main loss after a lookahead, `fixed` one global tau; `none`
    /// drops the term.
    #[arg(long, value_enum)]
    pub cl: Option<ClArg>,
    #[arg(long)]
    pub epochs: Option<usize>,
    #[arg(long)]
    pub batch_size: Option<usize>,
    #[arg(long)]
    pub lr: Option<f64>,
    #[arg(long)]
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
    /// Normalisation of numeric features, fitted on the training split.
    #[arg(long, value_enum, default_value_t = NormArg::None)]
    pub norm: NormArg,
    #[arg(long, value_enum, default_value_t = BadRowsArg::Error)]
    pub bad_rows: BadRowsArg,
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
    if let Some(m) = a.model {
        let backbone = match m {
            ModelArg::Adaftr => None,
            ModelArg::SingleTask => Some(Backbone::SingleTask),
            ModelArg::SharedBottom => Some(Backbone::SharedBottom),
            ModelArg::Esmm => Some(Backbone::Esmm),
            ModelArg::Mmoe => Some(Backbone::Mmoe),
            ModelArg::Ple => Some(Backbone::Ple),
            ModelArg::Aitm => Some(Backbone::Aitm),
        };
        if let Some(b) = backbone {
            cfg.model.backbone = b;
            cfg.loss.cl = ClMode::None;
        }
    }
    if let Some(cl) = a.cl {
        cfg.loss.cl = match cl {
            ClArg::Joint => ClMode::Joint,
            ClArg::Meta => ClMode::Meta,
            ClArg::Fixed => ClMode::Fixed,
            ClArg::None => ClMode::None,
            ClArg::Transfer => ClMode::Transfer,
        };
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

fn load_options(a: &Args) -> Result<LoadOptions> {
    let spec = match &a.schema {
        Some(p) => {
            let text = std::fs::read_to_string(p).with_context(|| format!("cannot read {}", p.display()))?;
            Some(serde_json::from_str::<SchemaSpec>(&text).with_context(|| format!("invalid schema {}", p.display()))?)
        }
        None => None,
    };
    Ok(LoadOptions {
        bad_rows: a.bad_rows.into(),
        min_count: a.min_count,
        norm: match a.norm {
            NormArg::None => NormKind::None,
            NormArg::MinMax => NormKind::MinMax,
            NormArg::Standardize => NormKind::Standardize,
            NormArg::Log1p => NormKind::Log1p,
        },
        spec,
        ..LoadOptions::default()
    })
}

fn checkpoint_path(dir: &Path) -> PathBuf {
    dir.join("checkpoint.safetensors")
}

pub fn run(a: &Args) -> Result<()> {
    let device = device::select(a.device)?;
    let cfg = resolve_config(a)?;
    let opts = load_options(a)?;
    let ckpt = a.checkpoint_dir.as_deref().map(checkpoint_path);

    let resumed = match (&ckpt, a.resume) {
        (Some(p), true) if p.exists() => {
            let bytes = files::read_model(p)?;
            let t = Trainer::from_checkpoint(&bytes, &device)
                .with_context(|| format!("cannot resume from {}", p.display()))?;
            if t.config != cfg {
                bail!(
                    "the checkpoint in {} was made with a different config; resume with the same flags and config, \
                     or remove the checkpoint to start over",
                    p.display()
                );
            }
            eprintln!(
                "resuming from {} at epoch {}, batch {}",
                p.display(),
                t.state.epoch.saturating_add(1),
                t.state.step
            );
            Some(t)
        }
        (Some(p), true) => {
            eprintln!("no checkpoint at {} yet; starting from scratch", p.display());
            None
        }
        _ => None,
    };

    eprintln!("config:\n{}", toml::to_string(&cfg).unwrap_or_default());
    let (mut trainer, train) = match resumed {
        Some(t) => {
            // The checkpoint carries the schema fitted on this training file; reuse it.
            let (train, report) = load_with_schema(files::open(&a.train)?, &files::label(&a.train), &t.schema, &opts)?;
            super::report_skipped(&a.train, report.skipped, &report.first_errors);
            (t, train)
        }
        None => {
            let (schema, train, report) = load_train(files::open(&a.train)?, &files::label(&a.train), &opts)?;
            super::report_skipped(&a.train, report.skipped, &report.first_errors);
            (Trainer::new(cfg.clone(), schema, &device)?, train)
        }
    };
    let valid = super::load_encoded(&a.valid, &trainer.schema, a.bad_rows.into())?;
    eprintln!(
        "data: {} training rows ({} clicks, {} conversions), {} validation rows; {} categorical fields, {} numeric; {} parameters",
        train.len(),
        train.clicks(),
        train.conversions(),
        valid.len(),
        trainer.schema.num_categorical(),
        trainer.schema.num_numeric(),
        trainer.params.numel()
    );

    let mut obs = TrainObserver::new(trainer.steps_per_epoch(train.len()), cfg.train.batch_size);
    obs.metrics_out = a.metrics_out.clone();
    obs.checkpoint = ckpt.clone();
    obs.checkpoint_every = a.checkpoint_every;
    let fitted = trainer.fit(&train, &valid, &mut obs);
    obs.finish();
    if let Err(e) = fitted {
        let kept = ckpt
            .filter(|p| p.exists())
            .map_or(String::new(), |p| format!("; the last good checkpoint is {}", p.display()));
        return Err(anyhow::Error::new(e).context(format!("training stopped{kept}")));
    }

    let mut summary = trainer.summary();
    summary.notes.insert("train".into(), files::file_name(&a.train));
    summary.notes.insert("valid".into(), files::file_name(&a.valid));
    let bytes = trainer.bundle_bytes(&summary)?;
    files::write_atomic(&a.out, &bytes)?;
    let best = summary.best_valid.as_ref();
    eprintln!(
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
