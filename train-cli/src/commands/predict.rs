//! `adaftr predict`.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Result;

use super::ModelOnData;
use crate::files;

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    pub input: ModelOnData,
    /// Output CSV: pctr,pcvr,pctcvr,tau, one row per input row.
    #[arg(long)]
    pub out: PathBuf,
}

pub fn run(a: &Args) -> Result<()> {
    let (_, ds, p) = a.input.run()?;
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
