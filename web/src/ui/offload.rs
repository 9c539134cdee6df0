//! The panel worker seen from the page, and the panels' batches sent to it
//! ([`crate::offload`] says why).
//!
//! The worker starts once the first model has loaded, so the page's first paint does not
//! wait for it, and gets each model the page loads. Until it holds the current model, or
//! if it never starts (no app glue to import, as under the component tests' runner) or
//! fails, the page predicts the panels' batches itself, in the render.
//!
//! A batch is posted while the app renders the edit that asked for it, so the worker
//! predicts while the page renders the editor and the prediction. One batch per panel is
//! in the worker at a time: a newer edit waits for it, replacing any other waiting batch,
//! so a dragged slider never queues work behind it. Until its batch is back, a panel shows
//! the last one it got, marked `aria-busy`.

use std::cell::RefCell;
use std::rc::Rc;

use adaftr_core::inference::Prediction;
use js_sys::{Array, Float32Array, Uint32Array, Uint8Array};
use wasm_bindgen::closure::Closure;
use wasm_bindgen::{JsCast, JsValue};
use web_sys::{Blob, BlobPropertyBag, MessageEvent, Url, Worker, WorkerOptions, WorkerType};
use yew::prelude::*;

use super::app::now;
use super::paint::follow_up_begins;
use crate::model::LoadedModel;
use crate::offload::{self, Next, PanelBatch, PanelSlot, Pending, Shown};
use crate::variations::Encoded;

/// The worker's script: the app's own JS glue, instantiated with the module the page
/// compiled (the first message), then [`crate::panel_worker`]'s entry point.
const WORKER_SCRIPT: [&str; 2] = [
    "import init, { adaftr_panel_worker } from \"",
    "\";\naddEventListener(\"message\", async (e) => { await init({ module_or_path: e.data }); \
     adaftr_panel_worker(); }, { once: true });\n",
];

/// The app's JS glue: the module trunk's page preloads (`None` elsewhere, e.g. under the
/// component tests' runner, where the page predicts everything itself).
fn glue_url() -> Option<String> {
    let doc = web_sys::window()?.document()?;
    let link = doc.query_selector("link[rel=modulepreload][href*='adaftr-web-']").ok()??;
    let href = link.get_attribute("href")?;
    Url::new_with_base(&href, &doc.url().ok()?).ok().map(|u| u.href())
}

/// A module worker running the app's wasm: a script from a Blob URL, which imports the
/// glue by its full URL and takes the page's compiled module, so nothing is fetched or
/// compiled again beyond the glue (from the browser's cache).
fn spawn() -> Option<Worker> {
    let script = format!("{}{}{}", WORKER_SCRIPT[0], glue_url()?, WORKER_SCRIPT[1]);
    let opts = BlobPropertyBag::new();
    opts.set_type("text/javascript");
    let blob = Blob::new_with_str_sequence_and_options(&Array::of1(&script.into()), &opts).ok()?;
    let url = Url::create_object_url_with_blob(&blob).ok()?;
    let options = WorkerOptions::new();
    options.set_type(WorkerType::Module);
    // The script's URL stays valid for the worker's lifetime: one short string.
    let worker = Worker::new_with_options(&url, &options).ok()?;
    worker.post_message(&wasm_bindgen::module()).ok()?;
    Some(worker)
}

/// A batch's predictions and the worker's time for them (ms), or why it failed.
type Reply = Result<(Vec<Prediction>, f64), String>;
type Done = Box<dyn FnOnce(Reply)>;

#[derive(Default)]
struct Link {
    listening: bool,
    /// The model the worker holds.
    loaded: Option<u64>,
    /// The model to send once the worker listens.
    wanted: Option<(u64, Rc<Vec<u8>>)>,
    /// The worker failed: the page predicts everything itself from now on.
    broken: bool,
    seq: u64,
    /// Batches posted and not back yet (one per panel at most).
    waiting: Vec<(u64, Done)>,
}

/// The page's handle on the panel worker.
pub struct PanelWorker {
    worker: Worker,
    link: Rc<RefCell<Link>>,
    _on_message: Closure<dyn Fn(MessageEvent)>,
    _on_error: Closure<dyn Fn(JsValue)>,
}

impl PanelWorker {
    /// Starts the worker; `changed` runs when it comes to hold a model or fails.
    fn start(changed: Callback<()>) -> Option<Self> {
        let worker = spawn()?;
        let link = Rc::new(RefCell::new(Link::default()));
        let on_message = {
            let (link, worker, changed) = (link.clone(), worker.clone(), changed.clone());
            Closure::<dyn Fn(MessageEvent)>::new(move |e: MessageEvent| {
                follow_up_begins();
                let msg = Array::from(&e.data());
                let number = |i: u32| msg.get(i).as_f64().unwrap_or(-1.0);
                match msg.get(0).as_string().as_deref() {
                    Some("ready") => {
                        let wanted = {
                            let mut l = link.borrow_mut();
                            l.listening = true;
                            l.wanted.take()
                        };
                        if let Some((id, bytes)) = wanted {
                            send_model(&worker, id, &bytes);
                        }
                    }
                    Some("loaded") => {
                        link.borrow_mut().loaded = Some(number(1) as u64);
                        changed.emit(());
                    }
                    Some("refused") => fail(&link, &changed, &msg.get(2).as_string().unwrap_or_default()),
                    Some("predicted") => {
                        let preds = offload::decode_predictions(&Float32Array::new(&msg.get(2)).to_vec());
                        answer(&link, number(1) as u64, preds.map(|p| (p, number(3))));
                    }
                    Some("failed") => {
                        let why = msg.get(2).as_string().unwrap_or_default();
                        answer(&link, number(1) as u64, Err(why.clone()));
                        fail(&link, &changed, &why);
                    }
                    _ => {}
                }
            })
        };
        let on_error = {
            let (link, changed) = (link.clone(), changed);
            Closure::<dyn Fn(JsValue)>::new(move |_| fail(&link, &changed, "the worker did not start or stopped"))
        };
        worker.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
        worker.set_onerror(Some(on_error.as_ref().unchecked_ref()));
        Some(Self { worker, link, _on_message: on_message, _on_error: on_error })
    }

    /// Gives the worker `m` (at once if it listens, else once it does).
    fn hold(&self, m: &LoadedModel) {
        let mut l = self.link.borrow_mut();
        if l.loaded == Some(m.id) || l.broken {
            return;
        }
        l.loaded = None;
        if l.listening {
            send_model(&self.worker, m.id, &m.bytes);
        } else {
            l.wanted = Some((m.id, m.bytes.clone()));
        }
    }

    /// Whether batches for model `id` go to the worker.
    pub fn holds(&self, id: u64) -> bool {
        let l = self.link.borrow();
        !l.broken && l.loaded == Some(id)
    }

    /// Posts a batch for model `id`, encoded ([`crate::variations::Variations::encode`]);
    /// `done` gets its predictions.
    fn predict(&self, id: u64, rows: Encoded, done: impl FnOnce(Reply) + 'static) {
        let seq = {
            let mut l = self.link.borrow_mut();
            l.seq += 1;
            let seq = l.seq;
            l.waiting.push((seq, Box::new(done)));
            seq
        };
        let arrays: [JsValue; 5] = [
            Uint32Array::from(&rows.cat[..]).into(),
            Float32Array::from(&rows.num[..]).into(),
            Uint8Array::from(&rows.counts[..]).into(),
            Uint32Array::from(&rows.features[..]).into(),
            Float32Array::from(&rows.values[..]).into(),
        ];
        let msg: Array =
            [JsValue::from("predict"), (seq as f64).into(), (id as f64).into()].into_iter().chain(arrays).collect();
        if self.worker.post_message(&msg).is_err() {
            answer(&self.link, seq, Err("the batch could not be posted".into()));
        }
    }
}

impl Drop for PanelWorker {
    fn drop(&mut self) {
        self.worker.terminate();
    }
}

fn send_model(worker: &Worker, id: u64, bytes: &[u8]) {
    let bytes = Uint8Array::from(bytes);
    let transfer = Array::of1(&bytes.buffer());
    let msg: Array = [JsValue::from("model"), (id as f64).into(), bytes.into()].iter().collect();
    let _ = worker.post_message_with_transfer(&msg, &transfer);
}

fn answer(link: &Rc<RefCell<Link>>, seq: u64, reply: Reply) {
    // Taken out before it runs: the callback may post the next batch.
    let done = {
        let mut l = link.borrow_mut();
        l.waiting.iter().position(|(s, _)| *s == seq).map(|i| l.waiting.swap_remove(i).1)
    };
    if let Some(done) = done {
        done(reply);
    }
}

/// Retires the worker: every waiting batch fails (its panel then predicts on the page).
fn fail(link: &Rc<RefCell<Link>>, changed: &Callback<()>, why: &str) {
    web_sys::console::warn_1(
        &format!("adaftr: the panel worker is not used ({why}); the page predicts the panels").into(),
    );
    let waiting: Vec<_> = {
        let mut l = link.borrow_mut();
        l.broken = true;
        std::mem::take(&mut l.waiting)
    };
    for (_, done) in waiting {
        done(Err(why.to_string()));
    }
    changed.emit(());
}

/// The panel worker, started after the first model loads and given each model after.
#[hook]
pub fn use_panel_worker(model: Option<Rc<LoadedModel>>) -> Option<Rc<PanelWorker>> {
    let redraw = use_force_update();
    let worker = use_mut_ref(|| None::<Option<Rc<PanelWorker>>>);
    {
        let worker = worker.clone();
        // In an effect, after the render that shows the model: the worker's start (the
        // app's wasm instantiated again) and its loading of the model do not share the
        // cores with that render, nor with the single-instance timing it runs.
        use_effect_with(model, move |model| {
            if let Some(m) = model {
                let mut w = worker.borrow_mut();
                let started = w.get_or_insert_with(|| {
                    let redraw = redraw.clone();
                    PanelWorker::start(Callback::from(move |()| redraw.force_update())).map(Rc::new)
                });
                if let Some(pw) = started {
                    pw.hold(m);
                }
            }
        });
    }
    let w = worker.borrow();
    w.clone().flatten()
}

/// A panel's batch for state `key` of `model`: made by `make` (`None`: the panel has
/// nothing to show), predicted in the worker when it holds the model, else on the page, in
/// this render ([`PanelSlot`] keeps the order).
#[hook]
pub fn use_panel_batch<K, B>(
    worker: Option<Rc<PanelWorker>>,
    model: Option<Rc<LoadedModel>>,
    key: K,
    make: impl FnOnce() -> Option<B>,
) -> Shown<B::Out>
where
    K: PartialEq + Clone + 'static,
    B: PanelBatch + 'static,
    B::Out: 'static,
{
    let redraw = use_force_update();
    let slot = use_mut_ref(PanelSlot::<K, B>::default);
    let worker = worker.zip(model.clone()).filter(|(w, m)| w.holds(m.id));
    let next = slot.borrow_mut().ask(&key, make, worker.is_some());
    match (next, model, worker) {
        (Next::Post(p), _, Some((w, m))) => send(&slot, w, m.id, p, redraw),
        (Next::OnPage(p), Some(m), _) => slot.borrow_mut().show_page(p, &m.bundle, now),
        _ => {}
    }
    let view = slot.borrow().view(&key);
    view
}

/// Posts a batch; when it is back, shows it and posts the one that waited.
fn send<K, B>(
    slot: &Rc<RefCell<PanelSlot<K, B>>>,
    w: Rc<PanelWorker>,
    id: u64,
    p: Pending<K, B>,
    redraw: UseForceUpdateHandle,
) where
    K: PartialEq + Clone + 'static,
    B: PanelBatch + 'static,
    B::Out: 'static,
{
    // The rows go out now, as their changes; the batch, to summarise what comes back,
    // waits here.
    let encoded = p.batch.rows().encode();
    // Weak: the reply waits inside the worker's handle, which must not keep itself alive.
    let (slot2, w2) = (slot.clone(), Rc::downgrade(&w));
    w.predict(id, encoded, move |reply| {
        let next = slot2.borrow_mut().back(p, reply);
        if let Some(next) = next {
            match w2.upgrade().filter(|w| w.holds(id)) {
                Some(w) => send(&slot2, w, id, next, redraw.clone()),
                None => slot2.borrow_mut().dropped(),
            }
        }
        redraw.force_update();
    });
}
