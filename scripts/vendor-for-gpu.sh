#!/usr/bin/env bash
# Prepares vendor/ (git-ignored) for scripts/gpu-check.sh on a GPU machine with no network.
#
#   scripts/vendor-for-gpu.sh              # vendor/crates.tar.xz: every crate of Cargo.lock
#   scripts/vendor-for-gpu.sh --prebuilt   # also vendor/bin/{adaftr,train_throughput}, built
#                                          # here with `--features cuda` (scripts/build-cuda.sh)
#
# Why an archive: `cargo vendor` of this workspace is ~420 MiB of sources (Windows and wasm
# crates included, since cargo vendors for every platform); xz brings it to ~33 MiB, under
# the 64 MiB that may travel to the device machine. gpu-check.sh unpacks it into
# vendor/crates and points cargo at it with `--config` flags; the repository's
# .cargo/config.toml is never touched.
#
# Why prebuilt binaries: a GPU machine may have nvcc but no Rust toolchain (the H200
# machines of this workplace list none), and a toolchain (~110 MiB compressed) cannot travel.
# The binaries built here link libcudart/libcublas/libcurand/libnvrtc 13 and the driver's
# libcuda.so.1 dynamically; gpu-check.sh finds those on the GPU machine. Kernels are compiled
# for CUDA_COMPUTE_CAP (default 90, H100/H200) by nvcc 13.0, whose PTX needs driver >= 580.
#
# Carry to the device machine: `vendor/crates.tar.xz` (to build there; ~32 MiB) and/or
# `vendor/bin.tar.xz` (~5 MiB). Not the unpacked folders: vendor/crates is ~420 MiB and
# vendor/bin ~44 MiB, over the 64 MiB that may travel together with the sources.
set -euo pipefail
cd "$(dirname "$0")/.."

prebuilt=0
[ "${1:-}" = "--prebuilt" ] && prebuilt=1

mkdir -p vendor
if [ ! -f vendor/crates.tar.xz ] || [ Cargo.lock -nt vendor/crates.tar.xz ]; then
    rm -rf vendor/crates
    cargo vendor --locked --quiet vendor/crates >/dev/null
    echo "vendor-for-gpu: vendored $(ls vendor/crates | wc -l) crates, $(du -sh vendor/crates | cut -f1) of sources"
    tar -C vendor -cf - crates | xz -T0 -6 >vendor/crates.tar.xz.tmp
    mv vendor/crates.tar.xz.tmp vendor/crates.tar.xz
fi
echo "vendor-for-gpu: vendor/crates.tar.xz is $(du -h vendor/crates.tar.xz | cut -f1)"

if [ "$prebuilt" = 1 ]; then
    scripts/build-cuda.sh --release --bin adaftr --example train_throughput
    mkdir -p vendor/bin
    for b in adaftr examples/train_throughput; do
        install -m 755 "target/cuda/release/$b" "vendor/bin/$(basename "$b")"
    done
    git rev-parse --short HEAD >vendor/bin/COMMIT 2>/dev/null || true
    git diff --quiet 2>/dev/null || echo "+ uncommitted changes" >>vendor/bin/COMMIT
    # The binaries hold the kernels' PTX as text: xz takes ~44 MiB down to ~5 MiB.
    tar -C vendor -cf - bin | xz -T0 -6 >vendor/bin.tar.xz
    echo "vendor-for-gpu: vendor/bin is $(du -sh vendor/bin | cut -f1) ($(ls vendor/bin | tr '\n' ' ')), vendor/bin.tar.xz $(du -h vendor/bin.tar.xz | cut -f1)"
fi
