//! The Train panel: pick a CSV and the options, and train in a Web Worker (the page stays
//! responsive); watch the progress, the training loss, the validation AUCs and tau's
//! distribution per epoch; Pause, Resume, Stop; the trained model becomes the current one
//! and can be downloaded. What it shows is [`Progress`], folded from the worker's reports;
//! the worker runs [`crate::training::Session`], core's training.

use std::cell::RefCell;
use std::rc::Rc;

use adaftr_core::config::{Backbone, ClMode};
use adaftr_core::data::SchemaSpec;
use js_sys::{Array, Uint8Array};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use web_sys::{Blob, DataTransfer, DragEvent, HtmlInputElement, HtmlSelectElement, MessageEvent, Url, Worker};
use yew::prelude::*;

use super::load::{js_err, load_trained};
use crate::format;
use crate::model::LoadedModel;
use crate::state::Action;
use crate::training::{check_training_file, Phase, Progress, Report, Start, TrainRequest};

/// The worker script trunk writes beside the app (index.html's `data-type="worker"`).
const WORKER_URL: &str = "./adaftr-train-worker_loader.js";

fn now() -> f64 {
    web_sys::window().and_then(|w| w.performance()).map_or(0.0, |p| p.now())
}

#[derive(Properties, PartialEq)]
pub struct TrainProps {
    /// The current model, which "fine-tune" starts from.
    pub model: Option<Rc<LoadedModel>>,
    pub on_action: Callback<Action>,
}

/// What changes the panel's [`Progress`].
enum Msg {
    Begin(f64),
    Read(f64),
    Memory(f64),
    Report(Box<Report>),
    Pause,
    Resume,
}

#[derive(Clone, PartialEq, Default)]
struct Store(Progress);

impl Reducible for Store {
    type Action = Msg;
    fn reduce(self: Rc<Self>, msg: Msg) -> Rc<Self> {
        let mut p = self.0.clone();
        match msg {
            Msg::Begin(size) => p = Progress::reading(size),
            Msg::Read(bytes) => p.read_bytes(bytes),
            Msg::Memory(bytes) => p.memory = bytes,
            Msg::Report(r) => p.apply(&r, now()),
            Msg::Pause => p.pause(),
            Msg::Resume => p.resume(),
        }
        Rc::new(Store(p))
    }
}

/// The worker and its message handler (kept alive as long as the worker).
struct Running {
    worker: Worker,
    _on_message: Closure<dyn Fn(MessageEvent)>,
}

fn selected<T: Copy>(all: &[T], name: &str, name_of: fn(T) -> &'static str) -> Option<T> {
    all.iter().copied().find(|x| name_of(*x) == name)
}

/// One line of a chart: its label, colour and (x, y) points.
type Series<'a> = (&'a str, &'a str, Vec<(f64, f64)>);

/// An inline SVG of lines over the same x range.
fn lines(id: &str, series: &[Series<'_>], y_label: &str) -> Html {
    let (w, h, pad) = (320.0, 120.0, 4.0);
    let all = series.iter().flat_map(|s| s.2.iter());
    let (x0, x1, y0, y1) = all.fold((f64::MAX, f64::MIN, f64::MAX, f64::MIN), |(a, b, c, d), &(x, y)| {
        (a.min(x), b.max(x), c.min(y), d.max(y))
    });
    if x0 > x1 {
        return html! {};
    }
    let (sx, sy) = ((x1 - x0).max(1e-9), (y1 - y0).max(1e-9));
    let pts = |p: &[(f64, f64)]| -> String {
        p.iter()
            .map(|&(x, y)| {
                let px = pad + (x - x0) / sx * (w - 2.0 * pad);
                let py = h - pad - (y - y0) / sy * (h - 2.0 * pad);
                format!("{px:.1},{py:.1}")
            })
            .collect::<Vec<_>>()
            .join(" ")
    };
    html! {
        <figure class="train-chart" id={id.to_string()}>
            <svg viewBox={format!("0 0 {w} {h}")} role="img" aria-label={format!("{y_label}, from {y0:.4} to {y1:.4}")}>
                { for series.iter().map(|(name, colour, p)| html! {
                    <polyline points={pts(p)} fill="none" stroke={colour.to_string()} stroke-width="1.5" data-series={name.to_string()} />
                }) }
            </svg>
            <figcaption>
                { for series.iter().map(|(name, colour, _)| html! { <span class="key" style={format!("color: {colour}")}>{ format!("■ {name} ") }</span> }) }
                { format!("{y_label}: {y0:.4} to {y1:.4}") }
            </figcaption>
        </figure>
    }
}

#[function_component(TrainPanel)]
pub fn train_panel(p: &TrainProps) -> Html {
    let store = use_reducer(Store::default);
    let running = use_mut_ref(|| None::<Running>);
    let download = use_state(|| None::<(String, String)>);
    let (file, spec_file, start_sel, backbone_sel, cl_sel, epochs_in, valid_in) = (
        use_node_ref(),
        use_node_ref(),
        use_node_ref(),
        use_node_ref(),
        use_node_ref(),
        use_node_ref(),
        use_node_ref(),
    );
    let error = use_state(|| None::<String>);
    let progress = &store.0;

    let on_train = {
        let (store, running, download, error, model, on_action) =
            (store.clone(), running.clone(), download.clone(), error.clone(), p.model.clone(), p.on_action.clone());
        let (file, spec_file, start_sel, backbone_sel, cl_sel, epochs_in, valid_in) = (
            file.clone(),
            spec_file.clone(),
            start_sel.clone(),
            backbone_sel.clone(),
            cl_sel.clone(),
            epochs_in.clone(),
            valid_in.clone(),
        );
        Callback::from(move |_: MouseEvent| {
            let Some(f) = file.cast::<HtmlInputElement>().and_then(|i| i.files()).and_then(|l| l.get(0)) else {
                error.set(Some("Choose a CSV file to train on first.".into()));
                return;
            };
            if let Err(e) = check_training_file(&f.name(), f.size()) {
                error.set(Some(e));
                return;
            }
            let value = |r: &NodeRef| {
                r.cast::<HtmlSelectElement>()
                    .map(|s| s.value())
                    .or_else(|| r.cast::<HtmlInputElement>().map(|i| i.value()))
            };
            let start =
                if value(&start_sel).as_deref() == Some("fine-tune") { Start::FineTune } else { Start::Scratch };
            let defaults = TrainRequest::default();
            let req = TrainRequest {
                file: f.name(),
                start,
                backbone: value(&backbone_sel)
                    .and_then(|v| selected(&Backbone::ALL, &v, Backbone::name))
                    .unwrap_or(defaults.backbone),
                cl: value(&cl_sel).and_then(|v| selected(&ClMode::ALL, &v, ClMode::name)).unwrap_or(defaults.cl),
                epochs: value(&epochs_in).and_then(|v| v.parse().ok()).filter(|&e| e >= 1).unwrap_or(defaults.epochs),
                valid_fraction: value(&valid_in)
                    .and_then(|v| v.parse::<f64>().ok())
                    .map(|pct| pct / 100.0)
                    .filter(|f| *f > 0.0 && *f < 1.0)
                    .unwrap_or(defaults.valid_fraction),
                ..defaults
            };
            error.set(None);
            download.set(None);
            let spec = spec_file.cast::<HtmlInputElement>().and_then(|i| i.files()).and_then(|l| l.get(0));
            let base = match (start, &model) {
                (Start::FineTune, Some(m)) => Some(m.bytes.clone()),
                _ => None,
            };
            store.dispatch(Msg::Begin(f.size()));
            let (store, running, download, error, on_action) =
                (store.clone(), running.clone(), download.clone(), error.clone(), on_action.clone());
            wasm_bindgen_futures::spawn_local(async move {
                let mut req = req;
                if let Some(s) = spec {
                    let text = match wasm_bindgen_futures::JsFuture::from(s.text()).await {
                        Ok(t) => t.as_string().unwrap_or_default(),
                        Err(e) => {
                            store.dispatch(Msg::Report(Box::new(Report::Failed { message: js_err(e) })));
                            return;
                        }
                    };
                    match serde_json::from_str::<SchemaSpec>(&text) {
                        Ok(spec) => req.spec = Some(spec),
                        Err(e) => {
                            let message = format!("`{}` is not a schema spec: {e}", s.name());
                            store.dispatch(Msg::Report(Box::new(Report::Failed { message })));
                            return;
                        }
                    }
                }
                if let Err(e) = launch(&running, req, f, base, store, download, error, on_action) {
                    web_sys::console::error_1(&e);
                }
            });
        })
    };
    let send = |what: &'static str, msg: Option<fn() -> Msg>| {
        let (running, store) = (running.clone(), store.clone());
        Callback::from(move |_: MouseEvent| {
            if let Some(r) = running.borrow().as_ref() {
                let _ = r.worker.post_message(&Array::of1(&what.into()));
            }
            if let Some(m) = msg {
                store.dispatch(m());
            }
        })
    };
    let on_pause = send("pause", Some(|| Msg::Pause));
    let on_resume = send("resume", Some(|| Msg::Resume));
    let on_stop = send("stop", None);

    // Files dropped on the panel: a .json is the schema, anything else the training CSV.
    let on_drop = {
        let (file, spec_file) = (file.clone(), spec_file.clone());
        Callback::from(move |e: DragEvent| {
            e.prevent_default();
            let Some(files) = e.data_transfer().and_then(|d| d.files()) else { return };
            for i in 0..files.length() {
                let Some(f) = files.get(i) else { continue };
                let target = if f.name().to_ascii_lowercase().ends_with(".json") { &spec_file } else { &file };
                if let (Some(input), Ok(dt)) = (target.cast::<HtmlInputElement>(), DataTransfer::new()) {
                    if dt.items().add_with_file(&f).is_ok() {
                        input.set_files(dt.files().as_ref());
                    }
                }
            }
        })
    };
    let on_dragover = Callback::from(|e: DragEvent| e.prevent_default());
    let busy = progress.running();
    let batch = TrainRequest::default().batch_size as f64;
    let rows_per_second = progress.steps_per_second().map(|s| s * batch);
    let can_fine_tune = p.model.is_some();
    let status = match progress.phase {
        Phase::Idle => "Choose a labelled CSV and press Train.".to_string(),
        Phase::Reading => format!(
            "Reading the file: {} of {}",
            format::bytes(progress.read.0 as u64),
            format::bytes(progress.read.1 as u64)
        ),
        Phase::Training | Phase::Paused => {
            let speed = rows_per_second.map_or(String::new(), |r| format!(", {r:.0} rows/s"));
            let eta = progress.eta_seconds().map_or(String::new(), |s| format!(", about {s:.0} s left"));
            let memory = if progress.memory > 0.0 {
                format!("; worker memory {}", format::bytes(progress.memory as u64))
            } else {
                String::new()
            };
            format!(
                "{}epoch {} of {}, step {} of {}{speed}{eta}{memory}",
                if progress.phase == Phase::Paused { "Paused at " } else { "Training: " },
                progress.epoch.max(1),
                progress.epochs,
                progress.step,
                progress.steps_per_epoch
            )
        }
        Phase::Done => "Done: the trained model is now the current model.".into(),
        Phase::Stopped => "Stopped: the model as it stood is now the current model.".into(),
        Phase::Failed => "Training failed; the current model is unchanged.".into(),
    };
    let records = &progress.records;
    let epoch_series = |f: fn(&crate::training::Progress, usize) -> Option<f64>| -> Vec<(f64, f64)> {
        (0..records.len()).filter_map(|i| f(progress, i).map(|y| ((i + 1) as f64, y))).collect()
    };
    let aucs = [
        ("CTR AUC", "#1f6feb", epoch_series(|p, i| p.records[i].0.valid.auc_ctr)),
        ("CVR AUC", "#d4730b", epoch_series(|p, i| p.records[i].0.valid.auc_cvr)),
        ("CTCVR AUC", "#1a7f37", epoch_series(|p, i| p.records[i].0.valid.auc_ctcvr)),
    ];
    let taus = [
        ("tau p5", "#b197fc", epoch_series(|p, i| p.records[i].0.valid.tau.map(|t| t.p5))),
        ("tau mean", "#8250df", epoch_series(|p, i| p.records[i].0.valid.tau.map(|t| t.mean))),
        ("tau p95", "#5f3dc4", epoch_series(|p, i| p.records[i].0.valid.tau.map(|t| t.p95))),
    ];
    let loss_curve = |i: usize| progress.loss.iter().map(|(x, l)| (*x, l[i])).collect::<Vec<_>>();
    let loss_curves =
        [("total", "#333", loss_curve(0)), ("CTR", "#1f6feb", loss_curve(1)), ("CTCVR", "#1a7f37", loss_curve(2))];
    let opt = |x: Option<f64>| x.map_or("n/a".to_string(), |v| format!("{v:.4}"));
    let exact = |x: Option<f64>| x.map_or(String::new(), |v| format!("{v:e}"));
    let message = error.as_ref().cloned().or_else(|| progress.error.clone());

    html! {
        <section class="card train" id="adaftr-train" aria-labelledby="adaftr-train-title" data-phase={format!("{:?}", progress.phase)}
            ondrop={on_drop} ondragover={on_dragover}>
            <h2 id="adaftr-train-title">{ "Train on your data" }</h2>
            <p class="hint">{ "A labelled CSV (AliExpress or Ali-CCP layout, or any layout with a schema JSON beside it), up to 256 MiB: choose it below or drop it (and its schema) on this panel. It is read and trained on in this tab, in a background worker, by the same Rust code as the adaftr command; nothing is uploaded." }</p>
            <div class="train-options">
                <label for="adaftr-train-file">{ "Training CSV (.csv or .csv.gz)" }</label>
                <input type="file" id="adaftr-train-file" accept=".csv,.gz" ref={file} disabled={busy} />
                <label for="adaftr-train-schema">{ "Schema JSON (optional)" }</label>
                <input type="file" id="adaftr-train-schema" accept=".json" ref={spec_file} disabled={busy} />
                <label for="adaftr-train-start">{ "Start from" }</label>
                <select id="adaftr-train-start" ref={start_sel} disabled={busy}>
                    <option value="scratch" selected={true}>{ "scratch (schema fitted on the file)" }</option>
                    <option value="fine-tune" disabled={!can_fine_tune}>{ "the current model (fine-tune)" }</option>
                </select>
                <label for="adaftr-train-backbone">{ "Backbone (from scratch)" }</label>
                <select id="adaftr-train-backbone" ref={backbone_sel} disabled={busy}>
                    { for Backbone::ALL.iter().map(|b| html! { <option value={b.name()} selected={*b == TrainRequest::default().backbone}>{ b.name() }</option> }) }
                </select>
                <label for="adaftr-train-cl">{ "Relatedness mode (from scratch)" }</label>
                <select id="adaftr-train-cl" ref={cl_sel} disabled={busy}>
                    { for ClMode::ALL.iter().map(|c| html! { <option value={c.name()} selected={*c == TrainRequest::default().cl}>{ c.name() }</option> }) }
                </select>
                <label for="adaftr-train-epochs">{ "Epochs" }</label>
                <input type="number" id="adaftr-train-epochs" min="1" max="100" value={TrainRequest::default().epochs.to_string()} ref={epochs_in} disabled={busy} />
                <label for="adaftr-train-valid">{ "Validation share, % (by search id where the layout has one)" }</label>
                <input type="number" id="adaftr-train-valid" min="1" max="90" value={format!("{:.0}", TrainRequest::default().valid_fraction * 100.0)} ref={valid_in} disabled={busy} />
            </div>
            <div class="train-buttons">
                <button type="button" id="adaftr-train-start-button" onclick={on_train} disabled={busy}>{ "Train" }</button>
                if progress.phase == Phase::Paused {
                    <button type="button" id="adaftr-train-resume" onclick={on_resume}>{ "Resume" }</button>
                } else {
                    <button type="button" id="adaftr-train-pause" onclick={on_pause} disabled={progress.phase != Phase::Training}>{ "Pause" }</button>
                }
                <button type="button" id="adaftr-train-stop" onclick={on_stop} disabled={!matches!(progress.phase, Phase::Training | Phase::Paused)}>{ "Stop" }</button>
            </div>
            <p id="adaftr-train-status" role="status" data-steps={progress.steps_done.to_string()}
                data-rows-per-second={rows_per_second.map(|r| format!("{r:.1}")).unwrap_or_default()}
                data-memory-bytes={format!("{:.0}", progress.memory)}>{ status }</p>
            if matches!(progress.phase, Phase::Training | Phase::Paused) {
                <progress id="adaftr-train-progress" max="1" value={format!("{:.4}", progress.epoch_fraction())} aria-label="this epoch's progress"></progress>
            }
            if progress.train_rows > 0 {
                <p class="hint" id="adaftr-train-data">{ format!(
                    "{} training rows, {} validation rows{}; {} parameters.",
                    progress.train_rows, progress.valid_rows,
                    progress.group.as_ref().map_or(String::new(), |g| format!(" (split by {g})")),
                    progress.parameters) }</p>
            }
            if let Some(m) = message {
                <p class="error" id="adaftr-train-error" role="alert">{ m }</p>
            }
            { lines("adaftr-train-loss", &loss_curves, "training losses (smoothed)") }
            { lines("adaftr-train-aucs", &aucs, "validation AUC") }
            { lines("adaftr-train-tau", &taus, "tau on validation") }
            if !records.is_empty() {
                <table class="train-epochs" id="adaftr-train-epochs">
                    <thead><tr><th>{ "epoch" }</th><th>{ "train loss" }</th><th>{ "CTR AUC" }</th><th>{ "CVR AUC" }</th><th>{ "CTCVR AUC" }</th><th>{ "tau mean" }</th></tr></thead>
                    <tbody>
                        { for records.iter().map(|(r, improved)| html! {
                            <tr data-epoch={r.epoch.to_string()} data-auc-ctr={exact(r.valid.auc_ctr)} data-auc-cvr={exact(r.valid.auc_cvr)} data-auc-ctcvr={exact(r.valid.auc_ctcvr)}>
                                <td>{ format!("{}{}", r.epoch, if *improved { " *" } else { "" }) }</td>
                                <td>{ format!("{:.4}", r.train_loss) }</td>
                                <td>{ opt(r.valid.auc_ctr) }</td><td>{ opt(r.valid.auc_cvr) }</td><td>{ opt(r.valid.auc_ctcvr) }</td>
                                <td>{ opt(r.valid.tau.map(|t| t.mean)) }</td>
                            </tr>
                        }) }
                    </tbody>
                </table>
            }
            if let Some((url, name)) = download.as_ref() {
                <p><a id="adaftr-train-download" href={url.clone()} download={name.clone()}>{ format!("Download {name}") }</a>{ " (accepted by adaftr inspect, eval and predict)" }</p>
            }
        </section>
    }
}

/// Starts the worker (once) and sends it the run; its messages update the panel, and its
/// bundle becomes the current model.
#[allow(clippy::too_many_arguments)]
fn launch(
    running: &Rc<RefCell<Option<Running>>>,
    req: TrainRequest,
    file: web_sys::File,
    base: Option<Rc<Vec<u8>>>,
    store: UseReducerHandle<Store>,
    download: UseStateHandle<Option<(String, String)>>,
    error: UseStateHandle<Option<String>>,
    on_action: Callback<Action>,
) -> Result<(), JsValue> {
    let json = serde_json::to_string(&req).map_err(|e| JsValue::from_str(&e.to_string()))?;
    let start = Array::new();
    start.push(&"start".into());
    start.push(&json.into());
    start.push(&file);
    start.push(&base.map_or(JsValue::NULL, |b| Uint8Array::from(&b[..]).into()));
    if let Some(r) = running.borrow().as_ref() {
        // The worker is already listening.
        return r.worker.post_message(&start);
    }
    let worker = Worker::new(WORKER_URL)?;
    let pending = RefCell::new(Some(start));
    let handle = worker.clone();
    let trained_name = format!("trained on {}", req.file);
    let on_message = Closure::<dyn Fn(MessageEvent)>::new(move |e: MessageEvent| {
        let msg = Array::from(&e.data());
        match msg.get(0).as_string().as_deref() {
            Some("ready") => {
                if let Some(s) = pending.borrow_mut().take() {
                    let _ = handle.post_message(&s);
                }
            }
            Some("read") => store.dispatch(Msg::Read(msg.get(1).as_f64().unwrap_or(0.0))),
            Some("memory") => store.dispatch(Msg::Memory(msg.get(1).as_f64().unwrap_or(0.0))),
            Some("reports") => {
                let json = msg.get(1).as_string().unwrap_or_default();
                match serde_json::from_str::<Vec<Report>>(&json) {
                    Ok(reports) => reports.into_iter().for_each(|r| store.dispatch(Msg::Report(Box::new(r)))),
                    Err(e) => error.set(Some(format!("an unreadable message from the training worker: {e}"))),
                }
            }
            Some("done") => {
                let report = msg.get(1).as_string().and_then(|j| serde_json::from_str::<Report>(&j).ok());
                let bytes = Uint8Array::new(&msg.get(2)).to_vec();
                if let Some(url) = blob_url(&bytes) {
                    download.set(Some((url, "adaftr-trained.safetensors".into())));
                }
                on_action.emit(load_trained(&trained_name, &bytes));
                if let Some(r) = report {
                    store.dispatch(Msg::Report(Box::new(r)));
                }
            }
            _ => {}
        }
    });
    worker.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
    *running.borrow_mut() = Some(Running { worker, _on_message: on_message });
    Ok(())
}

/// An object URL for downloading `bytes`.
fn blob_url(bytes: &[u8]) -> Option<String> {
    let parts = Array::of1(&Uint8Array::from(bytes));
    let blob = Blob::new_with_u8_array_sequence(&parts).ok()?;
    Url::create_object_url_with_blob(&blob).ok()
}
