//! The fit loop: epochs of shuffled batches, validation after each epoch, early stopping on
//! the validation score, the best epoch's weights kept, and an [`Observer`] told of every
//! step and epoch.

use serde::{Deserialize, Serialize};

use super::rows::{epoch_order, InMemory, TrainingRows, ValidationRows};
use super::step::StepLosses;
use super::Trainer;
use crate::bundle::EpochRecord;
use crate::data::Dataset;
use crate::error::{Error, Result};

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
        // A final batch of one row has no negatives, and in a group every rank needs a row
        // of it: a smaller one is dropped.
        let b = self.config().train.batch_size;
        rows / b + usize::from(rows % b >= self.rank().1.max(2))
    }

    /// The order in which [`Trainer::fit`] visits the `rows` training rows in `epoch`
    /// (0-based): a seeded shuffle, the same on resume and on every machine.
    pub fn epoch_order(&self, epoch: usize, rows: usize) -> Vec<usize> {
        epoch_order(self.config().train.seed, epoch, rows)
    }

    /// Trains until `epochs` or early stopping, resuming from the current state. On return
    /// the parameters hold the best epoch's weights.
    pub fn fit(&mut self, train: &Dataset, valid: &Dataset, obs: &mut dyn Observer) -> Result<()> {
        self.fit_rows(&mut InMemory::new(train), &mut InMemory::new(valid), obs)
    }

    /// [`Self::fit`] on rows from anywhere (in memory, or streamed from a file).
    pub fn fit_rows(
        &mut self,
        train: &mut dyn TrainingRows,
        valid: &mut dyn ValidationRows,
        obs: &mut dyn Observer,
    ) -> Result<()> {
        self.fit_for(train, valid, obs, usize::MAX).map(drop)
    }

    /// [`Self::fit_rows`] for at most `steps` more optimisation steps (an epoch's validation
    /// runs after its last step, within the call that ran it); returns whether training has
    /// finished. Calling it again goes on where it stopped, exactly as if it had not
    /// stopped: what a caller that must give control back now and then (a browser worker
    /// between messages) runs instead of one long [`Self::fit_rows`].
    pub fn fit_for(
        &mut self,
        train: &mut dyn TrainingRows,
        valid: &mut dyn ValidationRows,
        obs: &mut dyn Observer,
        steps: usize,
    ) -> Result<bool> {
        let n = train.rows();
        if n < 2 {
            return Err(Error::Config(format!("training needs at least 2 rows, got {n}")));
        }
        self.state.train_rows = n;
        let (bs, seed) = (self.config().train.batch_size, self.config().train.seed);
        let per_epoch = self.steps_per_epoch(n);
        let mut left = steps;
        while !self.state.finished && self.state.epoch < self.config().train.epochs {
            if left == 0 {
                return Ok(false);
            }
            train.start_epoch(seed, self.state.epoch, self.state.step * bs)?;
            while self.state.step < per_epoch {
                if left == 0 {
                    return Ok(false);
                }
                let batch = train.next_batch(bs, &self.device)?;
                let losses = self.train_step(&batch)?;
                left -= 1;
                self.state.step += 1;
                self.state.epoch_loss_sum += losses.total;
                self.state.epoch_loss_steps += 1;
                obs.on_step(self, &losses)?;
            }
            self.end_epoch(valid, obs)?;
        }
        self.finish()?;
        Ok(true)
    }

    /// Ends training where it stands (after the last completed step): the parameters
    /// become the best epoch's weights, if an epoch has been validated.
    pub fn finish(&mut self) -> Result<()> {
        self.state.finished = true;
        if let Some(best) = &self.best {
            self.params().restore(best)?;
        }
        Ok(())
    }

    fn end_epoch(&mut self, valid: &mut dyn ValidationRows, obs: &mut dyn Observer) -> Result<()> {
        if let Some(g) = self.group.as_deref_mut() {
            let when = format!("after epoch {}", self.state.epoch + 1);
            super::parallel::check_replicas(&self.step.params, g, &when)?;
        }
        // Every rank validates on the whole validation set, so that all take the same
        // early-stopping decision and keep the same best weights.
        let eval = valid.evaluate(self)?;
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
