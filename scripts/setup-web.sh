#!/usr/bin/env bash
# Idempotent setup of the web toolchain for adaftr-web (see docs/TOOLCHAIN.md).
# Installs only what is missing: the wasm32 target, trunk 0.21.14, wasm-bindgen-cli
# 0.2.130 (also provides wasm-bindgen-test-runner), wasm-opt 132 (npm binaryen) and
# Chromium + ChromeDriver (apt).
set -euo pipefail
cd "$(dirname "$0")/.."

TRUNK_VERSION=0.21.14
WASM_BINDGEN_VERSION=0.2.130
export PATH="$HOME/.cargo/bin:$PATH"

has_version() { # tool expected-substring
  command -v "$1" >/dev/null 2>&1 && "$1" --version 2>/dev/null | grep -q -- "$2"
}

if ! rustup target list --installed | grep -qx wasm32-unknown-unknown; then
  echo "==> rustup target add wasm32-unknown-unknown (seconds)"
  rustup target add wasm32-unknown-unknown
fi

if ! has_version trunk "$TRUNK_VERSION"; then
  echo "==> installing trunk $TRUNK_VERSION (takes ~10 min on 2 cores)"
  cargo install --locked trunk --version "$TRUNK_VERSION"
fi

if ! has_version wasm-bindgen "$WASM_BINDGEN_VERSION" || ! has_version wasm-bindgen-test-runner "$WASM_BINDGEN_VERSION"; then
  echo "==> installing wasm-bindgen-cli $WASM_BINDGEN_VERSION (~3 min on 2 cores; no --locked, see docs/TOOLCHAIN.md)"
  cargo install wasm-bindgen-cli --version "$WASM_BINDGEN_VERSION" --force
fi

if ! has_version node_modules/.bin/wasm-opt "version 132"; then
  echo "==> npm install (binaryen 132 for wasm-opt; seconds)"
  if [ -f package-lock.json ]; then npm ci --no-audit --no-fund; else npm install --no-audit --no-fund; fi
fi

if [ ! -x /usr/bin/chromedriver ] || [ ! -x /usr/bin/chromium ]; then
  echo "==> apt-get install chromium chromium-driver (under a minute)"
  SUDO=""
  if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
  $SUDO apt-get update
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y chromium chromium-driver
fi

echo "==> web toolchain ready:"
trunk --version
wasm-bindgen --version
wasm-bindgen-test-runner --version
node_modules/.bin/wasm-opt --version
/usr/bin/chromium --version
/usr/bin/chromedriver --version
