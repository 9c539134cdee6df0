//! `adaftr eval`: the metrics of a bundle on a labelled CSV, read a chunk at a time.

use std::path::PathBuf;

use adaftr_core::data::LoadOptions;
use adaftr_core::evaluate::{fraction_near_bounds, score_reader, tau_rank_correlation, Evaluation};
use anyhow::{bail, Result};
use serde_json::json;

use super::ModelArgs;
use crate::files;
use crate::inputs;

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    pub model: ModelArgs,
    /// Labelled CSV in the model's format: its feature columns and both label columns
    /// (other columns are ignored).
    #[arg(long)]
    pub data: PathBuf,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    pub json: bool,
    /// The generator's truth file for --data (`adaftr synth` writes it beside the CSV): adds
    /// the rank correlation between predicted tau and the true relatedness.
    #[arg(long)]
    pub truth: Option<PathBuf>,
}

pub fn run(a: &Args) -> Result<()> {
    let b = a.model.load()?;
    // Streamed: only predictions and labels are held, so a file of any size evaluates.
    let opts = LoadOptions { bad_rows: a.model.bad_rows, ..LoadOptions::default() };
    let scored = score_reader(
        &b.model,
        inputs::open(&a.data)?,
        &files::label(&a.data),
        &b.schema,
        &opts,
        a.model.batch_size,
        &b.device,
    )?;
    super::report_skipped(&a.data, scored.report.skipped, &scored.report.first_errors);
    let (p, ds) = (scored.predictions, scored.labels);
    let e = Evaluation::compute(&p, &ds);
    let spearman = match &a.truth {
        Some(t) => {
            let truth = super::read_truth(t)?;
            if truth.relatedness.len() != ds.len() {
                bail!("{} has {} rows but {} has {}", t.display(), truth.relatedness.len(), a.data.display(), ds.len());
            }
            tau_rank_correlation(&p.tau, &truth.relatedness)
        }
        None => None,
    };
    if a.json {
        let tau = e.tau;
        let mut out = json!({
            "auc_ctr": e.auc_ctr, "auc_cvr": e.auc_cvr, "auc_ctcvr": e.auc_ctcvr,
            "logloss_ctr": e.logloss_ctr, "logloss_cvr": e.logloss_cvr, "logloss_ctcvr": e.logloss_ctcvr,
            "rows": e.rows, "clicks": e.clicks, "conversions": e.conversions,
            "tau_mean": tau.map(|t| t.mean), "tau_p5": tau.map(|t| t.p5),
            "tau_p50": tau.map(|t| t.p50), "tau_p95": tau.map(|t| t.p95),
            "gauc_ctr": e.gauc_ctr,
        });
        if a.truth.is_some() {
            out["tau_spearman"] = json!(spearman);
        }
        if !p.tau.is_empty() {
            let c = &b.config.model;
            out["tau_near_bounds"] = json!(fraction_near_bounds(&p.tau, c.tau_min, c.tau_max, 0.01));
        }
        println!("{out}");
        return Ok(());
    }
    let f = |x: Option<f64>| x.map_or("n/a".to_string(), |v| format!("{v:.4}"));
    println!("{}: {} rows, {} clicks, {} conversions", a.data.display(), e.rows, e.clicks, e.conversions);
    println!("           AUC      logloss");
    println!("CTR        {:<8} {}", f(e.auc_ctr), f(e.logloss_ctr));
    println!("CVR|click  {:<8} {}", f(e.auc_cvr), f(e.logloss_cvr));
    println!("CTCVR      {:<8} {}", f(e.auc_ctcvr), f(e.logloss_ctcvr));
    if e.gauc_ctr.is_some() {
        println!("CTR GAUC   {}", f(e.gauc_ctr));
    }
    match e.tau {
        Some(t) => println!(
            "tau        mean {:.4}  p5 {:.4}  p50 {:.4}  p95 {:.4}  ({:.1}% within 1% of a bound)",
            t.mean,
            t.p5,
            t.p50,
            t.p95,
            100.0 * fraction_near_bounds(&p.tau, b.config.model.tau_min, b.config.model.tau_max, 0.01)
        ),
        None => println!("tau        (this model has no contrastive term)"),
    }
    if a.truth.is_some() {
        println!("tau vs true relatedness: Spearman {}", f(spearman));
    }
    Ok(())
}
