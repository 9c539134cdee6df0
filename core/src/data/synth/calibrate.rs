//! Standardising a world's raw signals and solving the click and conversion bases for the
//! target rates, on calibration rows drawn from their own stream.

use super::catalogue::{Catalogue, Features};
use super::math::{bisect, mean_sd, sigmoid};
use super::story::{Raw, Story};
use super::SynthConfig;
use crate::rng::Rng;

/// Calibration rows drawn to standardise the signals and solve the bases.
const CALIBRATION_ROWS: usize = 20_000;

#[derive(Clone, Copy)]
pub(super) struct Calibration {
    click: (f64, f64),
    shared: (f64, f64),
    own: (f64, f64),
    rho: (f64, f64),
    pub click_base: f64,
    pub cvr_base: f64,
    /// The click-weighted mean rho: what a model that ignores relatedness can at best use.
    pub rho_bar: f64,
}

/// A row's true probabilities and relatedness.
#[derive(Clone, Copy)]
pub(super) struct Truth {
    pub pctr: f64,
    pub pcvr: f64,
    pub rho: f64,
    /// pCVR with rho replaced by `rho_bar` (for the value of knowing relatedness).
    pub pcvr_rho_bar: f64,
}

/// The conversion logit without its base: a mix of the standardised shared signal `s` and
/// the own signal `i` with weights alpha*rho and 1-rho, rescaled to unit standard deviation
/// (for uncorrelated s and i) so that rho changes what conversion depends on, not how
/// predictable it is.
fn cvr_signal(s: f64, i: f64, rho: f64, pair: f64, cfg: &SynthConfig) -> f64 {
    let (ws, wi) = (cfg.alpha * rho, 1.0 - rho);
    let norm = (ws * ws + wi * wi).sqrt().max(1e-9);
    cfg.cvr_strength * (ws * s + wi * i) / norm + cfg.pair_noise * pair
}

/// Constant-relatedness worlds take this rho.
const CONSTANT_RHO: f64 = 0.5;

impl Calibration {
    fn standard((mean, sd): (f64, f64), x: f64) -> f64 {
        (x - mean) / sd
    }

    fn rho(&self, raw: &Raw, cfg: &SynthConfig) -> f64 {
        match raw.rho {
            Some(r) => sigmoid(cfg.relatedness_spread * Self::standard(self.rho, r)),
            None => CONSTANT_RHO,
        }
    }

    fn click_signal(&self, raw: &Raw) -> f64 {
        Self::standard(self.click, raw.click)
    }

    fn cvr_signal(&self, raw: &Raw, rho: f64, cfg: &SynthConfig) -> f64 {
        let (s, i) = (Self::standard(self.shared, raw.shared), Self::standard(self.own, raw.own));
        cvr_signal(s, i, rho, raw.pair, cfg)
    }

    pub(super) fn truth(&self, raw: &Raw, cfg: &SynthConfig) -> Truth {
        let rho = self.rho(raw, cfg);
        let pctr = sigmoid(self.click_base + cfg.click_strength * self.click_signal(raw));
        let pcvr = sigmoid(self.cvr_base + self.cvr_signal(raw, rho, cfg));
        let pcvr_rho_bar = sigmoid(self.cvr_base + self.cvr_signal(raw, self.rho_bar, cfg));
        Truth { pctr, pcvr, rho, pcvr_rho_bar }
    }
}

pub(super) fn calibrate(catalogue: &Catalogue, story: &Story, cfg: &SynthConfig) -> Calibration {
    let mut rng = Rng::derive(cfg.world_seed, 2);
    let mut x = Features::new();
    let raws: Vec<Raw> = (0..CALIBRATION_ROWS)
        .map(|_| {
            catalogue.sample_user(&mut rng, &mut x);
            catalogue.sample_item(&mut rng, &mut x);
            story.raw(&x)
        })
        .collect();
    let mut cal = Calibration {
        click: mean_sd(raws.iter().map(|r| r.click)),
        shared: mean_sd(raws.iter().map(|r| r.shared)),
        own: mean_sd(raws.iter().map(|r| r.own)),
        rho: mean_sd(raws.iter().filter_map(|r| r.rho)),
        click_base: 0.0,
        cvr_base: 0.0,
        rho_bar: 0.0,
    };
    let s: Vec<f64> = raws.iter().map(|r| cal.click_signal(r)).collect();
    cal.click_base = bisect(-30.0, 30.0, |b| {
        s.iter().map(|&s| sigmoid(b + cfg.click_strength * s)).sum::<f64>() / s.len() as f64 - cfg.ctr
    });
    let pctr: Vec<f64> = s.iter().map(|&s| sigmoid(cal.click_base + cfg.click_strength * s)).collect();
    let clicks: f64 = pctr.iter().sum();
    cal.rho_bar = raws.iter().zip(&pctr).map(|(r, p)| p * cal.rho(r, cfg)).sum::<f64>() / clicks;
    let signal: Vec<f64> = raws.iter().map(|r| cal.cvr_signal(r, cal.rho(r, cfg), cfg)).collect();
    cal.cvr_base = bisect(-30.0, 30.0, |b| {
        pctr.iter().zip(&signal).map(|(p, &v)| p * sigmoid(b + v)).sum::<f64>() / clicks - cfg.cvr
    });
    cal
}
