//! An edit's cost in frames: from the moment an edit is dispatched to the first frame
//! painted with everything it changed. The page's own inference runs inside the edit's
//! render (memoised); the explaining panels' batches may run in the panel worker instead
//! ([`super::offload`]) and come back in a later render.
//!
//! Three readings, because an edit lands at a random point of a frame and the browser
//! paints only on the display's beat:
//! - `to_paint`: dispatch to the first painted frame with every panel's result, the wait
//!   for the beat (and for the worker) included: the time a visitor waits to see it all;
//! - `work`: the time the page spent on the edit's own frame: dispatch to the DOM committed
//!   (inference, Yew's render and diff) plus the frame's own style, layout and paint (from
//!   the animation-frame callback to just after the paint);
//! - `late`: likewise for the render that shows the worker's batches, from their arrival.
//!
//! `work` and `late` are the numbers to hold against a frame (16.7 ms at 60 Hz): within
//! it, what they paint shows on the next beat and no frame is dropped.

use std::cell::{Cell, RefCell};
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
    /// Dispatch to the first frame painted with every panel's result for the edit.
    pub to_paint: f64,
    /// The edit's own frame: dispatch to the DOM committed, plus that frame's rendering.
    pub work: f64,
    /// When panels' batches came back from the panel worker after that: the render that
    /// showed them, from their arrival to the DOM committed plus its frame's rendering.
    pub late: Option<f64>,
}

/// One edit being timed.
struct Run {
    t0: f64,
    committed: bool,
    work: Option<f64>,
}

/// The clock to start on each edit, and the last edit's times. `settled`: every panel
/// shows this state (false while the panel worker has a batch of it); `arrived`: when the
/// latest batch shown came back from the worker.
#[hook]
pub fn use_edit_to_paint(settled: bool, arrived: Option<f64>) -> (EditClock, Option<EditTimes>) {
    let started: EditClock = use_mut_ref(|| None);
    let run = use_mut_ref(|| None::<Rc<RefCell<Run>>>);
    let last = use_state_eq(|| None::<EditTimes>);
    {
        let (started, last) = (started.clone(), last.setter());
        // Runs after every render's DOM update; only a render that follows an edit has a
        // start time to take.
        use_effect(move || {
            let committed = now();
            if let Some(t0) = started.borrow_mut().take() {
                *run.borrow_mut() = Some(Rc::new(RefCell::new(Run { t0, committed: false, work: None })));
            }
            let Some(r) = run.borrow().clone() else { return };
            let first = !std::mem::replace(&mut r.borrow_mut().committed, true);
            if first {
                let (r, t0) = (r.clone(), r.borrow().t0);
                after_next_paint(move |frame_start, painted| {
                    r.borrow_mut().work = Some((committed - t0) + (painted - frame_start))
                });
            }
            if settled {
                run.borrow_mut().take();
                after_next_paint(move |frame_start, painted| {
                    let r = r.borrow();
                    // Callbacks run in the order asked for: the first frame's is done.
                    let work = r.work.unwrap_or(painted - r.t0);
                    let late = (!first).then(|| arrived.map(|a| (committed - a) + (painted - frame_start))).flatten();
                    last.set(Some(EditTimes { to_paint: painted - r.t0, work, late }));
                });
            }
        });
    }
    (started, *last)
}

thread_local! {
    /// When the page last began handling a message from the panel worker.
    static WORKER_TASK: Cell<f64> = const { Cell::new(f64::NEG_INFINITY) };
}

/// Notes that a task not of the edit's frame begins (a message from the panel worker): if
/// it runs between a frame's paint and the timeout that reads the paint's end, the frame
/// ended before it.
pub(crate) fn worker_task_begins() {
    WORKER_TASK.with(|t| t.set(now()));
}

/// Calls `f` just after the next frame is painted, with the time that frame's work began
/// and the time it was painted: an animation-frame callback runs before that frame's
/// style, layout and paint, and a zero timeout queued from it runs after (or, if the panel
/// worker's message was handled in between, the paint ended when that began).
pub(crate) fn after_next_paint(f: impl FnOnce(f64, f64) + 'static) {
    let Some(window) = web_sys::window() else { return };
    let in_frame = Closure::once_into_js(move || {
        let frame_start = now();
        if let Some(w) = web_sys::window() {
            let after = Closure::once_into_js(move || {
                let end = now();
                let other = WORKER_TASK.with(Cell::get);
                f(frame_start, if other > frame_start && other < end { other } else { end })
            });
            let _ = w.set_timeout_with_callback_and_timeout_and_arguments_0(after.unchecked_ref(), 0);
        }
    });
    let _ = window.request_animation_frame(in_frame.unchecked_ref());
}
