//! `adaftr convert`: a CSV to Parquet, loading to the same dataset.

use std::path::PathBuf;

use adaftr_core::data::parquet::csv_to_parquet;
use adaftr_core::data::{BadRows, LoadOptions};
use anyhow::{Context, Result};

use crate::files;
use crate::inputs;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The CSV (.csv or .csv.gz) in a format `adaftr train` reads (AliExpress, Ali-CCP, or
    /// any with --schema).
    #[arg(long)]
    pub input: PathBuf,
    /// The Parquet file to write: categorical and other text columns as UTF-8 strings,
    /// numerics as float (the values the CSV loads to), labels as int32; Snappy-compressed
    /// row groups of 65,536 rows.
    #[arg(long)]
    pub output: PathBuf,
    /// Explicit schema JSON, as for `adaftr train`.
    #[arg(long)]
    pub schema: Option<PathBuf>,
    #[arg(long, value_enum, default_value_t = BadRows::default())]
    pub bad_rows: BadRows,
}

pub fn run(a: &Args) -> Result<()> {
    let spec = a.schema.as_deref().map(super::train::read_schema_spec).transpose()?;
    let opts = LoadOptions { bad_rows: a.bad_rows, spec, ..LoadOptions::default() };
    let out = files::create(&a.output)?;
    let done = csv_to_parquet(inputs::open(&a.input)?, &files::label(&a.input), &opts, out)
        .with_context(|| format!("converting {} to {}", a.input.display(), a.output.display()))?;
    super::report_skipped(&a.input, done.report.skipped, &done.report.first_errors);
    eprintln!("wrote {} rows of {} columns to {}", done.report.rows, done.columns, a.output.display());
    Ok(())
}
