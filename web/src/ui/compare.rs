//! The comparison panel: a second model beside the first on the same instance, the
//! numbers side by side with their difference; its curves go to the what-if chart
//! ([`Overlay`]). Both are memoised on exactly what they read ([`use_comparison`]).

use std::rc::Rc;

use adaftr_core::inference::Prediction;
use wasm_bindgen_futures::spawn_local;
use yew::prelude::*;

use super::app::timed;
use super::chart::SweepResult;
use super::load::{load_file, load_source, Source};
use super::upload::UploadZone;
use crate::compare::{has_feature, Comparison};
use crate::format::{exact, percent, points};
use crate::model::LoadedModel;
use crate::state::{Action, Slot, State};

/// The compared model's curves for the chart's sweep.
#[derive(Debug, PartialEq)]
pub struct Overlay {
    pub name: String,
    /// Its predictions at the sweep's points; `None` when no field matched.
    pub preds: Option<Result<Vec<Prediction>, String>>,
    pub tau_bounds: (f32, f32),
    /// Whether it has the swept feature (else its curve is flat).
    pub has_feature: bool,
    /// How long its batch took (ms, at the browser clock's resolution).
    pub ms: f64,
}

/// The comparison and how long it took (ms); `None` when there is no second model.
pub type Timed = Option<(Comparison, f64)>;

/// The comparison (with how long it took, ms) and the chart's overlay, memoised on both
/// models, the instance and (the overlay) the swept feature: `sweep` is the first model's
/// sweep for the same instance and feature.
#[hook]
pub fn use_comparison(state: &State, sweep: Rc<SweepResult>) -> (Rc<Timed>, Rc<Option<Overlay>>) {
    let ids = (state.model.as_ref().map(|m| m.id), state.compare.as_ref().map(|m| m.id));
    let comparison = {
        let state = state.clone();
        use_memo((ids, state.instance.clone()), move |_| {
            let (c, ms) = timed(|| state.comparison());
            c.map(|c| (c, ms))
        })
    };
    let overlay = {
        let state = state.clone();
        use_memo((ids, state.instance.clone(), state.sweep), move |_| {
            let (a, b) = (state.model.as_ref()?, state.compare.as_ref()?);
            let Some(Ok((plan, _))) = sweep.as_ref() else { return None };
            let (preds, ms) = timed(|| state.compare_sweep(plan));
            Some(Overlay {
                name: b.name.clone(),
                preds,
                tau_bounds: b.tau_bounds(),
                has_feature: has_feature(&a.bundle.schema, plan.feature, &b.bundle.schema),
                ms,
            })
        })
    };
    (comparison, overlay)
}

#[derive(Properties, PartialEq)]
pub struct CompareProps {
    pub model: Rc<LoadedModel>,
    pub compare: Option<Rc<LoadedModel>>,
    /// The first model's prediction.
    pub prediction: Option<Result<Prediction, String>>,
    pub comparison: Rc<Timed>,
    /// The shipped model to compare with, when the site has one.
    pub shipped: Option<Source>,
    pub on_action: Callback<Action>,
}

#[function_component(ComparePanel)]
pub fn compare_panel(p: &CompareProps) -> Html {
    let open = use_state_eq(|| false);
    let toggle = {
        let open = open.clone();
        Callback::from(move |_: MouseEvent| open.set(!*open))
    };
    let on_file = {
        let on_action = p.on_action.clone();
        Callback::from(move |f: web_sys::File| {
            let on_action = on_action.clone();
            load_file(f, Slot::Compare, move |a| on_action.emit(a));
        })
    };
    let body = match (&p.compare, p.comparison.as_ref()) {
        (Some(b), Some((c, ms))) => {
            let stop = {
                let (on_action, open) = (p.on_action.clone(), open.clone());
                Callback::from(move |_: MouseEvent| {
                    open.set(false);
                    on_action.emit(Action::StopComparing);
                })
            };
            side_by_side(&p.model, b, p.prediction.as_ref(), c, *ms, stop)
        }
        _ => {
            let shipped = p.shipped.clone().map(|src| {
                let on_action = p.on_action.clone();
                let onclick = Callback::from(move |_: MouseEvent| {
                    let (on_action, src) = (on_action.clone(), src.clone());
                    on_action.emit(Action::Loading("the comparison model".into()));
                    spawn_local(async move { on_action.emit(load_source(src, Slot::Compare).await) });
                });
                html! {
                    <button type="button" id="adaftr-compare-shipped" {onclick}>
                        { "Plain PLE without the relatedness term (shipped, same training data)" }
                    </button>
                }
            });
            html! {
                <>
                    <p class="hint">{ "Put a second model beside this one: the same instance, both predictions and their difference, and both models' curves in the what-if chart." }</p>
                    <button type="button" id="adaftr-compare-open" aria-expanded={open.to_string()}
                        aria-controls="adaftr-compare-choose" onclick={toggle}>{ "Compare with…" }</button>
                    if *open {
                        <div id="adaftr-compare-choose" class="compare-choose">
                            { for shipped }
                            <UploadZone slot={Slot::Compare} {on_file} />
                        </div>
                    }
                </>
            }
        }
    };
    html! {
        <section class="card compare" id="adaftr-compare-panel" aria-labelledby="adaftr-compare-title">
            <h2 id="adaftr-compare-title">{ "Compare" }</h2>
            { body }
        </section>
    }
}

fn side_by_side(
    a: &LoadedModel,
    b: &LoadedModel,
    pa: Option<&Result<Prediction, String>>,
    c: &Comparison,
    ms: f64,
    stop: Callback<MouseEvent>,
) -> Html {
    let pb = match &c.prediction {
        Some(Ok(pb)) => Some(*pb),
        _ => None,
    };
    let table = match (pa, &c.prediction) {
        (Some(Ok(pa)), Some(Ok(pb))) => {
            let tau = |t: Option<f32>| t.map_or("n/a".to_string(), |t| format!("{t:.3}"));
            let row = |name: &str, style: &str, q: &Prediction| {
                html! {
                    <tr>
                        <th scope="row">{ name.to_string() }<span class="muted">{ format!(" ({style})") }</span></th>
                        <td>{ percent(q.pctr) }</td><td>{ percent(q.pcvr) }</td><td>{ percent(q.pctcvr) }</td>
                        <td>{ tau(q.tau) }</td>
                    </tr>
                }
            };
            let dtau = pa.tau.zip(pb.tau).map_or("n/a".to_string(), |(x, y)| format!("{:+.3}", y - x));
            html! {
                <table class="compare-table" id="adaftr-compare-table">
                    <caption>{ "The same instance, two models" }</caption>
                    <thead><tr><th scope="col">{ "model" }</th><th scope="col">{ "pCTR" }</th><th scope="col">{ "pCVR" }</th>
                        <th scope="col">{ "pCTCVR" }</th><th scope="col">{ "tau" }</th></tr></thead>
                    <tbody>
                        { row(&a.name, "solid", pa) }
                        { row(&b.name, "dashed", pb) }
                        <tr class="diff">
                            <th scope="row">{ "difference (second − first)" }</th>
                            <td>{ points(pb.pctr - pa.pctr) }</td><td>{ points(pb.pcvr - pa.pcvr) }</td>
                            <td>{ points(pb.pctcvr - pa.pctcvr) }</td><td>{ dtau }</td>
                        </tr>
                    </tbody>
                </table>
            }
        }
        (_, Some(Err(e))) => {
            html! { <p class="error" role="alert">{ format!("`{}` failed to predict: {e}", b.name) }</p> }
        }
        _ => html! {},
    };
    html! {
        <div id="adaftr-compare" data-model-id={b.id.to_string()} data-matched={c.mapping.matched.to_string()}
            data-fields={c.mapping.fields.to_string()} data-ms={ms.to_string()}
            data-pctr={pb.map(|q| exact(q.pctr))} data-pcvr={pb.map(|q| exact(q.pcvr))}
            data-pctcvr={pb.map(|q| exact(q.pctcvr))} data-tau={pb.map(|q| q.tau.map(exact).unwrap_or_default())}
            data-instance={serde_json::to_string(&c.mapping.instance).unwrap_or_default()}>
            if let Some(note) = c.mapping.note(&b.name) {
                <p class="warning" id="adaftr-compare-note" role="status">{ note }</p>
            }
            { table }
            <button type="button" id="adaftr-compare-stop" onclick={stop}>{ "Stop comparing" }</button>
        </div>
    }
}
