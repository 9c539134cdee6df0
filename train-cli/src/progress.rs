//! Training progress: a progress bar with samples/s, loss terms and ETA (hidden when stderr
//! is not a terminal), one line per epoch with validation metrics, the tau distribution and
//! the training throughput, JSON lines for `--metrics-out`, and periodic checkpoints.

use std::fs::OpenOptions;
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::time::Instant;

use adaftr_core::bundle::EpochRecord;
use adaftr_core::train::{Observer, StepLosses, Throughput, Trainer};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::json;

use crate::files;

pub struct TrainObserver {
    bar: ProgressBar,
    pub metrics_out: Option<PathBuf>,
    pub checkpoint: Option<PathBuf>,
    pub checkpoint_every: usize,
    steps_per_epoch: usize,
    batch_size: usize,
    /// Exponential moving averages of the loss terms, for a readable bar.
    ema: Option<StepLosses>,
    /// The epoch's speed (the page's Train panel measures it the same way), on a clock
    /// started with the observer.
    throughput: Throughput,
    clock: Instant,
    /// No bar and no epoch lines (the other ranks of a data-parallel job).
    quiet: bool,
}

impl TrainObserver {
    pub fn new(steps_per_epoch: usize, batch_size: usize) -> Self {
        let bar = ProgressBar::new(steps_per_epoch as u64);
        if !std::io::stderr().is_terminal() {
            bar.set_draw_target(ProgressDrawTarget::hidden());
        }
        bar.set_style(
            ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len} {per_sec} batches, ETA {eta} {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
        );
        Self {
            bar,
            metrics_out: None,
            checkpoint: None,
            checkpoint_every: 0,
            steps_per_epoch,
            batch_size,
            ema: None,
            throughput: Throughput::default(),
            clock: Instant::now(),
            quiet: false,
        }
    }

    /// Reports nothing (but still checkpoints and writes metrics if told to).
    pub fn quiet(&mut self) {
        self.bar.set_draw_target(ProgressDrawTarget::hidden());
        self.quiet = true;
    }

    /// Rows per second over the epoch's steps after the first (of this run: a resumed
    /// epoch counts from where it resumed).
    fn samples_per_second(&self) -> Option<f64> {
        self.throughput.steps_per_second().map(|s| s * self.batch_size as f64)
    }

    fn save_checkpoint(&self, trainer: &Trainer) -> adaftr_core::Result<()> {
        if let Some(path) = &self.checkpoint {
            let bytes = trainer.checkpoint_bytes()?;
            files::write_atomic(path, &bytes).map_err(|e| adaftr_core::Error::Io {
                file: path.display().to_string(),
                source: std::io::Error::other(format!("{e:#}")),
            })?;
        }
        Ok(())
    }

    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

fn fmt_opt(x: Option<f64>) -> String {
    x.map_or("n/a".into(), |v| format!("{v:.4}"))
}

impl Observer for TrainObserver {
    fn on_step(&mut self, trainer: &Trainer, l: &StepLosses) -> adaftr_core::Result<()> {
        let s = trainer.state();
        self.throughput.step(self.clock.elapsed().as_secs_f64() * 1e3);
        if s.step == 1 {
            self.bar.reset();
            self.bar.set_length(self.steps_per_epoch as u64);
            self.bar.set_prefix(format!("epoch {}", s.epoch + 1));
        }
        let a = 0.05;
        let mix = |old: f64, new: f64| old * (1.0 - a) + new * a;
        self.ema = Some(match self.ema {
            None => *l,
            Some(e) => StepLosses {
                total: mix(e.total, l.total),
                ctr: mix(e.ctr, l.ctr),
                ctcvr: mix(e.ctcvr, l.ctcvr),
                cvr_click: l.cvr_click.map(|v| mix(e.cvr_click.unwrap_or(v), v)),
                cl: l.cl.map(|v| mix(e.cl.unwrap_or(v), v)),
                tau_prior: l.tau_prior.map(|v| mix(e.tau_prior.unwrap_or(v), v)),
                aux: l.aux.map(|v| mix(e.aux.unwrap_or(v), v)),
            },
        });
        if let Some(e) = &self.ema {
            let cl = e.cl.map_or(String::new(), |c| format!(" cl {c:.4}"));
            self.bar.set_message(format!(
                "({} rows/batch) loss {:.4} ctr {:.4} ctcvr {:.4}{cl}",
                self.batch_size, e.total, e.ctr, e.ctcvr
            ));
        }
        self.bar.set_position(s.step as u64);
        if self.checkpoint_every > 0 && s.step.is_multiple_of(self.checkpoint_every) {
            self.save_checkpoint(trainer)?;
        }
        Ok(())
    }

    fn on_epoch(&mut self, trainer: &Trainer, r: &EpochRecord, improved: bool) -> adaftr_core::Result<()> {
        self.bar.finish_and_clear();
        let v = &r.valid;
        let tau = v.tau.map_or(String::new(), |t| {
            format!(" | tau mean {:.3} p5 {:.3} p50 {:.3} p95 {:.3}", t.mean, t.p5, t.p50, t.p95)
        });
        let speed = self.samples_per_second();
        if !self.quiet {
            eprintln!(
                "epoch {:>2}: train loss {:.4} | valid AUC ctr {} cvr {} ctcvr {}{tau} | {}{}",
                r.epoch,
                r.train_loss,
                fmt_opt(v.auc_ctr),
                fmt_opt(v.auc_cvr),
                fmt_opt(v.auc_ctcvr),
                speed.map_or("n/a".into(), |x| format!("{x:.0} samples/s")),
                if improved { " *" } else { "" }
            );
        }
        self.throughput.end_epoch();
        if let Some(path) = &self.metrics_out {
            let mut line = json!({
                "epoch": r.epoch,
                "train_loss": r.train_loss,
                "improved": improved,
                "auc_ctr": v.auc_ctr, "auc_cvr": v.auc_cvr, "auc_ctcvr": v.auc_ctcvr,
                "logloss_ctr": v.logloss_ctr, "logloss_cvr": v.logloss_cvr, "logloss_ctcvr": v.logloss_ctcvr,
                "gauc_ctr": v.gauc_ctr,
                "rows": v.rows, "clicks": v.clicks, "conversions": v.conversions,
                "samples_per_second": speed,
            });
            if let Some(t) = v.tau {
                line["tau_mean"] = json!(t.mean);
                line["tau_p5"] = json!(t.p5);
                line["tau_p50"] = json!(t.p50);
                line["tau_p95"] = json!(t.p95);
            }
            let io = |e: std::io::Error| adaftr_core::Error::Io { file: path.display().to_string(), source: e };
            let mut f = OpenOptions::new().create(true).append(true).open(path).map_err(io)?;
            writeln!(f, "{line}").map_err(io)?;
        }
        // The epoch boundary is always a checkpoint, so a resumed run never repeats an epoch.
        self.save_checkpoint(trainer)
    }
}
