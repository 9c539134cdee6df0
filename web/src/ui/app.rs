//! The app shell: one reducer holds the state ([`crate::state`]); the prediction, the
//! what-if sweep, the examples' tau and the timing benchmark are memoised on exactly what
//! they read (model, instance, swept feature), and the feature sensitivity and the
//! relatedness map are asked for once per state (model, instance, map axes) from the panel
//! worker or, until it holds the model, the page ([`use_panel_batch`]), so a re-render for
//! anything else (an error dismissed, a loading message) runs no inference; the upload
//! zone keeps its drag state to itself.
//! A compared model's view is memoised the same way ([`use_comparison`]), and the state
//! follows the URL fragment ([`use_link`]).

use std::rc::Rc;

use wasm_bindgen_futures::spawn_local;
use yew::prelude::*;

use super::compare::{use_comparison, ComparePanel};
use super::editor::use_off_screen;
use super::load::{load_file, load_source, Source};
use super::offload::{use_panel_batch, use_panel_worker};
use super::paint::use_edit_to_paint;
use super::panels::{Diagnostics, ModelCard, Predictions, Timings};
use super::share::{use_link, ShareLink};
use super::upload::UploadZone;
use super::{FeatureEditor, RelatednessMap, Sensitivity, TrainPanel, WhatIf};
use crate::format::{exact, percent};
use crate::state::{Action, Slot, State};
use crate::timing::{mean_duration, Measured, BUDGET_MS};

#[derive(Properties, PartialEq, Default)]
pub struct AppProps {
    #[prop_or_default]
    pub source: Source,
}

#[derive(Clone, PartialEq)]
pub struct Store(pub State);

impl Reducible for Store {
    type Action = Action;
    fn reduce(self: Rc<Self>, action: Action) -> Rc<Self> {
        let mut s = self.0.clone();
        s.apply(action);
        Rc::new(Store(s))
    }
}

pub(super) fn now() -> f64 {
    web_sys::window().and_then(|w| w.performance()).map_or(0.0, |p| p.now())
}

/// `f`'s result and how long it took (ms, at the browser clock's resolution).
pub(super) fn timed<T>(f: impl FnOnce() -> T) -> (T, f64) {
    let t0 = now();
    let v = f();
    (v, now() - t0)
}

/// Mean single-instance inference time, measured over a time budget once per model.
fn bench_single(state: &State) -> Option<Measured> {
    let m = state.model.as_ref()?;
    let inst = std::slice::from_ref(&state.instance);
    mean_duration(BUDGET_MS, now, || m.bundle.predict(inst).map(drop)).ok()
}

#[function_component(App)]
pub fn app(props: &AppProps) -> Html {
    let store = use_reducer(|| Store(State::default()));
    {
        let dispatch = store.dispatcher();
        let source = props.source.clone();
        use_effect_with((), move |_| {
            dispatch.dispatch(Action::Loading("default model".into()));
            spawn_local(async move { dispatch.dispatch(load_source(source, Slot::Main).await) });
            || ()
        });
    }
    let state = &store.0;
    let model_id = state.model.as_ref().map(|m| m.id);
    // Single predictions computed so far (shown as a data attribute, so tests can tell
    // that renders without a change of model or instance run none).
    let runs = use_mut_ref(|| 0u64);
    let prediction = {
        let (state, runs) = (state.clone(), runs.clone());
        use_memo((model_id, state.instance.clone()), move |_| {
            *runs.borrow_mut() += 1;
            timed(|| state.predict())
        })
    };
    let sweep = {
        let state = state.clone();
        use_memo((model_id, state.instance.clone(), state.sweep), move |_| {
            let (result, ms) = timed(|| state.sweep_predictions());
            (Rc::new(result), ms)
        })
    };
    let worker = use_panel_worker(state.model.clone());
    let sensitivity = use_panel_batch(worker.clone(), state.model.clone(), (model_id, state.instance.clone()), || {
        state.sensitivity_batch()
    });
    let worker_ready = worker.as_ref().zip(model_id).is_some_and(|(w, id)| w.holds(id));
    let map_key = (model_id, state.instance.clone(), state.panels.map_x, state.panels.map_y);
    let relmap = use_panel_batch(worker, state.model.clone(), map_key, || state.map_batch());
    let example_taus = {
        let state = state.clone();
        use_memo(model_id, move |_| Rc::new(state.example_taus()))
    };
    let (comparison, overlay) = use_comparison(state, sweep.0.clone());
    let bench = {
        let state = state.clone();
        use_memo(model_id, move |_| bench_single(&state))
    };
    let panels_current = sensitivity.current && relmap.current;
    let off_screen = use_off_screen(model_id, &state.instance, panels_current);
    let (edit_clock, edit) = use_edit_to_paint(panels_current, panels_current && off_screen.is_none());
    let on_action = {
        let dispatch = store.dispatcher();
        use_callback((), move |a: Action, _| {
            if a.is_edit() {
                *edit_clock.borrow_mut() = Some(now());
            }
            dispatch.dispatch(a)
        })
    };
    let write_link = use_link(state, on_action.clone());
    let on_file = {
        let dispatch = store.dispatcher();
        use_callback((), move |f: web_sys::File, _| {
            let dispatch = dispatch.clone();
            load_file(f, Slot::Main, move |a| dispatch.dispatch(a));
        })
    };
    let dismiss = {
        let dispatch = store.dispatcher();
        Callback::from(move |_: MouseEvent| dispatch.dispatch(Action::DismissError))
    };

    let timings = Timings {
        single_ms: prediction.1,
        single_avg: *bench,
        sweep_ms: sweep.1,
        sweep_points: sweep.0.as_ref().as_ref().and_then(|r| r.as_ref().ok()).map_or(0, |(p, _)| p.instances.len()),
        predictions: *runs.borrow(),
        sensitivity_ms: sensitivity.ms,
        sensitivity_points: sensitivity.rows,
        relmap_ms: relmap.ms,
        relmap_points: relmap.rows,
        panels_off_thread: sensitivity.off_thread,
        panel_worker: worker_ready,
        edit,
    };

    let status = match (&state.loading, &state.model) {
        (Some(what), _) => {
            html! { <p id="adaftr-status" class="status" role="status">{ format!("Loading {what}…") }</p> }
        }
        (None, Some(m)) => html! {
            <p id="adaftr-status" class="status" role="status">
                { "Model: " }<strong id="adaftr-model-name" data-model-id={m.id.to_string()}>{ m.name.clone() }</strong>
            </p>
        },
        (None, None) => {
            html! { <p id="adaftr-status" class="status" role="status">{ "No model loaded." }</p> }
        }
    };
    let error = state.error.as_ref().map(|e| {
        html! {
            <div id="adaftr-error" class="error" role="alert">
                <span>{ e.clone() }</span>
                <button type="button" id="adaftr-error-dismiss" onclick={dismiss.clone()} aria-label="Dismiss error">{ "×" }</button>
            </div>
        }
    });

    html! {
        <div class="adaftr-app">
            <header class="top">
                <h1>{ "AdaFTR: click and purchase, and how related they are" }</h1>
                <p class="lede">{ "Edit an instance and watch the predicted click-through rate, conversion rate and the per-instance relatedness temperature tau, computed in your browser by the same Rust inference code as the command line." }</p>
                { status }
                if state.model.is_some() {
                    <ShareLink note={state.link_note.clone()} write_now={write_link} />
                }
                { for error }
            </header>
            // On a narrow screen the predictions card comes after the whole editor; this
            // summary stays at the top of the screen while the editor scrolls by.
            if let Some(Ok(pred)) = &prediction.0 {
                <div id="adaftr-sticky" class="sticky-summary" role="status" aria-label="current predictions"
                    data-pctr={exact(pred.pctr)} data-pcvr={exact(pred.pcvr)}>
                    <span>{ "pCTR " }<strong>{ percent(pred.pctr) }</strong></span>
                    <span>{ "pCVR " }<strong>{ percent(pred.pcvr) }</strong></span>
                    <span>{ "pCTCVR " }<strong>{ percent(pred.pctcvr) }</strong></span>
                    <span>{ "tau " }<strong>{ pred.tau.map_or("n/a".to_string(), |t| format!("{t:.3}")) }</strong></span>
                </div>
            }
            <div class="layout">
                <div class="col">
                    if let Some(m) = &state.model {
                        <FeatureEditor model={m.clone()} instance={state.instance.clone()} {off_screen} example={state.example.clone()} on_action={on_action.clone()} />
                    }
                </div>
                <div class="col">
                    if let Some(m) = &state.model {
                        <Predictions model={m.clone()} instance={state.instance.clone()} prediction={prediction.0.clone()} />
                        <WhatIf model={m.clone()} feature={state.sweep} sweep={sweep.0.clone()} on_action={on_action.clone()} overlay={overlay.clone()} />
                        <ComparePanel model={m.clone()} compare={state.compare.clone()} prediction={prediction.0.clone()}
                            comparison={comparison.clone()} shipped={props.source.comparison()} on_action={on_action.clone()} />
                        // aria-busy while a panel's batch is in the worker (it shows the last
                        // one back); on a wrapper, so that the flag alone re-renders nothing.
                        <div class="panel-state" id="adaftr-sensitivity-state" aria-busy={(!sensitivity.current).to_string()}>
                            <Sensitivity rows={sensitivity.value.clone()} rank_by={state.panels.rank_by} sweep={state.sweep} on_action={on_action.clone()} />
                        </div>
                        <div class="panel-state" id="adaftr-relmap-state" aria-busy={(!relmap.current).to_string()}>
                            <RelatednessMap model={m.clone()} map={relmap.value.clone()} x={state.panels.map_x} y={state.panels.map_y}
                                show={state.panels.map_show} example_taus={(*example_taus).clone()}
                                tau={prediction.0.as_ref().and_then(|r| r.as_ref().ok()).and_then(|p| p.tau)} on_action={on_action.clone()} />
                        </div>
                    }
                    <UploadZone {on_file} />
                    <TrainPanel model={state.model.clone()} on_action={on_action.clone()} />
                    if let Some(m) = &state.model {
                        <ModelCard model={m.clone()} />
                    }
                    <Diagnostics timings={timings} />
                </div>
            </div>
        </div>
    }
}
