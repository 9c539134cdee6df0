//! Writes a development default model and examples into `web/assets/`:
//! `cargo run -p adaftr-web --example make_default_model [--release]`.
//! The shipped default is meant to be replaced by `scripts/make-default-model.sh`; after
//! that, `... --example make_default_model -- --examples-only` writes only examples.json,
//! random instances for the schema of the model already in `web/assets/`; with
//! `--examples-from DATA.csv` the examples are real rows of that file instead (clicked and
//! converted ones included), which is what `scripts/make-default-model.sh` ships.

use std::path::Path;

use adaftr_core::data::{load_with_schema, LoadOptions};
use adaftr_core::inference::Instance;
use adaftr_core::schema::Schema;
use adaftr_web::demo::{demo_config, demo_examples, demo_schema, train_bundle};
use adaftr_web::editor::{example_from_instance, Example};

/// Six real rows of `path`: the first two converted, two clicked only, two not clicked.
fn examples_from_csv(schema: &Schema, path: &str) -> Result<Vec<Example>, Box<dyn std::error::Error>> {
    let (ds, _) = load_with_schema(std::fs::File::open(path)?, path, schema, &LoadOptions::default())?;
    let kind = |i: usize| (ds.click.get(i), ds.conversion.get(i));
    let mut picked = Vec::new();
    for (want, label) in
        [((true, true), "clicked and bought"), ((true, false), "clicked, not bought"), ((false, false), "not clicked")]
    {
        picked.extend((0..ds.len()).filter(|&i| kind(i) == want).take(2).map(|i| (i, label)));
    }
    let name = std::path::Path::new(path).file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    Ok(picked
        .into_iter()
        .map(|(i, label)| {
            let num = schema.numeric.iter().zip(ds.num_row(i)).map(|(f, &v)| f.denormalize(v)).collect();
            let inst = Instance { cat: ds.cat_row(i).to_vec(), num };
            example_from_instance(schema, &format!("{name} row {}: {label}", i + 1), &inst)
        })
        .collect())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("assets");
    std::fs::create_dir_all(&dir)?;
    if std::env::args().any(|a| a == "--examples-only") {
        let bytes = std::fs::read(dir.join("default-model.safetensors"))?;
        let (_, schema, _) = adaftr_core::bundle::read_metadata(&bytes)?;
        let args: Vec<String> = std::env::args().collect();
        let examples = match args.iter().position(|a| a == "--examples-from") {
            Some(i) => {
                let path = args.get(i + 1).ok_or("--examples-from needs a CSV path")?;
                examples_from_csv(&schema, path)?
            }
            None => demo_examples(&schema, 6, 2024),
        };
        std::fs::write(dir.join("examples.json"), serde_json::to_string_pretty(&examples)? + "\n")?;
        println!(
            "wrote {} examples to examples.json for the schema of {}",
            examples.len(),
            dir.join("default-model.safetensors").display()
        );
        return Ok(());
    }
    let schema = demo_schema();
    let bytes = train_bundle(schema.clone(), demo_config(42), 6_000)?;
    std::fs::write(dir.join("default-model.safetensors"), &bytes)?;
    let examples = demo_examples(&schema, 6, 2024);
    std::fs::write(dir.join("examples.json"), serde_json::to_string_pretty(&examples)? + "\n")?;
    println!("wrote {} ({} bytes) and examples.json", dir.join("default-model.safetensors").display(), bytes.len());
    let (_, _, summary) = adaftr_core::bundle::read_metadata(&bytes)?;
    for r in &summary.history {
        println!("epoch {}: valid AUC CTR {:?}, tau {:?}", r.epoch, r.valid.auc_ctr, r.valid.tau);
    }
    Ok(())
}
