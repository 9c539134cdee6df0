//! The Yew components (browser only). State lives in one reducer ([`crate::state`], held
//! by the [`App`] shell); components get small props and send [`Action`]s back. One file
//! per part of the page: `app` (the shell and its memoised inference), `editor` (the
//! feature inputs), `chart` (the what-if sweep), `sensitivity` (which features matter),
//! `relmap` (the relatedness map and the examples' tau), `compare` (a second model beside
//! the first), `share` (the URL fragment and the Copy link button), `panels` (predictions,
//! model card, diagnostics), `paint` (the edit-to-paint clock), `select` (a labelled select that follows the state), `upload`
//! (the upload zone), `train` (the Train panel and its worker) and `load` (fetching and
//! reading models).
//!
//! [`Action`]: crate::state::Action

mod app;
mod chart;
mod compare;
mod editor;
mod load;
mod offload;
mod paint;
mod panels;
mod relmap;
mod select;
mod sensitivity;
mod share;
mod train;
mod upload;

pub use app::{App, AppProps};
pub use chart::WhatIf;
pub use compare::{ComparePanel, Overlay};
pub use editor::FeatureEditor;
pub use load::Source;
pub use panels::{Diagnostics, ModelCard, Predictions, Timings};
pub use relmap::RelatednessMap;
pub use sensitivity::Sensitivity;
pub use share::ShareLink;
pub use train::TrainPanel;
pub use upload::UploadZone;

/// Mounts the app on `#adaftr-app` (or the body). Not in the panel worker, which runs this
/// same wasm with no window ([`crate::panel_worker`]).
pub fn start() {
    let Some(doc) = web_sys::window().and_then(|w| w.document()) else { return };
    match doc.get_element_by_id("adaftr-app") {
        Some(root) => yew::Renderer::<App>::with_root(root).render(),
        None => yew::Renderer::<App>::new().render(),
    };
}
