//! End-to-end tests of the browser demo live in `tests/`: `browser.rs` (predictions),
//! `training.rs` (the Train panel's worker) and `explain.rs` (the panels that explain the
//! model), on the harness in `tests/common/mod.rs`.
