//! Edit-to-paint time: from the moment an edit is dispatched to the first frame painted
//! after the page has re-rendered for it. The inference of every panel runs inside that
//! render (memoised), so this is the time a visitor waits to see an edit's effect, the one
//! number to hold against a frame (16.7 ms at 60 Hz); each panel's own time is shown
//! beside it in the diagnostics line.

use std::cell::RefCell;
use std::rc::Rc;

use wasm_bindgen::closure::Closure;
use wasm_bindgen::JsCast;
use yew::prelude::*;

use super::app::now;

/// When the last edit was dispatched (`performance.now()`), until its frame is painted.
pub type EditClock = Rc<RefCell<Option<f64>>>;

/// The clock to start on each edit, and the last edit's edit-to-paint time (ms).
#[hook]
pub fn use_edit_to_paint() -> (EditClock, Option<f64>) {
    let started: EditClock = use_mut_ref(|| None);
    let last = use_state_eq(|| None::<f64>);
    {
        let (started, last) = (started.clone(), last.setter());
        // Runs after every render's DOM update; only a render that follows an edit has a
        // start time to take.
        use_effect(move || {
            if let Some(t0) = started.borrow_mut().take() {
                after_next_paint(move || last.set(Some(now() - t0)));
            }
        });
    }
    (started, *last)
}

/// Calls `f` just after the next frame is painted: an animation-frame callback runs before
/// that paint, and a zero timeout queued from it runs after.
fn after_next_paint(f: impl FnOnce() + 'static) {
    let Some(window) = web_sys::window() else { return };
    let in_frame = Closure::once_into_js(move || {
        if let Some(w) = web_sys::window() {
            let _ =
                w.set_timeout_with_callback_and_timeout_and_arguments_0(Closure::once_into_js(f).unchecked_ref(), 0);
        }
    });
    let _ = window.request_animation_frame(in_frame.unchecked_ref());
}
