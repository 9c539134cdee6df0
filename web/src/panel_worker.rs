//! The panel worker (trunk builds it as a Web Worker beside the app): it predicts the
//! sensitivity panel's and the relatedness map's batches while the page renders the edit
//! that asked for them. It holds the page's model and runs
//! [`Predictor`](adaftr_web::offload::Predictor), i.e. core's `Bundle::predict`; this file
//! only moves messages.
//!
//! Messages (JS arrays; the first element names the message):
//! - page to worker: `["model", id, bundle bytes]`, `["predict", seq, model id, rows,
//!   Uint32Array ids, Float32Array numerics]`;
//! - worker to page: `["ready"]` once it listens, `["loaded", id]` or `["refused", id,
//!   why]`, `["predicted", seq, Float32Array predictions, ms]` or `["failed", seq, why]`.

#[cfg(target_arch = "wasm32")]
fn main() {
    worker::start();
}

#[cfg(not(target_arch = "wasm32"))]
fn main() {
    eprintln!("adaftr-panel-worker runs in the browser, started by the demo's page");
    std::process::exit(2);
}

#[cfg(target_arch = "wasm32")]
mod worker {
    use std::cell::RefCell;

    use adaftr_web::offload::Predictor;
    use js_sys::{Array, Float32Array, Uint32Array, Uint8Array};
    use wasm_bindgen::prelude::*;
    use wasm_bindgen::JsCast;
    use web_sys::{DedicatedWorkerGlobalScope, MessageEvent};

    thread_local! {
        static PREDICTOR: RefCell<Predictor> = RefCell::new(Predictor::default());
    }

    fn scope() -> DedicatedWorkerGlobalScope {
        js_sys::global().unchecked_into()
    }

    fn now() -> f64 {
        scope().performance().map_or_else(js_sys::Date::now, |p| p.now())
    }

    fn post(items: &[JsValue]) {
        let _ = scope().post_message(&items.iter().collect::<Array>());
    }

    fn on_message(e: MessageEvent) {
        let msg: Array = e.data().unchecked_into();
        match msg.get(0).as_string().as_deref() {
            Some("model") => {
                let model = msg.get(1);
                let bytes = msg.get(2).dyn_into::<Uint8Array>().map(|b| b.to_vec());
                let result = match bytes {
                    Ok(bytes) => PREDICTOR.with(|p| p.borrow_mut().load(model.as_f64().unwrap_or(-1.0) as u64, &bytes)),
                    Err(_) => Err("a model message without its bytes".to_string()),
                };
                match result {
                    Ok(()) => post(&["loaded".into(), model]),
                    Err(why) => post(&["refused".into(), model, why.into()]),
                }
            }
            Some("predict") => {
                let (seq, model) = (msg.get(1), msg.get(2).as_f64().unwrap_or(-1.0) as u64);
                let t0 = now();
                let rows = msg.get(3).as_f64().unwrap_or(0.0) as usize;
                let cat = msg.get(4).dyn_into::<Uint32Array>().map(|a| a.to_vec());
                let num = msg.get(5).dyn_into::<Float32Array>().map(|a| a.to_vec());
                let result = match (cat, num) {
                    (Ok(cat), Ok(num)) => PREDICTOR.with(|p| p.borrow().predict(model, &cat, &num, rows)),
                    _ => Err("a predict message without its rows".to_string()),
                };
                match result {
                    Ok(preds) => {
                        let ms = now() - t0;
                        post(&["predicted".into(), seq, Float32Array::from(&preds[..]).into(), ms.into()])
                    }
                    Err(why) => post(&["failed".into(), seq, why.into()]),
                }
            }
            _ => {}
        }
    }

    pub fn start() {
        let handler = Closure::<dyn Fn(MessageEvent)>::new(on_message);
        scope().set_onmessage(Some(handler.as_ref().unchecked_ref()));
        handler.forget();
        post(&["ready".into()]);
    }
}
