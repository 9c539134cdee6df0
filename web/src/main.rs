//! The demo's entry point (trunk builds this binary for the browser).

#[cfg(target_arch = "wasm32")]
fn main() {
    adaftr_web::ui::start();
}

/// The panel worker's entry point: this same wasm, run in a Web Worker by the page
/// (`adaftr_web::panel_worker`).
#[cfg(target_arch = "wasm32")]
#[wasm_bindgen::prelude::wasm_bindgen]
pub fn adaftr_panel_worker() {
    adaftr_web::panel_worker::start();
}

#[cfg(not(target_arch = "wasm32"))]
fn main() {
    eprintln!("adaftr-web is a browser app: build and serve it with scripts/demo.sh");
    std::process::exit(2);
}
