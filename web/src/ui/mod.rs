//! The Yew components (browser only). State lives in one reducer ([`crate::state`]);
//! components get small props and send [`Action`]s back.

mod chart;
mod editor;
mod panels;

use std::cell::Cell;
use std::rc::Rc;

use js_sys::Uint8Array;
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::{spawn_local, JsFuture};
use web_sys::{DragEvent, Event, HtmlInputElement};
use yew::prelude::*;

use crate::editor::parse_examples;
use crate::model::{check_upload, LoadedModel};
use crate::state::{Action, State};

pub use chart::WhatIf;
pub use editor::{show_value, FeatureEditor};
pub use panels::{Diagnostics, ModelCard, Predictions, Timings};

/// Where the default model comes from.
#[derive(Clone, PartialEq)]
pub enum Source {
    /// Fetched with relative URLs (the shipped site).
    Fetch { model_url: String, examples_url: Option<String> },
    /// Given as bytes (tests).
    Bytes { name: String, model: Rc<Vec<u8>>, examples_json: Option<Rc<str>> },
}

impl Default for Source {
    fn default() -> Self {
        Source::Fetch {
            model_url: "assets/default-model.safetensors".into(),
            examples_url: Some("assets/examples.json".into()),
        }
    }
}

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

thread_local! {
    static NEXT_ID: Cell<u64> = const { Cell::new(1) };
}

fn next_model_id() -> u64 {
    NEXT_ID.with(|c| {
        let id = c.get();
        c.set(id + 1);
        id
    })
}

fn js_err(e: JsValue) -> String {
    e.as_string()
        .or_else(|| js_sys::JSON::stringify(&e).ok().and_then(|s| s.as_string()))
        .unwrap_or_else(|| format!("{e:?}"))
}

async fn fetch_bytes(url: &str) -> Result<Vec<u8>, String> {
    let window = web_sys::window().ok_or("no window")?;
    let resp: web_sys::Response =
        JsFuture::from(window.fetch_with_str(url)).await.map_err(js_err)?.dyn_into().map_err(js_err)?;
    if !resp.ok() {
        return Err(format!("{url}: HTTP {}", resp.status()));
    }
    let buf = JsFuture::from(resp.array_buffer().map_err(js_err)?).await.map_err(js_err)?;
    Ok(Uint8Array::new(&buf).to_vec())
}

async fn load_default(source: Source) -> Action {
    let (name, bytes, examples) = match source {
        Source::Bytes { name, model, examples_json } => {
            (name, Ok(model.to_vec()), examples_json.map(|s| s.to_string()))
        }
        Source::Fetch { model_url, examples_url } => {
            let bytes = fetch_bytes(&model_url).await;
            let examples = match examples_url {
                Some(u) => fetch_bytes(&u).await.ok().and_then(|b| String::from_utf8(b).ok()),
                None => None,
            };
            let name = model_url.rsplit('/').next().unwrap_or(&model_url).to_string();
            (name, bytes, examples)
        }
    };
    let bytes = match bytes {
        Ok(b) => b,
        Err(e) => return Action::LoadFailed(format!("Could not fetch the default model ({e}). Upload a model below.")),
    };
    // Examples are optional: a broken examples file only loses the examples.
    let examples = examples.and_then(|j| parse_examples(&j).ok()).unwrap_or_default();
    match LoadedModel::from_bytes(next_model_id(), &name, &bytes, examples) {
        Ok(m) => Action::Loaded(Rc::new(m)),
        Err(e) => Action::LoadFailed(e),
    }
}

/// Checks the size first (the File's size, before reading), then reads and loads it.
pub fn load_file(file: web_sys::File, dispatch: UseReducerDispatcher<Store>) {
    let name = file.name();
    if let Err(msg) = check_upload(&name, file.size()) {
        dispatch.dispatch(Action::LoadFailed(msg));
        return;
    }
    dispatch.dispatch(Action::Loading(name.clone()));
    spawn_local(async move {
        let action = match JsFuture::from(file.array_buffer()).await {
            Ok(buf) => {
                let bytes = Uint8Array::new(&buf).to_vec();
                match LoadedModel::from_bytes(next_model_id(), &name, &bytes, Vec::new()) {
                    Ok(m) => Action::Loaded(Rc::new(m)),
                    Err(e) => Action::LoadFailed(e),
                }
            }
            Err(e) => Action::LoadFailed(format!(
                "Could not read `{name}`: {}. The current model is still loaded.",
                js_err(e)
            )),
        };
        dispatch.dispatch(action);
    });
}

fn now() -> f64 {
    web_sys::window().and_then(|w| w.performance()).map_or(0.0, |p| p.now())
}

/// Average single-instance inference time over `runs` calls, measured once per model.
fn bench_single(state: &State, runs: usize) -> Option<f64> {
    let m = state.model.as_ref()?;
    let inst = std::slice::from_ref(&state.instance);
    let t0 = now();
    for _ in 0..runs {
        m.bundle.predict(inst).ok()?;
    }
    Some((now() - t0) / runs as f64)
}

#[function_component(App)]
pub fn app(props: &AppProps) -> Html {
    let store = use_reducer(|| Store(State::default()));
    {
        let dispatch = store.dispatcher();
        let source = props.source.clone();
        use_effect_with((), move |_| {
            dispatch.dispatch(Action::Loading("default model".into()));
            spawn_local(async move { dispatch.dispatch(load_default(source).await) });
            || ()
        });
    }
    let state = &store.0;
    let model_id = state.model.as_ref().map(|m| m.id);
    let bench = {
        let state = state.clone();
        use_memo(model_id, move |_| bench_single(&state, 50))
    };
    let on_action = {
        let dispatch = store.dispatcher();
        Callback::from(move |a: Action| dispatch.dispatch(a))
    };
    let on_file = {
        let dispatch = store.dispatcher();
        Callback::from(move |e: Event| {
            let input: HtmlInputElement = e.target_unchecked_into();
            if let Some(f) = input.files().and_then(|l| l.get(0)) {
                load_file(f, dispatch.clone());
            }
            input.set_value("");
        })
    };
    let dragging = use_state(|| false);
    let on_dragover = {
        let dragging = dragging.clone();
        Callback::from(move |e: DragEvent| {
            e.prevent_default();
            dragging.set(true);
        })
    };
    let on_dragleave = {
        let dragging = dragging.clone();
        Callback::from(move |_: DragEvent| dragging.set(false))
    };
    let on_drop = {
        let dispatch = store.dispatcher();
        let dragging = dragging.clone();
        Callback::from(move |e: DragEvent| {
            e.prevent_default();
            dragging.set(false);
            if let Some(f) = e.data_transfer().and_then(|d| d.files()).and_then(|l| l.get(0)) {
                load_file(f, dispatch.clone());
            }
        })
    };
    let dismiss = {
        let dispatch = store.dispatcher();
        Callback::from(move |_: MouseEvent| dispatch.dispatch(Action::DismissError))
    };

    let t0 = now();
    let prediction = state.predict();
    let t1 = now();
    let sweep = state.sweep_predictions();
    let t2 = now();
    let timings = Timings {
        single_ms: t1 - t0,
        single_avg_ms: *bench,
        sweep_ms: t2 - t1,
        sweep_points: sweep.as_ref().and_then(|r| r.as_ref().ok()).map_or(0, |(p, _)| p.instances.len()),
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
    let drop_class = classes!("dropzone", dragging.then_some("dragging"));

    html! {
        <div class="adaftr-app">
            <header class="top">
                <h1>{ "AdaFTR: click and purchase, and how related they are" }</h1>
                <p class="lede">{ "Edit an instance and watch the predicted click-through rate, conversion rate and the per-instance relatedness temperature tau, computed in your browser by the same Rust inference code as the command line." }</p>
                { status }
                { for error }
            </header>
            <div class="layout">
                <div class="col">
                    if let Some(m) = &state.model {
                        <FeatureEditor model={m.clone()} instance={state.instance.clone()} example={state.example.clone()} on_action={on_action.clone()} />
                    }
                </div>
                <div class="col">
                    if let Some(m) = &state.model {
                        <Predictions model={m.clone()} instance={state.instance.clone()} prediction={prediction.clone()} />
                        <WhatIf model={m.clone()} feature={state.sweep} sweep={Rc::new(sweep)} on_action={on_action.clone()} />
                    }
                    <section class="card upload" aria-labelledby="adaftr-upload-title">
                        <h2 id="adaftr-upload-title">{ "Bring a model" }</h2>
                        <div id="adaftr-dropzone" class={drop_class} ondragover={on_dragover} ondragleave={on_dragleave} ondrop={on_drop}>
                            <label for="adaftr-upload">{ "Upload an AdaFTR bundle (.safetensors, up to 64 MiB), or drop it here:" }</label>
                            <input type="file" id="adaftr-upload" accept=".safetensors" onchange={on_file} />
                        </div>
                    </section>
                    if let Some(m) = &state.model {
                        <ModelCard model={m.clone()} />
                    }
                    <Diagnostics timings={timings} />
                </div>
            </div>
        </div>
    }
}

/// Mounts the app on `#adaftr-app` (or the body).
pub fn start() {
    let doc = web_sys::window().and_then(|w| w.document()).expect("a document");
    match doc.get_element_by_id("adaftr-app") {
        Some(root) => yew::Renderer::<App>::with_root(root).render(),
        None => yew::Renderer::<App>::new().render(),
    };
}
