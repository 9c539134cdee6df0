//! Writes a development default model and examples into `web/assets/`:
//! `cargo run -p adaftr-web --example make_default_model [--release]`.
//! The shipped default is meant to be replaced by `scripts/make-default-model.sh`; after
//! that, `... --example make_default_model -- --examples-only` writes only examples.json,
//! random instances for the schema of the model already in `web/assets/`.

use std::path::Path;

use adaftr_web::demo::{demo_config, demo_examples, demo_schema, train_bundle};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("assets");
    std::fs::create_dir_all(&dir)?;
    if std::env::args().any(|a| a == "--examples-only") {
        let bytes = std::fs::read(dir.join("default-model.safetensors"))?;
        let (_, schema, _) = adaftr_core::bundle::read_metadata(&bytes)?;
        let examples = demo_examples(&schema, 6, 2024);
        std::fs::write(
            dir.join("examples.json"),
            serde_json::to_string_pretty(&examples)? + "\n",
        )?;
        println!(
            "wrote examples.json for the schema of {}",
            dir.join("default-model.safetensors").display()
        );
        return Ok(());
    }
    let schema = demo_schema();
    let bytes = train_bundle(schema.clone(), demo_config(42), 6_000)?;
    std::fs::write(dir.join("default-model.safetensors"), &bytes)?;
    let examples = demo_examples(&schema, 6, 2024);
    std::fs::write(
        dir.join("examples.json"),
        serde_json::to_string_pretty(&examples)? + "\n",
    )?;
    println!(
        "wrote {} ({} bytes) and examples.json",
        dir.join("default-model.safetensors").display(),
        bytes.len()
    );
    let (_, _, summary) = adaftr_core::bundle::read_metadata(&bytes)?;
    for r in &summary.history {
        println!(
            "epoch {}: valid AUC CTR {:?}, tau {:?}",
            r.epoch, r.valid.auc_ctr, r.valid.tau
        );
    }
    Ok(())
}
