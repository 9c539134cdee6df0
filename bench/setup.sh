#!/usr/bin/env bash
# Creates bench/.venv (git-ignored) with CPU PyTorch, numpy and safetensors for the
# PyTorch reference in bench/torch_ref.py. Idempotent: does nothing when already set up.
set -euo pipefail
cd "$(dirname "$0")"
PY=${PYTHON:-python3}
if [ -x .venv/bin/python ] && .venv/bin/python -c 'import torch, numpy, safetensors' 2>/dev/null; then
  exit 0
fi
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/pip install --quiet --upgrade pip
# The CPU-only wheel (small) from PyTorch's own index; where that index is unreachable,
# the PyPI wheel with its CUDA libraries (several GB; torch will not import without them).
# Only the CPU is used either way.
if ! .venv/bin/pip install --quiet --retries 0 --timeout 15 torch --index-url https://download.pytorch.org/whl/cpu 2>/dev/null; then
  .venv/bin/pip install --quiet torch
fi
.venv/bin/pip install --quiet numpy safetensors
.venv/bin/python -c 'import torch; print("torch", torch.__version__, "threads", torch.get_num_threads())'
