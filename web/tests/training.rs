//! Training in wasm, in a dedicated worker as the Train panel runs it (headless Chromium
//! through wasm-bindgen-test-runner; scripts/web-test.sh): a few steps lower the loss, and
//! one step from the same weights and batch equals the native step (the fixture the native
//! tests keep current) to 1e-5.
#![cfg(target_arch = "wasm32")]

use adaftr_core::config::Backbone;
use adaftr_core::data::{generate, SynthConfig};
use adaftr_web::training::{step_fingerprint, Report, Session, StepFingerprint, TrainRequest};
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_dedicated_worker);

const NATIVE_STEP: &str = include_str!("fixtures/train-step.json");

#[wasm_bindgen_test]
fn one_step_equals_the_native_step() {
    let native: StepFingerprint = serde_json::from_str(NATIVE_STEP).unwrap();
    let here = step_fingerprint().unwrap();
    let (d, what) = native.difference(&here);
    assert!(d < 1e-5, "the browser's step differs from the native one: {what} by {d:e}");
}

#[wasm_bindgen_test]
fn a_few_steps_lower_the_loss() {
    let mut csv = Vec::new();
    generate(
        &SynthConfig { rows: 3_000, seed: 5, compute_auc: false, ..SynthConfig::default() },
        &mut csv,
        std::io::sink(),
    )
    .unwrap();
    let req = TrainRequest {
        file: "wasm.csv".into(),
        backbone: Backbone::SharedBottom,
        batch_size: 128,
        epochs: 2,
        ..TrainRequest::default()
    };
    let (mut s, _) = Session::start(&req, &csv[..], None).unwrap();
    let (reports, _) = s.run(30).unwrap();
    let losses: Vec<f64> = reports
        .iter()
        .filter_map(|r| match r {
            Report::Step { losses, .. } => Some(losses.total),
            _ => None,
        })
        .collect();
    assert_eq!(losses.len(), 30);
    let mean = |x: &[f64]| x.iter().sum::<f64>() / x.len() as f64;
    let (first, last) = (mean(&losses[..5]), mean(&losses[25..]));
    assert!(last < 0.9 * first, "30 steps took the loss from {first:.4} to {last:.4}");
}
