//! One optimisation step: forward, objective, backward, the relatedness mode's change to
//! the gradients, and the Adam update. [`Step`] owns the model, its parameters and the
//! optimiser, all built from one config that cannot change afterwards (the optimiser's
//! learning rates and parameter groups are fixed by it).

use candle_core::Tensor;
use serde::{Deserialize, Serialize};

use super::objective::{self, StepContext};
use super::parallel::{self, Collective};
use crate::config::Config;
use crate::data::Batch;
use crate::error::{Error, Result};
use crate::loss::{self, scalar};
use crate::model::AdaFtr;
use crate::nn::Params;
use crate::optim::{Adam, AdamConfig};
use crate::relatedness::{self, Mode, StepView};
use crate::rng::Rng;

/// The stream of the sampled negatives (and anything else random in a step), derived per
/// (epoch, step) from the seed.
const NEGATIVES_STREAM: u64 = 0x5EED_0002;

/// The loss values of one step.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct StepLosses {
    pub total: f64,
    pub ctr: f64,
    pub ctcvr: f64,
    pub cvr_click: Option<f64>,
    pub cl: Option<f64>,
    #[serde(default)]
    pub tau_prior: Option<f64>,
    /// The relatedness mode's auxiliary loss (`transfer`'s), if it has one.
    #[serde(default)]
    pub aux: Option<f64>,
}

fn adam_config(c: &Config) -> AdamConfig {
    AdamConfig {
        lr: c.train.lr,
        beta1: c.train.adam_beta1,
        beta2: c.train.adam_beta2,
        eps: c.train.adam_eps,
        weight_decay: c.train.weight_decay,
    }
}

/// The model being trained, its parameters and its optimiser.
pub(crate) struct Step {
    pub(super) config: Config,
    pub(super) mode: &'static dyn Mode,
    pub(super) model: AdaFtr,
    pub(super) params: Params,
    pub(super) opt: Adam,
}

impl Step {
    /// A step over `model` and `params` (fresh optimiser moments), for a validated config.
    pub(super) fn new(config: Config, model: AdaFtr, params: Params) -> Result<Self> {
        let opt = Adam::new(&params, adam_config(&config), relatedness::lr_scale(&config.train))?;
        Ok(Self { mode: relatedness::mode(config.loss.cl), config, model, params, opt })
    }

    /// The warm-up multiplier of lambda for the next step.
    fn cl_scale(&self) -> f64 {
        let w = self.config.loss.cl_warmup_steps;
        if w == 0 {
            return 1.0;
        }
        (self.opt.step_count() as f64 / w as f64).min(1.0)
    }

    /// One optimisation step on `batch`, the `index`-th of `epoch` (both 0-based; they pick
    /// the step's random stream). A non-finite loss is an error and leaves the weights
    /// untouched. With a `group`, `batch` is the global batch and this rank runs the
    /// network on its share (see [`parallel`]).
    pub(super) fn run(
        &mut self,
        batch: &Batch,
        epoch: usize,
        index: usize,
        mut group: Option<&mut dyn Collective>,
    ) -> Result<StepLosses> {
        let mut rng = Rng::derive(self.config.train.seed ^ NEGATIVES_STREAM, ((epoch as u64) << 32) | index as u64);
        let out = match group.as_deref_mut() {
            None => self.model.forward_t(&batch.cat, &batch.num, true)?,
            Some(g) => {
                let counts = parallel::shares(batch.cat.dim(0)?, g.size());
                let (start, n) = (counts[..g.rank()].iter().sum(), counts[g.rank()]);
                let local =
                    self.model.forward_t(&batch.cat.narrow(0, start, n)?, &batch.num.narrow(0, start, n)?, true)?;
                parallel::gather_outputs(&local, g, &counts)?
            }
        };
        // The mode's hook recomputes the contrastive term with the step's own negatives.
        let step_rng = rng.clone();
        let ctx = StepContext {
            cl_scale: self.cl_scale(),
            tau_prior_center: self.model.tau_logit_of(self.config.loss.tau_prior_mean as f64),
        };
        let terms = objective::compute(&out, batch, &self.config.loss, self.mode, ctx, &mut rng)?;
        let total = scalar(&terms.total)?;
        if !total.is_finite() {
            return Err(Error::NonFinite {
                what: format!("training loss at epoch {} step {}", epoch + 1, index + 1),
                value: total,
            });
        }
        let mut grads = terms.total.backward()?;
        let contrastive_at = |input: &Tensor| self.contrastive_at(batch, input, &step_rng);
        let view = StepView {
            loss: &self.config.loss,
            params: &self.params,
            out: &out,
            main: [Some(&terms.ctr), Some(&terms.ctcvr), terms.cvr_click.as_ref()].into_iter().flatten().collect(),
            cl: terms.cl.as_ref(),
            cl_scale: ctx.cl_scale,
            contrastive_at: &contrastive_at,
        };
        self.mode.after_backward(&view, &mut grads)?;
        if let Some(g) = group {
            parallel::sum_gradients(&self.params, &mut grads, g)?;
        }
        self.opt.step(&grads)?;
        let opt = |t: &Option<Tensor>| t.as_ref().map(scalar).transpose();
        Ok(StepLosses {
            total,
            ctr: scalar(&terms.ctr)?,
            ctcvr: scalar(&terms.ctcvr)?,
            cvr_click: opt(&terms.cvr_click)?,
            cl: opt(&terms.cl)?,
            tau_prior: opt(&terms.tau_prior)?,
            aux: opt(&terms.aux)?,
        })
    }

    /// The contrastive loss of `batch` at the parameters' current values (no dropout),
    /// with tau from the relatedness network on `input` and the negatives of `rng`.
    fn contrastive_at(&self, batch: &Batch, input: &Tensor, rng: &Rng) -> Result<Tensor> {
        let out = self.model.forward_t(&batch.cat, &batch.num, false)?;
        let (tau, _) =
            self.model.tau_from(input)?.ok_or_else(|| Error::Config("this mode needs a learned tau".into()))?;
        Ok(loss::contrastive(&out.z_ctr, &out.z_cvr, &tau, &self.config.loss, &mut rng.clone())?)
    }
}

#[cfg(test)]
mod tests {
    use candle_core::backprop::GradStore;
    use candle_core::Device;

    use super::*;
    use crate::config::ClMode;
    use crate::data::Dataset;
    use crate::relatedness::{in_group, meta};
    use crate::schema::{CategoricalField, NumericField, Schema, Side};
    use crate::train::Trainer;

    fn setup() -> (Trainer, Batch) {
        let cat = |n: &str, k: usize| CategoricalField::new(n, Side::User, (0..k).map(|i| i.to_string()).collect());
        let schema = Schema {
            format: "explicit".into(),
            categorical: vec![cat("a", 4), cat("b", 6)],
            numeric: vec![NumericField::identity("x", Side::Item)],
            click: "click".into(),
            conversion: "conversion".into(),
            ignored: vec![],
            group: None,
            vocabulary: None,
        };
        let mut cfg = Config::default();
        cfg.model.embedding_dim = 3;
        cfg.model.bottom = vec![8];
        cfg.model.tower = vec![6, 4];
        cfg.model.relatedness_hidden = 4;
        cfg.model.projection = vec![4];
        cfg.loss.cl = ClMode::Meta;
        cfg.loss.lambda = 0.5;
        cfg.train.batch_size = 48;
        let mut rng = Rng::new(5);
        let mut ds = Dataset::new(2, 1);
        for _ in 0..48 {
            let c = [rng.below(5) as u32, rng.below(7) as u32];
            let click = rng.bernoulli(0.4);
            ds.push(&c, &[rng.next_f32()], click, click && rng.bernoulli(0.4));
        }
        let t = Trainer::new(cfg, schema, &Device::Cpu).unwrap();
        let b = ds.range_batch(0, 48, &Device::Cpu).unwrap();
        (t, b)
    }

    /// v . grad_theta L_cl(theta, tau(phi)) with tau's input fixed, v the main-loss gradient.
    fn directional(t: &Trainer, b: &Batch, v: &GradStore, input: &Tensor) -> f64 {
        let out = t.model().forward_t(&b.cat, &b.num, false).unwrap();
        let (tau, _) = t.model().tau_from(input).unwrap().unwrap();
        let l = loss::contrastive(&out.z_ctr, &out.z_cvr, &tau.detach(), &t.config().loss, &mut Rng::new(1)).unwrap();
        let g = l.backward().unwrap();
        let mut d = 0.0;
        for (name, var) in t.params().sorted() {
            if in_group(&name) {
                continue;
            }
            if let (Some(a), Some(b)) = (v.get(var.as_tensor()), g.get(var.as_tensor())) {
                d += scalar(&(a * b).unwrap().sum_all().unwrap()).unwrap();
            }
        }
        d
    }

    #[test]
    fn meta_hypergradient_matches_a_brute_force_derivative() {
        let (t, b) = setup();
        let out = t.model().forward_t(&b.cat, &b.num, false).unwrap();
        let main = (bce_main(&out, &b)).unwrap();
        let input = out.tau_input.clone().unwrap();
        let mut grads = (&main * 0.0).unwrap().backward().unwrap();
        let step = &t.step;
        let contrastive_at = |input: &Tensor| step.contrastive_at(&b, input, &Rng::new(1));
        let view = StepView {
            loss: &step.config.loss,
            params: &step.params,
            out: &out,
            main: vec![&main],
            cl: None,
            cl_scale: 1.0,
            contrastive_at: &contrastive_at,
        };
        meta::add_hypergradient(&view, &main, &input, &mut grads).unwrap();
        let v = main.backward().unwrap();
        let lambda = t.config().loss.lambda as f64;
        let mut pairs = Vec::new();
        for name in ["relatedness.out.weight", "relatedness.out.bias", "relatedness.hidden.0.bias"] {
            let var = t.params().get(name).unwrap();
            let ours: Vec<f32> = grads.get(var.as_tensor()).unwrap().flatten_all().unwrap().to_vec1().unwrap();
            let base: Vec<f32> = var.as_tensor().flatten_all().unwrap().to_vec1().unwrap();
            for j in 0..base.len().min(4) {
                let delta = 1e-2f32;
                let at = |x: f32| {
                    let mut w = base.clone();
                    w[j] = x;
                    var.set(&Tensor::from_vec(w, var.shape(), &Device::Cpu).unwrap()).unwrap();
                    directional(&t, &b, &v, &input)
                };
                let brute = -lambda * (at(base[j] + delta) - at(base[j] - delta)) / (2.0 * delta as f64);
                var.set(&Tensor::from_vec(base.clone(), var.shape(), &Device::Cpu).unwrap()).unwrap();
                pairs.push((format!("{name}[{j}]"), ours[j] as f64, brute));
            }
        }
        // Relative agreement, with a floor for entries near a ReLU kink (a dead hidden unit
        // has exactly zero hypergradient, which the +-delta probe can straddle).
        let scale = pairs.iter().map(|p| p.2.abs()).fold(0.0, f64::max);
        assert!(pairs.len() >= 6 && scale > 0.0);
        for (what, got, brute) in &pairs {
            assert!(
                (got - brute).abs() <= 0.1 * brute.abs() + 0.02 * scale,
                "{what}: finite-difference hypergradient {got:e}, brute force {brute:e}"
            );
        }
    }

    fn bce_main(out: &crate::model::Outputs, b: &Batch) -> Result<Tensor> {
        Ok((loss::bce_with_logits(&out.logit_ctr, &b.click)?
            + loss::product_bce(&out.logit_ctr, &out.logit_cvr, &b.conversion)?)?)
    }

    #[test]
    fn meta_mode_trains_the_relatedness_network() {
        let (mut t, b) = setup();
        let before = t.params().get("relatedness.out.weight").unwrap().as_tensor().copy().unwrap();
        for _ in 0..5 {
            let l = t.train_step(&b).unwrap();
            assert!(l.cl.is_some() && l.total.is_finite());
        }
        let after = t.params().get("relatedness.out.weight").unwrap();
        let moved = scalar(&(after.as_tensor() - &before).unwrap().abs().unwrap().sum_all().unwrap()).unwrap();
        assert!(moved > 0.0);
    }
}
