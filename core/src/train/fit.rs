//! The fit loop: epochs of shuffled batches, validation after each epoch, early stopping on
//! the validation score, the best epoch's weights kept, and an [`Observer`] told of every
//! step and epoch.

use serde::{Deserialize, Serialize};

use super::step::StepLosses;
use super::Trainer;
use crate::bundle::EpochRecord;
use crate::data::Dataset;
use crate::error::{Error, Result};
use crate::rng::Rng;

/// The stream of each epoch's row order, derived per epoch from the seed.
const ORDER_STREAM: u64 = 0x5EED_0001;

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

impl Trainer {
    /// Batches per epoch over `rows` training rows.
    pub fn steps_per_epoch(&self, rows: usize) -> usize {
        // A final batch of one row has no negatives; it is dropped.
        let b = self.config().train.batch_size;
        rows / b + usize::from(rows % b >= 2)
    }

    /// The order in which [`Trainer::fit`] visits the `rows` training rows in `epoch`
    /// (0-based): a seeded shuffle, the same on resume and on every machine.
    pub fn epoch_order(&self, epoch: usize, rows: usize) -> Vec<usize> {
        let mut order: Vec<usize> = (0..rows).collect();
        Rng::derive(self.config().train.seed ^ ORDER_STREAM, epoch as u64).shuffle(&mut order);
        order
    }

    /// Trains until `epochs` or early stopping, resuming from the current state. On return
    /// the parameters hold the best epoch's weights.
    pub fn fit(&mut self, train: &Dataset, valid: &Dataset, obs: &mut dyn Observer) -> Result<()> {
        if train.len() < 2 {
            return Err(Error::Config(format!("training needs at least 2 rows, got {}", train.len())));
        }
        self.state.train_rows = train.len();
        let bs = self.config().train.batch_size;
        let steps = self.steps_per_epoch(train.len());
        while !self.state.finished && self.state.epoch < self.config().train.epochs {
            let order = self.epoch_order(self.state.epoch, train.len());
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
            self.params().restore(best)?;
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
            self.best = Some(self.params().snapshot()?);
        } else {
            self.state.bad_epochs += 1;
            if self.state.bad_epochs >= self.config().train.patience.max(1) {
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
}
