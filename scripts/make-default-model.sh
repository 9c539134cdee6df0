#!/usr/bin/env bash
# Regenerates the demo's shipped models from the generator's data, reproducibly (fixed
# seeds; the same weights every run on CPU):
#   scripts/make-default-model.sh            both steps below
#   scripts/make-default-model.sh default    the default model (web/assets/default-model.safetensors)
#                                            and its example instances (web/assets/examples.json)
#   scripts/make-default-model.sh compare    the comparison model (web/assets/plain-ple.safetensors):
#                                            plain PLE, the same configuration without the
#                                            relatedness term (scripts/plain-ple-model.toml)
# Both steps train on the same generated rows with the same seed, and neither touches the
# other's files.
#
# On the 200k unseen test rows (`adaftr eval`, printed below), both stopped at epoch 5 of 7:
#                                 AUC CTR   CVR|click   CTCVR    tau's Spearman with the truth
#   default (PLE + readout tau)   0.7336    0.7341      0.8575   -0.566
#   compare (plain PLE)           0.7340    0.7330      0.8576   (no tau)
# The readout's network reads the shared embeddings without a stop-gradient, so its loss
# nudges them: the two models' predictions differ slightly, their AUCs hardly at all.
# Each model carries the generator's descriptions of its fields (`adaftr describe`), for
# the demo's editor; the weights stay as trained.
set -euo pipefail
step=${1:-all}
case "$step" in
    all | default | compare) ;;
    *) echo "usage: $0 [all|default|compare]" >&2; exit 2 ;;
esac
cd "$(dirname "$0")/.."
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
adaftr() { cargo run --release --quiet -p adaftr-cli -- "$@"; }

# The generated data both models learn from and are evaluated on.
adaftr synth --rows 1000000 --seed 1 --out "$work/train.csv"
adaftr synth --rows 100000 --seed 2 --out "$work/valid.csv"
adaftr synth --rows 200000 --seed 3 --out "$work/test.csv"

# Trains one shipped model, then reports on rows it never saw: AUCs, the tau distribution
# and tau's rank correlation with the generator's true relatedness (when it has a tau).
train_and_eval() {
    adaftr train --train "$work/train.csv" --valid "$work/valid.csv" --out "$1" --config "$2" --seed 1
    adaftr describe --model "$1" --fields "$work/train.fields.json" --out "$1"
    adaftr eval --model "$1" --data "$work/test.csv" --truth "$work/test.truth.csv"
}

if [ "$step" != compare ]; then
    train_and_eval web/assets/default-model.safetensors scripts/default-model.toml
    cargo run --quiet -p adaftr-web --example make_default_model -- --examples-only --examples-from "$work/valid.csv"
fi
if [ "$step" != default ]; then
    train_and_eval web/assets/plain-ple.safetensors scripts/plain-ple-model.toml
fi
