//! A loaded model (bundle plus where it came from), upload checks, and the model card.

use adaftr_core::bundle::{self, Bundle};
use adaftr_core::relatedness;
use adaftr_core::schema::{Schema, Side};
use candle_core::Device;

use crate::editor::{default_instance, examples_for, Example};
use crate::format;

/// Uploads larger than this are refused before being read.
pub const MAX_UPLOAD_BYTES: f64 = 64.0 * 1024.0 * 1024.0;

/// Checks a file by name and size alone (the browser's `File.size`), before reading it.
pub fn check_upload(name: &str, size: f64) -> Result<(), String> {
    if size > MAX_UPLOAD_BYTES {
        return Err(format!(
            "`{name}` is {}; models larger than {} are refused. The current model is still loaded.",
            format::bytes(size as u64),
            format::bytes(MAX_UPLOAD_BYTES as u64)
        ));
    }
    if size == 0.0 {
        return Err(format!("`{name}` is empty. The current model is still loaded."));
    }
    Ok(())
}

/// A model the app can use.
#[derive(Clone)]
pub struct LoadedModel {
    /// Changes with every load, so views can tell models apart cheaply.
    pub id: u64,
    pub name: String,
    pub size: usize,
    pub bundle: Bundle,
    /// The bundle's bytes, which fine-tuning in the Train panel starts from.
    pub bytes: std::rc::Rc<Vec<u8>>,
    /// Examples shipped with the model (only the default model has them).
    pub examples: Vec<Example>,
}

impl PartialEq for LoadedModel {
    fn eq(&self, other: &Self) -> bool {
        self.id == other.id
    }
}

impl LoadedModel {
    /// Loads and checks a bundle with core's loader, and runs one prediction so a model
    /// that loads but cannot predict is refused too. Errors are user-facing sentences.
    pub fn from_bytes(id: u64, name: &str, bytes: &[u8], examples: Vec<Example>) -> Result<Self, String> {
        let refuse =
            |why: String| format!("`{name}` is not a usable AdaFTR model: {why}. The current model is still loaded.");
        let bundle = bundle::load(bytes, &Device::Cpu).map_err(|e| refuse(e.to_string()))?;
        bundle.predict(&[default_instance(&bundle.schema)]).map_err(|e| refuse(e.to_string()))?;
        let examples = examples_for(&bundle.schema, examples);
        Ok(Self {
            id,
            name: name.to_string(),
            size: bytes.len(),
            bundle,
            bytes: std::rc::Rc::new(bytes.to_vec()),
            examples,
        })
    }

    pub fn tau_bounds(&self) -> (f32, f32) {
        (self.bundle.config.model.tau_min, self.bundle.config.model.tau_max)
    }

    /// Whether tau sets a contrastive term (else it is a reading beside the predictions).
    pub fn aligns(&self) -> bool {
        relatedness::model_hooks(self.bundle.config.loss.cl).aligns()
    }
}

/// Fields of a schema grouped by side, in the order the editor shows them.
pub const SIDES: [(Side, &str); 3] = [(Side::User, "User / query"), (Side::Item, "Item"), (Side::Context, "Context")];

pub fn side_counts(schema: &Schema, side: Side) -> (usize, usize) {
    (
        schema.categorical.iter().filter(|f| f.side == side).count(),
        schema.numeric.iter().filter(|f| f.side == side).count(),
    )
}

/// The model card: titled sections of label/value rows.
#[derive(Debug, Clone, PartialEq)]
pub struct Card {
    pub sections: Vec<(String, Vec<(String, String)>)>,
    /// A warning when tau sits on one of its bounds for nearly all instances.
    pub tau_warning: Option<String>,
}

fn opt(x: Option<f64>) -> String {
    x.map_or("n/a".into(), |v| format!("{v:.4}"))
}

fn widths(v: &[usize]) -> String {
    format!("[{}]", v.iter().map(ToString::to_string).collect::<Vec<_>>().join(", "))
}

pub fn card(m: &LoadedModel) -> Card {
    let (c, s, sum) = (&m.bundle.config, &m.bundle.schema, &m.bundle.summary);
    let kv = |k: &str, v: String| (k.to_string(), v);
    let model = vec![
        kv("file", format!("{} ({})", m.name, format::bytes(m.size as u64))),
        kv("backbone", c.model.backbone.name().to_string()),
        kv("embedding dim", c.model.embedding_dim.to_string()),
        kv("bottom / experts", widths(&c.model.bottom)),
        kv("towers", widths(&c.model.tower)),
        kv(
            "relatedness",
            format!(
                "{} (input {:?}, hidden {})",
                c.loss.cl.name(),
                c.model.relatedness_input,
                c.model.relatedness_hidden
            ),
        ),
        kv("tau range", format!("{} .. {}", c.model.tau_min, c.model.tau_max)),
        kv("lambda", c.loss.lambda.to_string()),
    ];
    let mut schema = vec![kv("format", s.format.clone())];
    for (side, label) in SIDES {
        let (nc, nn) = side_counts(s, side);
        if nc + nn > 0 {
            schema.push(kv(label, format!("{nc} categorical, {nn} numeric")));
        }
    }
    let vocab: usize = s.categorical.iter().map(|f| f.vocab().len()).sum();
    schema.push(kv("vocabulary", format!("{vocab} values in {} fields", s.num_categorical())));
    let mut training = vec![
        kv("train rows", sum.train_rows.to_string()),
        kv("epochs run", sum.epochs_run.to_string()),
        kv("best epoch", sum.best_epoch.map_or("n/a".into(), |e| e.to_string())),
    ];
    let mut tau_rows = Vec::new();
    let mut tau_warning = None;
    if let Some(v) = &sum.best_valid {
        training.push(kv("valid AUC CTR", opt(v.auc_ctr)));
        training.push(kv("valid AUC CVR", opt(v.auc_cvr)));
        training.push(kv("valid AUC CTCVR", opt(v.auc_ctcvr)));
        training.push(kv("valid logloss CTR", opt(v.logloss_ctr)));
        training.push(kv("valid logloss CTCVR", opt(v.logloss_ctcvr)));
        if let Some(t) = &v.tau {
            tau_rows = vec![
                kv("mean", format!("{:.3}", t.mean)),
                kv("p5", format!("{:.3}", t.p5)),
                kv("p50", format!("{:.3}", t.p50)),
                kv("p95", format!("{:.3}", t.p95)),
            ];
            let (lo, hi) = (c.model.tau_min as f64, c.model.tau_max as f64);
            let eps = 0.02 * (hi - lo);
            if t.p95 - lo < eps || hi - t.p5 < eps {
                tau_warning = Some("tau sits on one of its bounds for nearly every instance: this model's relatedness carries little per-instance information.".into());
            }
        }
    }
    for (k, v) in &sum.notes {
        training.push(kv(k, v.clone()));
    }
    let mut sections =
        vec![("Model".to_string(), model), ("Schema".to_string(), schema), ("Training".to_string(), training)];
    if !tau_rows.is_empty() {
        sections.push(("tau on validation data".to_string(), tau_rows));
    }
    Card { sections, tau_warning }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::demo::{demo_config, demo_schema, train_bundle};
    use std::sync::OnceLock;

    /// One small trained bundle shared by the tests of this crate.
    pub(crate) fn bundle_bytes() -> &'static [u8] {
        static B: OnceLock<Vec<u8>> = OnceLock::new();
        B.get_or_init(|| {
            let mut c = demo_config(5);
            c.train.epochs = 1;
            train_bundle(demo_schema(), c, 800).unwrap()
        })
    }

    #[test]
    fn size_is_checked_before_reading() {
        assert!(check_upload("m.safetensors", 1000.0).is_ok());
        assert!(check_upload("m.safetensors", MAX_UPLOAD_BYTES).is_ok());
        let e = check_upload("big.safetensors", MAX_UPLOAD_BYTES + 1.0).unwrap_err();
        assert!(e.contains("big.safetensors") && e.contains("64.0 MiB") && e.contains("still loaded"), "{e}");
        assert!(check_upload("e", 0.0).unwrap_err().contains("empty"));
    }

    #[test]
    fn bad_bytes_give_a_clear_message() {
        let good = bundle_bytes();
        for bad in [&b"not a model"[..], &good[..good.len() / 2], &good[..7]] {
            let e = LoadedModel::from_bytes(1, "x.safetensors", bad, vec![]).expect_err("must refuse");
            assert!(
                e.starts_with("`x.safetensors` is not a usable AdaFTR model:") && e.ends_with("still loaded."),
                "{e}"
            );
        }
    }

    /// The shipped default model loads (bundles written before the schema checks still do)
    /// and its card names its training files, never a directory of the machine that made it.
    #[test]
    fn shipped_model_card_names_files_only() {
        let bytes = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/assets/default-model.safetensors")).unwrap();
        let m = LoadedModel::from_bytes(1, "default-model.safetensors", &bytes, vec![]).unwrap();
        let c = card(&m);
        let training = &c.sections.iter().find(|(t, _)| t == "Training").unwrap().1;
        let notes: Vec<&(String, String)> = training.iter().filter(|(k, _)| k == "train" || k == "valid").collect();
        assert_eq!(notes.len(), 2, "{training:?}");
        for (k, v) in notes {
            assert!(!v.contains('/') && !v.contains('\\'), "the card's `{k}` is a path: {v}");
        }
    }

    #[test]
    fn card_describes_the_model() {
        let m = LoadedModel::from_bytes(3, "d.safetensors", bundle_bytes(), vec![]).unwrap();
        assert_eq!(m.tau_bounds(), (0.05, 1.0));
        let card = card(&m);
        let titles: Vec<&str> = card.sections.iter().map(|(t, _)| t.as_str()).collect();
        assert_eq!(titles, ["Model", "Schema", "Training", "tau on validation data"]);
        let find = |k: &str| {
            card.sections.iter().flat_map(|(_, rows)| rows).find(|(key, _)| key == k).map(|(_, v)| v.clone()).unwrap()
        };
        assert_eq!(find("backbone"), adaftr_core::config::Config::default().model.backbone.name());
        assert_eq!(find("towers"), "[32, 16]");
        assert_eq!(find("User / query"), "2 categorical, 1 numeric");
        assert_eq!(find("vocabulary"), "20 values in 5 fields");
        assert_eq!(find("epochs run"), "1");
        assert!(find("valid AUC CTR").parse::<f64>().is_ok());
        assert!(find("p50").parse::<f64>().is_ok());
    }
}
