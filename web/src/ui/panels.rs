//! Predictions, model card and diagnostics.

use std::rc::Rc;

use adaftr_core::inference::{Instance, Prediction};
use yew::prelude::*;

use crate::format::{self, exact, percent, relatedness, tau_reading};
use crate::model::{card, LoadedModel};
use crate::timing::Measured;

use crate::edit_frames::EditTimes;

#[derive(Properties, PartialEq)]
pub struct PredictionsProps {
    pub model: Rc<LoadedModel>,
    pub instance: Instance,
    pub prediction: Option<Result<Prediction, String>>,
}

#[function_component(Predictions)]
pub fn predictions(p: &PredictionsProps) -> Html {
    let pred = match &p.prediction {
        Some(Ok(pred)) => *pred,
        Some(Err(e)) => {
            return html! { <section class="card predictions" id="adaftr-predictions"><p class="error" role="alert">{ format!("Prediction failed: {e}") }</p></section> }
        }
        None => return html! {},
    };
    let (lo, hi) = p.model.tau_bounds();
    let instance_json = serde_json::to_string(&p.instance).unwrap_or_default();
    let tau_text = pred.tau.map_or("n/a".to_string(), |t| format!("{t:.3}"));
    let level = pred.tau.map(|t| relatedness(t, lo, hi).label()).unwrap_or("no tau");
    let stat = |id: &str, label: &str, value: String, help: &str| {
        html! {
            <div class="stat">
                <dt>{ label }</dt>
                <dd id={id.to_string()} title={help.to_string()}>{ value }</dd>
            </div>
        }
    };
    html! {
        <section class="card predictions" id="adaftr-predictions" aria-labelledby="adaftr-predictions-title"
            data-pctr={exact(pred.pctr)} data-pcvr={exact(pred.pcvr)} data-pctcvr={exact(pred.pctcvr)}
            data-tau={pred.tau.map(exact).unwrap_or_default()} data-instance={instance_json}
            data-model-id={p.model.id.to_string()}>
            <h2 id="adaftr-predictions-title">{ "Predictions" }</h2>
            <dl class="stats">
                { stat("adaftr-pctr", "pCTR", percent(pred.pctr), "probability of a click") }
                { stat("adaftr-pcvr", "pCVR", percent(pred.pcvr), "probability of a purchase, given a click") }
                { stat("adaftr-pctcvr", "pCTCVR", percent(pred.pctcvr), "probability of a click and a purchase = pCTR × pCVR") }
                { stat("adaftr-tau", "tau", tau_text, "per-instance relatedness temperature") }
            </dl>
            <p class="reading" id="adaftr-reading"><strong>{ format!("Relatedness: {level}. ") }</strong>{ tau_reading(pred.tau, lo, hi, p.model.aligns()) }</p>
            if let Some(t) = pred.tau {
                <div class="taubar" aria-hidden="true">
                    <span class="taubar-fill" style={format!("width: {:.1}%", format::tau_position(t, lo, hi) * 100.0)}></span>
                    <span class="taubar-lo">{ "closely related" }</span><span class="taubar-hi">{ "loosely related" }</span>
                </div>
            }
        </section>
    }
}

#[derive(Properties, PartialEq)]
pub struct CardProps {
    pub model: Rc<LoadedModel>,
}

#[function_component(ModelCard)]
pub fn model_card(p: &CardProps) -> Html {
    let c = use_memo(p.model.id, |_| card(&p.model));
    html! {
        <section class="card model-card" id="adaftr-card" aria-labelledby="adaftr-card-title">
            <h2 id="adaftr-card-title">{ "Model card" }</h2>
            if let Some(w) = &c.tau_warning {
                <p class="warning" id="adaftr-tau-warning">{ w.clone() }</p>
            }
            <div class="card-grid">
            { for c.sections.iter().map(|(title, rows)| html! {
                <div class="card-section">
                    <h3>{ title.clone() }</h3>
                    <dl>
                        { for rows.iter().map(|(k, v)| html! { <><dt>{ k.clone() }</dt><dd>{ v.clone() }</dd></> }) }
                    </dl>
                </div>
            }) }
            </div>
        </section>
    }
}

#[derive(Clone, Copy, PartialEq, Default)]
pub struct Timings {
    /// The current prediction, timed once (at the clock's resolution).
    pub single_ms: f64,
    /// Mean of many single-instance predictions, measured when the model loaded.
    pub single_avg: Option<Measured>,
    pub sweep_ms: f64,
    pub sweep_points: usize,
    /// Single predictions computed since the app started.
    pub predictions: u64,
    pub sensitivity_ms: f64,
    pub sensitivity_points: usize,
    pub relmap_ms: f64,
    pub relmap_points: usize,
    /// Whether the last sensitivity batch ran in the panel worker (else on the page).
    pub panels_off_thread: bool,
    /// Whether the panel worker holds the current model (the next batches go to it).
    pub panel_worker: bool,
    /// The last edit's work and its time to the first frame painted with its result (all
    /// panels); see `ui::paint`.
    pub edit: Option<EditTimes>,
}

#[derive(Properties, PartialEq)]
pub struct DiagProps {
    pub timings: Timings,
}

#[function_component(Diagnostics)]
pub fn diagnostics(p: &DiagProps) -> Html {
    let t = p.timings;
    // performance.now() is coarsened (100 µs in Chromium): one call is timed as the mean
    // over a time budget when the model loads; the sweep is timed live on every update.
    let single = t
        .single_avg
        .map_or("n/a".to_string(), |m| format!("{} (mean of {} calls)", format::millis(m.mean_ms), m.calls));
    let live = |ms: f64| if ms > 0.0 { format::millis(ms) } else { "< 0.1 ms".to_string() };
    let sweep = live(t.sweep_ms);
    html! {
        <p class="diag" id="adaftr-diag" data-single-ms={t.single_avg.map_or(t.single_ms, |m| m.mean_ms).to_string()}
            data-sweep-ms={t.sweep_ms.to_string()} data-predictions={t.predictions.to_string()}
            data-sensitivity-ms={t.sensitivity_ms.to_string()} data-sensitivity-points={t.sensitivity_points.to_string()}
            data-relmap-ms={t.relmap_ms.to_string()} data-relmap-points={t.relmap_points.to_string()}
            data-edit-to-paint-ms={t.edit.map(|e| e.to_paint.to_string()).unwrap_or_default()}
            data-edit-work-ms={t.edit.map(|e| e.work.to_string()).unwrap_or_default()}
            data-edit-late-work-ms={t.edit.and_then(|e| e.late).map(|w| w.to_string()).unwrap_or_default()}
            data-panels-off-thread={t.panels_off_thread.to_string()} data-panel-worker={t.panel_worker.to_string()}>
            { format!(
                "In-browser inference (wasm, simd128): one instance {single}; \
                 what-if sweep of {} points in one batch {sweep}; \
                 feature sensitivity, {} points in one batch, {}; \
                 relatedness map, {} points in one batch, {} (last update{}). \
                 Last edit: {}.",
                t.sweep_points,
                t.sensitivity_points,
                live(t.sensitivity_ms),
                t.relmap_points,
                live(t.relmap_ms),
                if t.panels_off_thread { "; these two in a background worker, beside the page's render" } else { "" },
                t.edit.map_or("none yet".to_string(), |e| format!(
                    "{} of work (inference, render, layout and paint){}; everything in view painted {} after the edit",
                    format::millis(e.work),
                    e.late.map_or(String::new(), |l| format!(
                        ", then {} at most in a later frame (the worker's panels, inputs off the screen)",
                        format::millis(l)
                    )),
                    format::millis(e.to_paint)
                ))
            ) }
        </p>
    }
}
