//! The demo's entry point (trunk builds this binary for the browser).

#[cfg(target_arch = "wasm32")]
fn main() {
    adaftr_web::ui::start();
}

#[cfg(not(target_arch = "wasm32"))]
fn main() {
    eprintln!("adaftr-web is a browser app: build and serve it with scripts/demo.sh");
    std::process::exit(2);
}
