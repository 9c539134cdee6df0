//! `adaftr predict`: scores a CSV, streaming. Each batch of rows is encoded, predicted and
//! written before the next is read, so memory is one batch whatever the file's size.

use std::io::Write;
use std::path::PathBuf;

use adaftr_core::data::csv::push_field;
use adaftr_core::data::{LoadOptions, ScoreBatch, ScoreReader};
use anyhow::{bail, Context, Result};

use super::ModelArgs;
use crate::files;
use crate::inputs;

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    pub model: ModelArgs,
    /// CSV (or .csv.gz) with the model's feature columns, in any order. Label columns may
    /// be present or not (they are not read); other columns are ignored unless --keep
    /// copies them.
    #[arg(long)]
    pub data: PathBuf,
    /// Output CSV: the --keep columns, then pctr,pcvr,pctcvr,tau; one row per input row
    /// (tau is empty for a model without a contrastive term).
    #[arg(long)]
    pub out: PathBuf,
    /// Input columns to copy into the output, before the predictions (for example an id
    /// to join on); comma-separated or repeated.
    #[arg(long, value_delimiter = ',')]
    pub keep: Vec<String>,
}

pub fn run(a: &Args) -> Result<()> {
    let b = a.model.load()?;
    if let Some(name) = a.keep.iter().find(|k| PREDICTION_COLUMNS.contains(&k.as_str())) {
        bail!("--keep `{name}` would clash with the prediction column of that name in the output");
    }
    let opts = LoadOptions { bad_rows: a.model.bad_rows, ..LoadOptions::default() };
    let mut reader = ScoreReader::new(inputs::open(&a.data)?, &files::label(&a.data), &b.schema, &a.keep, &opts)?;
    let mut w = files::create(&a.out)?;
    let written = (|| -> Result<usize> {
        let io = |e| anyhow::Error::new(e).context(format!("cannot write {}", a.out.display()));
        // Each line is built here, its fields in the dialect the loaders read (a
        // passed-through value was unquoted on reading, so it is quoted again).
        let mut line = Vec::new();
        for (i, name) in a.keep.iter().map(String::as_str).chain(PREDICTION_COLUMNS).enumerate() {
            if i > 0 {
                line.push(b',');
            }
            push_field(&mut line, name.as_bytes());
        }
        line.push(b'\n');
        w.write_all(&line).map_err(io)?;
        let (mut batch, mut rows) = (ScoreBatch::default(), 0);
        while reader.next_batch(&mut batch, a.model.batch_size)? {
            let predictions = b.predict_inputs(&batch.inputs)?;
            for (i, p) in predictions.iter().enumerate() {
                line.clear();
                for v in batch.kept(i) {
                    push_field(&mut line, v.as_bytes());
                    line.push(b',');
                }
                let tau = p.tau.map_or(String::new(), |t| t.to_string());
                writeln!(line, "{},{},{},{}", p.pctr, p.pcvr, p.pctcvr, tau).map_err(io)?;
                w.write_all(&line).map_err(io)?;
            }
            rows += predictions.len();
        }
        w.flush().map_err(io)?;
        Ok(rows)
    })()
    .with_context(|| format!("predicting {}", a.data.display()))?;
    let report = reader.report();
    super::report_skipped(&a.data, report.skipped, &report.first_errors);
    eprintln!("wrote {written} predictions to {}", a.out.display());
    Ok(())
}

const PREDICTION_COLUMNS: [&str; 4] = ["pctr", "pcvr", "pctcvr", "tau"];
