#!/usr/bin/env bash
# The demo: installs whatever is missing (wasm32 target, trunk, wasm-bindgen, wasm-opt),
# builds the browser demo with its default model and serves it on http://127.0.0.1:8080.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v cargo >/dev/null; then
    echo "cargo not found: install Rust 1.95 (https://rustup.rs) and re-run" >&2
    exit 1
fi
exec scripts/serve-demo.sh
