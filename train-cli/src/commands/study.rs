//! `adaftr study`: a grid of model variants x seeds, trained in-process on the same data,
//! scored on a held-out test set against the generator's truth.
//!
//! Each variant is a partial config (TOML) merged over the base config: the built-in
//! defaults, then the grid's own `[base]` table (the settings the grid was written against,
//! so that it still means the same runs after a default changes), then `--config`. Every run is
//! appended to `--out` as a JSON line as soon as it ends, so a long study can be inspected
//! while it runs, and the summary (mean and standard deviation per variant) is printed and
//! written as a Markdown table.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

use adaftr_core::config::Config;
use adaftr_core::data::{BadRows, Dataset};
use adaftr_core::evaluate::{fraction_near_bounds, predict, tau_rank_correlation, Evaluation};
use adaftr_core::metrics::{auc, mean_std, quantile};
use adaftr_core::train::{Observer, Trainer};
use anyhow::{bail, Context, Result};
use serde::Deserialize;
use serde_json::json;

use super::{read_truth, Truth};
use crate::device::{self, DeviceArg};
use crate::files;
use crate::inputs;

#[derive(clap::Args, Debug)]
pub struct Args {
    #[arg(long)]
    pub train: PathBuf,
    #[arg(long)]
    pub valid: PathBuf,
    /// Held-out test set, never used for training or early stopping.
    #[arg(long)]
    pub test: PathBuf,
    /// The test set's truth file (for tau vs true relatedness and the Bayes-optimal AUCs).
    #[arg(long)]
    pub truth: Option<PathBuf>,
    /// TOML file with `[[variant]]` entries (`name` and a partial `config` table) and an
    /// optional `[base]` table that every variant starts from.
    #[arg(long)]
    pub grid: PathBuf,
    /// Base config the variants override, over the grid's `[base]` (default: the built-in
    /// defaults, docs/MODEL.md).
    #[arg(long)]
    pub config: Option<PathBuf>,
    #[arg(long, default_value_t = 3)]
    pub seeds: u64,
    /// Seeds are seed_base, seed_base + 1, ...
    #[arg(long, default_value_t = 1)]
    pub seed_base: u64,
    /// Only the variants whose name contains this.
    #[arg(long)]
    pub only: Option<String>,
    /// Per-run results as JSON lines (appended).
    #[arg(long)]
    pub out: PathBuf,
    /// The summary table as Markdown.
    #[arg(long)]
    pub markdown: Option<PathBuf>,
    /// Also draw the study's PNG plots into this folder (as `adaftr plot` does).
    #[arg(long)]
    pub plots: Option<PathBuf>,
    #[arg(long, value_enum, default_value_t = DeviceArg::Cpu)]
    pub device: DeviceArg,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Grid {
    /// Partial config under every variant, e.g. the defaults of the day the grid was written.
    #[serde(default)]
    base: toml::Table,
    variant: Vec<Variant>,
}

#[derive(Deserialize, Clone)]
#[serde(deny_unknown_fields)]
struct Variant {
    name: String,
    #[serde(default)]
    config: toml::Table,
}

/// Overlays `over` onto `base`, recursing into tables.
fn merge(base: &mut toml::Table, over: &toml::Table) {
    for (k, v) in over {
        match (base.get_mut(k), v) {
            (Some(toml::Value::Table(b)), toml::Value::Table(o)) => merge(b, o),
            _ => {
                base.insert(k.clone(), v.clone());
            }
        }
    }
}

fn variant_config(base: &toml::Table, v: &Variant, seed: u64) -> Result<Config> {
    let mut t = base.clone();
    merge(&mut t, &v.config);
    let mut cfg: Config =
        toml::Value::Table(t).try_into().with_context(|| format!("variant `{}`: invalid config", v.name))?;
    cfg.train.seed = seed;
    cfg.validate().with_context(|| format!("variant `{}`", v.name))?;
    Ok(cfg)
}

/// One line per epoch on stderr, so that tau's trajectory is visible during a study.
struct EpochLog<'a>(&'a str, u64);
impl Observer for EpochLog<'_> {
    fn on_epoch(
        &mut self,
        _t: &Trainer,
        r: &adaftr_core::bundle::EpochRecord,
        improved: bool,
    ) -> adaftr_core::Result<()> {
        let v = &r.valid;
        let tau = v.tau.map_or(String::new(), |t| format!(" tau p5 {:.3} p50 {:.3} p95 {:.3}", t.p5, t.p50, t.p95));
        eprintln!(
            "  [{} seed {}] epoch {}: loss {:.4} valid ctr {:.4} cvr {:.4} ctcvr {:.4}{tau}{}",
            self.0,
            self.1,
            r.epoch,
            r.train_loss,
            v.auc_ctr.unwrap_or(f64::NAN),
            v.auc_cvr.unwrap_or(f64::NAN),
            v.auc_ctcvr.unwrap_or(f64::NAN),
            if improved { " *" } else { "" }
        );
        Ok(())
    }
}

fn bayes_aucs(truth: &Truth, test: &Dataset) -> [Option<f64>; 3] {
    let n = test.len();
    let click: Vec<bool> = (0..n).map(|i| test.click.get(i)).collect();
    let conv: Vec<bool> = (0..n).map(|i| test.conversion.get(i)).collect();
    let clicked: Vec<usize> = (0..n).filter(|&i| click[i]).collect();
    let pcvr: Vec<f64> = clicked.iter().map(|&i| truth.pcvr[i]).collect();
    let conv_c: Vec<bool> = clicked.iter().map(|&i| conv[i]).collect();
    let pctcvr: Vec<f64> = (0..n).map(|i| truth.pctr[i] * truth.pcvr[i]).collect();
    [auc(&truth.pctr, &click), auc(&pcvr, &conv_c), auc(&pctcvr, &conv)]
}

/// Bins of the tau histogram kept per run (over [tau_min, tau_max]) for the plots.
const TAU_BINS: usize = 40;
/// Groups of equal size by true relatedness for the tau-vs-relatedness curve.
const RHO_GROUPS: usize = 10;

fn tau_histogram(tau: &[f32], lo: f64, hi: f64) -> Vec<u64> {
    let mut counts = vec![0u64; TAU_BINS];
    for &t in tau {
        let b = ((t as f64 - lo) / (hi - lo) * TAU_BINS as f64).floor();
        counts[(b.max(0.0) as usize).min(TAU_BINS - 1)] += 1;
    }
    counts
}

/// Test instances sorted by true relatedness and cut into equal groups: per group the mean
/// relatedness and the mean, 25th and 75th percentile of the predicted tau.
fn tau_by_relatedness(tau: &[f32], rho: &[f64]) -> Vec<serde_json::Value> {
    let mut idx: Vec<usize> = (0..tau.len().min(rho.len())).collect();
    idx.sort_by(|&a, &b| rho[a].total_cmp(&rho[b]));
    let n = idx.len();
    (0..RHO_GROUPS)
        .filter_map(|g| {
            let part = &idx[g * n / RHO_GROUPS..(g + 1) * n / RHO_GROUPS];
            if part.is_empty() {
                return None;
            }
            let mut t: Vec<f64> = part.iter().map(|&i| tau[i] as f64).collect();
            t.sort_by(f64::total_cmp);
            let mean = |v: &mut dyn Iterator<Item = f64>| v.sum::<f64>() / part.len() as f64;
            Some(json!({
                "rho": mean(&mut part.iter().map(|&i| rho[i])),
                "tau_mean": mean(&mut t.iter().copied()),
                "tau_p25": quantile(&t, 0.25), "tau_p75": quantile(&t, 0.75),
            }))
        })
        .collect()
}

const METRICS: [&str; 7] = ["auc_ctr", "auc_cvr", "auc_ctcvr", "tau_spearman", "tau_near_bounds", "tau_p50", "epochs"];

pub fn run(a: &Args) -> Result<()> {
    let device = device::select(a.device)?;
    let grid: Grid =
        toml::from_str(&std::fs::read_to_string(&a.grid).with_context(|| format!("cannot read {}", a.grid.display()))?)
            .with_context(|| format!("invalid grid {}", a.grid.display()))?;
    let mut base = grid.base;
    if let Some(p) = &a.config {
        let over: toml::Table =
            toml::from_str(&std::fs::read_to_string(p).with_context(|| format!("cannot read {}", p.display()))?)
                .with_context(|| format!("invalid config {}", p.display()))?;
        merge(&mut base, &over);
    }
    let variants: Vec<Variant> =
        grid.variant.into_iter().filter(|v| a.only.as_ref().is_none_or(|o| v.name.contains(o.as_str()))).collect();
    if variants.is_empty() {
        bail!("no variant to run");
    }
    for v in &variants {
        variant_config(&base, v, 0)?; // fail fast on a bad variant
    }

    let opts = adaftr_core::data::LoadOptions { bad_rows: BadRows::Error, ..Default::default() };
    let (schema, train, _) = adaftr_core::data::load_train(inputs::open(&a.train)?, &files::label(&a.train), &opts)?;
    let valid = super::load_encoded(&a.valid, &schema, BadRows::Error)?;
    let test = super::load_encoded(&a.test, &schema, BadRows::Error)?;
    let truth = a.truth.as_ref().map(|p| read_truth(p)).transpose()?;
    if let Some(t) = &truth {
        if t.relatedness.len() != test.len() {
            bail!("the truth file has {} rows, the test set {}", t.relatedness.len(), test.len());
        }
    }
    let bayes = truth.as_ref().map(|t| bayes_aucs(t, &test));
    eprintln!(
        "study: {} variants x {} seeds; {} train, {} valid, {} test rows",
        variants.len(),
        a.seeds,
        train.len(),
        valid.len(),
        test.len()
    );

    let mut out = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&a.out)
        .with_context(|| format!("cannot open {}", a.out.display()))?;
    let mut summary: Vec<(String, Vec<serde_json::Value>)> = Vec::new();
    for v in &variants {
        let mut runs = Vec::new();
        for s in 0..a.seeds {
            let seed = a.seed_base + s;
            let cfg = variant_config(&base, v, seed)?;
            let start = Instant::now();
            let mut trainer = Trainer::new(cfg.clone(), schema.clone(), &device)?;
            trainer.fit(&train, &valid, &mut EpochLog(&v.name, seed))?;
            let p = predict(trainer.model(), &test, 8192, &device)?;
            let e = Evaluation::compute(&p, &test);
            let spearman = truth.as_ref().and_then(|t| tau_rank_correlation(&p.tau, &t.relatedness));
            let near =
                (!p.tau.is_empty()).then(|| fraction_near_bounds(&p.tau, cfg.model.tau_min, cfg.model.tau_max, 0.01));
            let (lo, hi) = (cfg.model.tau_min as f64, cfg.model.tau_max as f64);
            let tau_hist =
                (!p.tau.is_empty()).then(|| json!({"lo": lo, "hi": hi, "counts": tau_histogram(&p.tau, lo, hi)}));
            let tau_by_rho =
                truth.as_ref().filter(|_| !p.tau.is_empty()).map(|t| tau_by_relatedness(&p.tau, &t.relatedness));
            let line = json!({
                "variant": v.name, "seed": seed, "seconds": start.elapsed().as_secs_f64(),
                "epochs": trainer.state().history.len(), "best_epoch": trainer.state().best_epoch,
                "auc_ctr": e.auc_ctr, "auc_cvr": e.auc_cvr, "auc_ctcvr": e.auc_ctcvr,
                "logloss_ctr": e.logloss_ctr, "logloss_cvr": e.logloss_cvr, "logloss_ctcvr": e.logloss_ctcvr,
                "tau_mean": e.tau.map(|t| t.mean), "tau_p5": e.tau.map(|t| t.p5), "tau_p50": e.tau.map(|t| t.p50),
                "tau_p95": e.tau.map(|t| t.p95), "tau_spearman": spearman, "tau_near_bounds": near,
                "tau_hist": tau_hist, "tau_by_rho": tau_by_rho,
                "bayes_auc": bayes.map(|[c, v, cv]| json!({"ctr": c, "cvr": v, "ctcvr": cv})),
                "config": cfg,
            });
            writeln!(out, "{line}")?;
            out.flush()?;
            eprintln!(
                "[{} seed {seed}] test AUC ctr {:.4} cvr {:.4} ctcvr {:.4}; tau spearman {}; near bounds {} ({:.0}s)",
                v.name,
                e.auc_ctr.unwrap_or(f64::NAN),
                e.auc_cvr.unwrap_or(f64::NAN),
                e.auc_ctcvr.unwrap_or(f64::NAN),
                spearman.map_or("-".into(), |x| format!("{x:+.3}")),
                near.map_or("-".into(), |x| format!("{:.1}%", 100.0 * x)),
                start.elapsed().as_secs_f64()
            );
            runs.push(line);
        }
        summary.push((v.name.clone(), runs));
    }

    let mut md = String::new();
    if let Some([c, v, cv]) = bayes {
        let f = |x: Option<f64>| x.map_or("n/a".into(), |x| format!("{x:.4}"));
        md += &format!("Bayes-optimal test AUC: CTR {}, CVR {}, CTCVR {}\n\n", f(c), f(v), f(cv));
    }
    md += &format!("| variant | n | {} |\n|---|---|{}\n", METRICS.join(" | "), "---|".repeat(METRICS.len()));
    for (name, runs) in &summary {
        let cells: Vec<String> = METRICS
            .iter()
            .map(|m| {
                let xs: Vec<f64> = runs.iter().filter_map(|r| r[*m].as_f64()).collect();
                if xs.is_empty() {
                    return "-".into();
                }
                let (mean, std) = mean_std(&xs);
                if *m == "epochs" {
                    format!("{mean:.1}")
                } else {
                    format!("{mean:.4} ± {std:.4}")
                }
            })
            .collect();
        md += &format!("| {name} | {} | {} |\n", runs.len(), cells.join(" | "));
    }
    println!("{md}");
    if let Some(p) = &a.markdown {
        std::fs::write(p, &md).with_context(|| format!("cannot write {}", p.display()))?;
    }
    if let Some(dir) = &a.plots {
        let runs: Vec<serde_json::Value> = summary.into_iter().flat_map(|(_, r)| r).collect();
        for p in super::plot::write_all(&runs, dir)? {
            eprintln!("wrote {}", p.display());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use adaftr_core::config::{Backbone, ClMode};

    /// A grid's `[base]` pins the settings it was written against; a variant and `--config`
    /// still override it.
    #[test]
    fn the_grid_base_sits_under_the_config_file_and_each_variant() {
        let grid: Grid = toml::from_str(
            "[base]\nmodel.backbone = \"shared-bottom\"\nloss.cl = \"transfer\"\ntrain.epochs = 4\n\n\
             [[variant]]\nname = \"a\"\n\n[[variant]]\nname = \"b\"\nconfig.loss.cl = \"none\"\n",
        )
        .unwrap();
        let mut base = grid.base.clone();
        merge(&mut base, &toml::from_str("[train]\nepochs = 2\n").unwrap());
        let a = variant_config(&base, &grid.variant[0], 7).unwrap();
        assert_eq!(
            (a.model.backbone, a.loss.cl, a.train.epochs, a.train.seed),
            (Backbone::SharedBottom, ClMode::Transfer, 2, 7)
        );
        let b = variant_config(&base, &grid.variant[1], 7).unwrap();
        assert_eq!((b.model.backbone, b.loss.cl), (Backbone::SharedBottom, ClMode::None));
        let plain: Grid = toml::from_str("[[variant]]\nname = \"c\"\n").unwrap();
        assert_eq!(variant_config(&plain.base, &plain.variant[0], 1).unwrap().model, Config::default().model);
    }

    /// Every grid shipped in `study/` parses and every variant resolves to a valid config.
    #[test]
    fn every_shipped_grid_resolves() {
        let dir = std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../study"));
        let mut grids = 0;
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            if path.extension().is_none_or(|e| e != "toml") || !text.contains("[[variant]]") {
                continue;
            }
            let grid: Grid = toml::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            for v in &grid.variant {
                variant_config(&grid.base, v, 1).unwrap_or_else(|e| panic!("{} `{}`: {e:#}", path.display(), v.name));
            }
            grids += 1;
        }
        assert!(grids >= 6, "found {grids} grids");
    }
}
