#!/usr/bin/env bash
# The benchmark command: builds the release binary (and the browser demo), sets up the PyTorch
# reference (bench/setup.sh -> bench/.venv), then runs, in one go on this machine:
#   - adaftr vs PyTorch (eager, and torch.compile where it works), alternating round by round,
#     2 threads each, batch 2048: training of MODEL.md's literal spec, the default configuration,
#     plain shared-bottom and plain PLE; batch inference; single-instance latency; parity of
#     every model;
#   - the browser demo in headless Chromium (single instance, 64-point what-if sweep, wasm gzip;
#     one epoch in the Train panel on BROWSER_TRAIN_ROWS rows against native single-thread);
#   - CSV ingest of a generated file of INGEST_ROWS rows (rows/s, MB/s, peak memory), and of
#     the same rows as Parquet;
#   - streamed training: peak memory on that file repeated STREAM_REPEAT times, and samples/s
#     streamed against loaded;
#   - data-parallel training under mpirun (the `mpi` feature; scripts/setup-mpi.sh installs
#     Open MPI): 2 ranks against one process, on the first MPI_ROWS rows of the ingest file;
# and writes BENCHMARKS.md. Before any timing, bench/test_parity.py checks that the PyTorch
# reference computes what adaftr computes (and that the check catches a wrong reference).
# Environment knobs: ROUNDS (default 5), INGEST_ROWS (1000000), STREAM_REPEAT (10), MPI_ROWS (300000), BROWSER_TRAIN_ROWS (200000), STEPS
# (training steps per measurement, 8), REPS (inference batches, 20), CALLS (single-instance
# calls, 2000),
# SKIP_BROWSER=1, SKIP_WEB_BUILD=1 (use the existing dist/), COMPILE=0 (no torch.compile
# column), COMPILE_MODELS (those compiled, comma-separated; default all), BENCH_DIR
# (bench/out), BENCH_OUT (BENCHMARKS.md).
# QUICK=1 is a short run that checks the whole pipeline, not a measurement: 1 round, a
# 100,000-row ingest file (streamed twice over), 3 steps, 5 batches, 200 calls, only the literal spec compiled,
# and BENCH_OUT defaults to
# $BENCH_DIR/BENCHMARKS-quick.md so that BENCHMARKS.md keeps its numbers.
set -euo pipefail
cd "$(dirname "$0")/.."
WORK=$(realpath -m "${BENCH_DIR:-bench/out}")
if [ "${QUICK:-0}" = 1 ]; then
  ROUNDS=${ROUNDS:-1} INGEST_ROWS=${INGEST_ROWS:-100000} MPI_ROWS=${MPI_ROWS:-20000} BROWSER_TRAIN_ROWS=${BROWSER_TRAIN_ROWS:-20000} STREAM_REPEAT=${STREAM_REPEAT:-2} STEPS=${STEPS:-3} REPS=${REPS:-5} CALLS=${CALLS:-200}
  COMPILE_MODELS=${COMPILE_MODELS:-literal}
  OUT_MD=$(realpath -m "${BENCH_OUT:-$WORK/BENCHMARKS-quick.md}")
fi
ROUNDS=${ROUNDS:-5}
INGEST_ROWS=${INGEST_ROWS:-1000000}
STREAM_REPEAT=${STREAM_REPEAT:-10}
MPI_ROWS=${MPI_ROWS:-300000}
BROWSER_TRAIN_ROWS=${BROWSER_TRAIN_ROWS:-200000}
STEPS=${STEPS:-8} REPS=${REPS:-20} CALLS=${CALLS:-2000}
OUT_MD=${OUT_MD:-$(realpath -m "${BENCH_OUT:-BENCHMARKS.md}")}
export RAYON_NUM_THREADS=2

echo "==> Open MPI (scripts/setup-mpi.sh), then cargo build --release -p adaftr-cli --features mpi"
scripts/setup-mpi.sh
cargo build --release -p adaftr-cli --features mpi
BIN=$PWD/target/release/adaftr

echo "==> PyTorch reference environment (bench/.venv)"
bench/setup.sh

echo "==> parity of the PyTorch reference (bench/test_parity.py)"
ADAFTR="$BIN" bench/.venv/bin/python bench/test_parity.py

mkdir -p "$WORK"
echo "==> data, initial weights and parity references in $WORK"
"$BIN" bench prepare --out-dir "$WORK"
INGEST="$WORK/ingest-$INGEST_ROWS.csv"
[ -s "$INGEST" ] || "$BIN" synth --rows "$INGEST_ROWS" --seed 7 --no-auc --out "$INGEST"
PARQUET="${INGEST%.csv}.parquet"
[ -s "$PARQUET" ] || "$BIN" convert --input "$INGEST" --output "$PARQUET"
# Streamed training reads a file STREAM_REPEAT times the ingest file (same vocabularies).
STREAM_FILE="$WORK/stream-${STREAM_REPEAT}x$INGEST_ROWS.csv"
if [ ! -s "$STREAM_FILE" ]; then
  echo "==> $STREAM_FILE (the ingest file $STREAM_REPEAT times)"
  { cat "$INGEST"; for _ in $(seq 2 "$STREAM_REPEAT"); do tail -n +2 "$INGEST"; done; } > "$STREAM_FILE"
fi

# Data-parallel training trains on the first MPI_ROWS rows of the ingest file.
MPI_TRAIN="$WORK/mpi-train-$MPI_ROWS.csv"
[ -s "$MPI_TRAIN" ] || head -n "$((MPI_ROWS + 1))" "$INGEST" > "$MPI_TRAIN"
MPI_VALID="$WORK/mpi-valid.csv"
[ -s "$MPI_VALID" ] || "$BIN" synth --rows 20000 --seed 9 --no-auc --out "$MPI_VALID"

BROWSER_ARGS=()
if [ "${SKIP_BROWSER:-0}" != 1 ]; then
  if [ "${SKIP_WEB_BUILD:-0}" != 1 ] || ! ls dist/*.wasm >/dev/null 2>&1; then
    echo "==> trunk build --release (browser demo)"
    ./scripts/setup-web.sh >/tmp/adaftr-setup-web.log 2>&1 || { cat /tmp/adaftr-setup-web.log; exit 1; }
    PATH="$PWD/node_modules/.bin:$HOME/.cargo/bin:$PATH" TRUNK_SKIP_VERSION_CHECK=true trunk build --release --offline
  fi
  echo "==> browser (headless Chromium; training in the Train panel on BROWSER_TRAIN_ROWS rows)"
  BROWSER_TRAIN="$WORK/browser-train-$BROWSER_TRAIN_ROWS.csv"
  [ -s "$BROWSER_TRAIN" ] || head -n "$((BROWSER_TRAIN_ROWS + 1))" "$INGEST" > "$BROWSER_TRAIN"
  bench/.venv/bin/python bench/browser_bench.py dist "$WORK/browser.json" --train-csv "$BROWSER_TRAIN"
  BROWSER_ARGS=(--browser "$WORK/browser.json" --browser-train-csv "$BROWSER_TRAIN")
fi

COMPILE_ARGS=()
[ "${COMPILE:-1}" != 0 ] || COMPILE_ARGS=(--no-compile)
[ -z "${COMPILE_MODELS:-}" ] || COMPILE_ARGS+=(--compile-models "$COMPILE_MODELS")

echo "==> adaftr vs PyTorch ($ROUNDS rounds), CSV ingest"
cd bench
.venv/bin/python compare.py --adaftr "$BIN" --dir "$WORK" --rounds "$ROUNDS" \
  --steps "$STEPS" --reps "$REPS" --calls "$CALLS" --ingest-file "$INGEST" --parquet-file "$PARQUET" --stream-file "$STREAM_FILE" --mpi-train "$MPI_TRAIN" --mpi-valid "$MPI_VALID" "${BROWSER_ARGS[@]}" "${COMPILE_ARGS[@]}" --command "bench/run.sh" \
  --out "$OUT_MD" --json-out "$WORK/results.json"
