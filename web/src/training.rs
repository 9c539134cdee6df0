//! Training in the browser: what the Train panel asks for ([`TrainRequest`]), what the
//! training worker reports back ([`Report`]), and the [`Session`] the worker runs. A session
//! is the CLI's training: core's loaders and `Trainer` (`fit_for`, the loop `fit_rows` runs),
//! run a few steps at a time so that the worker can read Pause and Stop between them. It is
//! plain Rust, tested natively; the worker (`src/worker.rs`) only moves messages.

use adaftr_core::bundle::{Bundle, EpochRecord, TrainingSummary};
use adaftr_core::config::{Backbone, ClMode, Config, TrainConfig};
use adaftr_core::data::{holdout, load_train, load_with_schema, Dataset, Holdout, LoadOptions, SchemaSpec};
use adaftr_core::train::{InMemory, Observer, StepLosses, Throughput, Trainer};
use std::io::Read;

use candle_core::Device;
use serde::{Deserialize, Serialize};

use crate::format;

/// Training files larger than this are refused before being read: about 500,000 rows of
/// the AliExpress layout, which the page holds (as text, then encoded) well inside a
/// browser tab's memory.
pub const MAX_TRAIN_BYTES: f64 = 256.0 * 1024.0 * 1024.0;

/// Checks a training file by name and size alone, before reading it.
pub fn check_training_file(name: &str, size: f64) -> Result<(), String> {
    if size > MAX_TRAIN_BYTES {
        return Err(format!(
            "`{name}` is {}; training files larger than {} are refused (train on it with the `adaftr` command \
             instead). The current model is still loaded.",
            format::bytes(size as u64),
            format::bytes(MAX_TRAIN_BYTES as u64)
        ));
    }
    if size == 0.0 {
        return Err(format!("`{name}` is empty. The current model is still loaded."));
    }
    Ok(())
}

/// Where training starts from.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Start {
    /// The current model's weights, schema and model; values it has not seen map to OOV.
    FineTune,
    /// Fresh weights, and a schema fitted on the file.
    Scratch,
}

/// What the Train panel asks the worker to do with a file.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct TrainRequest {
    /// The file's name, for messages and the bundle's summary.
    pub file: String,
    pub start: Start,
    /// From scratch only (fine-tuning keeps the model's).
    pub backbone: Backbone,
    pub cl: ClMode,
    pub epochs: usize,
    /// The share of rows (of groups, where the layout has a group column) held out for
    /// validation.
    pub valid_fraction: f64,
    pub batch_size: usize,
    pub lr: f64,
    pub seed: u64,
    /// The schema of a CSV of neither known layout (a JSON file dropped beside it).
    pub spec: Option<SchemaSpec>,
}

impl Default for TrainRequest {
    fn default() -> Self {
        let c = Config::default();
        Self {
            file: String::new(),
            start: Start::Scratch,
            backbone: c.model.backbone,
            cl: c.loss.cl,
            epochs: 3,
            valid_fraction: 0.2,
            batch_size: c.train.batch_size,
            lr: c.train.lr,
            seed: c.train.seed,
            spec: None,
        }
    }
}

impl TrainRequest {
    fn train_config(&self) -> TrainConfig {
        TrainConfig {
            epochs: self.epochs,
            batch_size: self.batch_size,
            lr: self.lr,
            seed: self.seed,
            ..TrainConfig::default()
        }
    }
}

/// What the worker tells the page.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub enum Report {
    /// The file is read, split and encoded; training starts.
    Ready {
        train_rows: usize,
        valid_rows: usize,
        clicks: usize,
        conversions: usize,
        /// The column the validation split went by, if any.
        group: Option<String>,
        steps_per_epoch: usize,
        epochs: usize,
        parameters: usize,
    },
    /// One optimisation step done (`step` counts from 1 within `epoch`, from 1).
    Step { epoch: usize, step: usize, losses: StepLosses },
    /// An epoch ended with its validation.
    Epoch { record: EpochRecord, improved: bool },
    /// Training ended (all epochs, early stopping, or Stop); the bundle comes with it.
    Done { summary: TrainingSummary, stopped: bool },
    /// Nothing was trained, or training broke off; the page keeps its model.
    Failed { message: String },
}

/// One training run over one file.
pub struct Session {
    trainer: Trainer,
    train: Dataset,
    valid: Dataset,
    file: String,
}

/// Collects the reports of a slice of training.
struct Collect<'a>(&'a mut Vec<Report>);

impl Observer for Collect<'_> {
    fn on_step(&mut self, t: &Trainer, losses: &StepLosses) -> adaftr_core::Result<()> {
        let s = t.state();
        self.0.push(Report::Step { epoch: s.epoch + 1, step: s.step, losses: *losses });
        Ok(())
    }

    fn on_epoch(&mut self, _: &Trainer, record: &EpochRecord, improved: bool) -> adaftr_core::Result<()> {
        self.0.push(Report::Epoch { record: record.clone(), improved });
        Ok(())
    }
}

impl Session {
    /// Reads `data` (a CSV, plain or gzipped), holds out the validation split, and builds
    /// the trainer: from `base`'s weights to fine-tune, or fresh. Errors are the loaders'
    /// (file, line, column, value), at the line of the file as given.
    pub fn start(req: &TrainRequest, data: impl Read, base: Option<&Bundle>) -> Result<(Self, Report), String> {
        let file = req.file.as_str();
        let spec = match (req.start, base) {
            // Fine-tuning reads the file with the model's schema, whatever its layout.
            (Start::FineTune, Some(b)) => Some(spec_of(b)),
            _ => req.spec.clone(),
        };
        let split = holdout(data, file, spec.as_ref(), req.valid_fraction, req.seed).map_err(|e| e.to_string())?;
        let opts = LoadOptions { spec: req.spec.clone(), ..LoadOptions::default() };
        let (trainer, train) = match (req.start, base) {
            (Start::FineTune, Some(b)) => {
                let (train, _) = load_with_schema(&split.train[..], file, &b.schema, &opts)
                    .map_err(|e| relocated(e, &split.train_lines))?;
                let t = Trainer::fine_tune(b, req.train_config(), &Device::Cpu).map_err(|e| e.to_string())?;
                (t, train)
            }
            (Start::FineTune, None) => return Err("there is no model to fine-tune; train from scratch".into()),
            (Start::Scratch, _) => {
                let (schema, train, _) =
                    load_train(&split.train[..], file, &opts).map_err(|e| relocated(e, &split.train_lines))?;
                let mut cfg = Config::default();
                cfg.model.backbone = req.backbone;
                cfg.loss.cl = req.cl;
                cfg.train = req.train_config();
                (Trainer::new(cfg, schema, &Device::Cpu).map_err(|e| e.to_string())?, train)
            }
        };
        let (valid, _) = load_with_schema(&split.valid[..], file, trainer.schema(), &opts)
            .map_err(|e| relocated(e, &split.valid_lines))?;
        let ready = Report::Ready {
            train_rows: train.len(),
            valid_rows: valid.len(),
            clicks: train.clicks(),
            conversions: train.conversions(),
            group: split.group,
            steps_per_epoch: trainer.steps_per_epoch(train.len()),
            epochs: trainer.config().train.epochs,
            parameters: trainer.params().numel(),
        };
        Ok((Self { trainer, train, valid, file: file.to_string() }, ready))
    }

    /// Trains for at most `steps` more steps; the reports of what happened, and whether
    /// training has finished.
    pub fn run(&mut self, steps: usize) -> Result<(Vec<Report>, bool), String> {
        let mut reports = Vec::new();
        let finished = {
            let (mut train, mut valid) = (InMemory::new(&self.train), InMemory::new(&self.valid));
            self.trainer.fit_for(&mut train, &mut valid, &mut Collect(&mut reports), steps)
        };
        match finished {
            Ok(done) => Ok((reports, done)),
            Err(e) => Err(e.to_string()),
        }
    }

    /// Ends training now: the model becomes the best validated epoch's (the current
    /// weights if no epoch has ended yet).
    pub fn stop(&mut self) -> Result<(), String> {
        self.trainer.finish().map_err(|e| e.to_string())
    }

    pub fn summary(&self) -> TrainingSummary {
        let mut s = self.trainer.summary();
        s.notes.insert("train".into(), self.file.clone());
        s.notes.insert("trained".into(), "in the browser".into());
        s
    }

    /// The model bundle of the current weights, as `adaftr train` writes it.
    pub fn bundle(&self) -> Result<Vec<u8>, String> {
        self.trainer.bundle_bytes(&self.summary()).map_err(|e| e.to_string())
    }

    pub fn trainer(&self) -> &Trainer {
        &self.trainer
    }
}

/// Where a training run stands, as the Train panel shows it: built from the worker's
/// reports alone (and the page's clock, for speed and ETA).
#[derive(Clone, Debug, PartialEq, Default)]
pub struct Progress {
    pub phase: Phase,
    /// Bytes of the file read so far, and its size.
    pub read: (f64, f64),
    pub train_rows: usize,
    pub valid_rows: usize,
    pub group: Option<String>,
    pub steps_per_epoch: usize,
    pub epochs: usize,
    pub parameters: usize,
    /// The step in progress: epoch from 1, step within it from 1.
    pub epoch: usize,
    pub step: usize,
    pub steps_done: usize,
    /// After each step: (steps done, the smoothed total loss, CTR loss and CTCVR loss),
    /// thinned to at most [`Progress::MAX_POINTS`] points.
    pub loss: Vec<(f64, [f64; 3])>,
    /// Each validated epoch, with whether it improved the best score.
    pub records: Vec<(EpochRecord, bool)>,
    pub error: Option<String>,
    /// The worker's wasm memory, in bytes (its peak: wasm memory never shrinks).
    pub memory: f64,
    /// The epoch's speed as the CLI measures it, timed by the reports' arrival on the page;
    /// and the last finished epoch's, shown until the new epoch has its own.
    throughput: Throughput,
    last_epoch_speed: Option<f64>,
    smoothed: Option<[f64; 3]>,
}

/// A training run's phase.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Phase {
    #[default]
    Idle,
    Reading,
    Training,
    Paused,
    Done,
    Stopped,
    Failed,
}

impl Progress {
    pub const MAX_POINTS: usize = 400;

    /// A run that starts reading a file of `size` bytes.
    pub fn reading(size: f64) -> Self {
        Self { phase: Phase::Reading, read: (0.0, size), ..Self::default() }
    }

    pub fn total_steps(&self) -> usize {
        self.steps_per_epoch * self.epochs
    }

    pub fn apply(&mut self, r: &Report, now: f64) {
        match r {
            Report::Ready { train_rows, valid_rows, group, steps_per_epoch, epochs, parameters, .. } => {
                (self.train_rows, self.valid_rows, self.group) = (*train_rows, *valid_rows, group.clone());
                (self.steps_per_epoch, self.epochs, self.parameters) = (*steps_per_epoch, *epochs, *parameters);
                self.phase = Phase::Training;
            }
            Report::Step { epoch, step, losses } => {
                (self.epoch, self.step) = (*epoch, *step);
                self.steps_done += 1;
                self.throughput.step(now);
                let now = [losses.total, losses.ctr, losses.ctcvr];
                let s = self.smoothed.map_or(now, |s| std::array::from_fn(|i| 0.9 * s[i] + 0.1 * now[i]));
                self.smoothed = Some(s);
                self.loss.push((self.steps_done as f64, s));
                if self.loss.len() > Self::MAX_POINTS {
                    // Keep every other point: the curve keeps its shape at half the points.
                    self.loss = self.loss.iter().copied().step_by(2).collect();
                }
            }
            Report::Epoch { record, improved } => {
                self.records.push((record.clone(), *improved));
                self.last_epoch_speed = self.throughput.steps_per_second().or(self.last_epoch_speed);
                self.throughput.end_epoch();
            }
            Report::Done { stopped, .. } => {
                self.pause();
                self.phase = if *stopped { Phase::Stopped } else { Phase::Done };
            }
            Report::Failed { message } => {
                self.pause();
                self.phase = Phase::Failed;
                self.error = Some(message.clone());
            }
        }
    }

    /// Bytes of the file read so far.
    pub fn read_bytes(&mut self, bytes: f64) {
        self.read.0 = bytes;
    }

    /// Stops the clock (Pause, or the end).
    pub fn pause(&mut self) {
        self.throughput.pause();
        if self.phase == Phase::Training {
            self.phase = Phase::Paused;
        }
    }

    pub fn resume(&mut self) {
        if self.phase == Phase::Paused {
            self.phase = Phase::Training;
        }
    }

    /// Steps per second: the epoch's after its first step, pauses excluded (the speed
    /// `adaftr train` prints); the previous epoch's until this one has two steps.
    pub fn steps_per_second(&self) -> Option<f64> {
        self.throughput.steps_per_second().or(self.last_epoch_speed)
    }

    /// Seconds left at that speed, for every epoch still to run (early stopping may end
    /// sooner).
    pub fn eta_seconds(&self) -> Option<f64> {
        let left = self.total_steps().saturating_sub(self.steps_done);
        self.steps_per_second().map(|s| left as f64 / s)
    }

    /// The share of the current epoch done, in [0, 1].
    pub fn epoch_fraction(&self) -> f64 {
        if self.steps_per_epoch == 0 {
            return 0.0;
        }
        (self.step as f64 / self.steps_per_epoch as f64).min(1.0)
    }

    pub fn running(&self) -> bool {
        matches!(self.phase, Phase::Reading | Phase::Training | Phase::Paused)
    }
}

/// What one training step does, for comparing targets: a fresh session on a small
/// generated file (the same bytes on every target), one step; the step's losses and the
/// first values of every parameter after it. The native tests keep
/// `tests/fixtures/train-step.json` equal to it, and the wasm tests compare the browser's
/// step with that file.
#[doc(hidden)]
pub fn step_fingerprint() -> Result<StepFingerprint, String> {
    let mut csv = Vec::new();
    let synth = adaftr_core::data::SynthConfig { rows: 800, seed: 31, compute_auc: false, ..Default::default() };
    adaftr_core::data::generate(&synth, &mut csv, std::io::sink()).map_err(|e| e.to_string())?;
    let req = TrainRequest {
        file: "fingerprint.csv".into(),
        backbone: Backbone::SharedBottom,
        cl: ClMode::Transfer,
        batch_size: 256,
        epochs: 1,
        ..TrainRequest::default()
    };
    let (mut session, _) = Session::start(&req, &csv[..], None)?;
    let (reports, _) = session.run(1)?;
    let losses = reports
        .iter()
        .find_map(|r| match r {
            Report::Step { losses, .. } => Some(*losses),
            _ => None,
        })
        .ok_or("no step")?;
    let mut weights = Vec::new();
    for (name, t) in session.trainer().params().snapshot().map_err(|e| e.to_string())? {
        let v = t.flatten_all().and_then(|t| t.to_vec1::<f32>()).map_err(|e| e.to_string())?;
        weights.push((name, v.into_iter().take(6).collect()));
    }
    Ok(StepFingerprint { losses: [losses.total, losses.ctr, losses.ctcvr], weights })
}

/// See [`step_fingerprint`].
#[doc(hidden)]
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct StepFingerprint {
    pub losses: [f64; 3],
    pub weights: Vec<(String, Vec<f32>)>,
}

impl StepFingerprint {
    /// The largest difference from `other`, relative to 1 + |value|, and where it is.
    pub fn difference(&self, other: &Self) -> (f64, String) {
        let mut worst = (0.0, String::new());
        let mut see = |a: f64, b: f64, what: &str| {
            let d = (a - b).abs() / (1.0 + a.abs());
            if d > worst.0 || !d.is_finite() {
                worst = (d, what.to_string());
            }
        };
        for (i, (a, b)) in self.losses.iter().zip(&other.losses).enumerate() {
            see(*a, *b, &format!("loss {i}"));
        }
        if self.weights.len() != other.weights.len() {
            return (f64::INFINITY, "the parameter lists differ".into());
        }
        for ((n, a), (m, b)) in self.weights.iter().zip(&other.weights) {
            if n != m || a.len() != b.len() {
                return (f64::INFINITY, format!("{n} against {m}"));
            }
            for (x, y) in a.iter().zip(b) {
                see(*x as f64, *y as f64, n);
            }
        }
        worst
    }
}

/// A loader's error in a part of the split, at the line of the file as given.
fn relocated(e: adaftr_core::Error, lines: &[u64]) -> String {
    Holdout::relocate(e, lines).to_string()
}

/// The schema spec that reads a file into `b`'s schema (its columns and roles).
fn spec_of(b: &Bundle) -> SchemaSpec {
    let s = &b.schema;
    SchemaSpec {
        categorical: s.categorical.iter().map(|f| f.name.clone()).collect(),
        numeric: s.numeric.iter().map(|f| f.name.clone()).collect(),
        click: s.click.clone(),
        conversion: s.conversion.clone(),
        ignored: s.ignored.clone(),
        group: s.group.clone(),
        ..SchemaSpec::default()
    }
}

#[cfg(test)]
mod tests {
    use adaftr_core::data::{generate, SynthConfig};

    use super::*;

    fn synth(rows: usize, seed: u64) -> Vec<u8> {
        let mut csv = Vec::new();
        generate(&SynthConfig { rows, seed, compute_auc: false, ..SynthConfig::default() }, &mut csv, std::io::sink())
            .unwrap();
        csv
    }

    fn small(start: Start) -> TrainRequest {
        TrainRequest {
            file: "drop.csv".into(),
            start,
            backbone: Backbone::SharedBottom,
            epochs: 2,
            batch_size: 256,
            ..TrainRequest::default()
        }
    }

    /// Runs a session to the end in slices of `slice` steps; its reports.
    fn run_to_end(s: &mut Session, slice: usize) -> Vec<Report> {
        let mut all = Vec::new();
        loop {
            let (r, done) = s.run(slice).unwrap();
            all.extend(r);
            if done {
                return all;
            }
        }
    }

    #[test]
    fn a_session_trains_what_the_cli_trains_whatever_the_slices() {
        let data = synth(3_000, 1);
        let (mut a, ready) = Session::start(&small(Start::Scratch), &data[..], None).unwrap();
        let Report::Ready { train_rows, valid_rows, steps_per_epoch, group, .. } = ready else { panic!("{ready:?}") };
        assert_eq!(train_rows + valid_rows, 3_000);
        assert_eq!(group.as_deref(), Some("search_id"));
        let reports = run_to_end(&mut a, 1_000);
        let steps = reports.iter().filter(|r| matches!(r, Report::Step { .. })).count();
        let epochs = reports.iter().filter(|r| matches!(r, Report::Epoch { .. })).count();
        assert_eq!((steps, epochs), (2 * steps_per_epoch, 2));
        // Three steps at a time (yielding in between, as the worker does) is the same run.
        let (mut b, _) = Session::start(&small(Start::Scratch), &data[..], None).unwrap();
        assert_eq!(run_to_end(&mut b, 3), reports);
        assert_eq!(a.bundle().unwrap(), b.bundle().unwrap());

        // And it is the CLI's training of the same rows: the same trainer over the same
        // split, through fit_rows.
        let split = holdout(&data[..], "drop.csv", None, 0.2, TrainRequest::default().seed).unwrap();
        let (schema, train, _) = load_train(&split.train[..], "drop.csv", &LoadOptions::default()).unwrap();
        let (valid, _) = load_with_schema(&split.valid[..], "drop.csv", &schema, &LoadOptions::default()).unwrap();
        let mut t = Trainer::new(a.trainer().config().clone(), schema, &Device::Cpu).unwrap();
        t.fit(&train, &valid, &mut adaftr_core::train::Silent).unwrap();
        assert_eq!(t.params().snapshot().unwrap().len(), a.trainer().params().snapshot().unwrap().len());
        for ((n, x), (_, y)) in t.params().snapshot().unwrap().iter().zip(a.trainer().params().snapshot().unwrap()) {
            let same = x.flatten_all().unwrap().to_vec1::<f32>().unwrap()
                == y.flatten_all().unwrap().to_vec1::<f32>().unwrap();
            assert!(same, "{n} differs from the CLI's training");
        }
    }

    #[test]
    fn fine_tuning_starts_from_the_model_and_keeps_its_schema() {
        let (mut first, _) = Session::start(&small(Start::Scratch), &synth(2_000, 1)[..], None).unwrap();
        run_to_end(&mut first, 100);
        let base = adaftr_core::bundle::load(&first.bundle().unwrap(), &Device::Cpu).unwrap();
        let req = TrainRequest { epochs: 1, ..small(Start::FineTune) };
        let (tuned, _) = Session::start(&req, &synth(1_500, 9)[..], Some(&base)).unwrap();
        assert_eq!(tuned.trainer().schema(), &base.schema);
        // Before any step, the weights are the model's.
        for (name, w) in base.params.snapshot().unwrap() {
            let mine = tuned.trainer().params().get(&name).unwrap();
            let d = (mine.as_tensor() - &w).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
            assert_eq!(d, 0.0, "{name}");
        }
        let err = Session::start(&req, &synth(100, 3)[..], None).err().unwrap();
        assert!(err.contains("no model to fine-tune"), "{err}");
    }

    /// The fixture the browser's step is compared with is what the native step gives
    /// (`ADAFTR_UPDATE_FIXTURES=1` rewrites it after a deliberate change of the model).
    #[test]
    fn the_step_fixture_is_the_native_step() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/train-step.json");
        let native = step_fingerprint().unwrap();
        if std::env::var_os("ADAFTR_UPDATE_FIXTURES").is_some() {
            std::fs::write(path, serde_json::to_string_pretty(&native).unwrap()).unwrap();
        }
        let fixture: StepFingerprint = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        let (d, what) = fixture.difference(&native);
        assert!(d < 1e-6, "{path} is stale ({what} differs by {d:e}); rerun with ADAFTR_UPDATE_FIXTURES=1");
    }

    #[test]
    fn progress_follows_the_reports_and_leaves_pauses_out_of_the_speed() {
        let data = synth(2_000, 4);
        let (mut s, ready) = Session::start(&small(Start::Scratch), &data[..], None).unwrap();
        let mut p = Progress::reading(data.len() as f64);
        assert!(p.running() && p.phase == Phase::Reading);
        p.apply(&ready, 0.0);
        assert_eq!((p.phase, p.total_steps()), (Phase::Training, 2 * p.steps_per_epoch));
        // A slow first step, then one every 100 ms: the speed leaves the first out.
        let (reports, _) = s.run(3).unwrap();
        for (r, now) in reports.iter().zip([900.0, 1_000.0, 1_100.0]) {
            p.apply(r, now);
        }
        assert_eq!((p.epoch, p.step, p.steps_done, p.loss.len()), (1, 3, 3, 3));
        assert!((p.steps_per_second().unwrap() - 10.0).abs() < 1e-9);
        p.pause();
        // Ten seconds paused change nothing.
        p.resume();
        let (reports, _) = s.run(1).unwrap();
        p.apply(&reports[0], 11_100.0);
        assert!((p.steps_per_second().unwrap() - 10.0).abs() < 1e-9);
        let eta = p.eta_seconds().unwrap();
        assert!((eta - (p.total_steps() - 4) as f64 / 10.0).abs() < 1e-9);
        let (reports, done) = s.run(10_000).unwrap();
        assert!(done);
        for r in &reports {
            p.apply(r, 20_000.0);
        }
        p.apply(&Report::Done { summary: s.summary(), stopped: false }, 20_000.0);
        assert_eq!((p.phase, p.records.len()), (Phase::Done, 2));
        // Epoch 1: steps 2 and 3 in 200 ms, then (after the pause) steps 5 to the last in
        // 8.9 s. Epoch 2's steps all came at one moment, so the speed shown stays epoch 1's.
        let epoch_1 = (p.steps_per_epoch - 2) as f64 / 9.1;
        assert!((p.steps_per_second().unwrap() - epoch_1).abs() < 1e-9);
        assert!(!p.running() && p.loss.len() <= Progress::MAX_POINTS);
        p.apply(&Report::Failed { message: "x".into() }, 20_001.0);
        assert_eq!((p.phase, p.error.as_deref()), (Phase::Failed, Some("x")));
    }

    #[test]
    fn a_bad_row_is_named_at_its_line_in_the_file_given() {
        let text = String::from_utf8(synth(600, 2)).unwrap();
        let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
        // Line 451 of the file (whichever part it falls in): a numeric that is not one.
        let header: Vec<String> = lines[0].split(',').map(str::to_string).collect();
        let col = header.iter().position(|h| h.starts_with("numerical_")).unwrap();
        let mut fields: Vec<String> = lines[450].split(',').map(str::to_string).collect();
        fields[col] = "oops".into();
        lines[450] = fields.join(",");
        let bad = lines.join("\n");
        let err = Session::start(&small(Start::Scratch), bad.as_bytes(), None).err().unwrap();
        assert!(err.contains(&format!("drop.csv:451, column `{}`", header[col])) && err.contains("oops"), "{err}");
        assert!(check_training_file("big.csv", 300.0 * 1024.0 * 1024.0).is_err());
        assert!(check_training_file("ok.csv", 1e6).is_ok() && check_training_file("e.csv", 0.0).is_err());
    }
}
