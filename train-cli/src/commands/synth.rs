//! `adaftr synth`.

use std::path::{Path, PathBuf};

use adaftr_core::data::synth::field_infos;
use adaftr_core::data::{generate, SynthConfig, World};
use anyhow::{Context, Result};

use crate::files;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Rows to generate.
    #[arg(long)]
    pub rows: usize,
    /// Seed of the sampled rows; give train, validation and test sets different seeds.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// The generative story of relatedness (docs/DATA.md describes each world).
    #[arg(long, value_enum, default_value_t = World::default())]
    pub world: World,
    /// Seed of the world (vocabularies and true functions); sets that share ground truth
    /// (train / valid / test) share it.
    #[arg(long, default_value_t = 0)]
    pub world_seed: u64,
    /// Target click rate (default: the generator's, 0.035).
    #[arg(long)]
    pub ctr: Option<f64>,
    /// Target conversions per click (default: the generator's, 0.10).
    #[arg(long)]
    pub cvr: Option<f64>,
    /// The CSV to write; the truth (true_pctr, true_pcvr, true_relatedness per row) goes
    /// beside it as `<name>.truth.csv`, and what each column means (for `adaftr describe`)
    /// as `<name>.fields.json`.
    #[arg(long)]
    pub out: PathBuf,
    /// Skip the Bayes-optimal AUCs (saves 9 bytes of memory per row).
    #[arg(long)]
    pub no_auc: bool,
}

/// `data.csv` -> `data.truth.csv`.
pub fn truth_path(out: &Path) -> PathBuf {
    beside(out, "truth.csv")
}

/// `data.csv` -> `data.fields.json`.
pub fn fields_path(out: &Path) -> PathBuf {
    beside(out, "fields.json")
}

fn beside(out: &Path, suffix: &str) -> PathBuf {
    let name = out.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let stem = name.strip_suffix(".csv").unwrap_or(&name);
    out.with_file_name(format!("{stem}.{suffix}"))
}

pub fn run(a: &Args) -> Result<()> {
    let defaults = SynthConfig::default();
    let cfg = SynthConfig {
        world: a.world,
        rows: a.rows,
        seed: a.seed,
        world_seed: a.world_seed,
        ctr: a.ctr.unwrap_or(defaults.ctr),
        cvr: a.cvr.unwrap_or(defaults.cvr),
        compute_auc: !a.no_auc,
        ..defaults
    };
    let truth = truth_path(&a.out);
    let s = generate(&cfg, files::create(&a.out)?, files::create(&truth)?)
        .with_context(|| format!("generating {}", a.out.display()))?;
    let fields = fields_path(&a.out);
    let json = serde_json::to_string_pretty(&field_infos()).context("field descriptions as JSON")?;
    files::write_atomic(&fields, format!("{json}\n").as_bytes())?;
    let f = |x: Option<f64>| x.map_or("n/a".to_string(), |v| format!("{v:.4}"));
    eprintln!(
        "wrote {} rows of world `{}` to {} ({} searches, {} clicks = {:.2}%, {} conversions = {:.1}% of clicks), the truth to {} and the fields' meanings to {}",
        s.rows,
        s.world.name(),
        a.out.display(),
        s.groups,
        s.clicks,
        100.0 * s.ctr,
        s.conversions,
        100.0 * s.cvr_given_click,
        truth.display(),
        fields.display()
    );
    if a.no_auc {
        eprintln!("mean true relatedness {:.3}", s.relatedness_mean);
    } else {
        eprintln!(
            "Bayes-optimal AUC (the true probabilities as scores): CTR {}, CVR|click {} ({} with rho at its mean), CTCVR {}; mean true relatedness {:.3}",
            f(s.auc_ctr),
            f(s.auc_cvr),
            f(s.auc_cvr_rho_bar),
            f(s.auc_ctcvr),
            s.relatedness_mean
        );
    }
    Ok(())
}
