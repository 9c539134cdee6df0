//! Shareable links: the state in the URL fragment ([`crate::fragment`]), written with
//! `history.replaceState` once a change has settled (no history entry, no scroll),
//! read when the first model loads and on `hashchange`; and the Copy link button.

use std::cell::RefCell;
use std::rc::Rc;

use wasm_bindgen::closure::Closure;
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::{spawn_local, JsFuture};
use web_sys::{HashChangeEvent, HtmlInputElement};
use yew::prelude::*;

use crate::state::{Action, State};

fn current_hash() -> String {
    web_sys::window().and_then(|w| w.location().hash().ok()).unwrap_or_default()
}

fn write_hash(fragment: &str) {
    let Some(w) = web_sys::window() else { return };
    if current_hash().strip_prefix('#') == Some(fragment) {
        return;
    }
    if let Ok(h) = w.history() {
        // A relative URL of the fragment alone keeps the path and query as they are.
        let _ = h.replace_state_with_url(&JsValue::NULL, "", Some(&format!("#{fragment}")));
    }
}

/// How long the state must stay unchanged before the fragment is written. `replaceState`
/// costs about 2 ms of the main thread, and a dragged slider changes the state on every
/// frame: written each time, the writes would take a share of the next frames (and
/// Chromium throttles a page that writes its history more than about 200 times in 10 s).
const QUIET_MS: i32 = 250;

/// A write waiting for the state to settle: the timer and the closure it calls.
type Pending = (i32, Closure<dyn FnMut()>);

/// Runs `write` once the state has been unchanged for [`QUIET_MS`], replacing a write
/// still waiting (whose state is out of date).
fn write_when_quiet(pending: &Rc<RefCell<Option<Pending>>>, write: impl FnOnce() + 'static) {
    let Some(w) = web_sys::window() else { return };
    cancel(pending);
    // Kept in `pending` until the next write replaces it: dropped then, never while it runs.
    let mut write = Some(write);
    let call = Closure::<dyn FnMut()>::new(move || {
        if let Some(f) = write.take() {
            f();
        }
    });
    if let Ok(timer) = w.set_timeout_with_callback_and_timeout_and_arguments_0(call.as_ref().unchecked_ref(), QUIET_MS)
    {
        *pending.borrow_mut() = Some((timer, call));
    }
}

/// Stops a write still waiting and gives its closure back (dropped by the caller, or run).
fn cancel(pending: &Rc<RefCell<Option<Pending>>>) -> Option<Closure<dyn FnMut()>> {
    let (timer, call) = pending.borrow_mut().take()?;
    if let Some(w) = web_sys::window() {
        w.clear_timeout_with_handle(timer);
    }
    Some(call)
}

/// Runs a write still waiting, now: the Copy link button reads the page's URL, which must
/// hold the last edit.
fn write_now(pending: &Rc<RefCell<Option<Pending>>>) {
    if let Some(call) = cancel(pending) {
        let _ = call.as_ref().unchecked_ref::<js_sys::Function>().call0(&JsValue::NULL);
    }
}

/// Keeps the URL fragment and the state in step. The first model to load (the default
/// model, at start-up) reads the fragment: the link being opened. Later models start from
/// their own defaults, as they would without links (a link carries the previous model's
/// fields, which another schema would mostly drop). Every change writes the fragment once
/// it has settled; the callback returned writes a waiting change at once.
#[hook]
pub fn use_link(state: &State, on_action: Callback<Action>) -> Callback<()> {
    let model_id = state.model.as_ref().map(|m| m.id);
    let read = use_mut_ref(|| false);
    let pending = use_mut_ref(|| None::<Pending>);
    {
        let (state, on_action, pending) = (state.clone(), on_action.clone(), pending.clone());
        use_effect_with((model_id, state.instance.clone(), state.sweep), move |(id, _, _)| {
            if id.is_some() && !*read.borrow() {
                *read.borrow_mut() = true;
                // Read before writing: the action holds the fragment as it was.
                on_action.emit(Action::Link(current_hash()));
            }
            write_when_quiet(&pending, move || {
                if let Some(f) = state.link() {
                    write_hash(&f);
                }
            });
        });
    }
    let on_unmount = pending.clone();
    use_effect_with((), move |_| {
        let window = web_sys::window();
        // The event's own URL: another listener may have rewritten the fragment already.
        let listener = Closure::<dyn Fn(HashChangeEvent)>::new(move |e: HashChangeEvent| {
            let url = e.new_url();
            on_action.emit(Action::Link(url.split_once('#').map_or("", |(_, f)| f).to_string()));
        });
        if let Some(w) = &window {
            let _ = w.add_event_listener_with_callback("hashchange", listener.as_ref().unchecked_ref());
        }
        move || {
            if let Some(w) = &window {
                let _ = w.remove_event_listener_with_callback("hashchange", listener.as_ref().unchecked_ref());
            }
            // A write still waiting would call a closure dropped with the page.
            cancel(&on_unmount);
        }
    });
    use_callback((), move |_, _| write_now(&pending))
}

#[derive(Properties, PartialEq)]
pub struct ShareProps {
    /// What the last link could not apply.
    pub note: Option<String>,
    /// Writes the fragment of a change still settling ([`use_link`]'s callback).
    pub write_now: Callback<()>,
}

/// The Copy link button: the clipboard when the browser allows it, else the link shown
/// selected in a text field for the visitor to copy.
#[function_component(ShareLink)]
pub fn share_link(p: &ShareProps) -> Html {
    let copied = use_state_eq(|| false);
    let manual = use_state_eq(|| None::<String>);
    let field = use_node_ref();
    {
        let field = field.clone();
        use_effect_with((*manual).clone(), move |m| {
            if let (Some(_), Some(input)) = (m, field.cast::<HtmlInputElement>()) {
                let _ = input.focus();
                input.select();
            }
        });
    }
    let onclick = {
        let (copied, manual, write_now) = (copied.clone(), manual.clone(), p.write_now.clone());
        Callback::from(move |_: MouseEvent| {
            write_now.emit(());
            let Some(w) = web_sys::window() else { return };
            let url = w.location().href().unwrap_or_default();
            // `navigator.clipboard` is missing outside secure contexts.
            let clipboard = js_sys::Reflect::get(&w.navigator(), &"clipboard".into())
                .ok()
                .filter(|c| !c.is_undefined() && !c.is_null())
                .map(|c| c.unchecked_into::<web_sys::Clipboard>());
            let Some(clipboard) = clipboard else {
                manual.set(Some(url));
                return;
            };
            let (copied, manual) = (copied.clone(), manual.clone());
            spawn_local(async move {
                match JsFuture::from(clipboard.write_text(&url)).await {
                    Ok(_) => {
                        manual.set(None);
                        copied.set(true);
                    }
                    Err(_) => manual.set(Some(url)),
                }
            });
        })
    };
    html! {
        <div class="share" id="adaftr-share">
            <button type="button" id="adaftr-copy-link" {onclick}
                title="Copy a link to this instance and what-if feature">{ "Copy link" }</button>
            <span id="adaftr-link-status" role="status">{ if *copied { "Link copied." } else { "" } }</span>
            if let Some(url) = (*manual).clone() {
                <label for="adaftr-link-text">{ "Copy this link (Ctrl+C / ⌘C):" }</label>
                <input type="text" id="adaftr-link-text" readonly=true value={url} ref={field} />
            }
            if let Some(note) = &p.note {
                <p class="hint" id="adaftr-link-note">{ note.clone() }</p>
            }
        </div>
    }
}
