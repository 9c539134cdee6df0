//! Ground-truth generator: AliExpress-layout data whose true click and conversion
//! probabilities and per-instance task relatedness are known.
//!
//! Real logs cannot tell us whether a model's per-instance relatedness means anything, so
//! this writes data from known stories (docs/DATA.md, "Generator"): clicks and
//! conversions-after-click come from non-linear functions of the features, and the
//! conversion logit mixes a part shared with the click task and a part of its own, the
//! shared part weighted by rho(x) in [0, 1]. The worlds (`story.rs`) differ in what is
//! shared and in what decides rho.
//!
//! Output is streamed row by row (any row count), deterministic from the seed and the same
//! bytes on every platform (`math.rs`), and each data row has a truth row
//! `true_pctr,true_pcvr,true_relatedness`.
//!
//! - `catalogue`: the feature layout and how features are drawn (the same in every world);
//! - `story`: the worlds' click, conversion and relatedness functions;
//! - `calibrate`: standardising the signals and solving the bases for the target rates;
//! - `write`: the CSV and truth lines, and the scores for the Bayes AUCs;
//! - `fields`: what each column means, for people (labels, descriptions, groups).

mod calibrate;
mod catalogue;
mod fields;
mod math;
mod story;
mod write;

use std::io::{BufWriter, Write};

use serde::{Deserialize, Serialize};

use super::format::SchemaSpec;
use crate::error::{Error, Result};
use crate::rng::Rng;
use calibrate::calibrate;
use catalogue::{Catalogue, Features};
pub use fields::field_infos;
pub use story::World;
use write::{RowWriter, Scores};

/// What to generate.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct SynthConfig {
    /// The generative story of relatedness (`story.rs`, docs/DATA.md).
    pub world: World,
    /// Data rows (impressions).
    pub rows: usize,
    /// Seed of the sampled rows. Train, validation and test sets take different seeds.
    pub seed: u64,
    /// Seed of the "world": vocabularies, feature effects and the true click, conversion and
    /// relatedness functions. Sets that must share ground truth (train / valid / test)
    /// share it; by default every set does.
    pub world_seed: u64,
    /// Mean rows per search (`search_id`); sizes are uniform on [1, 2 * mean - 1].
    pub mean_group_size: f64,
    /// Target click rate over all rows (calibrated, so met up to sampling noise).
    pub ctr: f64,
    /// Target conversions per click.
    pub cvr: f64,
    /// Standard deviation of the click logit around its base (higher = easier CTR).
    pub click_strength: f64,
    /// Standard deviation of the conversion logit's feature signal.
    pub cvr_strength: f64,
    /// Weight of the shared click signal against the independent conversion signal.
    pub alpha: f64,
    /// Standard deviation of rho's logit: larger spreads rho towards 0 and 1.
    pub relatedness_spread: f64,
    /// Standard deviation of a conversion effect per (user segment, item) pair: observable
    /// in principle, but too sparse to learn; it keeps the task from being too easy.
    pub pair_noise: f64,
    /// Compute the Bayes-optimal AUCs (keeps 9 bytes per row in memory; see docs/DATA.md).
    pub compute_auc: bool,
}

impl Default for SynthConfig {
    fn default() -> Self {
        Self {
            world: World::Logit,
            rows: 100_000,
            seed: 1,
            world_seed: 0,
            mean_group_size: 8.0,
            ctr: 0.035,
            cvr: 0.10,
            click_strength: 1.0,
            cvr_strength: 1.3,
            alpha: 1.0,
            relatedness_spread: 1.7,
            pair_noise: 0.3,
            compute_auc: true,
        }
    }
}

impl SynthConfig {
    fn validate(&self) -> Result<()> {
        let bad = |what: &str| Err(Error::Config(format!("synth: {what}")));
        let finite_nonneg = |x: f64| x.is_finite() && x >= 0.0;
        if !(self.ctr > 0.0 && self.ctr < 1.0) {
            return bad("ctr must be in (0, 1)");
        }
        if !(self.cvr > 0.0 && self.cvr < 1.0) {
            return bad("cvr must be in (0, 1)");
        }
        if !(self.mean_group_size.is_finite() && self.mean_group_size >= 1.0 && self.mean_group_size <= 1e6) {
            return bad("mean_group_size must be in [1, 1e6]");
        }
        for (name, x) in [
            ("click_strength", self.click_strength),
            ("cvr_strength", self.cvr_strength),
            ("alpha", self.alpha),
            ("relatedness_spread", self.relatedness_spread),
            ("pair_noise", self.pair_noise),
        ] {
            if !finite_nonneg(x) || x > 100.0 {
                return bad(&format!("{name} must be in [0, 100]"));
            }
        }
        Ok(())
    }
}

/// What was generated, with the Bayes-optimal AUCs (the best any model can score on this
/// set in expectation).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct SynthSummary {
    pub world: World,
    pub rows: usize,
    pub groups: usize,
    pub clicks: usize,
    pub conversions: usize,
    pub ctr: f64,
    /// Conversions per click.
    pub cvr_given_click: f64,
    /// AUC of the true pCTR against clicks, all rows.
    pub auc_ctr: Option<f64>,
    /// AUC of the true pCVR against conversions, clicked rows.
    pub auc_cvr: Option<f64>,
    /// AUC of the true pCTR * pCVR against conversions, all rows.
    pub auc_ctcvr: Option<f64>,
    /// CVR AUC on clicked rows of the true model with rho replaced by its click-weighted
    /// mean: the gap to `auc_cvr` is what knowing the per-row relatedness is worth.
    #[serde(default)]
    pub auc_cvr_rho_bar: Option<f64>,
    pub relatedness_mean: f64,
    /// Rows per tenth of [0, 1] of the true relatedness.
    pub relatedness_histogram: Vec<u64>,
    /// The calibrated click and conversion logit bases.
    pub click_base: f64,
    pub cvr_base: f64,
}

/// Writes `cfg.rows` AliExpress-layout rows to `csv` (header included) and one truth row
/// per data row to `truth` (header `true_pctr,true_pcvr,true_relatedness`). Both writers
/// are buffered here; the same config gives the same bytes.
pub fn generate<W: Write, T: Write>(cfg: &SynthConfig, csv: W, truth: T) -> Result<SynthSummary> {
    cfg.validate()?;
    let mut world_rng = Rng::derive(cfg.world_seed, 1);
    let catalogue = Catalogue::new(&mut world_rng);
    let story = story::Story::new(cfg.world, cfg.world_seed, &mut world_rng);
    let cal = calibrate(&catalogue, &story, cfg);
    let mut csv = BufWriter::with_capacity(1 << 20, csv);
    let mut truth_out = BufWriter::with_capacity(1 << 18, truth);
    let csv_err = io_error("synthetic data output");
    let truth_err = io_error("synthetic truth output");

    csv.write_all(SchemaSpec::aliexpress_header().join(",").as_bytes()).map_err(&csv_err)?;
    csv.write_all(b"\n").map_err(&csv_err)?;
    truth_out.write_all(b"true_pctr,true_pcvr,true_relatedness\n").map_err(&truth_err)?;

    let mut rng = Rng::derive(cfg.seed, 3);
    let mut x = Features::new();
    let mut out = RowWriter::new();
    let mut scores = Scores::default();
    let (mut clicks, mut conversions, mut groups) = (0usize, 0usize, 0usize);
    let mut rho_sum = 0.0;
    let mut histogram = vec![0u64; 10];
    let group_span = (2.0 * (cfg.mean_group_size - 1.0)).round() as u64 + 1;

    let mut row = 0usize;
    while row < cfg.rows {
        groups += 1;
        let size = 1 + rng.below(group_span) as usize;
        catalogue.sample_user(&mut rng, &mut x);
        for _ in 0..size.min(cfg.rows - row) {
            catalogue.sample_item(&mut rng, &mut x);
            let t = cal.truth(&story.raw(&x), cfg);
            // Two draws per row whatever the outcome, so the stream layout is fixed.
            let (u_click, u_conv) = (rng.next_f64(), rng.next_f64());
            let click = u_click < t.pctr;
            let conversion = click && u_conv < t.pcvr;
            out.row(&catalogue, groups as u64, &x, click, conversion);
            csv.write_all(&out.line).map_err(&csv_err)?;
            out.truth(&t);
            truth_out.write_all(&out.truth).map_err(&truth_err)?;

            clicks += click as usize;
            conversions += conversion as usize;
            rho_sum += t.rho;
            histogram[((t.rho * 10.0) as usize).min(9)] += 1;
            if cfg.compute_auc {
                scores.push(&t, click, conversion);
            }
            row += 1;
        }
    }
    csv.flush().map_err(&csv_err)?;
    truth_out.flush().map_err(&truth_err)?;

    let aucs = if cfg.compute_auc {
        scores.aucs()
    } else {
        write::BayesAucs { ctr: None, cvr: None, ctcvr: None, cvr_rho_bar: None }
    };
    let rows = cfg.rows;
    Ok(SynthSummary {
        world: story.world(),
        rows,
        groups,
        clicks,
        conversions,
        ctr: clicks as f64 / rows.max(1) as f64,
        cvr_given_click: conversions as f64 / clicks.max(1) as f64,
        auc_ctr: aucs.ctr,
        auc_cvr: aucs.cvr,
        auc_ctcvr: aucs.ctcvr,
        auc_cvr_rho_bar: aucs.cvr_rho_bar,
        relatedness_mean: rho_sum / rows.max(1) as f64,
        relatedness_histogram: histogram,
        click_base: cal.click_base,
        cvr_base: cal.cvr_base,
    })
}

fn io_error(what: &str) -> impl Fn(std::io::Error) -> Error + '_ {
    move |source| Error::Io { file: what.to_string(), source }
}

#[cfg(test)]
mod tests {
    use super::*;
    use math::mean_sd;

    fn corr(a: &[f64], b: &[f64]) -> f64 {
        let (ma, sa) = mean_sd(a.iter().copied());
        let (mb, sb) = mean_sd(b.iter().copied());
        a.iter().zip(b).map(|(x, y)| (x - ma) * (y - mb)).sum::<f64>() / a.len() as f64 / (sa * sb)
    }

    fn raws(world: World) -> Vec<story::Raw> {
        let mut world_rng = Rng::derive(4, 1);
        let catalogue = Catalogue::new(&mut world_rng);
        let story = story::Story::new(world, 4, &mut world_rng);
        let mut rng = Rng::new(5);
        let mut x = Features::new();
        (0..5000)
            .map(|_| {
                catalogue.sample_user(&mut rng, &mut x);
                catalogue.sample_item(&mut rng, &mut x);
                story.raw(&x)
            })
            .collect()
    }

    /// Each story assumes its own conversion part and its relatedness are (nearly)
    /// uncorrelated with the click and with each other, so that rho alone sets how much
    /// conversion follows the click task; the shared part overlaps with the click
    /// (entirely in `logit`, partly elsewhere).
    #[test]
    fn signals_are_nearly_uncorrelated_in_every_world() {
        for world in World::ALL {
            let raws = raws(world);
            let col = |f: fn(&story::Raw) -> f64| raws.iter().map(f).collect::<Vec<f64>>();
            let (click, shared, own) = (col(|r| r.click), col(|r| r.shared), col(|r| r.own));
            let mut pairs = vec![("click-own", corr(&click, &own)), ("shared-own", corr(&shared, &own))];
            if world != World::Constant {
                let rho = col(|r| r.rho.unwrap());
                pairs.extend([
                    ("click-rho", corr(&click, &rho)),
                    ("shared-rho", corr(&shared, &rho)),
                    ("own-rho", corr(&own, &rho)),
                ]);
            } else {
                assert!(raws.iter().all(|r| r.rho.is_none()));
            }
            for (name, c) in pairs {
                assert!(c.abs() < 0.2, "{}: {name} {c}", world.name());
            }
            let overlap = corr(&click, &shared);
            if world == World::Logit {
                assert_eq!(overlap, 1.0);
            } else {
                assert!((0.2..0.8).contains(&overlap), "{}: click-shared {overlap}", world.name());
            }
        }
    }

    #[test]
    fn bad_configs_are_rejected() {
        for cfg in [
            SynthConfig { ctr: 0.0, ..Default::default() },
            SynthConfig { cvr: 1.0, ..Default::default() },
            SynthConfig { mean_group_size: 0.5, ..Default::default() },
            SynthConfig { alpha: f64::NAN, ..Default::default() },
        ] {
            assert!(matches!(generate(&cfg, Vec::new(), Vec::new()), Err(Error::Config(_))));
        }
    }
}
