//! The forward pass of every backbone against an independent reference computed outside
//! candle: `tests/reference/forward_reference.py` (pure Python, float64) writes fixed
//! weights, inputs and expected outputs to `tests/fixtures/forward_reference.json`; this
//! test loads exactly those tensors into `AdaFtr` (strictly: a missing, mis-shaped or unused
//! tensor fails) and requires every output to match within the fixture's tolerance (1e-5).
//!
//! Regenerate the fixture with `python3 core/tests/reference/forward_reference.py`.

use std::collections::{BTreeSet, HashSet};
use std::path::Path;

use adaftr_core::config::{Config, LossConfig, ModelConfig};
use adaftr_core::model::AdaFtr;
use adaftr_core::nn::init::{strict_var_builder, Params, Tracking};
use candle_core::{Device, Tensor};
use serde_json::Value;

/// `base` as JSON with the fields of `partial` written over it.
fn over<T: serde::Serialize>(base: &T, partial: &Value) -> Value {
    let mut v = serde_json::to_value(base).unwrap();
    for (k, x) in partial.as_object().into_iter().flatten() {
        v[k] = x.clone();
    }
    v
}

fn load_fixture() -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/forward_reference.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    serde_json::from_str(&text).expect("fixture is valid JSON")
}

fn usizes(v: &Value) -> Vec<usize> {
    v.as_array().expect("array").iter().map(|x| x.as_u64().expect("unsigned integer") as usize).collect()
}

fn floats(v: &Value) -> Vec<f64> {
    v.as_array().expect("array").iter().map(|x| x.as_f64().expect("number")).collect()
}

/// A (rows, cols) JSON matrix, flattened row-major.
fn matrix(v: &Value) -> (usize, usize, Vec<f64>) {
    let rows = v.as_array().expect("matrix rows");
    let cols = rows.first().map(|r| r.as_array().expect("matrix row").len()).unwrap_or(0);
    let mut flat = Vec::with_capacity(rows.len() * cols);
    for r in rows {
        let r = floats(r);
        assert_eq!(r.len(), cols, "ragged matrix in fixture");
        flat.extend(r);
    }
    (rows.len(), cols, flat)
}

/// Largest |got - want| and where, over one output.
struct Worst {
    output: &'static str,
    index: usize,
    diff: f64,
}

fn compare(output: &'static str, got: &[f32], want: &[f64]) -> Worst {
    assert_eq!(got.len(), want.len(), "{output}: {} values, reference has {}", got.len(), want.len());
    let mut worst = Worst { output, index: 0, diff: 0.0 };
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        let d = (g as f64 - w).abs();
        // A NaN must count as a failure, not compare as smaller.
        let d = if d.is_nan() { f64::INFINITY } else { d };
        if d > worst.diff {
            worst = Worst { output, index: i, diff: d };
        }
    }
    worst
}

#[test]
fn every_backbone_matches_the_python_reference() {
    let fixture = load_fixture();
    let tol = fixture["tolerance"].as_f64().expect("tolerance");
    assert!(tol <= 1e-5, "the issue asks for 1e-5, fixture says {tol}");
    let cases = fixture["cases"].as_array().expect("cases");
    let backbones: BTreeSet<String> = cases.iter().map(|c| c["backbone"].as_str().unwrap().to_string()).collect();
    let all: BTreeSet<String> = adaftr_core::config::Backbone::ALL.iter().map(|b| b.name().to_string()).collect();
    assert_eq!(backbones, all, "the fixture must cover every backbone");

    let dev = Device::Cpu;
    let mut failures = Vec::new();
    for case in cases {
        let name = case["backbone"].as_str().unwrap();
        // The fixture's configs are partial; what they leave out is the literal spec, which
        // the reference implements (not the defaults, which differ in the relatedness).
        let literal = Config::literal_spec();
        let cfg: ModelConfig = serde_json::from_value(over(&literal.model, &case["model"])).expect("model config");
        let loss: LossConfig = serde_json::from_value(over(&literal.loss, &case["loss"])).expect("loss config");
        cfg.validate().unwrap();
        assert_eq!(cfg.backbone.name(), name);
        let cards = usizes(&case["cardinalities"]);
        let n_numeric = case["n_numeric"].as_u64().unwrap() as usize;

        // The reference's tensors, exactly (their values are float32 numbers).
        let weights = case["weights"].as_object().expect("weights");
        let mut tensors = Vec::with_capacity(weights.len());
        for (wname, w) in weights {
            let shape = usizes(&w["shape"]);
            let values: Vec<f32> = floats(&w["values"]).into_iter().map(|v| v as f32).collect();
            assert_eq!(values.len(), shape.iter().product::<usize>(), "{name}: {wname} size");
            tensors.push((wname.clone(), Tensor::from_vec(values, shape, &dev).unwrap()));
        }
        let params = Params::from_tensors(tensors).unwrap();
        let (vb, state) = strict_var_builder(&params, &dev, Tracking::Trainable);
        let model = AdaFtr::new(&cfg, &loss, &cards, n_numeric, vb)
            .unwrap_or_else(|e| panic!("{name}: building from the reference tensors failed: {e}"));
        {
            let st = state.lock().unwrap();
            assert!(st.first_error.is_none(), "{name}: {:?}", st.first_error);
            let fixture_names: HashSet<String> = weights.keys().cloned().collect();
            let unused: BTreeSet<&String> = fixture_names.difference(&st.used).collect();
            assert!(unused.is_empty(), "{name}: reference tensors the model never asked for: {unused:?}");
            assert_eq!(params.len(), weights.len(), "{name}: the model created parameters of its own");
        }

        // Inputs.
        let (n, f, cat) = matrix(&case["inputs"]["cat"]);
        assert_eq!(f, cards.len());
        let cat: Vec<u32> = cat.into_iter().map(|v| v as u32).collect();
        let cat = Tensor::from_vec(cat, (n, f), &dev).unwrap();
        let (n2, d, num) = matrix(&case["inputs"]["num"]);
        assert_eq!((n2, d), (n, n_numeric));
        let num = Tensor::from_vec(num.into_iter().map(|v| v as f32).collect::<Vec<f32>>(), (n, d), &dev).unwrap();

        let out = model.forward(&cat, &num).unwrap();
        let exp = &case["expected"];
        let vec1 = |t: &Tensor| t.to_vec1::<f32>().unwrap();
        let flat2 = |t: &Tensor| t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let k = cfg.repr_dim();
        assert_eq!(out.h_ctr.dims(), &[n, k], "{name}: h_ctr shape");
        assert_eq!(out.h_cvr.dims(), &[n, k], "{name}: h_cvr shape");
        let tau = out.tau.as_ref().expect("cl = joint predicts tau");
        let worsts = [
            compare("logit_ctr", &vec1(&out.logit_ctr), &floats(&exp["logit_ctr"])),
            compare("logit_cvr", &vec1(&out.logit_cvr), &floats(&exp["logit_cvr"])),
            compare("pctr", &vec1(&out.pctr), &floats(&exp["pctr"])),
            compare("pcvr", &vec1(&out.pcvr), &floats(&exp["pcvr"])),
            compare("pctcvr", &vec1(&out.pctcvr), &floats(&exp["pctcvr"])),
            compare("tau", &vec1(tau), &floats(&exp["tau"])),
            compare("h_ctr", &flat2(&out.h_ctr), &matrix(&exp["h_ctr"]).2),
            compare("h_cvr", &flat2(&out.h_cvr), &matrix(&exp["h_cvr"]).2),
        ];
        let worst = worsts.iter().max_by(|a, b| a.diff.total_cmp(&b.diff)).unwrap();
        println!(
            "{name:>13}: worst |candle - reference| = {:.3e} ({}[{}]); per output: {}",
            worst.diff,
            worst.output,
            worst.index,
            worsts.iter().map(|w| format!("{} {:.1e}", w.output, w.diff)).collect::<Vec<_>>().join(", ")
        );
        for w in worsts.iter().filter(|w| w.diff > tol) {
            failures.push(format!("{name}: {}[{}] differs by {:.3e} (> {tol:e})", w.output, w.index, w.diff));
        }
    }
    assert!(failures.is_empty(), "forward pass differs from the reference:\n{}", failures.join("\n"));
}
