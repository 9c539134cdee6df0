#!/usr/bin/env bash
# The demo: installs whatever is missing (wasm32 target, trunk, wasm-bindgen, wasm-opt,
# Chromium), builds the browser demo with its default model and serves it on
# http://127.0.0.1:8080 (Ctrl-C to stop). Versions and why: docs/TOOLCHAIN.md.
#
# The first run on a fresh 2-core machine takes 15-20 minutes, almost all of it compiling
# trunk and wasm-bindgen, so every step says what it does and how long it usually takes
# before it starts, and streams its output. Everything is also written to a log
# (ADAFTR_DEMO_LOG, default target/demo.log); on a failure the log's path and its last
# lines are printed.
set -euo pipefail
cd "$(dirname "$0")/.."

LOG=${ADAFTR_DEMO_LOG:-target/demo.log}
mkdir -p "$(dirname "$LOG")"
: >"$LOG"
export PATH="$PWD/node_modules/.bin:$HOME/.cargo/bin:$PATH"
export TRUNK_SKIP_VERSION_CHECK=true
steps=4
start=$(date +%s)

elapsed() { local s=$(( $(date +%s) - $1 )); printf '%dm%02ds' $((s / 60)) $((s % 60)); }

# step N "what" "expected time" command...: announces the step, runs the command with its
# output streamed to the terminal and appended to the log, and stops with the log's tail
# if it fails.
step() {
    local n=$1 what=$2 expect=$3 t0
    shift 3
    t0=$(date +%s)
    echo "[$n/$steps] $what ($expect)" | tee -a "$LOG"
    if "$@" 2>&1 | tee -a "$LOG"; then
        echo "[$n/$steps] done in $(elapsed "$t0")" | tee -a "$LOG"
    else
        {
            echo
            echo "[$n/$steps] FAILED after $(elapsed "$t0"): $what"
            echo "full log: $LOG; its last 30 lines:"
            tail -n 30 "$LOG" | sed 's/^/    /'
        } >&2
        exit 1
    fi
}

echo "AdaFTR demo: log in $LOG" | tee -a "$LOG"
if ! command -v cargo >/dev/null; then
    echo "cargo not found: install Rust 1.95 (https://rustup.rs) and re-run" | tee -a "$LOG" >&2
    exit 1
fi

step 1 "web toolchain: wasm32 target, trunk, wasm-bindgen, wasm-opt, Chromium" \
    "seconds when installed; first time ~15 min on 2 cores, mostly compiling trunk and wasm-bindgen" \
    scripts/setup-web.sh
step 2 "fetching the Rust dependencies" "first time ~1 min, then seconds" \
    cargo fetch
step 3 "building the wasm app into dist/" "first time ~5 min, then seconds" \
    trunk build --release --offline

echo "[4/$steps] serving the AdaFTR demo on http://127.0.0.1:8080/ (Ctrl-C to stop; ready after $(elapsed "$start"))" \
    | tee -a "$LOG"
if command -v python3 >/dev/null 2>&1; then
    exec python3 -m http.server 8080 --bind 127.0.0.1 --directory dist
else
    exec trunk serve --release --offline --address 127.0.0.1 --port 8080
fi
