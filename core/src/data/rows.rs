//! Row-level parsing and validation shared by the loaders and the stream.
//!
//! `RowReader` turns lines into validated rows: field count, numbers (finite), labels
//! (0/1, no conversion without a click). A bad row is either an error or, under
//! [`BadRows::Skip`], counted in the [`LoadReport`] and passed over. Every error names the
//! file, the 1-based line (header = 1), the column and the offending value.
//!
//! Over 400 lines with its tests: the per-row hot loop and the errors it reports are one
//! piece; split, a check and the message that names its line and column would live apart.

use std::io::Read;

use serde::{Deserialize, Serialize};

use super::csv::{maybe_gunzip, split_fields, LineReader, MaybeGz, ReadError, Span, MAX_LINE_BYTES};
use super::format::{Layout, Role, SchemaSpec};
use crate::error::{Error, Location, Result};
use crate::schema::{NormKind, NumericField};

/// What to do with a malformed data row.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "kebab-case")]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
pub enum BadRows {
    /// Stop with an error naming the line, column and value.
    #[default]
    Error,
    /// Skip the row, count it, and keep the first few messages in the report.
    Skip,
}

/// How to read a CSV.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct LoadOptions {
    pub bad_rows: BadRows,
    /// Values seen fewer times than this in training map to id 0 (OOV).
    pub min_count: u32,
    /// At most this many values per categorical field (the most frequent; the rest map to
    /// OOV). Also what bounds a streamed fit pass's memory (see [`crate::schema::VocabularyFit`]).
    pub max_vocab: Option<usize>,
    /// Normalisation fitted for every numeric column.
    pub norm: NormKind,
    /// Explicit layout; `None` detects AliExpress or Ali-CCP from the header.
    pub spec: Option<SchemaSpec>,
    /// Stop after this many accepted rows.
    pub max_rows: Option<usize>,
}

impl Default for LoadOptions {
    fn default() -> Self {
        Self {
            bad_rows: BadRows::Error,
            min_count: 1,
            max_vocab: None,
            norm: NormKind::None,
            spec: None,
            max_rows: None,
        }
    }
}

/// What a load did.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct LoadReport {
    /// Rows accepted.
    pub rows: usize,
    /// Rows skipped as malformed (only with [`BadRows::Skip`]).
    pub skipped: usize,
    /// The first [`MAX_REPORTED_ERRORS`] skip messages.
    pub first_errors: Vec<String>,
}

pub const MAX_REPORTED_ERRORS: usize = 5;

/// Longest value quoted in an error message, in bytes.
const MAX_VALUE_IN_ERROR: usize = 64;

/// Reads the header line. Input is gunzipped transparently.
pub(crate) fn read_header<R: Read>(reader: R, file: &str) -> Result<(LineReader<MaybeGz<R>>, Vec<String>)> {
    let input = |reason: String| Error::Input { file: file.to_string(), reason };
    let gz = maybe_gunzip(reader).map_err(|source| Error::Io { file: file.to_string(), source })?;
    let mut lines = LineReader::new(gz);
    let line = match lines.next_line() {
        Ok(Some((_, line))) => line,
        Ok(None) => return Err(input("empty file (no header line)".into())),
        Err(ReadError::Io(source)) => return Err(Error::Io { file: file.to_string(), source }),
        Err(ReadError::TooLong { .. }) => {
            return Err(input(format!("header line is longer than {MAX_LINE_BYTES} bytes")))
        }
    };
    let line = line.strip_prefix(b"\xef\xbb\xbf").unwrap_or(line);
    let text = std::str::from_utf8(line).map_err(|_| input("header is not valid UTF-8".into()))?;
    let (mut spans, mut scratch) = (Vec::new(), Vec::new());
    let quoted = split_fields(text.as_bytes(), &mut spans, &mut scratch)
        .map_err(|e| input(format!("header field {} has an unterminated quote", e.field + 1)))?;
    let source: &[u8] = if quoted { &scratch } else { text.as_bytes() };
    let mut header = Vec::with_capacity(spans.len());
    for s in &spans {
        let name = String::from_utf8_lossy(&source[s.start as usize..s.end as usize]).trim().to_string();
        if header.contains(&name) {
            return Err(input(format!("duplicate column `{name}` in the header")));
        }
        header.push(name);
    }
    if text.trim().is_empty() {
        return Err(input("empty header line".into()));
    }
    Ok((lines, header))
}

/// A validated row, borrowed from the reader until the next `advance`.
pub(crate) struct Row<'a> {
    text: &'a str,
    /// Every field of the line, in header order.
    fields: &'a [Span],
    cats: &'a [Span],
    group: Option<Span>,
    /// Raw values, or normalised when the reader was given numeric fields.
    pub nums: &'a [f32],
    pub click: bool,
    pub conversion: bool,
}

impl<'a> Row<'a> {
    /// The raw value of categorical field `k` (layout order).
    #[inline]
    pub fn cat(&self, k: usize) -> &'a str {
        self.cats.get(k).map_or("", |s| span_str(self.text, *s))
    }

    pub fn group(&self) -> Option<&'a str> {
        self.group.map(|s| span_str(self.text, s))
    }

    /// The raw text of header column `i`.
    pub fn field(&self, i: usize) -> &'a str {
        self.fields.get(i).map_or("", |s| span_str(self.text, *s))
    }
}

#[inline]
fn span_str(text: &str, s: Span) -> &str {
    // Spans end at ASCII delimiters, so they are char boundaries; `get` keeps us panic-free.
    text.get(s.start as usize..s.end as usize).unwrap_or("")
}

/// Lines in, validated rows out, with the bad-row policy applied. `L` is what the lines
/// come from: a (possibly gzipped) file, or one chunk of it (see `data::chunks`).
pub(crate) struct RowReader<L: Read> {
    lines: LineReader<L>,
    file: String,
    header: Vec<String>,
    layout: Layout,
    policy: BadRows,
    max_rows: Option<usize>,
    /// When set, numerics are normalised (and checked finite) as they are parsed.
    norm: Option<Vec<NumericField>>,
    report: LoadReport,
    /// The errors behind `report.first_errors`, for a caller that must renumber their
    /// lines (a chunk's lines are numbered from its own start).
    first_errors: Vec<Error>,
    spans: Vec<Span>,
    scratch: Vec<u8>,
    /// The staged row.
    quoted: bool,
    cats: Vec<Span>,
    group: Option<Span>,
    nums: Vec<f32>,
    click: bool,
    conversion: bool,
}

impl<L: Read> RowReader<L> {
    pub fn new(
        lines: LineReader<L>,
        file: &str,
        header: Vec<String>,
        layout: Layout,
        opts: &LoadOptions,
        norm: Option<Vec<NumericField>>,
    ) -> Self {
        let (n_cat, n_num) = (layout.n_cat, layout.n_num);
        Self {
            lines,
            file: file.to_string(),
            header,
            layout,
            policy: opts.bad_rows,
            max_rows: opts.max_rows,
            norm,
            report: LoadReport::default(),
            first_errors: Vec::new(),
            spans: Vec::new(),
            scratch: Vec::new(),
            quoted: false,
            cats: vec![Span { start: 0, end: 0 }; n_cat],
            group: None,
            nums: vec![0.0; n_num],
            click: false,
            conversion: false,
        }
    }

    pub fn report(&self) -> &LoadReport {
        &self.report
    }

    /// Lines read so far, the header's included when it was read through this reader's
    /// line source.
    pub fn lines_read(&self) -> u64 {
        self.lines.lines_read()
    }

    /// The errors of the skipped rows reported in [`Self::report`]'s `first_errors`.
    pub fn take_first_errors(&mut self) -> Vec<Error> {
        std::mem::take(&mut self.first_errors)
    }

    pub fn n_cat(&self) -> usize {
        self.layout.n_cat
    }

    pub fn n_num(&self) -> usize {
        self.layout.n_num
    }

    pub fn has_group(&self) -> bool {
        self.layout.group.is_some()
    }

    /// Stages the next valid row; `false` at the end of input (or at `max_rows`).
    pub fn advance(&mut self) -> Result<bool> {
        loop {
            if self.max_rows.is_some_and(|m| self.report.rows >= m) {
                return Ok(false);
            }
            let outcome = match self.lines.next_line() {
                Ok(None) => return Ok(false),
                Ok(Some((_, []))) => continue, // blank lines carry no row
                Ok(Some((line_no, line))) => parse_line(
                    line,
                    line_no,
                    &self.file,
                    &self.header,
                    &self.layout,
                    self.norm.as_deref(),
                    Staging {
                        spans: &mut self.spans,
                        scratch: &mut self.scratch,
                        quoted: &mut self.quoted,
                        cats: &mut self.cats,
                        group: &mut self.group,
                        nums: &mut self.nums,
                        click: &mut self.click,
                        conversion: &mut self.conversion,
                    },
                ),
                Err(ReadError::Io(source)) => return Err(Error::Io { file: self.file.clone(), source }),
                Err(ReadError::TooLong { line }) => Err(data_error(
                    &self.file,
                    line,
                    None,
                    None,
                    format!("line too long (over {MAX_LINE_BYTES} bytes)"),
                )),
            };
            match outcome {
                Ok(()) => {
                    self.report.rows += 1;
                    return Ok(true);
                }
                Err(e) if self.policy == BadRows::Skip => {
                    self.report.skipped += 1;
                    if self.report.first_errors.len() < MAX_REPORTED_ERRORS {
                        self.report.first_errors.push(e.to_string());
                        self.first_errors.push(e);
                    }
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// The staged row. Only meaningful after `advance` returned `true`.
    pub fn row(&self) -> Row<'_> {
        let text = if self.quoted {
            std::str::from_utf8(&self.scratch).unwrap_or("")
        } else {
            // Validated when the row was parsed.
            std::str::from_utf8(self.lines_last()).unwrap_or("")
        };
        Row {
            text,
            fields: &self.spans,
            cats: &self.cats,
            group: self.group,
            nums: &self.nums,
            click: self.click,
            conversion: self.conversion,
        }
    }

    fn lines_last(&self) -> &[u8] {
        self.lines.last_line()
    }
}

/// Mutable pieces of the reader that a parse writes (split out so the line, borrowed from
/// the line reader, can be parsed while they are written).
struct Staging<'a> {
    spans: &'a mut Vec<Span>,
    scratch: &'a mut Vec<u8>,
    quoted: &'a mut bool,
    cats: &'a mut [Span],
    group: &'a mut Option<Span>,
    nums: &'a mut [f32],
    click: &'a mut bool,
    conversion: &'a mut bool,
}

/// `e` with its line number moved on by `lines` (for an error found in a chunk whose first
/// line follows `lines` others).
pub(crate) fn shift_line(mut e: Error, lines: u64) -> Error {
    if let Error::Data { location, .. } = &mut e {
        location.line += lines;
    }
    e
}

pub(crate) fn data_error(file: &str, line: u64, column: Option<&str>, value: Option<&str>, reason: String) -> Error {
    Error::Data {
        location: Location { file: file.to_string(), line, column: column.map(str::to_string) },
        value: value.map(truncate_value),
        reason,
    }
}

fn truncate_value(v: &str) -> String {
    if v.len() <= MAX_VALUE_IN_ERROR {
        return v.to_string();
    }
    let mut end = MAX_VALUE_IN_ERROR;
    while !v.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &v[..end])
}

#[allow(clippy::too_many_arguments)]
fn parse_line(
    line: &[u8],
    line_no: u64,
    file: &str,
    header: &[String],
    layout: &Layout,
    norm: Option<&[NumericField]>,
    st: Staging<'_>,
) -> Result<()> {
    let err =
        |column: Option<&str>, value: Option<&str>, reason: String| data_error(file, line_no, column, value, reason);
    *st.quoted = split_fields(line, st.spans, st.scratch).map_err(|e| {
        err(header.get(e.field).map(String::as_str), None, "unterminated quote or text after a closing quote".into())
    })?;
    // Unquoting removes ASCII quotes only, so the fields' bytes are the line's.
    let bytes: &[u8] = if *st.quoted { st.scratch } else { line };
    let field_bytes = |s: &Span| bytes.get(s.start as usize..s.end as usize).unwrap_or(&[]);
    if st.spans.len() != header.len() {
        let found = st.spans.len();
        let reason = format!("expected {} columns, found {found}", header.len());
        return Err(if found < header.len() {
            err(header.get(found).map(String::as_str), None, reason)
        } else {
            let extra = st.spans.get(header.len()).map(|s| String::from_utf8_lossy(field_bytes(s)));
            err(None, extra.as_deref(), reason)
        });
    }
    let source = std::str::from_utf8(bytes).map_err(|e| {
        // Name the field holding the first invalid byte, so the error has a column too.
        let at = e.valid_up_to();
        let field = st.spans.iter().position(|s| (s.start as usize..=s.end as usize).contains(&at)).unwrap_or(0);
        let value = st.spans.get(field).map(|s| String::from_utf8_lossy(field_bytes(s)));
        err(header.get(field).map(String::as_str), value.as_deref(), "value is not valid UTF-8".into())
    })?;
    let mut conversion_col = 0;
    for (i, (&span, role)) in st.spans.iter().zip(&layout.roles).enumerate() {
        match *role {
            Role::Cat(k) => st.cats[k] = span,
            Role::Num(k) => {
                let v = span_str(source, span);
                let x = parse_number(v).map_err(|reason| err(Some(&header[i]), Some(v), reason.into()))?;
                st.nums[k] = match norm.and_then(|n| n.get(k)) {
                    Some(field) => field.encode(x).ok_or_else(|| {
                        err(Some(&header[i]), Some(v), "value is not finite after normalisation".into())
                    })?,
                    None => x,
                };
            }
            Role::Click => {
                *st.click = parse_label(span_str(source, span))
                    .map_err(|r| err(Some(&header[i]), Some(span_str(source, span)), r.into()))?;
            }
            Role::Conversion => {
                conversion_col = i;
                *st.conversion = parse_label(span_str(source, span))
                    .map_err(|r| err(Some(&header[i]), Some(span_str(source, span)), r.into()))?;
            }
            Role::Ignored => {}
        }
    }
    if *st.conversion && !*st.click {
        return Err(err(
            Some(&header[conversion_col]),
            Some(span_str(source, st.spans[conversion_col])),
            "conversion without a click (click is 0)".into(),
        ));
    }
    *st.group = layout.group.and_then(|g| st.spans.get(g).copied());
    Ok(())
}

/// A finite number. `str::parse` accepts `nan` and `inf` and overflows to infinity, so
/// finiteness is checked separately.
#[inline]
fn parse_number(v: &str) -> std::result::Result<f32, &'static str> {
    if v.is_empty() {
        return Err("missing numeric value");
    }
    match v.parse::<f32>() {
        Ok(x) if x.is_finite() => Ok(x),
        Ok(_) => Err("number is NaN or infinite (or overflows f32)"),
        Err(_) => Err("not a number"),
    }
}

/// `0` or `1` (also `0.0` / `1.0`, as some exports write labels as floats).
#[inline]
fn parse_label(v: &str) -> std::result::Result<bool, &'static str> {
    match v {
        "0" => Ok(false),
        "1" => Ok(true),
        _ => match v.parse::<f64>() {
            Ok(0.0) => Ok(false),
            Ok(1.0) => Ok(true),
            _ => Err("label must be 0 or 1"),
        },
    }
}

/// Opens a reader under a spec-derived layout (used by fitting).
pub(crate) fn spec_layout(
    header: &[String],
    file: &str,
    opts: &LoadOptions,
) -> Result<(super::format::Format, SchemaSpec, Layout)> {
    let (format, spec) = match &opts.spec {
        Some(spec) => (super::format::Format::Explicit, spec.clone()),
        None => super::format::detect(header, file)?,
    };
    let layout = Layout::from_spec(header, &spec, file)?;
    Ok((format, spec, layout))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_and_labels() {
        assert_eq!(parse_number("0.5"), Ok(0.5));
        assert_eq!(parse_number("1e3"), Ok(1000.0));
        assert!(parse_number("NaN").is_err());
        assert!(parse_number("inf").is_err());
        assert!(parse_number("1e39").is_err());
        assert!(parse_number("").is_err());
        assert!(parse_number("x").is_err());
        assert_eq!(parse_label("1.0"), Ok(true));
        assert_eq!(parse_label("0"), Ok(false));
        assert!(parse_label("2").is_err());
        assert!(parse_label("").is_err());
        assert_eq!(truncate_value(&"é".repeat(40)).len(), 64 + 3);
    }
}
