#!/usr/bin/env bash
# Regenerates the demo's default model (web/assets/default-model.safetensors) and its
# example instances (web/assets/examples.json) from the generator's data, reproducibly
# (fixed seeds; the same weights every run on CPU), with the generator's descriptions of
# its fields.
set -euo pipefail
cd "$(dirname "$0")/.."
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
adaftr() { cargo run --release --quiet -p adaftr-cli -- "$@"; }
adaftr synth --rows 1000000 --seed 1 --out "$work/train.csv"
adaftr synth --rows 100000 --seed 2 --out "$work/valid.csv"
adaftr synth --rows 200000 --seed 3 --out "$work/test.csv"
adaftr train --train "$work/train.csv" --valid "$work/valid.csv" --out web/assets/default-model.safetensors \
    --config scripts/default-model.toml --seed 1
# What each field means (labels, descriptions, groups for the editor), from the generator;
# the weights stay as trained.
adaftr describe --model web/assets/default-model.safetensors --fields "$work/train.fields.json" \
    --out web/assets/default-model.safetensors
# On rows it never saw: AUCs, the tau distribution and tau's rank correlation with the
# generator's true relatedness.
adaftr eval --model web/assets/default-model.safetensors --data "$work/test.csv" --truth "$work/test.truth.csv"
cargo run --quiet -p adaftr-web --example make_default_model -- --examples-only --examples-from "$work/valid.csv"
