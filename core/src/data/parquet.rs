//! Parquet input and output (the `parquet` feature).
//!
//! A Parquet file is read as the CSV it stands for: [`ParquetText`] is a `std::io::Read` that
//! yields a header line of the file's column names and one CSV line per row, decoded a few
//! thousand rows at a time. So every loader (in memory, fit pass, shuffle stream, scoring),
//! the format detection by column name and every error message work on Parquet unchanged,
//! and a Parquet file converted from a CSV by [`csv_to_parquet`] loads to exactly the
//! dataset of that CSV: categorical values are kept as their text, numerics as the f32 the
//! CSV parser reads, and an f32 or f64 is written back in its shortest exact decimal form.
//! Errors name the file and, for a bad value, the row as a line number (the header counts as
//! line 1, so row r of the file is line r + 2) and the column.
//!
//! Supported columns: flat (not nested), required or optional (a null is an empty field),
//! of type boolean, int32, int64, float, double or UTF-8 byte array. Codecs: Snappy, LZ4,
//! gzip, and zstd where the `parquet-zstd` feature is on (native builds).

use std::io::{self, Read, Write};
use std::sync::Arc;

use parquet::basic::{ConvertedType, LogicalType, Repetition, Type as Physical};
use parquet::column::reader::{get_typed_column_reader, ColumnReader, ColumnReaderImpl};
use parquet::data_type::{BoolType, ByteArray, ByteArrayType, DataType, DoubleType, FloatType, Int32Type, Int64Type};
use parquet::file::properties::WriterProperties;
use parquet::file::reader::{ChunkReader, FileReader, SerializedFileReader};
use parquet::file::writer::{SerializedColumnWriter, SerializedFileWriter};
use parquet::schema::types::Type;
use rayon::prelude::*;

use super::csv::push_field;
use super::format::Role;
use super::rows::{read_header, spec_layout, LoadOptions, LoadReport, Row, RowReader};
use crate::error::{Error, Result};

/// Rows decoded per step: enough to amortise the per-call work, few enough to hold.
const ROWS_PER_STEP: usize = 4096;

/// Rows per row group written by [`csv_to_parquet`].
const ROWS_PER_GROUP: usize = 65_536;

fn unreadable(file: &str, e: impl std::fmt::Display) -> Error {
    Error::Input { file: file.to_string(), reason: format!("not a readable Parquet file: {e}") }
}

/// One column's decoder, typed.
enum Decoder {
    Bool(ColumnReaderImpl<BoolType>),
    I32(ColumnReaderImpl<Int32Type>),
    I64(ColumnReaderImpl<Int64Type>),
    F32(ColumnReaderImpl<FloatType>),
    F64(ColumnReaderImpl<DoubleType>),
    Text(ColumnReaderImpl<ByteArrayType>),
}

/// One column's decoded values (the non-null ones), kept apart from the decoder so that
/// rows can be formatted on several threads.
enum Values {
    Bool(Vec<bool>),
    I32(Vec<i32>),
    I64(Vec<i64>),
    F32(Vec<f32>),
    F64(Vec<f64>),
    Text(Vec<ByteArray>),
}

/// Reads up to `n` records of a flat column: its values and, when optional, its
/// definition levels (a level below the maximum is a null).
fn read_column<T: DataType>(
    reader: &mut ColumnReaderImpl<T>,
    n: usize,
    defs: Option<&mut Vec<i16>>,
    values: &mut Vec<T::T>,
) -> parquet::errors::Result<usize> {
    values.clear();
    let (records, _, _) = match defs {
        Some(d) => {
            d.clear();
            reader.read_records(n, Some(d), None, values)?
        }
        None => reader.read_records(n, None, None, values)?,
    };
    Ok(records)
}

impl Decoder {
    fn new(reader: ColumnReader) -> (Self, Values) {
        match reader {
            ColumnReader::BoolColumnReader(_) => {
                (Decoder::Bool(get_typed_column_reader(reader)), Values::Bool(Vec::new()))
            }
            ColumnReader::Int32ColumnReader(_) => {
                (Decoder::I32(get_typed_column_reader(reader)), Values::I32(Vec::new()))
            }
            ColumnReader::Int64ColumnReader(_) => {
                (Decoder::I64(get_typed_column_reader(reader)), Values::I64(Vec::new()))
            }
            ColumnReader::FloatColumnReader(_) => {
                (Decoder::F32(get_typed_column_reader(reader)), Values::F32(Vec::new()))
            }
            ColumnReader::DoubleColumnReader(_) => {
                (Decoder::F64(get_typed_column_reader(reader)), Values::F64(Vec::new()))
            }
            // Other physical types are refused when the file is opened.
            _ => (Decoder::Text(get_typed_column_reader(reader)), Values::Text(Vec::new())),
        }
    }

    fn read(&mut self, values: &mut Values, n: usize, defs: Option<&mut Vec<i16>>) -> parquet::errors::Result<usize> {
        match (self, values) {
            (Decoder::Bool(r), Values::Bool(v)) => read_column(r, n, defs, v),
            (Decoder::I32(r), Values::I32(v)) => read_column(r, n, defs, v),
            (Decoder::I64(r), Values::I64(v)) => read_column(r, n, defs, v),
            (Decoder::F32(r), Values::F32(v)) => read_column(r, n, defs, v),
            (Decoder::F64(r), Values::F64(v)) => read_column(r, n, defs, v),
            (Decoder::Text(r), Values::Text(v)) => read_column(r, n, defs, v),
            _ => unreachable!("a decoder and its values are made together"),
        }
    }
}

impl Values {
    /// Appends value `i` (of the non-null values) as CSV text.
    fn write(&self, i: usize, out: &mut Vec<u8>) {
        match self {
            Values::Bool(v) => out.push(if v[i] { b'1' } else { b'0' }),
            Values::I32(v) => out.extend_from_slice(itoa::Buffer::new().format(v[i]).as_bytes()),
            Values::I64(v) => out.extend_from_slice(itoa::Buffer::new().format(v[i]).as_bytes()),
            Values::F32(v) => push_float(out, v[i]),
            Values::F64(v) => push_float(out, v[i]),
            Values::Text(v) => push_field(out, v[i].data()),
        }
    }
}

/// The shortest decimal that reads back to the same float (`NaN` and `inf` as the CSV
/// parser names them, so they are refused the same way).
fn push_float<F: ryu::Float + Copy + Into<f64>>(out: &mut Vec<u8>, x: F) {
    let x64: f64 = x.into();
    if x64.is_finite() {
        out.extend_from_slice(ryu::Buffer::new().format_finite(x).as_bytes());
    } else if x64.is_nan() {
        out.extend_from_slice(b"NaN");
    } else {
        out.extend_from_slice(if x64 > 0.0 { b"inf" } else { b"-inf" });
    }
}

/// The columns of one file: names, and whether each may hold nulls.
struct Columns {
    names: Vec<String>,
    optional: Vec<bool>,
}

fn columns<R: ChunkReader + 'static>(reader: &SerializedFileReader<R>, file: &str) -> Result<Columns> {
    let schema = reader.metadata().file_metadata().schema_descr();
    let mut layout = Columns { names: Vec::new(), optional: Vec::new() };
    for col in schema.columns() {
        let name = col.path().string();
        let refuse = |what: String| Error::Input { file: file.to_string(), reason: format!("column `{name}`: {what}") };
        if col.max_rep_level() > 0 || col.path().parts().len() > 1 {
            return Err(refuse("nested or repeated columns are not supported (flatten it first)".into()));
        }
        let decimal = matches!(col.logical_type_ref(), Some(LogicalType::Decimal { .. }))
            || col.converted_type() == ConvertedType::DECIMAL;
        match col.physical_type() {
            _ if decimal => return Err(refuse("decimal columns are not supported (store them as double)".into())),
            Physical::BOOLEAN | Physical::INT32 | Physical::INT64 | Physical::FLOAT | Physical::DOUBLE => {}
            Physical::BYTE_ARRAY => {}
            other => return Err(refuse(format!("type {other} is not supported"))),
        }
        layout.names.push(name);
        layout.optional.push(col.max_def_level() > 0);
    }
    if layout.names.is_empty() {
        return Err(Error::Input { file: file.to_string(), reason: "no columns".into() });
    }
    Ok(layout)
}

/// A Parquet file (or several with the same columns, one after the other) read as CSV text.
pub struct ParquetText<R: ChunkReader + 'static> {
    files: std::vec::IntoIter<(String, SerializedFileReader<R>)>,
    file: Option<(String, SerializedFileReader<R>)>,
    names: Vec<String>,
    optional: Vec<bool>,
    group: usize,
    /// The current row group's decoders, their last values and its rows left.
    decoders: Vec<Decoder>,
    values: Vec<Values>,
    defs: Vec<Vec<i16>>,
    left: usize,
    text: Vec<u8>,
    pos: usize,
}

impl<R: ChunkReader + 'static> ParquetText<R> {
    /// Opens `inputs` (label, reader) in order; they must have the same columns, in the same
    /// order. The header line comes first.
    pub fn new(inputs: Vec<(String, R)>) -> Result<Self> {
        let mut files = Vec::with_capacity(inputs.len());
        let mut first: Option<(String, Columns)> = None;
        for (label, input) in inputs {
            let reader = SerializedFileReader::new(input).map_err(|e| unreadable(&label, e))?;
            let this = columns(&reader, &label)?;
            match &first {
                None => first = Some((label.clone(), this)),
                Some((first_label, l)) if l.names != this.names => {
                    return Err(Error::Input {
                        file: label,
                        reason: format!("its columns differ from those of {first_label}"),
                    })
                }
                Some(_) => {}
            }
            files.push((label, reader));
        }
        let (_, l) = first.ok_or_else(|| Error::Input { file: "(none)".into(), reason: "no Parquet files".into() })?;
        let mut text = Vec::new();
        for (i, name) in l.names.iter().enumerate() {
            if i > 0 {
                text.push(b',');
            }
            push_field(&mut text, name.as_bytes());
        }
        text.push(b'\n');
        let n = l.names.len();
        Ok(Self {
            files: files.into_iter(),
            file: None,
            names: l.names,
            optional: l.optional,
            group: 0,
            decoders: Vec::new(),
            values: Vec::new(),
            defs: vec![Vec::new(); n],
            left: 0,
            text,
            pos: 0,
        })
    }

    /// The column names, in file order.
    pub fn columns(&self) -> &[String] {
        &self.names
    }

    /// Each file's label and row count, in reading order (rows of file k are read after
    /// all rows of the files before it).
    pub fn rows_per_file(&self) -> Vec<(String, u64)> {
        self.files
            .as_slice()
            .iter()
            .map(|(l, r)| (l.clone(), r.metadata().file_metadata().num_rows().max(0) as u64))
            .collect()
    }

    /// Decodes the next rows into `text`; `false` at the end of the last file.
    fn refill(&mut self) -> Result<bool> {
        while self.left == 0 {
            let next_group = self.file.as_ref().is_some_and(|(_, r)| self.group < r.num_row_groups());
            if !next_group {
                self.file = self.files.next();
                self.group = 0;
                if self.file.is_none() {
                    return Ok(false);
                }
                continue;
            }
            let (label, reader) = self.file.as_ref().expect("checked above");
            let rg = reader.get_row_group(self.group).map_err(|e| unreadable(label, e))?;
            self.left = rg.metadata().num_rows().max(0) as usize;
            let columns = (0..self.names.len())
                .map(|i| rg.get_column_reader(i).map(Decoder::new))
                .collect::<parquet::errors::Result<Vec<_>>>()
                .map_err(|e| unreadable(label, e))?;
            (self.decoders, self.values) = columns.into_iter().unzip();
            self.group += 1;
        }
        let label = self.file.as_ref().map_or("", |(l, _)| l.as_str()).to_string();
        let n = self.left.min(ROWS_PER_STEP);
        // One column at a time: the column readers share the file's position.
        for (i, (decoder, values)) in self.decoders.iter_mut().zip(&mut self.values).enumerate() {
            let name = &self.names[i];
            let defs = self.optional[i].then_some(&mut self.defs[i]);
            let got = decoder.read(values, n, defs).map_err(|e| unreadable(&label, format!("column `{name}`: {e}")))?;
            if got != n {
                return Err(unreadable(&label, format!("column `{name}` ends before its row group")));
            }
        }
        self.left -= n;
        // Where each row's value of an optional column is among its non-null values (a null,
        // a definition level below the maximum, is an empty field).
        let starts: Vec<Option<Vec<usize>>> = (0..self.values.len())
            .map(|i| {
                self.optional[i].then(|| {
                    let mut at = 0;
                    let mut v = Vec::with_capacity(n + 1);
                    for row in 0..n {
                        v.push(at);
                        at += usize::from(self.defs[i].get(row).is_some_and(|&d| d > 0));
                    }
                    v.push(at);
                    v
                })
            })
            .collect();
        let (columns, starts) = (&self.values, &starts);
        let format = |rows: std::ops::Range<usize>| {
            let mut out = Vec::with_capacity(rows.len() * 8 * columns.len());
            for row in rows {
                for (i, col) in columns.iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    match &starts[i] {
                        None => col.write(row, &mut out),
                        Some(at) if at[row + 1] > at[row] => col.write(at[row], &mut out),
                        Some(_) => {}
                    }
                }
                out.push(b'\n');
            }
            out
        };
        // Formatting, the larger half of the work, on every core too.
        let parts = rayon::current_num_threads().max(1);
        let per = n.div_ceil(parts);
        let pieces: Vec<Vec<u8>> =
            (0..parts).into_par_iter().map(|p| format(p * per..((p + 1) * per).min(n))).collect();
        self.text.clear();
        self.pos = 0;
        for piece in pieces {
            self.text.extend_from_slice(&piece);
        }
        Ok(true)
    }
}

impl<R: ChunkReader + 'static> Read for ParquetText<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.text.len() {
            match self.refill() {
                Ok(true) => {}
                Ok(false) => return Ok(0),
                Err(e) => return Err(io::Error::other(e.to_string())),
            }
        }
        let n = buf.len().min(self.text.len() - self.pos);
        buf[..n].copy_from_slice(&self.text[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// What [`csv_to_parquet`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Converted {
    pub report: LoadReport,
    pub columns: usize,
}

/// Writes the rows of a CSV (in a format the loaders recognise, or under `opts.spec`) as a
/// Parquet file: categorical, group and ignored columns as UTF-8 text exactly as written,
/// numerics as the f32 the CSV parser reads (so both files load to the same dataset),
/// labels as int32 0/1; Snappy-compressed row groups of 65,536 rows. Bad rows follow
/// `opts.bad_rows`.
pub fn csv_to_parquet<R: Read, W: Write + Send>(
    reader: R,
    label: &str,
    opts: &LoadOptions,
    out: W,
) -> Result<Converted> {
    let (lines, header) = read_header(reader, label)?;
    let (_, _, roles) = spec_layout(&header, label, opts)?;
    let mut columns: Vec<Written> = roles.roles.iter().map(Written::new).collect();
    let mut rows = RowReader::new(lines, label, header.clone(), roles, opts, None);
    let describe = |e: parquet::errors::ParquetError| Error::Input {
        file: label.to_string(),
        reason: format!("cannot describe its columns in Parquet: {e}"),
    };
    let fields = header
        .iter()
        .zip(&columns)
        .map(|(name, c)| {
            let (physical, converted) = c.physical();
            let t = Type::primitive_type_builder(name, physical).with_repetition(Repetition::REQUIRED);
            t.with_converted_type(converted).build().map(Arc::new)
        })
        .collect::<parquet::errors::Result<Vec<_>>>()
        .map_err(describe)?;
    let schema = Type::group_type_builder("adaftr").with_fields(fields).build().map_err(describe)?;
    let props = WriterProperties::builder().set_compression(parquet::basic::Compression::SNAPPY).build();
    let failed = |e: parquet::errors::ParquetError| Error::Io { file: label.to_string(), source: io::Error::other(e) };
    let mut writer = SerializedFileWriter::new(out, Arc::new(schema), Arc::new(props)).map_err(failed)?;
    let mut flush = |columns: &mut [Written]| -> parquet::errors::Result<()> {
        let mut group = writer.next_row_group()?;
        for c in columns.iter_mut() {
            let mut col = group.next_column()?.expect("one column writer per header column");
            c.drain_into(&mut col)?;
            col.close()?;
        }
        group.close()?;
        Ok(())
    };
    let mut buffered = 0usize;
    while rows.advance()? {
        let row = rows.row();
        for (i, c) in columns.iter_mut().enumerate() {
            c.push(&row, i);
        }
        buffered += 1;
        if buffered == ROWS_PER_GROUP {
            flush(&mut columns).map_err(failed)?;
            buffered = 0;
        }
    }
    if buffered > 0 || rows.report().rows == 0 {
        flush(&mut columns).map_err(failed)?;
    }
    writer.close().map_err(failed)?;
    Ok(Converted { report: rows.report().clone(), columns: header.len() })
}

/// One column of a row group being written, by the role of its CSV column.
enum Written {
    /// Categorical, group and ignored columns: the text as written.
    Text(Vec<ByteArray>),
    /// Numeric field `k`: the f32 the CSV parser reads.
    Num(usize, Vec<f32>),
    Click(Vec<i32>),
    Conversion(Vec<i32>),
}

impl Written {
    fn new(role: &Role) -> Self {
        match *role {
            Role::Num(k) => Written::Num(k, Vec::new()),
            Role::Click => Written::Click(Vec::new()),
            Role::Conversion => Written::Conversion(Vec::new()),
            Role::Cat(_) | Role::Ignored => Written::Text(Vec::new()),
        }
    }

    fn physical(&self) -> (Physical, ConvertedType) {
        match self {
            Written::Text(_) => (Physical::BYTE_ARRAY, ConvertedType::UTF8),
            Written::Num(..) => (Physical::FLOAT, ConvertedType::NONE),
            Written::Click(_) | Written::Conversion(_) => (Physical::INT32, ConvertedType::NONE),
        }
    }

    /// Takes header column `i` of `row`.
    fn push(&mut self, row: &Row<'_>, i: usize) {
        match self {
            Written::Text(v) => v.push(ByteArray::from(row.field(i).as_bytes().to_vec())),
            Written::Num(k, v) => v.push(row.nums[*k]),
            Written::Click(v) => v.push(i32::from(row.click)),
            Written::Conversion(v) => v.push(i32::from(row.conversion)),
        }
    }

    fn drain_into(&mut self, col: &mut SerializedColumnWriter<'_>) -> parquet::errors::Result<()> {
        match self {
            Written::Text(v) => col.typed::<ByteArrayType>().write_batch(v, None, None)?,
            Written::Num(_, v) => col.typed::<FloatType>().write_batch(v, None, None)?,
            Written::Click(v) | Written::Conversion(v) => col.typed::<Int32Type>().write_batch(v, None, None)?,
        };
        match self {
            Written::Text(v) => v.clear(),
            Written::Num(_, v) => v.clear(),
            Written::Click(v) | Written::Conversion(v) => v.clear(),
        }
        Ok(())
    }
}
