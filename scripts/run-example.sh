#!/usr/bin/env bash
# Starts a starter app on the in-memory broker: set-up (packages, configure, build), then run.
# Usage: scripts/run-example.sh [chat] [--listen HOST:PORT]
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
name="chat"
if [ $# -gt 0 ] && [ "${1#-}" = "$1" ]; then name="$1"; shift; fi
app="$root/scripts/examples/$name/app.lua"
[ -f "$app" ] || { echo "run-example: no example named '$name' (scripts/examples/*/app.lua)" >&2; exit 2; }
"$root/scripts/setup.sh" "$root/build"
exec "$root/build/freshet" "$app" "$@"
