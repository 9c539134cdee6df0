#!/usr/bin/env bash
# Builds `adaftr` with `--features cuda` on a machine WITHOUT a GPU or a system CUDA
# toolkit, using NVIDIA's CUDA 13.0 wheels from PyPI (nvcc, headers, libraries) installed
# into a git-ignored virtual environment. Idempotent: installs only what is missing.
#
#   scripts/build-cuda.sh                 # debug build   -> target/cuda/debug/adaftr
#   scripts/build-cuda.sh --release       # release build -> target/cuda/release/adaftr
#   scripts/build-cuda.sh --env           # print the `export` lines only (source them)
#   scripts/build-cuda.sh --nccl          # also the `nccl` feature: data-parallel training over
#                                         # NCCL on GPUs (NCCL 2.30 wheel; Open MPI through
#                                         # scripts/setup-mpi.sh; docs/DISTRIBUTED.md)
#
# Anything after the script's own flags goes to `cargo build`. Environment knobs:
#   CUDA_COMPUTE_CAP   GPU architecture the kernels are compiled for (default 90 = H100/H200)
#   CARGO_TARGET_DIR   default target/cuda, so the everyday CPU build is never invalidated
#   ADAFTR_CUDA_DIR    where the toolkit goes (default .cuda-toolkit, git-ignored)
#   CUDAFORGE_THREADS  parallel nvcc jobs in candle-kernels' build script (default: all
#                      cores; cudaforge's own default is half of them)
#
# What it takes, and why (see docs/GPU.md):
# - nvcc/cicc/ptxas + CUDA headers: candle-kernels' build script (cudaforge) compiles its
#   .cu files to PTX and a static libmoe.a; cudarc's build script runs `nvcc --version` to
#   pick its bindings (cuda-version-from-build-system).
# - libcudart, libcublas(Lt), libcurand, libnvrtc: linked dynamically (cudarc's
#   `dynamic-linking`, chosen by candle). The wheels ship only versioned names
#   (libcudart.so.13), so unversioned link names are made as symlinks.
# - libcuda (the driver) is not in any wheel, and this machine has no driver: a stub
#   libcuda.so with soname libcuda.so.1 is generated from cuda.h's function list, for the
#   linker only. The binary then needs the real driver's libcuda.so.1 to run, as any CUDA
#   program does; the stub is never on a runtime library path.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

env_only=0
nccl=0
profile_args=()
while [ $# -gt 0 ]; do
    case "$1" in
        --env) env_only=1; shift ;;
        --release) profile_args+=(--release); shift ;;
        --nccl) nccl=1; shift ;;
        --) shift; break ;;
        *) break ;;
    esac
done

tk=${ADAFTR_CUDA_DIR:-$root/.cuda-toolkit}
venv=$tk/venv
# Pinned to CUDA 13.0, the toolkit on the H200 machines (driver 580); cudarc 0.19 knows
# CUDA up to 13.4, so a newer nvcc would fail its build script.
wheels=(
    nvidia-cuda-nvcc==13.0.88 nvidia-cuda-crt==13.0.88 nvidia-nvvm==13.0.88
    nvidia-cuda-runtime==13.0.96 nvidia-cuda-nvrtc==13.0.88 nvidia-cuda-cccl==13.0.85
    nvidia-curand==10.4.0.35 nvidia-cublas==13.0.2.14
)
# NCCL 2.30: the version of the bindings cudarc 0.19's `nccl` feature selects.
if [ "$nccl" = 1 ]; then wheels+=(nvidia-nccl-cu13==2.30.7); fi
stamp=$tk/.installed-$(printf '%s\n' "${wheels[@]}" | cksum | cut -d' ' -f1)

log() { echo "build-cuda: $*" >&2; }

if [ ! -f "$stamp" ]; then
    log "installing the CUDA 13.0 wheels into $venv"
    command -v python3 >/dev/null || { log "python3 is needed (for pip)"; exit 1; }
    [ -x "$venv/bin/pip" ] || python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check --no-cache-dir "${wheels[@]}"
    touch "$stamp"
fi

cu=$(ls -d "$venv"/lib/python3*/site-packages/nvidia/cu13 2>/dev/null | head -1)
[ -n "$cu" ] && [ -x "$cu/bin/nvcc" ] || { log "nvcc not found under $venv (remove $tk and re-run)"; exit 1; }

# Link names and the driver stub, rebuilt when missing.
link=$tk/link
if [ ! -f "$link/lib/stubs/libcuda.so" ]; then
    log "making link names and the libcuda stub in $link"
    mkdir -p "$link/lib/stubs"
    for l in cudart cublas cublasLt curand nvrtc; do
        so=$(cd "$cu/lib" && ls lib$l.so.* | grep -E "^lib$l\.so\.[0-9]+$" | head -1)
        ln -sfn "$cu/lib/$so" "$link/lib/lib$l.so"
    done
    # Every driver API entry point that cuda.h declares (after its versioning macros, so
    # cuMemAlloc appears as cuMemAlloc_v2, as cudarc's bindings call it).
    echo '#include <cuda.h>' | gcc -E -P -I"$cu/include" - \
        | grep -oE '\bcu[A-Za-z0-9_]+[[:space:]]*\(' | sed 's/[[:space:]]*($//' | sort -u \
        | sed 's/.*/void &(void) {}/' >"$link/libcuda-stub.c"
    gcc -shared -fPIC -Wl,-soname,libcuda.so.1 -o "$link/lib/stubs/libcuda.so" "$link/libcuda-stub.c"
fi

if [ "$nccl" = 1 ] && [ ! -e "$link/lib/libnccl.so" ]; then
    so=$(find "$venv" -name 'libnccl.so.2*' | head -1)
    [ -n "$so" ] || { log "libnccl.so.2 not found under $venv"; exit 1; }
    ln -sfn "$so" "$link/lib/libnccl.so"
fi

exports=(
    "PATH=$cu/bin:$cu/nvvm/bin:\$PATH"
    "CUDA_HOME=$cu"
    "CUDA_ROOT=$link"
    "NVCC=$cu/bin/nvcc"
    "CUDA_COMPUTE_CAP=${CUDA_COMPUTE_CAP:-90}"
    "CUDAFORGE_THREADS=${CUDAFORGE_THREADS:-$(nproc)}"
    "CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$root/target/cuda}"
)
if [ "$env_only" = 1 ]; then
    printf 'export %s\n' "${exports[@]}"
    exit 0
fi
for e in "${exports[@]}"; do eval "export $e"; done

log "nvcc: $(nvcc --version | tail -1); compute cap $CUDA_COMPUTE_CAP; target dir $CARGO_TARGET_DIR"
start=$(date +%s)
features=cuda
if [ "$nccl" = 1 ]; then
    scripts/setup-mpi.sh
    features=cuda,nccl
fi
cargo build -p adaftr-cli --features "$features" "${profile_args[@]}" "$@"
log "built in $(( $(date +%s) - start ))s"
