//! `adaftr inspect`.

use std::path::Path;

use adaftr_core::bundle;
use adaftr_core::schema::FieldInfo;
use anyhow::{Context, Result};

use crate::files;

/// A field's display name after its line, where it has one.
fn display_name(info: &FieldInfo) -> String {
    info.label.as_deref().map_or(String::new(), |l| format!("  ({l})"))
}

pub fn run(path: &Path) -> Result<()> {
    let bytes = files::read_model(path)?;
    // Full load: inspect also vouches that the weights match the config.
    let b =
        bundle::load(&bytes, &candle_core::Device::Cpu).with_context(|| format!("cannot load {}", path.display()))?;
    println!(
        "{}: adaftr bundle v{}, {} bytes, {} parameters",
        path.display(),
        bundle::FORMAT_VERSION,
        bytes.len(),
        b.params.numel()
    );
    println!("\n[config]\n{}", toml::to_string(&b.config).unwrap_or_default());
    let s = &b.schema;
    println!("[schema] format {}, labels `{}` / `{}`", s.format, s.click, s.conversion);
    if let Some(g) = &s.group {
        println!("  group column: {g}");
    }
    if let Some(v) = &s.vocabulary {
        println!(
            "  vocabularies: min count {}, at most {} values a field, counted {}",
            v.min_count,
            v.max_size.map_or("any number of".to_string(), |m| m.to_string()),
            if v.approximate { "approximately (a streamed fit pass pruned rare values)" } else { "exactly" }
        );
    }
    println!("  {} categorical fields (vocabulary sizes, OOV excluded):", s.num_categorical());
    for f in &s.categorical {
        println!(
            "    {:<16} {:<8} {}{}",
            f.name,
            format!("{:?}", f.side).to_lowercase(),
            f.vocab().len(),
            display_name(&f.info)
        );
    }
    println!("  {} numeric fields:", s.num_numeric());
    for f in &s.numeric {
        println!(
            "    {:<16} {:<8} {:?} range [{}, {}]{}",
            f.name,
            format!("{:?}", f.side).to_lowercase(),
            f.norm,
            f.min,
            f.max,
            display_name(&f.info)
        );
    }
    let t = &b.summary;
    println!(
        "\n[training] {} rows, {} epochs run, best epoch {}",
        t.train_rows,
        t.epochs_run,
        t.best_epoch.map_or("-".into(), |e| e.to_string())
    );
    let f = |x: Option<f64>| x.map_or("n/a".to_string(), |v| format!("{v:.4}"));
    for r in &t.history {
        let v = &r.valid;
        let tau = v.tau.map_or(String::new(), |d| {
            format!(" tau mean {:.3} p5 {:.3} p50 {:.3} p95 {:.3}", d.mean, d.p5, d.p50, d.p95)
        });
        println!(
            "  epoch {:>2}{} loss {:.4} AUC ctr {} cvr {} ctcvr {}{tau}",
            r.epoch,
            if Some(r.epoch) == t.best_epoch { "*" } else { " " },
            r.train_loss,
            f(v.auc_ctr),
            f(v.auc_cvr),
            f(v.auc_ctcvr)
        );
    }
    for (k, v) in &t.notes {
        println!("  {k}: {v}");
    }
    Ok(())
}
