//! The feature layout shared by every world: which value each categorical field takes, how
//! the numerics derive from hidden user and item vectors, and the values as written.
//!
//! Worlds differ only in how clicks, conversions and relatedness depend on these features
//! (`story.rs`); the catalogue (vocabularies, item -> category -> top category, numeric
//! maps) is the same for every world of a given `world_seed`.

use super::math::{sigmoid, Vec4, K};
use crate::data::format::{
    ALIEXPRESS_CATEGORICAL as N_CAT, ALIEXPRESS_NUMERIC as N_NUM, ALIEXPRESS_USER_CATEGORICAL as N_USER_CAT,
    ALIEXPRESS_USER_NUMERIC as N_USER_NUM,
};
use crate::rng::Rng;

/// Values per categorical field (categorical_1..16): a few with 2-5 values, several with
/// tens, one with hundreds and one with over a thousand.
pub(super) const CARDINALITY: [usize; N_CAT] = [3, 5, 8, 2, 4, 6, 60, 20, 12, 2, 3, 40, 1200, 300, 2, 25];
/// 0-based field indices with a meaning in the stories.
pub(super) const SEGMENT: usize = 2; // categorical_3: user segment
pub(super) const USER_FLAG: usize = 3; // categorical_4
pub(super) const CITY: usize = 6; // categorical_7: pairs with the item for the sparse pair effect
pub(super) const TOP_CATEGORY: usize = 11; // categorical_12 = parent of the category
pub(super) const ITEM: usize = 12; // categorical_13: item
pub(super) const CATEGORY: usize = 13; // categorical_14 = category of the item
/// numerical_58..60 are 0/1 flags, like the real data.
pub(super) const FLAGS: [usize; 3] = [57, 58, 59];
/// numerical_1..8 take a few discrete levels (4 to 12), like counts bucketed upstream.
pub(super) const LEVELLED_NUMERICS: usize = 8;

/// Zipf(s) over n ranks, with ranks mapped to value ids by a random permutation (so value 0
/// is not always the most frequent and vocabulary ordering is exercised).
pub(super) struct Zipf {
    cdf: Vec<f64>,
    perm: Vec<u32>,
}

impl Zipf {
    pub(super) fn new(n: usize, s: f64, rng: &mut Rng) -> Self {
        let weights: Vec<f64> = (1..=n).map(|r| libm::pow(r as f64, -s)).collect();
        let total: f64 = weights.iter().sum();
        let mut acc = 0.0;
        let cdf = weights
            .iter()
            .map(|w| {
                acc += w / total;
                acc
            })
            .collect();
        let mut perm: Vec<u32> = (0..n as u32).collect();
        if n > 5 {
            rng.shuffle(&mut perm);
        }
        Self { cdf, perm }
    }

    #[inline]
    pub(super) fn sample(&self, rng: &mut Rng) -> u32 {
        let u = rng.next_f64();
        let rank = self.cdf.partition_point(|&c| c <= u).min(self.perm.len() - 1);
        self.perm[rank]
    }
}

pub(super) fn rand_vec(rng: &mut Rng, sd: f64) -> Vec4 {
    let mut v = [0.0; K];
    for x in &mut v {
        *x = rng.normal() * sd;
    }
    v
}

pub(super) fn table(rng: &mut Rng, n: usize, sd: f64) -> Vec<f64> {
    (0..n).map(|_| rng.normal() * sd).collect()
}

pub(super) fn vec_table(rng: &mut Rng, n: usize, sd: f64) -> Vec<Vec4> {
    (0..n).map(|_| rand_vec(rng, sd)).collect()
}

#[inline]
pub(super) fn add_scaled(acc: &mut Vec4, v: &Vec4, s: f64) {
    for (a, b) in acc.iter_mut().zip(v) {
        *a += b * s;
    }
}

#[inline]
pub(super) fn dot(a: &Vec4, b: &Vec4) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

struct NumSpec {
    a: Vec4,
    b: f64,
    levels: u32,
    flag: bool,
}

/// One row's features: the categorical ids, and the numerics as written (in millionths,
/// and as the values every story reads, so the truth is an exact function of the CSV row).
#[derive(Clone)]
pub(super) struct Features {
    pub cats: [u32; N_CAT],
    pub nums: [f64; N_NUM],
    pub written: [u32; N_NUM],
}

impl Features {
    pub(super) fn new() -> Self {
        Self { cats: [0; N_CAT], nums: [0.0; N_NUM], written: [0; N_NUM] }
    }

    /// numerical_j (1-based, as in the column names).
    #[inline]
    pub(super) fn num(&self, one_based: usize) -> f64 {
        self.nums[one_based - 1]
    }

    #[inline]
    pub(super) fn cat(&self, field: usize) -> usize {
        self.cats[field] as usize
    }
}

pub(super) struct Catalogue {
    zipf: Vec<Zipf>,
    category_of: Vec<u32>,
    top_of: Vec<u32>,
    user_latent: Vec<Vec<Vec4>>,
    item_latent: Vec<Vec4>,
    category_latent: Vec<Vec4>,
    numerics: Vec<NumSpec>,
}

impl Catalogue {
    /// Draws the catalogue from `rng` (the world stream; the stories continue it).
    pub(super) fn new(rng: &mut Rng) -> Self {
        let zipf: Vec<Zipf> = CARDINALITY.iter().map(|&n| Zipf::new(n, if n > 100 { 1.0 } else { 1.1 }, rng)).collect();
        let category_of = (0..CARDINALITY[ITEM]).map(|_| zipf[CATEGORY].sample(rng)).collect();
        let top_of = (0..CARDINALITY[CATEGORY]).map(|_| zipf[TOP_CATEGORY].sample(rng)).collect();
        let user_latent = CARDINALITY[..N_USER_CAT].iter().map(|&n| vec_table(rng, n, 0.5)).collect();
        let item_latent = vec_table(rng, CARDINALITY[ITEM], 1.0);
        let category_latent = vec_table(rng, CARDINALITY[CATEGORY], 0.6);
        let numerics = (0..N_NUM)
            .map(|j| {
                let flag = FLAGS.contains(&j);
                let levels = if j < LEVELLED_NUMERICS { 4 + rng.below(9) as u32 } else { 0 };
                NumSpec { a: rand_vec(rng, 0.6), b: rng.normal() * 0.5 - if flag { 1.5 } else { 0.0 }, levels, flag }
            })
            .collect();
        Self { zipf, category_of, top_of, user_latent, item_latent, category_latent, numerics }
    }

    /// Whether numerical_j (0-based) is a 0/1 flag.
    pub(super) fn is_flag(&self, j: usize) -> bool {
        self.numerics[j].flag
    }

    fn quantise(spec: &NumSpec, v: f64) -> u32 {
        let v = v.clamp(0.0, 1.0);
        let q = if spec.levels > 0 {
            (v * spec.levels as f64).round() / spec.levels as f64
        } else {
            (v * 1e5).round() / 1e5
        };
        (q * 1e6).round() as u32
    }

    /// The user/query side, drawn once per search.
    pub(super) fn sample_user(&self, rng: &mut Rng, x: &mut Features) {
        let mut z = rand_vec(rng, 0.7);
        for f in 0..N_USER_CAT {
            let v = self.zipf[f].sample(rng);
            x.cats[f] = v;
            add_scaled(&mut z, &self.user_latent[f][v as usize], 1.0);
        }
        let columns = x.written.iter_mut().zip(&mut x.nums).zip(&self.numerics).take(N_USER_NUM);
        for ((w, value), spec) in columns {
            *w = Self::quantise(spec, sigmoid(dot(&spec.a, &z) + spec.b));
            *value = *w as f64 / 1e6;
        }
    }

    /// The item side, drawn for every row.
    pub(super) fn sample_item(&self, rng: &mut Rng, x: &mut Features) {
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
        let columns = x.written.iter_mut().zip(&mut x.nums).zip(&self.numerics).skip(N_USER_NUM);
        for ((w, value), spec) in columns {
            let logit = dot(&spec.a, &z) + spec.b;
            *w = if spec.flag {
                if rng.bernoulli(sigmoid(logit)) {
                    1_000_000
                } else {
                    0
                }
            } else {
                let jitter = (rng.next_f64() - 0.5) * 0.8;
                Self::quantise(spec, sigmoid(logit + jitter))
            };
            *value = *w as f64 / 1e6;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
