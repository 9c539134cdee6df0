//! Training: one optimisation step, the epoch loop with early stopping, and checkpoints
//! that let a killed run resume to exactly the result of an uninterrupted one (on CPU).
//!
//! Determinism: initial weights come from the seed (see `model::init`); the row order of
//! epoch e and the negatives of step s are drawn from streams derived from (seed, e, s), so
//! a checkpoint only needs weights, optimiser moments and the loop counters.

use std::collections::HashMap;

use candle_core::backprop::GradStore;
use candle_core::{Device, Tensor};
use serde::{Deserialize, Serialize};

use crate::bundle::{self, EpochRecord, TrainingSummary};
use crate::config::{Backbone, ClMode, Config};
use crate::data::{Batch, Dataset};
use crate::error::{Error, Result};
use crate::evaluate::{predict, Evaluation};
use crate::loss::{self, scalar, StepContext};
use crate::model::init::{seeded_var_builder, Params};
use crate::model::AdaFtr;
use crate::optim::{Adam, AdamConfig};
use crate::rng::Rng;
use crate::schema::Schema;

const CHECKPOINT_FORMAT: &str = "adaftr-checkpoint";
const CHECKPOINT_VERSION: u32 = 1;
const ORDER_STREAM: u64 = 0x5EED_0001;
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
    #[serde(default)]
    pub transfer: Option<f64>,
}

/// The loop counters; with the weights and the optimiser this is the whole training state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct TrainState {
    /// 0-based epoch in progress.
    pub epoch: usize,
    /// Batches already done in that epoch.
    pub step: usize,
    pub best_score: Option<f64>,
    /// 1-based.
    pub best_epoch: Option<usize>,
    pub bad_epochs: usize,
    pub finished: bool,
    pub history: Vec<EpochRecord>,
    pub epoch_loss_sum: f64,
    pub epoch_loss_steps: usize,
    pub train_rows: usize,
}

/// Called by [`Trainer::fit`] as training proceeds; returning an error stops the run.
pub trait Observer {
    fn on_step(&mut self, _trainer: &Trainer, _losses: &StepLosses) -> Result<()> {
        Ok(())
    }
    /// After each epoch's validation (the epoch counter has already moved on).
    fn on_epoch(&mut self, _trainer: &Trainer, _record: &EpochRecord, _improved: bool) -> Result<()> {
        Ok(())
    }
}

/// An observer that does nothing.
pub struct Silent;
impl Observer for Silent {}

pub struct Trainer {
    pub config: Config,
    pub schema: Schema,
    pub model: AdaFtr,
    pub params: Params,
    pub state: TrainState,
    opt: Adam,
    device: Device,
    best: Option<Vec<(String, Tensor)>>,
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

/// The learning-rate multiplier of each parameter, by name.
fn lr_scale(config: &Config) -> impl Fn(&str) -> f64 {
    let tau = config.train.tau_lr_scale;
    move |name: &str| if name.starts_with("relatedness.") { tau } else { 1.0 }
}

impl Trainer {
    /// A fresh model, initialised from `config.train.seed`.
    pub fn new(config: Config, schema: Schema, device: &Device) -> Result<Self> {
        config.validate()?;
        let (vb, params) = seeded_var_builder(config.train.seed, device);
        let model = AdaFtr::new(&config.model, &config.loss, &schema.cardinalities(), schema.num_numeric(), vb)?;
        let opt = Adam::new(&params, adam_config(&config), lr_scale(&config))?;
        Ok(Self {
            config,
            schema,
            model,
            params,
            state: TrainState::default(),
            opt,
            device: device.clone(),
            best: None,
        })
    }

    pub fn device(&self) -> &Device {
        &self.device
    }

    pub fn steps_per_epoch(&self, rows: usize) -> usize {
        // A final batch of one row has no negatives; it is dropped.
        let b = self.config.train.batch_size;
        rows / b + usize::from(rows % b >= 2)
    }

    fn epoch_order(&self, rows: usize) -> Vec<usize> {
        let mut order: Vec<usize> = (0..rows).collect();
        Rng::derive(self.config.train.seed ^ ORDER_STREAM, self.state.epoch as u64).shuffle(&mut order);
        order
    }

    /// The warm-up multiplier of lambda for the next step.
    fn cl_scale(&self) -> f64 {
        let w = self.config.loss.cl_warmup_steps;
        if w == 0 {
            return 1.0;
        }
        (self.opt.step_count() as f64 / w as f64).min(1.0)
    }

    /// One optimisation step on `batch`. A non-finite loss is an error and leaves the
    /// weights untouched.
    pub fn train_step(&mut self, batch: &Batch) -> Result<StepLosses> {
        let mut rng = Rng::derive(
            self.config.train.seed ^ NEGATIVES_STREAM,
            ((self.state.epoch as u64) << 32) | self.state.step as u64,
        );
        let meta = self.config.loss.cl == ClMode::Meta;
        let mut out = self.model.forward_t(&batch.cat, &batch.num, true)?;
        if meta {
            // The contrastive term trains the model at the current temperatures; the
            // relatedness network learns only from the lookahead hypergradient below.
            out.tau = out.tau.map(|t| t.detach());
        }
        let fd_rng = rng.clone();
        let ctx = StepContext {
            detach_ctr_in_ctcvr: self.config.model.backbone == Backbone::SingleTask,
            cl_scale: self.cl_scale(),
            tau_prior_center: self.model.tau_logit_of(self.config.loss.tau_prior_mean as f64),
        };
        let terms = loss::compute(&out, batch, &self.config.loss, ctx, &mut rng)?;
        let total = scalar(&terms.total)?;
        if !total.is_finite() {
            return Err(Error::NonFinite {
                what: format!("training loss at epoch {} step {}", self.state.epoch + 1, self.state.step + 1),
                value: total,
            });
        }
        let mut grads = terms.total.backward()?;
        if meta && terms.cl.is_some() {
            let mut main = (&terms.ctr + &terms.ctcvr)?;
            if let Some(l) = &terms.cvr_click {
                main = (main + l)?;
            }
            let tau_input =
                out.tau_input.as_ref().ok_or_else(|| Error::Config("meta mode needs a learned tau".into()))?;
            self.add_meta_hypergradient(&mut grads, &main, batch, tau_input, ctx.cl_scale, &fd_rng)?;
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
            transfer: opt(&terms.transfer)?,
        })
    }

    /// `meta` mode. A plain step moves theta (every parameter but the relatedness network
    /// phi) to theta' = theta - xi (v + lambda g_cl(theta, phi)), with v the main-loss
    /// gradient. To first order L_main(theta') = L_main(theta) - xi v.(v + lambda g_cl), so
    /// d L_main(theta') / d phi = -xi lambda d/dphi [v . grad_theta L_cl(theta, phi)], and the
    /// directional derivative is a central difference (DARTS):
    /// [grad_phi L_cl(theta + eps v) - grad_phi L_cl(theta - eps v)] / (2 eps).
    /// xi is taken as 1: Adam normalises the step of phi anyway. Returns nothing; the
    /// hypergradient is added to `grads` for every parameter of phi.
    fn add_meta_hypergradient(
        &self,
        grads: &mut GradStore,
        main: &Tensor,
        batch: &Batch,
        tau_input: &Tensor,
        cl_scale: f64,
        rng: &Rng,
    ) -> Result<()> {
        let lambda = self.config.loss.lambda as f64 * cl_scale;
        if lambda == 0.0 {
            return Ok(());
        }
        let (phi, theta): (Vec<_>, Vec<_>) =
            self.params.sorted().into_iter().partition(|(name, _)| name.starts_with("relatedness."));
        let v_store = main.backward()?;
        let v: Vec<Option<Tensor>> = theta.iter().map(|(_, var)| v_store.get(var.as_tensor()).cloned()).collect();
        let mut sq = 0.0;
        for g in v.iter().flatten() {
            sq += scalar(&g.sqr()?.sum_all()?)?;
        }
        if !(sq > 0.0 && sq.is_finite()) {
            return Ok(());
        }
        let eps = self.config.loss.meta_epsilon / sq.sqrt();
        let theta0: Vec<Tensor> =
            theta.iter().map(|(_, var)| var.as_tensor().copy()).collect::<candle_core::Result<_>>()?;
        let mut phi_grads: Vec<Vec<Option<Tensor>>> = Vec::with_capacity(2);
        for sign in [1.0, -1.0] {
            for (((_, var), t0), vi) in theta.iter().zip(&theta0).zip(&v) {
                if let Some(vi) = vi {
                    var.set(&(t0 + (vi * (sign * eps))?)?)?;
                }
            }
            // theta moves, tau stays a function of phi alone (its input is the one of the
            // real step), matching the step in which the contrastive term saw tau as fixed.
            let out = self.model.forward_t(&batch.cat, &batch.num, false)?;
            let (tau, _) =
                self.model.tau_from(tau_input)?.ok_or_else(|| Error::Config("meta mode needs a learned tau".into()))?;
            let l = loss::contrastive(&out.z_ctr, &out.z_cvr, &tau, &self.config.loss, &mut rng.clone())?;
            let g = l.backward()?;
            phi_grads.push(phi.iter().map(|(_, var)| g.get(var.as_tensor()).cloned()).collect());
        }
        for ((_, var), t0) in theta.iter().zip(&theta0) {
            var.set(t0)?;
        }
        for (i, (_, var)) in phi.iter().enumerate() {
            let (Some(plus), Some(minus)) = (&phi_grads[0][i], &phi_grads[1][i]) else { continue };
            let hyper = ((plus - minus)? * (-lambda / (2.0 * eps)))?;
            let total = match grads.remove(var.as_tensor()) {
                Some(g) => (g + hyper)?,
                None => hyper,
            };
            grads.insert(var.as_tensor(), total);
        }
        Ok(())
    }

    pub fn evaluate(&self, ds: &Dataset) -> Result<Evaluation> {
        let p = predict(&self.model, ds, self.config.train.batch_size.max(256), &self.device)?;
        Ok(Evaluation::compute(&p, ds))
    }

    /// Trains until `epochs` or early stopping, resuming from `self.state`. On return the
    /// parameters hold the best epoch's weights.
    pub fn fit(&mut self, train: &Dataset, valid: &Dataset, obs: &mut dyn Observer) -> Result<()> {
        if train.len() < 2 {
            return Err(Error::Config(format!("training needs at least 2 rows, got {}", train.len())));
        }
        self.state.train_rows = train.len();
        let bs = self.config.train.batch_size;
        let steps = self.steps_per_epoch(train.len());
        while !self.state.finished && self.state.epoch < self.config.train.epochs {
            let order = self.epoch_order(train.len());
            while self.state.step < steps {
                let start = self.state.step * bs;
                let rows = &order[start..(start + bs).min(order.len())];
                let batch = train.batch(rows, &self.device)?;
                let losses = self.train_step(&batch)?;
                self.state.step += 1;
                self.state.epoch_loss_sum += losses.total;
                self.state.epoch_loss_steps += 1;
                obs.on_step(self, &losses)?;
            }
            self.end_epoch(valid, obs)?;
        }
        self.state.finished = true;
        if let Some(best) = &self.best {
            self.params.restore(best)?;
        }
        Ok(())
    }

    fn end_epoch(&mut self, valid: &Dataset, obs: &mut dyn Observer) -> Result<()> {
        let eval = self.evaluate(valid)?;
        let record = EpochRecord {
            epoch: self.state.epoch + 1,
            train_loss: self.state.epoch_loss_sum / self.state.epoch_loss_steps.max(1) as f64,
            valid: eval,
        };
        let score = record.valid.score();
        let improved = self.state.best_score.is_none_or(|b| score > b);
        if improved {
            self.state.best_score = Some(score);
            self.state.best_epoch = Some(record.epoch);
            self.state.bad_epochs = 0;
            self.best = Some(self.params.snapshot()?);
        } else {
            self.state.bad_epochs += 1;
            if self.state.bad_epochs >= self.config.train.patience.max(1) {
                self.state.finished = true;
            }
        }
        self.state.history.push(record.clone());
        self.state.epoch += 1;
        self.state.step = 0;
        self.state.epoch_loss_sum = 0.0;
        self.state.epoch_loss_steps = 0;
        obs.on_epoch(self, &record, improved)
    }

    pub fn summary(&self) -> TrainingSummary {
        let best_valid = self
            .state
            .best_epoch
            .and_then(|e| self.state.history.iter().find(|r| r.epoch == e))
            .map(|r| r.valid.clone());
        TrainingSummary {
            adaftr_version: env!("CARGO_PKG_VERSION").to_string(),
            train_rows: self.state.train_rows,
            epochs_run: self.state.history.len(),
            best_epoch: self.state.best_epoch,
            best_valid,
            history: self.state.history.clone(),
            notes: HashMap::new(),
        }
    }

    /// The model bundle of the current parameters (after `fit`: the best epoch's).
    pub fn bundle_bytes(&self, summary: &TrainingSummary) -> Result<Vec<u8>> {
        bundle::save(&self.params, &self.config, &self.schema, summary)
    }

    /// Everything needed to resume: weights, best weights, optimiser state, counters.
    pub fn checkpoint_bytes(&self) -> Result<Vec<u8>> {
        let cpu = |t: &Tensor| t.to_device(&Device::Cpu);
        let mut tensors: Vec<(String, Tensor)> = Vec::new();
        for (name, var) in self.params.sorted() {
            tensors.push((format!("param.{name}"), cpu(var.as_tensor())?));
        }
        for (name, t) in self.best.iter().flatten() {
            tensors.push((format!("best.{name}"), cpu(t)?));
        }
        for (name, t) in self.opt.state_tensors() {
            tensors.push((name, cpu(&t)?));
        }
        let meta = HashMap::from([
            ("format".to_string(), CHECKPOINT_FORMAT.to_string()),
            ("version".to_string(), CHECKPOINT_VERSION.to_string()),
            ("config".to_string(), bundle::to_json(&self.config)?),
            ("schema".to_string(), bundle::to_json(&self.schema)?),
            ("state".to_string(), bundle::to_json(&self.state)?),
            ("adam_step".to_string(), self.opt.step_count().to_string()),
        ]);
        safetensors::tensor::serialize(tensors, Some(meta)).map_err(|e| Error::BundleFormat(e.to_string()))
    }

    /// Restores a trainer from [`Trainer::checkpoint_bytes`], validating it like a bundle.
    pub fn from_checkpoint(bytes: &[u8], device: &Device) -> Result<Self> {
        let meta = bundle::checked_metadata(bytes, CHECKPOINT_FORMAT, CHECKPOINT_VERSION)?;
        let (config, schema) = bundle::config_and_schema(&meta)?;
        let field = |key: &str| {
            meta.get(key).ok_or_else(|| Error::BundleMetadata { key: key.into(), reason: "missing".into() })
        };
        let state: TrainState = serde_json::from_str(field("state")?)
            .map_err(|e| Error::BundleMetadata { key: "state".into(), reason: e.to_string() })?;
        let adam_step: u64 = field("adam_step")?
            .parse()
            .map_err(|_| Error::BundleMetadata { key: "adam_step".into(), reason: "not a number".into() })?;
        let all: HashMap<String, Tensor> = bundle::read_tensors(bytes, device)?.into_iter().collect();
        let take = |prefix: &str| -> Vec<(String, Tensor)> {
            let mut v: Vec<(String, Tensor)> =
                all.iter().filter_map(|(k, t)| k.strip_prefix(prefix).map(|n| (n.to_string(), t.clone()))).collect();
            v.sort_by(|a, b| a.0.cmp(&b.0));
            v
        };
        let params = Params::from_tensors(take("param."))?;
        let model = bundle::build_model(&config, &schema, &params, device)?;
        let mut opt = Adam::new(&params, adam_config(&config), lr_scale(&config))?;
        opt.load_state(adam_step, |k| all.get(k).cloned())?;
        let best = take("best.");
        // The best-epoch snapshot must be a copy of this very model, or the resumed run
        // would only fail when it restores it at the end.
        for (name, t) in &best {
            match params.get(name) {
                None => return Err(Error::UnexpectedTensor(format!("best.{name}"))),
                Some(v) if v.dims() != t.dims() => {
                    return Err(Error::ShapeMismatch {
                        name: format!("best.{name}"),
                        expected: v.dims().to_vec(),
                        found: t.dims().to_vec(),
                    })
                }
                Some(_) => {}
            }
        }
        if !best.is_empty() && best.len() != params.len() {
            return Err(Error::MissingTensor("best.* (the best-epoch snapshot is incomplete)".into()));
        }
        let best = if best.is_empty() { None } else { Some(best) };
        Ok(Self { config, schema, model, params, state, opt, device: device.clone(), best })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ClMode;
    use crate::schema::{CategoricalField, NumericField, Side};

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
        let out = t.model.forward_t(&b.cat, &b.num, false).unwrap();
        let (tau, _) = t.model.tau_from(input).unwrap().unwrap();
        let l = loss::contrastive(&out.z_ctr, &out.z_cvr, &tau.detach(), &t.config.loss, &mut Rng::new(1)).unwrap();
        let g = l.backward().unwrap();
        let mut d = 0.0;
        for (name, var) in t.params.sorted() {
            if name.starts_with("relatedness.") {
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
        let out = t.model.forward_t(&b.cat, &b.num, false).unwrap();
        let main = (bce_main(&out, &b)).unwrap();
        let input = out.tau_input.clone().unwrap();
        let mut grads = (&main * 0.0).unwrap().backward().unwrap();
        t.add_meta_hypergradient(&mut grads, &main, &b, &input, 1.0, &Rng::new(1)).unwrap();
        let v = main.backward().unwrap();
        let lambda = t.config.loss.lambda as f64;
        let mut pairs = Vec::new();
        for name in ["relatedness.out.weight", "relatedness.out.bias", "relatedness.hidden.0.bias"] {
            let var = t.params.get(name).unwrap();
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
        let before = t.params.get("relatedness.out.weight").unwrap().as_tensor().copy().unwrap();
        for _ in 0..5 {
            let l = t.train_step(&b).unwrap();
            assert!(l.cl.is_some() && l.total.is_finite());
        }
        let after = t.params.get("relatedness.out.weight").unwrap();
        let moved = scalar(&(after.as_tensor() - &before).unwrap().abs().unwrap().sum_all().unwrap()).unwrap();
        assert!(moved > 0.0);
    }
}
