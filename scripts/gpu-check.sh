#!/usr/bin/env bash
# The GPU check of the `cuda` feature, for a machine with an NVIDIA GPU and no network.
#
#   scripts/gpu-check.sh [--out DIR] [--rows N] [--epochs N] [--batches "2048 8192 32768 65536"]
#
# 1. Binaries: builds `adaftr` and the `train_throughput` example in release with
#    `--features cuda`, offline, from vendor/crates (unpacked from vendor/crates.tar.xz; see
#    scripts/vendor-for-gpu.sh), into target/cuda. Without cargo on the machine, or with
#    ADAFTR_PREBUILT=1, it takes the binaries in vendor/bin (unpacked from vendor/bin.tar.xz)
#    instead, built elsewhere by `scripts/vendor-for-gpu.sh --prebuilt`.
# 2. Generates data with `adaftr synth` and trains the default model with `--device cuda`.
# 3. Predicts the validation file with that bundle on the GPU and on the CPU and checks the
#    largest absolute difference of pctr, pcvr, pctcvr and tau is at most 1e-4.
# 4. Measures training samples/s on the GPU and on the CPU at each batch size
#    (train_throughput: warm-up steps, then timed `Trainer::train_step` calls).
# Writes DIR/gpu-check.md (a Markdown section for BENCHMARKS.md), DIR/throughput.jsonl and
# the logs; prints the Markdown at the end. Exits non-zero if any step or the parity fails
# (a batch size that fails, e.g. out of GPU memory, is recorded in the table instead).
#
# Environment knobs: CUDA_COMPUTE_CAP (default: from nvidia-smi), GPU_STEPS (10), GPU_WARMUP
# (3), CPU_STEPS (default: 10 at 2048 falling to 2 at 32768 and above), CPU_WARMUP (1),
# CPU_TIMEOUT (seconds per CPU measurement, 300), RAYON_NUM_THREADS (CPU threads: all).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

out=${OUT:-$root/target/gpu-check}
rows=131072
epochs=3
batches="2048 8192 32768 65536"
while [ $# -gt 0 ]; do
    case "$1" in
        --out) out=$2; shift 2 ;;
        --rows) rows=$2; shift 2 ;;
        --epochs) epochs=$2; shift 2 ;;
        --batches) batches=$2; shift 2 ;;
        *) echo "unknown argument $1" >&2; exit 1 ;;
    esac
done
mkdir -p "$out"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
t0=$(date +%s)
step() { echo; echo "== $1 ($(( $(date +%s) - t0 ))s)"; }

step "machine"
# cudarc's build script runs plain `nvcc --version`: put a toolkit's nvcc on the PATH.
if ! command -v nvcc >/dev/null; then
    for d in ${CUDA_HOME:-} /usr/local/cuda /opt/cuda; do
        [ -x "$d/bin/nvcc" ] && { export PATH=$d/bin:$PATH; break; }
    done
fi
nvidia-smi --query-gpu=name,driver_version,memory.total,compute_cap --format=csv,noheader | tee "$work/gpu.txt"
gpu=$(head -1 "$work/gpu.txt")
cap=${CUDA_COMPUTE_CAP:-$(echo "$gpu" | awk -F', ' '{gsub(/\./, "", $4); print $4}')}
nvcc_v=$(nvcc --version 2>/dev/null | tail -1 || echo "no nvcc")
cpu_model=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')
echo "nvcc: $nvcc_v; CPU: $cpu_model, $(nproc) threads; compute cap for kernels: $cap"

step "binaries"
if command -v cargo >/dev/null && [ "${ADAFTR_PREBUILT:-0}" != 1 ]; then
    if [ ! -d vendor/crates ]; then
        [ -f vendor/crates.tar.xz ] || { echo "no vendor/crates(.tar.xz): run scripts/vendor-for-gpu.sh where there is network" >&2; exit 1; }
        tar -C vendor -xJf vendor/crates.tar.xz
    fi
    export CUDA_COMPUTE_CAP=$cap CUDAFORGE_THREADS=${CUDAFORGE_THREADS:-$(nproc)} CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$root/target/cuda}
    bstart=$(date +%s)
    if ! cargo build --release --offline --locked -p adaftr-cli --features cuda --bin adaftr --example train_throughput \
        --config "source.crates-io.replace-with='vendored-sources'" \
        --config "source.vendored-sources.directory='$root/vendor/crates'" >"$out/build.log" 2>&1; then
        tail -40 "$out/build.log"; echo "build failed (see $out/build.log)" >&2; exit 1
    fi
    build_s=$(( $(date +%s) - bstart ))
    bin=$CARGO_TARGET_DIR/release
    adaftr=$bin/adaftr; thr=$bin/examples/train_throughput
    how="built here in ${build_s}s: \`cargo build --release --offline -p adaftr-cli --features cuda\` ($(cargo --version | cut -d' ' -f1-2), CUDA_COMPUTE_CAP=$cap, $nvcc_v)"
else
    [ -d vendor/bin ] || [ ! -f vendor/bin.tar.xz ] || tar -C vendor -xJf vendor/bin.tar.xz
    adaftr=$root/vendor/bin/adaftr; thr=$root/vendor/bin/train_throughput
    [ -x "$adaftr" ] && [ -x "$thr" ] || { echo "no cargo here and no vendor/bin: run scripts/vendor-for-gpu.sh --prebuilt and carry vendor/bin" >&2; exit 1; }
    how="prebuilt elsewhere by \`scripts/vendor-for-gpu.sh --prebuilt\` (commit $(tr '\n' ' ' <vendor/bin/COMMIT 2>/dev/null)); no cargo used here"
fi
# The CUDA libraries the binaries link (libcudart/libcublas/libcublasLt/libcurand/libnvrtc,
# and the driver's libcuda.so.1): add the folders that hold them if the loader lacks them.
missing() { ldd "$adaftr" | awk '/not found/ {print $1}'; }
if [ -n "$(missing)" ]; then
    for d in /usr/local/cuda/lib64 /usr/local/cuda/targets/x86_64-linux/lib /usr/local/nvidia/lib64 /usr/lib/x86_64-linux-gnu \
        $(python3 -c 'import glob, site; print(" ".join(sorted({d for p in site.getsitepackages() for d in glob.glob(p + "/nvidia/*/lib")})))' 2>/dev/null || true) \
        $(find /usr /opt -xdev \( -name 'libcublas.so.1[0-9]' -o -name 'libcuda.so.1' \) -printf '%h\n' 2>/dev/null | sort -u); do
        [ -d "$d" ] && export LD_LIBRARY_PATH=$d${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
        [ -z "$(missing)" ] && break
    done
fi
if [ -n "$(missing)" ]; then echo "libraries not found: $(missing | tr '\n' ' ')" >&2; exit 1; fi
ldd "$adaftr" | grep -E 'cuda|cublas|curand|nvrtc' | cat || true

step "data: adaftr synth ($rows training rows, 20000 validation rows)"
"$adaftr" synth --rows "$rows" --seed 1 --out "$work/train.csv"
"$adaftr" synth --rows 20000 --seed 2 --out "$work/valid.csv"

step "train the default model on the GPU ($epochs epochs)"
train_cmd=("$adaftr" train --train "$work/train.csv" --valid "$work/valid.csv" --out "$work/model.safetensors" --device cuda --epochs "$epochs" --seed 1)
tstart=$(date +%s.%N)
if ! "${train_cmd[@]}" >"$out/train.log" 2>&1; then tail -20 "$out/train.log"; echo "GPU training failed (see $out/train.log)" >&2; exit 1; fi
grep -E '^(data:|epoch|wrote)' "$out/train.log" || true
train_s=$(awk -v a="$tstart" -v b="$(date +%s.%N)" 'BEGIN {printf "%.1f", b - a}')
cp "$work/model.safetensors" "$out/model-gpu.safetensors"

step "predict with that bundle on the GPU and on the CPU"
"$adaftr" predict --model "$work/model.safetensors" --data "$work/valid.csv" --out "$work/pred-cuda.csv" --device cuda
"$adaftr" predict --model "$work/model.safetensors" --data "$work/valid.csv" --out "$work/pred-cpu.csv" --device cpu
parity=$(paste -d, "$work/pred-cuda.csv" "$work/pred-cpu.csv" | awk -F, '
    NR == 1 { next }
    { if (NF != 8) { bad = 1 }
      for (i = 1; i <= 4; i++) { d = $i - $(i + 4); if (d < 0) d = -d; if (d > m[i]) m[i] = d; if ($i == "" || $(i + 4) == "") blank[i]++ } n++ }
    END { printf "rows %d; max abs diff pctr %.3g pcvr %.3g pctcvr %.3g tau %.3g; %s\n", n, m[1], m[2], m[3], m[4],
          (bad || n == 0 || blank[4] == n) ? "MALFORMED" : ((m[1] <= 1e-4 && m[2] <= 1e-4 && m[3] <= 1e-4 && m[4] <= 1e-4) ? "PASS" : "FAIL") }')
echo "parity: $parity"

step "training throughput, GPU vs CPU, batches: $batches"
: >"$out/throughput.jsonl"
measure() { # device batch steps warmup timeout
    local line
    line=$(timeout "$5" "$thr" --data "$work/train.csv" --device "$1" --batch "$2" --steps "$3" --warmup "$4" 2>>"$out/throughput.err") || true
    [ -n "$line" ] || line="{\"device\":\"$1\",\"batch\":$2,\"error\":\"no result (killed or timed out after $5 s)\"}"
    echo "$line" | tee -a "$out/throughput.jsonl" >&2
    echo "$line"
}
field() { sed -n "s/.*\"$2\":\([0-9.eE+-]*\).*/\1/p" <<<"$1"; }
cell() { # json -> "samples/s (median ms)" or the error
    local s ms
    s=$(field "$1" samples_per_s); ms=$(field "$1" median_step_ms)
    if [ -n "$s" ]; then printf "%'.0f | %.1f" "$s" "$ms"; else
        printf "failed: %s | " "$(sed -n 's/.*"error":"\(.*\)"}.*/\1/p' <<<"$1" | tr -d '\\' | tr '|' '/' | cut -c1-80)"; fi
}
rows_md=""
for b in $batches; do
    if [ "$b" -gt "$rows" ]; then echo "skip batch $b (more than $rows rows)"; continue; fi
    cpu_steps=${CPU_STEPS:-$(( 20480 / b > 10 ? 10 : (20480 / b < 2 ? 2 : 20480 / b) ))}
    g=$(measure cuda "$b" "${GPU_STEPS:-10}" "${GPU_WARMUP:-3}" 600)
    c=$(measure cpu "$b" "$cpu_steps" "${CPU_WARMUP:-1}" "${CPU_TIMEOUT:-300}")
    gs=$(field "$g" samples_per_s); cs=$(field "$c" samples_per_s)
    ratio=$([ -n "$gs" ] && [ -n "$cs" ] && awk -v g="$gs" -v c="$cs" 'BEGIN {printf "%.1fx", g / c}' || echo "n/a")
    rows_md+="| $b | $(cell "$g") | $(cell "$c") | $ratio |"$'\n'
done
threads=$(sed -n 's/.*"device":"cpu".*"threads":\([0-9]*\).*/\1/p; s/.*"threads":\([0-9]*\).*"device":"cpu".*/\1/p' "$out/throughput.jsonl" | head -1)

{
    echo "## GPU training (\`--features cuda\`)"
    echo
    echo "Produced by \`scripts/gpu-check.sh\` on $(date -u '+%Y-%m-%d %H:%M UTC'); commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown)."
    echo
    echo "Machine: $gpu (name, driver, memory, compute capability); CPU: $cpu_model, ${threads:-$(nproc)} threads used by the CPU runs. Binaries: $how."
    echo
    echo "Model: the default AdaFTR (shared-bottom [256, 128], in-batch symmetric InfoNCE), float32, Adam, on AliExpress-shaped generated data (\`adaftr synth --rows $rows --seed 1\`)."
    echo
    echo "- Training the default model on the GPU: \`adaftr train --device cuda --epochs $epochs --seed 1\` on $rows rows took ${train_s}s end to end (loading, training, validation, writing)."
    echo "- Parity of that bundle's predictions on 20,000 validation rows, GPU vs CPU (\`adaftr predict --device cuda|cpu\`): $parity (threshold 1e-4)."
    echo
    echo "Training throughput (samples/s, and the median step in ms): GPU ${GPU_STEPS:-10} timed steps after ${GPU_WARMUP:-3} warm-up steps; CPU ${CPU_STEPS:-2 to 10} timed steps after ${CPU_WARMUP:-1}. Each step gathers the batch from the in-memory dataset, copies it to the device, runs forward, loss, backward and the Adam update, and reads the loss values back, as \`adaftr train\` does."
    echo
    echo "| batch | GPU samples/s | GPU step ms | CPU samples/s | CPU step ms | GPU / CPU |"
    echo "| ---: | ---: | ---: | ---: | ---: | ---: |"
    printf '%s' "$rows_md"
    echo
    echo "Reproduce: \`scripts/vendor-for-gpu.sh [--prebuilt]\` where there is network, then \`scripts/gpu-check.sh\` on the GPU machine (total $(( $(date +%s) - t0 ))s there)."
} >"$out/gpu-check.md"

step "result"
cat "$out/gpu-check.md"
case "$parity" in *PASS) ;; *) echo "parity check failed" >&2; exit 1 ;; esac
