pub mod eval;
pub mod inspect;
pub mod predict;
pub mod synth;
pub mod train;

use std::path::Path;

use adaftr_core::data::{load_with_schema, BadRows, Dataset, LoadOptions};
use adaftr_core::schema::Schema;
use anyhow::Result;

use crate::files;

/// Loads a labelled CSV with a fitted schema, reporting skipped rows on stderr.
pub fn load_encoded(path: &Path, schema: &Schema, bad_rows: BadRows) -> Result<Dataset> {
    let opts = LoadOptions { bad_rows, ..LoadOptions::default() };
    let (ds, report) = load_with_schema(files::open(path)?, &files::label(path), schema, &opts)?;
    report_skipped(path, report.skipped, &report.first_errors);
    Ok(ds)
}

pub fn report_skipped(path: &Path, skipped: usize, first: &[String]) {
    if skipped > 0 {
        eprintln!("warning: skipped {skipped} bad rows in {}; the first:", path.display());
        for e in first {
            eprintln!("  {e}");
        }
    }
}

/// Bad-row policy flag.
#[derive(clap::ValueEnum, Clone, Copy, Debug, Default)]
pub enum BadRowsArg {
    /// Stop at the first malformed row with an error naming file, line, column and value.
    #[default]
    Error,
    /// Skip malformed rows, then report how many and the first few.
    Skip,
}

impl From<BadRowsArg> for BadRows {
    fn from(a: BadRowsArg) -> Self {
        match a {
            BadRowsArg::Error => BadRows::Error,
            BadRowsArg::Skip => BadRows::Skip,
        }
    }
}
