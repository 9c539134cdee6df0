//! Where a fit's training rows come from, epoch by epoch: a dataset in memory, or a file
//! read again every epoch through a bounded shuffle buffer (data larger than memory).
//!
//! Both give the rows of an epoch in an order drawn from (seed, epoch) alone, so a killed
//! run resumes to exactly the uninterrupted result: the in-memory rows by permuting, the
//! streamed ones by replaying the epoch's shuffle up to the batch reached. A file of fewer
//! rows than the shuffle buffer is read once and then trained on exactly as in memory.

use std::io::Read;
use std::sync::mpsc::{sync_channel, Receiver};

use candle_core::Device;

use super::Trainer;
use crate::data::{Batch, Dataset, LoadOptions, ShuffleStream};
use crate::error::{Error, Result};
use crate::evaluate::{score_reader, Evaluation};
use crate::rng::Rng;
use crate::schema::Schema;

/// The stream of each epoch's row order, derived per epoch from the seed.
const ORDER_STREAM: u64 = 0x5EED_0001;

/// Rows replayed per call while skipping to a resumed batch (bounds the skip's memory).
const SKIP_ROWS: usize = 1 << 16;

/// The order in which an in-memory fit visits `rows` rows in `epoch` (0-based): a seeded
/// shuffle, the same on resume and on every machine.
pub(crate) fn epoch_order(seed: u64, epoch: usize, rows: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..rows).collect();
    Rng::derive(seed ^ ORDER_STREAM, epoch as u64).shuffle(&mut order);
    order
}

/// Training rows, served batch by batch in each epoch's order.
pub trait TrainingRows {
    /// Rows in one epoch.
    fn rows(&self) -> usize;
    /// Starts `epoch` (0-based) of a fit seeded with `seed`, positioned after its first
    /// `skip` rows (a resumed run's batches already done).
    fn start_epoch(&mut self, seed: u64, epoch: usize, skip: usize) -> Result<()>;
    /// The epoch's next `size` rows (fewer at its end).
    fn next_batch(&mut self, size: usize, device: &Device) -> Result<Batch>;
}

/// A position in one epoch's [`epoch_order`].
#[derive(Default)]
struct Permuted {
    order: Vec<usize>,
    next: usize,
}

impl Permuted {
    fn start(&mut self, seed: u64, epoch: usize, rows: usize, skip: usize) {
        self.order = epoch_order(seed, epoch, rows);
        self.next = skip.min(rows);
    }

    fn batch(&mut self, data: &Dataset, size: usize, device: &Device) -> Result<Batch> {
        let end = (self.next + size).min(self.order.len());
        let batch = data.batch(&self.order[self.next..end], device)?;
        self.next = end;
        Ok(batch)
    }
}

/// A dataset in memory, visited in [`epoch_order`].
pub struct InMemory<'a> {
    data: &'a Dataset,
    at: Permuted,
}

impl<'a> InMemory<'a> {
    pub fn new(data: &'a Dataset) -> Self {
        Self { data, at: Permuted::default() }
    }
}

impl TrainingRows for InMemory<'_> {
    fn rows(&self) -> usize {
        self.data.len()
    }

    fn start_epoch(&mut self, seed: u64, epoch: usize, skip: usize) -> Result<()> {
        self.at.start(seed, epoch, self.data.len(), skip);
        Ok(())
    }

    fn next_batch(&mut self, size: usize, device: &Device) -> Result<Batch> {
        self.at.batch(self.data, size, device)
    }
}

/// Opens an input afresh (once per epoch).
pub type Opener<R> = Box<dyn FnMut() -> Result<R>>;

/// A CSV that is read again whenever its rows are needed, never held.
pub struct CsvFile<R> {
    open: Opener<R>,
    label: String,
    opts: LoadOptions,
}

impl<R: Read> CsvFile<R> {
    /// `label` names the file in errors; `opts` says how to read it (its bad-row policy).
    pub fn new(open: Opener<R>, label: &str, opts: &LoadOptions) -> Self {
        Self { open, label: label.to_string(), opts: opts.clone() }
    }
}

/// The rows a fit validates on after each epoch.
pub trait ValidationRows {
    fn evaluate(&mut self, trainer: &Trainer) -> Result<Evaluation>;
}

impl ValidationRows for InMemory<'_> {
    fn evaluate(&mut self, trainer: &Trainer) -> Result<Evaluation> {
        trainer.evaluate(self.data)
    }
}

/// Validation streamed from the file: only predictions and labels are held.
impl<R: Read> ValidationRows for CsvFile<R> {
    fn evaluate(&mut self, trainer: &Trainer) -> Result<Evaluation> {
        let reader = (self.open)()?;
        let batch = trainer.config().train.batch_size.max(256);
        let s =
            score_reader(trainer.model(), reader, &self.label, trainer.schema(), &self.opts, batch, trainer.device())?;
        Ok(Evaluation::compute(&s.predictions, &s.labels))
    }
}

/// Batches parsed ahead on their own thread, so that parsing overlaps the training step.
struct Prefetch {
    rx: Receiver<Result<Batch>>,
    size: usize,
}

impl Prefetch {
    /// Starts parsing `stream` into batches of `size` rows on `device`, at most
    /// [`PREFETCH`] ahead. The batch's tensors are built there too, leaving the training
    /// thread nothing to do but train.
    fn spawn<R: Read + Send + 'static>(mut stream: ShuffleStream<R>, size: usize, device: &Device) -> Self {
        let (tx, rx) = sync_channel(PREFETCH);
        let device = device.clone();
        // Detached: it ends at the end of the input, or once the receiver is dropped (a new
        // epoch, the end of training) and its next send fails.
        std::thread::spawn(move || loop {
            match stream.next_rows(size) {
                Ok(None) => return,
                Ok(Some(rows)) => {
                    if tx.send(rows.range_batch(0, rows.len(), &device)).is_err() {
                        return;
                    }
                }
                Err(e) => {
                    let _ = tx.send(Err(e));
                    return;
                }
            }
        });
        Self { rx, size }
    }
}

/// Batches parsed ahead of the one being trained on.
const PREFETCH: usize = 2;

/// A file read again every epoch through a shuffle buffer of `capacity` rows (see
/// [`ShuffleStream`]): memory is the buffer, whatever the file's size. The rows are parsed
/// on a thread of their own, a couple of batches ahead (native targets only).
pub struct Streamed<R: Read> {
    file: CsvFile<R>,
    schema: Schema,
    capacity: usize,
    rows: usize,
    /// The epoch's stream until its first batch is asked for, then its batches.
    stream: Option<ShuffleStream<R>>,
    prefetch: Option<Prefetch>,
    /// The whole file, once it turned out to fit in the buffer.
    whole: Option<(Dataset, Permuted)>,
}

impl<R: Read + Send + 'static> Streamed<R> {
    /// `rows`: the valid rows of the file, as the fit pass counted them (each epoch must
    /// find as many).
    pub fn new(file: CsvFile<R>, schema: &Schema, capacity: usize, rows: usize) -> Self {
        Self {
            file,
            schema: schema.clone(),
            capacity: capacity.max(1),
            rows,
            stream: None,
            prefetch: None,
            whole: None,
        }
    }

    /// Whether the file had fewer rows than the buffer, and is held in memory (known once
    /// an epoch has started).
    pub fn fits_in_buffer(&self) -> bool {
        self.whole.is_some()
    }

    fn changed(&self, what: String) -> Error {
        Error::Input {
            file: self.file.label.clone(),
            reason: format!("the file changed during training: {what}, {} when it was fitted", self.rows),
        }
    }
}

impl<R: Read + Send + 'static> TrainingRows for Streamed<R> {
    fn rows(&self) -> usize {
        self.rows
    }

    fn start_epoch(&mut self, seed: u64, epoch: usize, skip: usize) -> Result<()> {
        self.prefetch = None;
        if let Some((data, at)) = &mut self.whole {
            at.start(seed, epoch, data.len(), skip);
            return Ok(());
        }
        let reader = (self.file.open)()?;
        let epoch_seed = Rng::derive(seed ^ ORDER_STREAM, epoch as u64).next_u64();
        let f = &self.file;
        let mut stream =
            ShuffleStream::new(reader, &f.label, &self.schema, &f.opts, self.capacity, SKIP_ROWS, epoch_seed)?;
        if let Some(data) = stream.whole_input()? {
            if data.len() != self.rows {
                return Err(self.changed(format!("{} valid rows now", data.len())));
            }
            let mut at = Permuted::default();
            at.start(seed, epoch, data.len(), skip);
            self.whole = Some((data, at));
            self.stream = None;
            return Ok(());
        }
        let mut left = skip;
        while left > 0 {
            match stream.next_rows(left.min(SKIP_ROWS))? {
                Some(rows) => left -= rows.len(),
                None => return Err(self.changed(format!("only {} valid rows now", skip - left))),
            }
        }
        self.stream = Some(stream);
        Ok(())
    }

    fn next_batch(&mut self, size: usize, device: &Device) -> Result<Batch> {
        if let Some((data, at)) = &mut self.whole {
            return at.batch(data, size, device);
        }
        if let Some(stream) = self.stream.take() {
            self.prefetch = Some(Prefetch::spawn(stream, size, device));
        }
        let prefetch = self.prefetch.as_ref().ok_or_else(|| Error::Config("no epoch started".into()))?;
        if prefetch.size != size {
            return Err(Error::Config(format!("batches of {size} rows after batches of {}", prefetch.size)));
        }
        match prefetch.rx.recv() {
            Ok(batch) => batch,
            Err(_) => Err(self.changed("fewer valid rows now".into())),
        }
    }
}
