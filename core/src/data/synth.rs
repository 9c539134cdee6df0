//! Ground-truth generator: AliExpress-layout data whose true click and conversion
//! probabilities and per-instance task relatedness are known.
//!
//! Real logs cannot tell us whether a model's per-instance relatedness means anything, so
//! this writes data from a known story (docs/DATA.md, "Generator"): clicks and
//! conversions-after-click come from non-linear functions of the features, and the
//! conversion logit shares the click signal to a degree rho(x) in [0, 1] that itself depends
//! on the features. A model that learns where the tasks agree can exploit the click signal
//! for conversion where rho is high and ignore it where rho is low.
//!
//! Output is streamed row by row (any row count), deterministic from the seed, and each data
//! row has a truth row `true_pctr,true_pcvr,true_relatedness`.

use std::io::{BufWriter, Write};

use serde::{Deserialize, Serialize};

use super::format::SchemaSpec;
use crate::error::{Error, Result};
use crate::metrics::auc;
use crate::rng::Rng;

/// What to generate.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct SynthConfig {
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
    pub relatedness_mean: f64,
    /// Rows per tenth of [0, 1] of the true relatedness.
    pub relatedness_histogram: Vec<u64>,
    /// The calibrated click and conversion logit bases.
    pub click_base: f64,
    pub cvr_base: f64,
}

// ---- The feature layout -------------------------------------------------------------

const K: usize = 4;
type Vec4 = [f64; K];

const N_CAT: usize = 16;
const N_NUM: usize = 63;
const N_USER_CAT: usize = 9;
const N_USER_NUM: usize = 23;
/// Values per categorical field (categorical_1..16): a few with 2-5 values, several with
/// tens, one with hundreds and one with over a thousand.
const CARDINALITY: [usize; N_CAT] = [3, 5, 8, 2, 4, 6, 60, 20, 12, 2, 3, 40, 1200, 300, 2, 25];
/// 0-based field indices with a meaning in the story.
const SEGMENT: usize = 2; // categorical_3: user segment, drives relatedness
const USER_FLAG: usize = 3; // categorical_4
const CITY: usize = 6; // categorical_7: pairs with the item for the sparse pair effect
const TOP_CATEGORY: usize = 11; // categorical_12 = parent of the category
const ITEM: usize = 12; // categorical_13: item
const CATEGORY: usize = 13; // categorical_14 = category of the item, drives relatedness
/// numerical_58..60 are 0/1 flags, like the real data.
const FLAGS: [usize; 3] = [57, 58, 59];
/// Fields of the independent conversion signal's main effects.
const CVR_FIELDS: [usize; 7] = [1, 5, 8, 10, 11, 12, 15];
/// Numerics that enter the user and item factor vectors.
const USER_FM_NUMS: [usize; 4] = [8, 10, 13, 16];
const ITEM_FM_NUMS: [usize; 4] = [26, 30, 33, 37];

/// Calibration rows drawn (from their own stream) to standardise the signals and solve the
/// bases for the target rates.
const CALIBRATION_ROWS: usize = 20_000;

/// 1-based numeric column -> value.
#[inline]
fn num(x: &Features, one_based: usize) -> f64 {
    x.nums[one_based - 1]
}

#[inline]
fn sigmoid(z: f64) -> f64 {
    1.0 / (1.0 + (-z).exp())
}

#[inline]
fn dot(a: &Vec4, b: &Vec4) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

#[inline]
fn add_scaled(acc: &mut Vec4, v: &Vec4, s: f64) {
    for (a, b) in acc.iter_mut().zip(v) {
        *a += b * s;
    }
}

fn rand_vec(rng: &mut Rng, sd: f64) -> Vec4 {
    let mut v = [0.0; K];
    for x in &mut v {
        *x = rng.normal() * sd;
    }
    v
}

fn table(rng: &mut Rng, n: usize, sd: f64) -> Vec<f64> {
    (0..n).map(|_| rng.normal() * sd).collect()
}

fn vec_table(rng: &mut Rng, n: usize, sd: f64) -> Vec<Vec4> {
    (0..n).map(|_| rand_vec(rng, sd)).collect()
}

/// Zipf(s) over n ranks, with ranks mapped to value ids by a random permutation (so value 0
/// is not always the most frequent and vocabulary ordering is exercised).
struct Zipf {
    cdf: Vec<f64>,
    perm: Vec<u32>,
}

impl Zipf {
    fn new(n: usize, s: f64, rng: &mut Rng) -> Self {
        let weights: Vec<f64> = (1..=n).map(|r| (r as f64).powf(-s)).collect();
        let total: f64 = weights.iter().sum();
        let mut acc = 0.0;
        let cdf = weights.iter().map(|w| {
            acc += w / total;
            acc
        });
        let cdf = cdf.collect();
        let mut perm: Vec<u32> = (0..n as u32).collect();
        if n > 5 {
            rng.shuffle(&mut perm);
        }
        Self { cdf, perm }
    }

    #[inline]
    fn sample(&self, rng: &mut Rng) -> u32 {
        let u = rng.next_f64();
        let rank = self.cdf.partition_point(|&c| c <= u).min(self.perm.len() - 1);
        self.perm[rank]
    }
}

/// How one numeric column derives from its side's latent vector.
struct NumSpec {
    a: Vec4,
    b: f64,
    /// Quantisation levels (values k / levels); 0 = a 1e-5 grid.
    levels: u32,
    flag: bool,
}

/// Observed features of one row.
#[derive(Clone)]
struct Features {
    cats: [u32; N_CAT],
    nums: [f64; N_NUM],
}

/// All random parameters of the story, drawn from the seed.
struct World {
    seed: u64,
    zipf: Vec<Zipf>,
    category_of: Vec<u32>,
    top_of: Vec<u32>,
    user_latent: Vec<Vec<Vec4>>,
    item_latent: Vec<Vec4>,
    category_latent: Vec<Vec4>,
    numerics: Vec<NumSpec>,
    // Click signal.
    click_main: Vec<Vec<f64>>,
    click_user: Vec<Vec<Vec4>>,
    click_item: Vec<Vec4>,
    click_category: Vec<Vec4>,
    click_user_num: Vec<Vec4>,
    click_item_num: Vec<Vec4>,
    // Independent conversion signal.
    cvr_main: Vec<Vec<f64>>,
    cvr_user: Vec<Vec<Vec4>>,
    cvr_item: Vec<Vec4>,
    cvr_category: Vec<Vec4>,
    // Relatedness.
    rho_segment: Vec<f64>,
    rho_category: Vec<f64>,
}

/// The raw (unstandardised) signals of a row.
#[derive(Clone, Copy, Default)]
struct Raw {
    click: f64,
    cvr: f64,
    rho: f64,
    pair: f64,
}

/// Affine maps from raw signals to the logits, fitted on the calibration rows.
#[derive(Clone, Copy)]
struct Calibration {
    click_mean: f64,
    click_sd: f64,
    cvr_mean: f64,
    cvr_sd: f64,
    rho_mean: f64,
    rho_sd: f64,
    click_base: f64,
    cvr_base: f64,
}

/// The true probabilities of a row.
#[derive(Clone, Copy)]
struct Truth {
    pctr: f64,
    pcvr: f64,
    rho: f64,
}

impl World {
    fn new(seed: u64) -> Self {
        let mut rng = Rng::derive(seed, 1);
        let zipf: Vec<Zipf> =
            CARDINALITY.iter().map(|&n| Zipf::new(n, if n > 100 { 1.0 } else { 1.1 }, &mut rng)).collect();
        let category_of = (0..CARDINALITY[ITEM]).map(|_| zipf[CATEGORY].sample(&mut rng)).collect();
        let top_of = (0..CARDINALITY[CATEGORY]).map(|_| zipf[TOP_CATEGORY].sample(&mut rng)).collect();
        let user_latent = CARDINALITY[..N_USER_CAT].iter().map(|&n| vec_table(&mut rng, n, 0.5)).collect();
        let item_latent = vec_table(&mut rng, CARDINALITY[ITEM], 1.0);
        let category_latent = vec_table(&mut rng, CARDINALITY[CATEGORY], 0.6);
        let numerics = (0..N_NUM)
            .map(|j| {
                let flag = FLAGS.contains(&j);
                let levels = if j < 8 { 4 + rng.below(9) as u32 } else { 0 };
                NumSpec {
                    a: rand_vec(&mut rng, 0.6),
                    b: rng.normal() * 0.5 - if flag { 1.5 } else { 0.0 },
                    levels,
                    flag,
                }
            })
            .collect();
        let main_sd = |f: usize| match CARDINALITY[f] {
            n if n <= 8 => 0.3,
            n if n <= 100 => 0.5,
            _ => 0.7,
        };
        let click_main = (0..N_CAT).map(|f| table(&mut rng, CARDINALITY[f], main_sd(f))).collect();
        let click_user = CARDINALITY[..N_USER_CAT].iter().map(|&n| vec_table(&mut rng, n, 0.4)).collect();
        let click_item = vec_table(&mut rng, CARDINALITY[ITEM], 0.5);
        let click_category = vec_table(&mut rng, CARDINALITY[CATEGORY], 0.5);
        let click_user_num = vec_table(&mut rng, USER_FM_NUMS.len(), 1.0);
        let click_item_num = vec_table(&mut rng, ITEM_FM_NUMS.len(), 1.0);
        let cvr_main = (0..N_CAT)
            .map(|f| table(&mut rng, CARDINALITY[f], if CVR_FIELDS.contains(&f) { main_sd(f) + 0.2 } else { 0.0 }))
            .collect();
        let cvr_user = CARDINALITY[..N_USER_CAT].iter().map(|&n| vec_table(&mut rng, n, 0.4)).collect();
        let cvr_item = vec_table(&mut rng, CARDINALITY[ITEM], 0.5);
        let cvr_category = vec_table(&mut rng, CARDINALITY[CATEGORY], 0.5);
        let rho_segment = table(&mut rng, CARDINALITY[SEGMENT], 1.0);
        let rho_category = table(&mut rng, CARDINALITY[CATEGORY], 1.0);
        Self {
            seed,
            zipf,
            category_of,
            top_of,
            user_latent,
            item_latent,
            category_latent,
            numerics,
            click_main,
            click_user,
            click_item,
            click_category,
            click_user_num,
            click_item_num,
            cvr_main,
            cvr_user,
            cvr_item,
            cvr_category,
            rho_segment,
            rho_category,
        }
    }

    /// Quantises a value in [0, 1] to millionths as written, per the column's grid.
    fn quantise(spec: &NumSpec, v: f64) -> u32 {
        let v = v.clamp(0.0, 1.0);
        let q = if spec.levels > 0 {
            (v * spec.levels as f64).round() / spec.levels as f64
        } else {
            (v * 1e5).round() / 1e5
        };
        (q * 1e6).round() as u32
    }

    /// Draws the user/query side of a search into `x` (columns shared by its rows).
    fn sample_user(&self, rng: &mut Rng, x: &mut Features, written: &mut [u32; N_NUM]) {
        let mut z = rand_vec(rng, 0.7);
        for f in 0..N_USER_CAT {
            let v = self.zipf[f].sample(rng);
            x.cats[f] = v;
            add_scaled(&mut z, &self.user_latent[f][v as usize], 1.0);
        }
        let columns = written.iter_mut().zip(&mut x.nums).zip(&self.numerics).take(N_USER_NUM);
        for ((w, value), spec) in columns {
            *w = Self::quantise(spec, sigmoid(dot(&spec.a, &z) + spec.b));
            *value = *w as f64 / 1e6;
        }
    }

    /// Draws the item side of one row.
    fn sample_item(&self, rng: &mut Rng, x: &mut Features, written: &mut [u32; N_NUM]) {
        for f in N_USER_CAT..N_CAT {
            if f != TOP_CATEGORY && f != CATEGORY {
                x.cats[f] = self.zipf[f].sample(rng);
            }
        }
        let item = x.cats[ITEM] as usize;
        x.cats[CATEGORY] = self.category_of[item];
        x.cats[TOP_CATEGORY] = self.top_of[x.cats[CATEGORY] as usize];
        let mut z = rand_vec(rng, 0.5);
        add_scaled(&mut z, &self.item_latent[item], 1.0);
        add_scaled(&mut z, &self.category_latent[x.cats[CATEGORY] as usize], 1.0);
        let columns = written.iter_mut().zip(&mut x.nums).zip(&self.numerics).skip(N_USER_NUM);
        for ((w, value), spec) in columns {
            let logit = dot(&spec.a, &z) + spec.b;
            *w = if spec.flag {
                if rng.bernoulli(sigmoid(logit)) {
                    1_000_000
                } else {
                    0
                }
            } else {
                // Uniform jitter: each listing differs a little from its item's latent.
                let jitter = (rng.next_f64() - 0.5) * 0.8;
                Self::quantise(spec, sigmoid(logit + jitter))
            };
            *value = *w as f64 / 1e6;
        }
    }

    /// The raw signals: functions of the observed (written) features only.
    fn raw(&self, x: &Features) -> Raw {
        let c = |f: usize| x.cats[f] as usize;
        // Click: main effects + user x item factor interaction + non-linear numerics.
        let mut main = 0.0;
        for f in 0..N_CAT {
            main += self.click_main[f][c(f)];
        }
        let mut pu = [0.0; K];
        for f in 0..N_USER_CAT {
            add_scaled(&mut pu, &self.click_user[f][c(f)], 1.0);
        }
        for (v, &j) in self.click_user_num.iter().zip(&USER_FM_NUMS) {
            add_scaled(&mut pu, v, x.nums[j] - 0.5);
        }
        let mut pi = self.click_item[c(ITEM)];
        add_scaled(&mut pi, &self.click_category[c(CATEGORY)], 1.0);
        for (v, &j) in self.click_item_num.iter().zip(&ITEM_FM_NUMS) {
            add_scaled(&mut pi, v, x.nums[j] - 0.5);
        }
        let user_flag = if x.cats[USER_FLAG] == 1 { 1.0 } else { -1.0 };
        let nonlinear = 6.0 * (num(x, 34) - 0.5) * (num(x, 52) - 0.5)
            + 0.8 * (std::f64::consts::TAU * num(x, 24)).cos()
            + 4.0 * (num(x, 47) - 0.6).max(0.0)
            + 0.6 * (2.0 * num(x, 9) - 1.0) * user_flag;
        let click = main + dot(&pu, &pi) + nonlinear;

        // Independent conversion signal: other main effects, its own factors, price-like terms.
        let mut main = 0.0;
        for &f in &CVR_FIELDS {
            main += self.cvr_main[f][c(f)];
        }
        let mut qu = [0.0; K];
        for f in 0..N_USER_CAT {
            add_scaled(&mut qu, &self.cvr_user[f][c(f)], 1.0);
        }
        let mut qi = self.cvr_item[c(ITEM)];
        add_scaled(&mut qi, &self.cvr_category[c(CATEGORY)], 1.0);
        let nonlinear = -2.4 * (num(x, 40) - 0.5) + 0.9 * (std::f64::consts::TAU * num(x, 55)).sin() + 0.8 * num(x, 58)
            - 0.5 * num(x, 59)
            + 8.0 * (num(x, 61) - 0.5) * (num(x, 15) - 0.5);
        let cvr = main + dot(&qu, &qi) + nonlinear;

        let rho = self.rho_segment[c(SEGMENT)]
            + self.rho_category[c(CATEGORY)]
            + 3.0 * (num(x, 21) - 0.5)
            + 3.0 * (num(x, 44) - 0.5);
        Raw { click, cvr, rho, pair: self.pair_effect(x.cats[CITY], x.cats[ITEM]) }
    }

    /// A standard normal effect per (city, item) pair, hashed from the seed.
    fn pair_effect(&self, city: u32, item: u32) -> f64 {
        let key = ((city as u64) << 32 | item as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        Rng::derive(self.seed ^ key, 7).normal()
    }

    fn truth(&self, raw: Raw, cal: &Calibration, cfg: &SynthConfig) -> Truth {
        let s = (raw.click - cal.click_mean) / cal.click_sd;
        let i = (raw.cvr - cal.cvr_mean) / cal.cvr_sd;
        let rho = sigmoid(cfg.relatedness_spread * (raw.rho - cal.rho_mean) / cal.rho_sd);
        let pctr = sigmoid(cal.click_base + cfg.click_strength * s);
        let pcvr = sigmoid(cal.cvr_base + cvr_signal(s, i, rho, raw.pair, cfg));
        Truth { pctr, pcvr, rho }
    }
}

/// The conversion logit without its base: a mix of the standardised click signal `s` and
/// the independent signal `i` with weights alpha*rho and 1-rho, rescaled to unit standard
/// deviation (for uncorrelated s and i) so that rho changes what conversion depends on,
/// not how predictable it is.
fn cvr_signal(s: f64, i: f64, rho: f64, pair: f64, cfg: &SynthConfig) -> f64 {
    let (ws, wi) = (cfg.alpha * rho, 1.0 - rho);
    let norm = (ws * ws + wi * wi).sqrt().max(1e-9);
    cfg.cvr_strength * (ws * s + wi * i) / norm + cfg.pair_noise * pair
}

fn mean_sd(xs: impl Iterator<Item = f64> + Clone) -> (f64, f64) {
    let n = xs.clone().count().max(1) as f64;
    let mean = xs.clone().sum::<f64>() / n;
    let var = xs.map(|x| (x - mean) * (x - mean)).sum::<f64>() / n;
    let sd = var.sqrt();
    (mean, if sd > 1e-12 { sd } else { 1.0 })
}

/// The root of an increasing function on [lo, hi] by bisection.
fn bisect(mut lo: f64, mut hi: f64, f: impl Fn(f64) -> f64) -> f64 {
    for _ in 0..80 {
        let mid = 0.5 * (lo + hi);
        if f(mid) < 0.0 {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    0.5 * (lo + hi)
}

fn calibrate(world: &World, cfg: &SynthConfig) -> Calibration {
    let mut rng = Rng::derive(cfg.world_seed, 2);
    let mut x = Features { cats: [0; N_CAT], nums: [0.0; N_NUM] };
    let mut written = [0u32; N_NUM];
    let raws: Vec<Raw> = (0..CALIBRATION_ROWS)
        .map(|_| {
            world.sample_user(&mut rng, &mut x, &mut written);
            world.sample_item(&mut rng, &mut x, &mut written);
            world.raw(&x)
        })
        .collect();
    let (click_mean, click_sd) = mean_sd(raws.iter().map(|r| r.click));
    let (cvr_mean, cvr_sd) = mean_sd(raws.iter().map(|r| r.cvr));
    let (rho_mean, rho_sd) = mean_sd(raws.iter().map(|r| r.rho));
    let mut cal =
        Calibration { click_mean, click_sd, cvr_mean, cvr_sd, rho_mean, rho_sd, click_base: 0.0, cvr_base: 0.0 };
    let s: Vec<f64> = raws.iter().map(|r| (r.click - click_mean) / click_sd).collect();
    cal.click_base = bisect(-30.0, 30.0, |b| {
        s.iter().map(|&s| sigmoid(b + cfg.click_strength * s)).sum::<f64>() / s.len() as f64 - cfg.ctr
    });
    let pctr: Vec<f64> = s.iter().map(|&s| sigmoid(cal.click_base + cfg.click_strength * s)).collect();
    let signal: Vec<f64> = raws
        .iter()
        .zip(&s)
        .map(|(r, &s)| {
            let i = (r.cvr - cvr_mean) / cvr_sd;
            let rho = sigmoid(cfg.relatedness_spread * (r.rho - rho_mean) / rho_sd);
            cvr_signal(s, i, rho, r.pair, cfg)
        })
        .collect();
    let clicks: f64 = pctr.iter().sum();
    cal.cvr_base = bisect(-30.0, 30.0, |b| {
        pctr.iter().zip(&signal).map(|(p, &v)| p * sigmoid(b + v)).sum::<f64>() / clicks - cfg.cvr
    });
    cal
}

// ---- Writing ------------------------------------------------------------------------

fn push_uint(buf: &mut Vec<u8>, mut v: u64) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    buf.extend_from_slice(&digits[i..]);
}

/// Writes millionths in [0, 1e6] as a short decimal (`0.0`, `0.25`, `1.0`).
fn push_unit(buf: &mut Vec<u8>, millionths: u32) {
    if millionths == 0 {
        buf.extend_from_slice(b"0.0");
        return;
    }
    if millionths >= 1_000_000 {
        buf.extend_from_slice(b"1.0");
        return;
    }
    let mut digits = [b'0'; 6];
    let mut v = millionths;
    for d in digits.iter_mut().rev() {
        *d = b'0' + (v % 10) as u8;
        v /= 10;
    }
    let len = digits.iter().rposition(|&d| d != b'0').map_or(1, |p| p + 1);
    buf.extend_from_slice(b"0.");
    buf.extend_from_slice(&digits[..len]);
}

fn io_error(what: &str) -> impl Fn(std::io::Error) -> Error + '_ {
    move |source| Error::Io { file: what.to_string(), source }
}

/// Labels and scores kept for the Bayes AUCs.
#[derive(Default)]
struct Scores {
    pctr: Vec<f32>,
    pctcvr: Vec<f32>,
    /// Bit 0 click, bit 1 conversion.
    labels: Vec<u8>,
    /// pCVR of clicked rows, with their conversion labels.
    clicked_pcvr: Vec<f32>,
    clicked_conversion: Vec<bool>,
}

impl Scores {
    /// (CTR, CVR on clicks, CTCVR) AUCs; each metric's f64 copy is freed before the next.
    fn aucs(self) -> (Option<f64>, Option<f64>, Option<f64>) {
        let Scores { pctr, pctcvr, labels, clicked_pcvr, clicked_conversion } = self;
        let auc_f32 = |scores: Vec<f32>, labels: &[bool]| {
            let scores: Vec<f64> = scores.into_iter().map(f64::from).collect();
            auc(&scores, labels)
        };
        let bits = |bit: u8| labels.iter().map(|l| l & bit != 0).collect::<Vec<bool>>();
        let auc_ctr = auc_f32(pctr, &bits(1));
        let auc_ctcvr = auc_f32(pctcvr, &bits(2));
        let auc_cvr = auc_f32(clicked_pcvr, &clicked_conversion);
        (auc_ctr, auc_cvr, auc_ctcvr)
    }
}

/// Writes `cfg.rows` AliExpress-layout rows to `csv` (header included) and one truth row
/// per data row to `truth` (header `true_pctr,true_pcvr,true_relatedness`). Both writers
/// are buffered here; the same config gives the same bytes.
pub fn generate<W: Write, T: Write>(cfg: &SynthConfig, csv: W, truth: T) -> Result<SynthSummary> {
    cfg.validate()?;
    let world = World::new(cfg.world_seed);
    let cal = calibrate(&world, cfg);
    let mut csv = BufWriter::with_capacity(1 << 20, csv);
    let mut truth_out = BufWriter::with_capacity(1 << 18, truth);
    let csv_err = io_error("synthetic data output");
    let truth_err = io_error("synthetic truth output");

    csv.write_all(SchemaSpec::aliexpress_header().join(",").as_bytes()).map_err(&csv_err)?;
    csv.write_all(b"\n").map_err(&csv_err)?;
    truth_out.write_all(b"true_pctr,true_pcvr,true_relatedness\n").map_err(&truth_err)?;

    let mut rng = Rng::derive(cfg.seed, 3);
    let mut x = Features { cats: [0; N_CAT], nums: [0.0; N_NUM] };
    let mut written = [0u32; N_NUM];
    let mut line = Vec::with_capacity(1024);
    let mut truth_line = Vec::with_capacity(64);
    let mut scores = Scores::default();
    let (mut clicks, mut conversions, mut groups) = (0usize, 0usize, 0usize);
    let mut rho_sum = 0.0;
    let mut histogram = vec![0u64; 10];
    let group_span = (2.0 * (cfg.mean_group_size - 1.0)).round() as u64 + 1;

    let mut row = 0usize;
    while row < cfg.rows {
        groups += 1;
        let size = 1 + rng.below(group_span) as usize;
        world.sample_user(&mut rng, &mut x, &mut written);
        for _ in 0..size.min(cfg.rows - row) {
            world.sample_item(&mut rng, &mut x, &mut written);
            let t = world.truth(world.raw(&x), &cal, cfg);
            // Two draws per row whatever the outcome, so the stream layout is fixed.
            let (u_click, u_conv) = (rng.next_f64(), rng.next_f64());
            let click = u_click < t.pctr;
            let conversion = click && u_conv < t.pcvr;

            line.clear();
            push_uint(&mut line, groups as u64);
            for &c in &x.cats {
                line.push(b',');
                push_uint(&mut line, c as u64);
            }
            for (j, &w) in written.iter().enumerate() {
                line.push(b',');
                if world.numerics[j].flag {
                    line.push(if w > 0 { b'1' } else { b'0' });
                } else {
                    push_unit(&mut line, w);
                }
            }
            line.extend_from_slice(if click { b",1" } else { b",0" });
            line.extend_from_slice(if conversion { b",1\n" } else { b",0\n" });
            csv.write_all(&line).map_err(&csv_err)?;

            truth_line.clear();
            // Shortest round-trip f32 text: exact for the f32 values the AUCs use.
            let _ = writeln!(truth_line, "{},{},{}", t.pctr as f32, t.pcvr as f32, t.rho as f32);
            truth_out.write_all(&truth_line).map_err(&truth_err)?;

            clicks += click as usize;
            conversions += conversion as usize;
            rho_sum += t.rho;
            histogram[((t.rho * 10.0) as usize).min(9)] += 1;
            if cfg.compute_auc {
                scores.pctr.push(t.pctr as f32);
                scores.pctcvr.push((t.pctr * t.pcvr) as f32);
                scores.labels.push(click as u8 | (conversion as u8) << 1);
                if click {
                    scores.clicked_pcvr.push(t.pcvr as f32);
                    scores.clicked_conversion.push(conversion);
                }
            }
            row += 1;
        }
    }
    csv.flush().map_err(&csv_err)?;
    truth_out.flush().map_err(&truth_err)?;

    let (auc_ctr, auc_cvr, auc_ctcvr) = if cfg.compute_auc { scores.aucs() } else { (None, None, None) };
    let rows = cfg.rows;
    Ok(SynthSummary {
        rows,
        groups,
        clicks,
        conversions,
        ctr: clicks as f64 / rows.max(1) as f64,
        cvr_given_click: conversions as f64 / clicks.max(1) as f64,
        auc_ctr,
        auc_cvr,
        auc_ctcvr,
        relatedness_mean: rho_sum / rows.max(1) as f64,
        relatedness_histogram: histogram,
        click_base: cal.click_base,
        cvr_base: cal.cvr_base,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unit_formatting() {
        let fmt = |v: u32| {
            let mut b = Vec::new();
            push_unit(&mut b, v);
            String::from_utf8(b).unwrap()
        };
        assert_eq!(fmt(0), "0.0");
        assert_eq!(fmt(1_000_000), "1.0");
        assert_eq!(fmt(250_000), "0.25");
        assert_eq!(fmt(83_333), "0.083333");
        assert_eq!(fmt(1), "0.000001");
        let mut b = Vec::new();
        push_uint(&mut b, 0);
        push_uint(&mut b, 1234567890);
        assert_eq!(b, b"01234567890");
    }

    #[test]
    fn zipf_is_skewed_and_in_range() {
        let mut rng = Rng::new(1);
        let z = Zipf::new(50, 1.1, &mut rng);
        let mut counts = vec![0usize; 50];
        for _ in 0..20_000 {
            counts[z.sample(&mut rng) as usize] += 1;
        }
        counts.sort_unstable_by(|a, b| b.cmp(a));
        assert!(counts[0] > 10 * counts[25], "{counts:?}");
    }

    fn corr(a: &[f64], b: &[f64]) -> f64 {
        let (ma, sa) = mean_sd(a.iter().copied());
        let (mb, sb) = mean_sd(b.iter().copied());
        a.iter().zip(b).map(|(x, y)| (x - ma) * (y - mb)).sum::<f64>() / a.len() as f64 / (sa * sb)
    }

    /// The story assumes the click, independent-conversion and relatedness signals are
    /// (nearly) uncorrelated, so that rho alone sets how much conversion follows clicks.
    #[test]
    fn signals_are_nearly_uncorrelated() {
        let world = World::new(4);
        let mut rng = Rng::new(5);
        let mut x = Features { cats: [0; N_CAT], nums: [0.0; N_NUM] };
        let mut written = [0u32; N_NUM];
        let raws: Vec<Raw> = (0..5000)
            .map(|_| {
                world.sample_user(&mut rng, &mut x, &mut written);
                world.sample_item(&mut rng, &mut x, &mut written);
                world.raw(&x)
            })
            .collect();
        let s: Vec<f64> = raws.iter().map(|r| r.click).collect();
        let i: Vec<f64> = raws.iter().map(|r| r.cvr).collect();
        let r: Vec<f64> = raws.iter().map(|r| r.rho).collect();
        for (name, c) in [("click-cvr", corr(&s, &i)), ("click-rho", corr(&s, &r)), ("cvr-rho", corr(&i, &r))] {
            assert!(c.abs() < 0.2, "{name}: {c}");
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
