//! The panel worker's side. The worker is the app's own wasm, started a second time in a
//! Web Worker ([`crate::ui`]'s `offload` starts it with the module the page already
//! compiled): nothing more to download or build. There it runs
//! [`Predictor`](crate::offload::Predictor), i.e. core's `Bundle::predict`, on the batches
//! the page posts; this file only moves messages.
//!
//! Messages (JS arrays; the first element names the message):
//! - page to worker: `["model", id, bundle bytes]`, `["predict", seq, model id,
//!   Uint32Array ids, Float32Array numerics, Uint8Array changes a row, Uint32Array
//!   features, Float32Array values]` (a batch's instance and its rows' changes,
//!   [`Encoded`]);
//! - worker to page: `["ready"]` once it listens, `["loaded", id]` or `["refused", id,
//!   why]`, `["predicted", seq, Float32Array predictions, ms]` or `["failed", seq, why]`.

use std::cell::RefCell;

use js_sys::{Array, Float32Array, Uint32Array, Uint8Array};
use wasm_bindgen::closure::Closure;
use wasm_bindgen::JsCast;
use web_sys::MessageEvent;

use crate::in_worker::{now, post, scope};
use crate::offload::Predictor;
use crate::variations::Encoded;

thread_local! {
    static PREDICTOR: RefCell<Predictor> = RefCell::new(Predictor::default());
}

fn on_message(e: MessageEvent) {
    let msg: Array = e.data().unchecked_into();
    match msg.get(0).as_string().as_deref() {
        Some("model") => {
            let model = msg.get(1);
            let result = match msg.get(2).dyn_into::<Uint8Array>() {
                Ok(bytes) => {
                    PREDICTOR.with(|p| p.borrow_mut().load(model.as_f64().unwrap_or(-1.0) as u64, &bytes.to_vec()))
                }
                Err(_) => Err("a model message without its bytes".to_string()),
            };
            match result {
                Ok(()) => post(&["loaded".into(), model], &Array::new()),
                Err(why) => post(&["refused".into(), model, why.into()], &Array::new()),
            }
        }
        Some("predict") => {
            let (seq, model) = (msg.get(1), msg.get(2).as_f64().unwrap_or(-1.0) as u64);
            let t0 = now();
            let result = match rows(&msg) {
                Some(rows) => PREDICTOR.with(|p| p.borrow().predict(model, rows)),
                None => Err("a predict message without its rows".to_string()),
            };
            match result {
                Ok(preds) => {
                    let ms = now() - t0;
                    let preds = Float32Array::from(&preds[..]);
                    let transfer = Array::of1(&preds.buffer());
                    post(&["predicted".into(), seq, preds.into(), ms.into()], &transfer)
                }
                Err(why) => post(&["failed".into(), seq, why.into()], &Array::new()),
            }
        }
        _ => {}
    }
}

/// A predict message's batch, from its typed arrays.
fn rows(msg: &Array) -> Option<Encoded> {
    Some(Encoded {
        cat: msg.get(3).dyn_into::<Uint32Array>().ok()?.to_vec(),
        num: msg.get(4).dyn_into::<Float32Array>().ok()?.to_vec(),
        counts: msg.get(5).dyn_into::<Uint8Array>().ok()?.to_vec(),
        features: msg.get(6).dyn_into::<Uint32Array>().ok()?.to_vec(),
        values: msg.get(7).dyn_into::<Float32Array>().ok()?.to_vec(),
    })
}

/// The worker's entry point, called by its script once the module is instantiated
/// (exported by the app's binary, `src/main.rs`, so that only the app carries it).
pub fn start() {
    let handler = Closure::<dyn Fn(MessageEvent)>::new(on_message);
    scope().set_onmessage(Some(handler.as_ref().unchecked_ref()));
    handler.forget();
    post(&["ready".into()], &Array::new());
}
