#!/usr/bin/env bash
# Installs what the `mpi` feature needs to build and run (docs/DISTRIBUTED.md), if missing:
# Open MPI (mpirun and the library with its headers, found through mpicc) and libclang,
# which the `mpi` crate's build script uses to generate its bindings. Debian/Ubuntu (apt).
set -euo pipefail

packages=(openmpi-bin libopenmpi-dev libclang-dev)

if command -v dpkg-query >/dev/null && command -v apt-get >/dev/null; then
  missing=()
  for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if [ ${#missing[@]} = 0 ]; then
    echo "==> MPI ready: $(mpirun --version 2>&1 | head -n 1)"
    exit 0
  fi
elif command -v mpirun >/dev/null && command -v mpicc >/dev/null; then
  echo "==> MPI ready (not a Debian system; libclang is assumed): $(mpirun --version 2>&1 | head -n 1)"
  exit 0
else
  echo "the mpi feature needs an MPI library with its headers (mpirun, mpicc) and libclang;" >&2
  echo "install Open MPI or MPICH and libclang with your system's package manager" >&2
  exit 1
fi
echo "==> apt-get install ${missing[*]} (about a minute)"
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
$SUDO apt-get update
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y --no-install-recommends "${missing[@]}"
echo "==> MPI ready: $(mpirun --version 2>&1 | head -n 1)"
