#!/usr/bin/env bash
# Regenerates the demo's default model (web/assets/default-model.safetensors) and its
# example instances (web/assets/examples.json) from the generator's data, reproducibly
# (fixed seeds; the same weights every run on CPU).
set -euo pipefail
cd "$(dirname "$0")/.."
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
adaftr() { cargo run --quiet -p adaftr-cli -- "$@"; }
adaftr synth --rows 100000 --seed 1 --out "$work/train.csv"
adaftr synth --rows 20000 --seed 2 --out "$work/valid.csv"
adaftr train --train "$work/train.csv" --valid "$work/valid.csv" --out web/assets/default-model.safetensors \
    --epochs 4 --seed 1
adaftr eval --model web/assets/default-model.safetensors --data "$work/valid.csv" --truth "$work/valid.truth.csv"
cargo run --quiet -p adaftr-web --example make_default_model -- --examples-only --examples-from "$work/valid.csv"
