#!/usr/bin/env bash
# Sets up whatever is missing and runs every test: the Rust workspace (core, CLI, web
# logic), data-parallel training under mpirun (Open MPI), the wasm32 build of core, and the
# browser tests (headless Chromium).
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v cargo >/dev/null; then
    echo "cargo not found: install Rust 1.95 (https://rustup.rs) and re-run" >&2
    exit 1
fi
start=$(date +%s)
step() { echo; echo "== $1 ($(( $(date +%s) - start ))s)"; }

step "core has no wasm-specific dependency (the web crate alone carries the wasm glue)"
core_deps=$(cargo tree -p adaftr-core --depth 1 --target wasm32-unknown-unknown -e normal --prefix none)
if echo "$core_deps" | grep -iE "wasm|js-sys|web-sys|getrandom|gloo"; then
    echo "core must stay free of wasm-specific dependencies" >&2
    exit 1
fi

step "formatting (rustfmt.toml) and lints (clippy, warnings are errors)"
# rustup's default profile has both; a minimal one may not.
if ! cargo fmt --version >/dev/null 2>&1 || ! cargo clippy --version >/dev/null 2>&1; then
    rustup component add rustfmt clippy
fi
cargo fmt --all --check
cargo clippy --workspace --all-targets -- -D warnings

step "cargo test (workspace, dev profile; the browser end-to-end test runs below, on a fresh build)"
cargo test --workspace --exclude adaftr-e2e

step "data-parallel training under mpirun: Open MPI setup, then the \`mpi\` feature's lints and tests"
scripts/setup-mpi.sh
cargo clippy -p adaftr-cli --features mpi --all-targets -- -D warnings
cargo test -p adaftr-cli --features mpi --test mpi

step "web: toolchain setup, wasm build, browser component tests, end-to-end test"
scripts/web-test.sh

step "core alone builds for wasm32 with its \`wasm\` feature (as an app embedding it would)"
cargo build -p adaftr-core --target wasm32-unknown-unknown --features wasm
step "all tests passed"
