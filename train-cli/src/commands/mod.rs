pub mod bench;
pub mod convert;
pub mod describe;
pub mod eval;
pub mod inspect;
pub mod plot;
pub mod predict;
pub mod study;
pub mod synth;
pub mod train;

use std::path::Path;

use adaftr_core::data::{load_with_schema, BadRows, Dataset, LoadOptions};
use adaftr_core::schema::Schema;
use anyhow::{bail, Context, Result};

use crate::files;
use crate::inputs;

/// The flags shared by the commands that run a bundle over a CSV (`eval`, `predict`).
#[derive(clap::Args, Debug)]
pub struct ModelArgs {
    /// The model bundle.
    #[arg(long)]
    pub model: std::path::PathBuf,
    /// Rows per forward pass.
    #[arg(long, default_value_t = 4096)]
    pub batch_size: usize,
    #[arg(long, value_enum, default_value_t = crate::device::DeviceArg::Cpu)]
    pub device: crate::device::DeviceArg,
    #[arg(long, value_enum, default_value_t = BadRows::default())]
    pub bad_rows: BadRows,
}

impl ModelArgs {
    /// Loads and validates the bundle on the chosen device.
    pub fn load(&self) -> Result<adaftr_core::bundle::Bundle> {
        let device = crate::device::select(self.device)?;
        let bytes = files::read_model(&self.model)?;
        adaftr_core::bundle::load(&bytes, &device).with_context(|| format!("cannot load {}", self.model.display()))
    }
}

/// Loads a labelled CSV with a fitted schema, reporting skipped rows on stderr.
pub fn load_encoded(path: &Path, schema: &Schema, bad_rows: BadRows) -> Result<Dataset> {
    let opts = LoadOptions { bad_rows, ..LoadOptions::default() };
    let (ds, report) = load_with_schema(inputs::open(path)?, &files::label(path), schema, &opts)?;
    report_skipped(path, report.skipped, &report.first_errors);
    Ok(ds)
}

pub fn report_skipped(path: &Path, skipped: usize, first: &[String]) {
    if skipped > 0 {
        eprintln!("warning: skipped {skipped} bad rows in {}; the first:", path.display());
        for e in first {
            eprintln!("  {}", inputs::locate_in_parts(e));
        }
    }
}

/// The generator's per-row truth (`adaftr synth` writes it beside the data).
pub struct Truth {
    pub pctr: Vec<f64>,
    pub pcvr: Vec<f64>,
    pub relatedness: Vec<f64>,
}

pub fn read_truth(path: &Path) -> Result<Truth> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap_or("").split(',').map(str::trim).collect();
    // `adaftr synth`'s names, or the short ones other generators write.
    let col = |long: &str, short: &str| match header.iter().position(|h| *h == long || *h == short) {
        Some(c) => Ok(c),
        None => bail!("{}: no `{long}` (or `{short}`) column in the header", path.display()),
    };
    let cols = [col("true_pctr", "p_ctr")?, col("true_pcvr", "p_cvr")?, col("true_relatedness", "rho")?];
    let mut t = Truth { pctr: Vec::new(), pcvr: Vec::new(), relatedness: Vec::new() };
    for (i, line) in lines.enumerate() {
        let fields: Vec<&str> = line.split(',').collect();
        let mut v = [0.0; 3];
        for (k, &c) in cols.iter().enumerate() {
            let raw = fields.get(c).copied().unwrap_or("");
            v[k] = raw
                .trim()
                .parse()
                .with_context(|| format!("{}:{}, column `{}`: bad number `{raw}`", path.display(), i + 2, header[c]))?;
        }
        t.pctr.push(v[0]);
        t.pcvr.push(v[1]);
        t.relatedness.push(v[2]);
    }
    Ok(t)
}
