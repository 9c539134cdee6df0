#!/usr/bin/env bash
# Another name for scripts/demo.sh (installs what is missing, builds the browser demo and
# serves it on http://127.0.0.1:8080), kept so that older instructions still work.
exec "$(dirname "$0")/demo.sh" "$@"
