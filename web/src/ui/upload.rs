//! The upload zone: a file input and a drop target. Its drag highlight is its own state
//! (`use_state_eq`, so the stream of `dragover` events re-renders nothing after the first),
//! and it re-renders only itself: nothing else of the app runs while a file is dragged.
//! The comparison panel shows a second one for its [`Slot`], inside its own card.

use web_sys::{DragEvent, Event, HtmlInputElement};
use yew::prelude::*;

use crate::state::Slot;

#[derive(Properties, PartialEq)]
pub struct UploadProps {
    /// A file the user picked or dropped.
    pub on_file: Callback<web_sys::File>,
    /// Which model the file is for (its ids and wording).
    #[prop_or_default]
    pub slot: Slot,
}

#[function_component(UploadZone)]
pub fn upload_zone(p: &UploadProps) -> Html {
    let dragging = use_state_eq(|| false);
    let on_change = {
        let on_file = p.on_file.clone();
        Callback::from(move |e: Event| {
            let input: HtmlInputElement = e.target_unchecked_into();
            if let Some(f) = input.files().and_then(|l| l.get(0)) {
                on_file.emit(f);
            }
            input.set_value("");
        })
    };
    let on_dragover = {
        let dragging = dragging.clone();
        Callback::from(move |e: DragEvent| {
            e.prevent_default();
            dragging.set(true);
        })
    };
    let on_dragleave = {
        let dragging = dragging.clone();
        Callback::from(move |_: DragEvent| dragging.set(false))
    };
    let on_drop = {
        let (dragging, on_file) = (dragging.clone(), p.on_file.clone());
        Callback::from(move |e: DragEvent| {
            e.prevent_default();
            dragging.set(false);
            if let Some(f) = e.data_transfer().and_then(|d| d.files()).and_then(|l| l.get(0)) {
                on_file.emit(f);
            }
        })
    };
    let class = classes!("dropzone", dragging.then_some("dragging"));
    let (prefix, what) = match p.slot {
        Slot::Main => ("adaftr", "an AdaFTR bundle"),
        Slot::Compare => ("adaftr-compare", "a bundle to compare with"),
    };
    let input = format!("{prefix}-upload");
    let zone = html! {
        <div id={format!("{prefix}-dropzone")} {class} ondragover={on_dragover} ondragleave={on_dragleave} ondrop={on_drop}>
            <label for={input.clone()}>{ format!("Upload {what} (.safetensors, up to 64 MiB), or drop it here:") }</label>
            <input type="file" id={input} accept=".safetensors" onchange={on_change} />
        </div>
    };
    match p.slot {
        Slot::Main => html! {
            <section class="card upload" aria-labelledby="adaftr-upload-title">
                <h2 id="adaftr-upload-title">{ "Bring a model" }</h2>
                { zone }
            </section>
        },
        Slot::Compare => zone,
    }
}
