#!/usr/bin/env bash
# Fuzzes the CSV reader and the bundle/checkpoint loader for a set time per target. Not
# part of CI (scripts/test.sh runs the same checks as property tests on fixed inputs).
#
#   scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]      targets: csv bundle (default both)
#
# The targets live in fuzz/ (cargo-fuzz layout, its own workspace) and call the check
# functions in fuzz/src/lib.rs, which the property tests core/tests/prop_{csv,bundle}.rs
# share. cargo-fuzz wants nightly only for sanitizers: built with `-s none` it runs on
# stable Rust (libFuzzer with coverage counters, plus debug assertions and overflow
# checks). If cargo-fuzz cannot be installed or built, the script falls back to the
# property tests' time-bounded random/mutation loop (`fuzz_for_a_while`) on the same
# check functions.
#
# A crash is saved under fuzz/artifacts/<target>/. Reproduce it with
#   cargo fuzz run -s none <target> fuzz/artifacts/<target>/<file>
# and, once fixed, add its bytes to REGRESSIONS in core/tests/prop_<target>.rs so CI
# replays it forever. Corpus (fuzz/corpus), seeds (fuzz/seeds) and artifacts are
# git-ignored.
set -euo pipefail
cd "$(dirname "$0")/.."

secs=${1:-300}
shift || true
targets=("$@")
[ ${#targets[@]} -eq 0 ] && targets=(csv bundle)
for t in "${targets[@]}"; do
    case $t in csv | bundle) ;; *) echo "unknown target $t (csv, bundle)" >&2; exit 2 ;; esac
done

echo "== seeds (valid files from the property tests)"
ADAFTR_FUZZ_SEEDS="$PWD/fuzz/seeds" cargo test -q -p adaftr-core --test prop_csv --test prop_bundle \
    -- --ignored write_fuzz_seeds >/dev/null

flags=(-s none --debug-assertions --codegen-units 16)
use_fallback=""
if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "== installing cargo-fuzz (once, ~2 min)"
    cargo install cargo-fuzz --locked || use_fallback="cargo-fuzz could not be installed"
fi
if [ -z "$use_fallback" ]; then
    echo "== building the fuzz targets (first time ~10 min on 2 cores)"
    cargo fuzz build "${flags[@]}" || use_fallback="cargo fuzz build failed"
fi

failed=()
for t in "${targets[@]}"; do
    if [ -z "$use_fallback" ]; then
        echo "== fuzzing $t for ${secs}s with libFuzzer"
        mkdir -p "fuzz/corpus/$t"
        # -timeout: an input taking 10 s is a hang; allocations over -rss_limit_mb are
        # crashes too (loading must stay bounded by the input's size).
        if ! cargo fuzz run "${flags[@]}" "$t" "fuzz/corpus/$t" "fuzz/seeds/$t" -- \
            -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -dict="fuzz/$t.dict" -print_final_stats=1; then
            failed+=("$t")
        fi
    else
        echo "== $use_fallback: fuzzing $t for ${secs}s with the property-test mutation loop"
        if ! ADAFTR_FUZZ_SECONDS="$secs" cargo test -p adaftr-core --test "prop_$t" \
            -- --ignored fuzz_for_a_while --nocapture; then
            failed+=("$t")
        fi
    fi
done

if [ ${#failed[@]} -gt 0 ]; then
    echo
    echo "crashes in: ${failed[*]}"
    ls -l fuzz/artifacts/*/ 2>/dev/null || true
    echo "add each crashing input to REGRESSIONS in core/tests/prop_<target>.rs once fixed"
    exit 1
fi
echo "no crashes"
