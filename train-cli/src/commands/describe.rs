//! `adaftr describe`: gives a bundle's features their display names, descriptions and
//! groups (what the browser's editor shows) without retraining. The weights, config and
//! training summary are copied byte for byte (`bundle::describe`), so predictions are
//! bit-identical.

use std::collections::BTreeMap;
use std::path::PathBuf;

use adaftr_core::bundle;
use adaftr_core::schema::FieldInfo;
use anyhow::{Context, Result};

use crate::files;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The model bundle to describe.
    #[arg(long)]
    pub model: PathBuf,
    /// JSON object from feature column name to `{"label", "description", "group"}` (each
    /// optional), as `adaftr synth` writes beside its data (`<name>.fields.json`). Each
    /// field named replaces that field's description; the others keep theirs.
    #[arg(long)]
    pub fields: PathBuf,
    /// Where to write the described bundle (may be --model itself; written atomically).
    #[arg(long)]
    pub out: PathBuf,
}

pub fn run(a: &Args) -> Result<()> {
    let text = std::fs::read_to_string(&a.fields).with_context(|| format!("cannot read {}", a.fields.display()))?;
    let infos: BTreeMap<String, FieldInfo> = serde_json::from_str(&text)
        .with_context(|| format!("{} is not a JSON object of field descriptions", a.fields.display()))?;
    let bytes = files::read_model(&a.model)?;
    // A full load first: a bundle that would not load is not written again described.
    let loaded = bundle::load(&bytes, &candle_core::Device::Cpu)
        .with_context(|| format!("cannot load {}", a.model.display()))?;
    let out = bundle::describe(&bytes, &infos)
        .with_context(|| format!("{} does not fit {}", a.fields.display(), a.model.display()))?;
    files::write_atomic(&a.out, &out)?;
    eprintln!(
        "described {} of {} fields; wrote {}",
        infos.len(),
        loaded.schema.num_categorical() + loaded.schema.num_numeric(),
        a.out.display()
    );
    Ok(())
}
