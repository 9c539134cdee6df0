//! `adaftr predict`.

use std::io::Write;
use std::path::PathBuf;

use adaftr_core::bundle;
use adaftr_core::evaluate::predict;
use anyhow::{Context, Result};

use super::BadRowsArg;
use crate::device::{self, DeviceArg};
use crate::files;

#[derive(clap::Args, Debug)]
pub struct Args {
    #[arg(long)]
    pub model: PathBuf,
    /// CSV in the model's format (label columns must be present; their values are ignored).
    #[arg(long)]
    pub data: PathBuf,
    /// Output CSV: pctr,pcvr,pctcvr,tau, one row per input row.
    #[arg(long)]
    pub out: PathBuf,
    #[arg(long, default_value_t = 4096)]
    pub batch_size: usize,
    #[arg(long, value_enum, default_value_t = DeviceArg::Cpu)]
    pub device: DeviceArg,
    #[arg(long, value_enum, default_value_t = BadRowsArg::Error)]
    pub bad_rows: BadRowsArg,
}

pub fn run(a: &Args) -> Result<()> {
    let device = device::select(a.device)?;
    let b = bundle::load(&files::read_model(&a.model)?, &device).with_context(|| format!("cannot load {}", a.model.display()))?;
    let ds = super::load_encoded(&a.data, &b.schema, a.bad_rows.into())?;
    let p = predict(&b.model, &ds, a.batch_size, &device)?;
    let mut w = files::create(&a.out)?;
    let io = |e| anyhow::Error::new(e).context(format!("cannot write {}", a.out.display()));
    writeln!(w, "pctr,pcvr,pctcvr,tau").map_err(io)?;
    for i in 0..ds.len() {
        let tau = p.tau.get(i).map_or(String::new(), |t| t.to_string());
        writeln!(w, "{},{},{},{}", p.pctr[i], p.pcvr[i], p.pctcvr[i], tau).map_err(io)?;
    }
    w.flush().map_err(io)?;
    eprintln!("wrote {} predictions to {}", ds.len(), a.out.display());
    Ok(())
}
