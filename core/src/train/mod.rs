//! Training, in the split of burn's learner: [`step`] is one optimisation step (model,
//! parameters, optimiser), [`fit`] the loop around it (epochs, validation, early stopping,
//! the observer) over [`rows`] (in memory, or streamed from a file), [`checkpoint`] the
//! recorder that lets a killed run resume to exactly the result of an uninterrupted one
//! (on CPU), and [`objective`] what a step minimises. [`parallel`] shares each step over a
//! group of processes (data-parallel training, see [`Trainer::join`]). [`Throughput`] is the
//! training speed the CLI and the page report.
//!
//! A [`Trainer`] is built from its config and never changes it: the optimiser's learning
//! rates and parameter groups, the relatedness mode and the model's shape all follow from
//! it, so its fields are private and read through accessors.
//!
//! Determinism: initial weights come from the seed (see `nn::init`); the row order of epoch
//! e and the negatives of step s are drawn from streams derived from (seed, e, s), so a
//! checkpoint only needs weights, optimiser moments and the loop counters.

mod checkpoint;
mod fit;
pub mod objective;
pub mod parallel;
mod rows;
mod step;
mod throughput;

use std::collections::BTreeMap;

use candle_core::{Device, Tensor};

pub use fit::{Observer, Silent, TrainState};
pub use parallel::Collective;
pub use rows::{CsvFile, InMemory, Opener, Streamed, TrainingRows, ValidationRows};
pub use step::StepLosses;
pub use throughput::Throughput;

use crate::bundle::{self, TrainingSummary};
use crate::config::Config;
use crate::data::{Batch, Dataset};
use crate::error::Result;
use crate::evaluate::{predict, Evaluation};
use crate::model::AdaFtr;
use crate::nn::Params;
use crate::schema::Schema;
use step::Step;

pub struct Trainer {
    step: Step,
    schema: Schema,
    state: TrainState,
    device: Device,
    /// The best epoch's weights so far.
    best: Option<Vec<(String, Tensor)>>,
    /// The data-parallel group this replica trains in, if any.
    group: Option<Box<dyn Collective>>,
}

impl Trainer {
    /// A fresh model for `config` and `schema`, initialised from `config.train.seed`.
    pub fn new(config: Config, schema: Schema, device: &Device) -> Result<Self> {
        config.validate()?;
        let (model, params) = AdaFtr::seeded(&config, &schema, config.train.seed, device)?;
        let step = Step::new(config, model, params)?;
        Ok(Self { step, schema, state: TrainState::default(), device: device.clone(), best: None, group: None })
    }

    /// A trainer that starts from a trained bundle's weights, schema and model (fine-tuning):
    /// `train` replaces the bundle's training settings (epochs, learning rate, batch size,
    /// seed); the optimiser starts afresh.
    pub fn fine_tune(
        bundle: &crate::bundle::Bundle,
        train: crate::config::TrainConfig,
        device: &Device,
    ) -> Result<Self> {
        let mut config = bundle.config.clone();
        config.train = train;
        let t = Self::new(config, bundle.schema.clone(), device)?;
        t.params().restore(&bundle.params.snapshot()?)?;
        Ok(t)
    }

    pub fn config(&self) -> &Config {
        &self.step.config
    }

    pub fn schema(&self) -> &Schema {
        &self.schema
    }

    pub fn model(&self) -> &AdaFtr {
        &self.step.model
    }

    /// The trained parameters (shared with the model: setting one changes the model).
    pub fn params(&self) -> &Params {
        &self.step.params
    }

    /// Where training stands (epoch, step, history).
    pub fn state(&self) -> &TrainState {
        &self.state
    }

    pub fn device(&self) -> &Device {
        &self.device
    }

    /// One optimisation step on `batch`, at the current position of the loop (which it
    /// does not advance). A non-finite loss is an error and leaves the weights untouched.
    /// In a group (see [`Self::join`]), `batch` is the global batch: every rank passes the
    /// same one and trains on its share.
    pub fn train_step(&mut self, batch: &Batch) -> Result<StepLosses> {
        let group = match self.group.as_deref_mut() {
            Some(g) if g.size() > 1 => Some(g as &mut dyn Collective),
            _ => None,
        };
        self.step.run(batch, self.state.epoch, self.state.step, group)
    }

    /// Makes this trainer one replica of a data-parallel group: from now on each step runs
    /// the forward pass on this rank's share of the global batch and sums the gradients
    /// over the group, so that the group trains the model one process would on the same
    /// batches (see [`parallel`]). Every rank must be built from the same config, schema and
    /// seed (or checkpoint) and fed the same batches; this is checked now and after every
    /// epoch.
    pub fn join(&mut self, mut group: Box<dyn Collective>) -> Result<()> {
        if group.size() > 1 {
            let c = self.config();
            if c.loss.cl == crate::config::ClMode::Meta && c.loss.lambda > 0.0 {
                return Err(crate::Error::Config(
                    "`meta`'s lookahead hypergradient is not data-parallel; train it in one process or choose \
                     another relatedness mode"
                        .into(),
                ));
            }
            if c.train.batch_size < group.size() {
                return Err(crate::Error::Config(format!(
                    "batch_size {} is smaller than the {} processes sharing each batch",
                    c.train.batch_size,
                    group.size()
                )));
            }
            parallel::check_replicas(self.params(), group.as_mut(), "on joining")?;
        }
        self.group = Some(group);
        Ok(())
    }

    /// This replica's rank and the group's size: (0, 1) outside a group.
    pub fn rank(&self) -> (usize, usize) {
        self.group.as_ref().map_or((0, 1), |g| (g.rank(), g.size()))
    }

    pub fn evaluate(&self, ds: &Dataset) -> Result<Evaluation> {
        let p = predict(self.model(), ds, self.config().train.batch_size.max(256), &self.device)?;
        Ok(Evaluation::compute(&p, ds))
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
            notes: BTreeMap::new(),
        }
    }

    /// The model bundle of the current parameters (after `fit`: the best epoch's).
    pub fn bundle_bytes(&self, summary: &TrainingSummary) -> Result<Vec<u8>> {
        bundle::save(self.params(), self.config(), &self.schema, summary)
    }
}
