#!/usr/bin/env bash
# Sets up whatever is missing and runs every test: the Rust workspace (core, CLI, web
# logic), the wasm32 build of core, and the browser tests when the web toolchain is set up.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v cargo >/dev/null; then
    echo "cargo not found: install Rust 1.95 (https://rustup.rs) and re-run" >&2
    exit 1
fi
start=$(date +%s)
step() { echo; echo "== $1 ($(( $(date +%s) - start ))s)"; }

step "cargo test (workspace, dev profile)"
cargo test --workspace

if [ -x scripts/web-test.sh ]; then
    step "web: toolchain setup"
    scripts/setup-web.sh
    step "web: wasm build, browser component tests, end-to-end test"
    scripts/web-test.sh
fi
step "all tests passed"
