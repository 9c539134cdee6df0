//! The AdaFTR browser demo.
//!
//! Everything that can be tested without a browser lives in plain modules that compile
//! natively: [`state`] (the app state and its transitions), [`editor`] (building and
//! editing instances, examples), [`fields`] (the editor's field names, groups and
//! search), [`sweep`] (what-if sweeps and chart geometry), [`sensitivity`] (which
//! features move the outputs for one instance), [`relmap`] (the relatedness map over two
//! features, its colours and geometry), [`variations`] (those panels' batches, as one
//! instance and each row's changes), [`format`] (numbers and the relatedness reading),
//! [`timing`] (timing with the browser's coarse clock), [`edit_frames`] (what an edit's
//! frames count towards), [`model`] (loading bundles, upload checks, the model card),
//! [`compare`] (a second model on the same instance, mapped by field name), [`fragment`]
//! (the state in the URL fragment, for shareable links) and [`demo`] (small trained
//! bundles for development and tests); [`training`] is what the Train panel and its
//! worker exchange, and the training session the worker runs.
//! The Yew components in [`ui`] only exist on `wasm32`, as does [`panel_worker`], the
//! app's wasm run a second time in a Web Worker to predict the explaining panels' batches
//! ([`offload`]). Inference is always `adaftr_core::bundle::Bundle::predict`, the same
//! code the CLI runs.

pub mod compare;
pub mod demo;
pub mod edit_frames;
pub mod editor;
pub mod fields;
pub mod format;
pub mod fragment;
pub mod model;
pub mod offload;
pub mod relmap;
pub mod sensitivity;
pub mod state;
pub mod sweep;
pub mod timing;
pub mod training;
pub mod variations;

#[cfg(target_arch = "wasm32")]
pub mod in_worker;
#[cfg(target_arch = "wasm32")]
pub mod panel_worker;
#[cfg(target_arch = "wasm32")]
pub mod ui;
