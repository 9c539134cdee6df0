#!/usr/bin/env bash
# The benchmark command: builds the release binary (and the browser demo), sets up the PyTorch
# reference (bench/setup.sh -> bench/.venv), then runs, in one go on this machine:
#   - adaftr vs PyTorch, alternating round by round, 2 threads each, batch 2048: training
#     (full AdaFTR loss and plain backbone), batch inference, single-instance latency, parity;
#   - the browser demo in headless Chromium (single instance, 64-point what-if sweep, wasm gzip);
#   - CSV ingest of a generated file of INGEST_ROWS rows (rows/s, MB/s, peak memory);
# and writes BENCHMARKS.md. Environment knobs: ROUNDS (default 5), INGEST_ROWS (1000000),
# SKIP_BROWSER=1, SKIP_WEB_BUILD=1 (use the existing dist/), BENCH_DIR (bench/out).
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-5}
INGEST_ROWS=${INGEST_ROWS:-1000000}
WORK=$(realpath -m "${BENCH_DIR:-bench/out}")
export RAYON_NUM_THREADS=2

echo "==> cargo build --release -p adaftr-cli"
cargo build --release -p adaftr-cli
BIN=$PWD/target/release/adaftr

echo "==> PyTorch reference environment (bench/.venv)"
bench/setup.sh

mkdir -p "$WORK"
echo "==> data, initial weights and parity references in $WORK"
"$BIN" bench prepare --out-dir "$WORK"
INGEST="$WORK/ingest-$INGEST_ROWS.csv"
[ -s "$INGEST" ] || "$BIN" synth --rows "$INGEST_ROWS" --seed 7 --no-auc --out "$INGEST"

BROWSER_ARGS=()
if [ "${SKIP_BROWSER:-0}" != 1 ]; then
  if [ "${SKIP_WEB_BUILD:-0}" != 1 ] || ! ls dist/*.wasm >/dev/null 2>&1; then
    echo "==> trunk build --release (browser demo)"
    ./scripts/setup-web.sh >/tmp/adaftr-setup-web.log 2>&1 || { cat /tmp/adaftr-setup-web.log; exit 1; }
    PATH="$PWD/node_modules/.bin:$HOME/.cargo/bin:$PATH" TRUNK_SKIP_VERSION_CHECK=true trunk build --release --offline
  fi
  echo "==> browser (headless Chromium)"
  bench/.venv/bin/python bench/browser_bench.py dist "$WORK/browser.json"
  BROWSER_ARGS=(--browser "$WORK/browser.json")
fi

echo "==> adaftr vs PyTorch ($ROUNDS rounds), CSV ingest"
cd bench
.venv/bin/python compare.py --adaftr "$BIN" --dir "$WORK" --rounds "$ROUNDS" \
  --ingest-file "$INGEST" "${BROWSER_ARGS[@]}" --command "bench/run.sh" \
  --out ../BENCHMARKS.md --json-out "$WORK/results.json"
