//! Streaming training data: shuffled chunks from a reader larger than memory.
//!
//! A bounded shuffle buffer (as in tf.data): fill it with `capacity` rows; to emit a row,
//! pick a uniformly random slot, emit it, and refill the slot with the next input row (or,
//! once input is exhausted, with the buffer's last row). Memory is the buffer, whatever the
//! file size. The shuffle is only as good as the buffer is large relative to how clustered
//! the file is; files sorted by label or by user need a large buffer (see docs/DATA.md).

use std::io::Read;

use super::csv::MaybeGz;
use super::dataset::{BitVec, Dataset};
use super::load::{encode_cats, schema_rows};
use super::rows::{LoadOptions, LoadReport, RowReader};
use crate::error::{Error, Result};
use crate::rng::Rng;
use crate::schema::{CategoricalField, Schema};

/// Rows of encoded data held for shuffling, row-major like [`Dataset`].
struct Buffer {
    n_cat: usize,
    n_num: usize,
    cat: Vec<u32>,
    num: Vec<f32>,
    /// Bit 0 click, bit 1 conversion.
    labels: Vec<u8>,
}

impl Buffer {
    fn len(&self) -> usize {
        self.labels.len()
    }

    /// Moves row `i` into `out` and fills its slot with the last row.
    fn swap_remove_into(&mut self, i: usize, out: &mut Dataset) {
        let last = self.len() - 1;
        out.push(
            &self.cat[i * self.n_cat..(i + 1) * self.n_cat],
            &self.num[i * self.n_num..(i + 1) * self.n_num],
            self.labels[i] & 1 != 0,
            self.labels[i] & 2 != 0,
        );
        if i != last {
            self.cat.copy_within(last * self.n_cat..(last + 1) * self.n_cat, i * self.n_cat);
            self.num.copy_within(last * self.n_num..(last + 1) * self.n_num, i * self.n_num);
            self.labels[i] = self.labels[last];
        }
        self.cat.truncate(last * self.n_cat);
        self.num.truncate(last * self.n_num);
        self.labels.truncate(last);
    }
}

/// Shuffled chunks of encoded rows from a reader, with a fitted schema.
///
/// Yields `Dataset`s of `chunk_rows` rows (the last one may be shorter); group ids are not
/// kept (they are for evaluation, and their map would grow with the file).
pub struct ShuffleStream<R: Read> {
    rows: RowReader<MaybeGz<R>>,
    categorical: Vec<CategoricalField>,
    buffer: Buffer,
    capacity: usize,
    chunk_rows: usize,
    rng: Rng,
    exhausted: bool,
    ids: Vec<u32>,
    max_buffered: usize,
    yielded: bool,
}

impl<R: Read> ShuffleStream<R> {
    /// `capacity`: rows held for shuffling (1 = no shuffling); `chunk_rows`: rows per
    /// yielded dataset. Both must be positive.
    pub fn new(
        reader: R,
        label: &str,
        schema: &Schema,
        opts: &LoadOptions,
        capacity: usize,
        chunk_rows: usize,
        seed: u64,
    ) -> Result<Self> {
        if capacity == 0 || chunk_rows == 0 {
            return Err(Error::Config("shuffle buffer capacity and chunk size must be positive".into()));
        }
        let rows = schema_rows(reader, label, schema, opts)?;
        let (n_cat, n_num) = (rows.n_cat(), rows.n_num());
        // Reserve lazily: a huge capacity on a small file should not allocate it all.
        let buffer = Buffer { n_cat, n_num, cat: Vec::new(), num: Vec::new(), labels: Vec::new() };
        Ok(Self {
            rows,
            categorical: schema.categorical.clone(),
            buffer,
            capacity,
            chunk_rows,
            rng: Rng::new(seed),
            exhausted: false,
            ids: vec![0; n_cat],
            max_buffered: 0,
            yielded: false,
        })
    }

    /// Rows currently held.
    pub fn buffered(&self) -> usize {
        self.buffer.len()
    }

    /// The most rows ever held at once (never above the capacity).
    pub fn max_buffered(&self) -> usize {
        self.max_buffered
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Rows read and skipped so far.
    pub fn report(&self) -> &LoadReport {
        self.rows.report()
    }

    /// Grows the buffer geometrically but never past `capacity` rows, so its memory is
    /// bounded by the capacity rather than by a doubling `Vec` (up to 2x).
    fn reserve_one(&mut self) {
        let b = &mut self.buffer;
        if b.labels.len() < b.labels.capacity() {
            return;
        }
        let target = (b.len() * 2).max(1024).min(self.capacity);
        let extra = target.saturating_sub(b.len()).max(1);
        b.cat.reserve_exact(extra * b.n_cat);
        b.num.reserve_exact(extra * b.n_num);
        b.labels.reserve_exact(extra);
    }

    /// Reads one input row into the buffer's end; `false` when input is exhausted.
    fn pull(&mut self) -> Result<bool> {
        if self.exhausted || !self.rows.advance()? {
            self.exhausted = true;
            return Ok(false);
        }
        self.reserve_one();
        let row = self.rows.row();
        encode_cats(&self.categorical, &row, &mut self.ids);
        self.buffer.cat.extend_from_slice(&self.ids);
        self.buffer.num.extend_from_slice(row.nums);
        self.buffer.labels.push(row.click as u8 | (row.conversion as u8) << 1);
        self.max_buffered = self.max_buffered.max(self.buffer.len());
        Ok(true)
    }

    /// Every row of the input in file order, when the input has fewer rows than the
    /// buffer's capacity (filling the buffer found its end); `None` otherwise, and then the
    /// stream goes on as if this had not been called. Only before the first row is
    /// yielded.
    pub fn whole_input(&mut self) -> Result<Option<Dataset>> {
        if self.yielded {
            return Err(Error::Config("whole_input after rows were yielded".into()));
        }
        while self.buffer.len() < self.capacity && self.pull()? {}
        if !self.exhausted {
            return Ok(None);
        }
        let b = &mut self.buffer;
        let mut data = Dataset {
            cat: std::mem::take(&mut b.cat),
            num: std::mem::take(&mut b.num),
            click: BitVec::with_capacity(b.labels.len()),
            conversion: BitVec::with_capacity(b.labels.len()),
            ..Dataset::new(b.n_cat, b.n_num)
        };
        for &l in &b.labels {
            data.click.push(l & 1 != 0);
            data.conversion.push(l & 2 != 0);
        }
        b.labels = Vec::new();
        Ok(Some(data))
    }

    /// The next shuffled chunk of the configured size, or `None` when every row has been
    /// yielded.
    pub fn next_chunk(&mut self) -> Result<Option<Dataset>> {
        self.next_rows(self.chunk_rows)
    }

    /// The next `rows` shuffled rows (fewer at the end), or `None` when every row has been
    /// yielded.
    pub fn next_rows(&mut self, rows: usize) -> Result<Option<Dataset>> {
        if rows == 0 {
            return Err(Error::Config("a chunk must have at least one row".into()));
        }
        let (n_cat, n_num) = (self.buffer.n_cat, self.buffer.n_num);
        // Reserve for the chunk, but not blindly: a huge request on a small file.
        let expect = rows.min(1 << 16);
        let mut out = Dataset {
            cat: Vec::with_capacity(expect * n_cat),
            num: Vec::with_capacity(expect * n_num),
            click: BitVec::with_capacity(expect),
            conversion: BitVec::with_capacity(expect),
            ..Dataset::new(n_cat, n_num)
        };
        while out.len() < rows {
            // Keep the buffer full: with one free slot after each emission, one pull
            // restores it.
            while self.buffer.len() < self.capacity && self.pull()? {}
            if self.buffer.len() == 0 {
                break;
            }
            let i = self.rng.below(self.buffer.len() as u64) as usize;
            self.buffer.swap_remove_into(i, &mut out);
            self.yielded = true;
        }
        Ok((!out.is_empty()).then_some(out))
    }
}

impl<R: Read> Iterator for ShuffleStream<R> {
    type Item = Result<Dataset>;

    fn next(&mut self) -> Option<Self::Item> {
        self.next_chunk().transpose()
    }
}
