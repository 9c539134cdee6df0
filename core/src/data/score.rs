//! Reading rows to score: a CSV with a model's feature columns, labelled or not, encoded
//! batch by batch with the model's schema, with chosen columns passed through so that the
//! predictions can be joined back to the input (an id column, say).
//!
//! Memory is one batch, whatever the file's size: `adaftr predict` writes each batch's
//! predictions before it reads the next.

use std::io::Read;

use super::csv::MaybeGz;
use super::format::Layout;
use super::load::encode_cats;
use super::rows::{read_header, LoadOptions, LoadReport, RowReader};
use crate::error::{Error, Result};
use crate::inference::Inputs;
use crate::schema::Schema;

/// One batch of scored rows: the model inputs and, per row, the passed-through values.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ScoreBatch {
    pub inputs: Inputs,
    /// Row-major: `keep` values per row, in the order they were asked for.
    kept: Vec<String>,
    keep: usize,
}

impl ScoreBatch {
    pub fn len(&self) -> usize {
        self.inputs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.inputs.is_empty()
    }

    /// The passed-through values of row `i` of the batch.
    pub fn kept(&self, i: usize) -> &[String] {
        &self.kept[i * self.keep..(i + 1) * self.keep]
    }
}

/// Feature rows of a CSV, encoded with a fitted schema, in batches.
pub struct ScoreReader<'s, R: Read> {
    schema: &'s Schema,
    rows: RowReader<MaybeGz<R>>,
    /// Header positions of the passed-through columns.
    keep: Vec<usize>,
    ids: Vec<u32>,
}

impl<'s, R: Read> ScoreReader<'s, R> {
    /// Opens `reader` (gzip or plain). Its header must hold every feature column of
    /// `schema` and every column of `keep`; label columns may be present or not and are
    /// not read. `label` names the input in errors. Of `opts`, the bad-row policy and
    /// `max_rows` apply.
    pub fn new(reader: R, label: &str, schema: &'s Schema, keep: &[String], opts: &LoadOptions) -> Result<Self> {
        let (lines, header) = read_header(reader, label)?;
        let layout = Layout::for_scoring(&header, schema, label)?;
        let absent: Vec<&str> = keep.iter().map(String::as_str).filter(|k| !header.iter().any(|h| h == k)).collect();
        if !absent.is_empty() {
            return Err(Error::Input {
                file: label.to_string(),
                reason: format!("no column(s) {} to copy into the output", super::format::quoted_list(&absent)),
            });
        }
        let keep = keep.iter().filter_map(|k| header.iter().position(|h| h == k)).collect();
        let rows = RowReader::new(lines, label, header, layout, opts, Some(schema.numeric.clone()));
        Ok(Self { schema, rows, keep, ids: vec![0; schema.num_categorical()] })
    }

    /// Rows read and skipped so far.
    pub fn report(&self) -> &LoadReport {
        self.rows.report()
    }

    /// Refills `batch` (any batch, `ScoreBatch::default()` to begin with) with up to
    /// `max_rows` rows, at least one; `false` once the input is exhausted and the batch is
    /// empty.
    pub fn next_batch(&mut self, batch: &mut ScoreBatch, max_rows: usize) -> Result<bool> {
        if !batch.inputs.shaped_for(self.schema) {
            batch.inputs = Inputs::new(self.schema);
        }
        batch.inputs.clear();
        batch.kept.clear();
        batch.keep = self.keep.len();
        while batch.len() < max_rows.max(1) && self.rows.advance()? {
            let row = self.rows.row();
            encode_cats(&self.schema.categorical, &row, &mut self.ids);
            batch.inputs.push_encoded(&self.ids, row.nums);
            batch.kept.extend(self.keep.iter().map(|&i| row.field(i).to_string()));
        }
        Ok(!batch.is_empty())
    }
}
