#!/usr/bin/env bash
# Sanity run of `adaftr study` on a real AliExpress sample, which is not part of the
# repository: point ADAFTR_SHARED_DATA at the folder holding `aliexpress-sample/` (by default
# a `shared/data` folder beside the checkout); without it this says so and exits 0. The sample's train.csv is split into
# its first 800 rows (training) and last 200 (validation, for early stopping); its test.csv
# is the test set. There is no truth file for real data, so no tau-vs-relatedness score.
# Usage: study/sanity-aliexpress.sh [OUT_DIR]   (default study/out/aliexpress-sample)
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${ADAFTR_SHARED_DATA:-../shared/data}/aliexpress-sample
if [ ! -f "$DATA/train.csv" ] || [ ! -f "$DATA/test.csv" ]; then
  echo "no AliExpress sample at $DATA; skipping the sanity run"
  exit 0
fi
OUT=${1:-study/out/aliexpress-sample}
BIN=${ADAFTR_BIN:-target/release/adaftr}
[ -x "$BIN" ] || cargo build --release -p adaftr-cli
mkdir -p "$OUT"
head -n 801 "$DATA/train.csv" > "$OUT/train.csv"
{ head -n 1 "$DATA/train.csv"; tail -n +802 "$DATA/train.csv"; } > "$OUT/valid.csv"
printf '[train]\nbatch_size = 128\nepochs = 10\n' > "$OUT/base.toml"
rm -f "$OUT/runs.jsonl"
"$BIN" study --train "$OUT/train.csv" --valid "$OUT/valid.csv" --test "$DATA/test.csv" \
  --grid study/sanity.toml --config "$OUT/base.toml" --seeds 3 \
  --out "$OUT/runs.jsonl" --markdown "$OUT/summary.md" --plots "$OUT/plots"
