//! Training: one optimisation step, the epoch loop with early stopping, and checkpoints
//! that let a killed run resume to exactly the result of an uninterrupted one (on CPU).
//!
//! Determinism: initial weights come from the seed (see `model::init`); the row order of
//! epoch e and the negatives of step s are drawn from streams derived from (seed, e, s), so
//! a checkpoint only needs weights, optimiser moments and the loop counters.

use std::collections::HashMap;

use candle_core::{Device, Tensor};
use serde::{Deserialize, Serialize};

use crate::bundle::{self, EpochRecord, TrainingSummary};
use crate::config::{Backbone, Config};
use crate::data::{Batch, Dataset};
use crate::error::{Error, Result};
use crate::evaluate::{predict, Evaluation};
use crate::loss::{self, scalar};
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

impl Trainer {
    /// A fresh model, initialised from `config.train.seed`.
    pub fn new(config: Config, schema: Schema, device: &Device) -> Result<Self> {
        config.validate()?;
        let (vb, params) = seeded_var_builder(config.train.seed, device);
        let model = AdaFtr::new(&config.model, &config.loss, &schema.cardinalities(), schema.num_numeric(), vb)?;
        let opt = Adam::new(&params, adam_config(&config), |_| 1.0)?;
        Ok(Self { config, schema, model, params, state: TrainState::default(), opt, device: device.clone(), best: None })
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

    /// One optimisation step on `batch`. A non-finite loss is an error and leaves the
    /// weights untouched.
    pub fn train_step(&mut self, batch: &Batch) -> Result<StepLosses> {
        let mut rng = Rng::derive(
            self.config.train.seed ^ NEGATIVES_STREAM,
            ((self.state.epoch as u64) << 32) | self.state.step as u64,
        );
        let out = self.model.forward_t(&batch.cat, &batch.num, true)?;
        let detach = self.config.model.backbone == Backbone::SingleTask;
        let terms = loss::compute(&out, batch, &self.config.loss, detach, &mut rng)?;
        let total = scalar(&terms.total)?;
        if !total.is_finite() {
            return Err(Error::NonFinite {
                what: format!("training loss at epoch {} step {}", self.state.epoch + 1, self.state.step + 1),
                value: total,
            });
        }
        let grads = terms.total.backward()?;
        self.opt.step(&grads)?;
        let opt = |t: &Option<Tensor>| t.as_ref().map(scalar).transpose();
        Ok(StepLosses {
            total,
            ctr: scalar(&terms.ctr)?,
            ctcvr: scalar(&terms.ctcvr)?,
            cvr_click: opt(&terms.cvr_click)?,
            cl: opt(&terms.cl)?,
        })
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
            let mut v: Vec<(String, Tensor)> = all
                .iter()
                .filter_map(|(k, t)| k.strip_prefix(prefix).map(|n| (n.to_string(), t.clone())))
                .collect();
            v.sort_by(|a, b| a.0.cmp(&b.0));
            v
        };
        let params = Params::from_tensors(take("param."))?;
        let model = bundle::build_model(&config, &schema, &params, device)?;
        let mut opt = Adam::new(&params, adam_config(&config), |_| 1.0)?;
        opt.load_state(adam_step, |k| all.get(k).cloned())?;
        let best = take("best.");
        let best = if best.is_empty() { None } else { Some(best) };
        Ok(Self { config, schema, model, params, state, opt, device: device.clone(), best })
    }
}
