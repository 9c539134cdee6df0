//! Fitting a schema on the training split and encoding rows with it.
//!
//! Training is one pass over a reader (which cannot rewind): rows are stored with
//! provisional categorical ids (order of first appearance) and raw numerics, and once the
//! vocabularies and statistics are known they are remapped and normalised in place. The
//! peak memory is therefore the dataset itself plus the vocabularies.
//!
//! The rows are parsed on every core, chunk by chunk (`data::chunks`): each chunk counts
//! its own values, and chunks are merged in file order, so the vocabularies, statistics
//! (summed row by row in file order), group ids and error messages are those of one pass.

use std::io::Read;

use super::chunks::{parse_in_order, Chunks};
use super::csv::{LineReader, MaybeGz};
use super::dataset::Dataset;
use super::format::{Format, Layout, SchemaSpec};
use super::rows::{read_header, shift_line, spec_layout, LoadOptions, LoadReport, Row, RowReader, MAX_REPORTED_ERRORS};
use super::vocab::{GroupIds, ValueCounter};
use crate::error::{Error, Result};
use crate::schema::{CategoricalField, NormKind, NumericField, Schema, VocabularyFit, PRUNE_FACTOR};

/// Running statistics of one numeric column. Sums are taken around the first value so the
/// variance does not suffer cancellation on large offsets.
#[derive(Clone, Debug, Default)]
struct NumStats {
    n: u64,
    pivot: f64,
    sum: f64,
    sum_sq: f64,
    min: f32,
    max: f32,
}

impl NumStats {
    #[inline]
    fn observe(&mut self, x: f32) {
        if self.n == 0 {
            self.pivot = x as f64;
            self.min = x;
            self.max = x;
        }
        self.n += 1;
        let d = x as f64 - self.pivot;
        self.sum += d;
        self.sum_sq += d * d;
        self.min = self.min.min(x);
        self.max = self.max.max(x);
    }

    fn field(&self, name: &str, spec: &SchemaSpec, norm: NormKind) -> NumericField {
        let n = self.n.max(1) as f64;
        let mean_d = self.sum / n;
        let var = (self.sum_sq / n - mean_d * mean_d).max(0.0);
        // A constant column (or a degenerate range) keeps scale 1 rather than dividing by ~0.
        let usable = |s: f32| if s.is_finite() && s > 1e-12 { s } else { 1.0 };
        let (shift, scale) = match norm {
            NormKind::None | NormKind::Log1p => (0.0, 1.0),
            NormKind::MinMax => (self.min, usable(self.max - self.min)),
            NormKind::Standardize => ((self.pivot + mean_d) as f32, usable(var.sqrt() as f32)),
        };
        NumericField {
            name: name.to_string(),
            side: spec.side_of(name),
            info: spec.info_of(name),
            norm,
            shift,
            scale,
            min: self.min,
            max: self.max,
        }
    }
}

/// Everything fitted in one pass.
struct Fitter {
    counters: Vec<ValueCounter>,
    stats: Vec<NumStats>,
    /// A pass that keeps no rows prunes a field's counter above this many values.
    prune_above: Option<usize>,
    pruned: bool,
}

impl Fitter {
    fn new(n_cat: usize, n_num: usize, prune_above: Option<usize>) -> Self {
        Self {
            counters: (0..n_cat).map(|_| ValueCounter::default()).collect(),
            stats: vec![NumStats::default(); n_num],
            prune_above,
            pruned: false,
        }
    }

    /// Takes in a chunk's counts and numerics, in file order, and rewrites its ids (the
    /// chunk's provisional ids) as this fitter's provisional ids.
    fn absorb(&mut self, chunk: &mut Parsed) {
        let (n_cat, n_num) = (chunk.data.n_cat, chunk.data.n_num);
        if n_cat > 0 {
            let maps: Vec<Vec<u32>> = chunk
                .counters
                .iter()
                .zip(&mut self.counters)
                .map(|(local, global)| local.entries().map(|(v, n)| global.absorb(v, n)).collect())
                .collect();
            for row in chunk.data.cat.chunks_exact_mut(n_cat) {
                for (id, map) in row.iter_mut().zip(&maps) {
                    if *id != 0 {
                        *id = map[*id as usize - 1];
                    }
                }
            }
        }
        if n_num > 0 {
            // Row by row, as one pass would: the sums' rounding depends on the order.
            for row in chunk.data.num.chunks_exact(n_num) {
                for (s, &x) in self.stats.iter_mut().zip(row) {
                    s.observe(x);
                }
            }
        }
        if let Some(limit) = self.prune_above {
            for counter in &mut self.counters {
                if counter.len() > limit {
                    counter.prune(limit / 2);
                    self.pruned = true;
                }
            }
        }
    }

    /// The schema, plus per field the map provisional id -> final id.
    fn finish(self, format: Format, spec: &SchemaSpec, opts: &LoadOptions) -> (Schema, Vec<Vec<u32>>) {
        let mut remaps = Vec::with_capacity(self.counters.len());
        let mut categorical = Vec::with_capacity(self.counters.len());
        for (counter, name) in self.counters.into_iter().zip(&spec.categorical) {
            let (vocab, remap) = counter.finish(opts.min_count, opts.max_vocab);
            categorical
                .push(CategoricalField::new(name.clone(), spec.side_of(name), vocab).with_info(spec.info_of(name)));
            remaps.push(remap);
        }
        let numeric = self.stats.iter().zip(&spec.numeric).map(|(s, name)| s.field(name, spec, opts.norm)).collect();
        let schema = Schema {
            format: format.name().to_string(),
            categorical,
            numeric,
            click: spec.click.clone(),
            conversion: spec.conversion.clone(),
            ignored: spec.ignored.clone(),
            group: spec.group.clone(),
            vocabulary: Some(VocabularyFit {
                min_count: opts.min_count,
                max_size: opts.max_vocab,
                approximate: self.pruned,
            }),
        };
        (schema, remaps)
    }
}

fn no_rows(file: &str, report: &LoadReport) -> Error {
    let mut reason = "no data rows".to_string();
    if report.skipped > 0 {
        reason = format!("no valid data rows ({} skipped", report.skipped);
        if let Some(first) = report.first_errors.first() {
            reason.push_str(&format!("; first: {first}"));
        }
        reason.push(')');
    }
    Error::Input { file: file.to_string(), reason }
}

/// Returns the slack of vector growth (up to half the allocation) to the allocator; for
/// large vectors this is an in-place `mremap`, not a copy.
fn shrink(data: &mut Dataset) {
    data.cat.shrink_to_fit();
    data.num.shrink_to_fit();
    if let Some(g) = &mut data.group {
        g.shrink_to_fit();
    }
}

/// A chunk's rows, parsed on their own (see `data::chunks`).
struct Parsed {
    /// Fitting: categorical ids are the chunk's provisional ids (into `counters`) and
    /// numerics are raw. With a schema: final ids and encoded numerics. `group` holds the
    /// chunk's own group ids (into `groups`).
    data: Dataset,
    /// Fitting only: the chunk's values per field, in order of first appearance.
    counters: Vec<ValueCounter>,
    groups: Option<GroupIds>,
    /// Lines in the chunk.
    lines: u64,
    /// The row cap it was parsed under.
    cap: Option<usize>,
    skipped: usize,
    first_errors: Vec<Error>,
    /// The error that stopped it (under [`BadRows::Error`]).
    failed: Option<Error>,
}

/// What every chunk of one input is parsed with.
struct Source<'a> {
    label: &'a str,
    header: Vec<String>,
    layout: Layout,
    opts: &'a LoadOptions,
    /// `None` while fitting.
    schema: Option<&'a Schema>,
}

/// What a pass does with the rows it reads.
enum Keep<'a> {
    /// Nothing: the pass only fits (memory is the vocabularies).
    Nothing,
    /// All of them, in one dataset.
    All,
    /// Each merged chunk is handed over in file order (memory is a few chunks).
    Each(&'a mut (dyn FnMut(Dataset) -> Result<()> + Send)),
}

impl Source<'_> {
    fn parse(&self, bytes: &[u8], cap: Option<usize>) -> Parsed {
        let opts = LoadOptions { bad_rows: self.opts.bad_rows, max_rows: cap, ..LoadOptions::default() };
        let norm = self.schema.map(|s| s.numeric.clone());
        let mut rows = RowReader::new(
            LineReader::from_bytes(bytes.to_vec()),
            self.label,
            self.header.clone(),
            self.layout.clone(),
            &opts,
            norm,
        );
        let (n_cat, n_num) = (rows.n_cat(), rows.n_num());
        let mut counters: Vec<ValueCounter> = match self.schema {
            Some(_) => Vec::new(),
            None => (0..n_cat).map(|_| ValueCounter::default()).collect(),
        };
        let mut data = Dataset::new(n_cat, n_num);
        let mut groups = rows.has_group().then(|| (GroupIds::recording(), Vec::new()));
        let mut ids = vec![0u32; n_cat];
        let failed = loop {
            match rows.advance() {
                Ok(true) => {}
                Ok(false) => break None,
                Err(e) => break Some(e),
            }
            let row = rows.row();
            match self.schema {
                Some(schema) => encode_cats(&schema.categorical, &row, &mut ids),
                None => {
                    for (k, (id, counter)) in ids.iter_mut().zip(&mut counters).enumerate() {
                        *id = counter.observe(row.cat(k));
                    }
                }
            }
            data.push(&ids, row.nums, row.click, row.conversion);
            if let Some((g, out)) = &mut groups {
                out.push(g.id(row.group().unwrap_or("")));
            }
        };
        let first_errors = rows.take_first_errors();
        let lines = rows.lines_read();
        let skipped = rows.report().skipped;
        let groups = groups.map(|(g, ids)| {
            data.group = Some(ids);
            g
        });
        Parsed { data, counters, groups, lines, cap, skipped, first_errors, failed }
    }
}

/// The chunks of one input merged in file order.
struct Merged<'a, 'k> {
    source: &'a Source<'a>,
    keep: Keep<'k>,
    /// The rows, under [`Keep::All`].
    data: Dataset,
    /// Fitting only.
    fitter: Option<Fitter>,
    /// Group ids across the whole input, and (under [`Keep::All`]) every row's.
    groups: Option<GroupIds>,
    group_ids: Option<Vec<u32>>,
    /// Lines before the next chunk (the header's included).
    lines: u64,
    report: LoadReport,
}

impl<'a, 'k> Merged<'a, 'k> {
    fn new(source: &'a Source<'a>, keep: Keep<'k>, lines: u64) -> Self {
        let (n_cat, n_num) = (source.layout.n_cat, source.layout.n_num);
        let grouped = source.layout.group.is_some();
        // Only a pass that keeps no rows may forget values (kept rows hold their ids).
        let prune = source.opts.max_vocab.filter(|_| matches!(keep, Keep::Nothing));
        Self {
            source,
            group_ids: (grouped && matches!(keep, Keep::All)).then(Vec::new),
            keep,
            data: Dataset::new(n_cat, n_num),
            fitter: source
                .schema
                .is_none()
                .then(|| Fitter::new(n_cat, n_num, prune.map(|k| k.max(1).saturating_mul(PRUNE_FACTOR)))),
            groups: grouped.then(GroupIds::default),
            lines,
            report: LoadReport::default(),
        }
    }

    /// Adds the next chunk; `false` once `max_rows` rows are in.
    fn add(&mut self, bytes: &[u8], mut chunk: Parsed) -> Result<bool> {
        let max = self.source.opts.max_rows;
        if let Some(left) = max.map(|m| m.saturating_sub(self.report.rows)) {
            if chunk.data.len() >= left && chunk.cap != Some(left) {
                // The cap falls inside this chunk: parse it again stopping there, so that
                // what follows the last row taken (skipped rows, an error) is not read,
                // as in one pass.
                chunk = self.source.parse(bytes, Some(left));
            }
        }
        for e in chunk.first_errors.drain(..) {
            if self.report.first_errors.len() < MAX_REPORTED_ERRORS {
                self.report.first_errors.push(shift_line(e, self.lines).to_string());
            }
        }
        if let Some(e) = chunk.failed.take() {
            return Err(shift_line(e, self.lines));
        }
        self.report.skipped += chunk.skipped;
        self.report.rows += chunk.data.len();
        self.lines += chunk.lines;
        if let Some(fitter) = &mut self.fitter {
            fitter.absorb(&mut chunk);
        }
        let more = max.is_none_or(|m| self.report.rows < m);
        if matches!(self.keep, Keep::Nothing) {
            return Ok(more);
        }
        // The chunk's group ids, numbered across the whole input.
        if let (Some(global), Some(local), Some(ids)) = (&mut self.groups, &chunk.groups, &mut chunk.data.group) {
            let map: Vec<u32> = local.values().map(|v| global.id(v)).collect();
            for id in ids.iter_mut() {
                *id = map[*id as usize];
            }
        }
        match &mut self.keep {
            Keep::Each(each) => each(chunk.data)?,
            _ => {
                self.data.append_rows(&chunk.data);
                if let (Some(all), Some(ids)) = (&mut self.group_ids, &chunk.data.group) {
                    all.extend_from_slice(ids);
                }
            }
        }
        Ok(more)
    }
}

/// Reads every data row of `lines` (positioned after the header) on every core.
fn read_rows<R: Read>(
    lines: LineReader<MaybeGz<R>>,
    source: &Source<'_>,
    keep: Keep<'_>,
) -> Result<(Dataset, Option<Fitter>, LoadReport)> {
    let mut merged = Merged::new(source, keep, lines.lines_read());
    let (rest, inner) = lines.into_rest();
    let mut chunks = Chunks::new(rest, inner);
    let cap = source.opts.max_rows;
    parse_in_order(
        &mut chunks,
        |bytes| source.parse(bytes, cap),
        |bytes, chunk| merged.add(bytes, chunk),
        |e| Error::Io { file: source.label.to_string(), source: e },
    )?;
    let Merged { mut data, fitter, group_ids, report, .. } = merged;
    if report.rows == 0 {
        return Err(no_rows(source.label, &report));
    }
    data.group = group_ids;
    Ok((data, fitter, report))
}

/// The schema a fit pass found, validated now rather than when the trained model is saved
/// (a column name no header can match), and per field the map provisional id -> final id.
fn fitted(
    fitter: Option<Fitter>,
    format: Format,
    spec: &SchemaSpec,
    opts: &LoadOptions,
) -> Result<(Schema, Vec<Vec<u32>>)> {
    let (schema, remaps) = fitter.expect("a fit pass keeps a fitter").finish(format, spec, opts);
    schema.validate()?;
    Ok((schema, remaps))
}

/// Fits the schema [`load_train`] would fit on the same input, without keeping its rows:
/// memory is the vocabularies, whatever the input's size. For training on data larger
/// than memory (with [`crate::data::ShuffleStream`] reading it afterwards).
pub fn fit_schema<R: Read>(reader: R, label: &str, opts: &LoadOptions) -> Result<(Schema, LoadReport)> {
    let (lines, header) = read_header(reader, label)?;
    let (format, spec, layout) = spec_layout(&header, label, opts)?;
    let source = Source { label, header, layout, opts, schema: None };
    let (_, fitter, report) = read_rows(lines, &source, Keep::Nothing)?;
    let (schema, _) = fitted(fitter, format, &spec, opts)?;
    Ok((schema, report))
}

/// Reads a training split: fits the schema (vocabularies, normalisation) on it and encodes
/// its rows. `label` names the input in messages (a file name, or `<stdin>`).
pub fn load_train<R: Read>(reader: R, label: &str, opts: &LoadOptions) -> Result<(Schema, Dataset, LoadReport)> {
    let (lines, header) = read_header(reader, label)?;
    let (format, spec, layout) = spec_layout(&header, label, opts)?;
    let (n_cat, n_num) = (layout.n_cat, layout.n_num);
    let source = Source { label, header, layout, opts, schema: None };
    let (mut data, fitter, report) = read_rows(lines, &source, Keep::All)?;
    let (schema, remaps) = fitted(fitter, format, &spec, opts)?;
    if n_cat > 0 {
        for row in data.cat.chunks_exact_mut(n_cat) {
            for (id, remap) in row.iter_mut().zip(&remaps) {
                *id = remap.get(*id as usize).copied().unwrap_or(0);
            }
        }
    }
    if n_num > 0 {
        for row in data.num.chunks_exact_mut(n_num) {
            for (x, field) in row.iter_mut().zip(&schema.numeric) {
                // Fitted on these very values, so only pathological ranges (near f32::MAX)
                // overflow.
                *x = field.encode(*x).ok_or_else(|| Error::Input {
                    file: label.to_string(),
                    reason: format!(
                        "numeric column `{}` overflows f32 after {:?} normalisation",
                        field.name, opts.norm
                    ),
                })?;
            }
        }
    }
    shrink(&mut data);
    Ok((schema, data, report))
}

/// Writes the ids of a row's categorical values into `out` (the schema's field order).
#[inline]
pub(crate) fn encode_cats(fields: &[CategoricalField], row: &Row<'_>, out: &mut [u32]) {
    for (k, (id, field)) in out.iter_mut().zip(fields).enumerate() {
        *id = field.encode(row.cat(k));
    }
}

/// Opens a reader for encoding with `schema`: header checked against the schema, numerics
/// encoded while parsing.
pub(crate) fn schema_rows<R: Read>(
    reader: R,
    label: &str,
    schema: &Schema,
    opts: &LoadOptions,
) -> Result<RowReader<MaybeGz<R>>> {
    let (lines, header) = read_header(reader, label)?;
    let layout = Layout::from_schema(&header, schema, label)?;
    Ok(RowReader::new(lines, label, header, layout, opts, Some(schema.numeric.clone())))
}

/// Reads a validation / test split with the schema fitted on training. The header must
/// contain the schema's columns in any order; other columns are ignored.
pub fn load_with_schema<R: Read>(
    reader: R,
    label: &str,
    schema: &Schema,
    opts: &LoadOptions,
) -> Result<(Dataset, LoadReport)> {
    let (lines, header) = read_header(reader, label)?;
    let layout = Layout::from_schema(&header, schema, label)?;
    let source = Source { label, header, layout, opts, schema: Some(schema) };
    let (mut data, _, report) = read_rows(lines, &source, Keep::All)?;
    shrink(&mut data);
    Ok((data, report))
}

/// [`load_with_schema`] a chunk of rows at a time: `each` gets every chunk in file order
/// (group ids numbered across the whole input) while the next chunks are parsed, so memory
/// is a few chunks whatever the input's size.
pub fn read_with_schema<R: Read>(
    reader: R,
    label: &str,
    schema: &Schema,
    opts: &LoadOptions,
    mut each: impl FnMut(Dataset) -> Result<()> + Send,
) -> Result<LoadReport> {
    let (lines, header) = read_header(reader, label)?;
    let layout = Layout::from_schema(&header, schema, label)?;
    let source = Source { label, header, layout, opts, schema: Some(schema) };
    let (_, _, report) = read_rows(lines, &source, Keep::Each(&mut each))?;
    Ok(report)
}
