#!/usr/bin/env bash
# Builds the browser demo and serves it on http://127.0.0.1:8080 (Ctrl-C to stop).
set -euo pipefail
cd "$(dirname "$0")/.."

./scripts/setup-web.sh >/tmp/adaftr-setup-web.log 2>&1 || { cat /tmp/adaftr-setup-web.log; exit 1; }
export PATH="$PWD/node_modules/.bin:$HOME/.cargo/bin:$PATH"
export TRUNK_SKIP_VERSION_CHECK=true

cargo fetch --quiet
if command -v python3 >/dev/null 2>&1; then
  trunk build --release --offline
  echo "Serving the AdaFTR demo on http://127.0.0.1:8080/"
  exec python3 -m http.server 8080 --bind 127.0.0.1 --directory dist
else
  echo "Serving the AdaFTR demo on http://127.0.0.1:8080/"
  exec trunk serve --release --offline --address 127.0.0.1 --port 8080
fi
