//! What code running in a dedicated worker needs: its global scope, its clock and posting to
//! the page. Shared by the panel worker ([`crate::panel_worker`]) and the Train panel's
//! worker (`src/worker.rs`).

use js_sys::Array;
use wasm_bindgen::{JsCast, JsValue};
use web_sys::DedicatedWorkerGlobalScope;

pub fn scope() -> DedicatedWorkerGlobalScope {
    js_sys::global().unchecked_into()
}

/// The worker's clock (ms).
pub fn now() -> f64 {
    scope().performance().map_or_else(js_sys::Date::now, |p| p.now())
}

/// Posts a message (the items as one JS array) to the page, handing over the buffers in
/// `transfer` rather than copying them.
pub fn post(items: &[JsValue], transfer: &Array) {
    let _ = scope().post_message_with_transfer(&items.iter().collect::<Array>(), transfer);
}
