//! An edit's cost in frames: from the moment an edit is dispatched to the first frame
//! painted after the page has re-rendered for it. The inference of every panel runs inside
//! that render (memoised), so this is the time a visitor waits to see an edit's effect.
//!
//! Two readings, because an edit lands at a random point of a frame and the browser paints
//! only on the display's beat:
//! - `to_paint`: dispatch to the painted frame, the wait for the beat included;
//! - `work`: the time the page itself spent on the edit: dispatch to the DOM committed
//!   (inference, Yew's render and diff) plus the frame's own style, layout and paint (from
//!   the animation-frame callback to just after the paint). This is the number to hold
//!   against a frame (16.7 ms at 60 Hz): within it, the edit shows on the next beat and no
//!   frame is dropped.

use std::cell::RefCell;
use std::rc::Rc;

use wasm_bindgen::closure::Closure;
use wasm_bindgen::JsCast;
use yew::prelude::*;

use super::app::now;

/// When the last edit was dispatched (`performance.now()`), until its frame is painted.
pub type EditClock = Rc<RefCell<Option<f64>>>;

/// The last edit's times (ms); see the module's note.
#[derive(Clone, Copy, Debug, PartialEq, Default)]
pub struct EditTimes {
    pub to_paint: f64,
    pub work: f64,
}

/// The clock to start on each edit, and the last edit's times.
#[hook]
pub fn use_edit_to_paint() -> (EditClock, Option<EditTimes>) {
    let started: EditClock = use_mut_ref(|| None);
    let last = use_state_eq(|| None::<EditTimes>);
    {
        let (started, last) = (started.clone(), last.setter());
        // Runs after every render's DOM update; only a render that follows an edit has a
        // start time to take.
        use_effect(move || {
            if let Some(t0) = started.borrow_mut().take() {
                let committed = now();
                after_next_paint(move |frame_start| {
                    let painted = now();
                    let work = (committed - t0) + (painted - frame_start);
                    last.set(Some(EditTimes { to_paint: painted - t0, work }));
                });
            }
        });
    }
    (started, *last)
}

/// Calls `f` just after the next frame is painted, with the time that frame's work began:
/// an animation-frame callback runs before that frame's style, layout and paint, and a zero
/// timeout queued from it runs after.
pub(crate) fn after_next_paint(f: impl FnOnce(f64) + 'static) {
    let Some(window) = web_sys::window() else { return };
    let in_frame = Closure::once_into_js(move || {
        let frame_start = now();
        if let Some(w) = web_sys::window() {
            let after = Closure::once_into_js(move || f(frame_start));
            let _ = w.set_timeout_with_callback_and_timeout_and_arguments_0(after.unchecked_ref(), 0);
        }
    });
    let _ = window.request_animation_frame(in_frame.unchecked_ref());
}
