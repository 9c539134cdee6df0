//! An edit's cost in frames: from the moment an edit is dispatched to the first frame
//! painted with everything it changed. The page's own inference runs inside the edit's
//! render (memoised); two kinds of follow-up come in later renders of their own: the
//! explaining panels' batches, when they ran in the panel worker ([`super::offload`]), and
//! the editor's fields off the screen, after an edit that changed many fields
//! ([`super::editor::use_off_screen`]).
//!
//! Three readings, because an edit lands at a random point of a frame and the browser
//! paints only on the display's beat:
//! - `to_paint`: dispatch to the first painted frame with everything in view that the edit
//!   changed (inputs off the screen may follow later), the wait for the beat (and for the
//!   worker) included: the time a visitor waits to see it all;
//! - `work`: the time the page spent on the edit's own frame: dispatch to the DOM committed
//!   (inference, Yew's render and diff), any follow-up rendered before that frame began,
//!   plus the frame's own style, layout and paint (from the animation-frame callback to
//!   just after the paint);
//! - `late`: likewise for the longest frame of follow-ups: the follow-up renders it held,
//!   each from the start of the task that began it, plus its style, layout and paint.
//!
//! `work` and `late` are the numbers to hold against a frame (16.7 ms at 60 Hz): within
//! it, what they paint shows on the next beat and no frame is dropped. What each frame
//! counts towards is decided in [`crate::edit_frames`] (native, unit-tested); this module
//! asks the browser for the times.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use wasm_bindgen::closure::Closure;
use wasm_bindgen::JsCast;
use yew::prelude::*;

use super::app::now;
use crate::edit_frames::{EditRun, EditTimes, Frame};

/// When the last edit was dispatched (`performance.now()`), until its frame is painted.
pub type EditClock = Rc<RefCell<Option<f64>>>;

/// The clock to start on each edit, and the last edit's times. `in_view`: everything in
/// view shows the current state (false while the panel worker has a batch of it);
/// `settled`: so does everything else (the editor's inputs off the screen).
#[hook]
pub fn use_edit_to_paint(in_view: bool, settled: bool) -> (EditClock, Option<EditTimes>) {
    let started: EditClock = use_mut_ref(|| None);
    let run = use_mut_ref(|| None::<Rc<RefCell<EditRun>>>);
    let last = use_state_eq(|| None::<EditTimes>);
    {
        let (started, last) = (started.clone(), last.setter());
        // Runs after every render's DOM update; only renders from an edit on have a run.
        use_effect(move || {
            let committed = now();
            if let Some(t0) = started.borrow_mut().take() {
                *run.borrow_mut() = Some(Rc::new(RefCell::new(EditRun::new(t0))));
            }
            let Some(r) = run.borrow().clone() else { return };
            let frame = r.borrow_mut().committed(committed, follow_up_began());
            if let Some(frame) = frame {
                let r = r.clone();
                after_next_paint(move |frame_start, painted| match frame {
                    Frame::Own => r.borrow_mut().own_frame(frame_start, painted),
                    Frame::Later => r.borrow_mut().later_frame(frame_start, painted),
                });
            }
            if in_view && r.borrow_mut().ask_view() {
                let r = r.clone();
                after_next_paint(move |_, painted| r.borrow_mut().view_painted(painted));
            }
            if settled {
                run.borrow_mut().take();
                // Callbacks run in the order asked for: the frames before are counted.
                after_next_paint(move |_, painted| last.set(Some(r.borrow().times(painted))));
            }
        });
    }
    (started, *last)
}

thread_local! {
    /// When the page last began a follow-up's task.
    static FOLLOW_UP: Cell<f64> = const { Cell::new(f64::NEG_INFINITY) };
}

/// Notes that a follow-up's task begins (a message from the panel worker, the editor's
/// catch-up): its render is timed from here. If it runs between a frame's paint and the
/// timeout that reads the paint's end, the frame ended before it.
pub(crate) fn follow_up_begins() {
    FOLLOW_UP.with(|t| t.set(now()));
}

fn follow_up_began() -> f64 {
    FOLLOW_UP.with(Cell::get)
}

/// Calls `f` just after the next frame is painted, with the time that frame's work began
/// and the time it was painted: an animation-frame callback runs before that frame's
/// style, layout and paint, and a zero timeout queued from it runs after (or, if a
/// follow-up's task ran in between, the paint ended when that began).
pub(crate) fn after_next_paint(f: impl FnOnce(f64, f64) + 'static) {
    let Some(window) = web_sys::window() else { return };
    let in_frame = Closure::once_into_js(move || {
        let frame_start = now();
        if let Some(w) = web_sys::window() {
            let after = Closure::once_into_js(move || {
                let end = now();
                let other = follow_up_began();
                f(frame_start, if other > frame_start && other < end { other } else { end })
            });
            let _ = w.set_timeout_with_callback_and_timeout_and_arguments_0(after.unchecked_ref(), 0);
        }
    });
    let _ = window.request_animation_frame(in_frame.unchecked_ref());
}
