#!/usr/bin/env bash
# Installs what the `mpi` feature needs to build and run (docs/DISTRIBUTED.md), if missing:
# Open MPI (mpirun and the library with its headers, found through mpicc) and libclang,
# which the `mpi` crate's build script uses to generate its bindings. Debian/Ubuntu (apt).
set -euo pipefail

has_libclang() {
  ldconfig -p 2>/dev/null | grep -q 'libclang[-.0-9]*\.so' || ls /usr/lib/llvm-*/lib/libclang*.so* >/dev/null 2>&1
}

if command -v mpirun >/dev/null && command -v mpicc >/dev/null && has_libclang; then
  echo "==> MPI ready: $(mpirun --version 2>&1 | head -n 1)"
  exit 0
fi
if ! command -v apt-get >/dev/null; then
  echo "the mpi feature needs an MPI library with its headers (mpirun, mpicc) and libclang;" >&2
  echo "install Open MPI or MPICH and libclang with your system's package manager" >&2
  exit 1
fi
echo "==> apt-get install openmpi-bin libopenmpi-dev libclang-dev (about a minute)"
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
$SUDO apt-get update
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y --no-install-recommends openmpi-bin libopenmpi-dev libclang-dev
echo "==> MPI ready: $(mpirun --version 2>&1 | head -n 1)"
