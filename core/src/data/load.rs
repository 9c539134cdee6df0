//! Fitting a schema on the training split and encoding rows with it.
//!
//! Training is one pass over a reader (which cannot rewind): rows are stored with
//! provisional categorical ids (order of first appearance) and raw numerics, and once the
//! vocabularies and statistics are known they are remapped and normalised in place. The
//! peak memory is therefore the dataset itself plus the vocabularies.

use std::io::Read;

use super::dataset::Dataset;
use super::format::{Format, Layout, SchemaSpec};
use super::rows::{read_header, spec_layout, LoadOptions, LoadReport, Row, RowReader};
use super::vocab::{GroupIds, ValueCounter};
use crate::error::{Error, Result};
use crate::schema::{CategoricalField, NormKind, NumericField, Schema};

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
}

impl Fitter {
    fn new(n_cat: usize, n_num: usize) -> Self {
        Self {
            counters: (0..n_cat).map(|_| ValueCounter::default()).collect(),
            stats: vec![NumStats::default(); n_num],
        }
    }

    /// The schema, plus per field the map provisional id -> final id.
    fn finish(self, format: Format, spec: &SchemaSpec, opts: &LoadOptions) -> (Schema, Vec<Vec<u32>>) {
        let mut remaps = Vec::with_capacity(self.counters.len());
        let mut categorical = Vec::with_capacity(self.counters.len());
        for (counter, name) in self.counters.into_iter().zip(&spec.categorical) {
            let (vocab, remap) = counter.finish(opts.min_count);
            categorical.push(CategoricalField::new(name.clone(), spec.side_of(name), vocab));
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

/// Reads a training split: fits the schema (vocabularies, normalisation) on it and encodes
/// its rows. `label` names the input in messages (a file name, or `<stdin>`).
pub fn load_train<R: Read>(reader: R, label: &str, opts: &LoadOptions) -> Result<(Schema, Dataset, LoadReport)> {
    let (lines, header) = read_header(reader, label)?;
    let (format, spec, layout) = spec_layout(&header, label, opts)?;
    let (n_cat, n_num) = (layout.n_cat, layout.n_num);
    let mut rows = RowReader::new(lines, label, header, layout, opts, None);
    let mut fitter = Fitter::new(n_cat, n_num);
    let mut data = Dataset::new(n_cat, n_num);
    let mut groups = rows.has_group().then(|| (GroupIds::default(), Vec::new()));
    let mut ids = vec![0u32; n_cat];
    while rows.advance()? {
        let row = rows.row();
        for (k, (id, counter)) in ids.iter_mut().zip(&mut fitter.counters).enumerate() {
            *id = counter.observe(row.cat(k));
        }
        for (s, &x) in fitter.stats.iter_mut().zip(row.nums) {
            s.observe(x);
        }
        data.push(&ids, row.nums, row.click, row.conversion);
        if let Some((g, out)) = &mut groups {
            out.push(g.id(row.group().unwrap_or("")));
        }
    }
    let report = rows.into_report();
    if data.is_empty() {
        return Err(no_rows(label, &report));
    }
    let (schema, remaps) = fitter.finish(format, &spec, opts);
    // Fail now, not when the trained model is saved: a column name no header can match.
    schema.validate()?;
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
    data.group = groups.map(|(_, g)| g);
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
) -> Result<RowReader<R>> {
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
    let mut rows = schema_rows(reader, label, schema, opts)?;
    let (n_cat, n_num) = (rows.n_cat(), rows.n_num());
    let mut data = Dataset::new(n_cat, n_num);
    let mut groups = rows.has_group().then(|| (GroupIds::default(), Vec::new()));
    let mut ids = vec![0u32; n_cat];
    while rows.advance()? {
        let row = rows.row();
        encode_cats(&schema.categorical, &row, &mut ids);
        data.push(&ids, row.nums, row.click, row.conversion);
        if let Some((g, out)) = &mut groups {
            out.push(g.id(row.group().unwrap_or("")));
        }
    }
    let report = rows.into_report();
    if data.is_empty() {
        return Err(no_rows(label, &report));
    }
    data.group = groups.map(|(_, g)| g);
    shrink(&mut data);
    Ok((data, report))
}
