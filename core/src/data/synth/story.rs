//! The worlds: how clicks, conversions and the true relatedness rho depend on the features.
//!
//! Every world has the same click model and the same conversion signal of its own (the
//! "own" part); they differ in what the conversion shares with the click task (the
//! "shared" part) and in what decides rho, the weight of the shared part (docs/DATA.md):
//!
//! | world | shared part | rho depends on |
//! |---|---|---|
//! | `logit` | the click logit itself | user segment + item category + two numerics (additive) |
//! | `interaction` | the click's user x item factors through another projection, and part of its main effects | a user segment x item top-category interaction (neither field alone) |
//! | `latent` | as `interaction` | a hidden user intent spread over ten user numerics, shifted by the item's top category |
//! | `constant` | as `interaction` | nothing: rho = 0.5 everywhere |

use serde::{Deserialize, Serialize};

use super::catalogue::{
    add_scaled, dot, rand_vec, table, vec_table, Features, CARDINALITY, CATEGORY, CITY, ITEM, SEGMENT, TOP_CATEGORY,
    USER_FLAG,
};
use super::math::{cos_turn, logit, sin_turn, Vec4, K};
use crate::data::format::{ALIEXPRESS_CATEGORICAL as N_CAT, ALIEXPRESS_USER_CATEGORICAL as N_USER_CAT};
use crate::rng::Rng;

/// Which generative story of relatedness.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "kebab-case")]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
pub enum World {
    /// Conversion shares the click logit; rho is additive in a user segment, the item
    /// category and two numerics.
    #[default]
    Logit,
    /// Conversion shares the click's representation (its user x item factors through
    /// another projection); rho comes from a user-segment x item-top-category interaction.
    Interaction,
    /// As `interaction`, but rho follows a hidden user intent that only a combination of
    /// ten user numerics reveals.
    Latent,
    /// As `interaction` with rho = 0.5 for every row: a model of relatedness must do no
    /// harm here.
    Constant,
}

impl World {
    pub const ALL: [World; 4] = [Self::Logit, Self::Interaction, Self::Latent, Self::Constant];

    pub fn name(self) -> &'static str {
        match self {
            Self::Logit => "logit",
            Self::Interaction => "interaction",
            Self::Latent => "latent",
            Self::Constant => "constant",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|w| w.name() == name)
    }

    /// Stream label of the world's own tables, so that adding a world never changes the
    /// draws of another.
    fn stream(self) -> u64 {
        match self {
            Self::Logit => 0,
            Self::Interaction | Self::Constant => 11,
            Self::Latent => 12,
        }
    }
}

/// Fields of the own conversion signal's main effects.
const CVR_FIELDS: [usize; 7] = [1, 5, 8, 10, 11, 12, 15];
/// Numerics that enter the click's user and item factor vectors.
const USER_FM_NUMS: [usize; 4] = [8, 10, 13, 16];
const ITEM_FM_NUMS: [usize; 4] = [26, 30, 33, 37];
/// numerical_j (1-based) that shift rho in the `logit` world.
pub(super) const LOGIT_RHO_NUMS: [usize; 2] = [21, 44];
/// numerical_j (1-based) that reveal the `latent` world's hidden intent, together.
pub(super) const INTENT_NUMS: [usize; 10] = [10, 11, 12, 13, 16, 18, 19, 20, 22, 23];

/// The raw (unstandardised) signals of one row.
#[derive(Clone, Copy, Default)]
pub(super) struct Raw {
    pub click: f64,
    pub shared: f64,
    pub own: f64,
    /// rho's raw logit; `None` where rho is constant.
    pub rho: Option<f64>,
    pub pair: f64,
}

/// The `interaction` and `latent` worlds' extra tables.
struct Representation {
    /// The other projection of the click's user factors.
    projection: [Vec4; K],
    rho_segment: Vec<Vec4>,
    rho_top: Vec<Vec4>,
    intent: [f64; INTENT_NUMS.len()],
    intent_top: Vec<f64>,
}

pub(super) struct Story {
    world: World,
    seed: u64,
    click_main: Vec<Vec<f64>>,
    click_user: Vec<Vec<Vec4>>,
    click_item: Vec<Vec4>,
    click_category: Vec<Vec4>,
    click_user_num: Vec<Vec4>,
    click_item_num: Vec<Vec4>,
    cvr_main: Vec<Vec<f64>>,
    cvr_user: Vec<Vec<Vec4>>,
    cvr_item: Vec<Vec4>,
    cvr_category: Vec<Vec4>,
    rho_segment: Vec<f64>,
    rho_category: Vec<f64>,
    representation: Option<Representation>,
}

fn main_sd(f: usize) -> f64 {
    match CARDINALITY[f] {
        n if n <= 8 => 0.3,
        n if n <= 100 => 0.5,
        _ => 0.7,
    }
}

impl Story {
    /// Continues the world stream `rng` after the catalogue (the `logit` world's draws are
    /// unchanged since the generator had one world); the other worlds' tables come from a
    /// stream of their own.
    pub(super) fn new(world: World, seed: u64, rng: &mut Rng) -> Self {
        let click_main = (0..N_CAT).map(|f| table(rng, CARDINALITY[f], main_sd(f))).collect();
        let click_user = CARDINALITY[..N_USER_CAT].iter().map(|&n| vec_table(rng, n, 0.4)).collect();
        let click_item = vec_table(rng, CARDINALITY[ITEM], 0.5);
        let click_category = vec_table(rng, CARDINALITY[CATEGORY], 0.5);
        let click_user_num = vec_table(rng, USER_FM_NUMS.len(), 1.0);
        let click_item_num = vec_table(rng, ITEM_FM_NUMS.len(), 1.0);
        let cvr_main = (0..N_CAT)
            .map(|f| table(rng, CARDINALITY[f], if CVR_FIELDS.contains(&f) { main_sd(f) + 0.2 } else { 0.0 }))
            .collect();
        let cvr_user = CARDINALITY[..N_USER_CAT].iter().map(|&n| vec_table(rng, n, 0.4)).collect();
        let cvr_item = vec_table(rng, CARDINALITY[ITEM], 0.5);
        let cvr_category = vec_table(rng, CARDINALITY[CATEGORY], 0.5);
        let rho_segment = table(rng, CARDINALITY[SEGMENT], 1.0);
        let rho_category = table(rng, CARDINALITY[CATEGORY], 1.0);
        let representation = (world != World::Logit).then(|| {
            let mut r = Rng::derive(seed, world.stream());
            // Mostly the click's own projection, turned by a random matrix: the shared part
            // overlaps with click relevance without being the click score.
            let mut projection = [[0.0; K]; K];
            for (i, row) in projection.iter_mut().enumerate() {
                *row = rand_vec(&mut r, 0.6);
                row[i] += 0.5;
            }
            let mut intent = [0.0; INTENT_NUMS.len()];
            for w in &mut intent {
                let sign = if r.bernoulli(0.5) { 1.0 } else { -1.0 };
                *w = sign * (0.5 + 0.5 * r.next_f64());
            }
            Representation {
                projection,
                rho_segment: vec_table(&mut r, CARDINALITY[SEGMENT], 1.0),
                rho_top: vec_table(&mut r, CARDINALITY[TOP_CATEGORY], 1.0),
                intent,
                intent_top: table(&mut r, CARDINALITY[TOP_CATEGORY], 0.6),
            }
        });
        Self {
            world,
            seed,
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
            representation,
        }
    }

    pub(super) fn world(&self) -> World {
        self.world
    }

    pub(super) fn raw(&self, x: &Features) -> Raw {
        let c = |f: usize| x.cat(f);
        // Click: main effects, a factorisation-machine user x item term, non-linear terms.
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
        let nonlinear = 6.0 * (x.num(34) - 0.5) * (x.num(52) - 0.5)
            + 0.8 * cos_turn(x.num(24))
            + 4.0 * (x.num(47) - 0.6).max(0.0)
            + 0.6 * (2.0 * x.num(9) - 1.0) * user_flag;
        let click = main + dot(&pu, &pi) + nonlinear;

        // The conversion's own signal: other main effects, its own factors, price-like terms.
        let mut own_main = 0.0;
        for &f in &CVR_FIELDS {
            own_main += self.cvr_main[f][c(f)];
        }
        let mut qu = [0.0; K];
        for f in 0..N_USER_CAT {
            add_scaled(&mut qu, &self.cvr_user[f][c(f)], 1.0);
        }
        let mut qi = self.cvr_item[c(ITEM)];
        add_scaled(&mut qi, &self.cvr_category[c(CATEGORY)], 1.0);
        let nonlinear = -2.4 * (x.num(40) - 0.5) + 0.9 * sin_turn(x.num(55)) + 0.8 * x.num(58) - 0.5 * x.num(59)
            + 8.0 * (x.num(61) - 0.5) * (x.num(15) - 0.5);
        let own = own_main + dot(&qu, &qi) + nonlinear;
        let pair = self.pair_effect(x.cats[CITY], x.cats[ITEM]);

        let Some(rep) = &self.representation else {
            let rho = self.rho_segment[c(SEGMENT)]
                + self.rho_category[c(CATEGORY)]
                + 3.0 * (x.num(LOGIT_RHO_NUMS[0]) - 0.5)
                + 3.0 * (x.num(LOGIT_RHO_NUMS[1]) - 0.5);
            return Raw { click, shared: click, own, rho: Some(rho), pair };
        };
        // The shared part: the click's user factors through another projection against the
        // same item factors, the click's user-side main effects, one of its non-linear terms.
        let mut projected = [0.0; K];
        for (row, out) in rep.projection.iter().zip(&mut projected) {
            *out = dot(row, &pu);
        }
        let user_main: f64 = (0..N_USER_CAT).map(|f| self.click_main[f][c(f)]).sum();
        let shared = 1.5 * dot(&projected, &pi) + user_main + 4.0 * (x.num(47) - 0.6).max(0.0);
        let rho = match self.world {
            World::Constant => None,
            World::Latent => {
                let intent: f64 = INTENT_NUMS
                    .iter()
                    .zip(&rep.intent)
                    .map(|(&j, w)| w * logit(x.num(j).clamp(1e-4, 1.0 - 1e-4)))
                    .sum();
                Some(intent + rep.intent_top[c(TOP_CATEGORY)])
            }
            _ => Some(dot(&rep.rho_segment[c(SEGMENT)], &rep.rho_top[c(TOP_CATEGORY)])),
        };
        Raw { click, shared, own, rho, pair }
    }

    /// A standard normal effect per (city, item) pair, hashed from the seed: observable in
    /// principle, far too sparse to learn.
    fn pair_effect(&self, city: u32, item: u32) -> f64 {
        let key = ((city as u64) << 32 | item as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        Rng::derive(self.seed ^ key, 7).normal()
    }
}
